"""Explicit SIMD register tiles against loopnet's own, on this machine, one thread.

``python profiles/simd_tiles.py [--rounds 5] [--rows 80] [--inputs 784] [--m 100] [--quick]``

loopnet's tiles (:mod:`loopnet.tiles`) are scalar loops that LLVM vectorises along their own
index: a forward sum Σ_k w_jk x_k gets its SIMD lanes across k and ends in a horizontal add,
and the gradient's running sums ∂C/∂w_jk live in memory between passes of a few examples.  The
outer-product form of BLAS kernels (running sums held in vector registers, one operand
broadcast) cannot be written that way: LLVM leaves such accumulators scalar (profiles/README.md,
fourteenth round).  Written with explicit vectors — a Numba type for an LLVM vector and four
intrinsics (``numba.extending.intrinsic``): load, broadcast, fused multiply-add, store — it
can.  This script measures what that form would buy, on layer 1 of a network ([784, 80 rows
of a panel, …], m = 100: the engine's panel of W5 on a 1 MiB L2), inputs gathered in a random
order from a 20,000-example array as in training:

* **forward**: z_j for 6 rows × 4 vectors of examples (24 running sums), the mini-batch's
  inputs packed transposed (x_k of L examples in one vector, packing timed), w_jk broadcast;
  against ``tiles.forward_layer5`` (or ``forward_layer3``) over the same rows, as
  ``engine.first_layer_panel`` runs it.  The sums run over k in order, so z differs from the
  engine's in the last bits (printed).
* **gradient**: 8 rows × 3 vectors of ∂C/∂w_jk held in registers while all m examples add
  δ_j a_k, against ``tiles.accumulate_gradient5`` (or ``4``) passes as ``engine.gradient_rows``
  runs them.  Every sum is the same chain of fused multiply-adds in example order: the bits
  must be the engine's (checked before timing).

L (lanes) is the vector width LLVM prefers for this target over the item size: 512-bit on
Zen 4 and Zen 5, 256-bit where LLVM tunes AVX-512 to 256 bits (Intel) and on AVX2.  Nothing
here is used by loopnet: it is the measurement behind the next step for W3/W5 on AVX-512
machines (profiles/README.md, fifteenth round).
"""

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")     # before NumPy loads its BLAS: one thread, as the kernels

import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic, models, register_model  # noqa: E402

from _machine import target_cpu_name  # noqa: E402
from loopnet import tiles  # noqa: E402
from loopnet._jit import vector_registers  # noqa: E402

# AVX-512 targets LLVM does not tune to 256-bit vectors (an explicit 512-bit vector is split in
# two on the others).
WIDE_VECTOR_CPUS = ("znver4", "znver5", "knl", "knm")


TARGET = target_cpu_name().lower()   # the CPU Numba compiles for


def vector_bytes():
    """Bytes per vector LLVM prefers for :data:`TARGET` (see module docstring)."""
    if vector_registers() >= 32:
        return 64 if TARGET in WIDE_VECTOR_CPUS else 32
    return 16 if TARGET in ("generic", "x86-64", "x86-64-v2", "nehalem", "westmere") else 32


VECTOR_BYTES = vector_bytes()
LANES = VECTOR_BYTES // 8      # float64 lanes: a compile-time constant, so that the offsets of a
#                                tile's vectors are constants in its address arithmetic (with the
#                                width read from the array's itemsize, LLVM ran out of registers
#                                and spilled the running sums in the loop)


# ---------------------------------------------------------------- vectors as Numba values
class Vector(types.Type):
    """An LLVM vector of ``count`` elements of the float type ``dtype``."""

    def __init__(self, dtype, count):
        self.dtype, self.count = dtype, count
        super().__init__(name=f"Vector({dtype}, {count})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.count))


def _vector_of(like):
    return Vector(like.dtype, VECTOR_BYTES * 8 // like.dtype.bitwidth)


def _address(context, builder, a_type, a, i, k):
    """Pointer to a[i, k], no bounds check, no wraparound."""
    array = context.make_array(a_type)(context, builder, a)
    return cgutils.get_item_pointer(context, builder, a_type, array, [i, k], wraparound=False,
                                    boundscheck=False)


def _splat(builder, element, vector_type, count):
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), element,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), count), [0] * count))


