"""loopnet.network against fixtures recorded from Nielsen's own network.py.

See tests/fixtures/nielsen/README.md for how the fixtures were made.  The
drop-in must draw the same random numbers (initial weights, one shuffle per
epoch), print the same lines and end with the same weights up to
floating-point summation order.
"""
import contextlib
import io
import json
import os
import random

import numpy as np
import pytest

from loopnet import network

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nielsen")
with open(os.path.join(FIXTURES, "cases.json")) as _f:
    CASES = [c for c in json.load(_f)["cases"] if c["module"] == "network"]


def load_case(case):
    with np.load(os.path.join(FIXTURES, case["name"] + ".npz")) as f:
        arrays = {k: f[k] for k in f.files}
    X, Y, EX, Ey = arrays["X"], arrays["Y"], arrays["EX"], arrays["Ey"]
    training = [(X[i].reshape(-1, 1), Y[i].reshape(-1, 1)) for i in range(len(X))]
    test = [(EX[i].reshape(-1, 1), int(Ey[i])) for i in range(len(EX))] or None
    return arrays, training, test


def run(case, training, test, cls=network.Network, seed=None):
    seed = case["seed"] if seed is None else seed
    random.seed(seed)
    np.random.seed(seed)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        net = cls(case["sizes"])
        w0 = [w.copy() for w in net.weights]
        b0 = [b.copy() for b in net.biases]
        net.SGD(training, case["epochs"], case["m"], case["eta"], test_data=test)
    rng_after = [random.random(), float(np.random.random())]
    return net, w0, b0, buf.getvalue().split("\n"), rng_after


def max_diff(net, arrays, prefix="w"):
    L = len(net.weights)
    return max(max(np.abs(net.weights[l] - arrays["w_%d" % l]).max(),
                   np.abs(net.biases[l] - arrays["b_%d" % l]).max()) for l in range(L))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_nielsen(case):
    arrays, training, test = load_case(case)
    ids = {id(t): i for i, t in enumerate(training)}
    net, w0, b0, stdout, rng_after = run(case, training, test)
    # Same initial draws, bit for bit.
    for l in range(len(w0)):
        assert np.array_equal(w0[l], arrays["w0_%d" % l])
        assert np.array_equal(b0[l], arrays["b0_%d" % l])
    # Same weights up to summation order.
    assert max_diff(net, arrays) <= 1e-10
    assert [w.shape for w in net.weights] == [a.shape for a in w0]
    assert [b.shape for b in net.biases] == [b.shape for b in b0]
    # Same printed lines, same list order after the in-place shuffles,
    # and the global generators left in the same state.
    assert stdout == case["stdout"]
    assert [ids[id(t)] for t in training] == arrays["order"].tolist()
    assert rng_after == case["rng_after"]


def test_accepts_zip_objects_and_1d_vectors():
    case = CASES[1]
    arrays, training, test = load_case(case)
    X, Y, EX, Ey = arrays["X"], arrays["Y"], arrays["EX"], arrays["Ey"]
    net, *_ , stdout, rng_after = run(case, zip(list(X), list(Y)), zip(list(EX), Ey))
    assert max_diff(net, arrays) <= 1e-10
    assert stdout == case["stdout"]
    assert rng_after == case["rng_after"]


def test_list_is_shuffled_in_place_like_nielsen():
    case = CASES[0]
    _, training, _ = load_case(case)
    before = list(training)
    run(case, training, None)
    after, start = [id(t) for t in training], [id(t) for t in before]
    assert after != start and sorted(after) == sorted(start)


def test_wrong_input_size_names_the_problem():
    np.random.seed(0)
    net = network.Network([783, 30, 10])
    training = [(np.zeros((784, 1)), np.zeros((10, 1))) for _ in range(3)]
    with pytest.raises(ValueError, match=r"training_data\[0\]\[0\].*\(784, 1\).*783"):
        net.SGD(training, 1, 2, 3.0)
    with pytest.raises(ValueError, match="783"):
        net.feedforward(np.zeros((784, 1)))


def test_label_where_vector_belongs():
    np.random.seed(0)
    net = network.Network([4, 3, 10])
    training = [(np.zeros((4, 1)), 3), (np.zeros((4, 1)), 5)]
    with pytest.raises(ValueError, match=r"training_data\[0\]\[1\].*number 3.*vectorized_result"):
        net.SGD(training, 1, 2, 3.0)


