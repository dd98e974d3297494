"""Saving and loading networks without pickle.

Two formats, chosen by the file name:

``*.npz`` (the default, complete)
    A zip archive of ``.npy`` members, read back with ``allow_pickle=False``:

    ``meta.npy``      uint8 array holding UTF-8 JSON (below)
    ``digest.npy``    uint8 array holding the hex SHA-256 of the ``meta.npy`` bytes
    ``params.npy``    the flat parameter buffer ``[w1, b1, w2, b2, ...]`` (``net.params``)
    ``opt.<key>.npy`` one member per array in ``net.optimizer_state`` (``velocity``, ``m``, ``v``)

    The JSON holds ``format`` (``"loopnet"``), ``format_version``, ``config`` (sizes,
    activation, output, cost, dtype as ``net.config`` gives them), ``epoch``, ``history``, ``rng_state``
    (``net.rng.bit_generator.state``), ``optimizer`` (its scalar fields and the names of its
    arrays), ``arrays`` (dtype, shape and SHA-256 of every array member) and ``extra``
    (free-form, e.g. the training options the command line used).

``*.json`` (network2-compatible)
    ``{"sizes", "weights", "biases", "cost"}`` exactly as Nielsen's ``network2.save`` writes
    them (biases as column lists), plus a ``"loopnet"`` object with the rest of the state and
    checksums. A plain network2 file (no ``"loopnet"`` key) also loads: sigmoid layers, cost
    ``QuadraticCost`` or ``CrossEntropyCost``. Floats are written with ``repr`` precision, so
    float64 (and float32) values round-trip exactly.

Writes are atomic: the file is written to a temporary name in the same directory, flushed,
``fsync``-ed and renamed over the target (Ctrl-C is deferred while that happens), so a crash
never leaves a truncated model and an existing file is either untouched or fully replaced.

Loading checks everything before building a network: the header (a pickle or a bare ``.npy``
is refused with a clear message), the zip structure, the digest, every array checksum, the
format version and the shapes. Any problem raises :class:`ModelFormatError` naming the file.
The checksums catch corruption and accidental edits; they are not a signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import tempfile
import threading
import time
import zipfile

import numpy as np

from .checks import DTYPES, check_sizes, is_int, looks_like_pickle, n_params  # noqa: F401 (looks_like_pickle: public name)
from .limits import check_bytes, npz_members, read_member, regular_file
from .net import Net

__all__ = ["save", "load", "load_with_meta", "ModelFormatError", "atomic_write",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "loopnet"
FORMAT_VERSION = 1

_N2_COSTS = {"QuadraticCost": "quadratic", "CrossEntropyCost": "cross_entropy"}
_N2_NAMES = {v: k for k, v in _N2_COSTS.items()}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # fixed member timestamps: same state -> same bytes


class ModelFormatError(ValueError):
    """A model file that cannot be loaded (corrupt, truncated, wrong version, tampered...)."""


# --------------------------------------------------------------------------- atomic writes

@contextlib.contextmanager
def _defer_sigint():
    """Hold back Ctrl-C while a file is being replaced; re-raise it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda s, f: received.append(s))
    except (ValueError, OSError):      # not allowed here (embedded interpreter...)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file, fsync it and rename it to ``path``.

    Either ``path`` ends up holding the complete new content, or it is left as it was.
    Only a regular file (or a new name) is replaced: a directory, device node, fifo or
    socket at ``path`` is refused.  The file gets the mode ``open()`` would give it
    (0666 less the umask).  The temporary file is removed on any error, and temporary
    files of this same target left by a killed process (hidden ``.NAME.*.tmp``, older
    than :data:`STALE_TMP_SECONDS`) are removed after a successful write.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory} does not exist")
    check_replaceable(path)
    with _defer_sigint():
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=directory)
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(directory)
    remove_stale_tmp(path)


#: A temporary file of a save older than this (seconds) was left by a killed process.
STALE_TMP_SECONDS = 3600


def _tmp_prefix(path):
    return "." + os.path.basename(path) + "."


