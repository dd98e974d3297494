"""The compiled engine: the four kernels chained over a network and over the
examples of a mini-batch, in two parallel phases, and whole runs of mini-batches
in one call.

Memory layout (llm.c style, one flat buffer):

* ``params`` holds, for layers l = 1..L, w^l (n_l × n_{l−1}, C order) then b^l;
  ``arch.p_off[i]`` is where layer i+1 starts.  Gradients use the same layout.
* ``work.z``, ``work.a``, ``work.delta``: one row per example of the mini-batch,
  layers 1..L side by side from ``arch.u_off[i]``, rows padded to whole cache
  lines so that two threads never write the same line.

A mini-batch step runs in two parallel phases:

A. **errors** — for each example x (in parallel over examples): the forward
   pass, BP1 and BP2, i.e. every z^l_j, a^l_j and δ^l_j of that example.
B. **gradient** — for each block of rows j of a layer (in parallel over
   blocks): BP3/BP4 summed over the examples, ∂C/∂w_jk = Σ_x δ^x_j a^x_k,
   in example order x = 0, 1, …, m−1; then (when training) the update of
   those rows: w_jk ← w_jk − (η/m) ∂C/∂w_jk.

Each number is computed by exactly one thread, in an order that does not
depend on how the work is split, so the result is bit-identical for any
``NUMBA_NUM_THREADS`` (and equal to the plain serial loop), without per-thread
gradient copies to reduce.
"""

from collections import namedtuple

import numpy as np
from numba import prange

from ._jit import jit, pjit
from .costs import cost_x
from .kernels import (accumulate_gradient, accumulate_gradient4, activate, forward_layer,
                      forward_layer4, hidden_delta, output_delta)
from .optim import update_range

# The network's shape and choices, passed to every compiled driver.
# ``tasks[t] = (i, j_lo, j_hi)``: phase-B task t owns rows j_lo … j_hi−1 of layer i+1.
Arch = namedtuple("Arch", "sizes p_off u_off tasks first_tasks act out_act cost")
# Scratch: the averaged gradient, and z, a, δ of each example of a block.
Work = namedtuple("Work", "grad z a delta")

CACHE_LINE = 8          # float64 values per 64-byte line
FIRST_LAYER_BLOCKS = 8  # layer 1 is cut into this many row blocks: even shares for 1, 2, 4, 8 threads
TASK_WEIGHTS = 8192     # weights per task in the other layers
BLOCK_EXAMPLES = 256    # examples per phase-A block outside training (gradient, predict, cost)


