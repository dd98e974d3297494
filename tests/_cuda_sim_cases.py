"""Checks of loopnet.cuda run in a fresh interpreter under Numba's CUDA simulator.

tests/test_cuda_sim.py runs ``python tests/_cuda_sim_cases.py CASE`` with
NUMBA_ENABLE_CUDASIM=1 (the simulator must be chosen before numba.cuda is
imported, so it cannot run inside the pytest process).  Each case prints
"ok <what>" lines and exits non-zero (an AssertionError) on a mismatch.
Oracles: loopnet.reference (NumPy matrix form, no shared code) and the CPU
engine (loopnet.Net with the same seed).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    from conftest import HIDDEN, OUTPUT_COST, make_targets  # noqa: E402
except ImportError:   # a GPU machine without pytest: only case_gpu, which needs none of them
    HIDDEN = OUTPUT_COST = make_targets = None

import loopnet  # noqa: E402
from loopnet import reference as ref  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-5}
SMALL = dict(threads=4, blocks=2)   # few simulator threads: each is a Python thread


def close(got, want, dtype, what):
    """Assert max |got − want| ≤ TOL · max(1, |want|) elementwise."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} > {TOL[dtype]}"
    return err


def data(sizes, output, cost, m=6, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, sizes[0]))
    return X, make_targets(rng, m, sizes[-1], output, cost)


def flat(ws, bs):
    """Weights then biases, all layers, as one vector (the same order for both sides)."""
    return np.concatenate([w.ravel() for w in ws] + [b.ravel() for b in bs])


def case_pairs():
    """Every output/cost pair (hidden activations in turn): predict, cost, gradient vs reference."""
    from loopnet.cuda import to_device
    for dtype in ("float64", "float32"):
        for n, (output, cost) in enumerate(OUTPUT_COST):
            act = HIDDEN[n % len(HIDDEN)]
            sizes = [3, 4, 2] if n % 2 else [3, 4, 3, 2]
            net = loopnet.Net(sizes, activation=act, output=output, cost=cost, dtype=dtype,
                              seed=n)
            X, Y = data(sizes, output, cost)
            ws = [w.astype(np.float64) for w in net.weights]
            bs = [b.astype(np.float64) for b in net.biases]
            dev = to_device(net, **SMALL)
            close(dev.predict(X), ref.forward(ws, bs, X, act, output)[1][-1], dtype,
                  f"predict {act}/{output}/{cost} {dtype}")
            close(dev.cost(X, Y, lmbda=0.5), ref.cost(ws, bs, X, Y, act, output, cost, 0.5),
                  dtype, f"cost {act}/{output}/{cost} {dtype}")
            gw, gb = dev.gradient(X, Y)
            rw, rb = ref.gradient(ws, bs, X, Y, act, output, cost)
            close(flat(gw, gb), flat(rw, rb), dtype, f"gradient {act}/{output}/{cost} {dtype}")
            print("ok", dtype, act, output, cost)