def check_replaceable(path):
    """OSError unless ``path`` is absent or a regular file (what a save may replace)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OSError(f"{path}: cannot write ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path}: not a regular file (a device, fifo or socket); loopnet "
                      "replaces only regular files")


def remove_stale_tmp(path, age=None):
    """Remove ``.NAME.*.tmp`` files of ``path`` older than ``age`` seconds; their number."""
    age = STALE_TMP_SECONDS if age is None else age
    directory = os.path.dirname(os.path.abspath(path))
    prefix, now, removed = _tmp_prefix(path), time.time(), 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")) or \
                len(name) != len(prefix) + 8 + len(".tmp"):     # mkstemp adds 8 characters
            continue
        full = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > age:
                os.unlink(full)
                removed += 1
    return removed


# --------------------------------------------------------------------------- helpers

def _sha256(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _jsonable(value):
    """Convert NumPy scalars (and nested containers) to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _state_of(net):
    """Split a network into (meta dict without 'arrays', {name: array})."""
    config = _jsonable(dict(net.config))
    arrays = {"params": np.ascontiguousarray(net.params)}
    opt_scalars, opt_arrays = {}, []
    for key, value in dict(getattr(net, "optimizer_state", None) or {}).items():
        if isinstance(value, np.ndarray):
            arrays["opt." + key] = np.ascontiguousarray(value)
            opt_arrays.append(key)
        else:
            opt_scalars[key] = _jsonable(value)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "epoch": int(net.epoch),
        "best_epoch": None if getattr(net, "best_epoch", None) is None else int(net.best_epoch),
        "history": _jsonable(list(net.history)),
        "rng_state": _jsonable(net.rng.bit_generator.state),
        "optimizer": {"scalars": opt_scalars, "arrays": opt_arrays},
    }
    return meta, arrays


