"""The compiled engine: the four kernels chained over a network, a mini-batch
summed in parallel chunks, and whole runs of mini-batches in one call.

Memory layout (llm.c style, one flat buffer):

* ``params`` holds, for layers l = 1..L, w^l (n_l × n_{l−1}, C order) then b^l.
  ``arch.p_off[i]`` is where layer i+1 starts.  Gradients use the same layout.
* ``z``, ``a``, ``delta`` scratch: one row per chunk, layers 1..L side by side
  from ``arch.u_off[i]``, rows padded to whole cache lines so two threads never
  write the same line.

Determinism: a mini-batch of m examples is cut into ``n_chunks`` fixed chunks
(chunk c holds examples ⌊mc/C⌋ … ⌊m(c+1)/C⌋ − 1).  Each chunk sums its
examples' gradients in order into its own buffer; the buffers are then added
in chunk order.  Which thread runs which chunk never changes a bit, so the
result is the same for any ``NUMBA_NUM_THREADS``.
"""

from collections import namedtuple

import numpy as np
from numba import prange

from ._jit import jit, pjit
from .kernels import accumulate_gradient, forward_layer, hidden_delta, output_delta
from .costs import cost_x
from .optim import bias_corrections, update_parameter

# The network's shape and choices, passed to every compiled driver.
Arch = namedtuple("Arch", "sizes p_off u_off is_weight act out_act cost")
# Scratch owned by the engine: per-chunk gradients and per-chunk z, a, delta.
Work = namedtuple("Work", "grad chunk_grad z a delta")

CACHE_LINE = 8  # float64 values per 64-byte line (float32 pads a little more than needed)


def make_arch(sizes, act, out_act, cost):
    """Offsets of every layer in the flat parameter and scratch buffers."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n_layers = len(sizes) - 1
    p_off = np.zeros(n_layers + 1, dtype=np.int64)
    u_off = np.zeros(n_layers + 1, dtype=np.int64)
    for i in range(n_layers):
        n, m = sizes[i + 1], sizes[i]
        p_off[i + 1] = p_off[i] + n * m + n
        u_off[i + 1] = u_off[i] + n
    is_weight = np.zeros(p_off[-1], dtype=np.bool_)
    for i in range(n_layers):
        is_weight[p_off[i]:p_off[i] + sizes[i + 1] * sizes[i]] = True
    return Arch(sizes, p_off, u_off, is_weight, np.int64(act), np.int64(out_act), np.int64(cost))


def make_work(arch, n_chunks, dtype):
    """Allocate the scratch buffers once; training allocates nothing after this."""
    n_params = int(arch.p_off[-1])
    n_units = int(arch.u_off[-1])
    row = (n_units // CACHE_LINE + 2) * CACHE_LINE
    grad_row = (n_params // CACHE_LINE + 2) * CACHE_LINE
    return Work(
        grad=np.zeros(n_params, dtype),
        chunk_grad=np.zeros((n_chunks, grad_row), dtype),
        z=np.zeros((n_chunks, row), dtype),
        a=np.zeros((n_chunks, row), dtype),
        delta=np.zeros((n_chunks, row), dtype),
    )


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
def units(buf, arch, i):
    """View of layer i+1's values (z, a or δ) inside a scratch row."""
    return buf[arch.u_off[i]:arch.u_off[i + 1]]


@jit
def feedforward(z, a, params, x, arch):
    """Forward pass of one example: every z^l and a^l, l = 1..L."""
    n_layers = arch.sizes.shape[0] - 1
    for i in range(n_layers):
        act = arch.act if i < n_layers - 1 else arch.out_act
        a_prev = x if i == 0 else units(a, arch, i - 1)
        forward_layer(units(z, arch, i), units(a, arch, i),
                      weight(params, arch, i), bias(params, arch, i), a_prev, act)