def make_arch(sizes, act, out_act, cost):
    """Offsets of every layer in the flat buffers and the phase-B task table."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n_layers = len(sizes) - 1
    p_off = np.zeros(n_layers + 1, dtype=np.int64)
    u_off = np.zeros(n_layers + 1, dtype=np.int64)
    tasks = []
    for i in range(n_layers):
        n, m = int(sizes[i + 1]), int(sizes[i])
        p_off[i + 1] = p_off[i] + n * m + n
        u_off[i + 1] = u_off[i] + n
        rows = -(-n // FIRST_LAYER_BLOCKS) if i == 0 else max(1, TASK_WEIGHTS // m)
        tasks += [(i, j, min(j + rows, n)) for j in range(0, n, rows)]
    first_tasks = sum(1 for t in tasks if t[0] == 0)
    return Arch(sizes, p_off, u_off, np.array(tasks, dtype=np.int64), np.int64(first_tasks),
                np.int64(act), np.int64(out_act), np.int64(cost))


def make_work(arch, n_rows, dtype):
    """Scratch for ``n_rows`` examples at a time; training allocates nothing after this."""
    n_units = int(arch.u_off[-1])
    row = (n_units // CACHE_LINE + 2) * CACHE_LINE
    return Work(grad=np.zeros(int(arch.p_off[-1]), dtype),
                z=np.zeros((n_rows, row), dtype), a=np.zeros((n_rows, row), dtype),
                delta=np.zeros((n_rows, row), dtype))


# ---------------------------------------------------------------- views
@jit
def weight(buf, arch, i):
    """View of w^{i+1} (n_{i+1} × n_i) inside a flat parameter or gradient buffer."""
    n, m = arch.sizes[i + 1], arch.sizes[i]
    start = arch.p_off[i]
    return buf[start:start + n * m].reshape((n, m))


@jit
def bias(buf, arch, i):
    """View of b^{i+1} (n_{i+1},) inside a flat parameter or gradient buffer."""
    n, m = arch.sizes[i + 1], arch.sizes[i]
    start = arch.p_off[i] + n * m
    return buf[start:start + n]


@jit
def units(row, arch, i):
    """View of layer i+1's values (z, a or δ) inside one example's scratch row."""
    return row[arch.u_off[i]:arch.u_off[i + 1]]


# ------------------------------------------------------- one example
@jit
def feedforward(z, a, params, x, arch, first=0):
    """Forward pass of one example: every z^l and a^l, l = first+1 .. L."""
    n_layers = arch.sizes.shape[0] - 1
    for i in range(first, n_layers):
        act = arch.act if i < n_layers - 1 else arch.out_act
        a_prev = x if i == 0 else units(a, arch, i - 1)
        forward_layer(units(z, arch, i), units(a, arch, i),
                      weight(params, arch, i), bias(params, arch, i), a_prev, act)


@jit
def backpropagate_errors(z, a, delta, params, x, y, arch, first=0):
    """Forward pass (from layer first+1), then BP1 at the output and BP2 back to layer 1."""
    n_layers = arch.sizes.shape[0] - 1
    feedforward(z, a, params, x, arch, first)
    out = n_layers - 1
    output_delta(units(delta, arch, out), units(z, arch, out), units(a, arch, out),
                 y, arch.out_act, arch.cost)
    for i in range(n_layers - 2, -1, -1):
        hidden_delta(units(delta, arch, i), units(z, arch, i), units(a, arch, i),
                     weight(params, arch, i + 1), units(delta, arch, i + 1), arch.act)


# ------------------------------------------------------- phase A
@pjit
def first_layer_rows(work, params, X, order, lo, hi, arch):
    """Phase A1: z^1 and a^1 of examples order[lo:hi], in parallel over blocks of rows j.

    Layer 1 holds most of the weights (784 inputs).  Cutting it by rows, with
    the same blocks as phase B, means the thread that updates rows j of w^1
    is the one that reads them in the next forward pass: the weights stay in
    that core's cache instead of moving between cores every mini-batch.
    """
    for task in prange(arch.first_tasks):
        j_lo, j_hi = arch.tasks[task, 1], arch.tasks[task, 2]
        w = weight(params, arch, 0)[j_lo:j_hi]
        b = bias(params, arch, 0)[j_lo:j_hi]
        m = hi - lo
        t = 0
        while t + 4 <= m:   # four examples per pass over the block's rows of w
            forward_layer4(units(work.z[t], arch, 0)[j_lo:j_hi],
                           units(work.z[t + 1], arch, 0)[j_lo:j_hi],
                           units(work.z[t + 2], arch, 0)[j_lo:j_hi],
                           units(work.z[t + 3], arch, 0)[j_lo:j_hi], w, b,
                           X[order[lo + t]], X[order[lo + t + 1]], X[order[lo + t + 2]],
                           X[order[lo + t + 3]])
            for e in range(t, t + 4):
                activate(units(work.a[e], arch, 0)[j_lo:j_hi],
                         units(work.z[e], arch, 0)[j_lo:j_hi], arch.act)
            t += 4
        while t < m:
            forward_layer(units(work.z[t], arch, 0)[j_lo:j_hi],
                          units(work.a[t], arch, 0)[j_lo:j_hi], w, b, X[order[lo + t]], arch.act)
            t += 1


@pjit
def errors_of_examples(work, params, X, Y, order, lo, hi, arch, first):
    """Phase A2: the rest of the forward pass (from layer first+1), BP1 and BP2 of
    examples order[lo:hi], one scratch row each, in parallel over examples."""
    for t in prange(hi - lo):
        r = order[lo + t]
        backpropagate_errors(work.z[t], work.a[t], work.delta[t], params, X[r], Y[r], arch,
                             first)


@jit
def errors(work, params, X, Y, order, lo, hi, arch):
    """Phase A: every z, a and δ of examples order[lo:hi].

    With a hidden layer, layer 1 goes by rows (A1) and the rest by examples
    (A2); a single-layer network (whose softmax would couple the rows) goes
    by examples only.
    """
    if arch.sizes.shape[0] > 2:
        first_layer_rows(work, params, X, order, lo, hi, arch)
        errors_of_examples(work, params, X, Y, order, lo, hi, arch, 1)
    else:
        errors_of_examples(work, params, X, Y, order, lo, hi, arch, 0)


# ------------------------------------------------------- phase B
@jit
def previous_activations(work, X, order, lo, arch, i, t):
    """a^{i} of example t of the block: the input row itself for layer 1."""
    if i == 0:
        return X[order[lo + t]]
    return units(work.a[t], arch, i - 1)


@jit
def gradient_rows(grad, work, X, order, lo, hi, arch, task):
    """BP3/BP4 for the rows of one task, summed over examples order[lo:hi] in order.

    Four examples per pass (:func:`accumulate_gradient4`), the rest one by one.
    """
    i, j_lo, j_hi = arch.tasks[task, 0], arch.tasks[task, 1], arch.tasks[task, 2]
    nabla_w = weight(grad, arch, i)[j_lo:j_hi]
    nabla_b = bias(grad, arch, i)[j_lo:j_hi]
    m = hi - lo
    t = 0
    while t + 4 <= m:
        accumulate_gradient4(
            nabla_w, nabla_b,
            units(work.delta[t], arch, i)[j_lo:j_hi], units(work.delta[t + 1], arch, i)[j_lo:j_hi],
            units(work.delta[t + 2], arch, i)[j_lo:j_hi], units(work.delta[t + 3], arch, i)[j_lo:j_hi],
            previous_activations(work, X, order, lo, arch, i, t),
            previous_activations(work, X, order, lo, arch, i, t + 1),
            previous_activations(work, X, order, lo, arch, i, t + 2),
            previous_activations(work, X, order, lo, arch, i, t + 3))
        t += 4
    while t < m:
        accumulate_gradient(nabla_w, nabla_b, units(work.delta[t], arch, i)[j_lo:j_hi],
                            previous_activations(work, X, order, lo, arch, i, t))
        t += 1


@jit
def fill_zero(buf):
    """buf[:] = 0 as a plain loop (slice assignment inside ``prange`` is best avoided)."""
    for p in range(buf.shape[0]):
        buf[p] = 0


@jit
def task_ranges(arch, task):
    """Flat-buffer ranges [w_lo, w_hi) and [b_lo, b_hi) of one task's rows."""
    i, j_lo, j_hi = arch.tasks[task, 0], arch.tasks[task, 1], arch.tasks[task, 2]
    n, m = arch.sizes[i + 1], arch.sizes[i]
    w0 = arch.p_off[i]
    return w0 + j_lo * m, w0 + j_hi * m, w0 + n * m + j_lo, w0 + n * m + j_hi


