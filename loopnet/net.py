"""The core Python API: the network, its views, and its calls into the engine.

Checks live in :mod:`loopnet.checks`, the epoch loop in :mod:`loopnet.training`,
everything numeric in :mod:`loopnet.engine`; this module builds the buffers
once and exposes them as a network: construction, views, predict, cost,
gradient, step and fit.
"""

import copy as _copy
import math
import time
from numbers import Integral

import numba
import numpy as np

from . import activations, costs, distributed, engine, optim, privacy, reporting, training
from .checks import (INITS, as_float_array, cast_finite, check_choice, check_dropout, check_dtype,
                     check_finite, check_int, check_labels, check_order, check_pair, check_real,
                     check_rows, check_sample_weight, check_sizes, check_targets, labels_or_none)
from .training import DivergenceError, EngineBuffers

__all__ = ["Net", "DivergenceError", "LayerList", "warmup"]

SUBNORMALS = ("flush", "keep")


def default_subnormals(dtype):
    """``Net(subnormals=None)``: "flush" for float32, "keep" for float64."""
    return "flush" if np.dtype(dtype) == np.float32 else "keep"


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
    dropout : float or list of float
        Inverted dropout (Nielsen chapter 3) of the hidden layers in training:
        one probability p for all or one per hidden layer; 0 (the default) is none.
    subnormals : {"flush", "keep"} or None
        What the engine's threads do with subnormal numbers (nonzero, below 1.18e-38 in
        float32): "flush" makes them 0 (FTZ and DAZ on x86-64, :mod:`loopnet.fpenv`), "keep"
        computes with them as IEEE 754 says, at tens of cycles each, even in a thread whose
        caller flushes (e.g. after ``torch.set_flush_denormal(True)``).  None (the default):
        "flush" for float32, where saturated sigmoids produce them (W5, 10,000 examples on a
        2-core Xeon: 0.29 → 0.18 s an epoch), "keep" for float64, where they practically never
        occur.

    Every result is bit-identical whatever the number of threads: see
    :mod:`loopnet.engine` for how the work is shared out.
    """

    def __init__(self, sizes, *, activation="sigmoid", output="sigmoid", cost="quadratic",
                 dtype="float64", seed=None, init="default", dropout=0.0, subnormals=None):
        self._sizes = LayerSizes(check_sizes(sizes))
        if activation == "softmax":
            raise ValueError("activation 'softmax' is only available for the output layer "
                             "(output='softmax'); hidden layers need an elementwise activation")
        act, out = activations.code(activation), activations.code(output)
        cost_code = costs.code(cost)
        costs.check_pair(output, cost)
        self._dtype = check_dtype(dtype)
        check_choice(init, "init", INITS)
        self._names = (activation, output, cost)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if subnormals is None:
            subnormals = default_subnormals(self._dtype)
        self._subnormals = check_choice(subnormals, "subnormals", SUBNORMALS)
        self._arch = engine.make_arch(self.sizes, act, out, cost_code,
                                      flush=self._subnormals == "flush")
        self._work = engine.make_work(self._arch, engine.BLOCK_EXAMPLES, self.dtype)
        self._params = np.zeros(int(self._arch.p_off[-1]), self.dtype)
        self._initialise(init)
        self._optimizer = "sgd"
        self._state = optim.make_state(self.params.size, self.dtype)
        self.epoch = 0
        self.history = []
        self.best_epoch = None      # the epoch whose parameters fit(restore_best=True) restored
        self.example_norms = []
        self.dropout = dropout

    # ----------------------------------------------------------------- layout
    # The layout (sizes, dtype, names) is fixed at construction: the compiled code
    # indexes the buffers by it, so nothing a user assigns may change it.  The
    # parameters are assigned through a checked setter that copies into the buffer.
    @property
    def sizes(self):
        """Neurons per layer [n_0, …, n_L]: a read-only tuple (equal to the list it came from)."""
        return self._sizes

    @property
    def subnormals(self):
        """"flush" or "keep": what training and prediction do with subnormal numbers (read-only)."""
        return self._subnormals

    @property
    def dtype(self):
        """The floating-point type of every buffer (read-only; build a new Net to change it)."""
        return self._dtype

    @property
    def activation(self):
        """σ of the hidden layers (read-only)."""
        return self._names[0]

    @property
    def output(self):
        """σ of the output layer (read-only)."""
        return self._names[1]

    @property
    def cost_name(self):
        """The cost C_x (read-only)."""
        return self._names[2]

    @property
    def params(self):
        """The flat parameter buffer [w^1, b^1, …, w^L, b^L], shape (P,).

        Elements may be written in place; ``net.params = A`` copies A into the
        buffer after checking its shape (P,) and that it is finite.
        """
        return self._params

    @params.setter
    def params(self, value):
        arr = as_float_array(value, "params")
        if arr.shape != self._params.shape:
            raise ValueError(f"params has shape {arr.shape}, this network needs "
                             f"{self._params.shape} (sizes {list(self.sizes)})")
        check_finite(arr, "params")
        np.copyto(self._params, arr, casting="unsafe")

    def adopt_params(self, buffer, checked=False):
        """Make ``buffer`` itself the parameter buffer (no copy), after checking that it is
        a C-contiguous (P,) array of the network's dtype; returns it.

        For wrappers whose users hold views of the parameters between updates (the Nielsen
        drop-ins make new arrays at each update, as his code does): ``net.params = A``
        copies A into the existing buffer instead.  ``checked=True``: the caller has
        already checked that every value is finite (and said which of its arrays is not),
        so the values are not scanned again.
        """
        if not isinstance(buffer, np.ndarray) or buffer.dtype != self.dtype \
                or buffer.shape != self._params.shape or not buffer.flags.c_contiguous \
                or not buffer.flags.writeable:
            raise ValueError(f"adopt_params needs a writeable C-contiguous {self.dtype.name} "
                             f"array of shape {self._params.shape}")
        if not checked:
            check_finite(buffer, "params")
        self._params = buffer
        return buffer

    @property
    def rng(self):
        """The numpy.random.Generator of the epoch shuffles."""
        return self._rng

    @rng.setter
    def rng(self, value):
        if not isinstance(value, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, not {type(value).__name__}")
        self._rng = value

    @property
    def epoch(self):
        """Epochs trained so far (an integer ≥ 0)."""
        return self._epoch

    @epoch.setter
    def epoch(self, value):
        self._epoch = check_int(value, "epoch", minimum=0)

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
            n_out, n_in = self.sizes[i + 1], self.sizes[i]
            start = self._arch.p_off[i]
            ws.append(flat[start:start + n_out * n_in].reshape(n_out, n_in))
            bs.append(flat[start + n_out * n_in:start + n_out * n_in + n_out])
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
        config = {"sizes": list(self.sizes), "activation": self.activation,
                  "output": self.output, "cost": self.cost_name, "dtype": self.dtype.name}
        if any(self.dropout):
            config["dropout"] = list(self.dropout)
        if self.subnormals != default_subnormals(self.dtype):
            config["subnormals"] = self.subnormals
        return config

    @property
    def dropout(self):
        """Dropout p of each hidden layer (a tuple, 0 = none); assigning checks it."""
        return self._dropout

    @dropout.setter
    def dropout(self, value):
        self._dropout = tuple(check_dropout(value, len(self.sizes) - 2))

    def dropout_rates(self):
        """Dropout p of every layer (the output's 0) for the engine, or None without dropout."""
        if not any(self.dropout):
            return None
        return np.array(list(self.dropout) + [0.0])

    @property
    def optimizer_state(self):
        """``{"name", "t", "velocity", "m", "v"}``: everything an update depends on."""
        s = self._state
        return {"name": self._optimizer, "t": int(s.t[0]), "velocity": s.velocity,
                "m": s.m, "v": s.v}

    @optimizer_state.setter
    def optimizer_state(self, value):
        if not isinstance(value, dict) or value.get("name") not in optim.NAMES:
            raise ValueError("optimizer state must be a dict with 'name' one of "
                             f"{', '.join(optim.NAMES)}")
        t = check_int(value.get("t"), "optimizer state 't'", minimum=0)
        arrays = []
        for key in ("velocity", "m", "v"):
            arr = as_float_array(value.get(key), f"optimizer state {key!r}")
            if arr.shape != self.params.shape:
                raise ValueError(f"optimizer state {key!r} has shape {arr.shape}, "
                                 f"expected {self.params.shape}")
            check_finite(arr, f"optimizer state {key!r}")
            # a copy: the engine writes into it (a pickled or mapped array may be read-only)
            arrays.append(cast_finite(arr, self.dtype, f"optimizer state {key!r}").copy())
        self._optimizer = value["name"]
        self._state = optim.State(*arrays, np.array([t], np.int64))

    def copy(self):
        """An independent copy: parameters, optimizer state, RNG state, history and example_norms."""
        return _copy.deepcopy(self)

    def __getstate__(self):
        """Plain state for pickle/joblib/deepcopy; buffers are rebuilt on unpickling."""
        state = self.optimizer_state
        return {"config": self.config, "params": self.params, "optimizer": state,
                "rng": self.rng.bit_generator.state, "epoch": self.epoch,
                "history": self.history, "example_norms": self.example_norms}

    def __setstate__(self, d):
        c = d["config"]
        self.__init__(c["sizes"], activation=c["activation"], output=c["output"],
                      cost=c["cost"], dtype=c["dtype"], seed=0, dropout=c.get("dropout", 0.0))
        self.params[...] = d["params"]          # a copy: memory-mapped inputs stay untouched
        self.optimizer_state = d["optimizer"]
        self.rng.bit_generator.state = d["rng"]
        self.epoch = d["epoch"]
        self.history = list(d["history"])
        self.example_norms = list(d.get("example_norms", []))

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
        return training.forward_rows(self.engine_buffers(), X, Y)

    def cost(self, X, Y, lmbda=0.0, sample_weight=None):
        """Mean cost (1/n) Σ_x C_x over the rows, plus (λ/2n) Σ w² when λ > 0;
        with ``sample_weight`` the weighted mean Σ_x w_x C_x / Σ_x w_x."""
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        lmbda = check_real(lmbda, "lmbda", minimum=0.0)
        per_x = self._forward(X, Y)[1]
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, X.shape[0])
            return float(np.sum(w * per_x) / np.sum(w)) + training.l2_term(self.weights, lmbda, len(X))
        return float(np.sum(per_x)) / X.shape[0] + training.l2_term(self.weights, lmbda, len(X))

    def accuracy(self, X, labels, sample_weight=None):
        """Fraction of rows whose largest output is the label (labels or one-hot rows);
        with ``sample_weight`` the weighted fraction Σ_x w_x 1[right] / Σ_x w_x."""
        X = self._inputs(X)
        labels = self._labels(labels, X.shape[0])
        right = np.argmax(self.predict(X), axis=1) == labels
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, X.shape[0])
            return float(np.sum(w * right) / np.sum(w))
        return float(np.mean(right))

    # ---------------------------------------------------------- per example
    def per_example_costs(self, X, Y):
        """C_x of every row: shape (n,), float64 (``cost`` is their mean)."""
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        return self._forward(X, Y)[1]

    def per_example_gradient_norms(self, X, Y, per_layer=False):
        """‖∇C_x‖ over all weights and biases for every row x: shape (n,), float64;
        ``per_layer``: (n, L), column l−1 the norm over w^l and b^l.

        Exact, and no per-example gradient is formed: ∇_{w^l} C_x = δ^l a^{l−1,T}, so
        ‖∇_{w^l,b^l} C_x‖² = ‖δ^l‖² (‖a^{l−1}‖² + 1), from the δ^l of BP1/BP2
        (:func:`loopnet.kernels.gradient_norm_sq`), at the cost of a forward and a
        backward pass without phase B.
        """
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        sq = training.gradient_norms_sq_rows(self.engine_buffers(), X, Y)
        return np.sqrt(sq) if per_layer else np.sqrt(sq.sum(axis=1))

    # --------------------------------------------------------------- gradient
    def gradient_sum(self, X, Y):
        """Σ_x ∇C_x over the rows as a flat (P,) array laid out like :attr:`params`."""
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        return training.gradient_sum_rows(self.engine_buffers(), X, Y)

    def _gradient_sum_and_pass(self, X, Y, out, costs):
        """:meth:`gradient_sum`, writing a^L and C_x of each row into ``out`` and ``costs``
        (float64) from the forward pass that computed it (distributed.fit's monitor)."""
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        return training.gradient_sum_rows(self.engine_buffers(), X, Y, out, costs)

    def gradient(self, X, Y):
        """The averaged gradient (1/m) Σ_x ∇C_x: lists ``(nabla_w, nabla_b)`` like weights."""
        total = self.gradient_sum(X, Y)
        return self.unflatten(total / total.dtype.type(len(X)))

    def engine_buffers(self):
        """The buffers :mod:`loopnet.engine` computes on, as a :class:`loopnet.training.EngineBuffers`:
        ``params`` (this network's, not a copy), the optimizer ``state``, the scratch
        ``work`` and the architecture ``arch``.  For profilers and tests that call
        ``engine.run_batches`` themselves; the state object changes when the
        optimizer does or an epoch is rolled back, so ask again after those."""
        return EngineBuffers(self.params, self._state, self._work, self._arch)

    def grow_scratch(self, batch_size):
        """Make the engine's scratch hold mini-batches of ``batch_size`` examples."""
        if engine.work_rows(self._work) < batch_size:
            self._work = engine.make_work(self._arch, batch_size, self.dtype)

    def hyper(self, optimizer="sgd", eta=3.0, lmbda=0.0, n=1, momentum=0.0, beta1=0.9,
              beta2=0.999, epsilon=1e-8):
        """Validated hyper-parameters packed for the engine (:func:`loopnet.optim.make_hyper`);
        choosing another optimizer than the last resets the optimizer state."""
        return self._hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)

    # --------------------------------------------------------------- training
    def step(self, grad, *, eta, lmbda=0.0, n=1, momentum=0.0, optimizer="sgd",
             beta1=0.9, beta2=0.999, epsilon=1e-8, m=1):
        """One optimizer update (see :mod:`loopnet.optim`) from a flat gradient.

        ``grad`` is the averaged gradient, or with ``m`` > 1 the SUM Σ_x ∇C_x
        over m examples: ``step(net.gradient_sum(X, Y), m=len(X), ...)`` is then
        exactly the update ``fit`` makes for the mini-batch X, bit for bit.
        A NaN or infinite gradient (or one beyond the range of the net's dtype)
        raises ValueError and leaves the parameters untouched.
        """
        grad = as_float_array(grad, "gradient")
        if grad.shape != self.params.shape:
            raise ValueError(f"gradient has shape {grad.shape}, expected {self.params.shape}")
        check_finite(grad, "gradient")
        self._step(grad, eta=eta, lmbda=lmbda, n=n, momentum=momentum, optimizer=optimizer,
                   beta1=beta1, beta2=beta2, epsilon=epsilon, m=m,
                   finite=f"gradient (as {self.dtype.name})")

    def _step(self, grad, *, eta, lmbda=0.0, n=1, momentum=0.0, optimizer="sgd",
              beta1=0.9, beta2=0.999, epsilon=1e-8, m=1, finite=None):
        """:meth:`step` without the finiteness check (training loops detect divergence
        themselves, after the update, and roll the epoch back)."""
        with np.errstate(over="ignore"):
            grad = np.ascontiguousarray(grad, dtype=self.dtype)
        if grad.shape != self.params.shape:
            raise ValueError(f"gradient has shape {grad.shape}, expected {self.params.shape}")
        if finite:
            check_finite(grad, finite)
        m = check_int(m, "m (examples summed in grad)", minimum=1)
        hyper = self._hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)
        # A Step and a float m: the types fit's phase B gives update_rows (one compiled update).
        engine.apply_step(self.params, optim.engine_state(self._state, hyper), grad, float(m),
                          self._arch, optim.step_part(hyper))

    def fit(self, X, Y, *, epochs=30, batch_size=10, eta=3.0, lmbda=0.0, momentum=0.0,
            optimizer="sgd", beta1=0.9, beta2=0.999, epsilon=1e-8, tol=None,
            validation_data=None, shuffle=True, order=None, monitor=True, callback=None,
            progress=None, threads=None, comm=None, deterministic=False, patience=None,
            monitor_key=None, restore_best=False, lr_schedule=None, verbose=0,
            sample_weight=None, clip_norm=None, noise_multiplier=0.0, sampling="shuffle",
            delta=None, record_norms=False):
        """Mini-batch gradient descent for ``epochs`` more epochs; returns ``self``.

        Each epoch visits the rows in a fresh ``self.rng.permutation`` (or in
        ``order``, or as given with ``shuffle=False``), mini-batches of
        ``batch_size`` (the last may be shorter), and after each mini-batch
        updates every parameter with the averaged gradient (1/m) Σ_x ∇C_x.

        After each epoch ``self.history`` gets a record: ``epoch``,
        ``seconds`` (training), ``examples_per_s``, ``eval_seconds``, and with
        ``monitor``:

        * ``monitor=True`` (default): ``cost`` and ``accuracy`` are those of
          the training forward pass itself, as Keras and scikit-learn report
          the training loss: the mean of C_x over the epoch's examples, each
          computed with the weights before its mini-batch's update, plus the
          L2 term (λ/2n) Σ w² of the weights after the epoch.  No extra pass.
        * ``monitor="exact"``: ``cost``/``accuracy`` from a pass over the whole
          training set after the epoch (what ``self.cost(X, Y, lmbda)``
          gives then); it costs about a third of an epoch.
        * ``monitor=False``: neither, and no validation either.

        With ``validation_data=(Xv, Yv)``, ``val_cost`` (without the L2 term)
        and ``val_accuracy`` after each epoch.  The evaluation runs after the
        epoch is committed: Ctrl-C during it keeps the epoch's training.

        ``tol``: stop once the full-batch gradient norm ‖∇C‖ ≤ tol (checked
        after each epoch; costs one extra pass).  ``callback(net, record)``
        runs after each epoch and stops training by returning True.
        ``progress``: a function ``progress(done, total)`` told the mini-batches
        done within an epoch, or a :class:`loopnet.training.Progress` told each
        phase (training, evaluation) with the running mean cost and accuracy.
        ``verbose``: 0 silent, 1 one line per epoch, 2 also progress bars
        (tqdm when installed), on stderr, as scikit-learn's.

        Model selection: ``patience=N`` stops after N epochs without
        improvement of ``monitor_key`` (``"val_cost"`` by default when there
        is validation data, else ``"cost"``; or ``"val_accuracy"``...);
        ``restore_best=True`` leaves the network with the parameters of the
        best epoch by that key (``self.best_epoch``; history and epoch count
        stay).  ``lr_schedule(eta, record) -> eta`` sets the learning rate of
        each next epoch, e.g. :class:`loopnet.training.HalveEta` (network2's
        "halve η after N epochs without improvement").  A
        :class:`loopnet.training.SaturationWarning` is issued when the cost is
        flat and the accuracy at chance for 3 epochs.

        ``threads``: how many threads train (at most ``numba.get_num_threads()``).
        ``None`` chooses by measurement: each run of mini-batches is timed, and
        the faster of one thread and all threads is used (on a busy machine,
        synchronising threads twice per mini-batch can cost more than it saves),
        and on Linux no run uses more threads than the CPUs other processes left
        free during the last one (:mod:`loopnet.cpuload`).
        The result is bit-identical whatever is chosen.

        ``comm``: an MPI communicator (or ``"world"``) to train data-parallel
        over MPI ranks, each mini-batch split across them; ``deterministic``
        then sums the ranks' parts in rank order.  See :mod:`loopnet.distributed`.

        Ctrl-C or divergence restores the state at the start of the epoch in
        progress, so a saved network can always resume bit-identically.

        Per example (each example's δ^x is scaled before the mini-batch's sum):

        ``sample_weight`` (n,): ∇ = (1/m) Σ_x w_x ∇C_x per mini-batch (Keras and
        scikit-learn's convention).  ``clip_norm`` C: each ∇C_x is scaled by
        min(1, C/‖∇C_x‖) first.  ``noise_multiplier`` σ > 0 (needs ``clip_norm``):
        DP-SGD (Abadi et al. 2016), N(0, σ²C²) added to each coordinate of the
        clipped sum, keyed by (seed, step, parameter) so that results are
        bit-identical for any thread count and after resume; ``sampling="poisson"``
        draws each step's batch with probability q = batch_size/n per example and
        divides by q·n.  Each epoch's record then holds ``epsilon``, the ε spent
        at ``delta`` (default: the power of ten below 1/n) by the RDP accountant
        of ``dp-accounting`` (:mod:`loopnet.privacy`).

        ``record_norms=True``: ``self.example_norms`` gets, for each epoch of this
        call, an (n,) array of ‖∇C_x‖ by ORIGINAL row x (NaN for rows an ``order``
        leaves out), computed by the training pass itself from the δ^l of BP1/BP2, at
        the weights before x's mini-batch's update (as ``monitor=True``'s cost): nearly
        free, unlike a separate :meth:`per_example_gradient_norms` pass.  Not with
        ``sampling="poisson"`` or ``comm``.
        """
        if comm is not None:
            if (sample_weight is not None or clip_norm is not None or noise_multiplier
                    or any(self.dropout) or record_norms):
                raise ValueError("sample_weight, clip_norm, noise_multiplier, record_norms and "
                                 "dropout are not available with comm (MPI training)")
            return distributed.fit(
                self, X, Y, comm=comm, deterministic=deterministic, epochs=epochs,
                batch_size=batch_size, eta=eta, lmbda=lmbda, momentum=momentum,
                optimizer=optimizer, beta1=beta1, beta2=beta2, epsilon=epsilon, tol=tol,
                validation_data=validation_data, shuffle=shuffle, order=order, monitor=monitor,
                callback=callback, progress=progress)
        X = self._inputs(X)
        Y = self._targets(Y, X.shape[0])
        n = X.shape[0]
        epochs = check_int(epochs, "epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        hyper = self._hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)
        if tol is not None:
            tol = check_real(tol, "tol", minimum=0.0)
        if order is not None:
            order = check_order(order, n)
        if threads is not None:
            threads = check_int(threads, "threads", minimum=1)
        per_example = self._per_example(n, sample_weight, clip_norm, noise_multiplier, sampling,
                                        delta, order, record_norms)
        if record_norms:
            self.example_norms = []
        self.grow_scratch(min(batch_size, n))    # a batch never holds more than n rows
        val = None
        if validation_data is not None:
            Xv, Yv = check_pair(validation_data)
            Xv = self._inputs(Xv, "validation X")
            Yv = self._targets(Yv, Xv.shape[0], "validation Y")
            val = (Xv, Yv, labels_or_none(Yv))
        monitor = training.monitor_mode(monitor)
        verbose = check_int(verbose, "verbose", minimum=0)
        steps = training.LocalSteps(X, Y, labels_or_none(Y), val, order, shuffle, batch_size,
                                    hyper, threads, per_example)
        progress, callback = reporting.attach(verbose, epochs, progress, callback, self.epoch)
        try:
            return training.run(self, steps, epochs=epochs, lmbda=lmbda, monitor=monitor,
                                tol=tol, callback=callback, progress=progress,
                                patience=patience, monitor_key=monitor_key,
                                restore_best=restore_best, lr_schedule=lr_schedule)
        finally:
            reporting.close(progress)

    def _per_example(self, n, sample_weight, clip_norm, noise_multiplier, sampling, delta, order,
                     record_norms=False):
        """Validated per-example rules of ``fit`` (a training.PerExample), or None for none."""
        check_choice(sampling, "sampling", ("shuffle", "poisson"))
        weight = None if sample_weight is None else check_sample_weight(sample_weight, n)
        clip = math.inf
        if clip_norm is not None:
            clip = check_real(clip_norm, "clip_norm", minimum=0.0, strict=True) \
                if clip_norm != math.inf else math.inf
        sigma = check_real(noise_multiplier, "noise_multiplier", minimum=0.0)
        if sigma > 0 and clip == math.inf:
            raise ValueError("noise_multiplier needs a finite clip_norm: DP-SGD's noise is "
                             "σ·clip_norm per coordinate")
        if sampling == "poisson" and (sigma == 0 or order is not None):
            raise ValueError("sampling='poisson' is DP-SGD's sampling: it needs "
                             "noise_multiplier > 0 and no order")
        if delta is not None:
            delta = check_real(delta, "delta", minimum=0.0, below=1.0, strict=True)
        elif sigma > 0:
            delta = privacy.default_delta(n)
        if record_norms not in (True, False):
            raise ValueError(f"record_norms must be True or False, not {record_norms!r}")
        if record_norms and sampling == "poisson":
            raise ValueError("record_norms is not available with sampling='poisson' (an "
                             "example may join no step or several)")
        if weight is None and clip == math.inf and sigma == 0 and not record_norms:
            return None
        return training.PerExample(weight, clip, sigma, sampling, delta, bool(record_norms))

    def _hyper(self, optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon):
        """Validate hyper-parameters; reset the optimizer state when the optimizer changes."""
        optim.code(optimizer)
        eta = check_real(eta, "eta (learning rate)", minimum=0.0, strict=True)
        lmbda = check_real(lmbda, "lmbda (L2 strength)", minimum=0.0)
        n = check_int(n, "n (training-set size)", minimum=1)
        momentum = check_real(momentum, "momentum", minimum=0.0, below=1.0)
        beta1 = check_real(beta1, "beta1", minimum=0.0, below=1.0)
        beta2 = check_real(beta2, "beta2", minimum=0.0, below=1.0)
        epsilon = check_real(epsilon, "epsilon", minimum=0.0, strict=True)
        if optimizer != self._optimizer:
            self._optimizer = optimizer
            self._state = optim.make_state(self.params.size, self.dtype)
        return optim.make_hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)

    # ------------------------------------------------------------- validation
    def _inputs(self, X, name="X"):
        """X as a C-contiguous (m, n_0) array of the net's dtype, finite and non-empty.

        A C-contiguous float32 X under a float64 network is used as it is (no float64
        copy, half the memory traffic): the kernels convert each x_k as they read it,
        exactly, so every result is bit for bit that of X.astype(float64).
        """
        X = check_rows(X, self.sizes[0], name)
        if X.dtype == np.float32 and self.dtype == np.float64 and X.flags.c_contiguous:
            return X
        return cast_finite(X, self.dtype, name)

    def _targets(self, Y, m, name="Y"):
        """Y as (m, n_L) targets of the net's dtype; 1-D integer labels become one-hot rows.

        A read-only Y (a memory map, scikit-learn's checks) is copied: the targets are small
        beside X, and Numba compiles the whole engine again for a read-only array type."""
        Y = cast_finite(check_targets(Y, m, self.sizes[-1], name), self.dtype, name)
        return Y if Y.flags.writeable else Y.copy()

    def _labels(self, labels, m, name="labels"):
        """Integer class labels 0 … n_L − 1 (one-hot rows are turned into labels)."""
        return check_labels(labels, m, self.sizes[-1], name)