def case_train():
    """fit on the device against fit on the CPU engine and the reference's SGD epoch."""
    from loopnet.cuda import to_device
    sizes = [3, 4, 2]
    X, Y = data(sizes, "sigmoid", "quadratic")
    runs = [dict(optimizer="sgd", eta=0.5), dict(optimizer="sgd", eta=0.5, momentum=0.8, lmbda=0.1),
            dict(optimizer="adam", eta=0.05, lmbda=0.2)]
    for dtype in ("float64", "float32"):
        for kw in runs:
            cpu = loopnet.Net(sizes, dtype=dtype, seed=7)
            net = loopnet.Net(sizes, dtype=dtype, seed=7)
            dev = to_device(net, **SMALL)
            cpu.fit(X, Y, epochs=2, batch_size=3, monitor=False, **kw)
            dev.fit(X, Y, epochs=2, batch_size=3, monitor=False, **kw)
            close(dev.params, cpu.params, dtype, f"fit {kw} {dtype}")
            dev.to_cpu()
            assert np.array_equal(net.params, dev.params) and net.epoch == 2
            assert net._state.t[0] == cpu._state.t[0] == 4
            if kw["optimizer"] == "adam":
                close(net._state.m, cpu._state.m, dtype, "adam m")
                close(net._state.v, cpu._state.v, dtype, "adam v")
            print("ok fit", dtype, kw)
    # monitor=True: the epoch record's cost and accuracy as the CPU engine's.
    y = np.argmax(Y, axis=1)
    cpu, net = loopnet.Net(sizes, seed=9), loopnet.Net(sizes, seed=9)
    cpu.fit(X, y, epochs=1, batch_size=4, eta=0.5, monitor="exact")   # the device's pass is exact
    to_device(net, **SMALL).fit(X, y, epochs=1, batch_size=4, eta=0.5)
    close(net.history[0]["cost"], cpu.history[0]["cost"], "float64", "monitored cost")
    assert net.history[0]["accuracy"] == cpu.history[0]["accuracy"]
    print("ok monitor")
    # The reference's SGD epoch over the same order (network2's update).
    net = loopnet.Net(sizes, seed=11)
    ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    dev = to_device(net, **SMALL)
    rng = np.random.default_rng(11)
    rng.bit_generator.state = net.rng.bit_generator.state
    order = rng.permutation(len(X))
    dev.fit(X, Y, epochs=1, batch_size=4, eta=0.7, lmbda=0.2, monitor=False)
    ws, bs = ref.train_sgd(ws, bs, X, Y, order, 4, 0.7, "sigmoid", "sigmoid", "quadratic",
                           lmbda=0.2)
    layout = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(ws, bs)])
    close(dev.params, layout, "float64", "reference epoch")
    print("ok reference epoch")
    # Divergence: the epoch is rolled back (parameters, optimizer state, RNG) and reported.
    from loopnet.net import DivergenceError
    net = loopnet.Net([3, 4, 2], output="identity", cost="mse", seed=2)
    dev = to_device(net, **SMALL)
    dev.fit(X, Y, epochs=1, batch_size=3, eta=0.01, monitor=False)
    before, rng_state = dev.params, net.rng.bit_generator.state
    try:
        dev.fit(X, Y * 1e150, epochs=1, batch_size=3, eta=1e200, monitor=False)
    except DivergenceError as exc:
        assert "epoch 2" in str(exc)
    else:
        raise AssertionError("no DivergenceError")
    assert np.array_equal(dev.params, before) and net.epoch == 1
    assert net.rng.bit_generator.state == rng_state
    for bad, kw in (("launch", dict(launch="warp")), ("threads", dict(threads=0))):
        try:
            to_device(net, **kw)
        except ValueError as exc:
            assert bad in str(exc)
        else:
            raise AssertionError(f"bad {bad} accepted")
    print("ok divergence and bad options")


def case_configs():
    """Bit-identical parameters for several launch configurations and both drivers."""
    from loopnet.cuda import to_device
    sizes = [3, 4, 3, 2]
    X, Y = data(sizes, "softmax", "log_likelihood")
    for dtype in ("float64", "float32"):
        results = []
        for opts in (dict(launch="phases", threads=1, blocks=1),
                     dict(launch="phases", threads=5, blocks=3),
                     dict(launch="cooperative", threads=7, blocks=1)):
            net = loopnet.Net(sizes, activation="tanh", output="softmax",
                              cost="log_likelihood", dtype=dtype, seed=5)
            dev = to_device(net, **opts)
            dev.fit(X, Y, epochs=1, batch_size=4, eta=0.1, optimizer="adam", momentum=0.0,
                    monitor=False)
            dev.fit(X, Y, epochs=1, batch_size=4, eta=0.1, momentum=0.5, monitor=False)
            results.append((dev.params, dev.gradient_sum(X, Y)))
        for params, grad in results[1:]:
            assert np.array_equal(params, results[0][0]), "params differ between launches"
            assert np.array_equal(grad, results[0][1]), "gradients differ between launches"
        cpu = loopnet.Net(sizes, activation="tanh", output="softmax", cost="log_likelihood",
                          dtype=dtype, seed=5)
        cpu.fit(X, Y, epochs=1, batch_size=4, eta=0.1, optimizer="adam", monitor=False)
        cpu.fit(X, Y, epochs=1, batch_size=4, eta=0.1, momentum=0.5, monitor=False)
        close(results[0][0], cpu.params, dtype, "configs vs CPU")
        print("ok configs", dtype)


