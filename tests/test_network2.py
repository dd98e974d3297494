"""loopnet.network2 against fixtures recorded from Nielsen's own network2.py.

See tests/fixtures/nielsen/README.md.  Checked: initial draws, trained
weights, the four returned monitor lists, printed lines, RNG state after
training, the JSON save format in both directions, and user-level errors.
"""
import contextlib
import io
import json
import os
import random
import re

import numpy as np
import pytest

from loopnet import network2

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nielsen")
with open(os.path.join(FIXTURES, "cases.json")) as _f:
    CASES = [c for c in json.load(_f)["cases"] if c["module"] == "network2"]
NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def load_case(case):
    with np.load(os.path.join(FIXTURES, case["name"] + ".npz")) as f:
        arrays = {k: f[k] for k in f.files}
    X, Y, EX, Ey = arrays["X"], arrays["Y"], arrays["EX"], arrays["Ey"]
    training = [(X[i].reshape(-1, 1), Y[i].reshape(-1, 1)) for i in range(len(X))]
    evaluation = [(EX[i].reshape(-1, 1), int(Ey[i])) for i in range(len(EX))] or None
    return arrays, training, evaluation


def run(case, training, evaluation, cost=None):
    random.seed(case["seed"])
    np.random.seed(case["seed"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        net = network2.Network(case["sizes"], cost=cost or getattr(network2, case["cost"]))
        if case["init"] == "large":
            net.large_weight_initializer()
        w0 = [w.copy() for w in net.weights]
        b0 = [b.copy() for b in net.biases]
        returned = net.SGD(training, case["epochs"], case["m"], case["eta"],
                           lmbda=case["lmbda"], evaluation_data=evaluation, **case["monitors"])
    rng_after = [random.random(), float(np.random.random())]
    return net, w0, b0, returned, buf.getvalue().split("\n"), rng_after


def max_diff(net, arrays):
    return max(max(np.abs(w - arrays["w_%d" % l]).max(), np.abs(b - arrays["b_%d" % l]).max())
               for l, (w, b) in enumerate(zip(net.weights, net.biases)))


def assert_same_lines(got, expected):
    """Identical text, except that printed costs may differ in the last digits."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", e)
        for a, b in zip(NUMBER.findall(g), NUMBER.findall(e)):
            assert float(a) == pytest.approx(float(b), rel=1e-10)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_nielsen(case):
    arrays, training, evaluation = load_case(case)
    ids = {id(t): i for i, t in enumerate(training)}
    net, w0, b0, returned, stdout, rng_after = run(case, training, evaluation)
    for l in range(len(w0)):
        assert np.array_equal(w0[l], arrays["w0_%d" % l])
        assert np.array_equal(b0[l], arrays["b0_%d" % l])
    assert max_diff(net, arrays) <= 1e-10
    assert_same_lines(stdout, case["stdout"])
    assert [ids[id(t)] for t in training] == arrays["order"].tolist()
    assert rng_after == case["rng_after"]
    ev_cost, ev_acc, tr_cost, tr_acc = returned
    exp_ev_cost, exp_ev_acc, exp_tr_cost, exp_tr_acc = case["returned"]
    assert ev_acc == exp_ev_acc and tr_acc == exp_tr_acc
    assert all(type(a) is int for a in ev_acc + tr_acc)
    assert ev_cost == pytest.approx(exp_ev_cost, rel=1e-10)
    assert tr_cost == pytest.approx(exp_tr_cost, rel=1e-10)
    assert all(isinstance(c, np.float64) for c in ev_cost + tr_cost)


class MyCrossEntropy(object):
    """A user-defined cost class (same formulas): runs through the Python path."""

    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return a - y


def test_user_cost_class_uses_its_fn_and_delta():
    case = next(c for c in CASES if c["name"] == "net2_54310_xent_all")
    arrays, training, evaluation = load_case(case)
    net, _, _, returned, stdout, rng_after = run(case, training, evaluation, cost=MyCrossEntropy)
    assert max_diff(net, arrays) <= 1e-10
    assert_same_lines(stdout, case["stdout"])
    assert rng_after == case["rng_after"]
    assert returned[1] == case["returned"][1]


def test_load_reads_nielsens_file_and_save_writes_his_format(tmp_path):
    case = next(c for c in CASES if c["name"] == "net2_54310_xent_all")
    arrays, _, _ = load_case(case)
    theirs = os.path.join(FIXTURES, case["name"] + "_saved.json")
    net = network2.load(theirs)
    assert net.cost is network2.CrossEntropyCost and net.sizes == case["sizes"]
    for l in range(len(net.weights)):
        assert np.array_equal(net.weights[l], arrays["w_%d" % l])
        assert np.array_equal(net.biases[l], arrays["b_%d" % l])
    ours = tmp_path / "net.json"
    net.save(str(ours))
    with open(theirs) as f:
        text_theirs = f.read()
    # The file text is identical: same keys, order, separators and numbers.
    assert ours.read_text() == text_theirs
    again = network2.load(ours)
    assert all(np.array_equal(a, b) for a, b in zip(again.weights, net.weights))


def test_load_consumes_numpy_random_like_nielsen(tmp_path):
    # Nielsen's load() builds Network(sizes), drawing initial weights first.
    path = os.path.join(FIXTURES, "net2_432_quad_saved.json")
    np.random.seed(11)
    network2.load(path)
    after_load = np.random.random()
    np.random.seed(11)
    network2.Network([4, 3, 2])
    assert np.random.random() == after_load


@pytest.mark.parametrize("content, message", [
    ("not json", "invalid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"sizes": [2, 2], "weights": [], "biases": []}', "missing cost"),
    ('{"sizes": [2, 2], "weights": [[[1, 2], [3, 4]]], "biases": [[[0], [0]]], '
     '"cost": "load"}', "unknown cost"),
    ('{"sizes": [2, 2], "weights": [[[1, 2]]], "biases": [[[0], [0]]], '
     '"cost": "QuadraticCost"}', r"weights\[0\] has shape \(1, 2\)"),
    ('{"sizes": [2, 2], "weights": [[[1, 2], [3, 4]]], "biases": [[0, 0]], '
     '"cost": "QuadraticCost"}', r"biases\[0\] has shape \(2,\)"),
    ('{"sizes": [2, -1], "weights": [], "biases": [], "cost": "QuadraticCost"}', "sizes"),
])
def test_load_rejects_malformed_files(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ValueError, match=message):
        network2.load(str(p))


def test_monitor_errors_in_user_terms():
    np.random.seed(0)
    net = network2.Network([4, 3, 2])
    training = [(np.zeros((4, 1)), np.array([[1.0], [0.0]]))] * 3
    evaluation = [(np.zeros((4, 1)), 1)]
    with pytest.raises(ValueError, match="needs evaluation_data"):
        net.SGD(training, 1, 2, 0.5, monitor_evaluation_accuracy=True)
    with pytest.raises(ValueError, match="10-dimensional.*2 output neurons"):
        net.SGD(training, 1, 2, 0.5, evaluation_data=evaluation, monitor_evaluation_cost=True)
    with pytest.raises(ValueError, match="convert=True"):
        net.accuracy(training)
    with pytest.raises(ValueError, match="convert=True"):
        net.total_cost(evaluation, 0.1)
    with pytest.raises(ValueError, match=r"input layer has sizes\[0\] = 4"):
        net.SGD([(np.zeros((5, 1)), np.zeros((2, 1)))], 1, 1, 0.5)


def test_accuracy_and_total_cost_match_numpy():
    np.random.seed(5)
    net = network2.Network([6, 5, 10], cost=network2.QuadraticCost)
    rs = np.random.RandomState(1)
    data = [(rs.rand(6, 1), network2.vectorized_result(j % 10)) for j in range(23)]
    labelled = [(x, int(np.argmax(y))) for x, y in data]
    expect = 0.0
    for x, y in data:
        expect += network2.QuadraticCost.fn(net.feedforward(x), y) / len(data)
    expect += 0.5 * (0.3 / len(data)) * sum(np.linalg.norm(w) ** 2 for w in net.weights)
    assert net.total_cost(data, 0.3) == pytest.approx(expect, rel=1e-12)
    assert net.total_cost(labelled, 0.3, convert=True) == pytest.approx(expect, rel=1e-12)
    correct = sum(int(np.argmax(net.feedforward(x)) == j) for x, j in labelled)
    assert net.accuracy(labelled) == correct == net.accuracy(data, convert=True)


# ---------------------------------------------------------------------------
# Replaced pieces: the cost classes and the module's sigmoid
# ---------------------------------------------------------------------------

def small_run(cost, epochs=2, m=4, eta=0.5, lmbda=0.3, seed=3, **monitors):
    rs = np.random.RandomState(8)
    training = [(rs.rand(5, 1), network2.vectorized_result(i % 10)) for i in range(21)]
    evaluation = [(rs.rand(5, 1), i % 10) for i in range(7)]
    random.seed(seed)
    np.random.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        net = network2.Network([5, 4, 10], cost=cost)
        returned = net.SGD(training, epochs, m, eta, lmbda=lmbda, evaluation_data=evaluation,
                           **monitors)
    return net, returned, training, evaluation


def oracle(output_error, sigma=network2.sigmoid, epochs=2, m=4, eta=0.5, lmbda=0.3, seed=3):
    """Independent NumPy loop of network2's algorithm (default init, L2 shrink)."""
    rs = np.random.RandomState(8)
    training = [(rs.rand(5, 1), network2.vectorized_result(i % 10)) for i in range(21)]
    random.seed(seed)
    np.random.seed(seed)
    sizes = [5, 4, 10]
    biases = [np.random.randn(n, 1) for n in sizes[1:]]
    weights = [np.random.randn(n, k) / np.sqrt(k) for k, n in zip(sizes[:-1], sizes[1:])]
    sigma_prime = lambda z: sigma(z) * (1 - sigma(z))         # noqa: E731
    data = list(training)
    for _ in range(epochs):
        random.shuffle(data)
        for lo in range(0, len(data), m):
            batch = data[lo:lo + m]
            gw = [np.zeros_like(w) for w in weights]
            gb = [np.zeros_like(b) for b in biases]
            for x, y in batch:
                z1 = weights[0] @ x + biases[0]
                a1 = sigma(z1)
                z2 = weights[1] @ a1 + biases[1]
                d2 = output_error(z2, sigma(z2), y)
                d1 = (weights[1].T @ d2) * sigma_prime(z1)
                gb = [gb[0] + d1, gb[1] + d2]
                gw = [gw[0] + d1 @ x.T, gw[1] + d2 @ a1.T]
            weights = [(1 - eta * lmbda / len(data)) * w - eta / len(batch) * g
                       for w, g in zip(weights, gw)]
            biases = [b - eta / len(batch) * g for b, g in zip(biases, gb)]
    return weights, biases


def agrees(net, weights, biases, tol=1e-12):
    return all(np.allclose(a, b, rtol=0, atol=tol)
               for a, b in zip(net.weights + net.biases, weights + biases))


def test_oracle_agrees_with_the_compiled_drop_in():
    net, *_ = small_run(network2.CrossEntropyCost)
    assert agrees(net, *oracle(lambda z, a, y: a - y))


def test_cost_class_delta_replaced_is_honoured(monkeypatch):
    monkeypatch.setattr(network2.CrossEntropyCost, "delta",
                        staticmethod(lambda z, a, y: 3.0 * (a - y)))
    with pytest.warns(UserWarning, match=r"CrossEntropyCost\.delta is replaced"):
        net, *_ = small_run(network2.CrossEntropyCost)
    assert agrees(net, *oracle(lambda z, a, y: 3.0 * (a - y)))
    assert not agrees(net, *oracle(lambda z, a, y: a - y), tol=1e-3)


def test_cost_class_fn_replaced_is_used_for_the_costs(monkeypatch):
    plain, returned, training, evaluation = small_run(
        network2.QuadraticCost, monitor_training_cost=True, monitor_evaluation_cost=True)
    monkeypatch.setattr(network2.QuadraticCost, "fn", staticmethod(lambda a, y: 1.0))
    with pytest.warns(UserWarning, match=r"QuadraticCost\.fn is replaced"):
        net, patched, _, _ = small_run(network2.QuadraticCost, monitor_training_cost=True,
                                       monitor_evaluation_cost=True)
    assert agrees(net, plain.weights, plain.biases, tol=0)     # training is untouched
    l2 = [0.5 * (0.3 / n) * sum(np.linalg.norm(w) ** 2 for w in net.weights)
          for n in (len(training), len(evaluation))]
    # Each example adds fn/n = 1/n, so the cost is 1 (rounded as the sum goes) + the L2 term.
    assert patched[2][-1] == pytest.approx(1.0 + l2[0], rel=1e-12)
    assert patched[0][-1] == pytest.approx(1.0 + l2[1], rel=1e-12)


def test_module_sigmoid_replaced_is_honoured(monkeypatch):
    steep = lambda z: 1.0 / (1.0 + np.exp(-2.0 * z))          # noqa: E731
    monkeypatch.setattr(network2, "sigmoid", steep)
    with pytest.warns(UserWarning, match=r"network2\.sigmoid is replaced"):
        net, *_ = small_run(network2.CrossEntropyCost)
    assert agrees(net, *oracle(lambda z, a, y: a - y, sigma=steep))


def test_monitors_agree_with_nielsens_methods_and_lists_unchanged():
    net, returned, training, evaluation = small_run(
        network2.CrossEntropyCost, monitor_training_cost=True, monitor_training_accuracy=True,
        monitor_evaluation_cost=True, monitor_evaluation_accuracy=True)
    ev_cost, ev_acc, tr_cost, tr_acc = returned
    # The last entries equal what the (compiled) methods say now, in the list's order.
    assert tr_cost[-1] == net.total_cost(training, 0.3)
    assert ev_cost[-1] == net.total_cost(evaluation, 0.3, convert=True)
    assert tr_acc[-1] == net.accuracy(training, convert=True)
    assert ev_acc[-1] == net.accuracy(evaluation)