def test_vector_where_label_belongs():
    np.random.seed(0)
    net = network.Network([4, 3, 10])
    training = [(np.zeros((4, 1)), np.eye(10)[[1]].T)] * 4
    test = [(np.zeros((4, 1)), np.eye(10)[[1]].T)]
    with pytest.raises(ValueError, match=r"test_data\[0\]\[1\].*integer label"):
        net.SGD(training, 1, 2, 3.0, test_data=test)
    with pytest.raises(ValueError, match="integer label"):
        net.evaluate(test)


@pytest.mark.parametrize("sizes", [[5], [3, 0, 2], "784", [2.5, 3]])
def test_bad_sizes(sizes):
    with pytest.raises((TypeError, ValueError), match="size"):
        network.Network(sizes)


def test_bad_hyper_parameters():
    np.random.seed(0)
    net = network.Network([2, 2])
    data = [(np.zeros((2, 1)), np.zeros((2, 1)))]
    with pytest.raises(ValueError, match="mini_batch_size"):
        net.SGD(data, 1, 0, 1.0)
    with pytest.raises(ValueError, match="epochs"):
        net.SGD(data, 1.5, 1, 1.0)
    with pytest.raises(ValueError, match=r"self.weights\[0\].*\(2, 2\)"):
        net.weights = [np.zeros((3, 2))]
        net.SGD(data, 1, 1, 1.0)


def numpy_gradient(net, x, y):
    """Backpropagation written out in NumPy for one example (the oracle)."""
    zs, acts = [], [x]
    for w, b in zip(net.weights, net.biases):
        zs.append(w @ acts[-1] + b)
        acts.append(network.sigmoid(zs[-1]))
    delta = (acts[-1] - y) * network.sigmoid_prime(zs[-1])
    nb, nw = [None] * len(zs), [None] * len(zs)
    for l in range(len(zs) - 1, -1, -1):
        nb[l], nw[l] = delta, delta @ acts[l].T
        if l:
            delta = (net.weights[l].T @ delta) * network.sigmoid_prime(zs[l - 1])
    return nb, nw


def test_backprop_and_update_mini_batch():
    np.random.seed(3)
    net = network.Network([5, 4, 3])
    rs = np.random.RandomState(9)
    batch = [(rs.rand(5, 1), np.eye(3)[[i % 3]].T) for i in range(7)]
    nb, nw = net.backprop(*batch[0])
    eb, ew = numpy_gradient(net, *batch[0])
    for a, b in zip(nb + nw, eb + ew):
        assert a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-14)
    sums = [numpy_gradient(net, x, y) for x, y in batch]
    expect_w = [w - (0.7 / 7) * sum(s[1][l] for s in sums) for l, w in enumerate(net.weights)]
    expect_b = [b - (0.7 / 7) * sum(s[0][l] for s in sums) for l, b in enumerate(net.biases)]
    old = net.weights[0]
    net.update_mini_batch(batch, 0.7)
    assert net.weights[0] is not old            # new arrays, as in Nielsen's code
    for a, b in zip(net.weights + net.biases, expect_w + expect_b):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-14)
    out = net.feedforward(batch[0][0])
    a = batch[0][0]
    for w, b in zip(net.weights, net.biases):
        a = network.sigmoid(w @ a + b)
    assert np.array_equal(out, a)
    assert net.evaluate([(x, int(np.argmax(y))) for x, y in batch]) == sum(
        int(np.argmax(net.feedforward(x)) == np.argmax(y)) for x, y in batch)


class DoubledCost(network.Network):
    """A subclass overriding cost_derivative: C = (a - y)^2, dC/da = 2(a - y)."""

    def cost_derivative(self, output_activations, y):
        return 2.0 * (output_activations - y)


def test_overridden_cost_derivative_is_honoured():
    # Doubling dC/da is the same as doubling eta for the quadratic cost.
    case = dict(CASES[0])
    arrays, training, test = load_case(case)
    net_sub, *_ = run(case, list(training), None, cls=DoubledCost)
    case2 = dict(case, eta=2 * case["eta"])
    net_base, *_ = run(case2, list(training), None)
    for a, b in zip(net_sub.weights + net_sub.biases, net_base.weights + net_base.biases):
        assert np.allclose(a, b, rtol=0, atol=1e-10)
    assert max_diff(net_sub, arrays) > 1e-3     # and really differs from the plain cost


