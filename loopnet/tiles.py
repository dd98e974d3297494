"""The fast twins of the textbook kernels: the same sums, in register tiles.

:mod:`loopnet.kernels` holds the four equations as a student reads them, one
example at a time.  Training runs two of them through the twins below, which
compute the same quantities for several examples (and four rows j) per pass, so
that each weight and each activation loaded from memory serves several
multiply-adds (as llm.c keeps ``matmul_forward_naive`` beside the tiled
``matmul_forward``).  :data:`FAST_TWIN` is the whole list:

=========================================  ========================================
textbook kernel (loopnet/kernels.py)       fast twin (here), what it reorders
=========================================  ========================================
``forward_layer`` (z and a of one example) :func:`forward_layer3` (z of three
                                           examples) or :func:`forward_layer5`
                                           (five); a by ``kernels.activate``.
                                           Its sums Σ_k w_jk a_k are split into
                                           SIMD partial sums in another way, so
                                           z differs in the last bits (bound:
                                           tests/test_engine.py).
                                           Where ``outer_block`` says so (wide
                                           layer, ≥ 32 examples, a CPU with
                                           full-width 512-bit FMAs):
                                           :func:`forward_outer` (explicit
                                           vectors of L examples): each sum one
                                           chain of FMAs in k order, what
                                           :func:`forward_chain` computes.
``accumulate_gradient`` (one example)      :func:`accumulate_gradient4` (four
                                           examples) or :func:`accumulate_gradient5`
                                           (five): no sum reordered; the terms
                                           are added example by example as that
                                           many calls would, bit for bit (on a
                                           mini-batch's first pass, to a 0 that
                                           is never stored: ``fresh``).  For
                                           layer 1 in blocks of ≥ 32 examples on
                                           those CPUs: :func:`gradient_outer`,
                                           the same sums, bit for bit.
=========================================  ========================================

Which twin of each pair runs is decided by the target's vector registers
(:func:`loopnet._jit.vector_registers`; ``LOOPNET_TILES=wide`` or ``narrow``
overrides, :func:`loopnet._jit.wide_tiles`): a tile's running sums, plus the vectors
loaded per step, must fit them.  With 16 (SSE2, AVX2): 4 rows × 3 examples forward
(12 sums + 3 inputs + 1 weight) and 4 × 4 for the gradient; with 32 (AVX-512):
4 × 5 for both, which also leaves no empty slot at m = 10 or m = 100 (the 3- and
4-example tiles compute 12 slots for 10 examples).  Every sum keeps its one
vector of partial sums whatever the tile's width, so on a 32-register target the wider
tiles give the same bits as the narrower ones (forced onto a 16-register target the wide
pair changes the last bits: profiles/README.md, twelfth and nineteenth rounds).
``output_delta`` (BP1) and ``hidden_delta`` (BP2), and ``forward_layer`` for layers 2 … L,
run in training as written in kernels.py.
"""

from ._jit import jit, jit_sums, outer_forward, wide_tiles
from .kernels import accumulate_gradient, forward_layer
from .simd import lanes, sfma, vfma, vlane, vload, vload_as, vsplat, vstore, vzero

TILE_ROWS = 4        # rows j per register tile; the engine's blocks are whole tiles
# Examples per forward tile and per gradient pass: what the target's registers hold
# (module docstring; measured in profiles/tile_shapes.py).
WIDE_TILES = wide_tiles()
TILE_EXAMPLES = 5 if WIDE_TILES else 3
GRADIENT_EXAMPLES = 5 if WIDE_TILES else 4


@jit_sums
def forward_layer3(z0, z1, z2, w, b, x0, x1, x2):
    """z_j = Σ_k w_jk x_k + b_j for three examples at once (no activation).

    Otherwise identical to :func:`loopnet.kernels.forward_layer` (without its
    a = σ(z)): the same terms Σ_k w_jk x_k + b_j, computed for a tile of four
    rows j × three examples (:func:`dot_tile3`, one pass over k).  Each w_jk
    loaded serves three multiply-adds and each x_k four.  Reordered: every sum
    over k, which LLVM splits into SIMD partial sums (``reassoc``) differently
    from forward_layer's; the z of one example does not depend on the other two
    (twelve independent sums), and the last n_l mod 4 rows go through
    :func:`dot_row`.
    """
    n_l = w.shape[0]
    j = 0
    while j + 4 <= n_l:
        s = dot_tile3(w[j], w[j + 1], w[j + 2], w[j + 3], x0, x1, x2)
        for q in range(4):
            z0[j + q] = s[q][0] + b[j + q]
            z1[j + q] = s[q][1] + b[j + q]
            z2[j + q] = s[q][2] + b[j + q]
        j += 4
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        s = dot_row(w[j], x0, x1, x2)
        z0[j] = s[0] + b[j]
        z1[j] = s[1] + b[j]
        z2[j] = s[2] + b[j]
        j += 1


