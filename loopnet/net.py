"""The core Python API: validation, seeded initialisation, the epoch loop.

Everything numeric happens in :mod:`loopnet.engine`; this module checks what
the user passes, lays out the buffers once, and drives the compiled code.
"""

import copy as _copy
import math
import time
from numbers import Integral, Real

import numba
import numpy as np

from . import activations, costs, engine, optim

#: Examples per compiled call inside an epoch.  Between calls Python checks for
#: divergence, reports progress and lets Ctrl-C in; a call this size costs a
#: few milliseconds, so the ~10 µs of dispatch per call is noise.
SEGMENT_EXAMPLES = 4096
# Hyper-parameters for engine.run_batches when it does not update: any valid set would do.
_NO_STEP = optim.make_hyper("sgd", 1.0, 0.0, 1, 0.0, 0.9, 0.999, 1e-8)

#: Below this many floating-point operations per mini-batch, training runs on
#: the calling thread alone: waking other threads twice per mini-batch (a few
#: µs) would cost more than it saves.  Results are bit-identical for any number
#: of threads, so this and :class:`_ThreadChooser` are purely speed choices.
PARALLEL_MIN_FLOPS = 400_000

#: With ``threads=None`` every PROBE_EVERY-th compiled call of an epoch is
#: timed with the thread count not currently preferred, to notice a change of load.
#: Such a probe runs 1/PROBE_SHARE of the usual mini-batches, so that probing the
#: slower choice costs little (at 1/1 it cost W2 10% of its epoch).
PROBE_EVERY = 8
PROBE_SHARE = 8

DTYPES = ("float64", "float32")


class DivergenceError(FloatingPointError):
    """Training produced NaN or ±inf; the network was rolled back to the start of ``epoch``."""

    def __init__(self, epoch, what):
        self.epoch = epoch
        super().__init__(
            f"training diverged in epoch {epoch}: {what} became NaN or infinite; "
            f"the parameters were restored to the start of that epoch. "
            f"Try a smaller learning rate eta.")


