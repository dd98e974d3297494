"""loopnet.trace with dropout (issue 17 item 4): ``trace(net, x, y, dropout=(epoch, row))``
traces the training pass of that example, with the mask training applied.

Oracles: a NumPy loop of the matrix form (loopnet.reference) applying masks drawn
independently with loopnet.random.uniform_at (u ≥ p keeps, as bernoulli_keep), the
parameters ``fit`` itself produced, and central differences of the cost with the mask fixed.
Tiny sizes so this also runs under NUMBA_DISABLE_JIT=1."""

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import loopnet
import loopnet.io
from loopnet import reference as R
from loopnet.random import uniform_at
from loopnet.trace import DropoutKey, dropout_key, render, sgd_step, to_json, trace, view_model
from conftest import HIDDEN, OUTPUT_COST, make_targets


def data(n=6, n_in=3, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, n_in)), np.eye(n_out)[rng.integers(0, n_out, n)]


def trained(sizes=(3, 5, 4, 2), dropout=(0.5, 0.25), epochs=1, seed=1, **kw):
    """(network before training, trained network, X, Y): full-batch, unshuffled epochs."""
    X, Y = data(n_in=sizes[0], n_out=sizes[-1])
    net = loopnet.Net(list(sizes), seed=seed, dropout=list(dropout), **kw)
    before = net.copy()
    net.fit(X, Y, epochs=epochs, batch_size=len(X), eta=0.5, shuffle=False, monitor=False)
    return before, net, X, Y


def numpy_masked_gradient(W, B, x, y, act, out, cost, p, seed, row):
    """∂C_x/∂w, ∂C_x/∂b of one example in matrix form with the masks of key (seed, row):
    ã^l = σ(z^l) ⊙ m^l/(1 − p_l), δ^l = (w^{l+1,T} δ^{l+1}) ⊙ σ'(z^l) ⊙ m^l/(1 − p_l)."""
    L = len(W)
    A, Z, M = [x[None, :]], [], []
    for l in range(L):
        z = A[-1] @ W[l].T + B[l]
        a = R.sigma(act if l < L - 1 else out, z)
        if l < L - 1:
            m = np.array([uniform_at(seed, row, l, j) >= p[l] for j in range(z.shape[1])])
            M.append(m)
            a = a * m / (1 - p[l])
        Z.append(z)
        A.append(a)
    D = [None] * L
    D[-1] = R.output_error(Z[-1], A[-1], y[None, :], out, cost)
    for l in range(L - 2, -1, -1):
        D[l] = (D[l + 1] @ W[l + 1]) * R.sigma_prime(act, Z[l]) * M[l] / (1 - p[l])
    return [d.T @ a for d, a in zip(D, A)], [d[0] for d in D], M


