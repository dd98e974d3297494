"""The compiled engine: the four kernels chained over a network and over the
examples of a mini-batch, in two parallel phases, and whole runs of mini-batches
in one call.

Memory layout (llm.c style, one flat buffer):

* ``params`` holds, for layers l = 1..L, w^l (n_l × n_{l−1}, C order) then b^l;
  ``arch.p_off[i]`` is where layer i+1 starts.  Gradients use the same layout.
* ``work.z``, ``work.a``, ``work.delta``: two halves (:func:`half`), each with
  one row per example of the mini-batch, layers 1..L side by side from
  ``arch.u_off[i]``, rows padded to whole cache lines so that two threads
  never write the same line.

The parallel tasks of phases A1 and B are one per thread (at most as many as
the widest layer has 4-row tiles, and at most ``BLOCKS``; :func:`block_count`):
every layer is cut into that many blocks of whole tiles (:func:`block_rows`; a
narrower layer leaves some empty), block b of every layer belonging to task b.
Each task reads all of the mini-batch's inputs, so few large blocks read them
few times; inside a block, rows go by panels of about PANEL_BYTES of w
(:func:`panel_rows`) that stay in L2 while the examples pass.  No number depends
on the blocks or panels: every tile starts at a multiple of 4 rows, and each
number is computed inside one tile.  A mini-batch step runs in two parallel
phases:

A. **errors** — A1: z^1 and a^1 of the mini-batch's examples, in parallel over
   the blocks of layer 1 (``tiles.forward_tile``, the fast twin of
   ``kernels.forward_layer``: ``forward_layer3``, or ``forward_layer5`` on targets with
   32 vector registers), or, for blocks of at least 32 examples through a first
   layer of at least 256 neurons on CPUs with full-width 512-bit FMAs
   (``tiles.outer_block``), ``tiles.forward_outer``: explicit vectors of L
   examples, from the block's inputs packed transposed (``work.xt``) just before,
   in a parallel phase of their own (PACK, task b copying the b-th share of the
   columns k); A2: for each example x (in parallel over examples)
   the rest of the forward pass, BP1 and BP2, i.e. every z^l_j, a^l_j and δ^l_j.
B. **gradient** — for each task (in parallel over tasks), panel by panel: BP3/BP4
   of the panel's rows, summed over the examples, ∂C/∂w_jk = Σ_x δ^x_j a^x_k in
   example order x = 0, 1, …, m−1 (``tiles.gradient_tile``; for layer 1, in blocks
   of at least 32 examples on the CPUs of ``tiles.forward_outer``,
   ``tiles.gradient_outer``, the same sums bit for bit); then (when
   training) the update of those rows, w_jk ← w_jk − (η/m) ∂C/∂w_jk, and at once,
   for a panel of layer 1, A1 of the next mini-batch for those rows, into the
   other half of the scratch, while they are in cache.

The per-example view (``hyper.ex``, a :class:`loopnet.optim.Rules`; its defaults change
nothing; None: no rules, and Numba compiles none of their code, each ``if ex is not
None`` being decided at compile time): in A2, right after BP2, the example's thread
computes ‖∇C_x‖² = Σ_l ‖δ^l‖² (‖a^{l−1}‖² + 1) and scales its δ^l by w_x · min(1,
C/‖∇C_x‖) (sample weight, clipping; :func:`clip_and_weigh`), so that phase B sums scaled
per-example gradients without ever forming one; with dropout, a^l is masked in A1/A2 and
δ^l in BP2; in B, DP-SGD's noise is added to each row's sum by the task that owns the
row, from a counter-based stream (:mod:`loopnet.random`).

Each number is computed by exactly one thread, in an order that does not
depend on how the work is split, so the result is bit-identical for any
``NUMBA_NUM_THREADS``, without per-thread gradient copies to reduce.  Where ``arch.flush``
says so (``Net(subnormals="flush")``, float32's default), every task runs with subnormal
numbers flushed to zero (:mod:`loopnet.fpenv`), whichever thread runs it.

Against a plain serial loop of the textbook kernels (tests/naive.py:
forward_layer, output_delta, hidden_delta, accumulate_gradient per example,
in example order, then the update), precisely:

* bit for bit (the naive loop run inside ``fpenv.flushed()`` where the engine flushes),
  when the naive loop computes z^1 with the same fast twin
  (``tiles.forward_tile``, or ``tiles.forward_chain`` where a block runs
  ``forward_outer``): every z, a, δ, gradient sum, parameter after
  any number of updates, output and cost.  Nothing else is reordered: the
  gradient sums go in example order, and phantom examples add exact zeros.
* bit for bit, for a network without hidden layers (layer 1 is the output
  layer and goes through ``kernels.forward_layer`` itself).
* otherwise, within the bound stated in tests/test_engine.py: z^1's sums
  over k are split into SIMD partial sums differently (or, in the outer-product
  tiles, not at all), which changes the last bits of z^1 and of everything
  computed from it.

Compile time is dominated by Numba's work per ``prange`` region and per
compiled function, so every phase runs in one parallel loop,
:func:`run_tasks`, and one driver, :func:`run_batches`, serves training,
gradients and predictions alike.  The helpers below, the kernels and the
optimizer's updates they call (their linked twins) are linked into
:func:`drive_batches` without being optimised on their own (:mod:`loopnet._linking`):
a fit compiles one library with machine code and a cache entry, the whole engine.
"""

