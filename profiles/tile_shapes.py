"""Register-tile shapes and loop orders of the two hot kernels, on this machine, one thread.

``python profiles/tile_shapes.py [--rows 100] [--panel 20] [--inputs 784] [--m 120] [--reps 200]``

Layer 1 of W3 ([784, 100, 10], m = 120 here), panel by panel (``panel`` rows of w, the
engine's 128 KiB for 784 inputs) as the engine runs it (engine.first_layer_panel,
engine.gradient_rows), GFLOP/s (best and median of the rounds):

* forward, z^1 = w x + b for the mini-batch's examples: the engine's two tiles,
  ``tiles.forward_layer3`` (4 rows × 3 examples, twelve running sums in one pass; 16-register
  targets) and ``tiles.forward_layer5`` (4 × 5, twenty sums; 32-register targets), against
  the shapes they replaced,
  written out below: 4 rows × 4 examples as two passes of 2 rows × 4 examples (eight sums;
  AVX2 and SSE2 targets) or as one pass of sixteen sums (AVX-512 targets, 32 registers).
  Whether they give the same bits is printed before timing (they do on AVX2).
* gradient, Σ_x δ_j a_k over the examples: the engine's order (``tiles.accumulate_gradient4``
  per tile of four examples, or ``accumulate_gradient5`` of five, the panel's whole rows each
  time) against k-blocked orders
  (a block of every row's columns stays in L1 while all the examples pass), the same sums
  in the same order (checked: identical bits).

NumPy's gathered matmul of the same rows (``X[order] @ w.T``, BLAS on one thread) is printed
for scale.
"""

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")     # before NumPy loads its BLAS: one thread, as the kernels

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from loopnet.tiles import (accumulate_gradient4, accumulate_gradient5, forward_layer3,  # noqa: E402
                           forward_layer5, outer_tile4)

SUMS = {"contract", "reassoc"}


@njit(fastmath=SUMS)
def dot_2x4(w0, w1, x0, x1, x2, x3):
    """The replaced shape's pass: 2 rows × 4 examples, eight running sums."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = w0.dtype.type(0)
    for k in range(w0.shape[0]):
        p0, p1, p2, p3 = x0[k], x1[k], x2[k], x3[k]
        v = w0[k]
        s00 += v * p0
        s01 += v * p1
        s02 += v * p2
        s03 += v * p3
        v = w1[k]
        s10 += v * p0
        s11 += v * p1
        s12 += v * p2
        s13 += v * p3
    return (s00, s01, s02, s03), (s10, s11, s12, s13)


@njit(fastmath=SUMS)
def dot_4x4(w0, w1, w2, w3, x0, x1, x2, x3):
    """The replaced shape on AVX-512 targets: 4 rows × 4 examples in one pass, sixteen sums
    (on 16-register targets they spill)."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = w0.dtype.type(0)
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = w0.dtype.type(0)
    for k in range(w0.shape[0]):
        p0, p1, p2, p3 = x0[k], x1[k], x2[k], x3[k]
        v = w0[k]
        s00 += v * p0
        s01 += v * p1
        s02 += v * p2
        s03 += v * p3
        v = w1[k]
        s10 += v * p0
        s11 += v * p1
        s12 += v * p2
        s13 += v * p3
        v = w2[k]
        s20 += v * p0
        s21 += v * p1
        s22 += v * p2
        s23 += v * p3
        v = w3[k]
        s30 += v * p0
        s31 += v * p1
        s32 += v * p2
        s33 += v * p3
    return ((s00, s01, s02, s03), (s10, s11, s12, s13), (s20, s21, s22, s23),
            (s30, s31, s32, s33))


@njit(fastmath=SUMS)
def forward_one_pass_4x4(Z, w, b, X, order, panel):
    """z^1 as forward_two_passes, each 4 × 4 tile in one pass (what AVX-512 targets ran)."""
    for j0 in range(0, w.shape[0], panel):
        for t in range(0, order.shape[0], 4):
            x0, x1, x2, x3 = X[order[t]], X[order[t + 1]], X[order[t + 2]], X[order[t + 3]]
            for j in range(j0, min(j0 + panel, w.shape[0]), 4):
                s = dot_4x4(w[j], w[j + 1], w[j + 2], w[j + 3], x0, x1, x2, x3)
                for r in range(4):
                    for q in range(4):
                        Z[t + q, j + r] = s[r][q] + b[j + r]


@njit(fastmath=SUMS)
def forward_two_passes(Z, w, b, X, order, panel):
    """z^1 of examples order[:] (m a multiple of 4, rows of 4), panel by panel, 4 × 4 tiles
    in two 2 × 4 passes, as tiles.forward_layer4 computed them before."""
    for j0 in range(0, w.shape[0], panel):
        for t in range(0, order.shape[0], 4):
            x0, x1, x2, x3 = X[order[t]], X[order[t + 1]], X[order[t + 2]], X[order[t + 3]]
            for j in range(j0, min(j0 + panel, w.shape[0]), 2):
                r0, r1 = dot_2x4(w[j], w[j + 1], x0, x1, x2, x3)
                for q in range(4):
                    Z[t + q, j] = r0[q] + b[j]
                    Z[t + q, j + 1] = r1[q] + b[j + 1]


