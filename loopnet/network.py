"""Drop-in replacement for Michael Nielsen's ``network.py`` (chapter 1 of
*Neural Networks and Deep Learning*), trained by loopnet's compiled kernels.

Change ``import network`` to ``from loopnet import network`` and the rest of
the program runs unchanged: the same class, attributes, methods and printed
lines, and, with the same seeds, the same numbers.

How "the same numbers" is achieved:

* ``Network(sizes)`` draws ``np.random.randn(y, 1)`` for every bias vector
  and then ``np.random.randn(y, x)`` for every weight matrix, the calls of
  the original, so ``numpy.random.seed(s)`` gives the same initial network.
* ``SGD`` calls ``random.shuffle`` once per epoch on a list of the same
  length as ``training_data``, which draws exactly the random numbers that
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

import numbers
import random

import numpy as np

from . import checks

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


def _describe(v):
    if isinstance(v, np.ndarray):
        return "an array of shape %s" % (v.shape,)
    if isinstance(v, (numbers.Number, np.generic)):
        return "the number %r" % (v,)
    return "a %s" % type(v).__name__


def _stack_columns(vs, n, name, role, hint=""):
    """(len(vs), n) float64 matrix from (n, 1) or (n,) arrays; ValueError naming a bad one."""
    if len(vs) == 0:
        return np.zeros((0, n))
    try:
        A = np.array(vs, dtype=np.float64)
    except (ValueError, TypeError):
        A = None
    ok = A is not None and len(vs) == (A.shape[0] if A.ndim else -1) and (
        (A.ndim == 2 and A.shape[1] == n) or (A.ndim == 3 and A.shape[1:] == (n, 1)))
    if ok:
        A = A.reshape(len(vs), n)
        # Row sums are finite unless a row holds NaN/inf (or overflows: re-checked below).
        suspect = np.flatnonzero(~np.isfinite(A.sum(axis=1)))
        bad = [i for i in suspect if not np.isfinite(A[i]).all()]
        if bad:
            i = int(bad[0])
            raise ValueError("%s[%d][%d] contains NaN or infinity"
                             % (name, i, 0 if role.startswith("input") else 1))
        return A
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


def _stack_labels(vs, n_out, name, hint=""):
    """1-D array of numeric labels; ValueError if some y is a vector."""
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


def _is_overridden(obj, base, names):
    cls = type(obj)
    return any(getattr(cls, n) is not getattr(base, n) for n in names)


class _Compiled(object):
    """State and plumbing shared by network.Network and network2.Network.

    The NumPy lists ``self.weights`` / ``self.biases`` (Nielsen's layout,
    biases as (n, 1) columns) are the source of truth, so user code that
    reads or assigns them keeps working.  Before compiled work they are
    copied into a ``loopnet.Net`` (``_push``), afterwards copied back as new
    arrays (``_pull``), as Nielsen's ``update_mini_batch`` also creates new
    arrays.
    """

    _loopnet_cost = "quadratic"

    def __getstate__(self):
        # Pickle/copy only Nielsen's attributes; the compiled Net is rebuilt on demand.
        state = dict(self.__dict__)
        state.pop("_loopnet_net", None)
        return state

    def _net(self):
        """The loopnet.Net holding the current weights (built lazily)."""
        import loopnet
        cost = self._loopnet_cost
        net = self.__dict__.get("_loopnet_net")
        if net is None or list(net.sizes) != list(self.sizes) or net.cost_name != cost:
            # seed=0: the core's private generator; nothing global is consumed.
            net = loopnet.Net(self.sizes, activation="sigmoid", output="sigmoid",
                              cost=cost, dtype="float64", seed=0)
            self.__dict__["_loopnet_net"] = net
        self._push(net)
        return net

    def _push(self, net):
        sizes = list(self.sizes)
        L = len(sizes) - 1
        ws, bs = self.weights, self.biases
        if len(ws) != L or len(bs) != L:
            raise ValueError("this network has %d layers of weights and biases (sizes %s), "
                             "but self.weights has %d and self.biases %d entries"
                             % (L, sizes, len(ws), len(bs)))
        new_w, new_b = [], []
        for l in range(L):
            w = np.asarray(ws[l], dtype=np.float64)
            b = np.asarray(bs[l], dtype=np.float64)
            if w.shape != (sizes[l + 1], sizes[l]):
                raise ValueError("self.weights[%d] has shape %s, but sizes %s need (%d, %d)"
                                 % (l, w.shape, sizes, sizes[l + 1], sizes[l]))
            if b.shape not in ((sizes[l + 1], 1), (sizes[l + 1],)):
                raise ValueError("self.biases[%d] has shape %s, but sizes %s need (%d, 1)"
                                 % (l, b.shape, sizes, sizes[l + 1]))
            new_w.append(w)
            new_b.append(b.reshape(-1))
        net.weights = new_w
        net.biases = new_b

    def _pull(self, net):
        self.weights = [np.array(w, dtype=np.float64) for w in net.weights]
        self.biases = [np.array(b, dtype=np.float64).reshape(-1, 1) for b in net.biases]

    # -- data conversion ---------------------------------------------------
    def _inputs(self, xs, name):
        return _stack_columns(
            xs, self.sizes[0], name, "input x",
            " (this Network's input layer has sizes[0] = %d neurons)" % self.sizes[0])

    def _vector_targets(self, ys, name):
        n_out = self.sizes[-1]
        hint = (" (this Network has %d output neurons); integer labels belong in test or "
                "validation data, and a label j becomes the vector vectorized_result(j)"
                % n_out)
        return _stack_columns(ys, n_out, name, "desired output y", hint)

    def _labels(self, ys, name, hint=""):
        return _stack_labels(ys, self.sizes[-1], name, hint)

    def _count_correct(self, net, X, labels):
        if len(X) == 0:
            return 0
        guess = np.argmax(net.predict(X), axis=1)
        return int(np.sum(guess == labels))

    # -- Nielsen's per-example helpers, vectorized over columns --------------
    def feedforward(self, a):
        """Return the output of the network if ``a`` is input.

        ``a`` is an (n_in, 1) column (or several columns side by side); a 1-D
        vector is treated as one column.  Computed with NumPy as in the
        original, so the result is bit-identical to Nielsen's.
        """
        a = np.asarray(a)
        n_in = self.sizes[0]
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[0] != n_in:
            raise ValueError("feedforward(a): a has shape %s, but this Network's input layer "
                             "has %d neurons, so a must be (%d, 1)" % (a.shape, n_in, n_in))
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def _check_xy(self, x, y, target_is_vector=True):
        n_in, n_out = self.sizes[0], self.sizes[-1]
        x = np.asarray(x, dtype=np.float64)
        if x.shape not in ((n_in, 1), (n_in,)):
            raise ValueError("x has shape %s, but this Network's input layer has %d neurons, "
                             "so x must be (%d, 1)" % (x.shape, n_in, n_in))
        yv = np.asarray(y, dtype=np.float64)
        if yv.shape not in ((n_out, 1), (n_out,)):
            raise ValueError("y is %s, but the desired output must be a (%d, 1) vector "
                             "(for a label j use vectorized_result(j))" % (_describe(y), n_out))
        return x.reshape(n_in, 1), yv.reshape(n_out, 1)

    def _numpy_backprop(self, x, y, output_error):
        """Backpropagation for one example in NumPy (BP1-BP4 of chapter 2).

        ``output_error(z, a, y)`` returns delta^L.  Used only when a subclass
        overrides part of the algorithm, so that its override is honoured.
        """
        zs, acts = [], [x]
        for w, b in zip(self.weights, self.biases):
            zs.append(np.dot(w, acts[-1]) + b)
            acts.append(sigmoid(zs[-1]))
        L = len(self.weights)
        nabla_b, nabla_w = [None] * L, [None] * L
        delta = output_error(zs[-1], acts[-1], y)                 # BP1
        for l in range(L - 1, -1, -1):
            nabla_b[l] = delta                                     # BP3
            nabla_w[l] = np.dot(delta, acts[l].transpose())        # BP4
            if l > 0:                                              # BP2
                delta = np.dot(self.weights[l].transpose(), delta) * sigmoid_prime(zs[l - 1])
        return (nabla_b, nabla_w)

    def _compiled_backprop(self, x, y):
        x, y = self._check_xy(x, y)
        net = self._net()
        g = net.gradient_sum(x.reshape(1, -1), y.reshape(1, -1))
        ws, bs = net.unflatten(g)
        return ([np.array(b).reshape(-1, 1) for b in bs], [np.array(w) for w in ws])

    def _gradient_sum_python(self, mini_batch):
        nabla_b = [np.zeros(np.shape(b)) for b in self.biases]
        nabla_w = [np.zeros(np.shape(w)) for w in self.weights]
        for x, y in mini_batch:
            db, dw = self.backprop(x, y)
            nabla_b = [nb + d for nb, d in zip(nabla_b, db)]
            nabla_w = [nw + d for nw, d in zip(nabla_w, dw)]
        return nabla_b, nabla_w

    def _compiled_update(self, mini_batch, eta, lmbda, n):
        data, _ = _materialize(mini_batch, "mini_batch")
        if not data:
            raise ValueError("mini_batch is empty")
        xs, ys = _pairs(data, "mini_batch")
        X = self._inputs(xs, "mini_batch")
        Y = self._vector_targets(ys, "mini_batch")
        net = self._net()
        if eta != 0.0:          # the core requires eta > 0; eta = 0 changes nothing
            g = net.gradient_sum(X, Y)
            net.step(g / len(data), eta=eta, lmbda=lmbda, n=n)
        self._pull(net)

    def _run_epochs(self, training_data, epochs, mini_batch_size, eta, lmbda, after_epoch,
                    fast):
        """Nielsen's epoch loop; ``after_epoch(j, net, order)`` prints/monitors."""
        data, own = _materialize(training_data, "training_data")
        n = len(data)
        if not fast:
            # Nielsen's loop, calling the (overridden) update_mini_batch.
            for j in range(epochs):
                random.shuffle(data)
                for k in range(0, n, mini_batch_size):
                    self._python_update(data[k:k + mini_batch_size], eta, lmbda, n)
                after_epoch(j, None, data)
            return data
        xs, ys = _pairs(data, "training_data")
        X = self._inputs(xs, "training_data")
        Y = self._vector_targets(ys, "training_data")
        net = self._net()
        order = np.arange(n)
        try:
            for j in range(epochs):
                # Same draws as random.shuffle(training_data): shuffle depends only on len.
                perm = list(range(n))
                random.shuffle(perm)
                if own:
                    data[:] = [data[i] for i in perm]
                order = order[perm]
                if n and eta != 0.0:
                    net.fit(X, Y, order=order, epochs=1, batch_size=mini_batch_size, eta=eta,
                            lmbda=lmbda, monitor=False)
                after_epoch(j, net, (X, Y, order))
        finally:
            self._pull(net)
        return data


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

    def _fast(self):
        return not _is_overridden(self, Network,
                                  ("update_mini_batch", "backprop", "cost_derivative"))

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
        tx = None
        if test:
            n_test = len(test)
            if not _is_overridden(self, Network, ("evaluate", "feedforward")):
                txs, tys = _pairs(test, "test_data")
                tx = (self._inputs(txs, "test_data"),
                      self._labels(tys, "test_data",
                                   "; test_data holds (x, label) pairs, as load_data_wrapper() "
                                   "returns them"))

        def after_epoch(j, net, _state):
            if test:
                if tx is not None and net is not None:
                    correct = self._count_correct(net, *tx)
                else:
                    if net is not None:
                        self._pull(net)
                    correct = self.evaluate(test)
                print("Epoch {0}: {1} / {2}".format(j, correct, n_test))
            else:
                print("Epoch {0} complete".format(j))

        self._run_epochs(training_data, epochs, mini_batch_size, eta, 0.0, after_epoch,
                         self._fast())

    def _python_update(self, mini_batch, eta, lmbda, n):
        self.update_mini_batch(mini_batch, eta)

    def update_mini_batch(self, mini_batch, eta):
        """One gradient-descent step on ``mini_batch`` (a list of ``(x, y)``):
        w -> w - (eta/m) sum_x dC_x/dw, b likewise."""
        eta = _check_real(eta, "eta")
        if not _is_overridden(self, Network, ("backprop", "cost_derivative")):
            return self._compiled_update(mini_batch, eta, 0.0, 1)
        data, _ = _materialize(mini_batch, "mini_batch")
        nabla_b, nabla_w = self._gradient_sum_python(data)
        m = len(data)
        self.weights = [w - (eta / m) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / m) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        """Return ``(nabla_b, nabla_w)``, the gradient of C_x for one example,
        as lists shaped like ``self.biases`` and ``self.weights``."""
        if _is_overridden(self, Network, ("cost_derivative",)):
            x, y = self._check_xy(x, y)
            return self._numpy_backprop(
                x, y, lambda z, a, y: self.cost_derivative(a, y) * sigmoid_prime(z))
        return self._compiled_backprop(x, y)

    def evaluate(self, test_data):
        """Number of ``(x, label)`` pairs in ``test_data`` whose label is the
        index of the most active output neuron."""
        data, _ = _materialize(test_data, "test_data")
        if not data:
            return 0
        if _is_overridden(self, Network, ("feedforward",)):
            return sum(int(np.argmax(self.feedforward(x)) == y) for (x, y) in data)
        xs, ys = _pairs(data, "test_data")
        X = self._inputs(xs, "test_data")
        labels = self._labels(ys, "test_data",
                              "; evaluate() expects (x, label) pairs, as in load_data_wrapper()'s "
                              "validation and test data")
        return self._count_correct(self._net(), X, labels)

    def cost_derivative(self, output_activations, y):
        """Vector of partial derivatives dC_x/da for the output activations."""
        return (output_activations - y)


# ---------------------------------------------------------------------------
def sigmoid(z):
    """The sigmoid function 1 / (1 + e^-z)."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))