class LayerSizes(tuple):
    """Layer widths as an immutable tuple that also equals the list it was made from."""

    def __eq__(self, other):
        return tuple.__eq__(self, tuple(other) if isinstance(other, list) else other)

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self):
        return repr(list(self))


def warmup(dtype="float64", inputs=None, rules=False, moments=False):
    """Compile (or load from the disk cache) the engine a run will use, for ``dtype``; return
    seconds.

    The compiled code does not depend on the layer sizes, activations or cost
    (those are values, not types), so a tiny network warms it up.  It does
    depend on the inputs' dtype: ``inputs="float32"`` warms up a float64 network
    reading float32 X in place (see ``Net._inputs``); by default X has ``dtype``.
    Call it before timing anything: the first run compiles (10 s to 45 s measured on
    2-core machines), later processes load the cache in one to two seconds.

    It also depends on what the run uses.  By default: plain SGD (what ``fit`` does with
    its defaults, and the drop-ins), whose engine is compiled without the optimizer's
    moments and the per-example code (see ``optim.engine_state``, ``optim.no_rules``).
    ``moments=True``: the engine with momentum and Adam; ``rules=True``: with clipping,
    sample weights, DP-SGD and dropout.  Once a process has used either, all its later
    runs use that engine (the same bits), so warming up one of them warms up that process.
    """
    start = time.perf_counter()
    if rules:
        optim.make_rules()          # from now on every run passes rules (optim.no_rules)
    if moments:
        optim.use_moments()         # and the whole optimizer state (optim.engine_state)
    net = Net([2, 2, 2], dtype=dtype, seed=0)
    X = np.zeros((4, 2), dtype=check_dtype(inputs if inputs is not None else dtype, "inputs"))
    y = np.array([0, 1, 0, 1])
    # The compiled code is the same for any thread count; all threads also starts the pool.
    net.fit(X, y, epochs=1, batch_size=2, eta=0.1, tol=1.0, validation_data=(X, y),
            clip_norm=1.0 if rules else None, threads=numba.get_num_threads())
    net.step(net.gradient_sum(X, y), eta=0.1)
    net.predict(X)
    return time.perf_counter() - start


# ------------------------------------------------------------------ layer views
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
    arr = as_float_array(value, label)
    if arr.shape != view.shape and not (view.ndim == 1 and arr.shape == (view.shape[0], 1)):
        raise ValueError(f"{label} has shape {arr.shape}, expected {view.shape}")
    check_finite(arr, label)
    return arr.reshape(view.shape)


def _assign(views, values, name):
    values = list(values)
    if len(values) != len(views):
        raise ValueError(f"{name}: expected {len(views)} arrays, got {len(values)}")
    arrays = [_layer_array(view, v, f"{name}[{i}] (layer {i + 1})")
              for i, (view, v) in enumerate(zip(views, values))]
    for view, arr in zip(views, arrays):
        view[...] = arr
