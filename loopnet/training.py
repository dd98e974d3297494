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
import warnings
from collections import namedtuple

import numba
import numpy as np

from . import cpuload, engine, optim, privacy
from .random import poisson_batch

#: Examples per compiled call inside an epoch.  Between calls Python checks for
#: divergence, reports progress and lets Ctrl-C in; a call this size costs a
#: few milliseconds, so the ~10 µs of dispatch per call is noise.
SEGMENT_EXAMPLES = 4096

#: ... and at most this many seconds per compiled call (measured): progress moves at least
#: every SEGMENT_SECONDS and Ctrl-C is answered within it, even on a big network.
SEGMENT_SECONDS = 0.2

#: Below this many floating-point operations per mini-batch, training runs on
#: the calling thread alone: waking other threads twice per mini-batch (a few
#: µs) would cost more than it saves.  Results are bit-identical for any number
#: of threads, so this and :class:`_ThreadChooser` are purely speed choices.
PARALLEL_MIN_FLOPS = 400_000

#: With ``threads=None`` every PROBE_EVERY-th compiled call of an epoch is
#: timed with the thread count not currently preferred, to notice a change of load.
#: Such a probe runs 1/PROBE_SHARE of the usual mini-batches, and at most
#: PROBE_SECONDS at that choice's measured rate, so that probing the slower
#: choice costs little (at 1/1 it cost W2 10% of its epoch); yet it runs long
#: enough to be timed fairly (probes of ~1 ms, as once here, are dominated by
#: waking threads and by whoever else is running, and picked one thread wrongly).
PROBE_EVERY = 8
PROBE_SHARE = 4
PROBE_SECONDS = 0.02
#: One thread is preferred over all threads only when it is this much faster: on a
#: tie the machine's cores are free, and all threads gain as soon as they are.
SWITCH_MARGIN = 1.1

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


def run_rows(buffers, X, Y, job, out=None, costs=None, hyper=None):
    """engine.run_batches over every row of X (no update), as many rows per phase-A
    block as the scratch holds."""
    if hyper is None:
        hyper = NO_STEP._replace(ex=optim.no_rules())
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


def gradient_sum_rows(buffers, X, Y, out=None, costs=None):
    """Σ_x ∇C_x over the rows of X, a fresh flat array laid out like the parameters; with
    ``out`` and ``costs``, also each row's a^L and C_x from the same forward pass."""
    buffers.work.grad[:] = 0
    run_rows(buffers, X, Y, engine.GRADIENT, out, costs)
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


# ------------------------------------------------------------ progress
class Progress:
    """What :func:`run` reports while it works; subclass it and override what you need.

    ``begin(phase, epoch, total)`` opens a phase, ``"train"`` (``total``
    mini-batches) or ``"eval"`` (``total`` examples to evaluate);
    ``progress(done, total, running)`` follows it, ``running`` being
    ``{"cost": ..., "accuracy": ...}``, the mean over the examples trained so
    far in this epoch, from the training forward pass (None when not
    collected); ``end(phase, seconds)`` closes it.  A plain function
    ``progress(done, total)`` is called in the training phase only.
    """

    def begin(self, phase, epoch, total):
        pass

    def __call__(self, done, total, running=None):
        pass

    def end(self, phase, seconds):
        pass


def report(progress, done, total, running=None):
    """Call a progress hook: a :class:`Progress` gets ``running``; a plain function does not."""
    if progress is None:
        return
    if isinstance(progress, Progress):
        progress(done, total, running)
    else:
        progress(done, total)


def _phase(progress, method, *args):
    if isinstance(progress, Progress):
        getattr(progress, method)(*args)


# ------------------------------------------------------------ monitoring modes
MONITOR_MODES = (True, False, "exact")


def monitor_mode(monitor):
    """``True`` (training cost from the training pass), ``"exact"`` (an extra pass), or ``False``."""
    if isinstance(monitor, str) and monitor == "exact":
        return "exact"
    if isinstance(monitor, (bool, np.bool_)):
        return bool(monitor)
    raise ValueError(f"monitor must be True (training cost from the training pass), \"exact\" "
                     f"(an extra pass over the training set after each epoch) or False, "
                     f"not {monitor!r}")