class Net:
    """A fully-connected network trained by backpropagation in component form.

    Parameters
    ----------
    sizes : list of int
        Neurons per layer, input first: ``[784, 30, 10]`` has L = 2 weight layers.
    activation : {"sigmoid", "tanh", "relu", "identity"}
        σ of the hidden layers.
    output : {"sigmoid", "tanh", "relu", "identity", "softmax"}
        σ of the output layer L.
    cost : {"quadratic", "cross_entropy", "log_likelihood", "mse"}
        C_x, see :mod:`loopnet.costs`.
    dtype : {"float64", "float32"}
    seed : int, numpy.random.Generator or None
        Source of the initial weights and of each epoch's shuffle; loopnet
        never touches NumPy's global random state.
    init : {"default", "large"}
        "default": w ~ N(0, 1/n_{l−1}), b ~ N(0, 1) (network2);
        "large": w, b ~ N(0, 1) (network.py).

    Every result is bit-identical whatever the number of threads: see
    :mod:`loopnet.engine` for how the work is shared out.
    """

    def __init__(self, sizes, *, activation="sigmoid", output="sigmoid", cost="quadratic",
                 dtype="float64", seed=None, init="default"):
        self.sizes = _check_sizes(sizes)
        if activation == "softmax":
            raise ValueError("activation 'softmax' is only available for the output layer "
                             "(output='softmax'); hidden layers need an elementwise activation")
        act, out = activations.code(activation), activations.code(output)
        cost_code = costs.code(cost)
        costs.check_pair(output, cost)
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32', not {dtype!r}")
        if init not in ("default", "large"):
            raise ValueError(f"init must be 'default' or 'large', not {init!r}")
        self.activation, self.output, self.cost_name = activation, output, cost
        self.dtype = np.dtype(str(dtype))
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._arch = engine.make_arch(self.sizes, act, out, cost_code)
        self._work = engine.make_work(self._arch, engine.BLOCK_EXAMPLES, self.dtype)
        self.params = np.zeros(int(self._arch.p_off[-1]), self.dtype)
        self._initialise(init)
        self._optimizer = "sgd"
        self._state = optim.make_state(self.params.size, self.dtype)
        self.epoch = 0
        self.history = []

    # ----------------------------------------------------------------- layout
    def _initialise(self, init):
        """Draw, layer by layer, w^l (n_l × n_{l−1}) then b^l from ``self.rng``."""
        for w, b in zip(self.weights, self.biases):
            scale = 1.0 if init == "large" else 1.0 / math.sqrt(w.shape[1])
            w[...] = self.rng.standard_normal(w.shape) * scale
            b[...] = self.rng.standard_normal(b.shape)

    def unflatten(self, flat):
        """Views ``(ws, bs)`` of a flat (P,) array laid out like :attr:`params`."""
        flat = np.asarray(flat)
        if flat.shape != self.params.shape:
            raise ValueError(f"flat array has shape {flat.shape}, expected {self.params.shape}")
        ws, bs = [], []
        for i in range(len(self.sizes) - 1):
            n, m = self.sizes[i + 1], self.sizes[i]
            start = self._arch.p_off[i]
            ws.append(flat[start:start + n * m].reshape(n, m))
            bs.append(flat[start + n * m:start + n * m + n])
        return ws, bs

    @property
    def weights(self):
        """w^1 … w^L, each (n_l, n_{l−1}): views into :attr:`params`.

        ``net.weights[0] = W`` and ``net.weights[0][j, k] = v`` both write into
        the network (the list copies an assigned array into its layer).
        """
        return LayerList(self.unflatten(self.params)[0], "weights")

    @weights.setter
    def weights(self, values):
        _assign(self.weights, values, "weights")

    @property
    def biases(self):
        """b^1 … b^L, each (n_l,): views into :attr:`params` (assignable like :attr:`weights`)."""
        return LayerList(self.unflatten(self.params)[1], "biases")

    @biases.setter
    def biases(self, values):
        _assign(self.biases, values, "biases")

    @property
    def config(self):
        """The architecture as a JSON-compatible dict (enough to rebuild the net)."""
        return {"sizes": list(self.sizes), "activation": self.activation, "output": self.output,
                "cost": self.cost_name, "dtype": self.dtype.name}

    @property
    def optimizer_state(self):
        """``{"name", "t", "velocity", "m", "v"}``: everything an update depends on."""
        s = self._state
        return {"name": self._optimizer, "t": int(s.t[0]), "velocity": s.velocity,
                "m": s.m, "v": s.v}

    @optimizer_state.setter
    def optimizer_state(self, value):
        if value["name"] not in optim.NAMES:
            raise ValueError(f"unknown optimizer {value['name']!r} in optimizer state")
        arrays = []
        for key in ("velocity", "m", "v"):
            arr = np.asarray(value[key])
            if arr.shape != self.params.shape:
                raise ValueError(f"optimizer state {key!r} has shape {arr.shape}, "
                                 f"expected {self.params.shape}")
            arrays.append(arr.astype(self.dtype))
        self._optimizer = value["name"]
        self._state = optim.State(*arrays, np.array([int(value["t"])], np.int64))

    def copy(self):
        """An independent copy: parameters, optimizer state, RNG state and history."""
        return _copy.deepcopy(self)

    def __getstate__(self):
        """Plain state for pickle/joblib/deepcopy; buffers are rebuilt on unpickling."""
        state = self.optimizer_state
        return {"config": self.config, "params": self.params, "optimizer": state,
                "rng": self.rng.bit_generator.state, "epoch": self.epoch,
                "history": self.history}

    def __setstate__(self, d):
        c = d["config"]
        self.__init__(c["sizes"], activation=c["activation"], output=c["output"],
                      cost=c["cost"], dtype=c["dtype"], seed=0)
        self.params[...] = d["params"]          # a copy: memory-mapped inputs stay untouched
        self.optimizer_state = d["optimizer"]
        self.rng.bit_generator.state = d["rng"]
        self.epoch = d["epoch"]
        self.history = list(d["history"])

    def __repr__(self):
        return (f"Net({self.sizes}, activation={self.activation!r}, output={self.output!r}, "
                f"cost={self.cost_name!r}, dtype={self.dtype.name!r}, epoch={self.epoch})")

    # ------------------------------------------------------------ evaluation
    def predict(self, X):
        """Output activations a^L for every row of X: shape (m, n_L)."""
        X = self._inputs(X)
        return self._forward(X, None)[0]

    def _forward(self, X, Y):
        """Outputs a^L of every row and, when targets Y are given, each row's C_x."""
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        costs = np.zeros(X.shape[0] if Y is not None else 0)
        self._run(X, out if Y is None else Y, engine.PREDICT, out, costs)
        return out, costs

    def cost(self, X, Y, lmbda=0.0):
        """Mean cost (1/n) Σ_x C_x over the rows, plus (λ/2n) Σ w² when λ > 0."""
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        lmbda = _check_real(lmbda, "lmbda", minimum=0.0)
        return float(np.sum(self._forward(X, Y)[1])) / X.shape[0] + self._l2_term(lmbda, len(X))

    def _l2_term(self, lmbda, n):
        """(λ/2n) Σ_w w², network2's regularisation term of the cost."""
        if not lmbda:
            return 0.0
        return 0.5 * lmbda / n * sum(float((w.astype(np.float64) ** 2).sum())
                                     for w in self.weights)

    def accuracy(self, X, labels):
        """Fraction of rows whose largest output is the label (labels or one-hot rows)."""
        X = self._inputs(X)
        labels = self._labels(labels, X.shape[0])
        return float(np.mean(np.argmax(self.predict(X), axis=1) == labels))

    # --------------------------------------------------------------- gradient
    def gradient_sum(self, X, Y):
        """Σ_x ∇C_x over the rows as a flat (P,) array laid out like :attr:`params`."""
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        self._work.grad[:] = 0
        self._run(X, Y, engine.GRADIENT)
        return self._work.grad.copy()

    def gradient(self, X, Y):
        """The averaged gradient (1/m) Σ_x ∇C_x: lists ``(nabla_w, nabla_b)`` like weights."""
        total = self.gradient_sum(X, Y)
        return self.unflatten(total / total.dtype.type(len(X)))

    def _run(self, X, Y, job, out=None, costs=None):
        """engine.run_batches over every row of X, as many rows per phase-A block as the
        scratch holds."""
        if out is None:
            out, costs = self._no_output()
        block = engine.work_rows(self._work)
        n_blocks = -(-X.shape[0] // block)
        engine.run_batches(self.params, self._state, self._work, X, Y, np.arange(X.shape[0]), block,
                           0, n_blocks, self._arch, _NO_STEP, job, out, costs)

    def _no_output(self):
        """(out, costs) for engine.run_batches when it writes no outputs: empty, typed as it expects."""
        return np.empty((0, self.sizes[-1]), self.dtype), np.empty(0)

    # --------------------------------------------------------------- training
    def step(self, grad, *, eta, lmbda=0.0, n=1, momentum=0.0, optimizer="sgd",
             beta1=0.9, beta2=0.999, epsilon=1e-8, m=1):
        """One optimizer update (see :mod:`loopnet.optim`) from a flat gradient.

        ``grad`` is the averaged gradient, or with ``m`` > 1 the SUM Σ_x ∇C_x
        over m examples: ``step(net.gradient_sum(X, Y), m=len(X), ...)`` is then
        exactly the update ``fit`` makes for the mini-batch X, bit for bit.
        """
        grad = np.ascontiguousarray(grad, dtype=self.dtype)
        if grad.shape != self.params.shape:
            raise ValueError(f"gradient has shape {grad.shape}, expected {self.params.shape}")
        m = _check_int(m, "m (examples summed in grad)", minimum=1)
        hyper = self._hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)
        engine.apply_step(self.params, self._state, grad, m, self._arch, hyper)

    def fit(self, X, Y, *, epochs=30, batch_size=10, eta=3.0, lmbda=0.0, momentum=0.0,
            optimizer="sgd", beta1=0.9, beta2=0.999, epsilon=1e-8, tol=None,
            validation_data=None, shuffle=True, order=None, monitor=True, callback=None,
            progress=None, threads=None, comm=None, deterministic=False):
        """Mini-batch gradient descent for ``epochs`` more epochs; returns ``self``.

        Each epoch visits the rows in a fresh ``self.rng.permutation`` (or in
        ``order``, or as given with ``shuffle=False``), mini-batches of
        ``batch_size`` (the last may be shorter), and after each mini-batch
        updates every parameter with the averaged gradient (1/m) Σ_x ∇C_x.

        ``tol``: stop once the full-batch gradient norm ‖∇C‖ ≤ tol (checked
        after each epoch; costs one extra pass).  ``callback(net, record)``
        runs after each epoch and stops training by returning True.
        ``progress(done, total)`` reports mini-batches done within an epoch.

        ``threads``: how many threads train (at most ``numba.get_num_threads()``).
        ``None`` chooses by measurement: each run of mini-batches is timed, and
        the faster of one thread and all threads is used (on a busy machine,
        synchronising threads twice per mini-batch can cost more than it saves).
        The result is bit-identical whatever is chosen.

        ``comm``: an MPI communicator (or ``"world"``) to train data-parallel
        over MPI ranks, each mini-batch split across them; ``deterministic``
        then sums the ranks' parts in rank order.  See :mod:`loopnet.distributed`.

        Ctrl-C or divergence restores the state at the start of the epoch in
        progress, so a saved network can always resume bit-identically.
        """
        if comm is not None:
            from . import distributed
            return distributed.fit(
                self, X, Y, comm=comm, deterministic=deterministic, epochs=epochs,
                batch_size=batch_size, eta=eta, lmbda=lmbda, momentum=momentum,
                optimizer=optimizer, beta1=beta1, beta2=beta2, epsilon=epsilon, tol=tol,
                validation_data=validation_data, shuffle=shuffle, order=order, monitor=monitor,
                callback=callback, progress=progress)
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        n = X.shape[0]
        epochs = _check_int(epochs, "epochs", minimum=0)
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        hyper = self._hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)
        if tol is not None:
            tol = _check_real(tol, "tol", minimum=0.0)
        if order is not None:
            order = _check_order(order, n)
        labels = self._labels_or_none(Y)
        if threads is not None:
            threads = _check_int(threads, "threads", minimum=1)
        if engine.work_rows(self._work) < batch_size:
            self._work = engine.make_work(self._arch, batch_size, self.dtype)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, Y_val)")
            Xv = self._inputs(validation_data[0], "validation X")
            Yv = self._targets(validation_data[1], Xv.shape[0], "validation Y")
            val = (Xv, Yv, self._labels_or_none(Yv))
        chooser = _ThreadChooser(threads, self._flops_per_example() * batch_size)
        for _ in range(epochs):
            record = self._train_epoch(X, Y, labels, order, shuffle, batch_size, hyper,
                                       lmbda, monitor, val, tol, progress, chooser)
            if callback is not None and callback(self, record):
                break
            if tol is not None and record["grad_norm"] <= tol:
                break
        return self

    def _train_epoch(self, X, Y, labels, order, shuffle, batch_size, hyper, lmbda, monitor,
                     val, tol, progress, chooser):
        """One epoch, with rollback to its start on Ctrl-C or divergence."""
        saved = self._snapshot()
        n = X.shape[0]
        try:
            if order is None:
                order = self.rng.permutation(n) if shuffle else np.arange(n)
            n_batches = -(-len(order) // batch_size)   # order may visit a subset of the rows
            per_call = max(1, SEGMENT_EXAMPLES // batch_size)
            no_output = self._no_output()
            start = time.perf_counter()
            last = 0
            while last < n_batches:
                first = last
                threads, probe = chooser.next()
                last = min(first + (max(1, per_call // PROBE_SHARE) if probe else per_call),
                           n_batches)
                began = time.perf_counter()
                _train_batches(threads, self.params, self._state, self._work, X, Y, order,
                               batch_size, first, last, self._arch, hyper, engine.TRAIN,
                               *no_output)
                chooser.record(threads, (time.perf_counter() - began) / (last - first))
                if not np.isfinite(self.params).all():
                    raise DivergenceError(self.epoch + 1, "a parameter")
                if progress is not None:
                    progress(last, n_batches)
            seconds = time.perf_counter() - start
            record = {"epoch": self.epoch + 1, "seconds": seconds,
                      "examples_per_s": len(order) / seconds if seconds > 0 else float("inf")}
            if monitor:
                record.update(self._measure(X, Y, labels, lmbda, ""))
                if val is not None:
                    record.update(self._measure(*val, 0.0, "val_"))
                if not math.isfinite(record["cost"]):
                    raise DivergenceError(self.epoch + 1, "the cost")
            if tol is not None:
                record["grad_norm"] = self._grad_norm(X, Y, lmbda)
        except BaseException:
            self._restore(saved)
            raise
        self.epoch += 1
        self.history.append(record)
        return record

    def _flops_per_example(self):
        """Multiply-adds ×2 for the forward pass and for BP4, the bulk of a training step."""
        return 4 * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def _measure(self, X, Y, labels, lmbda, prefix):
        """Cost (and accuracy for classification) of a validated data set in one forward pass."""
        outputs, costs = self._forward(X, Y)
        record = {prefix + "cost": float(np.sum(costs)) / len(X) + self._l2_term(lmbda, len(X))}
        if labels is not None:
            record[prefix + "accuracy"] = float(np.mean(np.argmax(outputs, axis=1) == labels))
        return record

    def _grad_norm(self, X, Y, lmbda):
        """‖∇C‖ over the whole training set, the L2 term λ/n · w included."""
        nabla_w, nabla_b = self.gradient(X, Y)
        total = sum(float((nb.astype(np.float64) ** 2).sum()) for nb in nabla_b)
        for nw, w in zip(nabla_w, self.weights):
            g = nw.astype(np.float64) + lmbda / X.shape[0] * w
            total += float((g ** 2).sum())
        return math.sqrt(total)

    def _hyper(self, optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon):
        """Validate hyper-parameters; reset the optimizer state when the optimizer changes."""
        optim.code(optimizer)
        eta = _check_real(eta, "eta (learning rate)", minimum=0.0, strict=True)
        lmbda = _check_real(lmbda, "lmbda (L2 strength)", minimum=0.0)
        n = _check_int(n, "n (training-set size)", minimum=1)
        momentum = _check_real(momentum, "momentum", minimum=0.0, below=1.0)
        beta1 = _check_real(beta1, "beta1", minimum=0.0, below=1.0)
        beta2 = _check_real(beta2, "beta2", minimum=0.0, below=1.0)
        epsilon = _check_real(epsilon, "epsilon", minimum=0.0, strict=True)
        if optimizer != self._optimizer:
            self._optimizer = optimizer
            self._state = optim.make_state(self.params.size, self.dtype)
        return optim.make_hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)

    def _snapshot(self):
        return (self.params.copy(), _copy.deepcopy(self._state), self._optimizer,
                self.rng.bit_generator.state)

    def _restore(self, saved):
        params, state, name, rng_state = saved
        self.params[...] = params
        self._state, self._optimizer = state, name
        self.rng.bit_generator.state = rng_state

    # ------------------------------------------------------------- validation
    def _inputs(self, X, name="X"):
        """X as a C-contiguous (m, n_0) array of the net's dtype, finite and non-empty."""
        X = _as_float_array(X, name)
        if X.ndim == 1 and X.shape[0] == self.sizes[0]:
            raise ValueError(f"{name} must be 2-D (m, {self.sizes[0]}): one example per row; "
                             f"for a single example use {name}.reshape(1, -1)")
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"{name} has shape {X.shape}; this network takes "
                             f"(m, {self.sizes[0]}) inputs, one example per row")
        if X.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 rows)")
        _check_finite(X, name)
        return np.ascontiguousarray(X, dtype=self.dtype)

    def _targets(self, Y, m, name="Y"):
        """Y as (m, n_L) targets; 1-D integer labels become one-hot rows."""
        n_out = self.sizes[-1]
        Y = np.asarray(Y)
        if Y.ndim == 1 and n_out > 1:
            labels = self._labels(Y, m, name)
            Y = np.zeros((m, n_out))
            Y[np.arange(m), labels] = 1.0
        elif Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        Y = _as_float_array(Y, name)
        if Y.shape != (m, n_out):
            raise ValueError(f"{name} has shape {Y.shape}; expected ({m}, {n_out}) targets "
                             f"(one row per example) or {m} integer labels")
        _check_finite(Y, name)
        return np.ascontiguousarray(Y, dtype=self.dtype)

    def _labels(self, labels, m, name="labels"):
        """Integer class labels 0 … n_L − 1 (one-hot rows are turned into labels)."""
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == self.sizes[-1]:
            labels = np.argmax(labels, axis=1)
        if labels.ndim != 1 or labels.shape[0] != m:
            raise ValueError(f"{name} has shape {labels.shape}; expected {m} integer labels")
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and \
                np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{name} must be integer class labels, got dtype {labels.dtype}")
        bad = np.flatnonzero((labels < 0) | (labels >= self.sizes[-1]))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] = {labels[bad[0]]} is out of range: this "
                             f"network has {self.sizes[-1]} outputs, so labels are 0..{self.sizes[-1] - 1}")
        return labels.astype(np.int64)

    def _labels_or_none(self, Y):
        """Class labels of one-hot targets (for accuracy), or None for other targets."""
        if Y.shape[1] < 2:
            return None
        is_one_hot = np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1)
        return np.argmax(Y, axis=1) if is_one_hot else None


