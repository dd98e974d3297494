"""Drop-in replacement for Michael Nielsen's ``mnist_loader.py``.

``load_data()`` and ``load_data_wrapper()`` return exactly the structures of
Nielsen's module (see their docstrings), so ``network.py``-style code runs
unchanged.  Two things are new:

* **Where the data comes from.**  Besides Nielsen's ``mnist.pkl.gz``, the
  standard IDX files of MNIST or Fashion-MNIST are read
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``).  The
  files are looked for, in this order, in

  1. the ``path`` argument (a directory, or the ``mnist.pkl.gz`` file itself),
  2. the directory named by the environment variable ``LOOPNET_DATA``,
  3. ``../data/mnist.pkl.gz`` (where Nielsen's code expects it),
  4. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).

  From IDX files, the last sixth of the training set (10,000 of 60,000
  images) becomes the validation set, as in Nielsen's MNIST split; pixels are
  scaled to float32 in [0, 1] like his pickle.

* **Safe pickle loading under Python 3.**  ``mnist.pkl.gz`` is a Python 2
  pickle; Python 3 needs ``encoding="latin1"`` to read it (the most reported
  failure of the original loader).  Pickle can run arbitrary code, so the
  file is read through an unpickler that only builds plain NumPy arrays,
  dtypes and tuples and refuses everything else.

* **Pairs the drop-ins read in place.**  In ``load_data_wrapper()``'s lists
  every x is a view of one row of its split's image matrix and every training
  y a view of one row of a one-hot matrix (the same values as Nielsen's
  separate arrays).  ``loopnet.network``/``network2`` recognise such pairs
  (:mod:`loopnet.pairs`), in any order, and train on the matrices themselves
  instead of stacking 50,000 small arrays.
"""

import gzip
import os
import pickle
import zlib

import numpy as np

from . import checks, pairs
from .idx import read_idx
from .limits import ENV as LIMIT_ENV
from .limits import declared_bytes, max_bytes, regular_file

__all__ = ["load_data", "load_data_wrapper", "vectorized_result", "find_data",
           "restricted_load", "DEBIAN_DIR"]

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
NIELSEN_PICKLE = os.path.join("..", "data", "mnist.pkl.gz")
PICKLE_NAMES = ("mnist.pkl.gz", "mnist.pkl")

HOW_TO_GET = (
    "Get the data with `apt install dataset-fashion-mnist` (Debian), or download the "
    "four IDX files of Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist) "
    "or MNIST (https://yann.lecun.com/exdb/mnist/), or Nielsen's mnist.pkl.gz "
    "(https://github.com/mnielsen/neural-networks-and-deep-learning/tree/master/data), "
    "into a directory and pass it as load_data(path) or set LOOPNET_DATA to it.")


# --------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------

def _safe_dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError("refusing to build an object dtype from a pickle")
    return dt


def _checked_shape(shape, dtype):
    """``shape`` if it is a tuple of integers ≥ 0 whose array fits under the size limit."""
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError("refusing array shape %r" % (shape,))
    n_bytes = declared_bytes(shape, dtype)
    if n_bytes > max_bytes():
        raise pickle.UnpicklingError(
            "refusing an array of shape %r (%d bytes): more than the limit of %d (set %s to "
            "allow more)" % (shape, n_bytes, max_bytes(), LIMIT_ENV))
    return shape


def _safe_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("refusing to build %r from a pickle" % (subtype,))
    dt = _safe_dtype(dtype)
    return np.ndarray.__new__(np.ndarray, _checked_shape(shape, dt), dt)


def _safe_frombuffer(buf, dtype, shape, order):
    dt = _safe_dtype(dtype)
    _checked_shape(shape, dt)
    return np.frombuffer(buf, dtype=dt).reshape(shape, order=order).copy()


def _safe_latin1_encode(text, encoding="latin1"):
    # Python 3 pickles ``bytes`` at protocol < 3 as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode(%s, %r)"
                                     % (type(text).__name__, encoding))
    return text.encode("latin1")


# (module, name) -> callable.  Nothing else can be looked up by the pickle.
_ALLOWED = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _safe_reconstruct
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _safe_frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = _safe_dtype
_ALLOWED[("_codecs", "encode")] = _safe_latin1_encode


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only NumPy arrays, dtypes, tuples and plain values."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                "refusing to load %s.%s: this file may only contain NumPy arrays "
                "(a pickle can run code, so anything else is rejected)"
                % (module, name)) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent id %r in the pickle" % (pid,))


class _CappedReader:
    """A binary stream that refuses to hand out more than ``limit`` bytes in all (so a small
    .gz cannot inflate without bound into the unpickler)."""

    def __init__(self, f, limit):
        self._f, self._left, self._limit = f, limit, limit

    def _take(self, data):
        self._left -= len(data)
        if self._left < 0:
            raise pickle.UnpicklingError(
                "the pickle inflates to more than the limit of %d bytes (set %s to allow "
                "more)" % (self._limit, LIMIT_ENV))
        return data

    def read(self, n=-1):
        n = self._left + 1 if n is None or n < 0 else min(n, self._left + 1)
        return self._take(self._f.read(n))

    def readline(self, size=-1):
        size = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        return self._take(self._f.readline(size))