class SaturationWarning(UserWarning):
    """Training learns nothing: the cost is flat and the accuracy at chance."""


#: A run saturates when, for SATURATION_EPOCHS epochs in a row, the training cost moves by
#: at most SATURATION_COST and the training accuracy stays within SATURATION_CHANCE of 1/classes.
SATURATION_EPOCHS = 3
SATURATION_COST = 1e-4
SATURATION_CHANCE = 0.02


def saturated(history, n_classes):
    """True when the last SATURATION_EPOCHS records have a flat cost and chance accuracy."""
    last = history[-SATURATION_EPOCHS:]
    if n_classes < 2 or len(last) < SATURATION_EPOCHS:
        return False
    if any("cost" not in r or "accuracy" not in r for r in last):
        return False
    costs = [r["cost"] for r in last]
    chance = 1.0 / n_classes
    return (max(costs) - min(costs) <= SATURATION_COST
            and all(abs(r["accuracy"] - chance) <= SATURATION_CHANCE for r in last))


def saturation_message(history, n_classes):
    r = history[-1]
    return (f"training is not learning: for {SATURATION_EPOCHS} epochs the cost stayed at "
            f"{r['cost']:.5f} and the training accuracy at {100 * r['accuracy']:.2f}% "
            f"(chance is {100 / n_classes:.2f}%); the units are probably saturated. Try a "
            f"smaller learning rate eta (e.g. a tenth), or the cross-entropy cost "
            f"(cross_entropy, or softmax with log_likelihood) or a relu activation.")


# ------------------------------------------------------------ model selection
class EarlyStopping:
    """Stop after ``patience`` epochs without improvement of ``monitor``; remember the best.

    ``monitor`` is a record key, e.g. ``"val_cost"`` (lower is better) or
    ``"val_accuracy"`` (higher is better).  ``best_epoch`` and ``best_value``
    follow the best record seen; ``best_params`` holds its parameters when
    ``keep_params``.
    """

    def __init__(self, monitor="val_cost", patience=None, keep_params=False):
        if not isinstance(monitor, str) or not monitor.endswith(("cost", "accuracy")):
            raise ValueError(f"monitor must be a record key ending in cost or accuracy "
                             f"(val_cost, val_accuracy, cost, accuracy), not {monitor!r}")
        self.monitor, self.patience, self.keep_params = monitor, patience, keep_params
        self.higher = monitor.endswith("accuracy")
        self.best_epoch = None
        self.best_value = None
        self.best_params = None
        self.waited = 0

    def better(self, value):
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher else value < self.best_value

    def update(self, net, record):
        """Take one epoch's record; return True when training should stop."""
        value = record.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        if self.better(value):
            self.best_value, self.best_epoch, self.waited = value, record["epoch"], 0
            if self.keep_params:
                self.best_params = net.params.copy()
            return False
        self.waited += 1
        return self.patience is not None and self.waited >= self.patience


class HalveEta:
    """network2's schedule: halve η after ``after`` epochs without improvement of ``monitor``.

    ``lr_schedule=HalveEta(10)`` in ``fit``; ``min_eta`` stops the halving
    (training goes on at that rate).  ``eta`` is the rate now in use.
    """

    def __init__(self, after, monitor="val_accuracy", min_eta=0.0):
        if not isinstance(after, int) or isinstance(after, bool) or after < 1:
            raise ValueError(f"after must be a positive whole number of epochs, not {after!r}")
        self.after, self.min_eta = after, float(min_eta)
        self.tracker = EarlyStopping(monitor)
        self.eta = None

    def __call__(self, eta, record):
        """The rate for the next epoch, given the rate used and this epoch's record."""
        if "val_" in self.tracker.monitor and self.tracker.monitor not in record:
            self.tracker.monitor = self.tracker.monitor[4:]     # no validation: training numbers
        self.tracker.update(None, record)
        if self.tracker.waited >= self.after:
            self.tracker.waited = 0
            return max(eta / 2, self.min_eta)
        return eta


