"""Data-parallel training over MPI (mpi4py): the same averaged gradient, computed by several processes.

Launch one process per rank with the ``mpi`` extra installed (``pip install loopnet[mpi]``
puts ``mpiexec`` in the virtual environment)::

    mpiexec -n 4 python -m mpi4py -m loopnet train --distributed ...
    mpiexec -n 4 python -m mpi4py my_script.py      # calls loopnet.distributed.fit(net, X, Y, comm="world")

``python -m mpi4py`` matters: when one rank dies with an exception, it calls ``MPI_Abort`` so
that every rank exits instead of waiting forever inside a collective.

What one step computes
----------------------
A mini-batch of m examples (rows ``order[s:s+m]`` of the epoch's order) is cut into ``size``
contiguous pieces - piece r holds examples ``floor(m r / size) ... floor(m (r+1) / size) - 1``
of the mini-batch - and piece r goes to rank r.  Rank r sums the gradients of its piece in
example order with the usual compiled kernels (``Net.gradient_sum``), the pieces are added
over ranks, divided by m once, and every rank applies the same update (``Net.step``)::

    ∂C/∂w = (1/m) Σ_r Σ_{x in piece r} ∂C_x/∂w

Rank 0's parameters, optimizer state, epoch count, history and random-generator state are
broadcast before the first step, so every rank starts from the same point and draws the same
permutation each epoch (``net.rng.permutation(n)``, exactly as ``Net.fit`` does).

Guarantees
----------
* ``deterministic=True`` combines the pieces by gather-in-rank-order, add
  (``g_0 + g_1 + ... + g_{size-1}``), broadcast.  Each ``g_r`` is bit-reproducible (the core
  sums in example order whatever ``NUMBA_NUM_THREADS`` is), so a run is bit-reproducible for a
  given rank count, and bit-equal to the one-process emulation of the same decomposition,
  ``fit(net, X, Y, ranks=size)`` with ``comm=None``.
* ``deterministic=False`` uses ``Allreduce``: the order in which MPI adds the pieces is the
  library's choice (it may depend on message size and topology), so the result equals the
  above to rounding.  With 2 ranks the one addition is commutative and the result is in
  practice bit-identical too.  At the end of every epoch rank 0's parameters and optimizer
  state are broadcast, so ranks never drift apart.
* One rank computes what ``Net.fit`` computes: same permutation, same in-order gradient sum,
  same update - bit for bit (``Net.step(Σ, m=m)`` is literally ``Net.fit``'s (η/m)·Σ).
  k ranks add the same
  per-example gradients grouped into k partial sums, so they equal ``Net.fit`` - and each
  other - to rounding (1e-12 after a few epochs in the tests), not bit for bit:
  floating-point addition is not associative.

Two decompositions (``partition=``)
-----------------------------------
``"batch"`` (default)
    The one above: one global permutation, each mini-batch split across ranks.  Each epoch a
    rank reads only the rows it needs (n/size rows, scattered over the file) - with a
    memory-mapped IDX file (:func:`open_idx`) nothing else is read, and a rank holds n/size
    rows in memory.
``"data"``
    Rank r owns a fixed contiguous block of the data set (same rule over the n rows) and reads
    it once, in one contiguous read.  Every epoch each block is permuted (all ranks draw the
    same ``size`` permutations from ``net.rng``, in rank order, so the generators stay in step)
    and step b takes the b-th of ``ceil(n/batch_size)`` near-equal pieces of every block.
    Mini-batches then mix examples of all blocks in fixed proportions; the step count per epoch
    is ``Net.fit``'s, mini-batch sizes can differ by up to ``size`` examples.  This is the
    decomposition for data sets larger than one machine; it is not ``Net.fit``'s sequence of
    mini-batches, but the one-process emulation (``ranks=size, partition="data"``) reproduces
    it bit for bit (deterministic) or to rounding.

The epoch loop itself (rollback on Ctrl-C or divergence, the epoch record, monitoring,
‖∇C‖ for ``tol``, callbacks) is :func:`loopnet.training.run`, the one ``Net.fit`` uses;
this module supplies its steps (:class:`_RankSteps`).
Only rank 0 calls ``callback`` and ``progress``; whether to stop is broadcast from it.  Monitor
quantities (cost, accuracy) are computed by every rank on a fixed block and combined in rank
order, so they are the same on every rank (and equal ``Net.fit``'s to rounding).  mpi4py is
imported only when ``comm`` is given.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import os
import sys
import time
import traceback
import zlib

import numpy as np

from . import reporting, training
from .checks import check_choice, check_int, check_order, check_pair, is_one_hot
from .idx import IdxRows, data_bytes, parse_header
from .limits import check_bytes, regular_file

#: Seconds a failing rank waits, after writing its traceback, before MPI_Abort (see on_error).
ABORT_GRACE_SECONDS = 0.2

__all__ = [
    "fit",
    "world",
    "split_bounds",
    "open_idx",
    "IdxRows",
    "uncompressed",
    "DistributedError",
]


class DistributedError(RuntimeError):
    """MPI is needed but not available, or the ranks disagree about their arguments."""


# --------------------------------------------------------------------------------------------
# communicators
# --------------------------------------------------------------------------------------------


def world():
    """``MPI.COMM_WORLD``, importing mpi4py now (and only now).

    Raises :class:`DistributedError` naming the extra to install when mpi4py is missing.
    """
    try:
        from mpi4py import MPI  # noqa: PLC0415 - imported on demand by design
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DistributedError(
            "distributed training needs mpi4py: pip install 'loopnet[mpi]' "
            "(mpi4py + MPICH wheel, gives mpiexec) or 'loopnet[mpi-system]' (your cluster's MPI)"
        ) from exc
    return MPI.COMM_WORLD


class _SerialGroup:
    """All ``size`` ranks of the decomposition, computed one after another in this process."""

    def __init__(self, size):
        self.size = int(size)
        self.rank = 0
        self.local_ranks = list(range(self.size))
        self.comm = None

    def sum_parts(self, parts, deterministic):
        total = parts[0].copy()
        for p in parts[1:]:
            total += p
        return total

    def sum_floats(self, values):
        total = 0.0
        for v in values:
            total += v
        return total

    def bcast(self, obj):
        return obj

    def bcast_array(self, a):
        return a

    def any(self, flag):
        return bool(flag)

    def barrier(self):
        pass


class _MPIGroup:
    """This process is rank ``comm.rank`` of ``comm.size``."""

    def __init__(self, comm):
        from mpi4py import MPI  # noqa: PLC0415

        self.MPI = MPI
        self.comm = comm
        self.size = comm.Get_size()
        self.rank = comm.Get_rank()
        self.local_ranks = [self.rank]
        self._gather = None

    def sum_parts(self, parts, deterministic):
        (g,) = parts
        if self.size == 1:
            return g
        if not deterministic:
            self.comm.Allreduce(self.MPI.IN_PLACE, g, op=self.MPI.SUM)
            return g
        # Gather in rank order on rank 0, add g_0 + g_1 + ... left to right, broadcast.
        if self.rank == 0:
            if self._gather is None or self._gather.shape != (self.size, g.size) or self._gather.dtype != g.dtype:
                self._gather = np.empty((self.size, g.size), dtype=g.dtype)
            self.comm.Gather(g, self._gather, root=0)
            g[...] = self._gather[0]
            for r in range(1, self.size):
                g += self._gather[r]
        else:
            self.comm.Gather(g, None, root=0)
        self.comm.Bcast(g, root=0)
        return g

    def sum_floats(self, values):
        (v,) = values
        total = 0.0
        for x in self.comm.allgather(float(v)):  # rank order, same result on every rank
            total += x
        return total

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def bcast_array(self, a):
        a = np.ascontiguousarray(a)
        self.comm.Bcast(a, root=0)
        return a

    def any(self, flag):
        return bool(self.comm.allreduce(int(bool(flag)), op=self.MPI.MAX))

    def barrier(self):
        self.comm.Barrier()


def _group(comm, ranks):
    if comm is None:
        return _SerialGroup(1 if ranks is None else check_int(ranks, "ranks", minimum=1))
    if isinstance(comm, str):
        if comm != "world":
            raise ValueError(f"comm must be an mpi4py communicator, 'world' or None, got {comm!r}")
        comm = world()
    if ranks is not None and int(ranks) != comm.Get_size():
        raise ValueError(f"ranks={ranks} but the communicator has {comm.Get_size()} ranks")
    return _MPIGroup(comm)


# --------------------------------------------------------------------------------------------
# decomposition
# --------------------------------------------------------------------------------------------


def split_bounds(m, size):
    """Bounds of ``size`` contiguous pieces of ``m`` items: piece r is ``[b[r], b[r+1])``.

    ``b[r] = floor(m r / size)``: sizes differ by at most one, the larger pieces last.

    >>> split_bounds(10, 3).tolist()
    [0, 3, 6, 10]
    """
    return (int(m) * np.arange(int(size) + 1, dtype=np.int64)) // int(size)


def _batch_plan(order, batch_size, size):
    """partition="batch": per-rank row indices for the epoch, per-step local bounds and m."""
    n = len(order)
    starts = list(range(0, n, batch_size))
    ms = [min(batch_size, n - s) for s in starts]
    rows = [[] for _ in range(size)]
    local_bounds = [[0] for _ in range(size)]
    for s, m in zip(starts, ms):
        b = split_bounds(m, size)
        for r in range(size):
            rows[r].append(order[s + b[r]: s + b[r + 1]])
            local_bounds[r].append(local_bounds[r][-1] + int(b[r + 1] - b[r]))
    rows = [np.concatenate(x) if x else np.empty(0, dtype=np.intp) for x in rows]
    return rows, local_bounds, ms


def _data_plan(perms, block_starts, n, batch_size):
    """partition="data": rank r's block permuted by perms[r]; step b takes piece b of every block."""
    size = len(perms)
    steps = -(-n // batch_size)
    rows, local_bounds = [], []
    ms = np.zeros(steps, dtype=np.int64)
    for r in range(size):
        b = split_bounds(len(perms[r]), steps)
        rows.append(block_starts[r] + perms[r])
        local_bounds.append([int(x) for x in b])
        ms += np.diff(b)
    return rows, local_bounds, [int(m) for m in ms]


def _take(X, idx):
    """Rows ``idx`` of X; for a lazy/memory-mapped source read them in file order, once."""
    if isinstance(X, np.ndarray) and not isinstance(X, np.memmap):
        return X[idx]
    if len(idx) == 0:
        return np.asarray(X[np.empty(0, dtype=np.intp)])
    if idx[-1] - idx[0] + 1 == len(idx) and np.all(np.diff(idx) == 1):
        return np.asarray(X[int(idx[0]): int(idx[-1]) + 1])  # a block: one contiguous read
    u, inverse = np.unique(idx, return_inverse=True)
    return np.asarray(X[u])[inverse]


def _as_rows(A):
    """Arrays, memmaps and IdxRows pass through (read lazily); anything else becomes an array."""
    return A if hasattr(A, "shape") and hasattr(A, "__getitem__") else np.asarray(A)


def _check_data(X, Y):
    n = len(X)
    if len(Y) != n:
        raise ValueError(f"X has {n} rows but Y has {len(Y)}")
    if n == 0:
        raise ValueError("X has no rows")
    return n


def _one_hot_rows(Y, lo, hi):
    """True when rows lo..hi-1 of 2-D targets are one-hot (Net.fit then reports accuracy)."""
    return hi == lo or is_one_hot(_take(Y, np.arange(lo, hi)))


def _classification(net, Y, group, blocks):
    """Net.fit's rule: accuracy is reported when the targets are labels or one-hot rows."""
    if net.sizes[-1] < 2:
        return False
    if Y.ndim == 1:
        return True
    ok = all(_one_hot_rows(Y, blocks[r], blocks[r + 1]) for r in group.local_ranks)
    return not group.any(not ok)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _right(out, Y):
    """How many rows of ``out`` have their largest output at the label (Y: labels or one-hot
    rows), as Net.accuracy counts."""
    labels = Y if np.ndim(Y) == 1 else np.argmax(Y, axis=1)
    return int(np.count_nonzero(np.argmax(out, axis=1) == labels))


def _sync_from_root(net, group):
    """Make every rank start from rank 0's parameters, optimizer state, epoch and generator."""
    if group.size == 1 or group.comm is None:
        return
    state = group.bcast(
        {
            "rng": net.rng.bit_generator.state,
            "optimizer": net.optimizer_state,
            "epoch": net.epoch,
            "history": net.history,
            "config": net.config,
        }
    )
    if state["config"] != net.config:
        raise DistributedError(
            f"rank {group.rank} built a different network ({net.config}) than rank 0 ({state['config']})"
        )
    net.params[...] = group.bcast_array(net.params.copy())
    net.rng.bit_generator.state = state["rng"]
    net.optimizer_state = copy.deepcopy(state["optimizer"])
    net.epoch = state["epoch"]
    net.history[:] = copy.deepcopy(state["history"])


class _RankSteps:
    """The steps of :func:`loopnet.training.run` over ranks: each mini-batch's gradient sum
    is computed piece by piece (one piece per rank) and combined by ``group``."""

    def __init__(self, group, X, Y, partition, order, shuffle, batch_size, step_kw,
                 deterministic, labels, validation_data, abort_on_error):
        self.group, self.X, self.Y = group, X, Y
        self.partition, self.order, self.shuffle = partition, order, shuffle
        self.batch_size, self.step_kw, self.deterministic = batch_size, step_kw, deterministic
        self.labels, self.validation_data = labels, validation_data
        self.abort_on_error = abort_on_error
        self.n = len(X)
        self.blocks = [int(b) for b in split_bounds(self.n, group.size)]
        self.is_root = group.rank == 0
        self.has_validation = validation_data is not None
        self.own = {}
        if partition == "data":          # each rank reads its contiguous block once
            self.own = {r: (_take(X, self._block(r)), _take(Y, self._block(r)))
                        for r in group.local_ranks}

    @property
    def eta(self):
        return self.step_kw["eta"]

    def set_eta(self, eta):
        """Train the next mini-batches with learning rate ``eta`` (``lr_schedule``)."""
        self.step_kw = dict(self.step_kw, eta=training.scheduled_eta(eta))

    def _block(self, r):
        return np.arange(self.blocks[r], self.blocks[r + 1])

    def _plan(self, net):
        """(rows of this epoch per local rank, per-rank step bounds, examples per step)."""
        size = self.group.size
        if self.partition == "batch":
            if self.order is not None:
                epoch_order = self.order
            else:
                epoch_order = net.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            rows, bounds, ms = _batch_plan(epoch_order, self.batch_size, size)
            local = {r: (_take(self.X, rows[r]), _take(self.Y, rows[r])) for r in self.group.local_ranks}
        else:
            blocks = self.blocks
            perms = [net.rng.permutation(blocks[r + 1] - blocks[r]) if self.shuffle
                     else np.arange(blocks[r + 1] - blocks[r]) for r in range(size)]
            rows, bounds, ms = _data_plan(perms, blocks, self.n, self.batch_size)
            local = {r: (self.own[r][0][perms[r]], self.own[r][1][perms[r]])
                     for r in self.group.local_ranks}
        return local, bounds, ms

    collect_pass = False        # set by training.run for monitor=True (see epoch)

    def epoch(self, net, epoch, progress):
        """One epoch.  With ``collect_pass``, the epoch's training cost and accuracy come from
        the forward passes that computed the gradients (each C_x before its step's update, as
        Net.fit reports them): each rank adds its examples' C_x in its order, the ranks' sums
        are added in rank order; no extra pass over the training set."""
        group, P = self.group, net.params.size
        comm_s = 0.0
        local, bounds, ms = self._plan(net)
        steps = len(ms)
        every = max(1, steps // 50)
        if self.collect_pass:       # each local rank's rows of the epoch, in its order
            outs = {r: np.empty((bounds[r][-1], net.sizes[-1]), net.dtype) for r in local}
            costs = {r: np.zeros(bounds[r][-1]) for r in local}
        for b in range(steps):
            parts = []
            for r in group.local_ranks:
                lo, hi = bounds[r][b], bounds[r][b + 1]
                if hi > lo:
                    Xl, Yl = local[r]
                    if self.collect_pass:
                        g = net._gradient_sum_and_pass(Xl[lo:hi], Yl[lo:hi], outs[r][lo:hi],
                                                       costs[r][lo:hi])
                    else:
                        g = net.gradient_sum(Xl[lo:hi], Yl[lo:hi])
                    # several pieces in one process (the emulation) must not share a buffer
                    parts.append(np.array(g, copy=True) if len(group.local_ranks) > 1 else np.asarray(g))
                else:
                    parts.append(np.zeros(P, dtype=net.params.dtype))
            tc = time.perf_counter()
            total = group.sum_parts(parts, self.deterministic)
            comm_s += time.perf_counter() - tc
            net._step(total, m=ms[b], **self.step_kw)     # (η/m)·Σ, exactly as Net.fit (unchecked:
            # a non-finite Σ is caught after the epoch, which is then rolled back)
            if progress is not None and self.is_root and ((b + 1) % every == 0 or b + 1 == steps):
                progress(b + 1, steps)
        if group.size > 1 and not self.deterministic and group.comm is not None:
            # Allreduce need not give every rank the same bits; rank 0's state is the truth.
            tc = time.perf_counter()
            net.params[...] = group.bcast_array(net.params.copy())
            net.optimizer_state = group.bcast(net.optimizer_state)
            comm_s += time.perf_counter() - tc
        extra = {"ranks": group.size, "comm_seconds": comm_s}
        if self.collect_pass:
            extra["pass_cost"] = group.sum_floats(
                [float(np.sum(costs[r])) for r in group.local_ranks]) / self.n
            if self.labels:
                extra["pass_accuracy"] = group.sum_floats(
                    [float(_right(outs[r], local[r][1][:bounds[r][-1]]))
                     for r in group.local_ranks]) / self.n
        return self.n, extra

    def measure(self, net, which):
        """Cost and accuracy from fixed blocks, combined in rank order (the same on every rank)."""
        if which == "train":
            A, B, bounds, is_labels = self.X, self.Y, self.blocks, self.labels
        else:
            A, B = self.validation_data
            bounds = split_bounds(len(A), self.group.size)
            is_labels = _classification(net, B, self.group, bounds)
        total = len(A)
        cost_parts, acc_parts = [], []
        for r in self.group.local_ranks:
            lo, hi = int(bounds[r]), int(bounds[r + 1])
            if hi == lo:
                cost_parts.append(0.0)
                acc_parts.append(0.0)
                continue
            As, Bs = _take(A, np.arange(lo, hi)), _take(B, np.arange(lo, hi))
            cost_parts.append(float(net.cost(As, Bs)) * (hi - lo))
            if is_labels:
                acc_parts.append(float(net.accuracy(As, Bs)) * (hi - lo))
        accuracy = self.group.sum_floats(acc_parts) / total if is_labels else None
        return self.group.sum_floats(cost_parts) / total, accuracy, total

    def gradient_sum(self, net):
        """Σ_x ∇C_x over the whole training set, the ranks' blocks added in rank order."""
        parts = []
        for r in self.group.local_ranks:
            if self.blocks[r + 1] > self.blocks[r]:
                block = self._block(r)
                parts.append(np.array(net.gradient_sum(_take(self.X, block), _take(self.Y, block)),
                                      copy=True))
            else:
                parts.append(np.zeros(net.params.size, dtype=net.params.dtype))
        return self.group.sum_parts(parts, True)

    def agree(self, stop):
        return bool(self.group.bcast(stop))

    def any_rank(self, flag):
        return self.group.any(flag)

    def on_error(self):
        group = self.group
        if self.abort_on_error and group.size > 1 and group.comm is not None:
            traceback.print_exc()
            sys.stderr.write(f"loopnet.distributed: rank {group.rank} failed; aborting all ranks\n")
            sys.stderr.flush()
            # mpiexec forwards each rank's stderr through a pipe; MPI_Abort kills the ranks and
            # the forwarder at once, and the traceback just written was seen lost (only its
            # first line reached the terminal, once in a test run on a loaded machine).
            time.sleep(ABORT_GRACE_SECONDS)
            group.comm.Abort(1)


def fit(
    net,
    X,
    Y,
    *,
    comm=None,
    ranks=None,
    deterministic=False,
    partition="batch",
    epochs=30,
    batch_size=10,
    eta=3.0,
    lmbda=0.0,
    momentum=0.0,
    optimizer="sgd",
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    tol=None,
    validation_data=None,
    shuffle=True,
    order=None,
    monitor=True,
    callback=None,
    progress=None,
    abort_on_error=True,
    patience=None,
    monitor_key=None,
    restore_best=False,
    lr_schedule=None,
    verbose=0,
):
    """Train ``net`` for ``epochs`` more epochs with each mini-batch split across MPI ranks.

    Parameters (the others are those of ``Net.fit``)
    ----------
    comm : mpi4py communicator, ``"world"`` or None
        The ranks to train on.  ``None`` emulates ``ranks`` ranks in this process, one piece
        after another: bit-equal to a real ``deterministic=True`` run on ``ranks`` processes
        (this is what the tests compare against).
    ranks : int, optional
        Only with ``comm=None``: the number of ranks to emulate (default 1).
    deterministic : bool
        Combine the per-rank sums in rank order (gather, add, broadcast) instead of
        ``Allreduce``: bit-reproducible for a given rank count.  Costs more per step than
        ``Allreduce`` (measured in ``profiles/distributed.py``).
    partition : {"batch", "data"}
        How examples are assigned to ranks; see the module docstring.
    X, Y : array-like, :class:`IdxRows` or ``np.memmap``
        The whole training set, addressed by row.  Every rank reads only the rows it needs
        (``partition="data"``: one contiguous block), so with :func:`open_idx` a rank never holds
        more than its share in memory.
    abort_on_error : bool
        With more than one rank, an unexpected exception on one rank prints its traceback and
        calls ``MPI_Abort`` so that no rank hangs in a collective (what ``python -m mpi4py``
        does too).  Errors every rank raises together (bad arguments, divergence) propagate
        normally; ``KeyboardInterrupt`` rolls the epoch back and propagates.

    order : 1-D int array, optional
        As in ``Net.fit``: the example order of every epoch of this call (no shuffle, no draw
        from ``net.rng``); only with ``partition="batch"``.

    patience, monitor_key, restore_best, lr_schedule, verbose : as in ``Net.fit``; every rank
        sees the same records, so they all stop, restore and change η together; only rank 0
        prints (``verbose``).

    Returns ``net``.  Each history record gets two more keys: ``"ranks"`` and
    ``"comm_seconds"`` (time this rank spent combining gradients in that epoch, waiting for
    slower ranks included).
    """
    check_choice(partition, "partition", ("batch", "data"))
    if net.dropout_rates() is not None:     # its steps take plain gradient sums
        raise ValueError("distributed.fit does not apply dropout (yet): train this network "
                         "with Net.fit, or build it with dropout=0")
    epochs = check_int(epochs, "epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    group = _group(comm, ranks)
    X, Y = _as_rows(X), _as_rows(Y)
    if validation_data is not None:
        validation_data = tuple(_as_rows(A) for A in check_pair(validation_data))
    n = _check_data(X, Y)
    if order is not None:
        if partition != "batch":
            raise ValueError("order= needs partition='batch' (with 'data' each rank permutes its own block)")
        order = check_order(order, n)
    step_kw = dict(
        eta=eta, lmbda=lmbda, n=n, momentum=momentum, optimizer=optimizer,
        beta1=beta1, beta2=beta2, epsilon=epsilon,
    )
    _sync_from_root(net, group)
    labels = _classification(net, Y, group, split_bounds(n, group.size)) if monitor else False
    steps = _RankSteps(group, X, Y, partition, order, shuffle, batch_size, step_kw, deterministic,
                       labels, validation_data, abort_on_error)
    verbose = check_int(verbose, "verbose", minimum=0)
    progress, callback = reporting.attach(verbose if group.rank == 0 else 0, epochs, progress,
                                          callback, net.epoch)
    try:
        return training.run(net, steps, epochs=epochs, lmbda=lmbda, monitor=monitor, tol=tol,
                            callback=callback, progress=progress, patience=patience,
                            monitor_key=monitor_key, restore_best=restore_best,
                            lr_schedule=lr_schedule)
    finally:
        reporting.close(progress)


# --------------------------------------------------------------------------------------------
# sharded reading of IDX files
# --------------------------------------------------------------------------------------------


def uncompressed(path, *, cache_dir=None, comm=None):
    """Path of an uncompressed copy of an IDX file (``.gz`` files are gunzipped once).

    A gzip stream cannot be memory-mapped, so ``foo-idx3-ubyte.gz`` is decompressed into
    ``cache_dir`` (default ``$LOOPNET_CACHE`` or ``~/.cache/loopnet``) under a name keyed by
    the SHA-256 of the compressed bytes (``foo-idx3-ubyte.<sha256[:32]>``): two files of the
    same name (MNIST and Fashion-MNIST) never share a copy, and a changed file gets a new one.
    The header's declared size is checked (:func:`loopnet.limits.check_bytes`) and exactly that
    many bytes are inflated.  With ``comm`` only rank 0 writes (atomically: temporary file,
    then rename) and the other ranks wait at a barrier.
    """
    path = os.fspath(path)
    if not path.endswith(".gz"):
        return path
    cache_dir = cache_dir or os.environ.get("LOOPNET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "loopnet")
    rank = 0 if comm is None else comm.Get_rank()
    target = None
    if rank == 0:
        target = os.path.join(cache_dir, f"{os.path.basename(path)[:-3]}.{_file_sha256(path)[:32]}")
        if not os.path.isfile(target):
            os.makedirs(cache_dir, exist_ok=True)
            _gunzip_idx(path, target)
    if comm is not None:
        target = comm.bcast(target, root=0)
        comm.Barrier()
    return target


def _file_sha256(path):
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _gunzip_idx(path, target):
    """Inflate the IDX file ``path`` into ``target`` atomically, no more than its header says."""
    regular_file(path, "IDX file")
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
            head = src.read(4)
            head += src.read(4 * head[3]) if len(head) == 4 else b""
            dtype, shape, _ = parse_header(head, path)
            left = check_bytes(data_bytes(dtype, shape), path, f"IDX data of shape {shape}")
            dst.write(head)
            while left:
                block = src.read(min(left, 1 << 20))
                if not block:
                    raise ValueError(f"{path}: truncated IDX data")
                dst.write(block)
                left -= len(block)
            if src.read(1):
                raise ValueError(f"{path}: more data than the IDX header announces; corrupt")
        os.replace(tmp, target)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot decompress IDX file ({exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def open_idx(path, *, divide_by=None, dtype=None, flatten=True, cache_dir=None, comm=None):
    """Memory-map an IDX file (decompressing a ``.gz`` once, see :func:`uncompressed`).

    ``open_idx("train-images-idx3-ubyte", divide_by=255)`` gives float64 rows of 784 pixels in
    [0, 1]; ``open_idx("train-labels-idx1-ubyte")`` gives int64 labels.  Nothing is read until
    rows are indexed.
    """
    return IdxRows(uncompressed(path, cache_dir=cache_dir, comm=comm), divide_by=divide_by, dtype=dtype,
                   flatten=flatten)