def restricted_load(fileobj):
    """Unpickle ``fileobj`` (a binary file), allowing only NumPy arrays and tuples.

    Python 2 pickles are read with ``encoding="latin1"``, which is how NumPy
    arrays pickled by Python 2 come back intact.  Anything that would import
    another callable raises ``pickle.UnpicklingError``; so does an array, or a
    stream, larger than :func:`loopnet.limits.max_bytes` (``$LOOPNET_MAX_BYTES``).
    """
    return _RestrictedUnpickler(_CappedReader(fileobj, max_bytes()), encoding="latin1").load()


def _check_split(obj, filename):
    """Validate Nielsen's ((X, y), (X, y), (X, y)) structure."""
    bad = "%s does not hold Nielsen's ((images, labels), (images, labels), (images, labels))" \
        % filename
    if not isinstance(obj, tuple) or len(obj) != 3:
        raise ValueError(bad)
    out = []
    for part in obj:
        if not isinstance(part, tuple) or len(part) != 2:
            raise ValueError(bad)
        X, y = part
        if not (isinstance(X, np.ndarray) and isinstance(y, np.ndarray)) \
                or X.ndim != 2 or y.ndim != 1 or len(X) != len(y) \
                or X.dtype.kind != "f" or y.dtype.kind not in "iu":
            raise ValueError(bad + "; found other arrays")
        out.append((X, y))
    return tuple(out)


def _load_pickle(filename):
    try:
        regular_file(filename, "pickle file")
        opener = gzip.open if filename.endswith(".gz") else open
        with opener(filename, "rb") as f:
            obj = restricted_load(f)
    except pickle.UnpicklingError as e:
        raise ValueError("cannot read %s: %s" % (filename, e)) from None
    except (OSError, EOFError, zlib.error, ValueError, TypeError, IndexError,
            AttributeError, KeyError, OverflowError, MemoryError, RecursionError) as e:
        raise ValueError("cannot read %s (corrupt or truncated?): %s. %s"
                         % (filename, e, HOW_TO_GET)) from None
    return _check_split(obj, filename)


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

def _idx_file(directory, prefix, kind, idx):
    """Path of e.g. train-images-idx3-ubyte[.gz] (also the train-images.idx3-ubyte spelling)."""
    for sep in ("-", "."):
        for ext in (".gz", ""):
            p = os.path.join(directory, "%s-%s%s%s-ubyte%s" % (prefix, kind, sep, idx, ext))
            if os.path.isfile(p):
                return p
    return None


def _idx_set(directory):
    names = [("train", "images", "idx3"), ("train", "labels", "idx1"),
             ("t10k", "images", "idx3"), ("t10k", "labels", "idx1")]
    return [_idx_file(directory, *n) for n in names]


def _read_idx(filename):
    try:
        return np.asarray(read_idx(filename))
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise ValueError("cannot read %s (corrupt or truncated?): %s. %s"
                         % (filename, e, HOW_TO_GET)) from None


def _load_idx(directory):
    files = _idx_set(directory)
    tr_x, tr_y, te_x, te_y = [_read_idx(f) for f in files]
    for (xf, x), (yf, y) in (((files[0], tr_x), (files[1], tr_y)),
                             ((files[2], te_x), (files[3], te_y))):
        if x.ndim != 3 or x.dtype != np.uint8:
            raise ValueError("%s is not an IDX image file (uint8, n x rows x cols); got %s %s"
                             % (xf, x.dtype, x.shape))
        if y.ndim != 1:
            raise ValueError("%s is not an IDX label file (1-D); got shape %s" % (yf, y.shape))
        if len(x) != len(y):
            raise ValueError("%s has %d images but %s has %d labels"
                             % (xf, len(x), yf, len(y)))
    if tr_x.shape[1:] != te_x.shape[1:]:
        raise ValueError("training images are %s but test images are %s"
                         % (tr_x.shape[1:], te_x.shape[1:]))
    n_val = len(tr_x) // 6
    if n_val == 0:
        raise ValueError("%s has too few images (%d) to split off a validation set"
                         % (files[0], len(tr_x)))

    def images(x):
        return (x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0))

    def labels(y):
        return y.astype(np.int64)

    n_tr = len(tr_x) - n_val
    # Each split converted on its own: an array of its own (not a view of all 60,000), whose
    # rows load_data_wrapper's pairs can be views of.
    return ((images(tr_x[:n_tr]), labels(tr_y[:n_tr])), (images(tr_x[n_tr:]), labels(tr_y[n_tr:])),
            (images(te_x), labels(te_y)))


# --------------------------------------------------------------------------
# Locating the data
# --------------------------------------------------------------------------

def _source_in(path):
    """('pickle', file) or ('idx', dir) for a file or directory, or None."""
    if os.path.isfile(path):
        return ("pickle", path)
    if os.path.isdir(path):
        files = _idx_set(path)
        if all(files):
            return ("idx", path)
        for name in PICKLE_NAMES:
            p = os.path.join(path, name)
            if os.path.isfile(p):
                return ("pickle", p)
    return None