# ------------------------------------------------------------ the loop
def scheduled_eta(eta):
    """``eta`` from an ``lr_schedule`` as a float; ValueError unless positive and finite."""
    eta = float(eta)
    if not (eta > 0 and math.isfinite(eta)):
        raise ValueError(f"the learning-rate schedule returned eta = {eta!r}; it must be "
                         f"a positive finite number")
    return eta


def run(net, steps, *, epochs, lmbda=0.0, monitor=True, tol=None, callback=None, progress=None,
        patience=None, monitor_key=None, restore_best=False, lr_schedule=None, warn=True):
    """Train ``net`` for ``epochs`` more epochs with ``steps``; return ``net``.

    After each epoch: ``callback(net, record)`` (on the root) stops training by
    returning True, and so does ``record["grad_norm"] <= tol``.  ``patience``
    stops after that many epochs without improvement of ``monitor_key``
    (default ``val_cost``, else ``cost``); ``restore_best`` leaves ``net`` with
    the parameters of the best epoch by that key (its history and epoch count
    stay).  ``lr_schedule(eta, record) -> eta`` sets the next epoch's rate.
    A :class:`SaturationWarning` is issued once when the run saturates.
    """
    monitor = monitor_mode(monitor)
    steps.collect_pass = monitor is True
    tracker = None
    if patience is not None or restore_best or monitor_key is not None:
        key = monitor_key or ("val_cost" if steps.has_validation else "cost")
        if monitor is False:
            raise ValueError(f"patience and restore_best need the epoch's {key}: "
                             f"leave monitor on")
        if key.startswith("val_") and not steps.has_validation:
            raise ValueError(f"patience/restore_best on {key} need validation_data")
        tracker = EarlyStopping(key, patience, keep_params=restore_best)
    warned = not warn
    try:
        for _ in range(epochs):
            record = train_epoch(net, steps, lmbda, monitor, tol, progress)
            stop = False
            if tracker is not None:
                stop = tracker.update(net, record)
                record["best_epoch"] = tracker.best_epoch
            if steps.is_root and callback is not None and bool(callback(net, record)):
                stop = True
            if tol is not None and record["grad_norm"] <= tol:
                stop = True
            if not warned and steps.is_root and saturated(net.history, net.sizes[-1]):
                warnings.warn(saturation_message(net.history, net.sizes[-1]), SaturationWarning,
                              stacklevel=3)
                warned = True
            if lr_schedule is not None:
                steps.set_eta(lr_schedule(steps.eta, record))
            if steps.agree(stop):
                break
    finally:
        if tracker is not None and restore_best and tracker.best_params is not None:
            net.params[...] = tracker.best_params
            net.best_epoch = tracker.best_epoch
    return net


def train_epoch(net, steps, lmbda, monitor, tol, progress):
    """One epoch: train (rolled back on Ctrl-C, divergence or error), commit, then evaluate.

    The epoch is committed (``net.epoch``, ``net.history``) as soon as its
    training ends; Ctrl-C during the evaluation that follows leaves the record
    without its evaluation numbers (``record["interrupted"] = True``) and
    re-raises.  Only divergence found by the evaluation (a non-finite cost)
    still rolls the epoch back.
    """
    saved = snapshot(net)
    epoch = net.epoch + 1
    try:
        start = time.perf_counter()
        _phase(progress, "begin", "train", epoch, None)
        examples, extra = steps.epoch(net, epoch, progress)
        norms = extra.pop("example_norms", None)       # fit(record_norms=True): not a record key
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "seconds": seconds,
                  "examples_per_s": examples / seconds if seconds > 0 else float("inf")}
        _phase(progress, "end", "train", seconds)
        if steps.any_rank(not np.isfinite(net.params).all()):
            raise DivergenceError(epoch, "a parameter")
        if monitor is True and "pass_cost" in extra:
            record["cost"] = extra.pop("pass_cost") + l2_term(net.weights, lmbda, steps.n)
            if "pass_accuracy" in extra:
                record["accuracy"] = extra.pop("pass_accuracy")
            if not math.isfinite(record["cost"]):
                raise DivergenceError(epoch, "the cost")
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
    if norms is not None:
        net.example_norms.append(norms)
    try:
        evaluate_epoch(net, steps, record, lmbda, monitor, tol, progress)
    except KeyboardInterrupt:
        record["interrupted"] = True
        raise
    except DivergenceError:
        net.history.pop()
        if norms is not None:
            net.example_norms.pop()
        net.epoch = epoch - 1
        restore(net, saved)
        raise
    return record