def test_nan_input_and_zero_eta():
    np.random.seed(0)
    net = network.Network([3, 2])
    data = [(np.zeros((3, 1)), np.ones((2, 1))), (np.array([[0.0], [np.nan], [1.0]]),
                                                   np.ones((2, 1)))]
    with pytest.raises(ValueError, match=r"training_data\[1\]\[0\] contains NaN"):
        net.SGD(data, 1, 2, 1.0)
    before = [w.copy() for w in net.weights]
    with contextlib.redirect_stdout(io.StringIO()):
        net.SGD(data[:1] * 4, 2, 2, 0.0)          # eta = 0 is accepted and changes nothing
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


def test_pickle_and_copy_keep_nielsens_attributes_only():
    import copy
    import pickle
    case = CASES[2]
    arrays, training, test = load_case(case)
    net, *_ = run(case, training, test)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert set(vars(other)) == {"num_layers", "sizes", "biases", "weights"}
        assert all(np.array_equal(a, b) for a, b in zip(other.weights, net.weights))
        assert other.evaluate(test) == net.evaluate(test)


def test_empty_training_data_prints_epochs_like_nielsen():
    np.random.seed(0)
    net = network.Network([3, 2])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        net.SGD([], 2, 10, 3.0)
    assert buf.getvalue() == "Epoch 0 complete\nEpoch 1 complete\n"


