"""Reading datasets from files, with checks that name the file and the row.

Layouts understood (used by ``loopnet train/eval/predict``):

IDX (MNIST, Fashion-MNIST)
    A directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped
    (``.gz``; ``.idx3-ubyte`` spellings are accepted too; without ``t10k-*`` files a fixed
    share of the training rows is held out). Images are flattened to rows and
    scaled from 0..255 to [0, 1]. Named datasets are looked for in, in order: ``--data DIR``,
    ``$LOOPNET_DATA``, ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``
    installs there); in each place the directory itself and its ``<name>/`` subdirectory.
CSV
    One example per line: ``label,x1,x2,...,xn`` (label an integer 0..K-1). An optional header
    line (any non-numeric field) is skipped. For ``predict``, rows are ``x1,...,xn``; a row
    with one extra column is read as ``label,x1,...`` and the label ignored.
NPZ
    ``X`` (n, n_in) and ``y`` (n,) for one set, or ``X_train``, ``y_train``, ``X_test``,
    ``y_test`` (the keras ``mnist.npz`` spelling ``x_train``... works too). Image stacks
    (n, h, w) are flattened. Loaded with ``allow_pickle=False``.
Scaling (``--scale``)
    ``auto`` (default): IDX images, uint8 arrays, and whole numbers in 0..255 that reach
    above 127 (8-bit pixels in a CSV) are divided by 255; anything else is used as is.
    ``none``: as is. ``255``: divided by 255. ``max``: divided by the largest absolute value
    of the training inputs. The command line records the divisor in the model file, and
    ``eval``/``predict`` divide by the same number.
"""

from __future__ import annotations

import os

import numpy as np

from importlib import resources

from .checks import looks_like_pickle
from .idx import read_idx as _read_idx
from .limits import check_bytes, declared_bytes, npz_members, read_capped, read_member, regular_file

__all__ = ["DataError", "Dataset", "load_dataset", "read_data_file", "read_idx", "find_idx_files", "locate_dataset",
           "load_idx_split", "load_csv", "load_npz", "load_inputs", "check_inputs",
           "check_labels", "scale_pixels", "input_divisor", "SYSTEM_DATA_DIR", "IDX_DATASETS"]

SYSTEM_DATA_DIR = "/usr/share/datasets"
IDX_DATASETS = ("fashion-mnist", "mnist")

class DataError(ValueError):
    """Unreadable or invalid data; the message names the file (and row when it can)."""


class Dataset:
    """Training and held-out arrays plus where they came from."""

    def __init__(self, name, X_train, y_train, X_test, y_test, source, n_classes=None):
        self.name, self.source = name, source
        self.X_train, self.y_train, self.X_test, self.y_test = X_train, y_train, X_test, y_test
        if n_classes is None:
            ys = [y for y in (y_train, y_test) if y is not None and len(y)]
            n_classes = int(max(int(y.max()) for y in ys)) + 1 if ys else None
        self.n_classes = n_classes
        self.divisor = 1.0      # what the raw inputs were divided by

    @property
    def n_inputs(self):
        return int(self.X_train.shape[1])


# --------------------------------------------------------------------------- embedded digits

DIGITS_FILE = "digits.npz"


def load_digits():
    """The UCI 8×8 handwritten digits shipped inside loopnet (no download).

    1,797 images of the digits 0–9, each 64 pixel intensities 0–16, from the
    UCI ML repository's "Optical Recognition of Handwritten Digits" test set
    (the copy scikit-learn bundles).  Returns ``X`` (1797, 64) float64 scaled
    to [0, 1] and ``y`` (1797,) int64 labels.
    """
    with resources.files("loopnet").joinpath("datasets", DIGITS_FILE).open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    return images.astype(np.float64) / 16.0, labels.astype(np.int64)


def digits_split(seed=0, test_size=360):
    """A fixed train/held-out split of :func:`load_digits`: 1,437 / 360 examples.

    The split is a seeded permutation, so it is the same on every machine.
    Returns ``(X_train, y_train), (X_test, y_test)``.
    """
    X, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:test_size], order[test_size:]
    return (X[train], y[train]), (X[test], y[test])


# --------------------------------------------------------------------------- IDX