@jit_sums
def dot_tile3(w0, w1, w2, w3, x0, x1, x2):
    """The 4 × 3 dot products Σ_k w_r[k] x_e[k] of four weight rows with three inputs.

    Returned as four tuples, one per row r, of three sums, one per example e.
    Each sum runs over k in SIMD partial sums (``reassoc``): one vector of
    running sums each, twelve in all, plus the three x_e[k] vectors and one
    w_r[k] at a time: sixteen vector registers, what AVX2 and SSE2 targets have
    (AVX-512 targets, with 32, run :func:`dot_tile5`), so nothing is spilled to the stack.  Per step of k, seven
    vector loads feed twelve multiply-adds.  (A 4 × 4 tile needs 21 registers
    and spilled every step on AVX2; two 2 × 4 passes load 0.75 vectors per
    multiply-add against 0.58 here: on a Zen 3 core, layer 1 of [784, 100, 10]
    runs 12-17 % faster with this tile, with the same bits; profiles/tile_shapes.py.)
    """
    zero = w0.dtype.type(0)
    s00, s01, s02 = zero, zero, zero
    s10, s11, s12 = zero, zero, zero
    s20, s21, s22 = zero, zero, zero
    s30, s31, s32 = zero, zero, zero
    for k in range(w0.shape[0]):
        p0, p1, p2 = x0[k], x1[k], x2[k]
        v = w0[k]
        s00 += v * p0
        s01 += v * p1
        s02 += v * p2
        v = w1[k]
        s10 += v * p0
        s11 += v * p1
        s12 += v * p2
        v = w2[k]
        s20 += v * p0
        s21 += v * p1
        s22 += v * p2
        v = w3[k]
        s30 += v * p0
        s31 += v * p1
        s32 += v * p2
    return (s00, s01, s02), (s10, s11, s12), (s20, s21, s22), (s30, s31, s32)


@jit_sums
def forward_layer5(z0, z1, z2, z3, z4, w, b, x0, x1, x2, x3, x4):
    """z_j = Σ_k w_jk x_k + b_j for five examples at once (no activation).

    Otherwise identical to :func:`loopnet.kernels.forward_layer` (without its
    a = σ(z)), as :func:`forward_layer3` is, for tiles of four rows × five
    examples (:func:`dot_tile5`): each w_jk loaded serves five multiply-adds, and
    m = 10 or 100 examples fill whole tiles.  Its twenty running sums and six
    loaded vectors need 26 vector registers, which AVX-512 targets have.  Each
    sum keeps its one vector of partial sums, as in forward_layer3's tiles, so on
    such a target both give the same z bit for bit (checked on a Zen 4); the last
    n_l mod 4 rows go through :func:`dot_row`, three examples per call.
    """
    n_l = w.shape[0]
    j = 0
    while j + 4 <= n_l:
        s = dot_tile5(w[j], w[j + 1], w[j + 2], w[j + 3], x0, x1, x2, x3, x4)
        for q in range(4):
            z0[j + q] = s[q][0] + b[j + q]
            z1[j + q] = s[q][1] + b[j + q]
            z2[j + q] = s[q][2] + b[j + q]
            z3[j + q] = s[q][3] + b[j + q]
            z4[j + q] = s[q][4] + b[j + q]
        j += 4
    while j < n_l:    # the last n_l mod 4 rows, one at a time, three examples per dot_row
        s = dot_row(w[j], x0, x1, x2)
        t = dot_row(w[j], x3, x4, x4)
        z0[j] = s[0] + b[j]
        z1[j] = s[1] + b[j]
        z2[j] = s[2] + b[j]
        z3[j] = t[0] + b[j]
        z4[j] = t[1] + b[j]
        j += 1


