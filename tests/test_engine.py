"""loopnet.engine against the naive serial loop of the textbook kernels (tests/naive.py),
and each fast twin (loopnet.tiles) against its textbook kernel.

What is equal and what is within which bound:

* **bit for bit**, every job: the engine and the naive loop whose z^1 comes from the same
  fast twin (``first_layer=tiles.forward_tile``).  Compared: the parameters and the
  optimizer state after training, the gradient sum Σ_x ∇C_x, every output a^L and cost
  C_x, for several mini-batches, a ragged last one, batch sizes that leave phantom rows
  in the forward and gradient tiles (3 and 4 examples, or 5 on 32-register targets;
  ``LOOPNET_TILES`` runs the other pair, as .ci/run does; the 32-register pair forced onto
  a 16-register target agrees within the bound below instead, see TWIN_BITS), 1 and 3 hidden
  layers, every optimizer, float64 and float32, and the epoch run in two calls as
  ``fit`` runs it.
* **bit for bit**, a network without hidden layer against the plain naive loop (layer 1
  then goes through kernels.forward_layer itself).
* **within a bound**, the engine against the plain naive loop (z^1 by
  kernels.forward_layer): the two split z^1's sums Σ_k w_jk x_k into SIMD partial sums
  differently, and every later quantity inherits that.  For each compared array,
  max|engine − naive| ≤ REORDER_ULPS · fan-in · ε · max|naive| (ε of the dtype, fan-in =
  n_0 the inputs of layer 1), REORDER_ULPS = 2.  Measured (every job, optimizer, batch
  size 5 and 6, the nets below): at most 0.40 of that bound (float32, 1-hidden-wide,
  outputs after momentum training), at most 0.08 in float64; a missing 1/m or a lost
  example is > 10⁶ times the bound (test_bound_catches_a_missing_one_over_m).
* tiles.accumulate_gradient4 (5) is four (five) kernels.accumulate_gradient calls bit for
  bit (with ``fresh``, on arrays zeroed first); tiles.forward_layer3 (5) is kernels.forward_layer within fan-in · ε relative (its
  dot products differ only in how the sum is split).
"""

import numba
import numpy as np
import pytest

import loopnet
import naive
from loopnet import _jit, activations, costs, engine, kernels, optim, tiles

N = 23
REORDER_ULPS = 2   # ulps per term of z^1's sum (× fan-in): see the module docstring

# (sizes, hidden activation, output, cost)
NETS = {
    "0-hidden": ([9, 3], "sigmoid", "softmax", "log_likelihood"),
    "1-hidden": ([9, 7, 3], "sigmoid", "sigmoid", "quadratic"),
    "1-hidden-wide": ([9, 261, 4], "tanh", "softmax", "log_likelihood"),   # > 64 tiles
    # several panels of rows of w^1 (A1, B) per block, in either dtype, on 1 or 2 threads:
    # run with panels of TEST_PANEL bytes (test_the_panel_net_has_several_panels_per_block)
    "1-hidden-panels": ([600, 70, 5], "sigmoid", "sigmoid", "quadratic"),
    "3-hidden": ([11, 13, 6, 5, 4], "relu", "identity", "mse"),
    # wide enough for tiles.forward_outer, with EXAMPLES_OUTER examples: mini-batches of 40
    # (outer-product tiles where the target runs them) and a last one of 20 (dot tiles)
    # (67 inputs: whole 3-vector column blocks, a single vector and 3 columns left over in
    # tiles.gradient_outer, in either dtype; 262 rows: 6 left to the dot tiles)
    "1-hidden-outer": ([67, 262, 4], "sigmoid", "sigmoid", "quadratic"),
    # narrower: the dot tiles' forward, the outer-product gradient (blocks of >= 32 examples)
    "1-hidden-outer-gradient": ([67, 70, 4], "tanh", "softmax", "log_likelihood"),
}
EXAMPLES = {"1-hidden-outer": 101, "1-hidden-outer-gradient": 101}
OPTIMIZERS = {
    "sgd": dict(optimizer="sgd", eta=0.5, lmbda=0.0, momentum=0.0),
    "momentum-l2": dict(optimizer="sgd", eta=0.3, lmbda=1.0, momentum=0.6),
    "adam": dict(optimizer="adam", eta=0.01, lmbda=0.5, momentum=0.0),
}


#: Bytes of w per panel for the "-panels" nets, whatever the machine's L2 gives the others.
TEST_PANEL = 40 * 1024


def setup(net, dtype, seed=0):
    sizes, act, out, cost = NETS[net]
    rng = np.random.default_rng(seed)
    arch = engine.make_arch(sizes, activations.code(act), activations.code(out), costs.code(cost),
                            panel=TEST_PANEL if net.endswith("-panels") else None)
    params = (rng.standard_normal(int(arch.p_off[-1])) * 0.5).astype(dtype)
    n = EXAMPLES.get(net, N)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if out == "softmax":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    else:
        Y = rng.uniform(0.1, 0.9, (n, sizes[-1])).astype(dtype)
    order = rng.permutation(n)[:n - 1]   # a subset, in shuffled order
    codes = (activations.code(act), activations.code(out), costs.code(cost))
    return sizes, codes, arch, params, X, Y, order


