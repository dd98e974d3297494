"""Drop-in replacement for Michael Nielsen's ``network.py`` (chapter 1 of
*Neural Networks and Deep Learning*), trained by loopnet's compiled kernels.

Change ``import network`` to ``from loopnet import network`` and the rest of
the program runs unchanged: the same class, attributes, methods and printed
lines, and, with the same seeds, the same numbers.

How "the same numbers" is achieved:

* ``Network(sizes)`` draws ``np.random.randn(y, 1)`` for every bias vector
  and then ``np.random.randn(y, x)`` for every weight matrix, the calls of
  the original, so ``numpy.random.seed(s)`` gives the same initial network.
* ``SGD`` shuffles ``range(len(training_data))`` once per epoch with
  Python's ``random.shuffle`` algorithm on its global generator (compiled:
  :mod:`loopnet.pyrandom`, the same draws and the same state afterwards),
  which draws exactly the random numbers that
  ``random.shuffle(training_data)`` draws; the resulting permutation is
  applied to the caller's list (Nielsen's code shuffles it in place) and
  handed to the compiled trainer as that epoch's example order
  (``loopnet.Net.fit(..., order=...)``).  Mini-batches are consecutive runs
  of ``mini_batch_size`` examples of that order, the last one possibly
  shorter, exactly as in the original.
* The arithmetic is rounded differently (SIMD partial sums inside each dot
  product, fused multiply-adds), so weights agree with Nielsen's to
  floating-point rounding (about 1e-15 per step), not bit for bit.

What is different: training data may be any iterable of ``(x, y)`` pairs
(a Python 3 ``zip`` object included), inputs may be (n, 1) columns or 1-D
vectors, and wrong shapes raise ``ValueError`` naming the offending example
and the expected shape instead of a NumPy broadcasting traceback.

If you subclass ``Network`` and override ``update_mini_batch``, ``backprop``
or ``cost_derivative``, ``SGD`` honours your method: it then runs Nielsen's
per-mini-batch loop in Python (slow, like the original).
"""

import math
import numbers
import operator
import random
import sys
import time
import warnings

import numba
import numpy as np

from . import checks, engine, layout, pairs, training
from ._jit import jit, jit_sums
from .kernels import forward_layer, hidden_delta, output_delta
from .net import Net, warmup
from .pyrandom import shuffled_range

__all__ = ["Network", "sigmoid", "sigmoid_prime"]


# ---------------------------------------------------------------------------
# Helpers shared with loopnet.network2
# ---------------------------------------------------------------------------

# One set of checks for the whole package (loopnet.checks): the same mistake, the same error.
_check_sizes, _check_int, _check_real = checks.check_sizes, checks.check_int, checks.check_real


def _materialize(data, name):
    """A list of (x, y) pairs from any iterable, and whether it is the caller's list."""
    if data is None:
        return None, False
    if isinstance(data, list):
        return data, True
    if isinstance(data, np.ndarray):
        raise TypeError("%s must be a list of (x, y) pairs, not a NumPy array" % name)
    try:
        return list(data), False
    except TypeError:
        raise TypeError("%s must be a list (or iterable) of (x, y) pairs, got %s"
                        % (name, type(data).__name__)) from None


def _pairs(data, name):
    """([x], [y]) of a list of (x, y) pairs; ValueError naming the first that is not a pair."""
    try:
        return [x for x, _ in data], [y for _, y in data]
    except (TypeError, ValueError):
        pass                            # find the culprit, and say which it is
    xs, ys = [], []
    for i, pair in enumerate(data):
        try:
            x, y = pair
        except (TypeError, ValueError):
            raise ValueError("%s[%d] must be a pair (x, y), got %s"
                             % (name, i, _describe(pair))) from None
        xs.append(x)
        ys.append(y)
    return xs, ys


class _Column(object):
    """Item k of every pair of ``data`` (a list of tuples), as a sequence, without building
    the list (which costs a pass over 50,000 pairs that the fast paths do not need)."""

    __slots__ = ("data", "k")

    def __init__(self, data, k):
        self.data, self.k = data, k

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i][self.k]

    def __iter__(self):
        return map(operator.itemgetter(self.k), self.data)


def _describe(v):
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            return "an array of shape %s and dtype %s (not real numbers)" % (v.shape, v.dtype)
        return "an array of shape %s" % (v.shape,)
    if isinstance(v, (numbers.Number, np.generic)):
        return "the number %r" % (v,)
    return "a %s" % type(v).__name__


def _stack_columns(vs, n, name, role, hint="", inputs=False, ids=None):
    """(len(vs), n) float64 matrix from (n, 1) or (n,) arrays; ValueError naming a bad one.
    With ``inputs``, float32 arrays give a float32 matrix (see Net._inputs).  ``ids``: the
    arrays' ids, if known (then float64 arrays are gathered at once: :func:`_gathered`)."""
    if len(vs) == 0:
        return np.zeros((0, n))
    A = None if ids is None else _gathered(vs, n, ids)
    if A is not None:
        return _finite_rows(A, name, role)
    vs = vs if isinstance(vs, list) else list(vs)       # (a _Column, say)
    try:
        # NumPy finds the common dtype: float32 inputs (load_data_wrapper()'s) stay float32,
        # which the core reads exactly under its float64 weights (Net._inputs) at half the
        # memory of a float64 copy; anything else becomes float64.
        A = np.array(vs)
        if A.dtype.kind not in "biuf":
            A = None                    # (strings, objects, complex: named below)
        elif not (inputs and A.dtype == np.float32):
            A = A.astype(np.float64, copy=False)
    except (ValueError, TypeError):
        A = None
    ok = A is not None and len(vs) == (A.shape[0] if A.ndim else -1) and (
        (A.ndim == 2 and A.shape[1] == n) or (A.ndim == 3 and A.shape[1:] == (n, 1)))
    if ok:
        return _finite_rows(A.reshape(len(vs), n), name, role)
    for i, v in enumerate(vs):
        a = np.asarray(v) if isinstance(v, (np.ndarray, list, tuple, numbers.Number,
                                            np.generic)) else None
        good = (a is not None and a.dtype.kind in "biuf"
                and a.shape in ((n, 1), (n,)))
        if not good:
            raise ValueError("%s[%d][%d] is %s, but %s must be a (%d, 1) array%s"
                             % (name, i, 0 if role.startswith("input") else 1,
                                _describe(v), role, n, hint))
    raise ValueError("%s: could not convert the %ss to numbers" % (name, role))


