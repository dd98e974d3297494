"""Pieces shared by the subcommands: argument types, data options, errors, formatting.

Nothing here imports the compiled core at module level, so ``loopnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os

from ..checks import ACTIVATIONS, COSTS, DTYPES, OPTIMIZERS, OUTPUTS, check_sizes  # noqa: F401
from .. import reporting
DATASETS = ("digits", "fashion-mnist", "mnist")


class CommandError(Exception):
    """A failure to report as one line ``loopnet: error: ...`` with an exit code."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class UsageError(CommandError):
    """Bad options (exit code 2)."""

    def __init__(self, message):
        super().__init__(message, code=2)


# --------------------------------------------------------------------------- argument types

def _number(kind, text, what):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text):
    v = _number(int, text, "a positive integer")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def nonneg_int(text):
    v = _number(int, text, "an integer >= 0")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def positive_float(text):
    v = _number(float, text, "a number")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def nonneg_float(text):
    v = _number(float, text, "a number")
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def unit_interval(text):
    v = _number(float, text, "a number")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def open_unit_interval(text):
    v = _number(float, text, "a number")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return v


def _scale_mode(text):
    if text in ("auto", "none", "255", "max"):
        return text
    v = _number(float, text, "auto, none, 255, max or a positive number")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be auto, none, 255, max or a number > 0, "
                                         f"got {text}")
    return v


def sizes_list(text):
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 784,30,10, got {text!r}") from None
    try:
        return check_sizes(sizes)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (from {text!r})") from None


# --------------------------------------------------------------------------- data options

def add_data_arguments(parser, *, limit=True):
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default=None,
                   help="named dataset: digits (embedded, default), fashion-mnist or mnist "
                        "(IDX files found via --data, $LOOPNET_DATA or /usr/share/datasets)")
    g.add_argument("--data", metavar="PATH", default=None,
                   help="a directory of IDX files (train-/t10k-images-idx3-ubyte[.gz], ...), "
                        "or a .csv (label,x1,...,xn per line) or .npz (X,y or X_train,...) file")
    g.add_argument("--test", metavar="FILE", default=None,
                   help="held-out .csv/.npz file when --data is a single file")
    g.add_argument("--holdout", metavar="FRACTION", type=open_unit_interval, default=None,
                   help="fraction held out for evaluation when the data has no test set "
                        "(default 0.2; a fixed seeded split)")
    g.add_argument("--scale", metavar="MODE", default=None,
                   type=_scale_mode,
                   help="divide inputs by: auto (255 for IDX and 0..255 pixel data, else 1; "
                        "the default), none, 255, max (largest training input) or a number")
    if limit:
        g.add_argument("--limit", metavar="N", type=positive_int, default=None,
                       help="use only the first N training examples (quick runs)")


def data_spec(args, saved=None):
    """The data options as a JSON-able dict; unset ones fall back to ``saved`` (a model's)."""
    saved = saved or {}
    spec = DataSpec()
    for key in ("dataset", "data", "test", "holdout", "limit", "scale"):
        value = getattr(args, key, None)
        spec[key] = value if value is not None else saved.get(key)
        if value is None and saved.get(key) is not None:
            spec.recorded.append(key)
    return spec


class DataSpec(dict):
    """The data options; ``recorded`` lists those taken from a model file, not typed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorded = []


def spec_to_save(spec):
    """The spec with absolute paths, so a resumed run finds its data from any directory."""
    out = dict(spec)
    for key in ("data", "test"):
        if out.get(key):
            out[key] = os.path.abspath(out[key])
    return out


def load_data(spec, n_classes=None):
    """Load the dataset a spec describes -> :class:`loopnet.datafiles.Dataset`."""
    from .. import datafiles as df

    recorded = getattr(spec, "recorded", [])
    try:
        return _load_data(df, spec, n_classes)
    except (UsageError, df.DataError) as exc:
        if not recorded:
            raise
        note = (f"{exc} (the data options {', '.join('--' + k for k in recorded)} were not "
                "typed but recorded in the model file; give --dataset/--data to choose the data)")
        raise CommandError(note, getattr(exc, "code", 1)) from None


def _load_data(df, spec, n_classes):
    name, data = spec.get("dataset"), spec.get("data")
    if name == "digits" and data is not None:
        raise UsageError("--data cannot be used with --dataset digits (it is embedded)")
    if name in df.IDX_DATASETS and data is not None and os.path.isfile(data):
        raise UsageError(f"--dataset {name} needs --data to be a directory of IDX files")
    return df.load_dataset(name, data, test=spec.get("test"),
                           holdout=spec.get("holdout") or 0.2, limit=spec.get("limit"),
                           n_classes=n_classes, scale=spec.get("scale") or "auto")


def read_single(path, n_classes, scale="auto"):
    from .. import datafiles as df
    return df.read_data_file(path, n_classes, scale)


# --------------------------------------------------------------------------- misc

def check_output_path(path, what="--save"):
    """Fail early (before any training) when ``path`` cannot be written."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{what} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{what} {path}: is a directory")
    if not os.access(directory, os.W_OK):
        raise CommandError(f"{what} {path}: directory {directory} is not writable")


def resolve_outputs(outputs, inputs=()):
    """The output paths given on the command line, each resolved once to an absolute path.

    ``outputs``: ``{option: path or None}``; ``inputs``: ``{option: path or None}`` of files
    that must survive.  Refused (one line, exit code 2): an output that is not a regular file
    (device node, fifo, directory...), in a missing or read-only directory, one that names the
    same file as another output or as an input.  Returns ``{option: absolute path or None}``.
    """
    resolved = {}
    for what, path in outputs.items():
        if path is None:
            resolved[what] = None
            continue
        check_output_path(path, what)
        resolved[what] = os.path.abspath(path)
        if os.path.exists(path) and not os.path.isfile(path):
            raise UsageError(f"{what} {path}: not a regular file (a device, fifo or socket); "
                             "loopnet writes only regular files")
    taken = [(what, p) for what, p in resolved.items() if p is not None]
    for i, (what, path) in enumerate(taken):
        for other, opath in taken[:i]:
            if _same_file(path, opath):
                raise UsageError(f"{other} and {what} name the same file ({path}); give "
                                 "each output its own file")
        for other, ipath in inputs.items():
            if ipath is not None and _same_file(path, ipath):
                raise UsageError(f"{what} {path} would overwrite the input {other} {ipath}; "
                                 "choose another file name")
    return resolved


def shown(path):
    """An absolute path as a user would type it here: relative when under the working directory."""
    rel = os.path.relpath(path)
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def _same_file(a, b):
    """True when paths ``a`` and ``b`` name one file (same real path, or same inode)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def set_threads(n):
    if n is None:
        return
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise UsageError(f"--threads {n}: at most {limit} here (set NUMBA_NUM_THREADS to "
                         "allow more)")
    numba.set_num_threads(n)


def confusion_matrix(y_true, y_pred, n_classes):
    import numpy as np
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def format_confusion(cm):
    n = cm.shape[0]
    width = max(4, len(str(int(cm.max()))) + 1)
    lines = ["confusion matrix (rows: true label, columns: predicted):",
             "      " + "".join(f"{j:>{width}d}" for j in range(n))]
    for i in range(n):
        lines.append(f"  {i:>3d} " + "".join(f"{int(v):>{width}d}" for v in cm[i]))
    return "\n".join(lines)


def epoch_line(r, total=None):
    """A saved history record as one line (``loopnet info``): reporting.epoch_line, where the
    data set evaluated after each epoch is called held-out."""
    return reporting.epoch_line(r, total, val_label="held-out")