def read_idx(path):
    """:func:`loopnet.idx.read_idx` (gz or plain, size-checked) raising :class:`DataError`."""
    path = os.fspath(path)
    try:
        return _read_idx(path)
    except (ValueError, OSError) as exc:
        raise DataError(str(exc)) from None


def find_idx_files(directory, split):
    """Return (images_path, labels_path) for split 'train' or 't10k' in directory, or None."""
    found = []
    for kind, rank in (("images", 3), ("labels", 1)):
        hit = None
        for sep in ("-", "."):
            for ext in ("", ".gz"):
                candidate = os.path.join(directory, f"{split}-{kind}{sep}idx{rank}-ubyte{ext}")
                if os.path.isfile(candidate):
                    hit = candidate
                    break
            if hit:
                break
        if hit is None:
            return None
        found.append(hit)
    return tuple(found)


def locate_dataset(name, data=None):
    """Find the directory holding the IDX files of dataset ``name``.

    Looks in ``data``, then ``$LOOPNET_DATA``, then ``/usr/share/datasets/<name>``; in each
    place, the directory itself and its ``<name>`` subdirectory.
    """
    roots = []
    if data:
        roots.append(("--data", os.fspath(data)))
    env = os.environ.get("LOOPNET_DATA")
    if env:
        roots.append(("LOOPNET_DATA", env))
    roots.append(("system", os.path.join(SYSTEM_DATA_DIR, name)))
    looked = []
    for origin, root in roots:
        if origin == "--data" and not os.path.isdir(root):
            raise DataError(f"{root}: --data directory does not exist")
        for d in (root, os.path.join(root, name)):
            looked.append(d)
            if os.path.isdir(d) and find_idx_files(d, "train") and find_idx_files(d, "t10k"):
                return d
        if origin == "--data":     # an explicit --data that lacks the files is an error
            break
    raise DataError(
        f"dataset '{name}' not found (looked in {', '.join(looked)}); download its four IDX "
        "files (train-images-idx3-ubyte.gz, ...) and pass --data DIR or set LOOPNET_DATA")


def load_idx_split(images_path, labels_path, n_classes=None, scale="auto"):
    """Images (n, h*w) float64 in [0, 1] and labels (n,) int64 from an IDX pair, checked.

    ``n_classes``: when given, labels must be below it; by default any labels ≥ 0 are
    accepted (the number of classes is then the largest label + 1).
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim < 2:
        raise DataError(f"{images_path}: expected an image file (3-D IDX), found "
                        f"{images.ndim}-D data")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a label file (1-D IDX), found "
                        f"{labels.ndim}-D data")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images "
                        f"in {images_path}")
    X = scale_pixels(images.reshape(images.shape[0], -1), images_path, scale, pixels=True)
    y = check_labels(labels, labels_path, n_classes)
    return X, y


# --------------------------------------------------------------------------- checks

def input_divisor(X, mode="auto", pixels=False):
    """The number inputs are divided by: see "Scaling" in the module doc.

    ``mode``: "auto", "none" (1), "255", "max" (the largest absolute value of ``X``) or a
    positive number. ``pixels``: the data are 8-bit images (IDX), so "auto" means 255.
    """
    if mode is None or mode == "auto":
        X = np.asarray(X)
        if pixels or X.dtype == np.uint8:
            return 255.0
        if X.size == 0 or X.dtype.kind not in "biuf":
            return 1.0
        lo, hi = float(X.min()), float(X.max())
        if lo >= 0.0 and 127.0 < hi <= 255.0 and np.all(X == np.floor(X)):
            return 255.0
        return 1.0
    if mode == "none":
        return 1.0
    if mode == "max":
        X = np.asarray(X, dtype=np.float64)
        hi = float(np.abs(X).max()) if X.size else 0.0
        return hi if np.isfinite(hi) and hi > 0 else 1.0
    try:
        value = float(mode)
    except (TypeError, ValueError):
        raise DataError(f"unknown scaling {mode!r} (auto, none, 255, max or a number)") \
            from None
    if not (np.isfinite(value) and value > 0):
        raise DataError(f"scaling divisor must be a positive number, got {mode!r}")
    return value


def scale_pixels(X, source, mode="auto", pixels=False):
    """Checked float64 inputs divided by :func:`input_divisor` (0..255 integers -> [0, 1])."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{source}: inputs are not numeric (dtype {X.dtype})")
    try:
        check_bytes(X.size * 8, source, f"inputs {X.shape} as float64")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    Xf = X.astype(np.float64)
    check_inputs(Xf, source)
    d = input_divisor(X, mode, pixels)
    return Xf / d if d != 1.0 else Xf