def _finite_rows(A, name, role):
    """A, once no row of it holds NaN or infinity (ValueError naming the first pair that does)."""
    # Row sums are finite unless a row holds NaN/inf (or overflows: re-checked here).
    suspect = np.flatnonzero(~np.isfinite(A.sum(axis=1)))
    bad = [i for i in suspect if not np.isfinite(A[i]).all()]
    if bad:
        raise ValueError("%s[%d][%d] contains NaN or infinity"
                         % (name, int(bad[0]), 0 if role.startswith("input") else 1))
    checks.remember_finite(A)           # the core's own check need not scan it again
    return A


def _column_fields(vs, n, ids):
    """:class:`loopnet.layout.ArrayFields` of the arrays ``vs`` (whose ids are ``ids``) when
    every one is a C-contiguous ndarray of shape (n, 1) or (n,), read at once from their
    objects and confirmed by three of them asked directly; else None."""
    f = layout.array_fields(ids)
    if f is None or (f.dim0 != n).any() or (f.dim1 != f.ndim - 1).any() \
            or not f.c_contiguous.all() \
            or not all(layout.agrees(f, vs, i) for i in {0, len(vs) // 2, len(vs) - 1}):
        return None
    return f


def _gathered(vs, n, ids):
    """The float64 (len(vs), n) copy of ``vs``, read at once from where each array keeps its
    values (:mod:`loopnet.layout`), when every one is a C-contiguous float64 ndarray of shape
    (n, 1), or every one of shape (n,); else None.  (np.array of 50,000 small arrays spends
    0.4 us on each.)"""
    f = _column_fields(vs, n, ids)
    if f is None or (f.ndim != f.ndim[0]).any() or (f.data & 7).any():
        return None
    first = [0] if (f.descr == f.descr[0]).all() else np.unique(f.descr, return_index=True)[1]
    if any(vs[i].dtype != np.float64 for i in first):
        return None
    return layout.gather(f.data, n, np.float64)


#: Lists shorter than this are copied (a copy of a few rows costs less than the checks below).
SHARED_ROWS_MIN = 1000


def _rows_of_one_matrix(xs, n, x_ids):
    """``(M, rows)`` when every x is row ``rows[i]`` of one matrix M, read in place; else None.

    Nielsen's mnist_loader makes each x as ``np.reshape(row, (784, 1))`` of its image
    matrix: a view of it.  Copying 50,000 such views into a new matrix costs about as much as
    the epoch's arithmetic (157 MB allocated and written, for every new list); here the
    matrix itself is used, when M is a C-contiguous float32/float64 (N, n) array, finite,
    every x is a C-contiguous (n, 1) or (n,) ndarray view of M of its dtype starting at a
    row, no row is used twice, and the list covers at least half of M's rows.  What each x
    is comes from its object's fields, read all at once (:mod:`loopnet.layout`; ``x_ids``
    are the x's ids), and checked against three of the x's own answers.
    """
    if len(xs) < SHARED_ROWS_MIN:
        return None
    M = getattr(xs[0], "base", None)
    if type(M) is not np.ndarray or M.ndim != 2 or M.shape[1] != n or 2 * len(xs) < M.shape[0] \
            or M.dtype.type not in _FLOAT_TYPES or not M.flags.c_contiguous:
        return None
    f = _column_fields(xs, n, x_ids)
    if f is None or (f.base != id(M)).any() or (f.descr != id(M.dtype)).any():
        return None
    rows, partial = np.divmod(f.data - M.__array_interface__["data"][0], M.strides[0])
    if partial.any() or rows.min() < 0 or rows.max() >= M.shape[0] \
            or np.bincount(rows, minlength=M.shape[0]).max() > 1:
        return None
    try:
        checks.check_finite(M, "the x's matrix")    # (scanned once, then remembered)
    except ValueError:
        return None                         # the copy names the pair holding NaN or inf
    return M, rows


def _spread(T, rows, n_rows):
    """T's entry i at row rows[i] of an n_rows array (the rows of a shared input matrix)."""
    make = np.empty if len(rows) == n_rows else np.zeros     # (rows are distinct)
    out = make((n_rows,) + T.shape[1:], T.dtype)
    out[rows] = T
    return out


def _stack_labels(vs, n_out, name, hint=""):
    """1-D array of numeric labels; ValueError if some y is a vector."""
    vs = vs if isinstance(vs, list) else list(vs)       # (a _Column, say)
    try:
        L = np.array(vs)
    except (ValueError, TypeError):
        L = None
    if L is not None and L.ndim == 1 and L.dtype.kind in "biuf":
        return L
    for i, v in enumerate(vs):
        if not (isinstance(v, (numbers.Real, np.integer, np.floating))
                or (isinstance(v, np.ndarray) and v.ndim == 0)):
            raise ValueError("%s[%d][1] is %s, but here y must be an integer label "
                             "(0 to %d)%s" % (name, i, _describe(v), n_out - 1, hint))
    raise ValueError("%s: the labels must be numbers" % name)


# ---------------------------------------------------------------------------
# Overrides: what the user replaced, so that it is honoured
# ---------------------------------------------------------------------------

_warned = set()


def _warn_once(what, where):
    """One warning per replaced piece and process, naming it."""
    if what in _warned:
        return
    _warned.add(what)
    warnings.warn("loopnet: %s, so %s (and whatever else uses it) runs Nielsen's "
                  "plain Python code, as slow as his original" % (what, where),
                  _ReplacedWarning, stacklevel=4)


class _ReplacedWarning(UserWarning):
    """A piece of Nielsen's code was replaced and now runs in plain Python."""


def _replaced(obj, names, where):
    """The pieces among ``names`` that ``obj``'s user replaced, warning once for each.

    A name is a method (replaced on the instance, on the class or by a
    subclass), a module function of the drop-in (``"sigmoid"``: e.g.
    ``network.sigmoid = f``), or ``"cost.delta"`` / ``"cost.fn"`` (a cost class
    other than the two built-in ones, or one of their methods replaced).
    """
    out = []
    for name in names:
        what = obj._replacement(name)
        if what is not None:
            _warn_once(what, where)
            out.append(name)
    return out


_MODULE_FUNCTIONS = ("sigmoid", "sigmoid_prime", "vectorized_result")


# ---------------------------------------------------------------------------
# The compiled per-example gradient (BP1-BP4 with the textbook kernels)
# ---------------------------------------------------------------------------

@jit
def _backprop_example(ws, bs, layout, x, y, scratch, gws, gbs):
    """gws[l] = dC_x/dw^l and gbs[l] = dC_x/db^l for one example x (every entry written;
    shaped as ws and bs); returns whether every z^l_j was finite.

    Forward z^l = w^l a^{l-1} + b^l, a^l = sigma(z^l); BP1 delta^L; BP2 delta^l from
    delta^{l+1}; BP3/BP4 dC/db^l = delta^l, dC/dw^l_jk = delta^l_j a^{l-1}_k: the
    kernels of :mod:`loopnet.kernels`, for one example, serially (a few
    microseconds of work, not worth waking other threads: most of it is reading
    w and writing the gradient, ~50 GB/s from L2 on the 2-core EPYC).  ``ws`` and
    ``bs`` are tuples of w^l (n_l, n_{l-1}) and b^l (n_l, 1), read where they are (the
    core's views, or the arrays a subclass's update just made: no copy).  x may be
    float32 (read in place) or float64; y float64.  ``layout`` is :func:`_layout`;
    ``scratch`` holds z, a and delta of every layer, one row each.

    The finiteness of z costs nothing here and stands for the check of every weight: a NaN
    or infinite w_jk or b_j makes z_j NaN or infinite whatever the (finite) a_k.
    """
    n_layers, act, out_act, cost = layout[0], layout[1], layout[2], layout[3]
    sizes = layout[4:5 + n_layers]
    u_off = layout[5 + n_layers:6 + 2 * n_layers]
    z, a, delta = scratch[0], scratch[1], scratch[2]
    finite = True
    for i in range(n_layers):
        n = sizes[i + 1]
        w, b = ws[i], bs[i].reshape(n)
        act_i = act if i < n_layers - 1 else out_act
        if i == 0:       # a^0 = x, in the caller's dtype (float32 x: exact products in float64)
            forward_layer(z[:u_off[1]], a[:u_off[1]], w, b, x, act_i)
        else:
            forward_layer(z[u_off[i]:u_off[i + 1]], a[u_off[i]:u_off[i + 1]], w, b,
                          a[u_off[i - 1]:u_off[i]], act_i)
        for j in range(u_off[i], u_off[i + 1]):
            finite = finite and math.isfinite(z[j])
    last = n_layers - 1
    output_delta(delta[u_off[last]:u_off[last + 1]], z[u_off[last]:u_off[last + 1]],
                 a[u_off[last]:u_off[last + 1]], y, out_act, cost)
    for i in range(n_layers - 1, -1, -1):
        n, m = sizes[i + 1], sizes[i]
        if i < n_layers - 1:
            hidden_delta(delta[u_off[i]:u_off[i + 1]], z[u_off[i]:u_off[i + 1]],
                         a[u_off[i]:u_off[i + 1]], ws[i + 1], delta[u_off[i + 1]:u_off[i + 2]], act)
        nabla_w, nabla_b = gws[i], gbs[i].reshape(n)
        if i == 0:
            gradient_of_example(nabla_w, nabla_b, delta[:u_off[1]], x)
        else:
            gradient_of_example(nabla_w, nabla_b, delta[u_off[i]:u_off[i + 1]],
                                a[u_off[i - 1]:u_off[i]])
    return finite


@jit_sums
def _finite_sum(v):
    """Whether Σ_i (v_i − v_i) = 0: true when every v_i is finite (each term is then 0; an
    infinity or NaN makes it NaN).  One vectorised pass; LLVM may reassociate the sum into
    Σ v_i − Σ v_i, which can overflow for huge finite values: a False is confirmed by the
    caller's exact scan."""
    s = 0.0
    for i in range(v.shape[0]):
        s += v[i] - v[i]
    return s == 0.0


@jit
def gradient_of_example(nabla_w, nabla_b, delta, a_prev):
    """BP3 and BP4 of ONE example, stored (not added: the caller's buffer need not be zeroed).

    .. math::  \\frac{\\partial C_x}{\\partial b_j} = \\delta_j, \\qquad
               \\frac{\\partial C_x}{\\partial w_{jk}} = \\delta_j a^{prev}_k

    The same products as :func:`loopnet.kernels.accumulate_gradient` adds to a
    zero sum, so the same numbers bit for bit.
    """
    n_l, n_prev = nabla_w.shape
    for j in range(n_l):
        d = delta[j]
        nabla_b[j] = d
        for k in range(n_prev):
            nabla_w[j, k] = d * a_prev[k]


def _layout(arch):
    """The network's shape in one int64 array for :func:`_backprop_example`:
    [L, act, out_act, cost, sizes (L+1), u_off (L+1)]."""
    L = len(arch.sizes) - 1
    return np.concatenate([[L, arch.act, arch.out_act, arch.cost], arch.sizes,
                           arch.u_off]).astype(np.int64)


# ---------------------------------------------------------------------------
# The core network whose buffer holds self.weights / self.biases
# ---------------------------------------------------------------------------

class _Core(object):
    """A loopnet.Net plus the view lists handed to the user as weights/biases."""

    __slots__ = ("net", "sizes", "cost", "wlist", "blist", "wviews", "bviews", "wtuple", "btuple",
                 "layout", "scratch", "chooser", "weight_spans", "bias_spans", "w_shapes",
                 "b_shapes", "x_shapes", "y_shapes")


#: What x may be for the kernel to read it in place (y: float64).
_FLOAT_TYPES = (np.float64, np.float32)


def _layer_spans(sizes):
    """[(slice, (n, m)) of each w^l], [(slice, (n, 1)) of each b^l] in the flat buffer."""
    ws, bs, start = [], [], 0
    for m, n in zip(sizes[:-1], sizes[1:]):
        ws.append((slice(start, start + n * m), (n, m)))
        bs.append((slice(start + n * m, start + n * m + n), (n, 1)))
        start += n * m + n
    return ws, bs


def _views(buffer, spans):
    """Nielsen-shaped views into a flat buffer, one per (slice, shape) of ``spans``
    (:func:`_layer_spans`): w^l as (n, m), b^l as (n, 1) columns."""
    return [buffer[s].reshape(shape) for s, shape in spans]


def _readable_in_place(array, like):
    """Whether ``array`` can stand where ``like`` (a view of the core) is read: a float64
    ndarray of the same shape and strides, so C-contiguous as ``like`` is (comparing the
    strides tuple costs less than building ``flags``; a C-contiguous array with other
    strides on a dimension of length 1 is copied in instead, by :meth:`_net`)."""
    return type(array) is np.ndarray and array.dtype.type is np.float64 \
        and array.shape == like.shape and array.strides == like.strides


def _refuse_non_finite(parameters, x):
    """After a kernel saw a non-finite z: ValueError naming what holds NaN or infinity (the
    parameters, or x); nothing when all are finite (z overflowed: the result stands, as in
    Nielsen's code)."""
    if not all(np.isfinite(p).all() for p in parameters):
        raise ValueError("self.weights or self.biases contain NaN or infinity")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinity")


_first_compile_checked = set()


def _announce_first_compile(inputs):
    """On the first run after install (no compiled training driver in Numba's cache for
    float64 weights and inputs of dtype ``inputs``), say that the kernels are compiled
    and how long it took, instead of a silent pause; once per process and dtype."""
    inputs = np.dtype(inputs)
    if inputs in _first_compile_checked:
        return
    _first_compile_checked.add(inputs)
    if not _cache_is_empty(inputs):
        return
    sys.stderr.write("loopnet: compiling kernels for this CPU (first run only, "
                     "~%d s)...\n" % COMPILE_SECONDS_ESTIMATE)
    sys.stderr.flush()
    seconds = warmup("float64", inputs=inputs)
    sys.stderr.write("loopnet: compiled in %.1f s; later runs load them from the cache "
                     "in about a second\n" % seconds)
    sys.stderr.flush()


#: What a cold compile of the float64 kernels took on a 2-core EPYC (see profiles/nielsen.py).
COMPILE_SECONDS_ESTIMATE = 20   # 9 to 16 s measured on a 2-core EPYC since the engine and its kernels are linked (README)


def _cache_is_empty(inputs=np.float64):
    """True when Numba's on-disk cache holds no valid compiled training driver for
    float64 weights and inputs X of dtype ``inputs``.

    Reads the cache index of ``engine.drive_batches`` the way Numba does when it
    loads it (an index written for other sources counts as empty) and looks for a
    signature whose X (the fourth argument) has that dtype.  If the cache cannot be
    inspected (caching off, another Numba), says False: the note is only printed
    when it is certain to be true.
    """
    try:
        cache = getattr(engine.drive_batches, "_cache", None)
        cache_file = getattr(cache, "_cache_file", None)
        if cache_file is None or numba.config.DISABLE_JIT:
            return False
        want = numba.from_dtype(np.dtype(inputs))
        if any(sig[3].dtype == want for sig in engine.drive_batches.overloads):
            return False          # already compiled or loaded in this process
        return not any(key[0][3].dtype == want for key in cache_file._load_index())
    except Exception:             # never let the note break training
        return False


# ---------------------------------------------------------------------------
# Data conversion, once per list
# ---------------------------------------------------------------------------

#: Below this many floating-point operations, one call (a mini-batch's gradient, the
#: outputs of a few examples) runs on the calling thread alone: a few milliseconds of
#: work, where waking and synchronising other threads gains little on a quiet machine
#: and, measured on a busy 2-core one, made update_mini_batch 10x slower than serial.
SERIAL_CALL_FLOPS = 20_000_000


class _Compiled(object):
    """State and plumbing shared by network.Network and network2.Network.

    ``self.weights`` / ``self.biases`` are lists of NumPy views into the flat
    parameter buffer of a ``loopnet.Net`` (w^l as (n_l, n_{l-1}), b^l as an
    (n_l, 1) column, Nielsen's shapes), so compiled code reads and writes them
    in place: writing into them (``net.weights[0][j, k] = v``,
    ``net.weights[0] *= 2``) changes the network.  Assigning new arrays
    (``net.weights = [...]``, ``net.weights[0] = W``) is noticed by identity at
    the next call: ``backprop`` reads such arrays where they are (as a subclass's
    ``update_mini_batch`` makes them every mini-batch), and the other calls copy
    them into a fresh buffer and hand back views of it.  Like Nielsen's code,
    every update makes new arrays: arrays taken from ``net.weights`` before
    ``SGD`` or ``update_mini_batch`` keep their values.
    """

    _loopnet_cost = "quadratic"
    _module = None          # the drop-in module whose sigmoid etc. the methods call

    def __getstate__(self):
        # Pickle/copy only Nielsen's attributes, as plain arrays; the core is rebuilt on demand.
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_loopnet")}
        for key in ("weights", "biases"):
            if isinstance(state.get(key), list):
                state[key] = [np.array(v) for v in state[key]]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # -- what the user replaced ---------------------------------------------
    def _replacement(self, name):
        """How ``name`` was replaced (for the warning), or None if it is Nielsen's."""
        if name in _MODULE_FUNCTIONS:
            mod = self._module
            if getattr(mod, name, None) is not mod._ORIGINAL.get(name):
                return "%s.%s is replaced" % (mod.__name__, name)
            return None
        if name in self.__dict__:
            return "%s.%s is replaced (on the instance)" % (type(self).__name__, name)
        if getattr(type(self), name) is not self._ORIGINAL_METHODS[name]:
            return "%s.%s is replaced" % (type(self).__name__, name)
        return None

    # -- the core network ------------------------------------------------------
    def _synced_core(self):
        """The core, when self.weights/self.biases are still its own view lists, unchanged
        (same lists, same length, the same views in them); else None."""
        d = self.__dict__
        c = d.get("_loopnet_core")
        if c is not None and d.get("weights") is c.wlist and d.get("biases") is c.blist \
                and c.cost == self._loopnet_cost and c.sizes == self.sizes \
                and len(c.wlist) == len(c.wviews) and len(c.blist) == len(c.bviews) \
                and all(map(operator.is_, c.wlist, c.wviews)) \
                and all(map(operator.is_, c.blist, c.bviews)):
            return c
        return None

    def _net(self):
        """The loopnet.Net whose buffer holds self.weights/self.biases (synced if replaced)."""
        c = self._synced_core()
        if c is not None:
            return c.net
        return self._adopt(self.__dict__.get("_loopnet_core")).net

    def _adopt(self, c):
        """Copy the user's (new) weights and biases into a core buffer and hand back views."""
        # (Runs once per mini-batch under a subclass's update_mini_batch: kept lean.)
        sizes = c.sizes if c is not None and c.sizes == self.sizes else _check_sizes(self.sizes)
        L = len(sizes) - 1
        ws, bs = self.weights, self.biases
        if len(ws) != L or len(bs) != L:
            raise ValueError("this network has %d layers of weights and biases (sizes %s), "
                             "but self.weights has %d and self.biases %d entries"
                             % (L, sizes, len(ws), len(bs)))
        arrays = []
        for l in range(L):
            w = np.asarray(ws[l], dtype=np.float64)
            b = np.asarray(bs[l], dtype=np.float64)
            if w.shape != (sizes[l + 1], sizes[l]):
                raise ValueError("self.weights[%d] has shape %s, but sizes %s need (%d, %d)"
                                 % (l, w.shape, sizes, sizes[l + 1], sizes[l]))
            if b.shape not in ((sizes[l + 1], 1), (sizes[l + 1],)):
                raise ValueError("self.biases[%d] has shape %s, but sizes %s need (%d, 1)"
                                 % (l, b.shape, sizes, sizes[l + 1]))
            arrays += [w.reshape(-1), b.reshape(-1)]
        params = np.concatenate(arrays)
        if not _finite_sum(params) and not np.isfinite(params).all():
            raise ValueError("self.weights or self.biases contain NaN or infinity")
        cost = self._loopnet_cost
        if c is None or c.sizes != sizes or c.cost != cost:
            c = _Core()
            # seed=0: the core's private generator; nothing global is consumed.
            c.net = Net(sizes, activation="sigmoid", output="sigmoid", cost=cost,
                        dtype="float64", seed=0)
            c.sizes, c.cost = list(sizes), cost
            c.layout = _layout(c.net._arch)
            c.scratch = np.zeros((3, int(c.net._arch.u_off[-1])))
            c.chooser = None
            c.weight_spans, c.bias_spans = _layer_spans(c.sizes)
            c.w_shapes = tuple(shape for _, shape in c.weight_spans)
            c.b_shapes = tuple(shape for _, shape in c.bias_spans)
            c.x_shapes = ((sizes[0], 1), (sizes[0],))
            c.y_shapes = ((sizes[-1], 1), (sizes[-1],))
            self.__dict__["_loopnet_core"] = c
        self._install(c, params)
        return c

    def _install(self, c, params):
        """Make ``params`` the core's buffer and self.weights/biases views of it."""
        buffer = c.net.adopt_params(params, checked=True)
        c.wviews, c.bviews = _views(buffer, c.weight_spans), _views(buffer, c.bias_spans)
        c.wlist, c.blist = list(c.wviews), list(c.bviews)
        c.wtuple, c.btuple = tuple(c.wviews), tuple(c.bviews)
        self.__dict__["weights"], self.__dict__["biases"] = c.wlist, c.blist

    def _renew(self):
        """Move the core to a copy of its buffer, so that arrays the user took from
        self.weights before an update keep their values (Nielsen's updates make new arrays)."""
        net = self._net()
        c = self.__dict__["_loopnet_core"]
        self._install(c, net.params.copy())
        return net

    # -- data conversion -----------------------------------------------------
    def _cached(self, data, role, convert):
        """``(arrays, rows)``: ``convert(data)`` done once per list of pairs.

        The arrays are remembered (:mod:`loopnet.pairs`) and found again, by any
        Network, while every pair of ``data`` is one already converted, in any order
        (SGD shuffles the caller's list in place); load_data_wrapper()'s lists are
        found without any conversion.  ``rows[i]`` is the row of the arrays that holds
        ``data[i]``.  A pair is recognised by the identity of its x and y: replace a
        pair, rather than writing into its arrays, to change the data between calls.
        """
        if len(data) == 0:
            return convert(data, None)[0], np.arange(0)
        ids = pairs.item_ids(data)
        found = None if ids is None else pairs.find(data, ids)
        if found is not None and self._fits(found[0], role):
            _announce_first_compile(found[0][0].dtype)
            return found
        arrays, rows = convert(data, ids)
        pairs.remember(data, *arrays, rows=rows, ids=ids)
        return arrays, np.arange(len(data)) if rows is None else rows

    def _fits(self, arrays, role):
        """Whether remembered (X, targets) suit this network in ``role`` ("training": one-hot
        targets; else labels); if not, the pairs are converted again (raising the error that
        names the problem, if there is one)."""
        X, targets = arrays
        return X.shape[1] == self.sizes[0] and (targets.ndim == 2) == (role == "training") \
            and (role != "training" or targets.shape[1] == self.sizes[-1])

    def _inputs(self, xs, name):
        X = _stack_columns(
            xs, self.sizes[0], name, "input x",
            " (this Network's input layer has sizes[0] = %d neurons)" % self.sizes[0],
            inputs=True)
        _announce_first_compile(X.dtype)        # the engine will run on these inputs
        return X

    def _vector_targets(self, ys, name, ids=None):
        n_out = self.sizes[-1]
        hint = (" (this Network has %d output neurons); integer labels belong in test or "
                "validation data, and a label j becomes the vector vectorized_result(j)"
                % n_out)
        return _stack_columns(ys, n_out, name, "desired output y", hint, ids=ids)

    def _labels(self, ys, name, hint=""):
        return _stack_labels(ys, self.sizes[-1], name, hint)

    def _training_arrays(self, data, name):
        return self._cached(data, "training", lambda data, ids: self._converted(
            data, name, ids, lambda ys, y_ids: self._vector_targets(ys, name, y_ids)))

    def _labelled_arrays(self, data, name, hint):
        return self._cached(data, "labelled", lambda data, ids: self._converted(
            data, name, ids, lambda ys, y_ids: self._labels(ys, name, hint)))

    def _converted(self, data, name, ids, targets):
        """``((X, targets), rows)`` of a list of pairs (whose x's and y's have the ``ids``, or
        None): X the matrix the x's are rows of, read in place (:func:`_rows_of_one_matrix`),
        or else their copy (rows None: in order)."""
        if ids is not None and ids.tuples:          # (every item a pair: no list needed)
            xs, ys = _Column(data, 0), _Column(data, 1)
        else:
            xs, ys = _pairs(data, name)
        x_ids, y_ids = (None, None) if ids is None else (ids.x, ids.y)
        shared = None if ids is None else _rows_of_one_matrix(xs, self.sizes[0], x_ids)
        if shared is None:
            return (self._inputs(xs, name), targets(ys, y_ids)), None
        M, rows = shared
        _announce_first_compile(M.dtype)
        return (M, _spread(targets(ys, y_ids), rows, len(M))), rows

    def _predict(self, X):
        """a^L of every row of X, in chunks, each on the thread count timed fastest."""
        net = self._net()
        c = self.__dict__["_loopnet_core"]
        if c.chooser is None:
            c.chooser = _ThreadChoice()
        out = np.empty((len(X), self.sizes[-1]))
        flops = training.flops_per_example(net.sizes)
        chunk = max(1, SERIAL_CALL_FLOPS // flops)
        for lo in range(0, len(X), chunk):
            hi = min(lo + chunk, len(X))
            threads = c.chooser.next() if (hi - lo) * flops >= SERIAL_CALL_FLOPS // 2 else 1
            began = time.perf_counter()
            out[lo:hi] = _on_threads(threads, net.predict, X[lo:hi])
            c.chooser.record(threads, (time.perf_counter() - began) / (hi - lo))
        return out

    def _count_correct(self, X, labels, rows):
        if len(rows) == 0:
            return 0
        guess = np.argmax(self._predict(X), axis=1)
        return int(np.sum(guess[rows] == labels[rows]))

    # -- Nielsen's per-example helpers --------------------------------------
    def feedforward(self, a):
        """Return the output of the network if ``a`` is input.

        ``a`` is an (n_in, 1) column (or several columns side by side); a 1-D
        vector is treated as one column.  Computed with NumPy as in the
        original (and with the module's ``sigmoid``), so the result is
        bit-identical to Nielsen's.
        """
        a = np.asarray(a)
        n_in = self.sizes[0]
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[0] != n_in:
            raise ValueError("feedforward(a): a has shape %s, but this Network's input layer "
                             "has %d neurons, so a must be (%d, 1)" % (a.shape, n_in, n_in))
        sigmoid = self._module.sigmoid
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def _check_xy(self, x, y):
        n_in, n_out = self.sizes[0], self.sizes[-1]
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (n_in, 1) and x.shape != (n_in,):
            raise ValueError("x has shape %s, but this Network's input layer has %d neurons, "
                             "so x must be (%d, 1)" % (x.shape, n_in, n_in))
        yv = np.asarray(y, dtype=np.float64)
        if yv.shape != (n_out, 1) and yv.shape != (n_out,):
            raise ValueError("y is %s, but the desired output must be a (%d, 1) vector "
                             "(for a label j use vectorized_result(j))" % (_describe(y), n_out))
        return x.reshape(n_in, 1), yv.reshape(n_out, 1)

    def _numpy_backprop(self, x, y, output_error):
        """Nielsen's backprop for one example, in NumPy (BP1-BP4 of chapter 2).

        ``output_error(z, a, y)`` returns delta^L.  Used when part of the
        algorithm was replaced, so that the replacement is honoured; calls the
        module's ``sigmoid``/``sigmoid_prime`` as his code does.
        """
        mod = self._module
        activation = x
        activations, zs = [x], []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = mod.sigmoid(z)
            activations.append(activation)
        L = len(self.weights)
        nabla_b, nabla_w = [None] * L, [None] * L
        delta = output_error(zs[-1], activations[-1], y)           # BP1
        nabla_b[-1] = delta                                         # BP3
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())   # BP4
        for l in range(2, self.num_layers):
            sp = mod.sigmoid_prime(zs[-l])
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp    # BP2
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def _compiled_backprop(self, x, y):
        """(nabla_b, nabla_w) of one example from the compiled kernels, in Nielsen's shapes.

        The per-call path is kept short (it runs once per example in the book's
        exercises): x and y go to the kernel as they are when they are float arrays
        of the right length (float32 x, as load_data_wrapper() gives it, is read in
        place: each product is exact in float64, so the bits equal converting first);
        anything else is converted, or refused by :meth:`_check_xy`.
        """
        c, ws, bs = self._parameters_in_place()
        if type(x) is np.ndarray and type(y) is np.ndarray and x.dtype.type in _FLOAT_TYPES \
                and y.dtype.type is np.float64 and x.shape in c.x_shapes and y.shape in c.y_shapes:
            xv, yv = x.reshape(c.sizes[0]), y.reshape(c.sizes[-1])
        else:
            x, y = self._check_xy(x, y)           # raises, naming the problem, or converts
            xv, yv = x.reshape(-1), y.reshape(-1)
        # New arrays every call (the caller may keep them), made by NumPy in Nielsen's
        # shapes: cheaper than views cut from one buffer (0.8 us a view).
        gws, gbs = tuple(map(np.empty, c.w_shapes)), tuple(map(np.empty, c.b_shapes))
        if not _backprop_example(ws, bs, c.layout, xv, yv, c.scratch, gws, gbs):
            _refuse_non_finite(ws + bs, xv)
        return list(gbs), list(gws)

    def _parameters_in_place(self):
        """(core, w^l tuple, b^l tuple) for the compiled per-example kernels, read in place:
        the core's own views, or the new arrays a subclass's ``update_mini_batch`` assigned
        when they are float64 C-contiguous arrays of Nielsen's shapes (no copy, no scan:
        the kernel's finite z stands for finite weights).  Anything else is taken in by
        :meth:`_net`, which copies it, or refuses it naming the problem."""
        c = self._synced_core()
        if c is not None:
            return c, c.wtuple, c.btuple
        d = self.__dict__
        c, ws, bs = d.get("_loopnet_core"), d.get("weights"), d.get("biases")
        if c is not None and c.sizes == self.sizes and c.cost == self._loopnet_cost \
                and type(ws) is list and type(bs) is list and len(ws) == len(bs) == len(c.wviews) \
                and all(map(_readable_in_place, ws, c.wviews)) \
                and all(map(_readable_in_place, bs, c.bviews)):
            return c, tuple(ws), tuple(bs)
        self._net()
        c = d["_loopnet_core"]
        return c, c.wtuple, c.btuple

    def _gradient_sum_python(self, mini_batch):
        nabla_b = [np.zeros(np.shape(b)) for b in self.biases]
        nabla_w = [np.zeros(np.shape(w)) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        return nabla_b, nabla_w

    def _compiled_update(self, mini_batch, eta, lmbda, n):
        data, _ = _materialize(mini_batch, "mini_batch")
        if not data:
            raise ValueError("mini_batch is empty")
        xs, ys = _pairs(data, "mini_batch")
        X = self._inputs(xs, "mini_batch")
        Y = self._vector_targets(ys, "mini_batch")
        net = self._renew()
        if eta != 0.0:          # the core requires eta > 0; eta = 0 changes nothing
            m = len(data)
            if m * training.flops_per_example(net.sizes) < SERIAL_CALL_FLOPS:
                g = _one_thread(net.gradient_sum, X, Y)
            else:
                g = net.gradient_sum(X, Y)
            net.step(g, eta=eta, lmbda=lmbda, n=n, m=m)

    def _run_epochs(self, training_data, epochs, mini_batch_size, eta, lmbda, after_epoch,
                    fast):
        """Nielsen's epoch loop; ``after_epoch(j, state)`` prints/monitors, where
        ``state`` is the list (Python path) or ``(X, Y, rows)`` (compiled path)."""
        data, own = _materialize(training_data, "training_data")
        n = len(data)
        if not fast:
            # Nielsen's loop, calling the (replaced) update_mini_batch.
            for j in range(epochs):
                random.shuffle(data)
                for k in range(0, n, mini_batch_size):
                    self._python_update(data[k:k + mini_batch_size], eta, lmbda, n)
                after_epoch(j, data)
            return data
        if n:
            (X, Y), rows = self._training_arrays(data, "training_data")
        net = self._renew()
        for j in range(epochs):
            # Same draws as random.shuffle(training_data): shuffle depends only on len.
            perm = shuffled_range(n)
            if n:
                if own:
                    data[:] = operator.itemgetter(*perm.tolist())(data) if n > 1 else data
                rows = rows[perm]
                if eta != 0.0:
                    net.fit(X, Y, order=rows, epochs=1, batch_size=mini_batch_size, eta=eta,
                            lmbda=lmbda, monitor=False)
                after_epoch(j, (X, Y, rows))
            else:
                after_epoch(j, data)
        return data


def _on_threads(threads, f, *args):
    """f(*args) with at most ``threads`` Numba threads (the result is the same for any)."""
    before = numba.get_num_threads()
    if threads >= before:
        return f(*args)
    numba.set_num_threads(threads)
    try:
        return f(*args)
    finally:
        numba.set_num_threads(before)


def _one_thread(f, *args):
    """f(*args) on the calling thread alone: for a few examples, waking the other
    threads costs more than they save (the result is the same either way)."""
    return _on_threads(1, f, *args)


class _ThreadChoice(object):
    """One thread or all, whichever ran the last chunks faster (seconds per row).

    One thread is tried first, all threads second; then the faster is used and
    every PROBE-th chunk re-times the other, so that a change of load is noticed.
    On a busy machine, synchronising threads can make a parallel call many
    times slower than a serial one.
    """

    PROBE = 8

    def __init__(self):
        self.seconds = {}
        self.calls = 0

    def next(self):
        most = numba.get_num_threads()
        self.calls += 1
        if most == 1:
            return 1
        for k in (1, most):
            if k not in self.seconds:
                return k
        best = min((1, most), key=self.seconds.get)
        if self.calls % self.PROBE == 0:
            return most if best == 1 else 1
        return best

    def record(self, threads, seconds_per_row):
        self.seconds[threads] = seconds_per_row


class Network(_Compiled):
    """Nielsen's ``network.Network``: sigmoid neurons, quadratic cost, SGD."""

    def __init__(self, sizes):
        """``sizes`` lists the number of neurons per layer, e.g. [784, 30, 10].

        Biases and weights are drawn from N(0, 1) with ``np.random.randn``,
        first every bias vector, then every weight matrix, as in the original.
        """
        sizes = _check_sizes(sizes)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Train with mini-batch stochastic gradient descent.

        ``training_data`` is a list (or any iterable) of ``(x, y)`` pairs with
        ``x`` an (n_in, 1) input and ``y`` the (n_out, 1) desired output.  A
        list is shuffled in place each epoch, as Nielsen's code does.  With
        ``test_data`` (pairs ``(x, label)``), prints ``Epoch j: correct /
        total`` after each epoch, else ``Epoch j complete``.
        """
        epochs = _check_int(epochs, "epochs", 0)
        mini_batch_size = _check_int(mini_batch_size, "mini_batch_size", 1)
        eta = _check_real(eta, "eta")
        test, _ = _materialize(test_data, "test_data")
        fast = not _replaced(self, _TRAINING_PIECES, "SGD")
        tx = None
        if test:
            n_test = len(test)
            if not _replaced(self, ("evaluate", "feedforward", "sigmoid"), "SGD's evaluation"):
                tx = self._labelled_arrays(test, "test_data", _TEST_HINT)

        def after_epoch(j, _state):
            if test:
                if tx is not None:
                    correct = self._count_correct(tx[0][0], tx[0][1], tx[1])
                else:
                    correct = self.evaluate(test)
                print("Epoch {0}: {1} / {2}".format(j, correct, n_test))
            else:
                print("Epoch {0} complete".format(j))

        self._run_epochs(training_data, epochs, mini_batch_size, eta, 0.0, after_epoch, fast)

    def _python_update(self, mini_batch, eta, lmbda, n):
        self.update_mini_batch(mini_batch, eta)

    def update_mini_batch(self, mini_batch, eta):
        """One gradient-descent step on ``mini_batch`` (a list of ``(x, y)``):
        w -> w - (eta/m) sum_x dC_x/dw, b likewise."""
        eta = _check_real(eta, "eta")
        if not _replaced(self, _TRAINING_PIECES[1:], "update_mini_batch"):
            return self._compiled_update(mini_batch, eta, 0.0, 1)
        data, _ = _materialize(mini_batch, "mini_batch")
        nabla_b, nabla_w = self._gradient_sum_python(data)
        m = len(data)
        self.weights = [w - (eta / m) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / m) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        """Return ``(nabla_b, nabla_w)``, the gradient of C_x for one example,
        as lists shaped like ``self.biases`` and ``self.weights``."""
        if _replaced(self, _TRAINING_PIECES[2:], "backprop"):
            x, y = self._check_xy(x, y)
            return self._numpy_backprop(
                x, y, lambda z, a, y: self.cost_derivative(a, y) * self._module.sigmoid_prime(z))
        return self._compiled_backprop(x, y)

    def evaluate(self, test_data):
        """Number of ``(x, label)`` pairs in ``test_data`` whose label is the
        index of the most active output neuron."""
        data, _ = _materialize(test_data, "test_data")
        if not data:
            return 0
        if _replaced(self, ("feedforward", "sigmoid"), "evaluate"):
            return sum(int(np.argmax(self.feedforward(x)) == y) for (x, y) in data)
        (X, labels), rows = self._labelled_arrays(
            data, "test_data", "; evaluate() expects (x, label) pairs, as in "
                               "load_data_wrapper()'s validation and test data")
        return self._count_correct(X, labels, rows)

    def cost_derivative(self, output_activations, y):
        """Vector of partial derivatives dC_x/da for the output activations."""
        return (output_activations - y)


# What training uses, outermost first: SGD runs compiled only if none is replaced.
_TRAINING_PIECES = ("update_mini_batch", "backprop", "cost_derivative", "sigmoid",
                    "sigmoid_prime")
_TEST_HINT = "; test_data holds (x, label) pairs, as load_data_wrapper() returns them"


# ---------------------------------------------------------------------------
def sigmoid(z):
    """The sigmoid function 1 / (1 + e^-z)."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))


# The originals, to tell what a user replaced (Network.backprop = f, network.sigmoid = f, ...).
_ORIGINAL = {"sigmoid": sigmoid, "sigmoid_prime": sigmoid_prime}
Network._module = sys.modules[__name__]
Network._ORIGINAL_METHODS = {name: Network.__dict__[name] for name in
                     ("update_mini_batch", "backprop", "cost_derivative", "evaluate",
                      "feedforward") if name in Network.__dict__}
Network._ORIGINAL_METHODS["feedforward"] = _Compiled.feedforward