def _write_idx(path, array):
    import gzip
    import struct
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_profile_script_runs(tmp_path, capsys):
    """profiles/nielsen_ch1.py end to end on tiny IDX files; a stand-in module plays
    Nielsen's network.py (his code is not part of this repository).  Run in this process:
    a subprocess compiled an engine variant of its own (25 s of the suite) for nothing
    this test checks."""
    import importlib
    import sys
    rs = np.random.RandomState(0)
    for prefix, n in (("train", 24), ("t10k", 6)):
        _write_idx(tmp_path / ("%s-images-idx3-ubyte.gz" % prefix), rs.randint(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / ("%s-labels-idx1-ubyte.gz" % prefix), np.arange(n) % 10)
    standin = tmp_path / "standin"
    standin.mkdir()
    (standin / "network.py").write_text("from loopnet.network import *  # noqa\n"
                                        "from loopnet.network import Network  # noqa\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "profiles"))
    try:
        nielsen_ch1 = importlib.import_module("nielsen_ch1")
    finally:
        sys.path.pop(0)
    assert nielsen_ch1.main(["--data", str(tmp_path), "--examples", "15",
                             "--nielsen", str(standin)]) == 0
    out = capsys.readouterr().out
    assert "same printed lines: yes" in out
    assert "max |w_nielsen - w_loopnet| over all weights and biases: 0" in out
    assert "speed-up" in out
    assert nielsen_ch1.main(["--data", str(tmp_path), "--examples", "15"]) == 0
    assert "timing loopnet.network only" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Overrides Nielsen's code honours, speed-paths, data converted once
# ---------------------------------------------------------------------------

def numpy_sgd(sizes, training, epochs, m, eta, sigma, sigma_prime, output_error, lmbda=0.0):
    """An independent NumPy oracle of Nielsen's algorithm: same seeding, draws and
    shuffles; σ, σ' and δ^L passed in, so that a replaced piece can be plugged in."""
    biases = [np.random.randn(n, 1) for n in sizes[1:]]
    weights = [np.random.randn(n, k) for k, n in zip(sizes[:-1], sizes[1:])]
    data = list(training)
    for _ in range(epochs):
        random.shuffle(data)
        for lo in range(0, len(data), m):
            batch = data[lo:lo + m]
            gw = [np.zeros_like(w) for w in weights]
            gb = [np.zeros_like(b) for b in biases]
            for x, y in batch:
                acts, zs = [x], []
                for w, b in zip(weights, biases):
                    zs.append(w @ acts[-1] + b)
                    acts.append(sigma(zs[-1]))
                delta = output_error(zs[-1], acts[-1], y)
                for l in range(len(weights) - 1, -1, -1):
                    gb[l] = gb[l] + delta
                    gw[l] = gw[l] + delta @ acts[l].T
                    if l:
                        delta = (weights[l].T @ delta) * sigma_prime(zs[l - 1])
            shrink = 1 - eta * lmbda / len(data)
            weights = [shrink * w - eta / len(batch) * g for w, g in zip(weights, gw)]
            biases = [b - eta / len(batch) * g for b, g in zip(biases, gb)]
    return weights, biases


def small_problem(seed=4, n=23, sizes=(6, 5, 3)):
    rs = np.random.RandomState(seed)
    return [(rs.rand(sizes[0], 1), np.eye(sizes[-1])[[i % sizes[-1]]].T) for i in range(n)]


def steep(z):
    return 1.0 / (1.0 + np.exp(-2.0 * z))


def train(net_factory, training, epochs=2, m=4, eta=0.9, seed=7, **sgd):
    random.seed(seed)
    np.random.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        net = net_factory()
        net.SGD(list(training), epochs, m, eta, **sgd)
    return net


def close(net, weights, biases, tol=1e-12):
    return all(np.allclose(a, b, rtol=0, atol=tol)
               for a, b in zip(net.weights + net.biases, list(weights) + list(biases)))


def expected(training, sigma=network.sigmoid, sigma_prime=network.sigmoid_prime,
             cost_derivative=lambda a, y: a - y, epochs=2, m=4, eta=0.9, seed=7,
             sizes=(6, 5, 3)):
    random.seed(seed)
    np.random.seed(seed)
    return numpy_sgd(list(sizes), training, epochs, m, eta, sigma, sigma_prime,
                     lambda z, a, y: cost_derivative(a, y) * sigma_prime(z))


def test_oracle_agrees_with_the_compiled_drop_in():
    training = small_problem()
    net = train(lambda: network.Network([6, 5, 3]), training)
    assert close(net, *expected(training), tol=1e-12)


def test_module_sigmoid_replaced_is_honoured(monkeypatch):
    training = small_problem()
    monkeypatch.setattr(network, "sigmoid", steep)          # sigmoid_prime calls it, as his does
    with pytest.warns(UserWarning, match=r"loopnet\.network\.sigmoid is replaced"):
        net = train(lambda: network.Network([6, 5, 3]), training)
    # Nielsen's sigmoid_prime calls the module's sigmoid: σ'(z) becomes steep(z)(1 − steep(z)).
    assert close(net, *expected(training, steep, lambda z: steep(z) * (1 - steep(z))))
    assert not close(net, *expected(training), tol=1e-3)    # the patch really changed it
    x = training[0][0]
    assert np.allclose(net.feedforward(x), steep(net.weights[1] @ steep(
        net.weights[0] @ x + net.biases[0]) + net.biases[1]), rtol=0, atol=1e-15)


def test_module_sigmoid_prime_replaced_is_honoured(monkeypatch):
    training = small_problem()
    half_prime = lambda z: 0.5 * network.sigmoid(z) * (1 - network.sigmoid(z))   # noqa: E731
    monkeypatch.setattr(network, "sigmoid_prime", half_prime)
    with pytest.warns(UserWarning, match="sigmoid_prime"):
        net = train(lambda: network.Network([6, 5, 3]), training)
    assert close(net, *expected(training, sigma_prime=half_prime))


@pytest.mark.parametrize("where", ["instance", "class"])
def test_cost_derivative_replaced_on_instance_or_class(monkeypatch, where):
    training = small_problem()
    doubled = lambda a, y: 2.0 * (a - y)                   # noqa: E731

    def factory():
        net = network.Network([6, 5, 3])
        if where == "instance":
            net.cost_derivative = doubled
        return net
    if where == "class":
        monkeypatch.setattr(network.Network, "cost_derivative",
                            lambda self, a, y: doubled(a, y))
    with pytest.warns(UserWarning, match="cost_derivative is replaced"):
        net = train(factory, training)
    assert close(net, *expected(training, cost_derivative=doubled))


def test_backprop_and_update_mini_batch_replaced_on_the_instance():
    training = small_problem()
    calls = []

    def factory():
        net = network.Network([6, 5, 3])
        compiled = net.backprop

        def halved(x, y):                 # a user's backprop: half the gradient
            calls.append(1)
            nb, nw = compiled(x, y)
            return [0.5 * b for b in nb], [0.5 * w for w in nw]
        net.backprop = halved
        return net
    with pytest.warns(UserWarning, match=r"backprop is replaced \(on the instance\)"):
        net = train(factory, training)
    assert len(calls) == 2 * len(training)
    assert close(net, *expected(training, eta=0.45))       # half the gradient = half of eta

    def factory2():
        net = network.Network([6, 5, 3])
        original = net.update_mini_batch
        net.update_mini_batch = lambda batch, eta: original(batch, 0.5 * eta)
        return net
    with pytest.warns(UserWarning, match="update_mini_batch is replaced"):
        net = train(factory2, training)
    assert close(net, *expected(training, eta=0.45))


def test_feedforward_replaced_is_used_by_evaluate():
    training = small_problem()
    test = [(x, 2) for x, _ in training]
    np.random.seed(0)
    net = network.Network([6, 5, 3])
    assert net.evaluate(test) < len(test)
    net.feedforward = lambda a: np.array([[0.0], [0.0], [1.0]])
    with pytest.warns(UserWarning, match="feedforward"):
        assert net.evaluate(test) == len(test)


def test_backprop_reads_float32_x_as_its_float64_value():
    """load_data_wrapper() gives float32 x: backprop reads it in place, and since each
    product w_jk x_k is exact in float64, the gradient equals that of x.astype(float64)
    bit for bit; x as a 1-D vector or a list gives the same gradient too."""
    np.random.seed(4)
    net = network.Network([6, 5, 3])
    rs = np.random.RandomState(2)
    x32 = rs.rand(6, 1).astype(np.float32)
    y = np.eye(3)[[1]].T
    expect = net.backprop(x32.astype(np.float64), y)
    for x in (x32, x32.reshape(6), x32[:, 0].tolist(), x32.astype(np.float64)[::1]):
        got = net.backprop(x, y)
        for a, b in zip(got[0] + got[1], expect[0] + expect[1]):
            assert a.shape == b.shape and np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"x has shape \(7, 1\)"):
        net.backprop(np.zeros((7, 1), np.float32), y)


def test_float32_training_data_gives_the_bits_of_its_float64_copy():
    """load_data_wrapper()'s x are float32: SGD (and evaluate) keep them float32 for the
    core, which reads each x_k exactly under float64 weights, so training on them equals
    training on the same numbers as float64 arrays, bit for bit, and prints the same."""
    data32 = [(x.astype(np.float32), y) for x, y in small_problem(n=40, sizes=(6, 5, 3))]
    data64 = [(x.astype(np.float64), y) for x, y in data32]
    test32 = [(x, int(np.argmax(y))) for x, y in data32[:15]]
    test64 = [(x, int(np.argmax(y))) for x, y in data64[:15]]
    nets, printed = [], []
    for training, test in ((data32, test32), (data64, test64)):
        random.seed(5)
        np.random.seed(5)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            net = network.Network([6, 5, 3])
            net.SGD(list(training), 3, 4, 2.0, test_data=test)
        nets.append(net)
        printed.append(out.getvalue())
    assert printed[0] == printed[1]
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert np.array_equal(a, b)
    assert nets[0].evaluate(test32) == nets[1].evaluate(test64)


def test_weights_are_the_network_and_old_arrays_keep_their_values():
    training = small_problem()
    np.random.seed(1)
    net = network.Network([6, 5, 3])
    x, y = training[0]
    net.weights[0][2, 3] = 0.75                      # in place, as NumPy users do
    net.biases[1] *= 2.0
    nb, nw = net.backprop(x, y)
    eb, ew = numpy_gradient(net, x, y)
    assert all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(nb + nw, eb + ew))
    net.weights = [w * 0.5 for w in net.weights]     # assignment, as Nielsen's users do
    nb, nw = net.backprop(x, y)
    eb, ew = numpy_gradient(net, x, y)
    assert all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(nb + nw, eb + ew))
    net.weights[1] = np.ones((3, 5))                 # one layer replaced in the list
    assert net.backprop(x, y)[1][1].shape == (3, 5)
    assert np.allclose(net.backprop(x, y)[1][0], numpy_gradient(net, x, y)[1][0], atol=1e-14)
    old_w = [w.copy() for w in net.weights]
    held = net.weights[0]
    with contextlib.redirect_stdout(io.StringIO()):
        net.SGD(list(training), 1, 5, 1.0)
    assert np.array_equal(held, old_w[0])            # his updates make new arrays
    assert not np.array_equal(net.weights[0], old_w[0])
    assert [b.shape for b in net.biases] == [(5, 1), (3, 1)]


