"""The implementations on the ladder (NumPy matrix form, Nielsen-style NumPy, loopnet,
PyTorch, scikit-learn), the data they run on, and the NumPy oracle they are validated against.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from loopnet.idx import read_idx  # the one IDX parser

from _scenarios import FASHION_DIR, _optional
from _machine import blas_threads


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def load_data(n, n_in, n_out, dtype="float64", seed=0):
    """(X, Y one-hot, labels, source): Fashion-MNIST when the shape fits and the files exist,
    else synthetic data of the same shape (uniform pixels, labels from a random linear teacher)."""
    img = FASHION_DIR / "train-images-idx3-ubyte.gz"
    lab = FASHION_DIR / "train-labels-idx1-ubyte.gz"
    if n_in == 784 and n_out == 10 and img.exists() and lab.exists():
        images = read_idx(img).reshape(-1, 784)
        labels = read_idx(lab).astype(np.int64)
        if n <= len(images):
            X = (images[:n] / 255.0).astype(dtype)
            labels = labels[:n]
            source = f"Fashion-MNIST (first {n:,} training images)"
            return X, one_hot(labels, n_out, dtype), labels, source
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_in)).astype(dtype)
    labels = np.argmax(X @ rng.standard_normal((n_in, n_out)), axis=1)
    return X, one_hot(labels, n_out, dtype), labels, f"synthetic ({n:,} × {n_in}, uniform [0, 1))"


def one_hot(labels, n_classes, dtype="float64"):
    Y = np.zeros((len(labels), n_classes), dtype)
    Y[np.arange(len(labels)), labels] = 1
    return Y


def init_params(sizes, dtype, seed=0):
    """network2's default initialisation: w ~ N(0, 1)/sqrt(n_in), b ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((b, a)) / np.sqrt(a)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.standard_normal(b).astype(dtype) for b in sizes[1:]]
    return ws, bs


# ---------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------


def ref_gradient(sc, ws, bs, X, Y, output=None, cost=None):
    from loopnet import reference

    ws = [np.asarray(w, np.float64) for w in ws]
    bs = [np.asarray(b, np.float64) for b in bs]
    return reference.gradient(ws, bs, np.asarray(X, np.float64), np.asarray(Y, np.float64),
                              sc.activation, output or sc.output, cost or sc.cost)


def ref_sgd(sc, ws, bs, X, Y, n_batches, output=None, cost=None):
    """Plain SGD driven by the reference gradient: weights after ``n_batches`` mini-batches in order."""
    ws = [np.array(w, np.float64) for w in ws]
    bs = [np.array(b, np.float64) for b in bs]
    for k in range(n_batches):
        sl = slice(k * sc.m, (k + 1) * sc.m)
        gw, gb = ref_gradient(sc, ws, bs, X[sl], Y[sl], output, cost)
        for w, g in zip(ws, gw):
            w -= sc.eta * g
        for b, g in zip(bs, gb):
            b -= sc.eta * g
    return ws, bs


def rel_err(got, want):
    """max over arrays of max|got - want| / max|want|  (a relative error that a missing 1/m cannot hide in)."""
    worst = 0.0
    for g, w in zip(got, want):
        g = np.asarray(g, np.float64)
        w = np.asarray(w, np.float64)
        if g.shape != w.shape:
            return math.inf
        scale = max(float(np.max(np.abs(w))), 1e-300)
        worst = max(worst, float(np.max(np.abs(g - w))) / scale)
    return worst


# ---------------------------------------------------------------------------
# implementations: set(ws, bs); gradient(X, Y) -> (gw, gb) or None; train(X, Y, order); get()
# ---------------------------------------------------------------------------


def _sigmoid(z):
    with np.errstate(over="ignore"):  # e^{-z} = inf for z << 0 gives σ = 0, the right limit
        return 1.0 / (1.0 + np.exp(-z))