@intrinsic
def vload_at(typingctx, a, i, k, like):
    """a[i, k : k + L] (a 2-D array of like's dtype) as a vector."""
    vec = _vector_of(like)

    def codegen(context, builder, sig, args):
        target = context.get_value_type(vec)
        pointer = builder.bitcast(_address(context, builder, sig.args[0], *args[:3]),
                                  target.as_pointer())
        return builder.load(pointer, align=vec.dtype.bitwidth // 8)
    return vec(a, i, k, like), codegen


@intrinsic
def vsplat_at(typingctx, a, i, k, like):
    """L copies of a[i, k]."""
    vec = _vector_of(like)

    def codegen(context, builder, sig, args):
        element = builder.load(_address(context, builder, sig.args[0], *args[:3]))
        return _splat(builder, element, context.get_value_type(vec), vec.count)
    return vec(a, i, k, like), codegen


@intrinsic
def vzero(typingctx, like):
    """The vector of L zeros."""
    vec = _vector_of(like)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(like), codegen


@intrinsic
def vstore_at(typingctx, a, i, k, value):
    """a[i, k : k + L] = value."""
    def codegen(context, builder, sig, args):
        pointer = builder.bitcast(_address(context, builder, sig.args[0], *args[:3]),
                                  context.get_value_type(sig.args[3]).as_pointer())
        builder.store(args[3], pointer, align=sig.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(a, i, k, value), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a·b + c lane by lane, rounded once (llvm.fma: the scalar kernels' contracted a*b + c)."""
    if not (isinstance(a, Vector) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        target = context.get_value_type(sig.return_type)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(target, [target] * 3),
                                             f"llvm.fma.v{a.count}f{a.dtype.bitwidth}")
        return builder.call(fma, args)
    return a(a, b, c), codegen


@njit
def store3(a, i, k0, k1, k2, v0, v1, v2):
    """a[i, k0 …], a[i, k1 …], a[i, k2 …] = v0, v1, v2 (one row's running sums of a tile)."""
    vstore_at(a, i, k0, v0)
    vstore_at(a, i, k1, v1)
    vstore_at(a, i, k2, v2)


@njit
def store4(a, i, k0, k1, k2, k3, v0, v1, v2, v3):
    """:func:`store3` for four vectors."""
    store3(a, i, k0, k1, k2, v0, v1, v2)
    vstore_at(a, i, k3, v3)


# ---------------------------------------------------------------- the two register tiles
@njit
def outer_forward6x4(z, w, xT, j, e):
    """z[j + r, e + i] = Σ_k w[j + r, k] xT[k, e + i] for six rows r and 4L examples i: 24 running
    sums, one vector register each, k in order; per k, four vectors of inputs and six w_jk
    broadcast feed 24 fused multiply-adds, and no sum ends in a horizontal add."""
    e1, e2, e3 = e + LANES, e + 2 * LANES, e + 3 * LANES
    s00 = s01 = s02 = s03 = vzero(w)
    s10 = s11 = s12 = s13 = vzero(w)
    s20 = s21 = s22 = s23 = vzero(w)
    s30 = s31 = s32 = s33 = vzero(w)
    s40 = s41 = s42 = s43 = vzero(w)
    s50 = s51 = s52 = s53 = vzero(w)
    for k in range(w.shape[1]):
        p0, p1 = vload_at(xT, k, e, w), vload_at(xT, k, e1, w)
        p2, p3 = vload_at(xT, k, e2, w), vload_at(xT, k, e3, w)
        c = vsplat_at(w, j, k, w)
        s00, s01, s02, s03 = vfma(c, p0, s00), vfma(c, p1, s01), vfma(c, p2, s02), vfma(c, p3, s03)
        c = vsplat_at(w, j + 1, k, w)
        s10, s11, s12, s13 = vfma(c, p0, s10), vfma(c, p1, s11), vfma(c, p2, s12), vfma(c, p3, s13)
        c = vsplat_at(w, j + 2, k, w)
        s20, s21, s22, s23 = vfma(c, p0, s20), vfma(c, p1, s21), vfma(c, p2, s22), vfma(c, p3, s23)
        c = vsplat_at(w, j + 3, k, w)
        s30, s31, s32, s33 = vfma(c, p0, s30), vfma(c, p1, s31), vfma(c, p2, s32), vfma(c, p3, s33)
        c = vsplat_at(w, j + 4, k, w)
        s40, s41, s42, s43 = vfma(c, p0, s40), vfma(c, p1, s41), vfma(c, p2, s42), vfma(c, p3, s43)
        c = vsplat_at(w, j + 5, k, w)
        s50, s51, s52, s53 = vfma(c, p0, s50), vfma(c, p1, s51), vfma(c, p2, s52), vfma(c, p3, s53)
    store4(z, j, e, e1, e2, e3, s00, s01, s02, s03)
    store4(z, j + 1, e, e1, e2, e3, s10, s11, s12, s13)
    store4(z, j + 2, e, e1, e2, e3, s20, s21, s22, s23)
    store4(z, j + 3, e, e1, e2, e3, s30, s31, s32, s33)
    store4(z, j + 4, e, e1, e2, e3, s40, s41, s42, s43)
    store4(z, j + 5, e, e1, e2, e3, s50, s51, s52, s53)


@njit
def gradient_block8x3(g, j, k, delta, d_col, a, rows, base, m):
    """g[j + r, k : k + 3L] += Σ_{x<m} δ^x_{j+r} a^x[k : k + 3L] for eight rows r, x in order:
    24 running sums held in vector registers while all m examples pass (loaded and stored
    once); δ^x_j = delta[x, d_col + j], a^x = a[rows[base + x]]."""
    k1, k2 = k + LANES, k + 2 * LANES
    s00, s01, s02 = vload_at(g, j, k, g), vload_at(g, j, k1, g), vload_at(g, j, k2, g)
    s10, s11, s12 = vload_at(g, j + 1, k, g), vload_at(g, j + 1, k1, g), vload_at(g, j + 1, k2, g)
    s20, s21, s22 = vload_at(g, j + 2, k, g), vload_at(g, j + 2, k1, g), vload_at(g, j + 2, k2, g)
    s30, s31, s32 = vload_at(g, j + 3, k, g), vload_at(g, j + 3, k1, g), vload_at(g, j + 3, k2, g)
    s40, s41, s42 = vload_at(g, j + 4, k, g), vload_at(g, j + 4, k1, g), vload_at(g, j + 4, k2, g)
    s50, s51, s52 = vload_at(g, j + 5, k, g), vload_at(g, j + 5, k1, g), vload_at(g, j + 5, k2, g)
    s60, s61, s62 = vload_at(g, j + 6, k, g), vload_at(g, j + 6, k1, g), vload_at(g, j + 6, k2, g)
    s70, s71, s72 = vload_at(g, j + 7, k, g), vload_at(g, j + 7, k1, g), vload_at(g, j + 7, k2, g)
    dj = d_col + j
    for x in range(m):
        i = rows[base + x]
        p0, p1, p2 = vload_at(a, i, k, g), vload_at(a, i, k1, g), vload_at(a, i, k2, g)
        c = vsplat_at(delta, x, dj, g)
        s00, s01, s02 = vfma(c, p0, s00), vfma(c, p1, s01), vfma(c, p2, s02)
        c = vsplat_at(delta, x, dj + 1, g)
        s10, s11, s12 = vfma(c, p0, s10), vfma(c, p1, s11), vfma(c, p2, s12)
        c = vsplat_at(delta, x, dj + 2, g)
        s20, s21, s22 = vfma(c, p0, s20), vfma(c, p1, s21), vfma(c, p2, s22)
        c = vsplat_at(delta, x, dj + 3, g)
        s30, s31, s32 = vfma(c, p0, s30), vfma(c, p1, s31), vfma(c, p2, s32)
        c = vsplat_at(delta, x, dj + 4, g)
        s40, s41, s42 = vfma(c, p0, s40), vfma(c, p1, s41), vfma(c, p2, s42)
        c = vsplat_at(delta, x, dj + 5, g)
        s50, s51, s52 = vfma(c, p0, s50), vfma(c, p1, s51), vfma(c, p2, s52)
        c = vsplat_at(delta, x, dj + 6, g)
        s60, s61, s62 = vfma(c, p0, s60), vfma(c, p1, s61), vfma(c, p2, s62)
        c = vsplat_at(delta, x, dj + 7, g)
        s70, s71, s72 = vfma(c, p0, s70), vfma(c, p1, s71), vfma(c, p2, s72)
    store3(g, j, k, k1, k2, s00, s01, s02)
    store3(g, j + 1, k, k1, k2, s10, s11, s12)
    store3(g, j + 2, k, k1, k2, s20, s21, s22)
    store3(g, j + 3, k, k1, k2, s30, s31, s32)
    store3(g, j + 4, k, k1, k2, s40, s41, s42)
    store3(g, j + 5, k, k1, k2, s50, s51, s52)
    store3(g, j + 6, k, k1, k2, s60, s61, s62)
    store3(g, j + 7, k, k1, k2, s70, s71, s72)


# ---------------------------------------------------------------- the ladders
@njit
def pack_transposed(xT, X, order, lo, m):
    """xT[k, x] = X[order[lo + x], k]: the mini-batch's inputs, one column per example."""
    for x in range(m):
        row = X[order[lo + x]]
        for k in range(row.shape[0]):
            xT[k, x] = row[k]


@njit
def pack_only(xT, X, order, lo, m, reps):
    for _ in range(reps):
        pack_transposed(xT, X, order, lo, m)


@njit
def forward_outer(z, w, xT, m, reps):
    """z (rows × examples) of layer 1 by :func:`outer_forward6x4` tiles from packed inputs."""
    width = 4 * LANES
    for _ in range(reps):
        for j in range(0, w.shape[0] - w.shape[0] % 6, 6):
            for e in range(0, m - m % width, width):
                outer_forward6x4(z, w, xT, j, e)


@njit
def forward_engine(zt, w, b, X, order, lo, m, reps):
    """zt (examples × rows) of layer 1 by the engine's tile (tiles.forward_layer5 / 3)."""
    t_ex = tiles.TILE_EXAMPLES
    for _ in range(reps):
        for t in range(0, m - m % t_ex, t_ex):
            if t_ex == 5:
                tiles.forward_layer5(zt[t], zt[t + 1], zt[t + 2], zt[t + 3], zt[t + 4], w, b,
                                     X[order[lo + t]], X[order[lo + t + 1]], X[order[lo + t + 2]],
                                     X[order[lo + t + 3]], X[order[lo + t + 4]])
            else:
                tiles.forward_layer3(zt[t], zt[t + 1], zt[t + 2], w, b, X[order[lo + t]],
                                     X[order[lo + t + 1]], X[order[lo + t + 2]])


@njit
def gradient_blocked(g, delta, X, order, lo, m, reps):
    """g += Σ_x δ^x a^x over the rows and whole column blocks, by :func:`gradient_block8x3`."""
    width = 3 * LANES
    for _ in range(reps):
        for j in range(0, g.shape[0] - g.shape[0] % 8, 8):
            for k in range(0, g.shape[1] - g.shape[1] % width, width):
                gradient_block8x3(g, j, k, delta, 0, X, order, lo, m)


@njit
def gradient_engine(g, gb, delta, X, order, lo, m, reps):
    """The same sums by the engine's passes (tiles.accumulate_gradient5 / 4)."""
    n = g.shape[0]
    for _ in range(reps):
        if tiles.GRADIENT_EXAMPLES == 5:
            for t in range(0, m - m % 5, 5):
                tiles.accumulate_gradient5(g, gb, delta[t, :n], delta[t + 1, :n], delta[t + 2, :n],
                                           delta[t + 3, :n], delta[t + 4, :n], X[order[lo + t]],
                                           X[order[lo + t + 1]], X[order[lo + t + 2]],
                                           X[order[lo + t + 3]], X[order[lo + t + 4]])
        else:
            for t in range(0, m - m % 4, 4):
                tiles.accumulate_gradient4(g, gb, delta[t, :n], delta[t + 1, :n], delta[t + 2, :n],
                                           delta[t + 3, :n], X[order[lo + t]], X[order[lo + t + 1]],
                                           X[order[lo + t + 2]], X[order[lo + t + 3]])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=80, help="rows of w (a multiple of 24)")
    p.add_argument("--inputs", type=int, default=784)
    p.add_argument("--m", type=int, default=100, help="examples per mini-batch")
    p.add_argument("--units", type=int, default=1010, help="units per row of δ (the engine's scratch)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.inputs, args.m, args.units, args.rounds = 48, 96, 40, 60, 1
    rows, n_in, m = args.rows - args.rows % 24, args.inputs, args.m
    m_fwd = m - m % (4 * LANES)                   # whole tiles of examples in both ladders
    m_grad = m - m % tiles.GRADIENT_EXAMPLES
    rng = np.random.default_rng(0)
    X = rng.random((20_000, n_in))
    order = rng.permutation(len(X))
    w = rng.standard_normal((rows, n_in)) / np.sqrt(n_in)
    b = np.zeros(rows)
    delta = rng.standard_normal((m + 1, max(args.units, rows)))
    k_end = n_in - n_in % (3 * LANES)
    print(f"one thread; {VECTOR_BYTES * 8}-bit vectors ({LANES} float64 lanes) for "
          f"{TARGET}; layer 1 rows {rows}, inputs {n_in}, "
          f"m = {m} (forward on {m_fwd} examples); load {os.getloadavg()[0]:.1f}")

    # the gradient: same bits as the engine's passes, where the blocks reach
    g1, g2 = np.zeros((rows, n_in)), np.zeros((rows, n_in))
    gradient_engine(g1, np.zeros(rows), delta, X, order, 0, m_grad, 1)
    gradient_blocked(g2, delta, X, order, 0, m_grad, 1)
    same = np.array_equal(g1[:, :k_end], g2[:, :k_end])
    print(f"gradient: register blocks give the engine's bits: {same}")
    if not same:
        sys.exit("the register-blocked gradient differs from the engine's: nothing timed")
    # the forward: within rounding of the matrix form
    xT = np.zeros((n_in, m))
    z_outer, z_engine = np.zeros((rows, m)), np.zeros((m, rows))
    pack_transposed(xT, X, order, 0, m)
    forward_outer(z_outer, w, xT, m, 1)
    forward_engine(z_engine, w, b, X, order, 0, m, 1)
    want = (X[order[:m]] @ w.T).T
    err = [np.abs(z[:, :m_fwd] - want[:, :m_fwd]).max() for z in (z_outer, z_engine.T)]
    print(f"forward: max |z − X wᵀ| outer {err[0]:.1e}, engine tile {err[1]:.1e}")

    flops_fwd = 2 * rows * n_in * m_fwd
    flops_grad = 2 * rows * k_end * m_grad
    reps = max(1, int(3e8 / flops_fwd))
    ladder = [
        ("forward, engine tile (tiles.forward_layer%d)" % tiles.TILE_EXAMPLES, flops_fwd,
         lambda lo: forward_engine(z_engine, w, b, X, order, lo, m_fwd, reps)),
        ("forward, outer product 6 × 4 vectors (inputs packed)", flops_fwd,
         lambda lo: forward_outer(z_outer, w, xT, m_fwd, reps)),
        ("gradient, engine passes (accumulate_gradient%d)" % tiles.GRADIENT_EXAMPLES, flops_grad,
         lambda lo: gradient_engine(g1, np.zeros(rows), delta, X, order, lo, m_grad, reps)),
        ("gradient, register blocks 8 × 3 vectors", flops_grad,
         lambda lo: gradient_blocked(g2, delta, X, order, lo, m_grad, reps)),
    ]
    best = {name: [] for name, _, _ in ladder}
    for _ in range(args.rounds):
        for name, flops, run in ladder:
            lo = int(rng.integers(0, len(X) - m))
            t0 = time.perf_counter()
            run(lo)
            best[name].append(flops * reps / (time.perf_counter() - t0) / 1e9)
    for name, _, _ in ladder:
        gf = sorted(best[name])
        print(f"  {name:58s} {gf[-1]:6.1f} GFLOP/s best, {gf[len(gf) // 2]:6.1f} median")
    pack_only(xT, X, order, 0, m, 1)
    t0 = time.perf_counter()
    pack_only(xT, X, order, 0, m, reps)
    pack_s = (time.perf_counter() - t0) / reps
    outer_s = 2 * 1000 * n_in * m_fwd / (max(best[ladder[1][0]]) * 1e9)
    print(f"  packing one mini-batch's inputs transposed: {pack_s * 1e6:.0f} µs, "
          f"{100 * pack_s / outer_s:.0f} % of the outer forward of a 1000-row layer at that speed")


if __name__ == "__main__":
    main()
