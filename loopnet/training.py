"""The one epoch loop: rollback, the epoch record, monitoring, ‖∇C‖, divergence, callbacks.

:func:`run` trains a network for some epochs.  How the mini-batches of an
epoch are computed is the caller's *steps* object, so one loop serves
``Net.fit`` (:class:`LocalSteps`: the compiled engine on this process, in
segments, with the thread count chosen by measurement) and
``loopnet.distributed.fit`` (each mini-batch's gradient summed over MPI ranks).

A steps object provides:

``epoch(net, epoch, progress) -> (examples, extra)``
    Run every mini-batch of one epoch, updating ``net``; return the examples
    visited and extra keys for the epoch record (may raise
    :class:`DivergenceError`).
``measure(net, which) -> (mean cost, accuracy or None, n)``
    (1/n) Σ_x C_x of the training set (``which="train"``) or of the validation
    set (``"val"``), without the L2 term; the accuracy for classification.
``has_validation``, ``n`` (training-set size)
``gradient_sum(net)``
    Σ_x ∇C_x over the training set, laid out like ``net.params``.
``is_root``, ``agree(stop)``, ``any_rank(flag)``, ``on_error()``
    Who calls ``callback``; the root's decision to stop as every rank's; a flag
    true on any rank; what to do before an unexpected exception propagates.

The network is used through its public face (``params``, ``weights``,
``unflatten``, ``optimizer_state``, ``rng``, ``epoch``, ``history``) and
:meth:`loopnet.Net.engine_buffers`; this module never imports :mod:`loopnet.net`.
"""

import copy
import math
import time
from collections import namedtuple

import numba
import numpy as np

from . import engine, optim, privacy
from .random import poisson_batch

#: Examples per compiled call inside an epoch.  Between calls Python checks for
#: divergence, reports progress and lets Ctrl-C in; a call this size costs a
#: few milliseconds, so the ~10 µs of dispatch per call is noise.
SEGMENT_EXAMPLES = 4096

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

#: Hyper-parameters for engine.run_batches when it does not update: any valid set would do.
NO_STEP = optim.make_hyper("sgd", 1.0, 0.0, 1, 0.0, 0.9, 0.999, 1e-8)

#: The buffers the compiled engine works on: the flat parameters, the optimizer
#: state, the scratch and the architecture (see :mod:`loopnet.engine`).
EngineBuffers = namedtuple("EngineBuffers", "params state work arch")


class DivergenceError(FloatingPointError):
    """Training produced NaN or ±inf; the network was rolled back to the start of ``epoch``."""

    def __init__(self, epoch, what):
        self.epoch = epoch
        super().__init__(
            f"training diverged in epoch {epoch}: {what} became NaN or infinite; "
            f"the parameters were restored to the start of that epoch. "
            f"Try a smaller learning rate eta.")


# ------------------------------------------------------------ the engine, all rows
def no_output(buffers):
    """(out, costs) for engine.run_batches when it writes no outputs: empty, typed as it expects."""
    return np.empty((0, buffers.arch.sizes[-1]), buffers.params.dtype), np.empty(0)