def check_inputs(X, source, n_inputs=None, row_offset=1):
    """Check a 2-D finite input array; errors name the source and the (1-based) row."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(f"{source}: inputs must be a 2-D array (rows of features), got shape "
                        f"{X.shape}")
    if X.shape[0] == 0:
        raise DataError(f"{source}: no examples")
    if n_inputs is not None and X.shape[1] != n_inputs:
        raise DataError(f"{source}: rows have {X.shape[1]} inputs, the network expects "
                        f"{n_inputs}")
    if X.dtype.kind == "f":
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"{source}: row {r + row_offset}: {X[r, c]} (NaN/infinity) in "
                            f"column {c + 1}")
    return X


def check_labels(y, source, n_classes=None, row_offset=1):
    """Integer labels 0..n_classes-1 as int64; errors name the source and the row."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{source}: labels must be 1-D, got shape {y.shape}")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            r = int(np.argmax(bad))
            raise DataError(f"{source}: row {r + row_offset}: label {y[r]} is not an integer")
    elif y.dtype.kind not in "biu":
        raise DataError(f"{source}: labels are not numeric (dtype {y.dtype})")
    y = y.astype(np.int64)
    if y.size:
        hi = n_classes if n_classes is not None else None
        bad = (y < 0) if hi is None else ((y < 0) | (y >= hi))
        if bad.any():
            r = int(np.argmax(bad))
            limit = f"0..{hi - 1}" if hi is not None else ">= 0"
            raise DataError(f"{source}: row {r + row_offset}: label {y[r]} out of range "
                            f"({limit})")
    return y


# --------------------------------------------------------------------------- CSV / NPZ

def _read_csv_matrix(path):
    """Parse a numeric CSV into a 2-D float array; returns (array, line numbers of its rows).

    NumPy's C parser reads well-formed files (a 60,000-row MNIST CSV in seconds); anything it
    rejects is parsed again line by line so that the error names the line. The line numbers
    are worked out only when an error message needs them.
    """
    path = os.fspath(path)
    try:
        size = regular_file(path, "CSV file")
        # a CSV number takes at least 2 bytes ("0,"), as float64 8: at most 4× the file
        check_bytes(4 * size, path, "the CSV as float64 numbers")
        with open(path, "r", encoding="utf-8-sig", newline="") as f:   # -sig: drop a BOM
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise DataError(str(exc)) from None
    fast = _fast_csv(text)
    if fast is not None:
        return fast, _LazyLines(path, text)
    return _slow_csv(path, text)


class _LazyLines:
    """Row index -> 1-based line number, computed on first use (only for error messages)."""

    def __init__(self, path, text):
        self._path, self._text, self._numbers = path, text, None

    def __getitem__(self, r):
        if self._numbers is None:
            self._numbers = _slow_csv(self._path, self._text)[1]
        return int(self._numbers[r])


def _fast_csv(text):
    import io as _io
    import warnings
    first = next((ln for ln in text.splitlines()[:50] if ln.strip()), None)
    if first is None:
        return None
    header = 0 if all(_is_float(t.strip()) for t in first.split(",")) else 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            A = np.loadtxt(_io.StringIO(text), delimiter=",", ndmin=2, comments=None,
                           skiprows=_first_nonblank(text) + header, dtype=np.float64)
    except (ValueError, IndexError):
        return None
    return A if A.size else None


def _first_nonblank(text):
    for i, ln in enumerate(text.splitlines()):
        if ln.strip():
            return i
    return 0