class Impl:
    label = "?"
    threads = None  # int or None for "library default"
    validates = "gradient after 1 mini-batch, weights after a few"
    fraction = 1.0  # share of the epoch timed (then scaled); < 1 for the slow per-example code
    output = None  # None: the scenario's output/cost; else (output, cost) that this library fixes

    def __init__(self, sc, dtype):
        self.sc = sc
        self.dtype = np.dtype(dtype)

    def threads_ctx(self):
        return _nullctx()

    def gradient(self, X, Y):
        return None


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class NumpyMatrix(Impl):
    """Vectorised NumPy, the mini-batch as a matrix: A^l = σ(A^{l-1} W^T + b), one BLAS call per product."""

    def __init__(self, sc, dtype, threads=None):
        super().__init__(sc, dtype)
        self.threads = threads
        self.label = "NumPy matrix form" + (f", BLAS {threads} thread" if threads else "")

    def threads_ctx(self):
        return blas_threads(self.threads) if self.threads else _nullctx()

    def set(self, ws, bs):
        self.w = [np.array(w, self.dtype) for w in ws]
        self.b = [np.array(b, self.dtype) for b in bs]

    def get(self):
        return self.w, self.b

    def _grad_sum(self, X, Y):
        acts = [X]
        a = X
        for w, b in zip(self.w, self.b):
            z = a @ w.T
            z += b
            a = _sigmoid(z)
            acts.append(a)
        a = acts[-1]
        delta = (a - Y) * a * (1 - a)  # quadratic cost, sigmoid output (BP1)
        gw = [None] * len(self.w)
        gb = [None] * len(self.w)
        for l in range(len(self.w) - 1, -1, -1):
            gw[l] = delta.T @ acts[l]  # BP4 summed over the batch
            gb[l] = delta.sum(axis=0)  # BP3
            if l:
                a = acts[l]
                delta = (delta @ self.w[l]) * a * (1 - a)  # BP2
        return gw, gb

    def gradient(self, X, Y):
        gw, gb = self._grad_sum(X.astype(self.dtype), Y.astype(self.dtype))
        return [g / len(X) for g in gw], [g / len(X) for g in gb]

    def train(self, X, Y, order):
        m, scale = self.sc.m, self.dtype.type(self.sc.eta / self.sc.m)
        for k in range(0, len(order), m):
            idx = order[k : k + m]
            gw, gb = self._grad_sum(X[idx], Y[idx])
            for w, g in zip(self.w, gw):
                w -= scale * g
            for b, g in zip(self.b, gb):
                b -= scale * g


class NielsenStyle(NumpyMatrix):
    """Per-example NumPy with column vectors, as in Nielsen's network.py (written here from the
    equations, not copied): backprop one example at a time, sum the nablas, update per mini-batch."""

    def __init__(self, sc, dtype, fraction=0.1):
        Impl.__init__(self, sc, dtype)
        self.label = "Nielsen-style per-example NumPy"
        self.fraction = fraction

    def threads_ctx(self):
        return _nullctx()

    def set(self, ws, bs):
        self.w = [np.array(w, self.dtype) for w in ws]
        self.b = [np.array(b, self.dtype)[:, None] for b in bs]

    def get(self):
        return self.w, [b[:, 0] for b in self.b]

    def _backprop(self, x, y):
        a = x
        acts = [a]
        zs = []
        for w, b in zip(self.w, self.b):
            z = np.dot(w, a) + b
            zs.append(z)
            a = _sigmoid(z)
            acts.append(a)
        sp = _sigmoid(zs[-1]) * (1 - _sigmoid(zs[-1]))
        delta = (acts[-1] - y) * sp
        nw = [None] * len(self.w)
        nb = [None] * len(self.w)
        nw[-1] = np.dot(delta, acts[-2].T)
        nb[-1] = delta
        for l in range(2, len(self.w) + 1):
            sp = _sigmoid(zs[-l]) * (1 - _sigmoid(zs[-l]))
            delta = np.dot(self.w[-l + 1].T, delta) * sp
            nw[-l] = np.dot(delta, acts[-l - 1].T)
            nb[-l] = delta
        return nw, nb

    def _batch_sum(self, X, Y):
        nw = [np.zeros_like(w) for w in self.w]
        nb = [np.zeros_like(b) for b in self.b]
        for x, y in zip(X, Y):
            dw, db = self._backprop(x[:, None], y[:, None])
            nw = [a + d for a, d in zip(nw, dw)]
            nb = [a + d for a, d in zip(nb, db)]
        return nw, nb

    def gradient(self, X, Y):
        nw, nb = self._batch_sum(X.astype(self.dtype), Y.astype(self.dtype))
        return [g / len(X) for g in nw], [g[:, 0] / len(X) for g in nb]

    def train(self, X, Y, order):
        m = self.sc.m
        for k in range(0, len(order), m):
            idx = order[k : k + m]
            nw, nb = self._batch_sum(X[idx], Y[idx])
            self.w = [w - (self.sc.eta / m) * g for w, g in zip(self.w, nw)]
            self.b = [b - (self.sc.eta / m) * g for b, g in zip(self.b, nb)]