def test_data_converted_once_in_an_early_stopping_loop(monkeypatch):
    case = CASES[2]
    arrays, training, test = load_case(case)
    conversions = []
    real = network._stack_columns
    monkeypatch.setattr(network, "_stack_columns",
                        lambda vs, *a, **k: conversions.append(len(vs)) or real(vs, *a, **k))
    random.seed(case["seed"])
    np.random.seed(case["seed"])
    with contextlib.redirect_stdout(io.StringIO()):
        net = network.Network(case["sizes"])
        for _ in range(case["epochs"]):
            net.SGD(training, 1, case["m"], case["eta"], test_data=test)
    # x of the test data, x and y of the training data: once each, for all the calls.
    assert conversions == [len(test), len(training), len(training)]
    # The same training as one call of several epochs (same draws and orders).
    assert max_diff(net, arrays) <= 1e-10
    # A replaced pair is noticed (identity), and the data converted again.
    x, y = training[0]
    training[0] = (x + 1.0, y)
    with contextlib.redirect_stdout(io.StringIO()):
        net.SGD(training, 1, case["m"], case["eta"])
    assert conversions[3:] == [len(training), len(training)]


def test_first_run_says_it_compiles(monkeypatch, capsys):
    """Once per process and input dtype, and it warms up the variant the data will use."""
    monkeypatch.setattr(network, "_first_compile_checked", set())
    monkeypatch.setattr(network, "_cache_is_empty", lambda inputs: True)
    warmed = []
    monkeypatch.setattr(network, "warmup", lambda dtype, inputs: warmed.append(inputs) or 12.5)
    network._announce_first_compile(np.float32)
    network._announce_first_compile(np.float32)
    err = capsys.readouterr().err
    assert err.count("compiling kernels for this CPU (first run only") == 1
    assert "compiled in 12.5 s" in err
    assert warmed == [np.dtype(np.float32)]
    network._announce_first_compile(np.float64)
    assert capsys.readouterr().err.count("first run only") == 1
    assert warmed == [np.dtype(np.float32), np.dtype(np.float64)]