@jit_sums
def dot_tile5(w0, w1, w2, w3, x0, x1, x2, x3, x4):
    """The 4 × 5 dot products Σ_k w_r[k] x_e[k] of four weight rows with five inputs.

    As :func:`dot_tile3`, with twenty running sums: per step of k, nine vector
    loads feed twenty multiply-adds (0.45 per multiply-add against 0.58), and
    the panel's rows of w pass once per five examples instead of three.  On a
    Zen 4 core (AVX-512), W3's layer 1 ran at 43 GFLOP/s against 35 for the 4 × 3
    tile, panel by panel (profiles/tile_shapes.py, one thread).
    """
    zero = w0.dtype.type(0)
    s00, s01, s02, s03, s04 = zero, zero, zero, zero, zero
    s10, s11, s12, s13, s14 = zero, zero, zero, zero, zero
    s20, s21, s22, s23, s24 = zero, zero, zero, zero, zero
    s30, s31, s32, s33, s34 = zero, zero, zero, zero, zero
    for k in range(w0.shape[0]):
        p0, p1, p2, p3, p4 = x0[k], x1[k], x2[k], x3[k], x4[k]
        v = w0[k]
        s00 += v * p0
        s01 += v * p1
        s02 += v * p2
        s03 += v * p3
        s04 += v * p4
        v = w1[k]
        s10 += v * p0
        s11 += v * p1
        s12 += v * p2
        s13 += v * p3
        s14 += v * p4
        v = w2[k]
        s20 += v * p0
        s21 += v * p1
        s22 += v * p2
        s23 += v * p3
        s24 += v * p4
        v = w3[k]
        s30 += v * p0
        s31 += v * p1
        s32 += v * p2
        s33 += v * p3
        s34 += v * p4
    return ((s00, s01, s02, s03, s04), (s10, s11, s12, s13, s14), (s20, s21, s22, s23, s24),
            (s30, s31, s32, s33, s34))


@jit_sums
def dot_row(w0, x0, x1, x2):
    """The three dot products Σ_k w0[k] x_e[k] of one weight row with three inputs."""
    zero = w0.dtype.type(0)
    s0, s1, s2 = zero, zero, zero
    for k in range(w0.shape[0]):
        v = w0[k]
        s0 += v * x0[k]
        s1 += v * x1[k]
        s2 += v * x2[k]
    return s0, s1, s2


@jit
def accumulate_gradient4(nabla_w, nabla_b, d0, d1, d2, d3, a0, a1, a2, a3, fresh):
    """BP3 and BP4 for four examples at once: :func:`~loopnet.kernels.accumulate_gradient`
    four times, fused.

    .. math::  \\frac{\\partial C}{\\partial w_{jk}} \\mathrel{+}= \\delta^{(0)}_j a^{(0)}_k
               + \\delta^{(1)}_j a^{(1)}_k + \\delta^{(2)}_j a^{(2)}_k + \\delta^{(3)}_j a^{(3)}_k

    Otherwise identical to four calls of accumulate_gradient, examples 0, 1,
    2, 3 in turn: no sum is reordered (the terms are added left to right,
    example 0 first, each a fused multiply-add as there), so the result is the
    same bit for bit.  What changes is memory traffic: each ∂C/∂w_jk is loaded
    and stored once per four examples instead of once per example, and four
    rows j share each load of a_k (:func:`outer_tile4`).

    ``fresh``: the sums start from 0 instead of from ``nabla_w`` and ``nabla_b``, which
    are written and never read (a mini-batch's first pass).  The first term is still
    added to that 0, so the bits are those of zeroing the arrays first, −0.0 included,
    without the pass that zeroes them and without loading them.
    """
    n_l = nabla_w.shape[0]
    j = 0
    while j + 4 <= n_l:
        outer_tile4(nabla_w[j], nabla_w[j + 1], nabla_w[j + 2], nabla_w[j + 3],
                   (d0[j], d1[j], d2[j], d3[j]), (d0[j + 1], d1[j + 1], d2[j + 1], d3[j + 1]),
                   (d0[j + 2], d1[j + 2], d2[j + 2], d3[j + 2]),
                   (d0[j + 3], d1[j + 3], d2[j + 3], d3[j + 3]), a0, a1, a2, a3, fresh)
        j += 4
    zero = nabla_w.dtype.type(0)
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        e0, e1, e2, e3 = d0[j], d1[j], d2[j], d3[j]
        g = nabla_w[j]
        if fresh:
            for k in range(g.shape[0]):
                g[k] = zero + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k]
        else:
            for k in range(g.shape[0]):
                g[k] = g[k] + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k]
        j += 1
    for j in range(n_l):
        nabla_b[j] = (zero if fresh else nabla_b[j]) + d0[j] + d1[j] + d2[j] + d3[j]