class Loopnet(Impl):
    """loopnet.Net.fit with ``order=`` (one epoch, no monitoring) on exactly ``threads`` threads.

    ``threads`` is passed to ``fit``: without it fit's own choice between one and all threads
    would decide, and a row labelled "2 threads" could time one (the default-fit row,
    :class:`LoopnetDefaultFit`, is the one that measures that choice)."""

    def __init__(self, sc, dtype, threads):
        super().__init__(sc, dtype)
        self.threads = threads
        self.label = f"loopnet, {threads} thread{'s' if threads > 1 else ''}"
        import loopnet

        self.net = loopnet.Net(sc.sizes, activation=sc.activation, output=sc.output, cost=sc.cost,
                               dtype=self.dtype.name, seed=0)

    def threads_ctx(self):
        return numba_threads_ctx(self.threads)

    def set(self, ws, bs):
        self.net.weights = [np.array(w, self.dtype) for w in ws]
        self.net.biases = [np.array(b, self.dtype) for b in bs]

    def get(self):
        return [w.copy() for w in self.net.weights], [b.copy() for b in self.net.biases]

    def gradient(self, X, Y):
        with self.threads_ctx():
            gw, gb = self.net.gradient(X.astype(self.dtype), Y.astype(self.dtype))
        return gw, gb

    def train(self, X, Y, order):
        if len(order) < len(X):  # a partial epoch (warm-up, validation): hand fit exactly those rows
            X, Y, order = X[order], Y[order], np.arange(len(order))
        self.net.fit(X, Y, epochs=1, batch_size=self.sc.m, eta=self.sc.eta, order=order, monitor=False,
                     threads=self.threads)   # the row's thread count, not fit's own choice


class LoopnetDefaultFit(Loopnet):
    """What a user calls: ``net.fit(X, Y, epochs=1, batch_size=m, eta=η)`` with every other
    argument at its default (threads=None, monitor at its default, float64 checks of X and Y).

    The one departure: the epoch visits the rows in the ladder's shared permutation, given
    as ``order=`` so that every row of the ladder visits the same order.  That is the work of
    fit's default ``shuffle=True`` with its own permutation (it too visits X by index, never
    copying it); an earlier version passed ``X[order]`` with ``shuffle=False`` and so charged
    this row a 125 MB gather and a NaN scan of the fresh copy per 20,000-example epoch that a
    user's call does not make.
    """

    def __init__(self, sc, dtype):
        super().__init__(sc, dtype, 1)
        self.threads = None
        self.label = "loopnet fit() defaults"

    def threads_ctx(self):
        return _nullctx()

    def train(self, X, Y, order):
        if len(order) < len(X):  # a partial epoch (warm-up, validation): as Loopnet.train
            X, Y, order = X[order], Y[order], np.arange(len(order))
        self.net.fit(X, Y, epochs=1, batch_size=self.sc.m, eta=self.sc.eta, order=order)


class numba_threads_ctx:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import numba

        self.old = numba.get_num_threads()
        numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc):
        import numba

        numba.set_num_threads(self.old)


class Torch(Impl):
    """PyTorch CPU eager, the way a user writes it: nn.Sequential, autograd, optim.SGD."""

    def __init__(self, sc, dtype, threads):
        super().__init__(sc, dtype)
        import torch

        self.torch = torch
        self.threads = threads
        self.label = f"PyTorch CPU eager, {threads} thread{'s' if threads > 1 else ''}"
        self.tdtype = {"float64": torch.float64, "float32": torch.float32}[self.dtype.name]
        layers = []
        for a, b in zip(sc.sizes[:-1], sc.sizes[1:]):
            layers += [torch.nn.Linear(a, b, dtype=self.tdtype), torch.nn.Sigmoid()]
        self.model = torch.nn.Sequential(*layers)
        self.linears = [l for l in self.model if isinstance(l, torch.nn.Linear)]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=sc.eta)

    def threads_ctx(self):
        impl = self

        class ctx:
            def __enter__(self):
                self.old = impl.torch.get_num_threads()
                impl.torch.set_num_threads(impl.threads)

            def __exit__(self, *exc):
                impl.torch.set_num_threads(self.old)

        return ctx()

    def set(self, ws, bs):
        with self.torch.no_grad():
            for lin, w, b in zip(self.linears, ws, bs):
                lin.weight.copy_(self.torch.from_numpy(np.asarray(w, self.dtype)))
                lin.bias.copy_(self.torch.from_numpy(np.asarray(b, self.dtype)))

    def get(self):
        return ([l.weight.detach().numpy().copy() for l in self.linears],
                [l.bias.detach().numpy().copy() for l in self.linears])

    def _loss(self, xb, yb):
        out = self.model(xb)
        return 0.5 * ((out - yb) ** 2).sum(dim=1).mean()  # quadratic cost, averaged over the batch

    def gradient(self, X, Y):
        t = self.torch
        with self.threads_ctx():
            self.opt.zero_grad()
            self._loss(t.from_numpy(X.astype(self.dtype)), t.from_numpy(Y.astype(self.dtype))).backward()
        return ([l.weight.grad.numpy().copy() for l in self.linears],
                [l.bias.grad.numpy().copy() for l in self.linears])

    def train(self, X, Y, order):
        t = self.torch
        Xt, Yt, idx_all = t.from_numpy(X), t.from_numpy(Y), t.from_numpy(order)
        m = self.sc.m
        for k in range(0, len(order), m):
            idx = idx_all[k : k + m]
            self.opt.zero_grad()
            self._loss(Xt[idx], Yt[idx]).backward()
            self.opt.step()


