"""A :class:`loopnet.Net` on the GPU: parameters on the device, whole epochs per launch.

``to_device(net)`` returns a :class:`CudaNet` that keeps the net's parameters
and optimizer state in device memory between calls; ``fit`` copies X and Y
to the device once, draws each epoch's order from ``net.rng.permutation``
exactly as :meth:`loopnet.Net.fit` does (so the examples are visited in the
same order as on the CPU), and runs the mini-batches on the device.
``weights``/``biases``/``params`` copy back on access; :meth:`CudaNet.to_cpu`
writes the parameters and the optimizer state back into the Net.

Two drivers run the same phases (:mod:`loopnet.cuda.kernels`) in the same order:

* ``launch="cooperative"``: a run of mini-batches (a whole epoch, or
  SEGMENT_BATCHES of them) is ONE launch of :func:`kernels.train_batches`,
  the phases separated by grid-wide synchronisation; nothing returns to the
  host between mini-batches.  The default on a GPU.
* ``launch="phases"``: one launch per phase per mini-batch from Python.  Used
  by Numba's CUDA simulator (whose ``grid.sync()`` does not synchronise
  separate blocks) and as a fallback where cooperative launch is unavailable.

Both are bit-identical to each other and for any ``blocks``/``threads``
(tested on the simulator); they agree with the CPU engine and with
:mod:`loopnet.reference` within rounding (1e-10 relative in float64).
"""

import math
import time
import warnings

import numpy as np
from numba import config, cuda

from .. import activations, costs, optim
from ..checks import check_int, check_order, labels_or_none
from ..training import DivergenceError
from . import kernels

THREADS = 256            # threads per block unless told otherwise
BLOCK_EXAMPLES = 1024    # examples per block for predict, cost and gradient
SEGMENT_BATCHES = 100_000  # most mini-batches per cooperative launch (one epoch is fine)


def simulated():
    """True when Numba's CUDA simulator stands in for a GPU (NUMBA_ENABLE_CUDASIM=1)."""
    return bool(config.ENABLE_CUDASIM)


def to_device(net, **options):
    """A :class:`CudaNet` holding ``net``'s parameters on the GPU (``options``: see CudaNet)."""
    return CudaNet(net, **options)


def _device_inputs(net, X):
    """X checked as the CPU engine checks it, in the network's own dtype: the GPU kernels
    are compiled for one dtype (the CPU engine alone reads float32 X under float64 weights)."""
    return np.ascontiguousarray(net._inputs(X), dtype=net.dtype)


