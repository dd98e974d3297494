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
``accumulate_gradient`` (one example)      :func:`accumulate_gradient4` (four
                                           examples) or :func:`accumulate_gradient5`
                                           (five): no sum reordered; the terms
                                           are added example by example as that
                                           many calls would, bit for bit.
=========================================  ========================================

Which twin of each pair runs is decided by the target's vector registers
(:func:`loopnet._jit.vector_registers`; ``LOOPNET_TILES=wide`` or ``narrow``
overrides, :func:`loopnet._jit.wide_tiles`): a tile's running sums, plus the vectors
loaded per step, must fit them.  With 16 (SSE2, AVX2): 4 rows × 3 examples forward
(12 sums + 3 inputs + 1 weight) and 4 × 4 for the gradient; with 32 (AVX-512):
4 × 5 for both, which also leaves no empty slot at m = 10 or m = 100 (the 3- and
4-example tiles compute 12 slots for 10 examples).  Every sum keeps its one
vector of partial sums whatever the tile's width, so the wider tiles give the same
bits as the narrower ones (tests/test_engine.py).  ``output_delta`` (BP1) and
``hidden_delta`` (BP2), and ``forward_layer`` for layers 2 … L, run in training as
written in kernels.py.
"""

from ._jit import jit, jit_sums, wide_tiles
from .kernels import accumulate_gradient, forward_layer

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
def accumulate_gradient4(nabla_w, nabla_b, d0, d1, d2, d3, a0, a1, a2, a3):
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
    """
    n_l = nabla_w.shape[0]
    j = 0
    while j + 4 <= n_l:
        outer_tile4(nabla_w[j], nabla_w[j + 1], nabla_w[j + 2], nabla_w[j + 3],
                   (d0[j], d1[j], d2[j], d3[j]), (d0[j + 1], d1[j + 1], d2[j + 1], d3[j + 1]),
                   (d0[j + 2], d1[j + 2], d2[j + 2], d3[j + 2]),
                   (d0[j + 3], d1[j + 3], d2[j + 3], d3[j + 3]), a0, a1, a2, a3)
        j += 4
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        e0, e1, e2, e3 = d0[j], d1[j], d2[j], d3[j]
        g = nabla_w[j]
        for k in range(g.shape[0]):
            g[k] = g[k] + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k]
        j += 1
    for j in range(n_l):
        nabla_b[j] = nabla_b[j] + d0[j] + d1[j] + d2[j] + d3[j]


@jit
def outer_tile4(g0, g1, g2, g3, e0, e1, e2, e3, a0, a1, a2, a3):
    """g_r[k] += Σ_x e_r[x] a_x[k] for four rows r and four examples x, x in order.

    ``e_r`` holds δ_j of row r for the four examples; each a_x[k] loaded
    serves the four rows.
    """
    for k in range(g0.shape[0]):
        p0, p1, p2, p3 = a0[k], a1[k], a2[k], a3[k]
        g0[k] = g0[k] + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3
        g1[k] = g1[k] + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3
        g2[k] = g2[k] + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3
        g3[k] = g3[k] + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3


@jit
def accumulate_gradient5(nabla_w, nabla_b, d0, d1, d2, d3, d4, a0, a1, a2, a3, a4):
    """BP3 and BP4 for five examples at once: :func:`accumulate_gradient4` with one
    example more per pass (:func:`outer_tile5`), for 32-register targets.

    Otherwise identical to five calls of accumulate_gradient, examples 0 … 4 in
    turn, bit for bit: the terms are added left to right, example 0 first, each a
    fused multiply-add.  Each ∂C/∂w_jk is loaded and stored once per five examples.
    """
    n_l = nabla_w.shape[0]
    j = 0
    while j + 4 <= n_l:
        outer_tile5(nabla_w[j], nabla_w[j + 1], nabla_w[j + 2], nabla_w[j + 3],
                    (d0[j], d1[j], d2[j], d3[j], d4[j]),
                    (d0[j + 1], d1[j + 1], d2[j + 1], d3[j + 1], d4[j + 1]),
                    (d0[j + 2], d1[j + 2], d2[j + 2], d3[j + 2], d4[j + 2]),
                    (d0[j + 3], d1[j + 3], d2[j + 3], d3[j + 3], d4[j + 3]), a0, a1, a2, a3, a4)
        j += 4
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        e0, e1, e2, e3, e4 = d0[j], d1[j], d2[j], d3[j], d4[j]
        g = nabla_w[j]
        for k in range(g.shape[0]):
            g[k] = g[k] + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k] + e4 * a4[k]
        j += 1
    for j in range(n_l):
        nabla_b[j] = nabla_b[j] + d0[j] + d1[j] + d2[j] + d3[j] + d4[j]


@jit
def outer_tile5(g0, g1, g2, g3, e0, e1, e2, e3, a0, a1, a2, a3, a4):
    """g_r[k] += Σ_x e_r[x] a_x[k] for four rows r and five examples x, x in order."""
    for k in range(g0.shape[0]):
        p0, p1, p2, p3, p4 = a0[k], a1[k], a2[k], a3[k], a4[k]
        g0[k] = g0[k] + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3 + e0[4] * p4
        g1[k] = g1[k] + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3 + e1[4] * p4
        g2[k] = g2[k] + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3 + e2[4] * p4
        g3[k] = g3[k] + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3 + e3[4] * p4


# The twins this target runs (TILE_EXAMPLES and GRADIENT_EXAMPLES examples per tile).
forward_tile = forward_layer5 if WIDE_TILES else forward_layer3
gradient_tile = accumulate_gradient5 if WIDE_TILES else accumulate_gradient4

# Each textbook kernel that training does not run as written, and the twin it runs instead.
FAST_TWIN = {forward_layer: forward_tile, accumulate_gradient: gradient_tile}