class Sklearn(Impl):
    """scikit-learn MLPClassifier(solver='sgd'), constant learning rate, no momentum, no L2.

    Its output layer is softmax with log-loss whatever we ask, so it is validated against the
    reference with output='softmax', cost='log_likelihood' (same shapes and FLOPs, other loss).
    The gradient is read back from one partial_fit step: g = (w_before - w_after) / η."""

    output = ("softmax", "log_likelihood")

    def __init__(self, sc, dtype):
        super().__init__(sc, dtype)
        from sklearn.neural_network import MLPClassifier

        self.label = "scikit-learn MLPClassifier (sgd)"
        self.validates = "weights after 1 and after a few mini-batches (softmax + log-loss)"
        self.clf = MLPClassifier(hidden_layer_sizes=tuple(sc.sizes[1:-1]), activation="logistic",
                                 solver="sgd", batch_size=sc.m, learning_rate="constant",
                                 learning_rate_init=sc.eta, momentum=0.0, nesterovs_momentum=False,
                                 alpha=0.0, shuffle=False, random_state=0)
        self.classes = np.arange(sc.sizes[-1])
        X0 = np.zeros((sc.m, sc.sizes[0]), self.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(X0, np.arange(sc.m) % sc.sizes[-1], classes=self.classes)

    def set(self, ws, bs):
        self.clf.coefs_ = [np.array(w, self.dtype).T.copy() for w in ws]  # sklearn stores (fan_in, fan_out)
        self.clf.intercepts_ = [np.array(b, self.dtype) for b in bs]

    def get(self):
        return [c.T.copy() for c in self.clf.coefs_], [b.copy() for b in self.clf.intercepts_]

    def gradient(self, X, Y):
        if self.dtype == np.float32:
            # (w0 - w1)/η loses ~eps32·|w|/|η g| ≈ 1e-4 to rounding: not a test of sklearn;
            # float32 is validated by the weights after the mini-batches only
            return None
        w0, b0 = self.get()
        self._fit(X.astype(self.dtype), Y.argmax(axis=1))
        w1, b1 = self.get()
        self.set(w0, b0)
        eta = self.sc.eta
        return [(a - b) / eta for a, b in zip(w0, w1)], [(a - b) / eta for a, b in zip(b0, b1)]

    def _fit(self, X, labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(X, labels)

    def train(self, X, Y, order):
        self._fit(X[order], Y[order].argmax(axis=1))  # partial_fit = one epoch in batches of m


def ladder(sc, dtype, cores, want=None):
    """The implementations timed for one scenario, in table order (those installed)."""
    rows = [("numpy", lambda: NumpyMatrix(sc, dtype)),
            ("numpy1", lambda: NumpyMatrix(sc, dtype, threads=1)),
            ("nielsen", lambda: NielsenStyle(sc, dtype)),
            ("loopnet1", lambda: Loopnet(sc, dtype, 1))]
    if cores > 1:
        rows.append(("loopnet", lambda: Loopnet(sc, dtype, cores)))
    rows.append(("fit", lambda: LoopnetDefaultFit(sc, dtype)))
    if _optional("torch") is not None:
        rows.append(("torch1", lambda: Torch(sc, dtype, 1)))
        if cores > 1:
            rows.append(("torch", lambda: Torch(sc, dtype, cores)))
    if _optional("sklearn") is not None:
        rows.append(("sklearn", lambda: Sklearn(sc, dtype)))
    out = []
    for key, make in rows:
        if want and key not in want:
            continue
        out.append((key, make()))
    return out