def test_cache_emptiness_is_read_from_numba_cache(tmp_path):
    """An empty NUMBA_CACHE_DIR is recognised without compiling anything."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", "from loopnet import network; "
                          "print(network._cache_is_empty('float32'), "
                          "network._cache_is_empty('float64'))"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "True True", out.stderr


def test_cache_knows_which_input_dtype_was_compiled():
    """After a float64-input warm-up in this process, float64 counts as compiled."""
    from loopnet import warmup
    warmup("float64")
    assert not network._cache_is_empty(np.float64)


def test_book_runs_profile_runs(tmp_path):
    """profiles/nielsen.py end to end on tiny IDX files, stand-ins playing Nielsen's modules."""
    import subprocess
    import sys
    rs = np.random.RandomState(1)
    for prefix, n in (("train", 30), ("t10k", 6)):
        _write_idx(tmp_path / ("%s-images-idx3-ubyte.gz" % prefix), rs.randint(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / ("%s-labels-idx1-ubyte.gz" % prefix), np.arange(n) % 10)
    standin = tmp_path / "standin"
    standin.mkdir()
    (standin / "network.py").write_text("from loopnet.network import *  # noqa\n")
    (standin / "network2.py").write_text("from loopnet.network2 import *  # noqa\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, os.path.join(root, "profiles", "nielsen.py"),
                          "--data", str(tmp_path), "--nielsen", str(standin), "--repeats", "1",
                          "--no-cold"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ch") or
            line.startswith("| backprop") or line.startswith("| subclass")]
    assert len(rows) == 7
    # The stand-in IS the drop-in: both print the same results (on either loader's pairs).
    for row in rows[:5]:
        results = row.rstrip(" |").split(" | ")[-1].split(" / ")
        assert results[0:2] == results[2:4]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_new_weights_with_nan_or_infinity_are_refused_by_name(bad):
    """Weights assigned by the user (as a subclass's update does) are taken in with one
    vectorised check (network._finite_sum); a NaN or ±inf anywhere is named, huge finite
    values are not mistaken for one."""
    np.random.seed(2)
    net = network.Network([6, 5, 3])
    x, y = np.random.rand(6, 1), np.eye(3)[[1]].T
    net.weights = [w * 1e300 for w in net.weights]           # finite, sums overflow
    net.backprop(x, y)
    w = [np.array(v) for v in net.weights]
    w[1][2, 4] = bad
    net.weights = w
    with pytest.raises(ValueError, match="self.weights or self.biases contain NaN or infinity"):
        net.backprop(x, y)


class SummedUpdate(network.Network):
    """The book's exercise: update_mini_batch written by the user, calling self.backprop and
    assigning new arrays to self.weights / self.biases, as Nielsen's own does."""

    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            db, dw = self.backprop(x, y)
            nabla_b = [nb + d for nb, d in zip(nabla_b, db)]
            nabla_w = [nw + d for nw, d in zip(nabla_w, dw)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]


def test_backprop_reads_the_weights_a_subclass_assigned_where_they_are():
    np.random.seed(4)
    net = SummedUpdate([5, 4, 3])
    rs = np.random.RandomState(1)
    batch = [(rs.rand(5, 1), np.eye(3)[[i % 3]].T) for i in range(6)]
    for _ in range(3):
        net.update_mini_batch(batch, 0.9)
        assigned = net.weights
        for x, y in batch[:2]:
            for got, want in zip(sum(net.backprop(x, y), []), sum(numpy_gradient(net, x, y), [])):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert net.weights is assigned          # read in place: not copied into the core
    net.weights[1][2, 0] += 0.5                 # so a write into them is seen at once
    for got, want in zip(sum(net.backprop(*batch[0]), []), sum(numpy_gradient(net, *batch[0]), [])):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # The compiled SGD afterwards trains from those weights, as Nielsen's would.
    twin = network.Network([5, 4, 3])
    twin.weights, twin.biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    network.Network.update_mini_batch(net, batch, 0.5)
    twin.update_mini_batch(batch, 0.5)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases,
                                                    twin.weights + twin.biases))