@njit(fastmath=SUMS)
def forward_engine_tile(Z, w, b, X, order, panel):
    """z^1 of examples order[:] (m a multiple of 3), panel by panel, by tiles.forward_layer3."""
    for j0 in range(0, w.shape[0], panel):
        j1 = min(j0 + panel, w.shape[0])
        for t in range(0, order.shape[0], 3):
            forward_layer3(Z[t][j0:j1], Z[t + 1][j0:j1], Z[t + 2][j0:j1], w[j0:j1], b[j0:j1],
                           X[order[t]], X[order[t + 1]], X[order[t + 2]])


@njit(fastmath=SUMS)
def forward_wide_tile(Z, w, b, X, order, panel):
    """z^1 of examples order[:] (m a multiple of 5), panel by panel, by tiles.forward_layer5."""
    for j0 in range(0, w.shape[0], panel):
        j1 = min(j0 + panel, w.shape[0])
        for t in range(0, order.shape[0], 5):
            forward_layer5(Z[t][j0:j1], Z[t + 1][j0:j1], Z[t + 2][j0:j1], Z[t + 3][j0:j1],
                           Z[t + 4][j0:j1], w[j0:j1], b[j0:j1], X[order[t]], X[order[t + 1]],
                           X[order[t + 2]], X[order[t + 3]], X[order[t + 4]])


@njit(fastmath={"contract"})
def gradient_wide_order(G, gb, D, X, order, panel, chunk):
    """Σ_x δ_j a_k panel by panel by tiles.accumulate_gradient5, five examples at a time
    (``chunk`` unused)."""
    for j0 in range(0, G.shape[0], panel):
        j1 = min(j0 + panel, G.shape[0])
        for t in range(0, order.shape[0], 5):
            accumulate_gradient5(G[j0:j1], gb[j0:j1], D[t][j0:j1], D[t + 1][j0:j1],
                                 D[t + 2][j0:j1], D[t + 3][j0:j1], D[t + 4][j0:j1],
                                 X[order[t]], X[order[t + 1]], X[order[t + 2]],
                                 X[order[t + 3]], X[order[t + 4]], False)


@njit(fastmath={"contract"})
def gradient_engine_order(G, gb, D, X, order, panel, chunk):
    """Σ_x δ_j a_k panel by panel by tiles.accumulate_gradient4, four examples at a time
    (``chunk`` unused)."""
    for j0 in range(0, G.shape[0], panel):
        j1 = min(j0 + panel, G.shape[0])
        for t in range(0, order.shape[0], 4):
            accumulate_gradient4(G[j0:j1], gb[j0:j1], D[t][j0:j1], D[t + 1][j0:j1],
                                 D[t + 2][j0:j1], D[t + 3][j0:j1], X[order[t]],
                                 X[order[t + 1]], X[order[t + 2]], X[order[t + 3]], False)


@njit(fastmath={"contract"})
def gradient_k_blocked(G, gb, D, X, order, panel, chunk):
    """The same sums panel by panel, columns [c, c + chunk) of the panel's rows at a time,
    all examples passing."""
    n_in = X.shape[1]
    for j0 in range(0, G.shape[0], panel):
        j1 = min(j0 + panel, G.shape[0])
        for c in range(0, n_in, chunk):
            e = min(c + chunk, n_in)
            for t in range(0, order.shape[0], 4):
                a0, a1 = X[order[t]][c:e], X[order[t + 1]][c:e]
                a2, a3 = X[order[t + 2]][c:e], X[order[t + 3]][c:e]
                d0, d1, d2, d3 = D[t], D[t + 1], D[t + 2], D[t + 3]
                for j in range(j0, j1, 4):
                    outer_tile4(G[j][c:e], G[j + 1][c:e], G[j + 2][c:e], G[j + 3][c:e],
                               (d0[j], d1[j], d2[j], d3[j]),
                               (d0[j + 1], d1[j + 1], d2[j + 1], d3[j + 1]),
                               (d0[j + 2], d1[j + 2], d2[j + 2], d3[j + 2]),
                               (d0[j + 3], d1[j + 3], d2[j + 3], d3[j + 3]), a0, a1, a2, a3,
                               False)
        for t in range(0, order.shape[0], 4):       # BP3 as accumulate_gradient4 adds it
            for j in range(j0, j1):
                gb[j] = gb[j] + D[t][j] + D[t + 1][j] + D[t + 2][j] + D[t + 3][j]


@njit
def repeat_forward(f, reps, Z, w, b, X, orders, panel):
    for r in range(reps):
        f(Z, w, b, X, orders[r % orders.shape[0]], panel)


@njit
def repeat_gradient(f, reps, G, gb, D, X, orders, panel, chunk):
    for r in range(reps):
        G[:] = 0.0
        f(G, gb, D, X, orders[r % orders.shape[0]], panel, chunk)