@pjit
def sum_gradients(grad, work, X, order, lo, hi, arch):
    """Phase B without update: grad += Σ_x ∇C_x over examples order[lo:hi] (parallel over rows)."""
    for task in prange(arch.first_tasks):
        gradient_rows(grad, work, X, order, lo, hi, arch, task)
    for task in prange(arch.first_tasks, arch.tasks.shape[0]):
        gradient_rows(grad, work, X, order, lo, hi, arch, task)


@jit
def gradient_and_step_task(params, state, work, X, order, lo, hi, arch, hyper, task):
    """One task of phase B: sum its rows' gradient over the examples, then update those rows."""
    w_lo, w_hi, b_lo, b_hi = task_ranges(arch, task)
    fill_zero(work.grad[w_lo:w_hi])
    fill_zero(work.grad[b_lo:b_hi])
    gradient_rows(work.grad, work, X, order, lo, hi, arch, task)
    update_range(params, state, work.grad, w_lo, w_hi, hi - lo, True, hyper)
    update_range(params, state, work.grad, b_lo, b_hi, hi - lo, False, hyper)


@pjit
def gradient_and_step(params, state, work, X, order, lo, hi, arch, hyper):
    """Phase B of a training step, in parallel over tasks.

    Layer 1's blocks go first, over the same loop as phase A1 so that each
    block of w^1 is read and written by the same thread; then the other layers.
    """
    state.t[0] += 1
    for task in prange(arch.first_tasks):
        gradient_and_step_task(params, state, work, X, order, lo, hi, arch, hyper, task)
    for task in prange(arch.first_tasks, arch.tasks.shape[0]):
        gradient_and_step_task(params, state, work, X, order, lo, hi, arch, hyper, task)