def evaluate_epoch(net, steps, record, lmbda, monitor, tol, progress):
    """The epoch's evaluation, written into ``record`` as it completes: the exact training
    cost (``monitor="exact"``, or when the steps give no training-pass cost), validation,
    ‖∇C‖ for ``tol``; ``record["eval_seconds"]`` its time."""
    start = time.perf_counter()
    todo = []
    if monitor and "cost" not in record:
        todo.append("train")
    if monitor and steps.has_validation:
        todo.append("val")
    if todo or tol is not None:
        sizes = {"train": steps.n, "val": getattr(steps, "n_val", 0)}
        total = sum(sizes[w] for w in todo) + (steps.n if tol is not None else 0)
        _phase(progress, "begin", "eval", record["epoch"], total)
        steps.eval_done = 0
    for which in todo:
        prefix = "" if which == "train" else "val_"
        found = measured(net, steps, which, lmbda if which == "train" else 0.0, prefix)
        if which == "train" and not math.isfinite(found["cost"]):
            raise DivergenceError(record["epoch"], "the cost")
        record.update(found)
    if tol is not None:
        record["grad_norm"] = grad_norm(net, steps.gradient_sum(net), steps.n, lmbda)
    record["eval_seconds"] = time.perf_counter() - start
    if todo or tol is not None:
        _phase(progress, "end", "eval", record["eval_seconds"])