def timed(case, reps):
    """Seconds for ``reps`` mini-batches of one case."""
    rep, f, data, extra = case
    start = time.perf_counter()
    rep(f, reps, *data, *extra)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100, help="rows of w (a multiple of 4)")
    p.add_argument("--panel", type=int, default=20, help="rows per L2 panel, a multiple of 4 (engine: 128 KiB)")
    p.add_argument("--inputs", type=int, default=784)
    p.add_argument("--m", type=int, default=120, help="examples (a multiple of 60)")
    p.add_argument("--reps", type=int, default=200, help="mini-batches per timing")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    rows, n_in, m, panel = args.rows, args.inputs, args.m, args.panel
    if min(rows, panel) < 4 or rows % 4 or panel % 4 or m < 60 or m % 60 or n_in < 1:
        p.error(f"--rows and --panel must be positive multiples of 4 (got {rows}, {panel}: the "
                f"passes take whole 4-row tiles), --m a positive multiple of 60 (got {m}: the "
                f"tiles' 3, 4 and 5 examples all divide it), --inputs positive (got {n_in}); "
                f"the kernels index unchecked")
    rng = np.random.default_rng(0)
    X = rng.random((50000, n_in))
    w, b = rng.standard_normal((rows, n_in)), rng.standard_normal(rows)
    D = rng.standard_normal((m, rows))
    orders = np.stack([rng.permutation(X.shape[0])[:m] for _ in range(200)])

    Z_two, Z_one, Z_three, Z_five = (np.empty((m, rows)) for _ in range(4))
    forward_two_passes(Z_two, w, b, X, orders[0], panel)
    forward_one_pass_4x4(Z_one, w, b, X, orders[0], panel)
    forward_engine_tile(Z_three, w, b, X, orders[0], panel)
    forward_wide_tile(Z_five, w, b, X, orders[0], panel)
    print(f"forward: the 4 × 3 tile gives the same bits as two 2 × 4 passes: "
          f"{np.array_equal(Z_two, Z_three)}, as one 4 × 4 pass: {np.array_equal(Z_one, Z_three)}, "
          f"as the 4 × 5 tile: {np.array_equal(Z_five, Z_three)}")
    G, gb = np.zeros((rows, n_in)), np.zeros(rows)
    gradient_engine_order(G, gb, D, X, orders[0], panel, 0)
    G5, gb5 = np.zeros((rows, n_in)), np.zeros(rows)
    gradient_wide_order(G5, gb5, D, X, orders[0], panel, 0)
    assert np.array_equal(G, G5) and np.array_equal(gb, gb5), "5-example gradient tiles"
    chunks = [c for c in (128, 256) if c < n_in]
    for chunk in chunks:
        Gc, gbc = np.zeros((rows, n_in)), np.zeros(rows)
        gradient_k_blocked(Gc, gbc, D, X, orders[0], panel, chunk)
        assert np.array_equal(G, Gc) and np.array_equal(gb, gbc), chunk

    forward = (Z_three, w, b, X, orders)
    gradient = (G, gb, D, X, orders)
    cases = {"forward, two 2 × 4 passes (before, AVX2)":
             (repeat_forward, forward_two_passes, forward, (panel,)),
             "forward, one 4 × 4 pass (before, AVX-512)":
             (repeat_forward, forward_one_pass_4x4, forward, (panel,)),
             "forward, tiles.forward_layer3 (4 × 3)":
             (repeat_forward, forward_engine_tile, forward, (panel,)),
             "forward, tiles.forward_layer5 (4 × 5)":
             (repeat_forward, forward_wide_tile, forward, (panel,)),
             "gradient, engine order (4 examples × whole rows)":
             (repeat_gradient, gradient_engine_order, gradient, (panel, 0)),
             "gradient, engine order (5 examples × whole rows)":
             (repeat_gradient, gradient_wide_order, gradient, (panel, 0))}
    for c in chunks:
        cases[f"gradient, k-blocked by {c} columns"] = (repeat_gradient, gradient_k_blocked,
                                                       gradient, (panel, c))
    for case in cases.values():      # compile before timing
        timed(case, 1)
    flops = 2 * rows * n_in * m * args.reps
    rates = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            rates[name].append(flops / timed(case, args.reps) / 1e9)
    blas = []
    for r in range(args.reps):
        start = time.perf_counter()
        X[orders[r % len(orders)]] @ w.T
        blas.append(time.perf_counter() - start)
    print(f"one thread; w {rows} × {n_in} in panels of {panel} rows, m = {m}; "
          f"load {os.getloadavg()[0]:.1f}")
    for name, v in rates.items():
        print(f"  {name:52s} {max(v):6.1f} GFLOP/s best, {sorted(v)[len(v) // 2]:6.1f} median")
    print(f"  {'NumPy X[order] @ w.T (gather + BLAS), for scale':52s} "
          f"{2 * rows * n_in * m / min(blas) / 1e9:6.1f} GFLOP/s best")


if __name__ == "__main__":
    main()