def test_assigned_arrays_of_other_strides_or_layouts_are_copied_in_with_the_same_gradient():
    """A (n, 1) bias made by transposing a (1, n) row is C-contiguous with other strides, a
    Fortran-ordered w is not C-contiguous: neither is read in place, both are copied into the
    core (the gradient is the same), and the plain float64 arrays are read in place."""
    np.random.seed(6)
    net = network.Network([5, 4, 3])
    rs = np.random.RandomState(2)
    x, y = rs.rand(5, 1), np.eye(3)[[1]].T
    odd_b = []
    for b in net.biases:                        # a new (1, n) row, transposed: strides (8, 8n)
        row = np.empty((1, len(b)))
        row[0] = b[:, 0]
        odd_b.append(row.T)
    assert odd_b[0].flags.c_contiguous and odd_b[0].strides != (8, 8)
    odd_w = [np.asfortranarray(w) for w in net.weights]
    for ws, bs in ((odd_w, [b.copy() for b in net.biases]), ([w.copy() for w in net.weights], odd_b)):
        net.weights, net.biases = ws, bs
        for got, want in zip(sum(net.backprop(x, y), []), sum(numpy_gradient(net, x, y), [])):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert net.weights is not ws or net.biases is not bs          # copied into the core
    plain_w = [w.copy() for w in net.weights]
    net.weights = plain_w
    net.backprop(x, y)
    assert net.weights is plain_w                                      # read in place


def test_a_layer_appended_to_the_weights_is_refused_by_backprop_as_by_update():
    np.random.seed(7)
    net = network.Network([4, 3, 2])
    x, y = np.random.rand(4, 1), np.eye(2)[[0]].T
    net.backprop(x, y)
    net.weights.append(np.zeros((5, 2)))        # the network's own list, one entry too many
    for call in (lambda: net.backprop(x, y), lambda: net.update_mini_batch([(x, y)], 1.0)):
        with pytest.raises(ValueError, match="self.weights has 3 and self.biases 2 entries"):
            call()


@pytest.mark.parametrize("where", ["core view", "assigned array", "x"])
def test_nan_reaching_backprop_in_place_is_named(where):
    np.random.seed(5)
    net = network.Network([4, 3, 2])
    x, y = np.random.rand(4, 1), np.eye(2)[[0]].T
    net.backprop(x, y)
    if where == "core view":
        net.weights[0][1, 2] = np.nan           # written into the network's own array
    elif where == "assigned array":
        net.biases = [b.copy() for b in net.biases]
        net.biases[1][0, 0] = np.inf
    else:
        x = x.copy()
        x[3, 0] = np.nan
    what = "x contains" if where == "x" else "self.weights or self.biases contain"
    with pytest.raises(ValueError, match=what + " NaN or infinity"):
        net.backprop(x, y)
