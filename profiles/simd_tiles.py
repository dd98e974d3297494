"""The engine's outer-product tiles against its dot-product tiles, on this machine, one thread.

``python profiles/simd_tiles.py [--rounds 5] [--rows 80] [--inputs 784] [--m 100] [--quick]``

loopnet's dot tiles (``tiles.forward_layer5``/``3``, ``accumulate_gradient5``/``4``) are scalar
loops that LLVM vectorises along their own index: a forward sum Σ_k w_jk x_k gets its SIMD
lanes across k and ends in a horizontal add, and the gradient's running sums ∂C/∂w_jk live in
memory between passes of a few examples.  The outer-product form of BLAS kernels (running sums
held in vector registers, one operand broadcast) cannot be written that way: LLVM leaves such
accumulators scalar (profiles/README.md, fourteenth round).  With explicit vectors
(:mod:`loopnet.simd`) it can: ``tiles.forward_outer`` and ``tiles.gradient_outer``, which the
engine runs for wide layers on CPUs with full-width 512-bit FMAs (``tiles.outer_block``).  This
script times both forms bare on any machine, on layer 1 of a network ([784, 80 rows of a panel,
…], m = 100), inputs gathered in a random order from a 20,000-example array as in training:

* **forward**: z_j for 6 rows × 4 vectors of examples (24 running sums), the mini-batch's
  inputs packed transposed (``tiles.pack_inputs``: x_k of L examples in one vector, packing
  timed), w_jk broadcast;
  against ``tiles.forward_layer5`` (or ``forward_layer3``) over the same rows, as
  ``engine.first_layer_panel`` runs it.  The sums run over k in order, so z differs from the
  engine's in the last bits (printed).
* **gradient**: 8 rows × 3 vectors of ∂C/∂w_jk held in registers while all m examples add
  δ_j a_k, against ``tiles.accumulate_gradient5`` (or ``4``) passes as ``engine.gradient_rows``
  runs them.  Every sum is the same chain of fused multiply-adds in example order: the bits
  must be the engine's (checked before timing).

L (lanes) is loopnet.simd's: 512-bit vectors wherever the target has AVX-512 (an explicit
512-bit vector is one zmm register even where LLVM tunes its own vectoriser to 256 bits, as on
Intel's cores), 256-bit on AVX2 (where the 24 running sums spill).  profiles/README.md,
fifteenth and seventeenth rounds.
"""

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")     # before NumPy loads its BLAS: one thread, as the kernels

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from _machine import target_cpu_name  # noqa: E402
from loopnet import tiles  # noqa: E402
from loopnet.simd import VECTOR_BYTES  # noqa: E402

TARGET = target_cpu_name().lower()   # the CPU Numba compiles for
LANES = VECTOR_BYTES // 8      # float64 lanes of loopnet.simd's vectors


# ---------------------------------------------------------------- the ladders
@njit
def pack_only(xT, X, order, lo, m, reps):
    """The mini-batch's inputs packed transposed (tiles.pack_inputs), ``reps`` times."""
    for _ in range(reps):
        tiles.pack_inputs(xT, X, order, lo, lo + m, 0, X.shape[1])


@njit
def forward_outer(z, w, b, xT, m, reps):
    """z (examples × rows) of layer 1 by tiles.forward_outer from the packed inputs."""
    for _ in range(reps):
        tiles.forward_outer(z, 0, w, b, xT, m)


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
def gradient_blocked(g, gb, delta, X, order, lo, m, reps):
    """g += Σ_x δ^x a^x by tiles.gradient_outer (8 rows × 3 vectors of columns per tile)."""
    for _ in range(reps):
        tiles.gradient_outer(g, gb, delta, 0, X, order, lo, m)


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
                                           X[order[lo + t + 3]], X[order[lo + t + 4]],
                                           False)
        else:
            for t in range(0, m - m % 4, 4):
                tiles.accumulate_gradient4(g, gb, delta[t, :n], delta[t + 1, :n], delta[t + 2, :n],
                                           delta[t + 3, :n], X[order[lo + t]], X[order[lo + t + 1]],
                                           X[order[lo + t + 2]], X[order[lo + t + 3]], False)


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
    m_fwd = m                                     # forward_outer takes any m (padded lanes)
    m_grad = m - m % tiles.GRADIENT_EXAMPLES      # whole passes of the engine's gradient tile
    rng = np.random.default_rng(0)
    X = rng.random((20_000, n_in))
    order = rng.permutation(len(X))
    w = rng.standard_normal((rows, n_in)) / np.sqrt(n_in)
    b = np.zeros(rows)
    delta = rng.standard_normal((m + 1, max(args.units, rows)))
    print(f"one thread; {VECTOR_BYTES * 8}-bit vectors ({LANES} float64 lanes) for "
          f"{TARGET}; layer 1 rows {rows}, inputs {n_in}, m = {m}; "
          f"load {os.getloadavg()[0]:.1f}")

    # the gradient: the same bits as the engine's passes (both are the example-order sums)
    g1, g2 = np.zeros((rows, n_in)), np.zeros((rows, n_in))
    gb1, gb2 = np.zeros(rows), np.zeros(rows)
    gradient_engine(g1, gb1, delta, X, order, 0, m_grad, 1)
    gradient_blocked(g2, gb2, delta, X, order, 0, m_grad, 1)
    same = np.array_equal(g1, g2) and np.array_equal(gb1, gb2)
    print(f"gradient: register blocks give the engine's bits: {same}")
    if not same:
        sys.exit("the register-blocked gradient differs from the engine's: nothing timed")
    # the forward: within rounding of the matrix form
    xT = np.zeros((n_in, tiles.packed_width(m, 8)))
    z_outer, z_engine = np.zeros((m + 1, rows)), np.zeros((m, rows))
    tiles.pack_inputs(xT, X, order, 0, m, 0, n_in)
    forward_outer(z_outer, w, b, xT, m, 1)
    forward_engine(z_engine, w, b, X, order, 0, m, 1)
    want = X[order[:m]] @ w.T
    t_ex = m - m % tiles.TILE_EXAMPLES
    err = [np.abs(z_outer[:m] - want).max(), np.abs(z_engine[:t_ex] - want[:t_ex]).max()]
    print(f"forward: max |z − X wᵀ| outer {err[0]:.1e}, engine tile {err[1]:.1e}")

    flops_fwd = 2 * rows * n_in * m_fwd
    flops_grad = 2 * rows * n_in * m_grad
    reps = max(1, int(3e8 / flops_fwd))
    ladder = [
        ("forward, engine tile (tiles.forward_layer%d)" % tiles.TILE_EXAMPLES, flops_fwd,
         lambda lo: forward_engine(z_engine, w, b, X, order, lo, m_fwd, reps)),
        ("forward, outer product 6 × 4 vectors (tiles.forward_outer)", flops_fwd,
         lambda lo: forward_outer(z_outer, w, b, xT, m_fwd, reps)),
        ("gradient, engine passes (accumulate_gradient%d)" % tiles.GRADIENT_EXAMPLES, flops_grad,
         lambda lo: gradient_engine(g1, np.zeros(rows), delta, X, order, lo, m_grad, reps)),
        ("gradient, register blocks 8 × 3 vectors (tiles.gradient_outer)", flops_grad,
         lambda lo: gradient_blocked(g2, gb2, delta, X, order, lo, m_grad, reps)),
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