def warmup(dtype="float64"):
    """Compile (or load from the disk cache) every compiled path for ``dtype``; return seconds.

    The compiled code does not depend on the layer sizes, activations or cost
    (those are values, not types), so a tiny network warms up all of them.
    Call it before timing anything: the first run compiles for about 10 s, later
    processes load the cache in about a second.
    """
    start = time.perf_counter()
    net = Net([2, 2, 2], dtype=dtype, seed=0)
    X = np.zeros((4, 2))
    y = np.array([0, 1, 0, 1])
    for optimizer in optim.NAMES:
        # The compiled code is the same for any thread count; all threads also starts the pool.
        net.fit(X, y, epochs=1, batch_size=2, eta=0.1, optimizer=optimizer, tol=1.0,
                validation_data=(X, y), threads=numba.get_num_threads())
    net.step(net.gradient_sum(X, y), eta=0.1)
    net.predict(X)
    return time.perf_counter() - start


# ------------------------------------------------------------------ helpers
class _ThreadChooser:
    """Picks the thread count for each compiled run of mini-batches.

    A fixed request is honoured (capped at Numba's thread count).  Otherwise
    the candidates are one thread and all threads; each is timed per
    mini-batch, the faster is used, and every PROBE_EVERY-th run re-times the
    other one (on a short run) so that a change of machine load is noticed.
    """

    def __init__(self, threads, flops_per_batch):
        most = numba.get_num_threads()
        if threads is not None:
            self.candidates = [min(threads, most)]
        elif most > 1 and flops_per_batch >= PARALLEL_MIN_FLOPS:
            self.candidates = [most, 1]
        else:
            self.candidates = [1]
        self.seconds = {}
        self.calls = 0

    def next(self):
        """(threads, probe) for the next run; a probe times a choice that is not the best."""
        self.calls += 1
        untried = [k for k in self.candidates if k not in self.seconds]
        if untried:
            return untried[0], bool(self.seconds)
        best = min(self.candidates, key=self.seconds.get)
        if len(self.candidates) > 1 and self.calls % PROBE_EVERY == 0:
            return next(k for k in self.candidates if k != best), True
        return best, False

    def record(self, threads, seconds_per_batch):
        self.seconds[threads] = seconds_per_batch