# ------------------------------------------------------------ steps on this process
class LocalSteps:
    """Mini-batches by the compiled engine on this process (what ``Net.fit`` trains with).

    Each epoch visits the rows in a fresh ``net.rng.permutation`` (or in
    ``order``, or as given with ``shuffle=False``), ``batch_size`` at a time,
    in compiled runs of about :data:`SEGMENT_EXAMPLES` examples (fewer when a
    run would take longer than :data:`SEGMENT_SECONDS`); between runs it
    checks the parameters for NaN/inf and reports ``progress``.  With
    ``collect_pass`` (set by :func:`run` for ``monitor=True``) the engine
    also writes each example's C_x and a^L from the training forward pass,
    and the epoch's extra holds their means (``pass_cost``, ``pass_accuracy``).
    ``X``, ``Y``, ``val`` are validated once, by the caller: arrays of the
    network's dtype, finite; nothing here scans them again.
    """

    is_root = True
    collect_pass = False

    def __init__(self, X, Y, labels, val, order, shuffle, batch_size, hyper, threads,
                 per_example=None):
        self.X, self.Y, self.labels, self.val = X, Y, labels, val
        self.order, self.shuffle, self.batch_size, self.hyper = order, shuffle, batch_size, hyper
        self.threads = threads
        self.n = X.shape[0]
        self.n_val = 0 if val is None else val[0].shape[0]
        self.has_validation = val is not None
        self.chooser = None
        self.per_example = per_example
        self.progress = None
        self.eval_done = 0
        self._pass = None

    @property
    def eta(self):
        return self.hyper.eta

    def set_eta(self, eta):
        """Train the next mini-batches with learning rate ``eta`` (λ's decay follows it)."""
        eta = scheduled_eta(eta)
        self.hyper = self.hyper._replace(eta=eta, shrink=eta * self.hyper.l2)

    def _pass_buffers(self, buffers, rows):
        """(out, costs) the engine fills in TRAIN: reused from epoch to epoch."""
        if not self.collect_pass:
            return no_output(buffers)
        if self._pass is None or self._pass[1].shape[0] != rows:
            self._pass = (np.empty((rows, buffers.arch.sizes[-1]), buffers.params.dtype),
                          np.empty(rows))
        return self._pass

    def epoch(self, net, epoch, progress):
        self.progress = progress
        buffers = net.engine_buffers()
        if self.chooser is None:
            arch = buffers.arch
            tasks = max(self.batch_size, engine.block_count(arch, numba.get_num_threads()))
            self.chooser = _ThreadChooser(self.threads,
                                          flops_per_example(arch.sizes) * self.batch_size, tasks)
        pe = self.per_example
        if pe is not None and pe.sampling == "poisson":
            return self.poisson_epoch(net, epoch, progress)
        order = self.order
        if order is None:
            order = net.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        norms = None
        if pe is not None and pe.record_norms:
            norms = np.empty((len(order), len(buffers.arch.sizes) - 1))
        hyper = epoch_hyper(net, self.hyper, pe, 0.0, norms)
        n_batches = -(-len(order) // self.batch_size)   # order may visit a subset of the rows
        out, costs = self._pass_buffers(buffers, len(order))
        running = _RunningMean(out, costs, self.labels, order) if self.collect_pass else None
        if isinstance(progress, Progress):
            progress(0, n_batches, None)        # the bar appears before the first run ends
        batches_done = 0
        while batches_done < n_batches:
            threads, probe = self.chooser.next()
            run_to = min(batches_done + self.chooser.run_length(threads, probe, self.batch_size),
                         n_batches)
            began = time.perf_counter()
            buffers = net.engine_buffers()      # a rollback may have replaced the state
            _train_batches(threads, buffers.params, buffers.state, buffers.work, self.X, self.Y,
                           order, self.batch_size, batches_done, run_to, buffers.arch, hyper,
                           engine.TRAIN, out, costs)
            self.chooser.record(threads, (time.perf_counter() - began) / (run_to - batches_done))
            if not np.isfinite(net.params).all():
                raise DivergenceError(epoch, "a parameter")
            if running is not None:
                running.add(batches_done * self.batch_size, min(run_to * self.batch_size,
                                                                 len(order)))
            batches_done = run_to
            report(progress, batches_done, n_batches, running and running.means())
        extra = running.means("pass_") if running is not None else {}
        extra.update(privacy_record(net, pe, n_batches, self.batch_size / self.n))
        extra.update(dropout_record(net, hyper))
        if norms is not None:
            extra["example_norms"] = example_norms(norms, order, self.n)
        return len(order), extra

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
            net.grow_scratch(len(rows))
            buffers = net.engine_buffers()
            _train_batches(1 if len(rows) < 64 else self.threads or numba.get_num_threads(),
                           buffers.params, buffers.state, buffers.work, self.X, self.Y, rows,
                           max(len(rows), 1), 0, 1, buffers.arch, hyper, engine.TRAIN, *empty)
            visited += len(rows)
            if not np.isfinite(net.params).all():
                raise DivergenceError(epoch, "a parameter")
            report(progress, step + 1, n_steps, None)
        return visited, {**privacy_record(net, self.per_example, n_steps, q),
                         **dropout_record(net, hyper)}

    def measure(self, net, which):
        """Mean C_x and accuracy over a data set, in chunks of SEGMENT_EXAMPLES rows (Ctrl-C
        and progress between chunks)."""
        X, Y, labels = (self.X, self.Y, self.labels) if which == "train" else self.val
        buffers = net.engine_buffers()
        threads = 1
        if self.chooser is not None:
            threads = self.chooser.within_free(self.chooser.preferred())
        total, correct = 0.0, 0
        for lo in range(0, X.shape[0], SEGMENT_EXAMPLES):
            hi = min(lo + SEGMENT_EXAMPLES, X.shape[0])
            outputs, costs = with_threads(threads, forward_rows, buffers, X[lo:hi], Y[lo:hi])
            total += float(np.sum(costs))
            if labels is not None:
                correct += int(np.count_nonzero(np.argmax(outputs, axis=1) == labels[lo:hi]))
            self.eval_done += hi - lo
            report(self.progress, self.eval_done, None)
        accuracy = correct / len(X) if labels is not None else None
        return total / len(X), accuracy, len(X)

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
#: noise multiplier σ, sampling ("shuffle" or "poisson"), δ of the privacy report, and
#: whether to record every ‖∇C_x‖ of the training pass (``record_norms``).
PerExample = namedtuple("PerExample", "weight clip sigma sampling delta record_norms",
                        defaults=(False,))


def epoch_hyper(net, hyper, pe, denom, norms=None):
    """``hyper`` with this epoch's per-example rules: weights, clipping, DP noise, dropout.

    The noise and dropout keys are drawn from ``net.rng`` (after the epoch's
    permutation), only when noise or dropout is on, so that without them the
    generator, and every bit of training, is as before.  Saved with the network,
    the generator's state makes a resumed run draw the same keys.  ``norms`` (rows, L):
    where the engine writes ‖∇_{w^l,b^l} C_x‖² of the example at each position of the
    epoch's order (:func:`example_norms`).
    """
    drop = net.dropout_rates()
    if pe is None and drop is None:
        return hyper
    pe = pe or PerExample(None, math.inf, 0.0, "shuffle", None)
    noise_seed = int(net.rng.integers(2 ** 62)) if pe.sigma > 0 else 0
    drop_seed = int(net.rng.integers(2 ** 62)) if drop is not None else 0
    return hyper._replace(ex=optim.make_rules(pe.weight, pe.clip, norms, pe.sigma, noise_seed,
                                              denom, drop, drop_seed))


def dropout_record(net, hyper):
    """``{"dropout_seed": s}`` for an epoch trained with dropout, else ``{}``: the seed s of
    the epoch's masks, mask^l_j of example row r = 1[u(s, r, l − 1, j) ≥ p_l]
    (:func:`loopnet.kernels.dropout`), kept so that ``loopnet.trace`` can show them."""
    if net.dropout_rates() is None:
        return {}
    return {"dropout_seed": int(hyper.ex.drop_seed)}


def example_norms(norms_sq, order, n):
    """The epoch's ‖∇C_x‖ by example row: (n,), row order[p] from position p of the engine's
    (rows, L) squared per-layer terms, ‖∇C_x‖ = (Σ_l norms_sq[p, l])^½; NaN for rows the epoch
    did not visit (an ``order`` that is a subset)."""
    out = np.full(n, np.nan)
    out[order] = np.sqrt(norms_sq.sum(axis=1))
    return out


def privacy_record(net, pe, steps, q):
    """``{"epsilon": ε, "dp_steps": T}`` after an epoch of DP-SGD (σ > 0), else ``{}``."""
    if pe is None or pe.sigma <= 0:
        return {}
    before = next((r["dp_steps"] for r in reversed(net.history) if "dp_steps" in r), 0)
    total = before + steps
    return {"epsilon": privacy.epsilon(pe.sigma, q, total, pe.delta), "dp_steps": total,
            "delta": pe.delta}


class _RunningMean:
    """Σ C_x and the correct count over the examples trained so far, from the engine's pass.

    Σ C_x is one ``np.sum`` over the first k positions, not a sum of per-run sums: the
    runs' lengths follow the thread chooser's timing, and the epoch's cost must not
    depend on it in the last bit (nor on the thread count).
    """

    def __init__(self, out, costs, labels, order):
        self.out, self.costs, self.labels, self.order = out, costs, labels, order
        self.correct, self.count = 0, 0

    def add(self, lo, hi):
        """Take in positions lo … hi−1 of the epoch's order (lo = the positions taken so far)."""
        if self.labels is not None:
            guess = np.argmax(self.out[lo:hi], axis=1)
            self.correct += int(np.count_nonzero(guess == self.labels[self.order[lo:hi]]))
        self.count = hi

    def means(self, prefix=""):
        """{prefix+"cost": (1/k) Σ C_x, prefix+"accuracy": correct/k} of the k examples so far."""
        if not self.count:
            return {}
        found = {prefix + "cost": float(np.sum(self.costs[:self.count])) / self.count}
        if self.labels is not None:
            found[prefix + "accuracy"] = self.correct / self.count
        return found


def flops_per_example(sizes):
    """Multiply-adds ×2 for the forward pass and for BP4, the bulk of a training step."""
    return 4 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


#: (candidates, flops per mini-batch) -> {threads: the last RECENT rates measured, in
#: seconds per mini-batch, oldest first}, shared by the choosers of one process.  Choices
#: go by the latest rate (all threads: the better of their last two); a probe is sized by
#: the slowest of them (see _ThreadChooser).
_MEASURED = {}
RECENT = 3

#: What other processes use of this process's CPUs, looked at before each run of a fit with
#: threads=None; one per process, so that a fit's first run is judged on the time since the
#: last fit (or since import).
_WATCH = cpuload.CpuWatch()


class _ThreadChooser:
    """Picks the thread count for each compiled run of mini-batches.

    With ``threads=None`` no run asks for more threads than the CPUs other processes left
    free during the last run (:mod:`loopnet.cpuload`): timing alone noticed a competing
    process only after runs that had already stalled at every barrier.

    A fixed request is honoured (capped at Numba's thread count).  Otherwise
    the candidates are all threads and one thread, in that order; each is
    timed per mini-batch, the faster is used (one thread only when it is
    SWITCH_MARGIN faster than the better of all threads' last two runs), and every
    PROBE_EVERY-th run re-times the other one (on a shorter run) so that a change of
    machine load is noticed; a choice of one thread that rests on a single
    all-threads run is re-timed at once (the 4th run).

    A change of choice starts slowly: the first run at the new choice is as long as
    its last probe, and each further run doubles, up to the usual length.  On a busy
    machine all threads can be 10-70x slower than one (one descheduled thread stalls
    every barrier of a static schedule), and a short probe timed in a lucky moment
    once sent whole runs of seconds there; now a wrong switch costs about two probes.
    For the same reason a probe lasts PROBE_SECONDS at the SLOWEST of the last RECENT
    rates of its choice: sized by the last rate alone, one lucky 0.4 ms/batch probe
    made the next one 47 mini-batches, which ran at 49 ms each (2.3 s; W1 beside a
    BLAS loop at load 8 on 2 cores).
    """

    def __init__(self, threads, flops_per_batch, tasks=None):
        # No phase has more than ``tasks`` parallel tasks (the mini-batch's examples in A2, the
        # row blocks in A1 and B): threads beyond that only wait at every barrier (W1 on a
        # 16-core Xeon: 8 row blocks, m = 10, and 16 threads slower than 8).
        most = numba.get_num_threads()
        useful = min(most, tasks or most)
        if threads is not None:     # as asked: a scaling table must time what it names
            self.candidates = [min(threads, most)]
        elif useful > 1 and flops_per_batch >= PARALLEL_MIN_FLOPS:
            self.candidates = [useful, 1]   # all useful threads first: on a quiet machine they win
        else:
            self.candidates = [1]
        # What earlier fits of this process measured for the same work is the starting point
        # (a fit per call, as in a loop of fit(epochs=1), must not pay the first probes again).
        self.rates = _MEASURED.setdefault((tuple(self.candidates), flops_per_batch), {})
        self.calls = 0
        self.probed = {}        # threads -> mini-batches in its last probe
        self.settled = None     # the choice of the last usual run
        self.ramp = None        # cap on the next usual run while ramping up after a switch
        # What other processes leave of the CPUs (threads=None only: an explicit count is run)
        self.watch = _WATCH if len(self.candidates) > 1 else None

    def next(self):
        """(threads, probe) for the next run; a probe times a choice that is not the best.
        Never more threads than the CPUs other processes leave free (:meth:`within_free`)."""
        threads, probe = self._next()
        return self.within_free(threads), probe

    def within_free(self, threads):
        """``threads``, or fewer where other processes kept CPUs busy during the last run
        (:class:`loopnet.cpuload.CpuWatch`): a thread that shares a CPU with another
        process stalls every barrier (W3 beside one BLAS loop on 2 cores: 2.96× slower than
        alone on two threads).  Bits do not depend on the thread count."""
        if self.watch is None or threads <= 1:
            return threads
        free = self.watch.free_cpus()
        return threads if free is None else min(threads, free)

    def _next(self):
        self.calls += 1
        untried = [k for k in self.candidates if k not in self.rates]
        if untried:
            return untried[0], bool(self.rates)
        best = self.preferred()
        if len(self.candidates) > 1:
            other = next(k for k in self.candidates if k != best)
            # a choice k times slower is probed k times less often (at most 4× less).  When
            # an earlier fit left one thread preferred, this fit re-times all threads on its
            # second run: that verdict may be stale (e.g. from a warm-up on a few rows); the
            # other way round costs the one-thread probe nothing is gained by on a quiet machine
            slower = min(4, max(1, int(self.latest(other) / max(self.latest(best), 1e-12))))
            early = self.calls == 2 and other == self.candidates[0]
            # one thread chosen on a single all-threads run (this process's first, e.g. one
            # slowed by another library's threads still spinning): time all threads once more
            again = self.calls == 4 and other == self.candidates[0] and len(self.rates[other]) < 2
            if early or again or self.calls % (PROBE_EVERY * slower) == 0:
                return other, True
        return best, False

    def record(self, threads, seconds_per_batch):
        if threads not in self.candidates:     # a count cut to the free CPUs: not a choice
            return
        self.rates[threads] = (self.rates.get(threads, ()) + (seconds_per_batch,))[-RECENT:]

    def latest(self, threads):
        """The last rate measured for ``threads`` (seconds per mini-batch), None before any."""
        rates = self.rates.get(threads)
        return rates[-1] if rates else None

    def preferred(self):
        """The thread count that trained fastest so far (the first candidate before any);
        a later candidate (one thread) only when it is SWITCH_MARGIN times faster than the
        first candidate's better of its last two rates (:meth:`settled_rate`)."""
        timed = [k for k in self.candidates if k in self.rates]
        if not timed:
            return self.candidates[0]
        best = timed[0]
        for k in timed[1:]:
            if self.latest(k) * SWITCH_MARGIN < self.settled_rate(best):
                best = k
        return best

    def settled_rate(self, threads):
        """The rate ``threads`` is judged by: for all threads (the first candidate) the
        better of its last two, so that one slow run does not send the fit to one thread.
        Right after other code used the cores (NumPy's BLAS threads spin on for ~0.1 s
        after a call), an all-threads run measured 29 ms per W3 batch against its usual
        1.2; by its latest rate alone the fit then spent the epoch on one thread (1.9 ms
        per batch).  A load that stays shows in two runs in a row, and each run lasts at
        most SEGMENT_SECONDS at the rate just measured."""
        rates = self.rates.get(threads)
        if threads == self.candidates[0] and len(self.candidates) > 1 and len(rates) > 1:
            return min(rates[-2:])
        return rates[-1]

    def run_length(self, threads, probe, batch_size):
        """Mini-batches in the next run.  A probe runs 1/PROBE_SHARE of a usual run, and
        at most PROBE_SECONDS at the slowest rate measured lately for that choice.  After
        a switch, usual runs start at the new choice's last probe length and double."""
        usual = self.batches_per_call(self.preferred() if probe else threads, batch_size)
        if probe:
            share = usual / PROBE_SHARE
            mine = max(self.rates.get(threads, ()), default=None)     # the slowest lately
            if mine:
                share = min(share, PROBE_SECONDS / mine)
            self.probed[threads] = max(1, int(share))
            return self.probed[threads]
        if threads != self.settled and len(self.candidates) > 1:    # a switch: start slowly
            self.settled = threads
            self.ramp = self.probed.get(threads, max(1, usual // PROBE_SHARE))
        if self.ramp is None:
            return usual
        length = min(usual, self.ramp)
        self.ramp = None if self.ramp * 2 >= usual else self.ramp * 2
        return length

    def batches_per_call(self, threads, batch_size):
        """Mini-batches in the next run: SEGMENT_EXAMPLES examples, fewer when that would
        take longer than SEGMENT_SECONDS at the measured rate."""
        per_call = max(1, SEGMENT_EXAMPLES // batch_size)
        seconds = self.latest(threads)
        if seconds:
            per_call = min(per_call, max(1, int(SEGMENT_SECONDS / seconds)))
        return per_call


def with_threads(threads, fn, *args):
    """fn(*args) with at most ``threads`` Numba threads (the count restored afterwards)."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, before))
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(before)


def _train_batches(threads, *args):
    """engine.run_batches(..., TRAIN) with at most ``threads`` threads."""
    with_threads(threads, engine.run_batches, *args)