from collections import namedtuple

import numpy as np
import numba
from numba import prange

from . import costs, fpenv, kernels, optim, tiles
from ._jit import jit, jit_linked, linked_twin, panel_bytes, pjit_linked, python_function
from .optim import engine_state
from .simd import matrix_view
from .tiles import GRADIENT_EXAMPLES, GRADIENT_ROWS, OUTER_FORWARD, TILE_EXAMPLES, TILE_ROWS

# The kernels and the optimizer's updates as the engine calls them: their linked twins
# (_jit.linked_twin), compiled into the engine's one optimised module; kernels.activate,
# optim.update_rows etc. stay the Python-callable originals (the tests' naive loop calls them).
cost_x, step_of, update_rows = (linked_twin(k) for k in (costs.cost_x, optim.step_of,
                                                         optim.update_rows))
(activate, add_noise, dropout, forward_layer, gradient_norm_sq, hidden_delta, output_delta,
 scale_delta) = (linked_twin(k) for k in (kernels.activate, kernels.add_noise, kernels.dropout,
                                          kernels.forward_layer, kernels.gradient_norm_sq,
                                          kernels.hidden_delta, kernels.output_delta,
                                          kernels.scale_delta))
# The register tiles: the engine runs the pair that fits the target (tiles.WIDE_TILES); Numba
# compiles only the branch of the constant TILE_EXAMPLES / GRADIENT_EXAMPLES taken.
(accumulate_gradient4, accumulate_gradient5, forward_layer3,
 forward_layer5) = (linked_twin(k) for k in (tiles.accumulate_gradient4,
                                             tiles.accumulate_gradient5, tiles.forward_layer3,
                                             tiles.forward_layer5))
# Subnormals flushed to zero in every thread of a run, where arch.flush says (loopnet.fpenv).
enter_flush, leave_flush = linked_twin(fpenv.enter), linked_twin(fpenv.leave)
# Layer 1 by the outer-product tiles, where the target runs them (tiles.OUTER_FORWARD).
forward_outer, gradient_outer, outer_block, pack_inputs, packed_width = (
    linked_twin(k) for k in (tiles.forward_outer, tiles.gradient_outer, tiles.outer_block,
                             tiles.pack_inputs, tiles.packed_width))

# The network's shape and choices, passed to every compiled driver (flush: 1 to flush
# subnormal numbers to zero in every thread of a run, loopnet.fpenv).
Arch = namedtuple("Arch", "sizes p_off u_off act out_act cost panel flush")
# Scratch: the gradient; z, a, δ of each example of a block; the block's inputs transposed
# for tiles.forward_outer (empty where layer 1 never runs it: xt_size).
Work = namedtuple("Work", "grad z a delta xt")

CACHE_LINE = 8          # float64 values per 64-byte line
CACHE_LINE_BYTES = 64
BLOCKS = 64             # at most this many row blocks per layer, i.e. parallel tasks (block_count)
PANEL_BYTES = panel_bytes()  # bytes of w per panel (A1, B): half of one thread's L2 (_jit.panel_bytes)
BLOCK_EXAMPLES = 256    # examples per phase-A block outside training (gradient, predict, cost)

# What run_batches does after phase A (NORMS: phase A with BP1/BP2 and the per-example
# rules, e.g. writing ‖∇C_x‖², and no phase B).
PREDICT, GRADIENT, TRAIN, NORMS = 0, 1, 2, 3
# The phases run_tasks runs.  Passed as np.int64(A1) etc.: a bare constant would make
# Numba compile run_tasks once per value.
A1, A2, A2_FORWARD, B_SUM, B_STEP, B_STEP_A1, PACK = 0, 1, 2, 3, 4, 5, 6


