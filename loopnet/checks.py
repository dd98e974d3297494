"""Every argument and array check of loopnet, and its name vocabularies, in one place.

The API (:mod:`loopnet.net`), the drop-ins (:mod:`loopnet.network`,
:mod:`loopnet.sklearn`), the model files (:mod:`loopnet.io`), MPI training
(:mod:`loopnet.distributed`) and the command line all call these, so the same
mistake gets the same error everywhere:

* a value of the wrong kind (``2.5`` where a count is needed, ``"a"`` where a
  number is) raises :class:`ArgumentTypeError`, which is both a ``TypeError``
  and a ``ValueError``, so code catching either sees it;
* a value of the right kind outside its range raises ``ValueError``;
* an array that is not numeric raises ``TypeError``; an array of the wrong
  shape, or holding NaN/inf, raises ``ValueError``.

This module imports only NumPy: it sits on the lowest floor.
"""

import math
import weakref
from numbers import Integral, Real

import numpy as np

#: σ of the hidden layers (``activations.HIDDEN_NAMES``).
ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")
#: σ of the output layer L (``activations.NAMES``).
OUTPUTS = ACTIVATIONS + ("softmax",)
#: C_x (``costs.NAMES``).
COSTS = ("quadratic", "cross_entropy", "log_likelihood", "mse")
#: Parameter updates (``optim.NAMES``).
OPTIMIZERS = ("sgd", "adam")
#: Floating-point types a network computes in.
DTYPES = ("float64", "float32")
#: Initial weight distributions of ``Net(init=...)``.
INITS = ("default", "large")


class ArgumentTypeError(TypeError, ValueError):
    """A value of the wrong kind: both a ``TypeError`` and a ``ValueError``."""


# ----------------------------------------------------------------- scalars
def is_int(value):
    """True for an integer that is not a bool (Python or NumPy)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(value, name, minimum):
    """``value`` as an int ≥ ``minimum``."""
    if not is_int(value):
        raise ArgumentTypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(value, name, minimum=None, below=None, strict=False):
    """``value`` as a finite float with ``minimum`` ≤ value (< when ``strict``) and value < ``below``."""
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    if below is not None and value >= below:
        raise ValueError(f"{name} must be < {below}, got {value}")
    return value


def check_choice(value, name, choices):
    """``value`` if it is one of ``choices`` (names such as :data:`ACTIVATIONS`)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_sizes(sizes, name="sizes"):
    """Layer widths [n_0, …, n_L]: a list of at least two positive integers."""
    if isinstance(sizes, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be a list of layer widths like [784, 30, 10], "
                                f"not {sizes!r}")
    try:
        sizes = list(sizes)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be a list of layer widths like [784, 30, 10], "
                                f"not {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"{name} needs at least an input and an output layer, got {sizes}")
    for s in sizes:
        if not is_int(s) or s < 1:
            raise ValueError(f"every layer size in {name} must be a positive integer, got {sizes}")
    return [int(s) for s in sizes]


def check_dtype(dtype, name="dtype"):
    """``dtype`` ("float64", "float32", np.float32, np.dtype(...)) as a NumPy dtype of :data:`DTYPES`."""
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES or dt.byteorder not in "=|":
        raise ValueError(f"{name} must be 'float64' or 'float32', not {dtype!r}")
    return dt


def n_params(sizes):
    """P = Σ_l (n_l n_{l−1} + n_l): weights and biases of every layer."""
    return sum(a * b + a for b, a in zip(sizes[:-1], sizes[1:]))


# ------------------------------------------------------------------ arrays
def as_float_array(A, name):
    """A as an ndarray of real numbers (any int/float dtype); TypeError otherwise."""
    try:
        A = np.asarray(A)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} is not a numeric array ({exc})") from None
    if A.dtype.kind == "b" or A.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {A.dtype}")
    return A


#: Arrays at least this big that passed check_finite are remembered, not scanned again.
REMEMBER_BYTES = 1 << 20
_checked = {}   # id(array) -> (weak reference, (data address, shape, strides, dtype))


def check_finite(A, name):
    """ValueError naming the first row holding NaN or ±inf.

    An array of REMEMBER_BYTES or more that passed is remembered (by a weak
    reference, with its buffer's address, shape, strides and dtype) and not
    scanned again while it is the same object over the same buffer: a loop
    of ``fit(X, Y, epochs=1)`` calls reads X once for NaN, not once per call.
    Values written into it after the check are not re-checked; in training,
    a NaN written in later surfaces as a DivergenceError at the next run.
    """
    if _was_checked(A):
        return
    if np.isfinite(A.sum(axis=0)).all():   # a NaN or inf makes its column's sum non-finite;
        remember_finite(A)                  # one pass, no temporary the size of A
        return
    if not np.all(np.isfinite(A)):          # (or finite numbers overflowed: look closer)
        row = int(np.argwhere(~np.isfinite(A))[0][0])
        raise ValueError(f"{name} contains NaN or infinity (first in row {row})")
    remember_finite(A)


def _layout(A):
    return A.__array_interface__["data"][0], A.shape, A.strides, A.dtype.str


def _was_checked(A):
    entry = _checked.get(id(A))
    return entry is not None and entry[0]() is A and entry[1] == _layout(A)