@pjit
def apply_step(params, state, grad, m, arch, hyper):
    """One optimizer step for every parameter from ``grad`` = Σ_x ∇C_x over m examples."""
    state.t[0] += 1
    for task in prange(arch.tasks.shape[0]):
        w_lo, w_hi, b_lo, b_hi = task_ranges(arch, task)
        update_range(params, state, grad, w_lo, w_hi, m, True, hyper)
        update_range(params, state, grad, b_lo, b_hi, m, False, hyper)


# ------------------------------------------------------- drivers
@jit
def gradient_sum(work, params, X, Y, order, arch):
    """work.grad = Σ_x ∇C_x over examples ``order``, in blocks of the scratch's rows."""
    work.grad[:] = 0
    n = order.shape[0]
    block = work.z.shape[0]
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        errors(work, params, X, Y, order, lo, hi, arch)
        sum_gradients(work.grad, work, X, order, lo, hi, arch)


@jit
def train_batches(params, state, work, X, Y, order, batch_size, first, last, arch, hyper):
    """Mini-batches first … last−1 of one epoch: errors (A), then gradient and update (B).

    Mini-batch b holds examples order[b·m : (b+1)·m] (the last one may be
    shorter).  Running many mini-batches per call keeps Python out of the loop.
    """
    n = order.shape[0]
    for b in range(first, last):
        lo = b * batch_size
        hi = min(lo + batch_size, n)
        errors(work, params, X, Y, order, lo, hi, arch)
        gradient_and_step(params, state, work, X, order, lo, hi, arch, hyper)


@pjit
def forward_block(out, costs, params, X, Y, lo, hi, arch, work, with_cost):
    """a^L (and C_x when ``with_cost``) of rows lo … hi−1, in parallel over rows."""
    out_layer = arch.sizes.shape[0] - 2
    for t in prange(hi - lo):
        feedforward(work.z[t], work.a[t], params, X[lo + t], arch)
        a_out = units(work.a[t], arch, out_layer)
        out[lo + t, :] = a_out
        if with_cost:
            costs[lo + t] = cost_x(arch.cost, a_out, Y[lo + t])


@jit
def forward_rows(out, costs, params, X, Y, arch, work, with_cost):
    """Outputs (and per-example costs) of every row of X, a block of rows at a time."""
    block = work.z.shape[0]
    for lo in range(0, X.shape[0], block):
        forward_block(out, costs, params, X, Y, lo, min(lo + block, X.shape[0]), arch, work,
                      with_cost)