def make_arch(sizes, act, out_act, cost, panel=None, flush=False):
    """Offsets of every layer in the flat buffers, the bytes of w per panel
    (:func:`panel_rows`; PANEL_BYTES unless given) and whether runs flush subnormals
    (:mod:`loopnet.fpenv`)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n_layers = len(sizes) - 1
    p_off = np.zeros(n_layers + 1, dtype=np.int64)
    u_off = np.zeros(n_layers + 1, dtype=np.int64)
    for i in range(n_layers):
        n_out, n_in = int(sizes[i + 1]), int(sizes[i])
        p_off[i + 1] = p_off[i] + n_out * n_in + n_out
        u_off[i + 1] = u_off[i] + n_out
    return Arch(sizes, p_off, u_off, np.int64(act), np.int64(out_act), np.int64(cost),
                np.int64(PANEL_BYTES if panel is None else panel), np.int64(bool(flush)))


def make_work(arch, n_rows, dtype):
    """Scratch for ``n_rows`` examples at a time; training allocates nothing after this.

    z, a and δ come twice (``work.z[h]``, h = 0, 1; see :func:`half`): while
    phase B of one mini-batch reads one half, phase A1 of the next writes the
    other.  Each half has one row more than ``n_rows``, whose δ stays 0 (see
    :func:`gradient_rows`).
    """
    n_units = int(arch.u_off[-1])
    lines = n_units // CACHE_LINE + 2
    row = (lines + 1 - lines % 2) * CACHE_LINE   # an odd number of lines: rows 4 KiB apart
    #       would put one unit of every example into the same few sets of the L1
    shape = (2, n_rows + 1, row)
    return Work(grad=np.zeros(int(arch.p_off[-1]), dtype), z=np.zeros(shape, dtype),
                a=np.zeros(shape, dtype), delta=np.zeros(shape, dtype),
                xt=aligned_zeros(xt_size(arch, n_rows, np.dtype(dtype).itemsize), dtype))


def xt_size(arch, n_rows, itemsize):
    """Elements of ``work.xt`` for blocks of up to n_rows examples: the packed inputs of the
    largest block if layer 1 runs ``tiles.forward_outer`` for it (``tiles.outer_block``), else 0."""
    # The tiles' Python functions: compiling their CPython wrappers for one test would cost more.
    if len(arch.sizes) > 2 and python_function(tiles.outer_block)(int(arch.sizes[1]), n_rows):
        return int(arch.sizes[0]) * int(python_function(tiles.packed_width)(n_rows, itemsize))
    return 0


def aligned_zeros(n, dtype):
    """n zeros of ``dtype`` starting on a cache line (a vector load never straddles two)."""
    item = np.dtype(dtype).itemsize
    raw = np.zeros(n + CACHE_LINE_BYTES // item, dtype)
    start = (-raw.ctypes.data % CACHE_LINE_BYTES) // item
    return raw[start:start + n]


@jit_linked
def packed_inputs(work, arch, m):
    """The packed inputs of a block of m examples: a view (n_in × ``tiles.packed_width``) of
    ``work.xt``."""
    width = packed_width(m, work.xt.itemsize)
    return matrix_view(work.xt, 0, arch.sizes[0], width)


def work_rows(work):
    """How many examples a phase-A block of ``work`` holds."""
    return work.z.shape[1] - 1


@jit_linked
def half(work, h):
    """The scratch of half h of ``work``: one row of z, a, δ per example of a mini-batch."""
    return Work(work.grad, work.z[h], work.a[h], work.delta[h], work.xt)


# ---------------------------------------------------------------- views
@jit_linked
def weight(buf, arch, i):
    """View of w^{i+1} (n_{i+1} × n_i) inside a flat parameter or gradient buffer."""
    n_out, n_in = arch.sizes[i + 1], arch.sizes[i]
    start = arch.p_off[i]
    return matrix_view(buf, start, n_out, n_in)


@jit_linked
def bias(buf, arch, i):
    """View of b^{i+1} (n_{i+1},) inside a flat parameter or gradient buffer."""
    n_out, n_in = arch.sizes[i + 1], arch.sizes[i]
    start = arch.p_off[i] + n_out * n_in
    return buf[start:start + n_out]


@jit_linked
def units(row, arch, i):
    """View of layer i+1's values (z, a or δ) inside one example's scratch row."""
    return row[arch.u_off[i]:arch.u_off[i + 1]]


def block_count(arch, threads):
    """Tasks of phases A1 and B: one per thread, at most the widest layer's number of
    4-row tiles and at most BLOCKS.

    Fewer, larger blocks read each mini-batch's inputs fewer times (every task
    reads all of them); no bit depends on the count (see :func:`block_rows`).
    """
    tiles = max(-(-int(n) // TILE_ROWS) for n in arch.sizes[1:])
    return max(1, min(tiles, int(threads), BLOCKS))


@jit_linked
def block_rows(n, b, n_blocks):
    """Rows [j_lo, j_hi) of block b of a layer of n neurons.

    The n_blocks blocks are contiguous and made of whole 4-row tiles (but the
    layer's last tile), as even as that allows.  Every tile starts at a multiple
    of 4 whatever n_blocks is, and every number is computed within one tile, so
    no result depends on n_blocks (nor on the number of threads it follows).
    """
    tiles = (n + TILE_ROWS - 1) // TILE_ROWS   # a layer of fewer tiles than n_blocks leaves
    j_lo = TILE_ROWS * (tiles * b // n_blocks)
    j_hi = TILE_ROWS * (tiles * (b + 1) // n_blocks)    # blocks empty, spread evenly over b
    return min(j_lo, n), min(j_hi, n)


# ------------------------------------------------------- one example
@jit_linked
def drop_rate(ex, i):
    """Dropout probability p of layer i+1 under the rules ``ex`` (0: none)."""
    if ex is None:
        return 0.0
    return ex.drop[i] if ex.drop.shape[0] > 0 else 0.0


@jit_linked
def backpropagate_errors(z, a, delta, params, x, y, arch, first_layer, with_errors, ex, r):
    """One example (row r of X): the forward pass from layer first_layer+1 (every z^l and
    a^l), then, ``with_errors``, BP1 at the output and BP2 back to layer 1 (every δ^l).

    With dropout (``ex.drop``), a hidden layer's a^l holds the masked ã^l
    (:func:`~loopnet.kernels.dropout`); BP2 restores a^l = σ(z^l) for σ'(z^l),
    masks δ^l with the same mask, then masks a^l again for phase B's BP4.
    """
    n_layers = arch.sizes.shape[0] - 1
    for i in range(first_layer, n_layers):
        act = arch.act if i < n_layers - 1 else arch.out_act
        if i == 0:      # a^0 = x, which may be float32 under float64 weights (see run_batches)
            forward_layer(units(z, arch, i), units(a, arch, i),
                          weight(params, arch, i), bias(params, arch, i), x, act)
        else:
            forward_layer(units(z, arch, i), units(a, arch, i),
                          weight(params, arch, i), bias(params, arch, i), units(a, arch, i - 1),
                          act)
        if ex is not None and drop_rate(ex, i) > 0.0:
            dropout(units(a, arch, i), drop_rate(ex, i), ex.drop_seed, r, i, np.int64(0))
    if not with_errors:
        return
    out = n_layers - 1
    output_delta(units(delta, arch, out), units(z, arch, out), units(a, arch, out),
                 y, arch.out_act, arch.cost)
    for i in range(n_layers - 2, -1, -1):
        p = drop_rate(ex, i)
        if ex is not None and p > 0.0:
            activate(units(a, arch, i), units(z, arch, i), arch.act)
        hidden_delta(units(delta, arch, i), units(z, arch, i), units(a, arch, i),
                     weight(params, arch, i + 1), units(delta, arch, i + 1), arch.act)
        if ex is not None and p > 0.0:
            dropout(units(delta, arch, i), p, ex.drop_seed, r, i, np.int64(0))
            dropout(units(a, arch, i), p, ex.drop_seed, r, i, np.int64(0))


@jit_linked
def clip_and_weigh(a, delta, x, arch, ex, r, p):
    """The per-example rules ``ex`` for example row r (row p of the outputs), after BP2.

    ‖∇C_x‖² = Σ_l ‖δ^l‖² (‖a^{l−1}‖² + 1) (:func:`~loopnet.kernels.gradient_norm_sq`;
    each layer's term into ``ex.norms[p, l]`` where it has rows), then every δ^l is
    scaled by f_x = w_x · min(1, C/‖∇C_x‖) (:func:`~loopnet.kernels.scale_delta`),
    which scales the whole ∇C_x, before phase B sums it.  f_x = 1 leaves δ untouched,
    so no weights and C = ∞ give the bits of plain SGD.  Nothing is computed when the
    rules need no norm.
    """
    if ex is None:
        return
    n_layers = arch.sizes.shape[0] - 1
    f = ex.weight[r] if ex.weight.shape[0] > 0 else 1.0
    if ex.norms.shape[0] > 0 or ex.clip < np.inf:
        total = 0.0
        for i in range(n_layers):
            if i == 0:
                sq = gradient_norm_sq(units(delta, arch, i), x)
            else:
                sq = gradient_norm_sq(units(delta, arch, i), units(a, arch, i - 1))
            if ex.norms.shape[0] > 0:
                ex.norms[p, i] = sq
            total += sq
        if total > ex.clip * ex.clip:
            f *= ex.clip / np.sqrt(total)
    if f != 1.0:
        for i in range(n_layers):
            scale_delta(units(delta, arch, i), f)


@jit_linked
def record_output(out, costs, a_out, y, arch, p):
    """out[p, :] = a^L and costs[p] = C_x(a^L, y) of one example, each where its array has room.

    Written element by element: ``out[p, :] = a_out`` would compile a second
    of shape-check error-message code.
    """
    if out.shape[0] > 0:
        for j in range(a_out.shape[0]):
            out[p, j] = a_out[j]
    if costs.shape[0] > 0:
        costs[p] = cost_x(arch.cost, a_out, y)


# ------------------------------------------------------- phase A
@jit_linked
def first_layer_block(work, params, X, order, lo, hi, arch, b, n_blocks, ex):
    """z^1_j and a^1_j for the rows j of block b (of n_blocks) of layer 1, examples order[lo:hi]
    (a^1 masked by the rules' dropout, if any), one panel of rows at a time
    (:func:`panel_rows`)."""
    j_lo, j_hi = block_rows(arch.sizes[1], b, n_blocks)
    step = panel_rows(arch.sizes[0], params.itemsize, arch.panel)
    for j in range(j_lo, j_hi, step):
        first_layer_panel(work, params, X, order, lo, hi, arch, j, min(j + step, j_hi), ex)


@jit_linked
def panel_rows(n_in, itemsize, panel):
    """Rows of w per panel (A1, B) for n_in inputs: whole 4-row tiles filling
    ``panel`` bytes (``arch.panel``: PANEL_BYTES, from the machine's L2), at least one tile.

    A panel's rows of w (A1) or of ∂C/∂w (B) stay in L2 while every example
    passes; in A1 each tile of TILE_EXAMPLES examples stays in L1 while the panel's
    rows pass.  Panels start at multiples of 4 rows, so they move no tile.
    """
    return TILE_ROWS * max(1, panel // (TILE_ROWS * n_in * itemsize))


@jit_linked
def first_layer_panel(work, params, X, order, lo, hi, arch, j_lo, j_hi, ex):
    """z^1_j and a^1_j for rows j_lo ≤ j < j_hi of layer 1 (whole tiles), examples order[lo:hi]."""
    layer = np.int64(0)
    w = weight(params, arch, layer)[j_lo:j_hi]
    bias_j = bias(params, arch, layer)[j_lo:j_hi]
    last_t = hi - lo - 1
    if OUTER_FORWARD:
        if outer_block(arch.sizes[1], hi - lo):   # z of every example from the inputs packed in
            xt = packed_inputs(work, arch, hi - lo)               # phase PACK, then each a^1
            forward_outer(work.z, j_lo, w, bias_j, xt, hi - lo)
            activate_panel(work, arch, order, lo, 0, hi - lo, j_lo, j_hi, ex)
            return
    for t in range(0, last_t + 1, TILE_EXAMPLES):
        # TILE_EXAMPLES examples per pass over the panel's rows of w.  Past the end,
        # the last example stands in for the missing ones (its z is written again,
        # with the same value): every z^1 comes out of a whole tile, so an example's
        # z^1 does not depend on the other rows of the batch.
        e1, e2, e3, e4 = (min(t + 1, last_t), min(t + 2, last_t), min(t + 3, last_t),
                          min(t + 4, last_t))
        if TILE_EXAMPLES == 5:
            forward_layer5(first_layer_z(work, arch, t, j_lo, j_hi),
                           first_layer_z(work, arch, e1, j_lo, j_hi),
                           first_layer_z(work, arch, e2, j_lo, j_hi),
                           first_layer_z(work, arch, e3, j_lo, j_hi),
                           first_layer_z(work, arch, e4, j_lo, j_hi), w, bias_j,
                           X[order[lo + t]], X[order[lo + e1]], X[order[lo + e2]],
                           X[order[lo + e3]], X[order[lo + e4]])
        else:
            forward_layer3(first_layer_z(work, arch, t, j_lo, j_hi),
                           first_layer_z(work, arch, e1, j_lo, j_hi),
                           first_layer_z(work, arch, e2, j_lo, j_hi), w, bias_j,
                           X[order[lo + t]], X[order[lo + e1]], X[order[lo + e2]])
        activate_panel(work, arch, order, lo, t, min(t + TILE_EXAMPLES, last_t + 1), j_lo, j_hi,
                       ex)


@jit_linked
def activate_panel(work, arch, order, lo, e_lo, e_hi, j_lo, j_hi, ex):
    """a^1_j = σ(z^1_j), j_lo ≤ j < j_hi, of example rows e_lo … e_hi−1 (masked by the rules'
    dropout, if any)."""
    layer = np.int64(0)
    for e in range(e_lo, e_hi):
        activate(units(work.a[e], arch, layer)[j_lo:j_hi],
                 units(work.z[e], arch, layer)[j_lo:j_hi], arch.act)
        if ex is not None and drop_rate(ex, layer) > 0.0:   # (np.int64 zeros, not a
            dropout(units(work.a[e], arch, layer)[j_lo:j_hi], drop_rate(ex, layer),
                    ex.drop_seed, order[lo + e], layer, j_lo)   # literal 0: one compile)


@jit_linked
def first_layer_z(work, arch, e, j_lo, j_hi):
    """View of z^1_j, j_lo ≤ j < j_hi, of example row e of ``work``."""
    return units(work.z[e], arch, np.int64(0))[j_lo:j_hi]


# ------------------------------------------------------- phase B
@jit_linked
def gradient_rows(grad, work, X, order, lo, hi, arch, i, j_lo, j_hi, fresh):
    """BP3/BP4 for rows j_lo … j_hi−1 of layer i+1, summed over examples order[lo:hi] in order.

    GRADIENT_EXAMPLES examples per pass (:func:`accumulate_gradient4` or
    :func:`accumulate_gradient5`).  Past the last example, the missing ones are
    phantoms with δ = 0 (the never-written last row of ``work.delta``) and the
    last example's a: they add exact zeros, g + 0·a = g, so the sums are bit for
    bit those of the real examples.  a^{i} is the input row itself for layer 1 (X
    may be float32 under float64 weights: each product is exact in float64),
    ``work.a`` otherwise.

    ``fresh`` (a training step): the sums start from 0.  The first pass writes them
    without reading the old ones (the tiles' ``fresh``: the bits of zeroing first, with
    no pass that zeroes); the rows that ``gradient_outer`` sums are zeroed first.
    """
    if OUTER_FORWARD:
        if i == 0 and hi - lo >= tiles.OUTER_MIN_EXAMPLES:     # whole 8-row tiles by the
            j_mid = j_lo + (j_hi - j_lo) // GRADIENT_ROWS * GRADIENT_ROWS    # outer product
            if fresh:
                w_lo, w_hi, b_lo, b_hi = row_ranges(arch, i, j_lo, j_mid)
                fill_zero(grad[w_lo:w_hi])
                fill_zero(grad[b_lo:b_hi])
            gradient_outer(weight(grad, arch, i)[j_lo:j_mid], bias(grad, arch, i)[j_lo:j_mid],
                           work.delta, j_lo, X, order, lo, hi - lo)
            j_lo = j_mid
    last_t = hi - lo - 1
    zero = work.delta.shape[0] - 1
    nabla_w = weight(grad, arch, i)[j_lo:j_hi]
    nabla_b = bias(grad, arch, i)[j_lo:j_hi]
    for t in range(0, last_t + 1, GRADIENT_EXAMPLES):
        d1 = t + 1 if t + 1 <= last_t else zero
        d2 = t + 2 if t + 2 <= last_t else zero
        d3 = t + 3 if t + 3 <= last_t else zero
        d4 = t + 4 if t + 4 <= last_t else zero
        e1, e2, e3, e4 = (min(t + 1, last_t), min(t + 2, last_t), min(t + 3, last_t),
                          min(t + 4, last_t))
        deltas = (units(work.delta[t], arch, i)[j_lo:j_hi],
                  units(work.delta[d1], arch, i)[j_lo:j_hi],
                  units(work.delta[d2], arch, i)[j_lo:j_hi],
                  units(work.delta[d3], arch, i)[j_lo:j_hi],
                  units(work.delta[d4], arch, i)[j_lo:j_hi])
        if i == 0:
            gradient_pass(nabla_w, nabla_b, deltas, X[order[lo + t]], X[order[lo + e1]],
                          X[order[lo + e2]], X[order[lo + e3]], X[order[lo + e4]],
                          fresh and t == 0)
        else:
            gradient_pass(nabla_w, nabla_b, deltas, units(work.a[t], arch, i - 1),
                          units(work.a[e1], arch, i - 1), units(work.a[e2], arch, i - 1),
                          units(work.a[e3], arch, i - 1), units(work.a[e4], arch, i - 1),
                          fresh and t == 0)


@jit_linked
def gradient_pass(nabla_w, nabla_b, deltas, a0, a1, a2, a3, a4, fresh):
    """∂C/∂w_jk += Σ_x δ^x_j a^x_k for the first GRADIENT_EXAMPLES of the five examples given
    (``deltas``: their δ rows), by the gradient tile the target runs (tiles.WIDE_TILES);
    ``fresh``: the sums start from 0, not from the gradient's old values."""
    if GRADIENT_EXAMPLES == 5:
        accumulate_gradient5(nabla_w, nabla_b, deltas[0], deltas[1], deltas[2], deltas[3],
                             deltas[4], a0, a1, a2, a3, a4, fresh)
    else:
        accumulate_gradient4(nabla_w, nabla_b, deltas[0], deltas[1], deltas[2], deltas[3],
                             a0, a1, a2, a3, fresh)


@jit_linked
def fill_zero(buf):
    """buf[:] = 0 as a plain loop (slice assignment inside ``prange`` is best avoided)."""
    for p in range(buf.shape[0]):
        buf[p] = 0


@jit_linked
def row_ranges(arch, i, j_lo, j_hi):
    """Flat-buffer ranges [w_lo, w_hi) and [b_lo, b_hi) of rows j_lo … j_hi−1 of layer i+1."""
    n_out, n_in = arch.sizes[i + 1], arch.sizes[i]
    w0 = arch.p_off[i]
    w_end = w0 + n_out * n_in
    return w0 + j_lo * n_in, w0 + j_hi * n_in, w_end + j_lo, w_end + j_hi


@jit_linked
def gradient_block(params, state, work, X, order, lo, hi, arch, hyper, b, n_blocks, train, ex,
                   nxt, next_lo, next_hi, then_a1):
    """Task b (of n_blocks) of phase B: for every layer, block b's gradient summed over
    examples order[lo:hi], one panel of rows at a time (:func:`gradient_panel`).

    ``then_a1``: right after each panel of layer 1 is updated, A1 of the next
    mini-batch order[next_lo:next_hi] for those rows (into ``nxt``), while
    they are still in cache.
    """
    for i in range(arch.sizes.shape[0] - 1):
        j_lo, j_hi = block_rows(arch.sizes[i + 1], b, n_blocks)
        step = panel_rows(arch.sizes[i], params.itemsize, arch.panel)
        for j in range(j_lo, j_hi, step):
            j_end = min(j + step, j_hi)
            gradient_panel(params, state, work, X, order, lo, hi, arch, hyper, i, j, j_end,
                           train, ex)
            if then_a1 and i == 0:
                first_layer_panel(nxt, params, X, order, next_lo, next_hi, arch, j, j_end, ex)


@jit_linked
def gradient_panel(params, state, work, X, order, lo, hi, arch, hyper, i, j_lo, j_hi, train, ex):
    """Rows j_lo … j_hi−1 of layer i+1: their gradient summed over examples order[lo:hi].

    When ``train``, the rows' gradient starts from zero (:func:`gradient_rows`' ``fresh``)
    and the rows are updated right after (with DP-SGD's noise first, if any), while they are
    in cache; otherwise the sum is added to ``work.grad``.
    """
    w_lo, w_hi, b_lo, b_hi = row_ranges(arch, i, j_lo, j_hi)
    gradient_rows(work.grad, work, X, order, lo, hi, arch, i, j_lo, j_hi, train)
    if train:
        if ex is not None and ex.sigma > 0.0:
            add_noise(work.grad, w_lo, w_hi, ex.sigma * ex.clip, ex.noise_seed, state.t[0])
            add_noise(work.grad, b_lo, b_hi, ex.sigma * ex.clip, ex.noise_seed, state.t[0])
        update_rows(params, state, work.grad, w_lo, w_hi, b_lo, b_hi,
                    batch_denominator(ex, hi - lo), hyper)


@jit_linked
def batch_denominator(ex, m):
    """What the mini-batch's sum is divided by: m, or the rules' ``denom`` (q·n for Poisson batches)."""
    if ex is None:
        return float(m)
    return ex.denom if ex.denom > 0.0 else float(m)


@pjit_linked
def run_tasks(params, state, work, X, Y, order, lo, hi, arch, hyper, phase, nxt, next_lo, next_hi,
              out, costs, ex, n_blocks):
    """One parallel phase of the mini-batch order[lo:hi]: the engine's only ``prange`` loop.

    * A1: z^1 and a^1 of the examples, task b doing block b of layer 1
      (:func:`first_layer_block`);
    * PACK: the examples' inputs transposed into ``work.xt`` for ``tiles.forward_outer``,
      task b copying the b-th share of the columns k;
    * A2 / A2_FORWARD: for each example, the rest of the forward pass and
      (A2 only) BP1 and BP2 (:func:`backpropagate_errors`) and the per-example
      rules ``ex`` (:func:`clip_and_weigh`); then, where
      ``out`` / ``costs`` have room, a^L and C_x of example order[p] into row p
      (:func:`record_output`);
    * B_SUM: BP3/BP4 of block b of every layer, summed over the examples and
      added to ``work.grad`` (:func:`gradient_block`);
    * B_STEP: the same sums from zero, each followed by the optimizer step of its rows;
    * B_STEP_A1: B_STEP, then at once A1 of the next mini-batch order[next_lo:next_hi]
      into the other half of the scratch, ``nxt``.

    A1 and B run the same loop over ``n_blocks`` tasks (:func:`block_count`), so the thread that
    updates block b of w^1 in phase B is the one that reads it in the next
    phase A1: layer 1's weights (most of the network) stay in that core's
    cache.  A1 of the next mini-batch needs nothing but its own block of w^1,
    so B_STEP_A1 runs it without waiting for the other tasks: one parallel
    region per mini-batch fewer.  One loop for every phase also means one
    parallel region for Numba to compile.

    ``hyper`` is an :class:`loopnet.optim.Step` and ``ex`` the
    :class:`loopnet.optim.Rules` beside it (:func:`run_batches` splits a Hyper).
    """
    by_example = phase == A2 or phase == A2_FORWARD
    first_layer = np.int64(1) if arch.sizes.shape[0] > 2 else np.int64(0)   # where A2 starts
    out_layer = arch.sizes.shape[0] - 2
    n_tasks = hi - lo if by_example else n_blocks
    for task in prange(n_tasks):
        # Each task flushes subnormals (arch.flush) and leaves its thread as it found it.  Only
        # the tasks: a thread the pool creates while the driver flushed would inherit that.
        mxcsr = enter_flush(arch.flush)
        if phase == A1:
            first_layer_block(work, params, X, order, lo, hi, arch, np.int64(task), n_blocks, ex)
        elif OUTER_FORWARD and phase == PACK:     # (no PACK code compiled where it never runs)
            n_in = arch.sizes[0]
            pack_inputs(packed_inputs(work, arch, hi - lo), X, order, lo, hi,
                        n_in * task // n_tasks, n_in * (task + 1) // n_tasks)
        elif by_example:
            r = order[lo + task]
            backpropagate_errors(work.z[task], work.a[task], work.delta[task], params, X[r], Y[r],
                                 arch, first_layer, phase == A2, ex, r)
            if phase == A2:
                clip_and_weigh(work.a[task], work.delta[task], X[r], arch, ex, r, lo + task)
            record_output(out, costs, units(work.a[task], arch, out_layer), Y[r], arch, lo + task)
        else:
            gradient_block(params, state, work, X, order, lo, hi, arch, hyper, np.int64(task),
                           n_blocks, phase != B_SUM, ex, nxt, next_lo, next_hi,
                           phase == B_STEP_A1)
        leave_flush(mxcsr)


@jit
def apply_step(params, state, grad, m, arch, hyper):
    """One optimizer step for every parameter from ``grad`` = Σ_x ∇C_x over m examples.

    Serial: an update is a few operations per parameter, not worth a parallel region.
    """
    state.t[0] += 1
    for i in range(arch.sizes.shape[0] - 1):
        w_lo, w_hi, b_lo, b_hi = row_ranges(arch, i, np.int64(0), arch.sizes[i + 1])
        update_rows(params, state, grad, w_lo, w_hi, b_lo, b_hi, m, hyper)


# ------------------------------------------------------- the driver
def run_batches(params, state, work, X, Y, order, batch_size, first, last, arch, hyper, job,
                out, costs):
    """Mini-batches first … last−1 of examples ``order``: phase A, then by ``job``

    * TRAIN: phase B with the update, mini-batch after mini-batch;
    * GRADIENT: phase B without update, adding Σ_x ∇C_x into ``work.grad``;
    * PREDICT: phase A's forward pass only;
    * NORMS: phase A with BP1, BP2 and the per-example rules (e.g. ‖∇C_x‖² into
      ``hyper.ex.norms``), no phase B.

    ``hyper.ex`` (:class:`loopnet.optim.Rules`) scales each example's δ^x in
    phase A2 (sample weight, clipping), adds DP-SGD noise in phase B and masks
    a^l (dropout); its defaults change nothing, bit for bit.

    Whatever the job, when ``out`` has rows, ``out[p, :]`` = a^L of example
    order[p], and when ``costs`` has rows, ``costs[p]`` = C_x of it (float64),
    both taken from phase A's forward pass: in TRAIN that is the pass that
    computes the mini-batch's gradient, BEFORE its update (the training cost
    as Keras reports it, at no extra pass over the data).  Pass empty arrays
    (0 rows) for neither.

    Mini-batch b holds examples order[b·m : (b+1)·m] (the last one may be
    shorter).  Running many mini-batches per call keeps Python out of the loop.
    """
    if work.xt.size < xt_size(arch, work_rows(work), work.z.itemsize):    # (the tiles read it
        raise ValueError("this scratch has no room for the packed inputs that the engine's "
                         "outer-product tiles read: make it with engine.make_work")   # unchecked)
    drive_batches(params, engine_state(state, hyper), work, X, Y, order, batch_size, first, last,
                  arch, hyper, job, out, costs, block_count(arch, numba.get_num_threads()))


@jit
def drive_batches(params, state, work, X, Y, order, batch_size, first, last, arch, hyper, job,
                  out, costs, n_blocks):
    """:func:`run_batches`, compiled, phases A1 and B cut into ``n_blocks`` tasks.

    (The thread count is read outside: Numba cannot cache a function that asks for it.)
    """
    n = order.shape[0]
    ex, hyper = hyper.ex, step_of(hyper)
    # Phase A: with a hidden layer, layer 1 goes by blocks of rows (A1) and the rest by
    # examples (A2); a single-layer network (whose softmax couples the rows) goes by examples.
    by_rows = arch.sizes.shape[0] > 2
    a2 = np.int64(A2_FORWARD) if job == PREDICT else np.int64(A2)   # NORMS: A2, no phase B
    a1_done = False       # A1 of this mini-batch already ran, with phase B of the one before
    for b in range(first, last):
        lo = b * batch_size
        hi = min(lo + batch_size, n)
        here, nxt = half(work, b % 2), half(work, (b + 1) % 2)
        if by_rows and not a1_done:
            if OUTER_FORWARD and outer_block(arch.sizes[1], hi - lo):   # layer 1 by the outer
                # tiles (OUTER_FORWARD first: where it is False, Numba compiles no PACK call)
                run_tasks(params, state, here, X, Y, order, lo, hi, arch, hyper, np.int64(PACK),
                          nxt, lo, hi, out, costs, ex, n_blocks)
            run_tasks(params, state, here, X, Y, order, lo, hi, arch, hyper, np.int64(A1),
                      nxt, lo, hi, out, costs, ex, n_blocks)
        run_tasks(params, state, here, X, Y, order, lo, hi, arch, hyper, a2, nxt, lo, hi,
                  out, costs, ex, n_blocks)
        if job == TRAIN:
            state.t[0] += 1
            a1_done = by_rows and b + 1 < last
            phase = np.int64(B_STEP_A1) if a1_done else np.int64(B_STEP)
            if (OUTER_FORWARD and a1_done
                    and outer_block(arch.sizes[1], min(hi + batch_size, n) - hi)):
                # the next mini-batch's inputs, for its A1 inside phase B
                run_tasks(params, state, here, X, Y, order, hi, min(hi + batch_size, n), arch,
                          hyper, np.int64(PACK), nxt, lo, hi, out, costs, ex, n_blocks)
            run_tasks(params, state, here, X, Y, order, lo, hi, arch, hyper, phase,
                      nxt, hi, min(hi + batch_size, n), out, costs, ex, n_blocks)
        elif job == GRADIENT:
            run_tasks(params, state, here, X, Y, order, lo, hi, arch, hyper, np.int64(B_SUM),
                      nxt, lo, hi, out, costs, ex, n_blocks)