def run_pair(net, dtype, job, batch_size, opt="sgd", first_layer=kernels.forward_layer,
             with_outputs=True, rules=None):
    """The engine (the epoch in two calls, as fit makes them) and the naive loop from the
    same start; returns {name: (engine array, naive array)}."""
    sizes, codes, arch, params, X, Y, order = setup(net, dtype)
    o = OPTIMIZERS[opt]
    hyper = optim.make_hyper(o["optimizer"], o["eta"], o["lmbda"], N, o["momentum"],
                             0.9, 0.999, 1e-8)
    n_batches = -(-len(order) // batch_size)
    rows = len(order) if with_outputs else 0
    res = {}
    for who in ("engine", "naive"):
        if rules is not None:   # per-example rules, with their own norms output
            norms = np.full((len(order), len(sizes) - 1), np.nan)
            hyper = hyper._replace(ex=rules(norms, len(sizes) - 1))
        p = params.copy()
        state = optim.make_state(p.size, dtype)
        out = np.full((rows, sizes[-1]), np.nan, dtype)
        cst = np.full(rows, np.nan)
        if who == "engine":
            work = engine.make_work(arch, batch_size, dtype)
            for first, last in ((0, 2), (2, n_batches)):
                engine.run_batches(p, state, work, X, Y, order, batch_size, first, last, arch,
                                   hyper, job, out, cst)
            grad = work.grad
        else:
            grad = np.zeros_like(p)
            naive.run_batches(p, state, X, Y, order, batch_size, 0, n_batches, sizes, *codes,
                              hyper, job, out, cst, grad, first_layer=first_layer)
        res[who] = dict(params=p, velocity=state.velocity, m=state.m, v=state.v, t=state.t,
                        out=out, costs=cst)
        if job == engine.GRADIENT:
            res[who]["grad"] = grad
        if rules is not None:
            res[who]["norms"] = norms
    return {k: (res["engine"][k], res["naive"][k]) for k in res["engine"]}


def assert_bit_equal(pairs):
    for name, (got, want) in pairs.items():
        assert got.dtype == want.dtype, name
        assert np.array_equal(got, want), f"{name}: max |diff| {np.max(np.abs(got - want))}"


#: Whether the engine's inlined twin of tiles.forward_tile gives the bits of the tile compiled
#: alone (which the naive loop calls).  It does wherever the target runs its own tile pair.  The
#: 32-register pair forced onto a 16-register target (LOOPNET_TILES=wide on AVX2, as .ci/run
#: does there; never a default) does not: LLVM compiles its reassociated sums one way inlined in
#: the engine and another alone (found when CI first ran that stage on a Zen 3, 2026-12-02; not
#: root-caused; profiles/README's twelfth round saw that pair change bits there too).  The two
#: then agree within the plain naive loop's bound, which is what is checked.
TWIN_BITS = not (tiles.WIDE_TILES and _jit.vector_registers() < 32)


def assert_twin_equal(pairs, net, dtype):
    """Engine against the naive loop with the same first-layer twin: bit for bit, or within
    :func:`bound` where the tiles are forced onto a target they were not made for (TWIN_BITS)."""
    if TWIN_BITS:
        assert_bit_equal(pairs)
    else:
        assert_within_bound(pairs, net, dtype)


def assert_within_bound(pairs, net, dtype, label=""):
    """Engine against the naive loop within :func:`bound`; the step counter ``t`` exactly."""
    for name, (got, want) in pairs.items():
        assert got.dtype == want.dtype, (label, name)
        if name == "t":
            assert np.array_equal(got, want), (label, name)
            continue
        assert rel_diff(got, want) <= bound(net, dtype), (label, name)


def rel_diff(got, want):
    """max|got − want| / max|want|, in float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    return float(np.max(np.abs(got - want)) / scale) if scale > 0 else 0.0


def bound(net, dtype):
    return REORDER_ULPS * NETS[net][0][0] * np.finfo(dtype).eps


JOBS = {"train": engine.TRAIN, "gradient": engine.GRADIENT, "predict": engine.PREDICT}
DTYPES = {"float64": np.float64, "float32": np.float32}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("net", ["1-hidden", "1-hidden-wide", "1-hidden-panels", "3-hidden"])
@pytest.mark.parametrize("batch_size", [5, 6])   # 5: of 5, not 3 or 4; 6: of 3, not 4 or 5;
# 22 examples: a ragged last mini-batch
def test_train_equals_naive_loop_with_the_same_first_layer_twin(net, opt, dtype, batch_size):
    assert_twin_equal(run_pair(net, DTYPES[dtype], engine.TRAIN, batch_size, opt,
                               first_layer=tiles.forward_tile), net, DTYPES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("job", ["gradient", "predict"])
@pytest.mark.parametrize("net", ["1-hidden", "1-hidden-wide", "1-hidden-panels", "3-hidden"])
def test_gradient_and_predict_equal_naive_loop_with_the_same_first_layer_twin(net, job, dtype):
    assert_twin_equal(run_pair(net, DTYPES[dtype], JOBS[job], 7,
                               first_layer=tiles.forward_tile), net, DTYPES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_no_hidden_layer_equals_plain_naive_loop(job, opt, dtype):
    assert_bit_equal(run_pair("0-hidden", DTYPES[dtype], JOBS[job], 6, opt))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("net", ["1-hidden", "1-hidden-wide", "3-hidden"])
def test_plain_naive_loop_within_bound(net, job, dtype):
    """Against the textbook forward_layer for z^1: within REORDER_ULPS · fan-in · ε."""
    for opt in OPTIMIZERS if job == "train" else ["sgd"]:
        assert_within_bound(run_pair(net, DTYPES[dtype], JOBS[job], 5, opt), net, DTYPES[dtype],
                            opt)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("net", ["1-hidden-outer", "1-hidden-outer-gradient"])
def test_outer_product_first_layer_equals_naive_loop(net, job, opt, dtype):
    """Blocks of 40 examples through 262 neurons: tiles.forward_outer where the target runs it
    (each z^1 one chain of FMAs, tiles.forward_chain in the naive loop), the last block of 20
    by the dot tiles; the inputs packed in phase PACK, also for the next mini-batch's A1
    inside phase B; layer 1's gradient by tiles.gradient_outer (also through 70 neurons,
    whose forward stays on the dot tiles).  On a target without them, both sides take the
    dot tiles."""
    if job == "train":
        assert_twin_equal(run_pair(net, DTYPES[dtype], JOBS[job], 40, opt,
                                   first_layer=tiles.forward_tile), net, DTYPES[dtype])
    elif opt == "sgd":
        assert_twin_equal(run_pair(net, DTYPES[dtype], JOBS[job], 40,
                                   first_layer=tiles.forward_tile), net, DTYPES[dtype])


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="explicit vectors need compiled code")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(262, 20, 40), (7, 33, 1), (6, 784, 100), (13, 5, 17)])
def test_forward_outer_equals_forward_chain(shape, dtype):
    """tiles.forward_outer (explicit vectors: whatever the target, LLVM lowers them) gives each
    example's z^1 bit for bit as tiles.forward_chain does, one example at a time: whole
    tiles, remainder vectors and the last tile's repeated rows; and within the reordering
    bound of the matrix form."""
    n_rows, n_in, m = shape
    dt = DTYPES[dtype]
    rng = np.random.default_rng(n_rows)
    w = rng.standard_normal((n_rows, n_in)).astype(dt)
    b = rng.standard_normal(n_rows).astype(dt)
    X = rng.standard_normal((m + 9, n_in)).astype(dt)
    order = rng.permutation(m + 9)
    width = tiles.packed_width(m, np.dtype(dt).itemsize)
    xT = np.full((n_in, width), np.nan, dt)
    tiles.pack_inputs(xT, X, order, 3, 3 + m, 0, n_in)
    z = np.full((m + 1, n_rows + 5), np.nan, dt)
    tiles.forward_outer(z, 2, w, b, xT, m)
    for e in range(m):
        want = np.empty(n_rows, dt)
        tiles.forward_chain(want, w, b, X[order[3 + e]])
        assert np.array_equal(z[e, 2:2 + n_rows], want)
    assert np.all(np.isnan(z[m])) and np.all(np.isnan(z[:, :2])) and np.all(np.isnan(z[:, 2 + n_rows:]))
    matrix = X[order[3:3 + m]].astype(np.float64) @ w.T.astype(np.float64) + b
    assert rel_diff(z[:m, 2:2 + n_rows], matrix) <= REORDER_ULPS * n_in * np.finfo(dt).eps


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="explicit vectors need compiled code")
@pytest.mark.parametrize("dtypes", [("float64", "float64"), ("float32", "float32"),
                                    ("float64", "float32")])
@pytest.mark.parametrize("shape", [(21, 67, 9), (8, 48, 1), (16, 7, 30)])
def test_gradient_outer_equals_accumulate_gradient_per_example(shape, dtypes):
    """tiles.gradient_outer (whole 8-row tiles; 3-vector and 1-vector column blocks, single
    columns) against m calls of the textbook kernels.accumulate_gradient in example order,
    bit for bit, from a nonzero start; rows past the last whole tile untouched; float32
    inputs under float64 weights widened exactly."""
    n_rows, n_in, m = shape
    dt, xdt = DTYPES[dtypes[0]], DTYPES[dtypes[1]]
    rng = np.random.default_rng(n_in)
    X = rng.standard_normal((m + 5, n_in)).astype(xdt)
    order = rng.permutation(m + 5)
    delta = rng.standard_normal((m + 1, n_rows + 9)).astype(dt)
    g0 = rng.standard_normal((n_rows, n_in)).astype(dt)
    b0 = rng.standard_normal(n_rows).astype(dt)
    got_w, got_b = g0.copy(), b0.copy()
    tiles.gradient_outer(got_w, got_b, delta, 3, X, order, 2, m)
    want_w, want_b = g0.copy(), b0.copy()
    for x in range(m):
        kernels.accumulate_gradient(want_w, want_b, delta[x, 3:3 + n_rows].copy(),
                                    X[order[2 + x]].astype(dt))
    whole = n_rows - n_rows % tiles.GRADIENT_ROWS
    assert np.array_equal(got_w[:whole], want_w[:whole])
    assert np.array_equal(got_b[:whole], want_b[:whole])
    assert np.array_equal(got_w[whole:], g0[whole:]) and np.array_equal(got_b[whole:], b0[whole:])


def test_bound_catches_a_missing_one_over_m():
    """The bound is far tighter than the errors it must catch: an update without 1/m
    (η Σ_x instead of η/m Σ_x) or a lost example lands far outside it."""
    sizes, codes, arch, params, X, Y, order = setup("1-hidden", np.float64)
    hyper = optim.make_hyper("sgd", 0.5, 0.0, N, 0.0, 0.9, 0.999, 1e-8)
    empty_out, empty_costs = np.empty((0, 3)), np.empty(0)
    want = params.copy()
    naive.run_batches(want, optim.make_state(want.size, np.float64), X, Y, order, 5, 0, 5,
                      sizes, *codes, hyper, engine.TRAIN, empty_out, empty_costs, None)
    wrong_m = params.copy()   # 1/m with m = 1: the gradient sum taken for the mean
    for bt in range(5):
        sub = order[bt * 5:(bt + 1) * 5]
        g = np.zeros_like(wrong_m)
        naive.run_batches(wrong_m.copy(), optim.make_state(wrong_m.size, np.float64), X, Y, sub,
                          len(sub), 0, 1, sizes, *codes, hyper, engine.GRADIENT, empty_out,
                          empty_costs, g)
        optim.update_rows(wrong_m, optim.make_state(wrong_m.size, np.float64), g, 0, wrong_m.size,
                          0, 0, 1, hyper)
    lost = params.copy()      # the last example of every mini-batch dropped
    naive.run_batches(lost, optim.make_state(lost.size, np.float64), X, Y,
                      np.array([r for i, r in enumerate(order) if i % 5 != 4]), 4, 0, 5,
                      sizes, *codes, hyper, engine.TRAIN, empty_out, empty_costs, None)
    for bad in (wrong_m, lost):
        assert rel_diff(bad, want) > 1e6 * bound("1-hidden", np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_costs_come_from_the_training_forward_pass(dtype):
    """costs[p] and out[p] in TRAIN are C_x and a^L of example order[p] BEFORE its
    mini-batch's update: the first mini-batch's equal a prediction with the initial
    parameters, bit for bit."""
    dt = DTYPES[dtype]
    pairs = run_pair("1-hidden", dt, engine.TRAIN, 5, first_layer=tiles.forward_tile)
    sizes, codes, arch, params, X, Y, order = setup("1-hidden", dt)
    work = engine.make_work(arch, 5, dt)
    out, cst = np.empty((5, sizes[-1]), dt), np.empty(5)
    hyper = optim.make_hyper("sgd", 1.0, 0.0, 1, 0.0, 0.9, 0.999, 1e-8)
    engine.run_batches(params.copy(), optim.make_state(params.size, dt), work, X, Y, order[:5],
                       5, 0, 1, arch, hyper, engine.PREDICT, out, cst)
    got_out, got_costs = pairs["out"][0], pairs["costs"][0]
    assert np.array_equal(got_out[:5], out) and np.array_equal(got_costs[:5], cst)
    assert np.all(np.isfinite(got_costs)) and np.all(np.isfinite(got_out))
    # later mini-batches see updated parameters: their costs differ from the initial ones'
    engine.run_batches(params.copy(), optim.make_state(params.size, dt), work, X, Y, order[5:10],
                       5, 0, 1, arch, hyper, engine.PREDICT, out, cst)
    assert not np.array_equal(got_costs[5:10], cst)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_without_outputs_is_unchanged(dtype):
    """Asking for costs and outputs changes nothing else: same parameters bit for bit."""
    dt = DTYPES[dtype]
    with_out = run_pair("3-hidden", dt, engine.TRAIN, 6, "momentum-l2")
    without = run_pair("3-hidden", dt, engine.TRAIN, 6, "momentum-l2", with_outputs=False)
    assert np.array_equal(with_out["params"][0], without["params"][0])


# ------------------------------------------------------------- the twins, one by one
FORWARD_TWINS = {"forward_layer3": (tiles.forward_layer3, 3),
                 "forward_layer5": (tiles.forward_layer5, 5)}
GRADIENT_TWINS = {"accumulate_gradient4": (tiles.accumulate_gradient4, 4),
                  "accumulate_gradient5": (tiles.accumulate_gradient5, 5)}


@pytest.mark.parametrize("twin", FORWARD_TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_l", [1, 4, 5, 11])     # 4-row tiles and the rows left over
def test_forward_twin_is_forward_layer_within_fan_in_ulps(n_l, dtype, twin, rng):
    """z of each example as kernels.forward_layer computes it, within fan-in · ε relative
    to Σ_k |w_jk x_k| + |b_j| (the two split the sum over k into partial sums differently)."""
    dt = DTYPES[dtype]
    fan_in = 37
    fn, width = FORWARD_TWINS[twin]
    w, b = rng.standard_normal((n_l, fan_in)).astype(dt), rng.standard_normal(n_l).astype(dt)
    xs = [rng.standard_normal(fan_in).astype(dt) for _ in range(width)]
    zs = [np.empty(n_l, dt) for _ in range(width)]
    fn(*zs, w, b, *xs)
    for z_twin, x in zip(zs, xs):
        z, a = np.empty(n_l, dt), np.empty(n_l, dt)
        kernels.forward_layer(z, a, w, b, x, activations.IDENTITY)
        scale = np.abs(w.astype(float)) @ np.abs(x.astype(float)) + np.abs(b)
        assert np.all(np.abs(z_twin.astype(float) - z) <= fan_in * np.finfo(dt).eps * scale)


@pytest.mark.parametrize("twin", GRADIENT_TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fresh", [False, True])
def test_gradient_twin_is_that_many_accumulate_gradients_bit_for_bit(fresh, dtype, twin, rng):
    """The fused kernel adds the same terms in the same order: identical bits, also for
    the rows left over after the 4-row tiles (7 = 4 + 3).  ``fresh``: the bits of the same
    calls on arrays zeroed first, whatever the arrays held, −0.0 included: in rows 2 and 5
    every δ is −0.0 and every a positive, so each term is −0.0, and 0 + (−0.0) = +0.0 where
    a sum that left out the 0 would be −0.0."""
    dt = DTYPES[dtype]
    fn, width = GRADIENT_TWINS[twin]
    nabla_w, nabla_b = rng.standard_normal((7, 11)).astype(dt), rng.standard_normal(7).astype(dt)
    ds = [rng.standard_normal(7).astype(dt) for _ in range(width)]
    for d in ds:
        d[[2, 5]] = -0.0
    xs = [np.abs(rng.standard_normal(11)).astype(dt) + dt(0.5) for _ in range(width)]
    if fresh:
        want_w, want_b = np.zeros_like(nabla_w), np.zeros_like(nabla_b)
    else:
        want_w, want_b = nabla_w.copy(), nabla_b.copy()
    for d, x in zip(ds, xs):
        kernels.accumulate_gradient(want_w, want_b, d, x)
    fn(nabla_w, nabla_b, *ds, *xs, fresh)
    assert nabla_w.tobytes() == want_w.tobytes() and nabla_b.tobytes() == want_b.tobytes()
    if fresh:   # the rows this is about: every term −0.0, the zeroed sum +0.0
        assert np.all(want_w[[2, 5]] == 0) and not np.signbit(want_w[[2, 5]]).any()


@pytest.mark.parametrize("features, name, registers", [
    ("+avx2,+avx512f,+fma", None, 32), ("+avx2,-avx512f,+fma", None, 16),
    ("", "skylake-avx512", 32), ("", "znver4", 32), ("", "haswell", 16), ("", "znver3", 16),
    ("-prefer-256-bit", "sapphirerapids", 32), ("+fma", "haswell", 16),
    ("-avx512f", "skylake-avx512", 16)])
def test_vector_registers_are_those_of_the_target_numba_compiles_for(monkeypatch, features, name,
                                                                    registers):
    """NUMBA_CPU_FEATURES decides where it turns AVX-512 on or off; else NUMBA_CPU_NAME."""
    monkeypatch.setattr(numba.config, "CPU_FEATURES", features)
    monkeypatch.setattr(numba.config, "CPU_NAME", name)
    assert _jit.vector_registers() == registers


def test_without_features_the_hosts_decide_whatever_the_cpu_name(monkeypatch):
    """As Numba: NUMBA_CPU_NAME alone keeps the host's features (e.g. AVX-512 under 'haswell')."""
    monkeypatch.setattr(numba.config, "CPU_FEATURES", None)
    monkeypatch.setattr(numba.config, "CPU_NAME", "haswell")
    host = numba.core.codegen.get_host_cpu_features().split(",")
    assert _jit.vector_registers() == (32 if "+avx512f" in host else 16)