def run_rows(buffers, X, Y, job, out=None, costs=None, hyper=NO_STEP):
    """engine.run_batches over every row of X (no update), as many rows per phase-A
    block as the scratch holds."""
    if out is None:
        out, costs = no_output(buffers)
    block = engine.work_rows(buffers.work)
    n_blocks = -(-X.shape[0] // block)
    engine.run_batches(buffers.params, buffers.state, buffers.work, X, Y, np.arange(X.shape[0]),
                       block, 0, n_blocks, buffers.arch, hyper, job, out, costs)


def gradient_norms_sq_rows(buffers, X, Y):
    """(n, L): ‖∇_{w^l,b^l} C_x‖² of every row x and layer l, from phase A alone
    (engine job NORMS: BP1, BP2 and ‖δ^l‖² (‖a^{l−1}‖² + 1), no gradient formed)."""
    norms = np.zeros((X.shape[0], len(buffers.arch.sizes) - 1))
    run_rows(buffers, X, Y, engine.NORMS, hyper=NO_STEP._replace(ex=optim.make_rules(norms=norms)))
    return norms


def forward_rows(buffers, X, Y):
    """Outputs a^L of every row of X and, when targets Y are given, each row's C_x."""
    out = np.empty((X.shape[0], buffers.arch.sizes[-1]), buffers.params.dtype)
    costs = np.zeros(X.shape[0] if Y is not None else 0)
    run_rows(buffers, X, out if Y is None else Y, engine.PREDICT, out, costs)
    return out, costs


def gradient_sum_rows(buffers, X, Y):
    """Σ_x ∇C_x over the rows of X, a fresh flat array laid out like the parameters."""
    buffers.work.grad[:] = 0
    run_rows(buffers, X, Y, engine.GRADIENT)
    return buffers.work.grad.copy()


# ------------------------------------------------------------ terms of the record
def l2_term(weights, lmbda, n):
    """(λ/2n) Σ_w w², network2's regularisation term of the cost."""
    if not lmbda:
        return 0.0
    return 0.5 * lmbda / n * sum(float((w.astype(np.float64) ** 2).sum()) for w in weights)


def grad_norm(net, grad_sum, n, lmbda):
    """‖∇C‖ of C = (1/n) Σ_x C_x + (λ/2n) Σ w², from the sum Σ_x ∇C_x: the L2 term λ/n · w included."""
    nabla_w, nabla_b = net.unflatten(grad_sum / grad_sum.dtype.type(n))
    total = sum(float((nb.astype(np.float64) ** 2).sum()) for nb in nabla_b)
    for nw, w in zip(nabla_w, net.weights):
        g = nw.astype(np.float64) + lmbda / n * w
        total += float((g ** 2).sum())
    return math.sqrt(total)


def measured(net, steps, which, lmbda, prefix):
    """``{prefix+"cost": (1/n) Σ_x C_x + L2 term, prefix+"accuracy": ...}`` of one data set."""
    mean_cost, accuracy, n = steps.measure(net, which)
    record = {prefix + "cost": mean_cost + l2_term(net.weights, lmbda, n)}
    if accuracy is not None:
        record[prefix + "accuracy"] = accuracy
    return record


# ------------------------------------------------------------ rollback
def snapshot(net):
    """Everything an epoch changes: parameters, optimizer state, the generator's state."""
    return (net.params.copy(), copy.deepcopy(net.optimizer_state), net.rng.bit_generator.state)


def restore(net, saved):
    """Put back what :func:`snapshot` saved, bit for bit."""
    params, optimizer_state, rng_state = saved
    net.params[...] = params
    net.optimizer_state = optimizer_state
    net.rng.bit_generator.state = rng_state


# ------------------------------------------------------------ the loop
def run(net, steps, *, epochs, lmbda=0.0, monitor=True, tol=None, callback=None, progress=None):
    """Train ``net`` for ``epochs`` more epochs with ``steps``; return ``net``.

    After each epoch: ``callback(net, record)`` (on the root) stops training by
    returning True, and so does ``record["grad_norm"] <= tol``.
    """
    for _ in range(epochs):
        record = train_epoch(net, steps, lmbda, monitor, tol, progress)
        stop = steps.is_root and callback is not None and bool(callback(net, record))
        if tol is not None and record["grad_norm"] <= tol:
            stop = True
        if steps.agree(stop):
            break
    return net


def train_epoch(net, steps, lmbda, monitor, tol, progress):
    """One epoch and its record, with rollback to its start on Ctrl-C, divergence or error."""
    saved = snapshot(net)
    epoch = net.epoch + 1
    try:
        start = time.perf_counter()
        examples, extra = steps.epoch(net, epoch, progress)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "seconds": seconds,
                  "examples_per_s": examples / seconds if seconds > 0 else float("inf")}
        if steps.any_rank(not np.isfinite(net.params).all()):
            raise DivergenceError(epoch, "a parameter")
        if monitor:
            record.update(measured(net, steps, "train", lmbda, ""))
            if steps.has_validation:
                record.update(measured(net, steps, "val", 0.0, "val_"))
            if not math.isfinite(record["cost"]):
                raise DivergenceError(epoch, "the cost")
        if tol is not None:
            record["grad_norm"] = grad_norm(net, steps.gradient_sum(net), steps.n, lmbda)
        record.update(extra)
    except (KeyboardInterrupt, DivergenceError):
        restore(net, saved)
        raise
    except BaseException:
        steps.on_error()
        restore(net, saved)
        raise
    net.epoch = epoch
    net.history.append(record)
    return record