def _describe_missing(path):
    if not os.path.exists(path):
        return "%s does not exist" % path
    files = _idx_set(path)
    names = ["train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]",
             "t10k-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]"]
    missing = [n for n, f in zip(names, files) if f is None]
    return ("%s holds neither mnist.pkl.gz nor the IDX files (missing: %s)"
            % (path, ", ".join(missing)))


def find_data(path=None):
    """Return ``(kind, location)`` of the data that ``load_data(path)`` would read.

    ``kind`` is ``"pickle"`` (``location`` is Nielsen's ``mnist.pkl.gz``) or
    ``"idx"`` (``location`` is the directory of the four IDX files).
    Raises ``FileNotFoundError`` naming where it looked and how to get the data.
    """
    if path is not None:
        path = os.fspath(path)
        found = _source_in(path)
        if found is None:
            raise FileNotFoundError("no MNIST data: %s. %s" % (_describe_missing(path), HOW_TO_GET))
        return found
    env = os.environ.get("LOOPNET_DATA")
    if env:
        found = _source_in(env)
        if found is None:
            raise FileNotFoundError("no MNIST data in LOOPNET_DATA: %s. %s"
                                    % (_describe_missing(env), HOW_TO_GET))
        return found
    for candidate in (NIELSEN_PICKLE, DEBIAN_DIR):
        found = _source_in(candidate)
        if found is not None:
            return found
    raise FileNotFoundError(
        "no MNIST data found: looked in $LOOPNET_DATA (unset), %s and %s. %s"
        % (NIELSEN_PICKLE, DEBIAN_DIR, HOW_TO_GET))


# --------------------------------------------------------------------------
# Nielsen's API
# --------------------------------------------------------------------------

def load_data(path=None):
    """Return the data as ``(training_data, validation_data, test_data)``.

    As in Nielsen's module, each is a tuple ``(images, labels)``: ``images``
    a float32 array of shape (n, 784) with values in [0, 1], ``labels`` an
    int64 array of shape (n,).  With MNIST/Fashion-MNIST IDX files n is
    50,000 / 10,000 / 10,000.  ``path`` (new) is a directory or the
    ``mnist.pkl.gz`` file; see the module docstring for where it looks
    otherwise.
    """
    kind, location = find_data(path)
    if kind == "pickle":
        return _load_pickle(location)
    return _load_idx(location)


def load_data_wrapper(path=None):
    """Return ``(training_data, validation_data, test_data)`` in the format
    Nielsen's ``network.py`` / ``network2.py`` consume.

    ``training_data`` is a list of 2-tuples ``(x, y)``: ``x`` a (784, 1)
    array, ``y`` the (10, 1) one-hot vector of the label.  ``validation_data``
    and ``test_data`` are lists of ``(x, label)`` with an integer label.
    (Nielsen's Python 2 code returned ``zip`` objects, i.e. lists there; we
    return lists so that ``len()`` and ``random.shuffle`` work in Python 3.)
    """
    tr_d, va_d, te_d = load_data(path)
    n_in = tr_d[0].shape[1]
    X = _own_rows(tr_d[0])
    training_inputs = list(X.reshape(-1, n_in, 1))
    Y = _one_hot(tr_d[1])
    training_results = list(Y.reshape(-1, 10, 1))
    training_data = list(zip(training_inputs, training_results))
    _remember(training_data, X, Y)
    labelled = []
    for images, labels in (va_d, te_d):
        X = _own_rows(images)
        data = list(zip(list(X.reshape(-1, n_in, 1)), labels))
        _remember(data, X, np.asarray(labels, np.int64))
        labelled.append(data)
    return (training_data, labelled[0], labelled[1])


def _own_rows(images):
    """``images`` as a C-contiguous array that owns its data (a view is copied), whose rows
    the pairs' x will be views of."""
    if images.base is None and images.flags.c_contiguous:
        return images
    return np.array(images, order="C")


def _one_hot(labels):
    """(n, 10) float64: row i is vectorized_result(labels[i]) (IndexError for a label >= 10, as
    there)."""
    Y = np.zeros((len(labels), 10))
    Y[np.arange(len(labels)), labels] = 1.0
    return Y


def _remember(data, X, targets):
    """Let the drop-ins find ``data``'s pairs as rows of X and targets (loopnet.pairs),
    once :func:`loopnet.checks.check_finite` has found no NaN or infinity in X (and
    remembered it, so the core does not scan it again); a pickle's NaN is left to the
    drop-ins' conversion, which names the pair."""
    try:
        checks.check_finite(X, "images")
    except ValueError:
        return
    pairs.remember(data, X, targets)


def vectorized_result(j):
    """Return a 10-dimensional unit vector with a 1.0 in the j'th position
    and zeroes elsewhere (Nielsen's helper)."""
    e = np.zeros((10, 1))
    e[j] = 1.0
    return e