def remember_finite(A):
    """Record that ``A`` holds no NaN or ±inf (check_finite, or a caller that scanned it to
    name the culprit in its own words), so that :func:`check_finite` does not scan it
    again; arrays under REMEMBER_BYTES are not worth remembering."""
    if not isinstance(A, np.ndarray) or A.nbytes < REMEMBER_BYTES:
        return
    key = id(A)
    _checked[key] = (weakref.ref(A, lambda _, key=key: _checked.pop(key, None)), _layout(A))


def cast_finite(A, dtype, name):
    """A as a C-contiguous array of ``dtype``; ValueError when a value overflows that type.

    (float64 numbers beyond float32's range would otherwise become ±inf, then NaN.)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(A, dtype=dtype)
    if out.dtype != np.asarray(A).dtype and out.dtype.kind == "f":
        if not np.isfinite(out.sum(axis=None if out.ndim < 2 else 0)).all() and \
                not np.all(np.isfinite(out)):
            row = int(np.argwhere(~np.isfinite(out).reshape(out.shape[0], -1))[0][0])
            limit = float(np.finfo(dtype).max)
            raise ValueError(f"{name} holds values beyond the range of {np.dtype(dtype).name} "
                             f"(|x| > {limit:.4g}; first in row {row}); scale the inputs or "
                             f"use a float64 network")
    return out


def check_rows(X, n_inputs, name="X"):
    """X as a finite, non-empty (m, n_inputs) array (not yet converted to a dtype)."""
    X = as_float_array(X, name)
    if X.ndim == 1 and X.shape[0] == n_inputs:
        raise ValueError(f"{name} must be 2-D (m, {n_inputs}): one example per row; "
                         f"for a single example use {name}.reshape(1, -1)")
    if X.ndim != 2 or X.shape[1] != n_inputs:
        raise ValueError(f"{name} has shape {X.shape}; this network takes "
                         f"(m, {n_inputs}) inputs, one example per row")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    check_finite(X, name)
    return X


def check_labels(labels, m, n_out, name="labels"):
    """Integer class labels 0 … n_out − 1 as int64 (one-hot rows are turned into labels)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == n_out:
        labels = np.argmax(labels, axis=1)
    if labels.ndim != 1 or labels.shape[0] != m:
        raise ValueError(f"{name} has shape {labels.shape}; expected {m} integer labels")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and \
            np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class labels, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= n_out))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {labels[bad[0]]} is out of range: this "
                         f"network has {n_out} outputs, so labels are 0..{n_out - 1}")
    return labels.astype(np.int64)


def one_hot(labels, n_classes):
    """Rows e_y: a (len(labels), n_classes) float64 array with a 1 at each label."""
    labels = np.asarray(labels)
    Y = np.zeros((labels.shape[0], n_classes))
    Y[np.arange(labels.shape[0]), labels] = 1.0
    return Y


def check_targets(Y, m, n_out, name="Y"):
    """Y as finite (m, n_out) targets; 1-D integer labels become one-hot rows."""
    Y = np.asarray(Y)
    if Y.ndim == 1 and n_out > 1:
        Y = one_hot(check_labels(Y, m, n_out, name), n_out)
    elif Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    Y = as_float_array(Y, name)
    if Y.shape != (m, n_out):
        raise ValueError(f"{name} has shape {Y.shape}; expected ({m}, {n_out}) targets "
                         f"(one row per example) or {m} integer labels")
    check_finite(Y, name)
    return Y


def is_one_hot(Y):
    """True when every row of the 2-D array Y is a unit vector e_j (all 0 but one 1)."""
    Y = np.asarray(Y)
    return bool(np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1))


def labels_or_none(Y):
    """Class labels of one-hot (m, n_out ≥ 2) targets, for accuracy; None for other targets."""
    if Y.shape[1] < 2:
        return None
    return np.argmax(Y, axis=1) if is_one_hot(Y) else None


def check_order(order, n):
    """A 1-D int64 array of row indices 0 … n − 1 (an epoch's visiting order)."""
    order = np.asarray(order)
    if order.ndim != 1 or order.dtype.kind not in "iu":
        raise ValueError("order must be a 1-D array of integer row indices")
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order holds indices outside 0..{n - 1}")
    return np.ascontiguousarray(order, dtype=np.int64)


def check_pair(data, name="validation_data"):
    """``data`` as a pair (X, Y)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (X_val, Y_val)")
    return data[0], data[1]


def looks_like_pickle(head):
    """True when the first bytes of a file are a pickle header (protocol 2-5): never load those."""
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def check_sample_weight(weight, m, name="sample_weight"):
    """Per-example weights w_x as a float64 (m,) array: finite, ≥ 0, not all zero."""
    try:
        w = np.asarray(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{name} must be an array of numbers") from None
    if w.ndim != 1 or w.shape[0] != m:
        raise ValueError(f"{name} must hold one weight per example: expected shape ({m},), "
                         f"got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if (w < 0).any():
        raise ValueError(f"{name} holds negative weights (e.g. {w[w < 0][0]:g})")
    if not (w > 0).any():
        raise ValueError(f"{name} is all zero: no example would count")
    return np.ascontiguousarray(w)


def check_dropout(dropout, n_hidden, name="dropout"):
    """Dropout probabilities p of the hidden layers: one p for all, or one per hidden layer,
    each in [0, 1)."""
    ps = [dropout] * n_hidden if not isinstance(dropout, (list, tuple, np.ndarray)) else list(dropout)
    if len(ps) != n_hidden:
        raise ValueError(f"{name} must be one probability or one per hidden layer "
                         f"({n_hidden}), got {len(ps)}")
    return [check_real(p, name, minimum=0.0, below=1.0) for p in ps]