@pytest.mark.parametrize("act", HIDDEN)
@pytest.mark.parametrize("output,cost", OUTPUT_COST)
def test_traced_gradient_matches_a_numpy_loop_with_the_same_masks(act, output, cost, rng):
    net = loopnet.Net([3, 5, 4, 2], activation=act, output=output, cost=cost, seed=3,
                      dropout=[0.5, 0.3])
    x = rng.uniform(0, 1, 3)
    y = make_targets(rng, 1, 2, output, cost)[0]
    seed, row = 987654321, 4
    tr = trace(net, x, y, dropout=DropoutKey(seed, row))
    W = [np.asarray(w) for w in net.weights]
    B = [np.asarray(b) for b in net.biases]
    gw, gb, masks = numpy_masked_gradient(W, B, x, y, act, output, cost, [0.5, 0.3], seed, row)
    for l in range(2):
        np.testing.assert_array_equal(tr["dropout"]["mask"][l], masks[l].astype(np.int8))
    for l in range(3):       # the bound of test_trace.py's comparison with the matrix form
        np.testing.assert_allclose(tr["nabla_w"][l], gw[l], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(tr["nabla_b"][l], gb[l], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("shuffle", [False, True])
def test_traced_gradients_sum_to_the_step_fit_took(shuffle):
    """A full-batch epoch: w ← w − (η/n) Σ_x ∇C_x with each example's own mask; the traces
    with (epoch 1, row r) must add up to the step ``fit`` took (the seed comes from the
    epoch's history record, so a wrong key or key layout shows here)."""
    X, Y = data(n=7)
    net = loopnet.Net([3, 6, 5, 2], seed=2, dropout=[0.5, 0.4])
    before = net.copy()
    net.fit(X, Y, epochs=1, batch_size=len(X), eta=0.5, shuffle=shuffle, monitor=False)
    assert isinstance(net.history[0]["dropout_seed"], int)
    before.history, before.epoch = net.history, net.epoch      # its weights, trained history
    sums = [np.zeros_like(w) for w in net.weights]
    dropped = 0
    for r in range(len(X)):
        tr = trace(before, X[r], Y[r], dropout=(1, r))
        dropped += sum(int((m == 0).sum()) for m in tr["dropout"]["mask"])
        for l in range(3):
            sums[l] += tr["nabla_w"][l]
    assert dropped > 0
    for l in range(3):
        step = before.weights[l] - 0.5 / len(X) * sums[l]
        np.testing.assert_allclose(net.weights[l], step, rtol=0, atol=1e-14)


def test_a_later_epoch_uses_its_own_recorded_seed():
    before, net, X, Y = trained(epochs=1)
    after_one = net.copy()
    net.fit(X, Y, epochs=1, batch_size=len(X), eta=0.5, shuffle=False, monitor=False)
    s1, s2 = net.history[0]["dropout_seed"], net.history[1]["dropout_seed"]
    assert s1 != s2 and net.epoch == 2
    assert dropout_key(net, 2, 3) == DropoutKey(s2, 3, 2)
    sums = [np.zeros_like(w) for w in net.weights]
    for r in range(len(X)):
        tr = trace(after_one, X[r], Y[r], dropout=DropoutKey(s2, r, 2))
        for l in range(3):
            sums[l] += tr["nabla_w"][l]
    for l in range(3):
        np.testing.assert_allclose(net.weights[l], after_one.weights[l] - 0.5 / len(X) * sums[l],
                                   rtol=0, atol=1e-14)


def masked_cost(W, B, x, y, act, out, cost, p, masks):
    """C_x by the NumPy matrix form with the masks held fixed."""
    a = x[None, :]
    for l in range(len(W)):
        a = R.sigma(act if l < len(W) - 1 else out, a @ W[l].T + B[l])
        if l < len(W) - 1:
            a = a * masks[l] / (1 - p[l])
    return float(R.cost_per_example(cost, a, y[None, :])[0])


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_traced_gradient_matches_finite_differences_with_the_mask_fixed(act):
    net = loopnet.Net([3, 5, 4, 2], activation=act, seed=5, dropout=[0.5, 0.5])
    x, y = np.array([0.3, -0.7, 0.9]), np.array([0.0, 1.0])
    tr = trace(net, x, y, dropout=DropoutKey(2024, 1))
    masks = [m.astype(float) for m in tr["dropout"]["mask"]]
    assert any((m == 0).any() for m in masks) and all((m == 1).any() for m in masks)
    W = [np.array(w) for w in net.weights]
    B = [np.array(b) for b in net.biases]
    h = 1e-6
    for l in range(3):
        for j, k in np.ndindex(W[l].shape):
            W[l][j, k] += h
            up = masked_cost(W, B, x, y, act, "sigmoid", "quadratic", [0.5, 0.5], masks)
            W[l][j, k] -= 2 * h
            down = masked_cost(W, B, x, y, act, "sigmoid", "quadratic", [0.5, 0.5], masks)
            W[l][j, k] += h
            assert abs((up - down) / (2 * h) - tr["nabla_w"][l][j, k]) < 1e-8
    # the cost the trace reports is that of the masked pass
    assert abs(tr["cost_x"] - masked_cost(W, B, x, y, act, "sigmoid", "quadratic",
                                          [0.5, 0.5], masks)) < 1e-15


def test_without_a_key_or_with_p_zero_the_trace_is_the_plain_one_bit_for_bit():
    x, y = [0.2, 0.9, -0.4], [1.0, 0.0]
    plain = trace(loopnet.Net([3, 5, 4, 2], seed=7), x, y)
    no_key = trace(loopnet.Net([3, 5, 4, 2], seed=7, dropout=0.5), x, y)
    p_zero = trace(loopnet.Net([3, 5, 4, 2], seed=7, dropout=0.0), x, y,
                   dropout=DropoutKey(123, 4))
    assert "dropout" not in no_key and to_json(no_key) == to_json(plain)
    for tr in (no_key, p_zero):
        for key in ("z", "a", "delta", "nabla_w", "nabla_b"):
            for u, v in zip(tr[key], plain[key]):
                assert np.array_equal(u, v)
        assert tr["cost_x"] == plain["cost_x"]
    assert all((m == 1).all() for m in p_zero["dropout"]["mask"])


def test_a_layer_with_p_zero_keeps_every_neuron_unscaled():
    tr = trace(loopnet.Net([3, 5, 4, 2], seed=7, dropout=[0.6, 0.0]), [0.2, 0.9, -0.4], 1,
               dropout=DropoutKey(99, 2))
    assert (tr["dropout"]["mask"][1] == 1).all()
    assert np.array_equal(tr["a"][2], tr["dropout"]["a"][1])
    kept = tr["dropout"]["mask"][0] == 1
    np.testing.assert_array_equal(tr["a"][1][~kept], 0.0)
    np.testing.assert_allclose(tr["a"][1][kept], tr["dropout"]["a"][0][kept] / 0.4, rtol=1e-15)


@pytest.mark.parametrize("net_kw, key, match", [
    ({}, (1, 0), "has no dropout"),
    ({"dropout": 0.0}, (1, 0), "has no dropout"),
    ({"dropout": 0.5}, (1, -1), r"\(>= 0\), got -1"),
    ({"dropout": 0.5}, (0, 0), r"trained for \(1..1\), got 0"),
    ({"dropout": 0.5}, (2, 0), r"trained for \(1..1\), got 2"),
    ({"dropout": 0.5}, (True, 0), "must be an integer"),
    ({"dropout": 0.5}, (1, 0.5), "must be an integer"),
    ({"dropout": 0.5}, (1, 2, 3), r"\(epoch, example index\)"),
    ({"dropout": 0.5}, DropoutKey(-1, 0), "seed must be between"),
    ({"dropout": 0.5}, DropoutKey(5, -3), r"\(>= 0\), got -3"),
])
def test_bad_keys_get_a_clear_error(net_kw, key, match):
    X, Y = data()
    net = loopnet.Net([3, 4, 2], seed=1, **net_kw)
    net.fit(X, Y, epochs=1, batch_size=3, monitor=False)
    with pytest.raises(ValueError, match=match):
        trace(net, X[0], Y[0], dropout=key)


def test_an_epoch_without_a_recorded_seed_is_named():
    net = loopnet.Net([3, 4, 2], seed=1)
    X, Y = data()
    net.fit(X, Y, epochs=1, batch_size=3, monitor=False)
    net.dropout = 0.5                           # dropout switched on after that epoch
    with pytest.raises(ValueError, match="epoch 1 has no recorded dropout seed"):
        trace(net, X[0], Y[0], dropout=(1, 0))


def test_render_json_and_page_show_the_mask():
    net = loopnet.Net([3, 6, 2], seed=0, dropout=0.5)
    tr = trace(net, [0.1, 0.5, 0.9], 0, dropout=DropoutKey(12, 2))
    m = tr["dropout"]["mask"][0]
    assert 0 < m.sum() < 6
    text = render(tr)
    assert f"p_1 = 0.5: mask^1 = [{' '.join(str(v) for v in m)}]" in text
    assert text.count("(dropped)") == 2 * int((m == 0).sum())     # ã line and δ line
    j = int(np.flatnonzero(m == 0)[0])
    assert f"ã^1_{j} = a^1_{j} · m^1_{j}/(1 − p)" in text
    assert "a~^1" in render(tr, ascii=True)
    obj = json.loads(to_json(tr))
    assert obj["dropout"]["mask"] == [m.tolist()] and obj["dropout"]["p"] == [0.5]
    assert obj["dropout"]["seed"] == 12 and obj["dropout"]["index"] == 2
    vm = view_model(tr)
    assert vm["lay"][1]["mask"] == m.tolist() and "dropped" in vm["dropout"]
    assert "mask" not in vm["lay"][2]
    assert "dropout" not in view_model(trace(net, [0.1, 0.5, 0.9], 0))
    assert "neuron dropped" in tr.to_html() or ".dropped" in tr.to_html()


def test_the_update_step_keeps_the_mask():
    """With the mask fixed, ∇C_x is the gradient of the masked cost: a small step lowers it."""
    net = loopnet.Net([3, 6, 2], seed=0, dropout=0.5)
    tr = trace(net, [0.1, 0.5, 0.9], 0, dropout=DropoutKey(12, 2))
    after = sgd_step(tr, 0.01)
    assert after["cost_x"] < tr["cost_x"]


# ----------------------------------------------------------------------------- CLI

def run_trace(*argv):
    from loopnet.commands import trace as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args([str(a) for a in argv])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cmd.run(args)
    return code, out.getvalue(), err.getvalue()


def test_cli_traces_a_saved_models_training_pass(tmp_path):
    (Xtr, ytr), _ = loopnet.data.digits_split()
    net = loopnet.Net([64, 5, 10], seed=3, dropout=0.5)
    net.fit(Xtr[:20], ytr[:20], epochs=2, batch_size=10, monitor=False)
    model = tmp_path / "m.npz"
    loopnet.io.save(net, model)
    code, out, _ = run_trace("--model", model, "--dataset", "digits", "--split", "train",
                             "--index", 7, "--dropout-epoch", 2, "--json")
    assert code == 0
    d = json.loads(out)["dropout"]
    seed = net.history[1]["dropout_seed"]
    assert (d["epoch"], d["index"], d["seed"]) == (2, 7, seed)
    assert d["mask"] == [[int(uniform_at(seed, 7, 0, j) >= 0.5) for j in range(5)]]
    code, text, _ = run_trace("--model", model, "--dataset", "digits", "--dropout-epoch", 1,
                              "--dropout-example", 3)
    assert code == 0 and "training pass of epoch 1, example row 3" in text


@pytest.mark.parametrize("argv, msg", [
    (("--sizes", "2,3,2", "--dropout-epoch", 1, "--dropout-example", 0), "has no dropout"),
    (("--sizes", "2,3,2", "--dropout-example", 0), "--dropout-example needs --dropout-epoch"),
])
def test_cli_bad_dropout_options(argv, msg):
    code, _, err = run_trace(*argv)
    assert code == 2 and msg in err and err.count("\n") == 1


def test_cli_model_errors(tmp_path):
    net = loopnet.Net([64, 5, 10], seed=3, dropout=0.5)
    (Xtr, ytr), _ = loopnet.data.digits_split()
    net.fit(Xtr[:10], ytr[:10], epochs=1, batch_size=10, monitor=False)
    model = tmp_path / "m.npz"
    loopnet.io.save(net, model)
    for argv, msg in [(("--dropout-epoch", 1), "needs --dropout-example"),
                      (("--dropout-epoch", 1, "--dropout-example", -1), "got -1"),
                      (("--dropout-epoch", 4, "--dropout-example", 1), "(1..1), got 4")]:
        code, _, err = run_trace("--model", model, "--dataset", "digits", *argv)
        assert code == 2 and msg in err, err


def test_cli_maps_a_train_example_to_its_row_after_the_validation_split(tmp_path, capsys):
    """'loopnet train --validation' trains on a sorted subset of the rows: --index of the
    training set is then keyed by its place in that subset; a held-out one has no mask."""
    from loopnet.cli import main
    from loopnet.commands.train import validation_split
    model = tmp_path / "v.npz"
    assert main(["train", "--sizes", "64,5,10", "--epochs", "1", "--dropout", "0.5",
                 "--validation", "0.2", "--limit", "100", "--seed", "4", "--save", str(model),
                 "--quiet"]) == 0
    capsys.readouterr()
    net = loopnet.io.load(model)
    rows, held = validation_split(100, 0.2, 4)       # --limit 100 training examples
    index = int(rows[10])
    assert rows[10] != 10                 # the split moved it, or this checks nothing
    code, out, _ = run_trace("--model", model, "--split", "train", "--index", index,
                             "--dropout-epoch", 1, "--json")
    assert code == 0
    d = json.loads(out)["dropout"]
    seed = net.history[0]["dropout_seed"]
    assert d["index"] == 10
    assert d["mask"] == [[int(uniform_at(seed, 10, 0, j) >= 0.5) for j in range(5)]]
    code, _, err = run_trace("--model", model, "--split", "train", "--index", int(held[0]),
                             "--dropout-epoch", 1)
    assert code == 2 and "held out for validation" in err