def case_ptx():
    """Compile every kernel for a real GPU (sm_90, PTX only: no device needed), both dtypes."""
    import types

    import numba.cuda.dispatcher as dispatcher
    from numba import cuda, typeof

    from loopnet.cuda import kernels as K   # first: loopnet.cuda mends numba-cuda for NumPy 2.5
    # Device functions ask the current device for its compute capability; there is none here.
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
    try:
        cuda.compile_ptx(lambda a: None, (typeof(np.zeros(1)),), cc=(9, 0))
    except Exception as exc:     # no NVVM / NVRTC on this machine
        print("skip", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return
    for dtype in (np.float64, np.float32):
        v, m2 = np.zeros(5, dtype), np.zeros((2, 5), dtype)
        i64, o = np.zeros(3, np.int64), np.zeros(2, np.int64)
        hyper = (0, 0.1, 0.0, 0.0, 0.0, 0.9, 0.999, 1e-8)
        args = {
            K.forward_layer: (m2, m2, v, m2, o, 0, 1, i64, i64, i64, 0, 0),
            K.softmax: (m2, m2, 1, 2, 0),
            K.output_delta: (m2, m2, m2, m2, o, 0, 1, 2, 0, 0, 0),
            K.hidden_delta: (m2, m2, m2, v, 1, i64, i64, i64, 0, 0),
            K.gradient_step: (v, v, v, v, v, m2, o, m2, m2, 0, 1, i64, i64, i64, 0, *hyper, 1),
            K.example_costs: (np.zeros(2), m2, m2, o, 0, 1, 2, 0, 0),
            K.outputs: (m2, m2, 0, 1, 2, 0),
            K.train_batches: (v, v, v, v, v, m2, m2, o, m2, m2, m2, i64, i64, i64, 0, 0, 0,
                              1, 0, 1, 0, *hyper, 0),
        }
        for kernel, a in args.items():
            ptx, _ = cuda.compile_ptx(kernel.py_func, tuple(typeof(x) for x in a), cc=(9, 0))
            assert ".entry" in ptx
        print("ok ptx", np.dtype(dtype).name, len(args), "kernels")


def case_gpu():
    """On a real GPU: both drivers, two launch configurations, against the CPU engine."""
    from numba import cuda
    from loopnet.cuda import to_device
    if not cuda.is_available():
        try:
            to_device(loopnet.Net([2, 2], seed=0))
        except RuntimeError as exc:
            assert "needs an NVIDIA GPU" in str(exc)
        else:
            raise AssertionError("to_device without a GPU did not raise")
        print("skip: numba.cuda.is_available() is False")
        return
    sizes = [20, 16, 8, 5]
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 20))
    y = rng.integers(0, 5, 200)
    for dtype in ("float64", "float32"):
        cpu = loopnet.Net(sizes, output="softmax", cost="log_likelihood", dtype=dtype, seed=4)
        cpu.fit(X, y, epochs=2, batch_size=10, eta=0.1, momentum=0.5, monitor=False)
        got = []
        for opts in (dict(launch="cooperative"), dict(launch="cooperative", blocks=2,
                                                      threads=64),
                     dict(launch="phases", threads=32)):
            net = loopnet.Net(sizes, output="softmax", cost="log_likelihood", dtype=dtype,
                              seed=4)
            dev = to_device(net, **opts)
            dev.fit(X, y, epochs=2, batch_size=10, eta=0.1, momentum=0.5, monitor=False)
            close(dev.params, cpu.params, dtype, f"gpu {opts} {dtype}")
            got.append(dev.params)
        assert all(np.array_equal(g, got[0]) for g in got[1:]), "launches differ on the GPU"
        print("ok gpu", dtype, cuda.get_current_device().name)


def case_ptx_without_row_stack():
    """case_ptx under NumPy 2.5's namespace (no np.row_stack), which numba-cuda 0.30.4 uses."""
    np.__dict__.pop("row_stack", None)
    assert not hasattr(np, "row_stack")
    case_ptx()


if __name__ == "__main__":
    globals()["case_" + sys.argv[1]]()