@jit
def outer_tile4(g0, g1, g2, g3, e0, e1, e2, e3, a0, a1, a2, a3, fresh):
    """g_r[k] += Σ_x e_r[x] a_x[k] for four rows r and four examples x, x in order
    (``fresh``: g_r[k] = 0 + Σ_x e_r[x] a_x[k], g not read).

    ``e_r`` holds δ_j of row r for the four examples; each a_x[k] loaded
    serves the four rows.
    """
    if fresh:
        zero = g0.dtype.type(0)
        for k in range(g0.shape[0]):
            p0, p1, p2, p3 = a0[k], a1[k], a2[k], a3[k]
            g0[k] = zero + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3
            g1[k] = zero + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3
            g2[k] = zero + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3
            g3[k] = zero + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3
        return
    for k in range(g0.shape[0]):
        p0, p1, p2, p3 = a0[k], a1[k], a2[k], a3[k]
        g0[k] = g0[k] + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3
        g1[k] = g1[k] + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3
        g2[k] = g2[k] + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3
        g3[k] = g3[k] + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3


@jit
def accumulate_gradient5(nabla_w, nabla_b, d0, d1, d2, d3, d4, a0, a1, a2, a3, a4, fresh):
    """BP3 and BP4 for five examples at once: :func:`accumulate_gradient4` with one
    example more per pass (:func:`outer_tile5`), for 32-register targets.

    Otherwise identical to five calls of accumulate_gradient, examples 0 … 4 in
    turn, bit for bit: the terms are added left to right, example 0 first, each a
    fused multiply-add.  Each ∂C/∂w_jk is loaded and stored once per five examples.
    ``fresh``: the sums start from 0, as in :func:`accumulate_gradient4`.
    """
    n_l = nabla_w.shape[0]
    j = 0
    while j + 4 <= n_l:
        outer_tile5(nabla_w[j], nabla_w[j + 1], nabla_w[j + 2], nabla_w[j + 3],
                    (d0[j], d1[j], d2[j], d3[j], d4[j]),
                    (d0[j + 1], d1[j + 1], d2[j + 1], d3[j + 1], d4[j + 1]),
                    (d0[j + 2], d1[j + 2], d2[j + 2], d3[j + 2], d4[j + 2]),
                    (d0[j + 3], d1[j + 3], d2[j + 3], d3[j + 3], d4[j + 3]), a0, a1, a2, a3, a4,
                    fresh)
        j += 4
    zero = nabla_w.dtype.type(0)
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        e0, e1, e2, e3, e4 = d0[j], d1[j], d2[j], d3[j], d4[j]
        g = nabla_w[j]
        if fresh:
            for k in range(g.shape[0]):
                g[k] = zero + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k] + e4 * a4[k]
        else:
            for k in range(g.shape[0]):
                g[k] = g[k] + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k] + e4 * a4[k]
        j += 1
    for j in range(n_l):
        nabla_b[j] = (zero if fresh else nabla_b[j]) + d0[j] + d1[j] + d2[j] + d3[j] + d4[j]


@jit
def outer_tile5(g0, g1, g2, g3, e0, e1, e2, e3, a0, a1, a2, a3, a4, fresh):
    """g_r[k] += Σ_x e_r[x] a_x[k] for four rows r and five examples x, x in order
    (``fresh``: g_r[k] = 0 + Σ_x e_r[x] a_x[k], g not read)."""
    if fresh:
        zero = g0.dtype.type(0)
        for k in range(g0.shape[0]):
            p0, p1, p2, p3, p4 = a0[k], a1[k], a2[k], a3[k], a4[k]
            g0[k] = zero + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3 + e0[4] * p4
            g1[k] = zero + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3 + e1[4] * p4
            g2[k] = zero + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3 + e2[4] * p4
            g3[k] = zero + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3 + e3[4] * p4
        return
    for k in range(g0.shape[0]):
        p0, p1, p2, p3, p4 = a0[k], a1[k], a2[k], a3[k], a4[k]
        g0[k] = g0[k] + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3 + e0[4] * p4
        g1[k] = g1[k] + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3 + e1[4] * p4
        g2[k] = g2[k] + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3 + e2[4] * p4
        g3[k] = g3[k] + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3 + e3[4] * p4