def _slow_csv(path, text):
    lines = text.splitlines()
    rows, numbers, width = [], [], None
    header = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = [t.strip() for t in line.split(",")]
        try:
            values = [float(t) for t in fields]
        except ValueError:
            if not rows and header == 0:
                header = lineno      # a header line before any data
                continue
            bad = next(t for t in fields if not _is_float(t))
            raise DataError(f"{path}: line {lineno}: {bad!r} is not a number") from None
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise DataError(f"{path}: line {lineno}: {len(values)} columns, expected {width} "
                            "(as on the first data line)")
        rows.append(values)
        numbers.append(lineno)
    if not rows:
        raise DataError(f"{path}: empty file, no data rows")
    return np.array(rows, dtype=np.float64), np.array(numbers)


def _is_float(t):
    try:
        float(t)
        return True
    except ValueError:
        return False


def _finite_or_fail(A, lines, path, what):
    bad = ~np.isfinite(A)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}: line {lines[r]}: {A[r, c]} (NaN/infinity) in {what}")


def load_csv(path, n_classes=None, scale="auto"):
    """Labelled CSV (``label,x1,...,xn`` per line) -> (X float64, y int64), checked."""
    A, lines = _read_csv_matrix(path)
    if A.shape[1] < 2:
        raise DataError(f"{path}: needs a label column and at least one input column")
    _finite_or_fail(A, lines, path, "the data")
    y = A[:, 0]
    frac = y != np.round(y)
    if frac.any():
        r = int(np.argmax(frac))
        raise DataError(f"{path}: line {lines[r]}: label {y[r]} is not an integer")
    y = y.astype(np.int64)
    if n_classes is not None:
        bad = (y < 0) | (y >= n_classes)
    else:
        bad = y < 0
    if bad.any():
        r = int(np.argmax(bad))
        rng = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise DataError(f"{path}: line {lines[r]}: label {y[r]} out of range ({rng})")
    X = scale_pixels(A[:, 1:], path, scale)
    return X, y


def read_npz_arrays(path, wanted=None):
    """{name: array} of an .npz (only names in ``wanted``, compared in lower case, when given).

    Each member's declared shape is checked against the limit before it is inflated
    (:func:`loopnet.limits.npz_members`); pickled members are refused.
    """
    path = os.fspath(path)
    try:
        members = npz_members(path)
        return {name: read_member(path, info) for name, (_, _, info) in members.items()
                if wanted is None or name.lower() in wanted}
    except (ValueError, OSError) as exc:
        raise DataError(str(exc)) from None


def load_npz(path, scale="auto"):
    """An .npz dataset -> dict with 'train' (X, y) and, if present, 'test' (X, y)."""
    path = os.fspath(path)
    arrays = read_npz_arrays(path, _NPZ_NAMES)
    low = {k.lower(): k for k in arrays}
    out = {}
    for split, xs, ys in (("train", "x_train", "y_train"), ("test", "x_test", "y_test"),
                          ("train", "x", "y")):
        if xs in low and ys in low and split not in out:
            X = np.asarray(arrays[low[xs]])
            y = np.asarray(arrays[low[ys]])
            src = f"{path}[{low[xs]}]"
            if X.ndim > 2:
                X = X.reshape(X.shape[0], -1)
            X = scale_pixels(X, src, scale)
            check_inputs(X, src)
            y = check_labels(y, f"{path}[{low[ys]}]")
            if y.shape[0] != X.shape[0]:
                raise DataError(f"{path}: {y.shape[0]} labels for {X.shape[0]} examples")
            out[split] = (X, y)
    if "train" not in out:
        raise DataError(f"{path}: expected arrays 'X' and 'y' (or 'X_train', 'y_train', "
                        f"'X_test', 'y_test'); found {', '.join(sorted(arrays)) or 'none'}")
    return out


_NPZ_NAMES = ("x_train", "y_train", "x_test", "y_test", "x", "y")


def _read_npy(path):
    """A .npy array after checking its header against the file size and the limit."""
    try:
        size = regular_file(path, ".npy file")
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise DataError(f"{path}: holds pickled objects; refused")
            nbytes = declared_bytes(shape, dtype)
            if f.tell() + nbytes != size:
                raise DataError(f"{path}: .npy header announces {nbytes:,} bytes of data for "
                                f"shape {shape}, the file holds {size - f.tell():,}; truncated "
                                "or corrupt")
            check_bytes(nbytes, path, f"array {shape}")
            raw = read_capped(f, nbytes, path)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable .npy file ({text})") from None
    order = "F" if fortran else "C"
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