@jit
def backprop_example(g, z, a, delta, params, x, y, arch):
    """Add ∇C_x of one example (x, y) to the gradient sums ``g``.

    Forward pass, BP1 at the output, BP2 back through the hidden layers,
    then BP3/BP4 for every layer.
    """
    n_layers = arch.sizes.shape[0] - 1
    feedforward(z, a, params, x, arch)
    out = n_layers - 1
    output_delta(units(delta, arch, out), units(z, arch, out), units(a, arch, out),
                 y, arch.out_act, arch.cost)
    for i in range(n_layers - 2, -1, -1):
        hidden_delta(units(delta, arch, i), units(z, arch, i),
                     weight(params, arch, i + 1), units(delta, arch, i + 1), arch.act)
    for i in range(n_layers):
        a_prev = x if i == 0 else units(a, arch, i - 1)
        accumulate_gradient(weight(g, arch, i), bias(g, arch, i), units(delta, arch, i), a_prev)


@pjit
def chunk_gradient_sums(work, params, X, Y, order, lo, hi, arch):
    """Σ_x ∇C_x over examples order[lo:hi], one partial sum per chunk (in parallel)."""
    n_chunks = work.chunk_grad.shape[0]
    m = hi - lo
    for c in prange(n_chunks):
        g = work.chunk_grad[c]
        g[:] = 0
        z, a, delta = work.z[c], work.a[c], work.delta[c]
        for t in range(lo + (m * c) // n_chunks, lo + (m * (c + 1)) // n_chunks):
            backprop_example(g, z, a, delta, params, X[order[t]], Y[order[t]], arch)


@pjit
def fold_chunks(grad, chunk_grad, m):
    """grad = (1/m) Σ_c chunk_grad[c], chunks added in order 0, 1, ... for every parameter."""
    n_chunks = chunk_grad.shape[0]
    for p in prange(grad.shape[0]):
        s = chunk_grad[0, p]
        for c in range(1, n_chunks):
            s += chunk_grad[c, p]
        grad[p] = s / m


@jit
def minibatch_gradient(work, params, X, Y, order, lo, hi, divisor, arch):
    """work.grad = (1/divisor) Σ_x ∇C_x over examples order[lo:hi] (divisor m averages)."""
    chunk_gradient_sums(work, params, X, Y, order, lo, hi, arch)
    fold_chunks(work.grad, work.chunk_grad, divisor)


@pjit
def predict_rows(out, params, X, arch, work):
    """out[r] = a^L for every row r of X (rows split over the chunks' scratch)."""
    n_chunks = work.z.shape[0]
    n_rows = X.shape[0]
    out_layer = arch.sizes.shape[0] - 2
    for c in prange(n_chunks):
        z, a = work.z[c], work.a[c]
        for r in range(n_rows * c // n_chunks, n_rows * (c + 1) // n_chunks):
            feedforward(z, a, params, X[r], arch)
            out[r, :] = units(a, arch, out_layer)


@pjit
def cost_sums(partial, params, X, Y, arch, work):
    """partial[c] = Σ_x C_x over chunk c of the rows of X; the caller adds them in order."""
    n_chunks = work.z.shape[0]
    n_rows = X.shape[0]
    out_layer = arch.sizes.shape[0] - 2
    for c in prange(n_chunks):
        z, a = work.z[c], work.a[c]
        s = 0.0
        for r in range(n_rows * c // n_chunks, n_rows * (c + 1) // n_chunks):
            feedforward(z, a, params, X[r], arch)
            s += cost_x(arch.cost, units(a, arch, out_layer), Y[r])
        partial[c] = s


@pjit
def apply_step(params, state, grad, arch, hyper):
    """One optimizer step for every parameter from the averaged gradient ``grad``."""
    state.t[0] += 1
    c1, c2 = bias_corrections(hyper, state.t[0])
    for p in prange(params.shape[0]):
        update_parameter(params, state, p, grad[p], arch.is_weight[p], hyper, c1, c2)


@jit
def train_batches(params, state, work, X, Y, order, batch_size, first, last, arch, hyper):
    """Mini-batches first … last−1 of one epoch: gradient, then update, for each.

    Mini-batch b holds examples order[b·m : (b+1)·m] (the last one may be
    shorter).  Running many mini-batches per call keeps Python out of the loop.
    """
    n = order.shape[0]
    for b in range(first, last):
        lo = b * batch_size
        hi = min(lo + batch_size, n)
        minibatch_gradient(work, params, X, Y, order, lo, hi, hi - lo, arch)
        apply_step(params, state, work.grad, arch, hyper)