# ------------------------------------------------------------ the outer-product forward
# Where the target's cores run 512-bit FMAs at full width (_jit.outer_forward), a block of at
# least OUTER_MIN_EXAMPLES examples through a first layer of at least OUTER_MIN_ROWS neurons
# goes through forward_outer instead of the dot tiles: z_j = Σ_k w_jk x_k + b_j for L examples
# per vector, each sum one chain of fused multiply-adds in k order (forward_chain computes the
# same, one example at a time).  Below those sizes the packing of the inputs, and lanes left
# empty, cost more than the tiles gain (profiles/README.md, seventeenth round).
OUTER_FORWARD = outer_forward()
OUTER_MIN_ROWS = 256
OUTER_MIN_EXAMPLES = 32
OUTER_ROWS = 6       # rows j per outer tile; 4 vectors of L examples (24 running sums)


@jit
def outer_block(n_rows, m):
    """Whether z^1 of a block of m examples through a first layer of n_rows neurons comes
    from :func:`forward_outer` (else from :data:`forward_tile`)."""
    return OUTER_FORWARD and n_rows >= OUTER_MIN_ROWS and m >= OUTER_MIN_EXAMPLES


@jit
def forward_chain(z, w, b, x):
    """z_j = Σ_k w_jk x_k + b_j for one example, the sum one chain of fused multiply-adds,
    k = 0, 1, …: s ← w_jk x_k + s rounded once, then z_j = s + b_j.

    The scalar statement of what each lane of :func:`forward_outer` computes, bit for bit
    (the tests' naive loop uses it): no SIMD partial sums, so an example's z does not
    depend on the lanes, tiles or examples beside it.
    """
    for j in range(w.shape[0]):
        s = w.dtype.type(0)
        for k in range(w.shape[1]):
            s = sfma(w[j, k], w.dtype.type(x[k]), s)
        z[j] = s + b[j]


@jit
def packed_width(m, itemsize):
    """Elements per row of the packed inputs xT (n_in × width) of m examples: whole 64-byte
    lines of whole vectors, an odd number of them, so that the rows k, k+1, … a tile loads do
    not all fall into the same few sets of the L1 (a 2 KiB stride, m = 256, ran the outer
    forward 30 % slower than 832 bytes, m = 100)."""
    lines = (m * itemsize + 63) // 64
    return (lines + 1 - lines % 2) * 64 // itemsize


@jit
def pack_inputs(xT, X, order, lo, hi, k_lo, k_hi):
    """xT[k, x] = X[order[lo + x], k] for k_lo ≤ k < k_hi and the hi − lo examples: the
    mini-batch's inputs transposed, in the parameters' dtype, for :func:`forward_outer`."""
    for x in range(hi - lo):
        row = X[order[lo + x]]
        for k in range(k_lo, k_hi):
            xT[k, x] = row[k]


@jit
def forward_outer(z, col, w, b, xT, m):
    """z[e, col + j] = Σ_k w_jk xT[k, e] + b_j for every row j of w and the m examples e of
    xT (whose rows hold whole vectors of L lanes past m): :data:`OUTER_ROWS` rows × 4
    vectors per :func:`outer_tile6x4`, the last vectors by :func:`outer_tile6x1`.

    Each z is one chain of fused multiply-adds over k (:func:`forward_chain`), whatever
    tile, lane or row block computed it; the last tile of rows repeats row n−1 (its z is
    written again, with the same value).
    """
    L = lanes(w)
    n_vec = (m + L - 1) // L
    last = w.shape[0] - 1
    for j in range(0, w.shape[0], OUTER_ROWS):
        for v in range(0, n_vec - n_vec % 4, 4):
            outer_tile6x4(z, col, w, b, xT, j, last, v * L, m)
        for v in range(n_vec - n_vec % 4, n_vec):
            outer_tile6x1(z, col, w, b, xT, j, last, v * L, m)