class CudaNet:
    """``net`` on the GPU: fit, predict, gradient, cost as :class:`loopnet.Net` has them.

    ``launch``: "cooperative" (one launch per run of mini-batches), "phases"
    (one launch per phase) or None (cooperative on a GPU, falling back to
    phases with a warning if the GPU or toolkit cannot launch it; phases on
    the simulator).  ``blocks``/``threads``: the launch configuration (None:
    ``threads`` = 256 and enough blocks for the largest phase, capped at the
    number of co-resident blocks for a cooperative launch).  They change the
    speed only, never a bit of the results.
    """

    def __init__(self, net, *, launch=None, blocks=None, threads=None):
        if not cuda.is_available():
            raise RuntimeError("device='cuda' needs an NVIDIA GPU with a working CUDA driver "
                               "(or NUMBA_ENABLE_CUDASIM=1 for Numba's simulator)")
        self._auto_launch = launch is None
        if launch is None:
            launch = "phases" if simulated() else "cooperative"
        if launch not in ("cooperative", "phases"):
            raise ValueError(f"launch must be 'cooperative' or 'phases', not {launch!r}")
        self.net, self.launch = net, launch
        self._auto_threads = threads is None
        self.threads = THREADS if threads is None else check_int(threads, "threads", 1)
        self.blocks = None if blocks is None else check_int(blocks, "blocks", 1)
        arch = net._arch
        self._sizes = cuda.to_device(np.ascontiguousarray(arch.sizes, np.int64))
        self._p_off = cuda.to_device(np.ascontiguousarray(arch.p_off, np.int64))
        sizes = list(net.sizes)
        self._u_off_host = np.concatenate([[0], np.cumsum(sizes[1:])]).astype(np.int64)
        self._u_off = cuda.to_device(self._u_off_host)
        self._codes = (activations.code(net.activation), activations.code(net.output),
                       costs.code(net.cost_name))
        self._work_rows = 0
        self._load()

    # ----------------------------------------------------------- transfers
    def _load(self):
        """Copy the Net's parameters and optimizer state to the device."""
        net = self.net
        self._params = cuda.to_device(net.params)
        s = net._state
        self._velocity, self._m, self._v = (cuda.to_device(s.velocity), cuda.to_device(s.m),
                                            cuda.to_device(s.v))
        self._t = int(s.t[0])
        self._optimizer = net._optimizer
        self._grad = cuda.device_array(net.params.size, net.dtype)

    def load(self):
        """Copy the Net's parameters and optimizer state to the device again (after host edits)."""
        self._load()
        return self

    def to_cpu(self):
        """Write the parameters and optimizer state back into the Net; return the Net."""
        net = self.net
        net.params[...] = self._params.copy_to_host()
        net._state = optim.State(self._velocity.copy_to_host(), self._m.copy_to_host(),
                                 self._v.copy_to_host(), np.array([self._t], np.int64))
        net._optimizer = self._optimizer
        return net

    @property
    def params(self):
        """The flat parameter buffer, copied from the device."""
        return self._params.copy_to_host()

    @property
    def weights(self):
        """w^1 … w^L copied from the device (read-only copies: assign through the Net)."""
        return self.net.unflatten(self.params)[0]

    @property
    def biases(self):
        """b^1 … b^L copied from the device."""
        return self.net.unflatten(self.params)[1]

    def _scratch(self, rows):
        """z, a, δ for ``rows`` examples (kept and grown as needed)."""
        if rows > self._work_rows:
            shape = (rows, int(self._u_off_host[-1]))
            dt = self.net.dtype
            self._z, self._a, self._delta = (cuda.device_array(shape, dt),
                                             cuda.device_array(shape, dt),
                                             cuda.device_array(shape, dt))
            self._work_rows = rows
        return self._z, self._a, self._delta

    def _grid(self, items):
        """Blocks for ``items`` work items (grid-stride loops cover any remainder)."""
        if self.blocks is not None:
            return self.blocks
        return max(1, -(-items // self.threads))

    # --------------------------------------------------------- evaluation
    def predict(self, X):
        """Output activations a^L for every row of X: shape (m, n_L)."""
        X = _device_inputs(self.net, X)
        out, _ = self._forward_all(X, None)
        return out

    def cost(self, X, Y, lmbda=0.0):
        """Mean cost (1/n) Σ_x C_x, plus (λ/2n) Σ w² when λ > 0 (as Net.cost)."""
        X = _device_inputs(self.net, X)
        Y = self.net._targets(Y, X.shape[0])
        _, c = self._forward_all(X, Y)
        l2 = 0.0
        if lmbda:
            l2 = 0.5 * lmbda / X.shape[0] * sum(float((w.astype(np.float64) ** 2).sum())
                                                for w in self.weights)
        return float(np.sum(c)) / X.shape[0] + l2

    def _forward_all(self, X, Y, dX=None, dY=None):
        """a^L of every row of X and, when Y is given, every C_x (dX, dY: X, Y on the device)."""
        n = X.shape[0]
        dX = cuda.to_device(X) if dX is None else dX
        dY = (cuda.to_device(Y) if dY is None else dY) if Y is not None else None
        order = cuda.to_device(np.arange(n, dtype=np.int64))
        n_out = self.net.sizes[-1]
        out = cuda.device_array((n, n_out), self.net.dtype)
        c = cuda.device_array(n if Y is not None else 0, np.float64)
        rows = min(n, BLOCK_EXAMPLES)
        z, a, delta = self._scratch(rows)
        u = int(self._u_off_host[-2])
        for lo in range(0, n, rows):
            m = min(rows, n - lo)
            self._forward_phases(dX, order, lo, m)
            kernels.outputs[self._grid(m * n_out), self.threads](out, a, lo, m, n_out, u)
            if Y is not None:
                kernels.example_costs[self._grid(m), self.threads](c, a, dY, order, lo, m,
                                                                   n_out, u, self._codes[2])
        return out.copy_to_host(), (c.copy_to_host() if Y is not None else None)

    def _forward_phases(self, dX, order, lo, m):
        act, out_act, _ = self._codes
        sizes = self.net.sizes
        L = len(sizes) - 1
        z, a, _ = self._scratch(m)
        for i in range(L):
            layer_act = out_act if i == L - 1 else act
            kernels.forward_layer[self._grid(m * sizes[i + 1]), self.threads](
                z, a, self._params, dX, order, lo, m, self._sizes, self._p_off, self._u_off,
                i, layer_act)
        if out_act == activations.SOFTMAX:
            kernels.softmax[self._grid(m * sizes[-1]), self.threads](
                a, z, m, sizes[-1], int(self._u_off_host[-2]))

    # ----------------------------------------------------------- gradient
    def gradient_sum(self, X, Y):
        """Σ_x ∇C_x over the rows as a flat (P,) array, summed in example order."""
        X = _device_inputs(self.net, X)
        Y = self.net._targets(Y, X.shape[0])
        n = X.shape[0]
        dX, dY = cuda.to_device(X), cuda.to_device(Y)
        order = cuda.to_device(np.arange(n, dtype=np.int64))
        self._grad.copy_to_device(np.zeros(self.net.params.size, self.net.dtype))
        rows = min(n, BLOCK_EXAMPLES)
        for lo in range(0, n, rows):
            self._batch_phases(dX, dY, order, lo, min(rows, n - lo), kernels.GRADIENT,
                               optim.make_hyper("sgd", 1.0, 0.0, 1, 0.0, 0.9, 0.999, 1e-8), 0)
        return self._grad.copy_to_host()

    def gradient(self, X, Y):
        """(nabla_w, nabla_b): the averaged gradient (1/n) Σ_x ∇C_x, as Net.gradient."""
        X = _device_inputs(self.net, X)
        total = self.gradient_sum(X, Y)
        return self.net.unflatten(total / total.dtype.type(X.shape[0]))

    # ----------------------------------------------------------- training
    def _batch_phases(self, dX, dY, order, lo, m, job, hyper, t_step):
        """One mini-batch, one launch per phase (the order of kernels.train_batches)."""
        act, out_act, cost = self._codes
        sizes = self.net.sizes
        L = len(sizes) - 1
        z, a, delta = self._scratch(m)
        self._forward_phases(dX, order, lo, m)
        u = int(self._u_off_host[-2])
        kernels.output_delta[self._grid(m * sizes[-1]), self.threads](
            delta, z, a, dY, order, lo, m, sizes[-1], u, out_act, cost)
        for i in range(L - 2, -1, -1):
            kernels.hidden_delta[self._grid(m * sizes[i + 1]), self.threads](
                delta, z, a, self._params, m, self._sizes, self._p_off, self._u_off, i, act)
        kernels.gradient_step[self._grid(self.net.params.size), self.threads](
            self._params, self._velocity, self._m, self._v, self._grad, dX, order, a, delta,
            lo, m, self._sizes, self._p_off, self._u_off, job, *_hyper_args(hyper), t_step)

    def _cooperative_blocks(self, args, items):
        """Blocks for a cooperative launch: enough for ``items``, at most the co-resident ones
        (``max_cooperative_grid_blocks`` of the compiled kernel; the simulator's says 1)."""
        disp = kernels.train_batches
        if simulated():
            kernel = disp.overloads[None]
        else:
            kernel = disp.compile(tuple(disp.typeof_pyval(a) for a in args))
        most = kernel.max_cooperative_grid_blocks(self.threads)
        while most < 1 and self._auto_threads and self.threads > 32:
            self.threads //= 2      # too many registers for a block this size: smaller blocks
            most = kernel.max_cooperative_grid_blocks(self.threads)
        if most < 1:
            raise RuntimeError(f"the cooperative kernel cannot run with blocks of {self.threads} "
                               "threads on this GPU; pass threads=64 or launch='phases'")
        if self.blocks is not None and self.blocks > most:
            raise ValueError(f"blocks={self.blocks} exceeds the {most} blocks of "
                             f"{self.threads} threads that can run at once for a cooperative "
                             f"launch here" + (" (the simulator runs one)" if simulated() else ""))
        return max(1, min(self._grid(items), most))

    def _train_run(self, dX, dY, order, batch_size, first, last, hyper):
        """Mini-batches first … last−1 of ``order`` (training), by the chosen driver."""
        n = order.shape[0]
        if self.launch == "phases":
            for b in range(first, last):
                lo = b * batch_size
                self._t += 1
                self._batch_phases(dX, dY, order, lo, min(batch_size, n - lo), kernels.TRAIN,
                                   hyper, self._t)
            return
        act, out_act, cost = self._codes
        z, a, delta = self._scratch(batch_size)
        args = (self._params, self._velocity, self._m, self._v, self._grad, dX, dY, order,
                z, a, delta, self._sizes, self._p_off, self._u_off, act, out_act, cost,
                batch_size, first, last, kernels.TRAIN, *_hyper_args(hyper), self._t)
        items = max(self.net.params.size, batch_size * max(self.net.sizes[1:]))
        try:
            blocks = self._cooperative_blocks(args, items)
            kernels.train_batches[blocks, self.threads](*args)
        except Exception as exc:  # noqa: BLE001 - e.g. no cooperative launch / cudadevrt here
            if not self._auto_launch:
                raise
            warnings.warn(f"cooperative launch failed ({type(exc).__name__}: {exc}); "
                          "using one launch per phase instead (same results, slower)",
                          RuntimeWarning, stacklevel=3)
            self.launch = "phases"
            return self._train_run(dX, dY, order, batch_size, first, last, hyper)
        self._t += last - first

    def fit(self, X, Y, *, epochs=30, batch_size=10, eta=3.0, lmbda=0.0, momentum=0.0,
            optimizer="sgd", beta1=0.9, beta2=0.999, epsilon=1e-8, shuffle=True, order=None,
            monitor=True, callback=None):
        """Mini-batch gradient descent as :meth:`loopnet.Net.fit`, on the device; returns self.

        Each epoch visits ``net.rng.permutation(n)`` (or ``order``, or the rows
        as given with ``shuffle=False``) in mini-batches of ``batch_size``, the
        same visit order as the CPU.  X and Y are copied to the device once.
        After each epoch the parameters are checked for NaN/inf (the epoch is
        rolled back and :class:`loopnet.net.DivergenceError` raised);
        ``monitor`` adds the training cost (and accuracy) to ``net.history``.
        """
        net = self.net
        X = _device_inputs(net, X)
        Y = net._targets(Y, X.shape[0])
        n = X.shape[0]
        epochs = check_int(epochs, "epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        before = net._optimizer
        hyper = net._hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon)
        if net._optimizer != before or net._optimizer != self._optimizer:
            self._reset_state(net._optimizer)
        if order is not None:
            order = check_order(order, n)
        labels = labels_or_none(Y)
        dX, dY = cuda.to_device(X), cuda.to_device(Y)
        for _ in range(epochs):
            record = self._train_epoch(dX, dY, X, Y, labels, order, shuffle, batch_size, hyper,
                                       lmbda, monitor)
            if callback is not None and callback(self, record):
                break
        return self

    def _reset_state(self, name):
        zeros = np.zeros(self.net.params.size, self.net.dtype)
        for buf in (self._velocity, self._m, self._v):
            buf.copy_to_device(zeros)
        self._t, self._optimizer = 0, name

    def _train_epoch(self, dX, dY, X, Y, labels, order, shuffle, batch_size, hyper, lmbda,
                     monitor):
        net = self.net
        saved = self._snapshot()
        try:
            if order is None:
                order = net.rng.permutation(X.shape[0]) if shuffle else np.arange(X.shape[0])
            d_order = cuda.to_device(np.ascontiguousarray(order, np.int64))
            n_batches = -(-len(order) // batch_size)
            start = time.perf_counter()
            for first in range(0, n_batches, SEGMENT_BATCHES):
                self._train_run(dX, dY, d_order, batch_size, first,
                                min(first + SEGMENT_BATCHES, n_batches), hyper)
            cuda.synchronize()
            seconds = time.perf_counter() - start
            if not np.isfinite(self.params).all():
                raise DivergenceError(net.epoch + 1, "a parameter")
            record = {"epoch": net.epoch + 1, "seconds": seconds,
                      "examples_per_s": len(order) / seconds if seconds > 0 else float("inf")}
            if monitor:
                out, c = self._forward_all(X, Y, dX, dY)
                record["cost"] = float(np.sum(c)) / len(X) + (
                    0.5 * lmbda / len(X) * sum(float((w.astype(np.float64) ** 2).sum())
                                               for w in self.weights) if lmbda else 0.0)
                if labels is not None:
                    record["accuracy"] = float(np.mean(np.argmax(out, axis=1) == labels))
                if not math.isfinite(record["cost"]):
                    raise DivergenceError(net.epoch + 1, "the cost")
        except BaseException:
            self._restore(saved)
            raise
        net.epoch += 1
        net.history.append(record)
        return record

    def _snapshot(self):
        """Device copies of the parameters and optimizer state, the step count, the RNG state."""
        copies = []
        for buf in (self._params, self._velocity, self._m, self._v):
            copy = cuda.device_array_like(buf)
            copy.copy_to_device(buf)
            copies.append(copy)
        return copies, self._t, self.net.rng.bit_generator.state

    def _restore(self, saved):
        arrays, t, rng_state = saved
        for buf, arr in zip((self._params, self._velocity, self._m, self._v), arrays):
            buf.copy_to_device(arr)
        self._t = t
        self.net.rng.bit_generator.state = rng_state

    def __repr__(self):
        return f"CudaNet({self.net!r}, launch={self.launch!r})"


def _hyper_args(hyper):
    """The optimizer's hyper-parameters as kernel arguments (kind, η, ηλ/n, λ/n, μ, β₁, β₂, ε)."""
    return (int(hyper.kind), float(hyper.eta), float(hyper.shrink), float(hyper.l2),
            float(hyper.mu), float(hyper.beta1), float(hyper.beta2), float(hyper.eps))