def _train_batches(threads, *args):
    """engine.run_batches(..., TRAIN) with at most ``threads`` threads (restored afterwards)."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, before))
    try:
        engine.run_batches(*args)
    finally:
        numba.set_num_threads(before)


def _check_sizes(sizes):
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a list of layer widths like [784, 30, 10], "
                        f"not {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output layer, got {sizes}")
    for s in sizes:
        if not isinstance(s, Integral) or isinstance(s, bool) or s < 1:
            raise ValueError(f"every layer width must be a positive integer, got {sizes}")
    return [int(s) for s in sizes]


def _as_float_array(A, name):
    try:
        A = np.asarray(A)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} is not a numeric array ({exc})") from None
    if A.dtype.kind == "b" or A.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {A.dtype}")
    return A


def _check_finite(A, name):
    if np.isfinite(A.sum(axis=0)).all():   # a NaN or inf makes its column's sum non-finite;
        return                              # one pass, no temporary the size of A
    if not np.all(np.isfinite(A)):          # (or finite numbers overflowed: look closer)
        row = int(np.argwhere(~np.isfinite(A))[0][0])
        raise ValueError(f"{name} contains NaN or infinity (first in row {row})")


def _check_int(value, name, minimum):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(value, name, minimum=None, below=None, strict=False):
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    if below is not None and value >= below:
        raise ValueError(f"{name} must be < {below}, got {value}")
    return value


def _check_order(order, n):
    order = np.asarray(order)
    if order.ndim != 1 or order.dtype.kind not in "iu":
        raise ValueError("order must be a 1-D array of integer row indices")
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order holds indices outside 0..{n - 1}")
    return np.ascontiguousarray(order, dtype=np.int64)


class LayerList(list):
    """The per-layer views of :attr:`Net.weights` / :attr:`Net.biases`.

    Assigning an element copies the array into the network's buffer (after
    checking its shape and values) instead of silently replacing a list entry.
    """

    def __init__(self, views, name):
        super().__init__(views)
        self.name = name

    def __setitem__(self, i, value):
        if not isinstance(i, Integral):
            raise TypeError(f"assign {self.name} one layer at a time, e.g. net.{self.name}[0] = ...")
        i = range(len(self))[i]
        list.__getitem__(self, i)[...] = _layer_array(list.__getitem__(self, i), value,
                                                      f"{self.name}[{i}]")


def _layer_array(view, value, label):
    """``value`` as an array shaped like ``view``; (n, 1) columns (Nielsen's biases) are accepted."""
    arr = _as_float_array(value, label)
    if arr.shape != view.shape and not (view.ndim == 1 and arr.shape == (view.shape[0], 1)):
        raise ValueError(f"{label} has shape {arr.shape}, expected {view.shape}")
    _check_finite(arr, label)
    return arr.reshape(view.shape)


def _assign(views, values, name):
    values = list(values)
    if len(values) != len(views):
        raise ValueError(f"{name}: expected {len(views)} arrays, got {len(values)}")
    arrays = [_layer_array(view, v, f"{name}[{i}] (layer {i + 1})")
              for i, (view, v) in enumerate(zip(views, values))]
    for view, arr in zip(views, arrays):
        view[...] = arr