@jit
def outer_tile6x4(z, col, w, b, xT, j, last, e, m):
    """The z of rows j … j+5 (clamped to ``last``) × examples e … e+4L−1 (< m): 24 running
    sums in vector registers; per k, four vectors of inputs and six w_jk broadcast feed 24
    fused multiply-adds."""
    L = lanes(w)
    j1, j2, j3, j4, j5 = min(j + 1, last), min(j + 2, last), min(j + 3, last), min(j + 4, last), \
        min(j + 5, last)
    e1, e2, e3 = e + L, e + 2 * L, e + 3 * L
    s00 = s01 = s02 = s03 = vzero(w)
    s10 = s11 = s12 = s13 = vzero(w)
    s20 = s21 = s22 = s23 = vzero(w)
    s30 = s31 = s32 = s33 = vzero(w)
    s40 = s41 = s42 = s43 = vzero(w)
    s50 = s51 = s52 = s53 = vzero(w)
    for k in range(w.shape[1]):
        p0, p1, p2, p3 = vload(xT, k, e), vload(xT, k, e1), vload(xT, k, e2), vload(xT, k, e3)
        s00, s01, s02, s03 = fma4(vsplat(w, j, k), p0, p1, p2, p3, s00, s01, s02, s03)
        s10, s11, s12, s13 = fma4(vsplat(w, j1, k), p0, p1, p2, p3, s10, s11, s12, s13)
        s20, s21, s22, s23 = fma4(vsplat(w, j2, k), p0, p1, p2, p3, s20, s21, s22, s23)
        s30, s31, s32, s33 = fma4(vsplat(w, j3, k), p0, p1, p2, p3, s30, s31, s32, s33)
        s40, s41, s42, s43 = fma4(vsplat(w, j4, k), p0, p1, p2, p3, s40, s41, s42, s43)
        s50, s51, s52, s53 = fma4(vsplat(w, j5, k), p0, p1, p2, p3, s50, s51, s52, s53)
    store_row4(z, col, b, j, e, L, m, s00, s01, s02, s03)
    store_row4(z, col, b, j1, e, L, m, s10, s11, s12, s13)
    store_row4(z, col, b, j2, e, L, m, s20, s21, s22, s23)
    store_row4(z, col, b, j3, e, L, m, s30, s31, s32, s33)
    store_row4(z, col, b, j4, e, L, m, s40, s41, s42, s43)
    store_row4(z, col, b, j5, e, L, m, s50, s51, s52, s53)


@jit
def outer_tile6x1(z, col, w, b, xT, j, last, e, m):
    """:func:`outer_tile6x4` for one vector of examples (the last ones of a mini-batch)."""
    j1, j2, j3, j4, j5 = min(j + 1, last), min(j + 2, last), min(j + 3, last), min(j + 4, last), \
        min(j + 5, last)
    s0 = s1 = s2 = s3 = s4 = s5 = vzero(w)
    for k in range(w.shape[1]):
        p = vload(xT, k, e)
        s0, s1, s2 = vfma(vsplat(w, j, k), p, s0), vfma(vsplat(w, j1, k), p, s1), \
            vfma(vsplat(w, j2, k), p, s2)
        s3, s4, s5 = vfma(vsplat(w, j3, k), p, s3), vfma(vsplat(w, j4, k), p, s4), \
            vfma(vsplat(w, j5, k), p, s5)
    store_lanes(z, col, b, j, e, m, s0)
    store_lanes(z, col, b, j1, e, m, s1)
    store_lanes(z, col, b, j2, e, m, s2)
    store_lanes(z, col, b, j3, e, m, s3)
    store_lanes(z, col, b, j4, e, m, s4)
    store_lanes(z, col, b, j5, e, m, s5)


@jit
def fma4(c, p0, p1, p2, p3, s0, s1, s2, s3):
    """c·p_i + s_i for four vectors i, each rounded once: one row of a tile, one step."""
    return vfma(c, p0, s0), vfma(c, p1, s1), vfma(c, p2, s2), vfma(c, p3, s3)


@jit
def fma3(c, p0, p1, p2, s0, s1, s2):
    """:func:`fma4` for three vectors."""
    return vfma(c, p0, s0), vfma(c, p1, s1), vfma(c, p2, s2)


