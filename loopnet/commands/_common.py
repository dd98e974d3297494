"""Pieces shared by the subcommands: argument types, data options, errors, formatting.

Nothing here imports the compiled core at module level, so ``loopnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os

ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")
OUTPUTS = ACTIVATIONS + ("softmax",)
COSTS = ("quadratic", "cross_entropy", "log_likelihood", "mse")
DTYPES = ("float64", "float32")
OPTIMIZERS = ("sgd", "adam")
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


def sizes_list(text):
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 784,30,10, got {text!r}") from None
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"need at least two positive layer sizes (input,...,output), got {text!r}")
    return sizes


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
                   help="fraction of a single-file dataset held out for evaluation "
                        "(default 0.2; ignored when a test set exists)")
    if limit:
        g.add_argument("--limit", metavar="N", type=positive_int, default=None,
                       help="use only the first N training examples (quick runs)")


def data_spec(args, saved=None):
    """The data options as a JSON-able dict; unset ones fall back to ``saved`` (a model's)."""
    saved = saved or {}
    spec = {}
    for key in ("dataset", "data", "test", "holdout", "limit"):
        value = getattr(args, key, None)
        spec[key] = value if value is not None else saved.get(key)
    return spec


def spec_to_save(spec):
    """The spec with absolute paths, so a resumed run finds its data from any directory."""
    out = dict(spec)
    for key in ("data", "test"):
        if out.get(key):
            out[key] = os.path.abspath(out[key])
    return out


def load_data(spec, n_classes=None):
    """Load the dataset a spec describes -> :class:`loopnet.datafiles.Dataset`."""
    import numpy as np

    from .. import datafiles as df

    name, data, test = spec.get("dataset"), spec.get("data"), spec.get("test")
    holdout = spec.get("holdout") or 0.2
    if name is None:
        name = "digits" if data is None else None
    if name == "digits":
        if data is not None:
            raise UsageError("--data cannot be used with --dataset digits (it is embedded)")
        from ..data import digits_split
        (Xtr, ytr), (Xte, yte) = digits_split(seed=0)
        ds = df.Dataset("digits", Xtr, ytr, Xte, yte, "embedded UCI digits", n_classes=10)
    elif name in df.IDX_DATASETS:
        if data is not None and os.path.isfile(data):
            raise UsageError(f"--dataset {name} needs --data to be a directory of IDX files")
        directory = df.locate_dataset(name, data)
        ds = _idx_dataset(name, directory)
    else:   # --data without --dataset
        if os.path.isdir(data):
            if not df.find_idx_files(data, "train"):
                raise df.DataError(f"{data}: no train-images-idx3-ubyte[.gz] and "
                                   "train-labels-idx1-ubyte[.gz] here")
            ds = _idx_dataset("idx", data)
        elif not os.path.exists(data):
            raise df.DataError(f"{data}: no such file or directory")
        else:
            train = read_single(data, n_classes)
            if test is not None:
                tst = read_single(test, n_classes)
                test_xy = tst.get("test") or tst["train"]
            else:
                test_xy = train.get("test")
            Xtr, ytr = train["train"]
            if test_xy is None:     # hold out a seeded fraction
                n = len(ytr)
                n_test = max(1, int(round(holdout * n)))
                if n - n_test < 1:
                    raise df.DataError(f"{data}: only {n} example(s); too few to hold some out "
                                       "(pass --test FILE)")
                order = np.random.default_rng(0).permutation(n)
                Xte, yte = Xtr[order[:n_test]], ytr[order[:n_test]]
                Xtr, ytr = Xtr[order[n_test:]], ytr[order[n_test:]]
            else:
                Xte, yte = test_xy
                if Xte.shape[1] != Xtr.shape[1]:
                    raise df.DataError(f"{test}: rows have {Xte.shape[1]} inputs, the training "
                                       f"data has {Xtr.shape[1]}")
            ds = df.Dataset(os.path.basename(data), Xtr, ytr, Xte, yte, data)
    if spec.get("limit"):
        ds.X_train, ds.y_train = ds.X_train[:spec["limit"]], ds.y_train[:spec["limit"]]
    if n_classes is not None:
        ds.n_classes = n_classes
        for y, what in ((ds.y_train, "training"), (ds.y_test, "held-out")):
            if len(y) and int(y.max()) >= n_classes:
                raise df.DataError(f"{ds.source}: {what} label {int(y.max())} out of range for "
                                   f"a network with {n_classes} outputs (0..{n_classes - 1})")
    return ds


def _idx_dataset(name, directory):
    from .. import datafiles as df
    tr = df.find_idx_files(directory, "train")
    te = df.find_idx_files(directory, "t10k")
    Xtr, ytr = df.load_idx_split(*tr)
    if te:
        Xte, yte = df.load_idx_split(*te)
        if Xte.shape[1] != Xtr.shape[1]:
            raise df.DataError(f"{te[0]}: images have {Xte.shape[1]} pixels, the training "
                               f"images {Xtr.shape[1]}")
    else:
        raise df.DataError(f"{directory}: no t10k-images/t10k-labels IDX files (held-out set)")
    return df.Dataset(name, Xtr, ytr, Xte, yte, directory)


def read_single(path, n_classes):
    from .. import datafiles as df
    low = path.lower()
    if low.endswith(".csv") or low.endswith(".txt"):
        return {"train": df.load_csv(path, n_classes)}
    if low.endswith(".npz"):
        return df.load_npz(path)
    raise df.DataError(f"{path}: unknown data file type (expected a directory of IDX files, "
                       "a .csv or a .npz)")


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


def set_threads(n):
    if n is None:
        return
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise UsageError(f"--threads {n}: at most {limit} here (set NUMBA_NUM_THREADS to "
                         "allow more)")
    numba.set_num_threads(n)


def percent(x):
    return "   n/a" if x is None else f"{100.0 * x:6.2f}%"


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