def test_loopnet_tiles_overrides_the_registers_and_refuses_other_values(monkeypatch):
    for value, wide in (("wide", True), ("narrow", False), (" Wide ", True)):
        monkeypatch.setenv("LOOPNET_TILES", value)
        assert _jit.wide_tiles() is wide
    monkeypatch.delenv("LOOPNET_TILES")
    assert _jit.wide_tiles() is (_jit.vector_registers() >= 32)
    monkeypatch.setenv("LOOPNET_TILES", "avx512")
    with pytest.raises(ValueError, match="LOOPNET_TILES must be 'wide' or 'narrow'"):
        _jit.wide_tiles()


def test_loopnet_forward_overrides_the_cpu_and_refuses_other_values(monkeypatch):
    for value, outer in (("outer", not numba.config.DISABLE_JIT), (" Dot ", False)):
        monkeypatch.setenv("LOOPNET_FORWARD", value)
        assert _jit.outer_forward() is outer
    monkeypatch.setenv("LOOPNET_FORWARD", "avx512")
    with pytest.raises(ValueError, match="LOOPNET_FORWARD must be 'outer' or 'dot'"):
        _jit.outer_forward()
    monkeypatch.delenv("LOOPNET_FORWARD")
    monkeypatch.setattr(numba.config, "CPU_NAME", "znver4")
    assert _jit.outer_forward() is False          # 512-bit FMAs in two halves: the dot tiles