@jit
def store_row4(z, col, b, j, e, L, m, s0, s1, s2, s3):
    """:func:`store_lanes` of one row's four vectors, examples e, e+L, e+2L, e+3L onwards."""
    store_lanes(z, col, b, j, e, m, s0)
    store_lanes(z, col, b, j, e + L, m, s1)
    store_lanes(z, col, b, j, e + 2 * L, m, s2)
    store_lanes(z, col, b, j, e + 3 * L, m, s3)


@jit
def store_lanes(z, col, b, j, e, m, s):
    """z[e + l, col + j] = s[l] + b_j for the lanes l of s whose example e + l < m."""
    for lane in range(min(lanes(z), m - e)):
        z[e + lane, col + j] = vlane(s, lane) + b[j]


# ------------------------------------------------------------ the outer-product gradient
# Layer 1's gradient of a block of at least OUTER_MIN_EXAMPLES examples, on the same CPUs
# (OUTER_FORWARD), whatever the layer's width: it reads the inputs' rows as they are, so it
# needs no packing, and its sums are the dot tiles' bit for bit.
GRADIENT_ROWS = 8    # rows j per gradient_outer tile; 3 vectors of L columns k (24 running sums)


@jit
def gradient_outer(nabla_w, nabla_b, delta, col, X, order, lo, m):
    """BP3 and BP4 summed over examples x = order[lo] … order[lo + m − 1], in that order,
    for the first ⌊n/8⌋·8 rows of ``nabla_w`` (the rest is the caller's):
    ∂C/∂w_jk += Σ_x δ^x_j a^x_k and ∂C/∂b_j += Σ_x δ^x_j, with δ^x_j = delta[x, col + j]
    and a^x = X[order[lo + x]].

    Otherwise identical to m calls of :func:`loopnet.kernels.accumulate_gradient`, bit for
    bit: each ∂C/∂w_jk is one chain of fused multiply-adds over the examples in order, held
    in a vector register (:func:`gradient_tile8x3`: 8 rows × 3L columns, loaded and stored
    once while all m examples pass), the last columns by :func:`gradient_tile8x1` and one at
    a time.  Column blocks go outermost, so that the examples' slice of inputs stays in L1
    while every row passes.
    """
    L = lanes(nabla_w)
    n = nabla_w.shape[0] - nabla_w.shape[0] % GRADIENT_ROWS
    n_in = nabla_w.shape[1]
    k3 = n_in - n_in % (3 * L)
    k1 = n_in - n_in % L
    for k in range(0, k3, 3 * L):
        for j in range(0, n, GRADIENT_ROWS):
            gradient_tile8x3(nabla_w, j, k, delta, col, X, order, lo, m)
    for k in range(k3, k1, L):
        for j in range(0, n, GRADIENT_ROWS):
            gradient_tile8x1(nabla_w, j, k, delta, col, X, order, lo, m)
    for j in range(n):
        for k in range(k1, n_in):
            s = nabla_w[j, k]
            for x in range(m):
                s = sfma(delta[x, col + j], nabla_w.dtype.type(X[order[lo + x], k]), s)
            nabla_w[j, k] = s
        s = nabla_b[j]
        for x in range(m):
            s = s + delta[x, col + j]
        nabla_b[j] = s