def _npz_inputs(path):
    """The inputs of an .npz for prediction: X_test, else X, else X_train (labels not needed)."""
    arrays = read_npz_arrays(path, _NPZ_NAMES)
    low = {k.lower(): k for k in arrays}
    for key in ("x_test", "x", "x_train"):
        if key in low:
            return arrays[low[key]], f"{path}[{low[key]}]"
    raise DataError(f"{path}: expected an array 'X' (or 'X_test', 'X_train') of inputs")


def load_inputs(path, n_inputs=None, scale="auto"):
    """Inputs for prediction from .npy, .npz, .csv or IDX (plain or .gz) -> float64 (m, n)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory; expected a .npy, .npz, .csv or IDX file")
    try:
        regular_file(path, "file of inputs")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    with open(path, "rb") as f:
        head = f.read(8)
    low = path.lower()
    if looks_like_pickle(head):
        raise DataError(f"{path}: a Python pickle; refused (use .npy, .npz, .csv or IDX)")
    if head.startswith(b"\x93NUMPY") or low.endswith(".npy"):
        X = _read_npy(path)
        if X.ndim == 0:
            raise DataError(f"{path}: a single number, not rows of inputs")
        if X.ndim == 1 and n_inputs is not None and X.shape[0] == n_inputs:
            X = X.reshape(1, -1)
        elif X.ndim > 2:
            X = X.reshape(X.shape[0], -1)
    elif head.startswith(b"PK") or low.endswith(".npz"):
        X, source = _npz_inputs(path)
        if X.ndim == 1 and n_inputs is not None and X.shape[0] == n_inputs:
            X = X.reshape(1, -1)
        elif X.ndim > 2:
            X = X.reshape(X.shape[0], -1)
        return check_inputs(scale_pixels(X, source, scale), source, n_inputs)
    elif low.endswith(".csv") or low.endswith(".txt"):
        A, lines = _read_csv_matrix(path)
        if n_inputs is not None and A.shape[1] == n_inputs + 1:
            A = A[:, 1:]       # a labelled CSV: drop the label column
        _finite_or_fail(A, lines, path, "the inputs")
        if n_inputs is not None and A.shape[1] != n_inputs:
            raise DataError(f"{path}: line {lines[0]}: {A.shape[1]} columns, the network "
                            f"expects {n_inputs} inputs")
        X = A
    else:   # IDX (plain or gz)
        X = read_idx(path)
        if X.ndim == 1:
            raise DataError(f"{path}: a 1-D IDX file (labels?); expected images or rows of "
                            "inputs")
        X = X.reshape(X.shape[0], -1)
    X = scale_pixels(X, path, scale)
    return check_inputs(X, path, n_inputs)


# --------------------------------------------------------------------------- one entry point

def load_dataset(name=None, data=None, *, test=None, holdout=0.2, limit=None, n_classes=None,
                 scale="auto"):
    """Training and held-out sets as the command line finds them -> :class:`Dataset`.

    ``name``: "digits" (embedded; the default when ``data`` is None), "fashion-mnist" or
    "mnist" (located with :func:`locate_dataset`), or None with ``data`` a directory of IDX
    files or a .csv/.npz file. A single file without test arrays or ``test`` is split with a
    fixed seed, ``holdout`` of it held out. ``limit`` keeps the first rows of the training
    set; ``n_classes`` checks the labels against a network's outputs; ``scale`` is a mode
    of :func:`input_divisor` (or a number), decided on the training inputs and applied to
    both sets; the result's ``divisor`` says what was used (1 for the embedded digits,
    which come in [0, 1]).

    >>> ds = load_dataset("fashion-mnist")                       # doctest: +SKIP
    >>> ds.X_train.shape, ds.X_test.shape                        # doctest: +SKIP
    ((60000, 784), (10000, 784))
    """
    if name is None and data is None:
        name = "digits"
    if name == "digits":
        if data is not None:
            raise DataError("the digits are embedded; 'data' cannot be given with them")
        (Xtr, ytr), (Xte, yte) = digits_split(seed=0)
        ds = Dataset("digits", Xtr, ytr, Xte, yte, "embedded UCI digits", n_classes=10)
        ds.divisor = 1.0
    elif name in IDX_DATASETS:
        ds = _idx_dataset(name, locate_dataset(name, data), scale)
    elif name is not None:
        raise DataError(f"unknown dataset {name!r} (expected digits, "
                        f"{', '.join(IDX_DATASETS)}, or a path)")
    else:
        data = os.fspath(data)
        if os.path.isdir(data):
            if not find_idx_files(data, "train"):
                raise DataError(f"{data}: no train-images-idx3-ubyte[.gz] and "
                                "train-labels-idx1-ubyte[.gz] here")
            ds = _idx_dataset("idx", data, scale, holdout)
        elif not os.path.exists(data):
            raise DataError(f"{data}: no such file or directory")
        else:
            ds = _file_dataset(data, test, holdout, n_classes, scale)
    if limit:
        ds.X_train, ds.y_train = ds.X_train[:limit], ds.y_train[:limit]
    if n_classes is not None:
        ds.n_classes = n_classes
        for y, what in ((ds.y_train, "training"), (ds.y_test, "held-out")):
            if len(y) and int(y.max()) >= n_classes:
                raise DataError(f"{ds.source}: {what} label {int(y.max())} out of range for "
                                f"a network with {n_classes} outputs (0..{n_classes - 1})")
    return ds


def read_data_file(path, n_classes=None, scale="auto"):
    """A labelled .csv or .npz -> {"train": (X, y)[, "test": (X, y)]}."""
    path = os.fspath(path)
    low = path.lower()
    if low.endswith(".csv") or low.endswith(".txt"):
        return {"train": load_csv(path, n_classes, scale)}
    if low.endswith(".npz"):
        return load_npz(path, scale)
    raise DataError(f"{path}: unknown data file type (expected a directory of IDX files, "
                    "a .csv or a .npz)")


def _idx_dataset(name, directory, scale="auto", holdout=0.2):
    tr = find_idx_files(directory, "train")
    te = find_idx_files(directory, "t10k")
    Xtr, ytr = load_idx_split(*tr, scale="none")
    if te:
        Xte, yte = load_idx_split(*te, scale="none")
        if Xte.shape[1] != Xtr.shape[1]:
            raise DataError(f"{te[0]}: images have {Xte.shape[1]} pixels, the training images "
                            f"{Xtr.shape[1]}")
    else:       # only train-* files: hold some out
        (Xtr, ytr), (Xte, yte) = _holdout_split(Xtr, ytr, holdout, directory)
    d = input_divisor(Xtr, scale, pixels=True)
    if d != 1.0:
        Xtr, Xte = Xtr / d, Xte / d
    ds = Dataset(name, Xtr, ytr, Xte, yte, directory)
    ds.divisor = d
    return ds


def _holdout_split(X, y, holdout, source):
    """A seeded split: ``holdout`` of the rows held out, the same on every machine."""
    n = len(y)
    n_test = max(1, int(round(holdout * n)))
    if n - n_test < 1:
        raise DataError(f"{source}: only {n} example(s); too few to hold some out "
                        "(give a separate test set)")
    order = np.random.default_rng(0).permutation(n)
    return (X[order[n_test:]], y[order[n_test:]]), (X[order[:n_test]], y[order[:n_test]])


def _file_dataset(data, test, holdout, n_classes, scale):
    train = read_data_file(data, n_classes, "none")
    if test is not None:
        tst = read_data_file(test, n_classes, "none")
        test_xy = tst.get("test") or tst["train"]
    else:
        test_xy = train.get("test")
    Xtr, ytr = train["train"]
    if test_xy is None:     # hold out a seeded fraction
        (Xtr, ytr), (Xte, yte) = _holdout_split(Xtr, ytr, holdout, data)
    else:
        Xte, yte = test_xy
        if Xte.shape[1] != Xtr.shape[1]:
            raise DataError(f"{test}: rows have {Xte.shape[1]} inputs, the training data "
                            f"has {Xtr.shape[1]}")
    d = input_divisor(Xtr, scale)
    if d != 1.0:
        Xtr, Xte = Xtr / d, Xte / d
    ds = Dataset(os.path.basename(data), Xtr, ytr, Xte, yte, data)
    ds.divisor = d
    return ds