def test_fast_twin_map_names_every_twin_training_runs():
    wide = tiles.WIDE_TILES
    assert tiles.FAST_TWIN == {
        kernels.forward_layer: tiles.forward_layer5 if wide else tiles.forward_layer3,
        kernels.accumulate_gradient: tiles.accumulate_gradient5 if wide else tiles.accumulate_gradient4}
    assert (tiles.TILE_EXAMPLES, tiles.GRADIENT_EXAMPLES) == ((5, 5) if wide else (3, 4))
    for twin in tiles.FAST_TWIN.values():
        assert "Otherwise identical" in twin.__doc__


@numba.njit
def block_rows(n, b, n_blocks):
    """engine.block_rows (a linked helper, which only compiled code can call) from Python."""
    return engine.block_rows(n, b, n_blocks)


@numba.njit
def panel_rows(n_in, itemsize, panel):
    """engine.panel_rows from Python (see block_rows)."""
    return engine.panel_rows(n_in, itemsize, panel)


@pytest.mark.parametrize("threads", [1, 2])
def test_one_block_per_thread_and_the_blocks_cover_each_layer(threads):
    """As many tasks as threads, at most the widest layer's tiles and BLOCKS; every layer's
    rows are covered once by whole 4-row tiles, for any number of blocks."""
    for sizes, most in (([784, 30, 10], 8), ([784, 100, 10], 25), ([3, 1], 1),
                        ([9, 257, 255, 10], 65), ([5, 4, 17, 2], 5)):
        arch = engine.make_arch(sizes, 0, 0, 0)
        assert engine.block_count(arch, threads) == min(most, threads)
        assert engine.block_count(arch, 1000) == min(most, engine.BLOCKS)
    for n in (1, 3, 4, 30, 100, 257):
        for n_blocks in (1, 2, 3, 8, 64):
            spans = [block_rows(n, b, n_blocks) for b in range(n_blocks)]
            assert [j for lo, hi in spans for j in range(lo, hi)] == list(range(n))
            assert all(lo % tiles.TILE_ROWS == 0 for lo, hi in spans if hi > lo)
            assert sum(hi > lo for lo, hi in spans) == min(n_blocks, -(-n // tiles.TILE_ROWS))


def test_panels_are_whole_tiles():
    """Panels hold whole tiles (at least one) and at most about PANEL_BYTES of w, so
    cutting a block into panels moves no tile."""
    for n_in in (1, 9, 600, 784, 100000):
        for itemsize in (4, 8):
            for panel in (TEST_PANEL, engine.PANEL_BYTES, _jit.PANEL_MIN, _jit.PANEL_MAX):
                rows = panel_rows(n_in, itemsize, panel)
                assert rows % tiles.TILE_ROWS == 0 and rows >= tiles.TILE_ROWS
                assert rows == tiles.TILE_ROWS or rows * n_in * itemsize <= panel


def test_the_panel_net_has_several_panels_per_block():
    """What "1-hidden-panels" is for: with TEST_PANEL, on 1 or 2 blocks, in either dtype, each
    block of layer 1 is cut into several panels (of more than one tile in float32)."""
    n_in, n_out = NETS["1-hidden-panels"][0][:2]
    arch = setup("1-hidden-panels", np.float64)[2]
    assert arch.panel == TEST_PANEL and engine.block_count(arch, 2) == 2
    for itemsize in (4, 8):
        rows = panel_rows(n_in, itemsize, TEST_PANEL)
        for n_blocks in (1, 2):
            lo, hi = block_rows(n_out, 0, n_blocks)
            assert hi - lo >= 2 * rows
    assert panel_rows(n_in, 4, TEST_PANEL) > tiles.TILE_ROWS


def test_a_net_runs_the_machines_panels():
    net = loopnet.Net([600, 70, 5], seed=0)
    assert net._arch.panel == engine.PANEL_BYTES == _jit.panel_bytes()


def fake_l2(tmp_path, size, shared):
    """A directory laid out as Linux's /sys/devices/system/cpu/cpu0/cache."""
    for i, (level, kind, sz, cpus) in enumerate([("1", "Data", "48K", "0"),
                                                 ("1", "Instruction", "32K", "0"),
                                                 ("2", "Unified", size, shared),
                                                 ("3", "Unified", "32768K", "0-15")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", sz),
                            ("shared_cpu_list", cpus)):
            (d / name).write_text(value + "\n")
    return str(tmp_path)


@pytest.mark.parametrize("size, shared, share", [("2048K", "0", 2 << 20), ("1024K", "0,8", 512 << 10),
                                                 ("4M", "0-3", 1 << 20), ("512K", "0", 512 << 10)])
def test_l2_share_is_the_reported_size_over_the_cpus_sharing_it(tmp_path, size, shared, share):
    assert _jit.l2_share_bytes(fake_l2(tmp_path, size, shared)) == share


def test_l2_share_is_unknown_without_the_directory(tmp_path):
    assert _jit.l2_share_bytes(str(tmp_path / "absent")) is None


@pytest.mark.parametrize("share, panel", [(2 << 20, 1 << 20), (1 << 20, 512 << 10), (8 << 20, 1 << 20),
                                          (64 << 10, 64 << 10), (None, 128 << 10)])
def test_panels_are_half_of_one_threads_l2_within_bounds(monkeypatch, share, panel):
    monkeypatch.delenv("LOOPNET_PANEL_KIB", raising=False)
    monkeypatch.setattr(_jit, "l2_share_bytes", lambda: share)
    assert _jit.panel_bytes() == panel


def test_loopnet_panel_kib_overrides_and_refuses_other_values(monkeypatch):
    monkeypatch.setenv("LOOPNET_PANEL_KIB", "256")
    assert _jit.panel_bytes() == 256 * 1024
    for bad in ("0", "-4", "1.5", "big"):
        monkeypatch.setenv("LOOPNET_PANEL_KIB", bad)
        with pytest.raises(ValueError, match="LOOPNET_PANEL_KIB must be a positive whole number"):
            _jit.panel_bytes()


def rules_of(kind):
    """Per-example rules (loopnet.optim.Rules) exercising one feature of issue 17."""
    w = np.random.default_rng(7).uniform(0.0, 2.0, N)

    def make(norms, n_layers):
        drop = [0.3] * (n_layers - 1) + [0.0]
        return {"norms": optim.make_rules(norms=norms),
                "clip-weights": optim.make_rules(w, 0.8, norms),
                "dp": optim.make_rules(None, 0.8, norms, 1.3, 12345),
                "dp-poisson-denominator": optim.make_rules(None, 0.8, norms, 1.3, 99, 4.5),
                "dropout": optim.make_rules(drop=drop, drop_seed=777, norms=norms)}[kind]
    return make


RULES = ["norms", "clip-weights", "dp", "dp-poisson-denominator", "dropout"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", RULES)
@pytest.mark.parametrize("net", ["1-hidden", "3-hidden"])
def test_per_example_rules_equal_naive_loop_with_the_same_first_layer_twin(net, kind, dtype):
    """Training under the per-example rules (weights, clipping, DP noise, dropout) and
    the squared norms they compute: the engine and the naive loop, bit for bit."""
    pairs = run_pair(net, DTYPES[dtype], engine.TRAIN, 6, "adam" if kind == "dp" else "sgd",
                     first_layer=tiles.forward_tile, rules=rules_of(kind))
    assert_twin_equal(pairs, net, DTYPES[dtype])
    assert np.isfinite(pairs["norms"][0]).all() and (pairs["norms"][0] > 0).any()


@pytest.mark.parametrize("job", ["train", "gradient"])
@pytest.mark.parametrize("net", ["1-hidden-panels", "3-hidden"])
def test_the_lean_engine_gives_the_bits_of_the_whole_one(net, job, monkeypatch):
    """What plain SGD runs — hyper.ex = None and a State without velocity and Adam moments,
    so that Numba compiles the engine without the per-example code and without the moments'
    updates — and the whole engine (make_rules()'s defaults, the whole state), which does
    nothing more here: the same bits.  (The two mixed engines are compiled from the same
    branches; not compiling them keeps the suite a minute shorter.)"""
    monkeypatch.setattr(optim, "_rules_made", False)    # else make_hyper passes the defaults
    sizes, codes, arch, params, X, Y, order = setup(net, np.float64)
    got = {}
    for lean in (True, False):
        hyper = optim.make_hyper("sgd", 0.5, 1.0, N, 0.0, 0.9, 0.999, 1e-8,
                                 None if lean else optim.make_rules())
        assert (hyper.ex is None) == lean
        p, state = params.copy(), optim.make_state(params.size, np.float64)
        if lean:
            state = optim.State(None, None, None, state.t)
        work = engine.make_work(arch, 4, np.float64)
        out, cst = np.full((len(order), sizes[-1]), np.nan), np.full(len(order), np.nan)
        engine.drive_batches(p, state, work, X, Y, order, 4, 0, -(-len(order) // 4), arch,
                             hyper, JOBS[job], out, cst, 2)
        got[lean] = (p, state.t, work.grad, out, cst)
    for a, b in zip(got[True], got[False]):
        assert np.array_equal(a, b)
    if job == "train":
        assert got[True][1][0] == -(-len(order) // 4)   # the step counter still counts


def test_engine_state_drops_the_moments_only_for_plain_sgd(monkeypatch):
    monkeypatch.setattr(optim, "_moments_used", False)
    state = optim.make_state(5, np.float64)
    sgd = optim.make_hyper("sgd", 0.5, 0.0, N, 0.0, 0.9, 0.999, 1e-8)
    lean = optim.engine_state(state, sgd)
    assert lean.velocity is None and lean.m is None and lean.v is None and lean.t is state.t
    momentum = optim.make_hyper("sgd", 0.5, 0.0, N, 0.6, 0.9, 0.999, 1e-8)
    assert optim.engine_state(state, momentum) is state
    assert optim.engine_state(state, sgd) is state     # once moments ran: one engine
    adam = optim.make_hyper("adam", 0.5, 0.0, N, 0.0, 0.9, 0.999, 1e-8)
    monkeypatch.setattr(optim, "_moments_used", False)
    assert optim.engine_state(state, adam) is state


@pytest.mark.parametrize("net", ["0-hidden", "3-hidden"])
def test_norms_job_equals_naive_loop_and_updates_nothing(net):
    twin = tiles.forward_tile if net != "0-hidden" else kernels.forward_layer
    pairs = run_pair(net, np.float64, engine.NORMS, 7, first_layer=twin,
                     rules=rules_of("norms"))
    assert_bit_equal(pairs)
    assert np.isfinite(pairs["norms"][0]).all()


@pytest.mark.parametrize("width", [3, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_tiles_give_the_dot_products_within_fan_in_ulps(dtype, width, rng):
    """dot_tile3's 4 rows × 3 examples, dot_tile5's 4 × 5 and dot_row's 3 sums, each within
    2·n·ε of the float64 product sum (n = 333: whole SIMD steps and a remainder)."""
    dt = DTYPES[dtype]
    n = 333
    w = rng.standard_normal((4, n)).astype(dt)
    x = rng.standard_normal((width, n)).astype(dt)
    want = w.astype(np.float64) @ x.astype(np.float64).T
    scale = np.abs(w).astype(np.float64) @ np.abs(x).astype(np.float64).T
    tile = np.array((tiles.dot_tile3 if width == 3 else tiles.dot_tile5)(*w, *x), np.float64)
    got = [tile]
    if width == 3:
        got.append(np.array([tiles.dot_row(w[r], *x) for r in range(4)], np.float64))
    for g in got:
        assert g.shape == (4, width)
        assert np.all(np.abs(g - want) <= REORDER_ULPS * n * np.finfo(dt).eps * scale)


@pytest.mark.parametrize("job", ["train", "gradient", "predict", "norms"])
@pytest.mark.parametrize("net", ["0-hidden", "1-hidden-panels", "3-hidden"])
def test_float32_inputs_under_float64_weights_equal_converting_them_first(net, job):
    """X in float32 under float64 parameters (what Net keeps for float32 data, and the
    Nielsen drop-ins for their float32 images): every product w_jk x_k is exact in
    float64, so every result is that of X.astype(float64), bit for bit; with dropout,
    clipping and norms on, so that every kernel that reads x is crossed."""
    sizes, codes, arch, params, X, Y, order = setup(net, np.float64)
    X32 = X.astype(np.float32)
    hyper = optim.make_hyper("sgd", 0.5, 0.1, N, 0.0, 0.9, 0.999, 1e-8)
    n_layers = len(sizes) - 1
    results = []
    for inputs in (X32, X32.astype(np.float64)):
        norms = np.full((len(order), n_layers), np.nan)
        drop = [0.3] * (n_layers - 1) + [0.0] if job != "norms" else []
        rules = optim.make_rules(None, 0.8, norms, drop=drop, drop_seed=5)
        p, state = params.copy(), optim.make_state(params.size, np.float64)
        out, cst = np.full((len(order), sizes[-1]), np.nan), np.full(len(order), np.nan)
        work = engine.make_work(arch, 6, np.float64)
        engine.run_batches(p, state, work, inputs, Y, order, 6, 0, -(-len(order) // 6), arch,
                           hyper._replace(ex=rules), JOBS.get(job, engine.NORMS), out, cst)
        results.append((p, out, cst, norms, work.grad))
    for got, want in zip(*results):
        assert np.array_equal(got, want, equal_nan=True)
    assert not np.array_equal(results[0][0], params) or job != "train"