def _digest_meta(meta):
    body = {k: v for k, v in meta.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- save

def save(net, path, *, extra=None):
    """Write ``net`` to ``path`` atomically (``.json``: network2-compatible; else ``.npz``).

    ``extra`` is a JSON-able dict stored alongside (the command line keeps its options there).
    """
    path = os.fspath(path)
    meta, arrays = _state_of(net)
    meta["extra"] = _jsonable(extra or {})
    meta["arrays"] = {name: {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": _sha256(a)}
                      for name, a in arrays.items()}
    if path.lower().endswith(".json"):
        _save_json(net, path, meta, arrays)
    else:
        _save_npz(path, meta, arrays)
    return path


def _save_npz(path, meta, arrays):
    meta_bytes = json.dumps(meta, sort_keys=True, allow_nan=True).encode()
    members = {"meta": np.frombuffer(meta_bytes, dtype=np.uint8),
               "digest": np.frombuffer(hashlib.sha256(meta_bytes).hexdigest().encode(),
                                       dtype=np.uint8)}
    members.update(arrays)

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, arr in members.items():
                info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(arr),
                                              allow_pickle=False)

    atomic_write(path, write)


def _save_json(net, path, meta, arrays):
    cost = net.config["cost"]
    lm = dict(meta)
    lm["optimizer"] = dict(meta["optimizer"])
    lm["optimizer"]["values"] = {k: arrays["opt." + k].tolist()
                                 for k in meta["optimizer"]["arrays"]}
    lm["digest"] = _digest_meta(lm)
    doc = {
        "sizes": [int(s) for s in net.sizes],
        "weights": [np.asarray(w).tolist() for w in net.weights],
        "biases": [np.asarray(b).reshape(-1, 1).tolist() for b in net.biases],
        "cost": _N2_NAMES.get(cost, cost),
        "loopnet": lm,
    }
    text = json.dumps(doc, allow_nan=True)
    atomic_write(path, lambda f: f.write(text.encode()))


# --------------------------------------------------------------------------- load

def load(path):
    """Load a network saved by :func:`save` (or a network2 JSON file). Raises ModelFormatError."""
    return load_with_meta(path)[0]


def load_with_meta(path):
    """Like :func:`load` but also return the metadata dict (``extra`` holds saved options).

    Every problem with the file is one :class:`ModelFormatError` naming it (a missing file
    is a ``FileNotFoundError``); nothing is allocated before its declared size is checked.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFormatError(f"{path}: is a directory, not a model file")
    try:
        return _load_checked(path)
    except (ModelFormatError, FileNotFoundError):
        raise
    except RecursionError:
        raise ModelFormatError(f"{path}: corrupt model (JSON nested too deeply)") from None
    except MemoryError:
        raise ModelFormatError(f"{path}: corrupt model (declares more data than fits in "
                               "memory)") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
            OSError, EOFError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if text.startswith(path):
            raise ModelFormatError(text) from None
        raise ModelFormatError(f"{path}: corrupt model ({type(exc).__name__}"
                               f"{': ' + text if text else ''})") from None


def _load_checked(path):
    size = regular_file(path, "model file")
    check_bytes(size, path, "the model file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ModelFormatError(f"{path}: empty file, not a loopnet model")
    if looks_like_pickle(head):
        raise ModelFormatError(
            f"{path}: this is a Python pickle; loopnet never loads pickles (they can run "
            "arbitrary code). Save models with loopnet.io.save / 'loopnet train --save'")
    if head.startswith(b"\x93NUMPY"):
        raise ModelFormatError(f"{path}: a bare .npy array, not a loopnet model "
                               "(expected a .npz or .json written by loopnet)")
    if head.startswith(b"PK"):
        return _load_npz(path)
    if head.lstrip()[:1] in (b"{", b"["):
        return _load_json(path)
    raise ModelFormatError(f"{path}: not a loopnet model (unrecognised header; expected a .npz "
                           "archive or a JSON file written by loopnet.io.save)")


def _load_npz(path):
    """Read meta and digest, check them, then compare every member's declared dtype and
    shape with the metadata before inflating it."""
    members = npz_members(path)
    if "meta" not in members or "digest" not in members:
        raise ModelFormatError(f"{path}: a .npz archive but not a loopnet model "
                               f"(members: {', '.join(sorted(members)) or 'none'})")
    for name in ("meta", "digest"):
        shape, dtype, _ = members[name]
        if dtype != np.uint8 or len(shape) != 1:
            raise ModelFormatError(f"{path}: corrupt model file (bad metadata member)")
    check_bytes(_JSON_GROWTH * members["meta"][0][0], path, "the metadata as Python objects")
    meta_bytes = read_member(path, members.pop("meta")[2]).tobytes()
    digest = read_member(path, members.pop("digest")[2]).tobytes()
    if hashlib.sha256(meta_bytes).hexdigest().encode() != digest:
        raise ModelFormatError(f"{path}: metadata checksum mismatch; the file was modified "
                               "or corrupted")
    try:
        meta = json.loads(meta_bytes.decode())
    except (UnicodeDecodeError, ValueError):
        raise ModelFormatError(f"{path}: corrupt model metadata (not valid JSON)") from None
    _check_header(path, meta)
    declared = meta.get("arrays")
    if not isinstance(declared, dict):
        raise ModelFormatError(f"{path}: corrupt model metadata (no array table)")
    if set(declared) != set(members):
        raise ModelFormatError(f"{path}: array members {sorted(members)} do not match the "
                               f"metadata {sorted(declared)}")
    arrays = {}
    for name, (shape, dtype, info) in members.items():
        want = declared[name]
        if not isinstance(want, dict) or str(dtype) != want.get("dtype") or \
                list(shape) != want.get("shape"):
            raise ModelFormatError(f"{path}: member '{name}' {dtype}{list(shape)} does not "
                                   "match the metadata; the file was modified or corrupted")
        arr = read_member(path, info)
        if _sha256(arr) != want.get("sha256"):
            raise ModelFormatError(f"{path}: checksum mismatch in '{name}'; the file was "
                                   "modified or corrupted")
        arrays[name] = arr
    opt_names = meta["optimizer"].get("arrays", [])
    if not isinstance(opt_names, list) or \
            {"opt." + str(k) for k in opt_names} != set(arrays) - {"params"}:
        raise ModelFormatError(f"{path}: optimizer arrays do not match the metadata")
    if "params" not in arrays:
        raise ModelFormatError(f"{path}: no parameter array")
    opt_arrays = {k: arrays["opt." + k] for k in opt_names}
    return _build(path, meta, arrays["params"], opt_arrays), meta


def _check_header(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: not a loopnet model (format tag missing)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFormatError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: written by a newer loopnet (format version {version}); this loopnet "
            f"reads version {FORMAT_VERSION}. Upgrade loopnet to load it")
    for key, kind in (("config", dict), ("epoch", int), ("history", list),
                      ("rng_state", dict), ("optimizer", dict)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ModelFormatError(f"{path}: corrupt model metadata (field '{key}')")
    _check_meta_values(path, meta)


def _check_meta_values(path, meta):
    """epoch an integer ≥ 0, history a list of dicts whose epochs are integers, optimizer
    scalars of the right kinds, extra a dict."""
    if meta["epoch"] < 0:
        raise ModelFormatError(f"{path}: corrupt model metadata (epoch {meta['epoch']} < 0)")
    for i, h in enumerate(meta["history"]):
        if not isinstance(h, dict) or not is_int(h.get("epoch", 0)):
            raise ModelFormatError(f"{path}: corrupt model metadata (history record {i} is "
                                   "not a record of an epoch)")
    opt = meta["optimizer"]
    scalars = opt.get("scalars", {})
    if not isinstance(scalars, dict) or not isinstance(opt.get("arrays", []), list):
        raise ModelFormatError(f"{path}: corrupt model metadata (optimizer)")
    if "t" in scalars and not (is_int(scalars["t"]) and scalars["t"] >= 0):
        raise ModelFormatError(f"{path}: corrupt model metadata (optimizer step count "
                               f"{scalars['t']!r})")
    if "name" in scalars and not isinstance(scalars["name"], str):
        raise ModelFormatError(f"{path}: corrupt model metadata (optimizer name)")
    if not isinstance(meta.get("extra", {}), dict):
        raise ModelFormatError(f"{path}: corrupt model metadata (field 'extra')")


def _check_config(path, config):
    if not isinstance(config, dict):
        raise ModelFormatError(f"{path}: corrupt model metadata (config)")
    for key in ("activation", "output", "cost", "dtype", "subnormals"):
        if key in config and not isinstance(config[key], str):
            raise ModelFormatError(f"{path}: invalid {key} {config[key]!r}")
    try:
        sizes = check_sizes(config.get("sizes"))
    except (TypeError, ValueError):
        raise ModelFormatError(f"{path}: invalid layer sizes {config.get('sizes')!r}") from None
    if config.get("dtype", "float64") not in DTYPES:
        raise ModelFormatError(f"{path}: unsupported dtype {config.get('dtype')!r}")
    return sizes


def _build(path, meta, params, opt_arrays):
    config = dict(meta["config"])
    sizes = _check_config(path, config)
    dtype = np.dtype(config.get("dtype", "float64"))
    expected = n_params(sizes)
    if params.ndim != 1 or params.shape[0] != expected:
        raise ModelFormatError(f"{path}: parameter buffer has shape {params.shape}, layer "
                               f"sizes {sizes} need ({expected},)")
    if params.dtype != dtype:
        raise ModelFormatError(f"{path}: parameters are {params.dtype}, metadata says {dtype}")
    if not np.all(np.isfinite(params)):
        raise ModelFormatError(f"{path}: parameters contain NaN or infinity")
    kwargs = {k: config[k] for k in ("activation", "output", "cost", "dtype", "dropout",
                                     "subnormals") if k in config}
    try:
        net = Net(sizes, seed=0, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError(f"{path}: invalid network configuration: {exc}") from None
    np.copyto(net.params, params)
    # RNG state: restore the exact stream so a resumed run shuffles as the original would.
    state = meta["rng_state"]
    try:
        if state is None:       # plain network2 file: keep the fresh generator
            pass
        elif state.get("bit_generator") != type(net.rng.bit_generator).__name__:
            bitgen_cls = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                          "Philox": np.random.Philox, "SFC64": np.random.SFC64,
                          "MT19937": np.random.MT19937}[state.get("bit_generator")]
            net.rng = np.random.Generator(bitgen_cls())
            net.rng.bit_generator.state = state
        else:
            net.rng.bit_generator.state = state
    except (KeyError, TypeError, ValueError):
        raise ModelFormatError(f"{path}: invalid random generator state") from None
    opt = meta["optimizer"]
    state = dict(opt.get("scalars", {}))
    for key, arr in opt_arrays.items():
        if arr.shape != params.shape:
            raise ModelFormatError(f"{path}: optimizer array '{key}' has shape {arr.shape}, "
                                   f"expected {params.shape}")
        state[key] = np.array(arr, dtype=arr.dtype, copy=True)
    if state:
        _set_optimizer_state(net, state)
    net.epoch = int(meta["epoch"])
    net.history = [dict(h) for h in meta["history"]]
    best = meta.get("best_epoch")          # absent from files written before it was saved
    net.best_epoch = int(best) if is_int(best) and 0 < best <= net.epoch else None
    return net


def _set_optimizer_state(net, state):
    try:
        net.optimizer_state = state
    except AttributeError:          # read-only property: update in place
        current = net.optimizer_state
        current.clear()
        current.update(state)


#: Python objects parsed from JSON take up to this many times the bytes of the text.
_JSON_GROWTH = 16


def _load_json(path):
    check_bytes(_JSON_GROWTH * os.path.getsize(path), path, "the JSON model as Python objects")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        doc = json.loads(raw.decode())
    except RecursionError:
        raise ModelFormatError(f"{path}: corrupt JSON model (nested too deeply)") from None
    except UnicodeDecodeError:
        raise ModelFormatError(f"{path}: not a loopnet model (not UTF-8 JSON)") from None
    except ValueError as exc:
        raise ModelFormatError(f"{path}: truncated or corrupt JSON model ({exc})") from None
    if not isinstance(doc, dict) or not {"sizes", "weights", "biases"} <= set(doc):
        raise ModelFormatError(f"{path}: JSON but not a model (needs 'sizes', 'weights', "
                               "'biases' as network2 writes them)")
    lm = doc.get("loopnet")
    if lm is not None:
        if not isinstance(lm, dict):
            raise ModelFormatError(f"{path}: corrupt 'loopnet' section")
        _check_header(path, lm)
        if lm.get("digest") != _digest_meta(lm):
            raise ModelFormatError(f"{path}: metadata checksum mismatch; the file was "
                                   "modified or corrupted")
        config = dict(lm["config"])
    else:  # a plain network2 file
        cost = doc.get("cost", "QuadraticCost")
        if cost not in _N2_COSTS:
            raise ModelFormatError(f"{path}: unknown network2 cost {cost!r} (expected one of "
                                   f"{', '.join(_N2_COSTS)})")
        config = {"sizes": doc["sizes"], "activation": "sigmoid", "output": "sigmoid",
                  "cost": _N2_COSTS[cost], "dtype": "float64"}
        lm = {"format": "network2", "format_version": None, "config": config,
              "epoch": 0, "history": [], "rng_state": None, "optimizer": {}, "extra": {}}
    sizes = _check_config(path, config)
    if doc["sizes"] != sizes:
        raise ModelFormatError(f"{path}: 'sizes' {doc['sizes']!r} disagrees with the "
                               f"metadata {sizes!r}")
    dtype = np.dtype(config.get("dtype", "float64"))
    ws, bs = doc["weights"], doc["biases"]
    if not isinstance(ws, list) or not isinstance(bs, list) or \
            len(ws) != len(sizes) - 1 or len(bs) != len(sizes) - 1:
        raise ModelFormatError(f"{path}: expected {len(sizes) - 1} weight and bias arrays "
                               f"for sizes {sizes}")
    flat = []
    for l, (w, b) in enumerate(zip(ws, bs), start=1):
        n_in, n_out = sizes[l - 1], sizes[l]
        try:
            w = np.array(w, dtype=np.float64)
            b = np.array(b, dtype=np.float64)
        except (ValueError, TypeError):
            raise ModelFormatError(f"{path}: layer {l}: weights/biases are not numeric "
                                   "arrays") from None
        if w.shape != (n_out, n_in):
            raise ModelFormatError(f"{path}: layer {l}: weights have shape {w.shape}, sizes "
                                   f"{sizes} need ({n_out}, {n_in})")
        if b.shape not in ((n_out,), (n_out, 1)):
            raise ModelFormatError(f"{path}: layer {l}: biases have shape {b.shape}, sizes "
                                   f"{sizes} need ({n_out}, 1)")
        flat += [w.ravel(), b.ravel()]
    params = np.concatenate(flat).astype(dtype)
    opt_arrays = {}
    if doc.get("loopnet") is not None:
        info = lm.get("arrays", {}).get("params", {})
        if _sha256(params) != info.get("sha256"):
            raise ModelFormatError(f"{path}: checksum mismatch in the weights; the file was "
                                   "modified or corrupted")
        values = lm["optimizer"].get("values", {})
        for key in lm["optimizer"].get("arrays", []):
            try:
                arr = np.array(values[key], dtype=dtype)
            except (KeyError, ValueError, TypeError):
                raise ModelFormatError(f"{path}: corrupt optimizer state '{key}'") from None
            if _sha256(arr) != lm.get("arrays", {}).get("opt." + key, {}).get("sha256"):
                raise ModelFormatError(f"{path}: checksum mismatch in optimizer state "
                                       f"'{key}'")
            opt_arrays[key] = arr
    return _build(path, lm, params, opt_arrays), lm