@jit
def gradient_tile8x3(g, j, k, delta, col, X, order, lo, m):
    """g[j + r, k : k + 3L] += Σ_x δ^x_{j+r} a^x[k : k + 3L] for eight rows r, x in order: 24
    running sums in vector registers; per example, three vectors of a^x and eight δ^x_j
    broadcast feed 24 fused multiply-adds."""
    L = lanes(g)
    k1, k2 = k + L, k + 2 * L
    s00, s01, s02 = vload(g, j, k), vload(g, j, k1), vload(g, j, k2)
    s10, s11, s12 = vload(g, j + 1, k), vload(g, j + 1, k1), vload(g, j + 1, k2)
    s20, s21, s22 = vload(g, j + 2, k), vload(g, j + 2, k1), vload(g, j + 2, k2)
    s30, s31, s32 = vload(g, j + 3, k), vload(g, j + 3, k1), vload(g, j + 3, k2)
    s40, s41, s42 = vload(g, j + 4, k), vload(g, j + 4, k1), vload(g, j + 4, k2)
    s50, s51, s52 = vload(g, j + 5, k), vload(g, j + 5, k1), vload(g, j + 5, k2)
    s60, s61, s62 = vload(g, j + 6, k), vload(g, j + 6, k1), vload(g, j + 6, k2)
    s70, s71, s72 = vload(g, j + 7, k), vload(g, j + 7, k1), vload(g, j + 7, k2)
    dj = col + j
    for x in range(m):
        r = order[lo + x]
        p0, p1, p2 = vload_as(X, r, k, g), vload_as(X, r, k1, g), vload_as(X, r, k2, g)
        s00, s01, s02 = fma3(vsplat(delta, x, dj), p0, p1, p2, s00, s01, s02)
        s10, s11, s12 = fma3(vsplat(delta, x, dj + 1), p0, p1, p2, s10, s11, s12)
        s20, s21, s22 = fma3(vsplat(delta, x, dj + 2), p0, p1, p2, s20, s21, s22)
        s30, s31, s32 = fma3(vsplat(delta, x, dj + 3), p0, p1, p2, s30, s31, s32)
        s40, s41, s42 = fma3(vsplat(delta, x, dj + 4), p0, p1, p2, s40, s41, s42)
        s50, s51, s52 = fma3(vsplat(delta, x, dj + 5), p0, p1, p2, s50, s51, s52)
        s60, s61, s62 = fma3(vsplat(delta, x, dj + 6), p0, p1, p2, s60, s61, s62)
        s70, s71, s72 = fma3(vsplat(delta, x, dj + 7), p0, p1, p2, s70, s71, s72)
    store3(g, j, k, L, s00, s01, s02)
    store3(g, j + 1, k, L, s10, s11, s12)
    store3(g, j + 2, k, L, s20, s21, s22)
    store3(g, j + 3, k, L, s30, s31, s32)
    store3(g, j + 4, k, L, s40, s41, s42)
    store3(g, j + 5, k, L, s50, s51, s52)
    store3(g, j + 6, k, L, s60, s61, s62)
    store3(g, j + 7, k, L, s70, s71, s72)


@jit
def store3(g, j, k, L, s0, s1, s2):
    """g[j, k : k + 3L] = s0, s1, s2."""
    vstore(g, j, k, s0)
    vstore(g, j, k + L, s1)
    vstore(g, j, k + 2 * L, s2)


@jit
def gradient_tile8x1(g, j, k, delta, col, X, order, lo, m):
    """:func:`gradient_tile8x3` for one vector of columns (the last whole ones of a row)."""
    s0, s1, s2, s3 = vload(g, j, k), vload(g, j + 1, k), vload(g, j + 2, k), vload(g, j + 3, k)
    s4, s5, s6, s7 = vload(g, j + 4, k), vload(g, j + 5, k), vload(g, j + 6, k), vload(g, j + 7, k)
    dj = col + j
    for x in range(m):
        p = vload_as(X, order[lo + x], k, g)
        s0, s1 = vfma(vsplat(delta, x, dj), p, s0), vfma(vsplat(delta, x, dj + 1), p, s1)
        s2, s3 = vfma(vsplat(delta, x, dj + 2), p, s2), vfma(vsplat(delta, x, dj + 3), p, s3)
        s4, s5 = vfma(vsplat(delta, x, dj + 4), p, s4), vfma(vsplat(delta, x, dj + 5), p, s5)
        s6, s7 = vfma(vsplat(delta, x, dj + 6), p, s6), vfma(vsplat(delta, x, dj + 7), p, s7)
    vstore(g, j, k, s0)
    vstore(g, j + 1, k, s1)
    vstore(g, j + 2, k, s2)
    vstore(g, j + 3, k, s3)
    vstore(g, j + 4, k, s4)
    vstore(g, j + 5, k, s5)
    vstore(g, j + 6, k, s6)
    vstore(g, j + 7, k, s7)


# The twins this target runs (TILE_EXAMPLES and GRADIENT_EXAMPLES examples per tile).
forward_tile = forward_layer5 if WIDE_TILES else forward_layer3
gradient_tile = accumulate_gradient5 if WIDE_TILES else accumulate_gradient4

# Each textbook kernel that training does not run as written, and the twin it runs instead.
FAST_TWIN = {forward_layer: forward_tile, accumulate_gradient: gradient_tile}