# ------------------------------------------------------------ steps on this process
class LocalSteps:
    """Mini-batches by the compiled engine on this process (what ``Net.fit`` trains with).

    Each epoch visits the rows in a fresh ``net.rng.permutation`` (or in
    ``order``, or as given with ``shuffle=False``), ``batch_size`` at a time,
    in compiled runs of about :data:`SEGMENT_EXAMPLES` examples; between runs
    it checks the parameters for NaN/inf and reports ``progress``.
    ``X``, ``Y``, ``val`` are validated: arrays of the network's dtype.
    """

    is_root = True

    def __init__(self, X, Y, labels, val, order, shuffle, batch_size, hyper, threads,
                 per_example=None):
        self.X, self.Y, self.labels, self.val = X, Y, labels, val
        self.order, self.shuffle, self.batch_size, self.hyper = order, shuffle, batch_size, hyper
        self.threads = threads
        self.n = X.shape[0]
        self.has_validation = val is not None
        self.chooser = None
        self.per_example = per_example

    def epoch(self, net, epoch, progress):
        buffers = net.engine_buffers()
        if self.chooser is None:
            self.chooser = _ThreadChooser(self.threads,
                                          flops_per_example(buffers.arch.sizes) * self.batch_size)
        pe = self.per_example
        if pe is not None and pe.sampling == "poisson":
            return self.poisson_epoch(net, epoch, progress)
        order = self.order
        if order is None:
            order = net.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        hyper = epoch_hyper(net, self.hyper, pe, 0.0)
        n_batches = -(-len(order) // self.batch_size)   # order may visit a subset of the rows
        per_call = max(1, SEGMENT_EXAMPLES // self.batch_size)
        empty = no_output(buffers)
        batches_done = 0
        while batches_done < n_batches:
            threads, probe = self.chooser.next()
            run_to = min(batches_done + (max(1, per_call // PROBE_SHARE) if probe else per_call),
                         n_batches)
            began = time.perf_counter()
            buffers = net.engine_buffers()      # a rollback may have replaced the state
            _train_batches(threads, buffers.params, buffers.state, buffers.work, self.X, self.Y,
                           order, self.batch_size, batches_done, run_to, buffers.arch, hyper,
                           engine.TRAIN, *empty)
            self.chooser.record(threads, (time.perf_counter() - began) / (run_to - batches_done))
            batches_done = run_to
            if not np.isfinite(net.params).all():
                raise DivergenceError(epoch, "a parameter")
            if progress is not None:
                progress(batches_done, n_batches)
        return len(order), privacy_record(net, pe, n_batches, self.batch_size / self.n)

    def poisson_epoch(self, net, epoch, progress):
        """DP-SGD's Poisson sampling: n/m steps, each over the rows drawn with probability
        q = m/n (:func:`loopnet.random.poisson_batch`), the sum divided by q·n."""
        q = min(1.0, self.batch_size / self.n)
        n_steps = max(1, round(self.n / self.batch_size))
        hyper = epoch_hyper(net, self.hyper, self.per_example, q * self.n)
        key = int(net.rng.integers(2 ** 62))
        empty = no_output(net.engine_buffers())
        visited = 0
        for step in range(n_steps):
            rows = poisson_batch(key, step, q, self.n)
            buffers = net.engine_buffers()
            net.grow_scratch(len(rows))
            buffers = net.engine_buffers()
            _train_batches(1 if len(rows) < 64 else self.threads or numba.get_num_threads(),
                           buffers.params, buffers.state, buffers.work, self.X, self.Y, rows,
                           max(len(rows), 1), 0, 1, buffers.arch, hyper, engine.TRAIN, *empty)
            visited += len(rows)
            if not np.isfinite(net.params).all():
                raise DivergenceError(epoch, "a parameter")
            if progress is not None:
                progress(step + 1, n_steps)
        return visited, privacy_record(net, self.per_example, n_steps, q)

    def measure(self, net, which):
        X, Y, labels = (self.X, self.Y, self.labels) if which == "train" else self.val
        outputs, costs = forward_rows(net.engine_buffers(), X, Y)
        accuracy = None
        if labels is not None:
            accuracy = float(np.mean(np.argmax(outputs, axis=1) == labels))
        return float(np.sum(costs)) / len(X), accuracy, len(X)

    def gradient_sum(self, net):
        return gradient_sum_rows(net.engine_buffers(), self.X, self.Y)

    def agree(self, stop):
        return stop

    def any_rank(self, flag):
        return bool(flag)

    def on_error(self):
        pass


# ------------------------------------------------------------ per-example rules
#: What ``fit`` asked of each example: weights w_x (or None), clip norm C (inf: none),
#: noise multiplier σ, sampling ("shuffle" or "poisson"), δ of the privacy report.
PerExample = namedtuple("PerExample", "weight clip sigma sampling delta")


def epoch_hyper(net, hyper, pe, denom):
    """``hyper`` with this epoch's per-example rules: weights, clipping, DP noise, dropout.

    The noise and dropout keys are drawn from ``net.rng`` (after the epoch's
    permutation), only when noise or dropout is on, so that without them the
    generator, and every bit of training, is as before.  Saved with the network,
    the generator's state makes a resumed run draw the same keys.
    """
    drop = net.dropout_rates()
    if pe is None and drop is None:
        return hyper
    pe = pe or PerExample(None, math.inf, 0.0, "shuffle", None)
    noise_seed = int(net.rng.integers(2 ** 62)) if pe.sigma > 0 else 0
    drop_seed = int(net.rng.integers(2 ** 62)) if drop is not None else 0
    return hyper._replace(ex=optim.make_rules(pe.weight, pe.clip, None, pe.sigma, noise_seed,
                                              denom, drop, drop_seed))


def privacy_record(net, pe, steps, q):
    """``{"epsilon": ε, "dp_steps": T}`` after an epoch of DP-SGD (σ > 0), else ``{}``."""
    if pe is None or pe.sigma <= 0:
        return {}
    before = next((r["dp_steps"] for r in reversed(net.history) if "dp_steps" in r), 0)
    total = before + steps
    return {"epsilon": privacy.epsilon(pe.sigma, q, total, pe.delta), "dp_steps": total,
            "delta": pe.delta}


def flops_per_example(sizes):
    """Multiply-adds ×2 for the forward pass and for BP4, the bulk of a training step."""
    return 4 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


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
