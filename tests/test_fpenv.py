"""Subnormals flushed to zero (loopnet.fpenv, Net(subnormals=...)): what it changes, by hand
and against the naive loop run flushed; that every thread count gives the same bits; that the
threads are left as they were found."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import naive
from loopnet import Net, activations, costs, engine, fpenv, optim, tiles
from loopnet.io import load, save

FLUSHES = fpenv.X86 and not numba.config.DISABLE_JIT
needs_flush = pytest.mark.skipif(not FLUSHES, reason="subnormals are flushed by compiled code "
                                                     "on x86-64 only")
TINY32 = np.finfo(np.float32).tiny     # 1.18e-38, float32's smallest normal number


def test_float32_flushes_by_default_and_float64_keeps():
    assert Net([2, 2], dtype="float32").subnormals == "flush"
    assert Net([2, 2], dtype="float64").subnormals == "keep"
    assert Net([2, 2], dtype="float32", subnormals="keep").subnormals == "keep"
    with pytest.raises(ValueError, match="unknown subnormals 'zero'; choose one of flush, keep"):
        Net([2, 2], subnormals="zero")


def test_a_choice_other_than_the_default_is_saved_with_the_model(tmp_path):
    for dtype, choice in (("float32", "keep"), ("float64", "flush"), ("float32", "flush")):
        net = Net([3, 2], dtype=dtype, subnormals=choice)
        save(net, tmp_path / f"{dtype}-{choice}.npz")
        assert load(tmp_path / f"{dtype}-{choice}.npz").subnormals == choice
    assert "subnormals" not in Net([3, 2], dtype="float32").config     # the default: not written


@needs_flush
@pytest.mark.parametrize("choice", ["flush", "keep"])
def test_one_saturated_sigmoid_worked_by_hand(choice):
    """w = −88, b = 0, x = 1: a = σ(−88) = 1/(1 + e^88) = 6.05e-39, subnormal in float32.
    Kept, it is that number (to float32's precision there, 2^-149 ≈ 1.4e-45); flushed, 0."""
    net = Net([1, 1], dtype="float32", subnormals=choice)
    net.weights[0] = [[-88.0]]
    net.biases[0] = [0.0]
    a = float(net.predict(np.ones((1, 1), np.float32))[0, 0])
    if choice == "flush":
        assert a == 0.0
    else:
        assert 0.0 < a < TINY32 and abs(a - 1.0 / (1.0 + np.exp(88.0))) <= 2.0 ** -149


def saturated_run(flush, threads):
    """A float32 net whose output sigmoids sit near e^-90 (biases −90 ± 2), two mini-batch
    runs of the engine's training from one start: a^L and δ^L = (a − y) σ'(z) are subnormal
    unless flushed.  Returns the parameters, outputs and costs after, and the run's inputs
    (with the parameters it started from)."""
    sizes = [6, 9, 3]
    rng = np.random.default_rng(5)
    arch = engine.make_arch(sizes, activations.SIGMOID, activations.SIGMOID, costs.QUADRATIC,
                            flush=flush)
    params = (rng.standard_normal(int(arch.p_off[-1])) * 0.5).astype(np.float32)
    out_bias = params[int(arch.p_off[-1]) - sizes[-1]:]
    out_bias[:] = -90.0 + rng.uniform(-2.0, 2.0, sizes[-1])
    X = rng.standard_normal((37, sizes[0])).astype(np.float32)
    Y = rng.uniform(0.1, 0.9, (37, sizes[-1])).astype(np.float32)
    order = rng.permutation(37)
    hyper = optim.make_hyper("sgd", 3.0, 0.0, 37, 0.0, 0.9, 0.999, 1e-8)
    start = params.copy()
    state = optim.make_state(params.size, np.float32)
    work = engine.make_work(arch, 8, np.float32)
    out = np.full((37, sizes[-1]), np.nan, np.float32)
    cost = np.full(37, np.nan)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for first, last in ((0, 2), (2, 5)):
            engine.run_batches(params, state, work, X, Y, order, 8, first, last, arch, hyper,
                               engine.TRAIN, out, cost)
    finally:
        numba.set_num_threads(old)
    return dict(params=params, out=out, costs=cost), (sizes, X, Y, order, hyper, start)


@needs_flush
def test_flushing_changes_the_saturated_run_and_leaves_no_subnormal():
    kept, _ = saturated_run(False, 1)
    flushed, _ = saturated_run(True, 1)
    assert np.count_nonzero((kept["out"] != 0) & (np.abs(kept["out"]) < TINY32)) > 0
    assert not np.array_equal(kept["out"], flushed["out"])
    for name in ("params", "out"):
        v = flushed[name]
        assert np.count_nonzero((v != 0) & (np.abs(v) < TINY32)) == 0, name


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one thread only")
def test_flushed_runs_are_bit_identical_for_any_thread_count():
    one, _ = saturated_run(True, 1)
    for threads in range(2, min(4, numba.config.NUMBA_NUM_THREADS) + 1):
        many, _ = saturated_run(True, threads)
        for name in one:
            assert np.array_equal(one[name], many[name], equal_nan=True), (name, threads)


@needs_flush
def test_flushed_engine_equals_the_naive_loop_run_flushed():
    """The naive loop of the textbook kernels (z^1 by the engine's fast twin), run inside
    ``fpenv.flushed()`` in this thread, gives the engine's flushed run bit for bit."""
    got, (sizes, X, Y, order, hyper, params) = saturated_run(True,
                                                             numba.config.NUMBA_NUM_THREADS)
    state = optim.make_state(params.size, np.float32)
    out = np.full((37, sizes[-1]), np.nan, np.float32)
    cost = np.full(37, np.nan)
    with fpenv.flushed():
        naive.run_batches(params, state, X, Y, order, 8, 0, 5, sizes, activations.SIGMOID,
                          activations.SIGMOID, costs.QUADRATIC, hyper, engine.TRAIN, out, cost,
                          np.zeros_like(params), first_layer=tiles.forward_tile)
    for name, want in (("params", params), ("out", out), ("costs", cost)):
        assert np.array_equal(got[name], want), name


@needs_flush
@pytest.mark.parametrize("flush", [False, True])
def test_the_callers_own_flush_setting_changes_nothing(flush):
    """A caller whose thread already flushes (as torch.set_flush_denormal(True) leaves it) gets
    the engine's numbers of a clean thread, for "keep" as for "flush"; its setting is back after."""
    clean, _ = saturated_run(flush, 1)
    with fpenv.flushed():
        before = fpenv.read() & ~0x3f               # (less the sticky exception flags)
        dirty, _ = saturated_run(flush, 1)
        assert fpenv.read() & ~0x3f == before
    for name in clean:
        assert np.array_equal(clean[name], dirty[name], equal_nan=True), name


@needs_flush
def test_every_thread_is_left_as_it_was_found():
    """In a fresh process whose first parallel region is a flushed fit (Numba's pool threads
    are created then, and a new thread inherits its creator's MXCSR), afterwards every pool
    thread and the main thread have the MXCSR they had before."""
    script = textwrap.dedent("""
        import numpy as np
        from numba import njit, prange
        from loopnet import Net, fpenv

        @njit
        def here():
            return fpenv.read() & ~0x3f            # without the sticky exception flags

        @njit(parallel=True)
        def pool(n):
            out = np.zeros(n, np.int64)
            for i in prange(n):
                out[i] = fpenv.read() & ~0x3f
            return out

        before = here()
        rng = np.random.default_rng(0)
        net = Net([20, 300, 3], dtype="float32", seed=0)
        net.fit(rng.random((200, 20), np.float32), rng.integers(0, 3, 200), epochs=1,
                batch_size=40)
        values = set(pool(64).tolist()) | {here()}
        print("FLUSH" if any(v & fpenv.FLUSH_BITS for v in values) else "CLEAN", before, values)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ), timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("CLEAN"), run.stdout


def test_flushed_context_restores_this_thread():
    before = fpenv.read() if FLUSHES else -1
    with fpenv.flushed() as ctx:
        if FLUSHES:
            assert fpenv.read() & fpenv.FLUSH_BITS == fpenv.FLUSH_BITS
            assert ctx.old == before
    if FLUSHES:
        assert fpenv.read() & ~0x3f == before & ~0x3f
