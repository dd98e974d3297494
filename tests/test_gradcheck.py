"""loopnet.gradcheck: backprop agrees with central differences to < 1e-7 relative on every
activation/output/cost pair in float64, and a deliberately broken backprop is flagged
in the layers it breaks.  Tiny sizes so this also runs under NUMBA_DISABLE_JIT=1."""

import argparse
import io
import json
import types
from contextlib import redirect_stdout

import numpy as np
import pytest

import loopnet
from loopnet import activations, kernels
from loopnet.gradcheck import (GradcheckResult, example_data, gradcheck, gradcheck_all_pairs,
                               summary_table, valid_combinations)
from loopnet.trace import backprop_example


def test_valid_combinations_are_the_ones_net_accepts():
    combos = valid_combinations()
    assert len(combos) == 4 * (5 * 4 - 3 * 2)       # log costs need a sigmoid/softmax output
    for act in activations.HIDDEN_NAMES:
        for out in activations.NAMES:
            for cost in loopnet.costs.NAMES:
                try:
                    loopnet.Net([1, 1], activation=act, output=out, cost=cost)
                    accepted = True
                except ValueError:
                    accepted = False
                assert accepted == ((act, out, cost) in combos)


def test_every_pair_passes_below_1e_7_in_float64():
    results = gradcheck_all_pairs((2, 3, 2), seed=0, n_examples=3)
    assert len(results) == len(valid_combinations())
    for r in results:
        assert r.dtype == "float64"
        assert r.ok, r.table()
        assert r.max_rel_err < 1e-7, r.table()
        assert not r.vacuous, r.table()            # every check compared real gradients
        assert sum(g.n_checked for g in r.groups) == 17
    text = summary_table(results)
    assert "0 failed" in text and "FAILED" not in text


def test_deeper_network_every_parameter():
    net = loopnet.Net([3, 4, 3, 2], activation="tanh", output="softmax", cost="log_likelihood",
                      seed=5)
    X, Y = example_data([3, 4, 3, 2], "softmax", n_examples=5, seed=6)
    r = gradcheck(net, X, Y)
    assert [(g.layer, g.kind) for g in r.groups] == [(1, "w"), (1, "b"), (2, "w"), (2, "b"),
                                                     (3, "w"), (3, "b")]
    assert [g.n_checked for g in r.groups] == [12, 4, 12, 3, 6, 2]
    assert r.ok and r.max_rel_err < 1e-7, r.table()
    assert set(r.per_layer()) == {1, 2, 3}


# --------------------------------------------------------------- a broken backprop is caught

def averaged_gradient_with(ns):
    """A gradient function built from per-example kernels ``ns`` (some possibly broken)."""
    def gradient(net, X, Y):
        Y = np.asarray(Y, np.float64)
        W = [np.ascontiguousarray(w) for w in net.weights]
        B = [np.ascontiguousarray(b) for b in net.biases]
        sw = [np.zeros_like(w) for w in W]
        sb = [np.zeros_like(b) for b in B]
        for x, y in zip(np.asarray(X, np.float64), Y):
            _, _, _, nw, nb = backprop_example(W, B, x, y, net.activation, net.output,
                                               net.cost_name, kernels=ns)
            for i in range(len(W)):
                sw[i] += nw[i]
                sb[i] += nb[i]
        m = len(Y)
        return [g / m for g in sw], [g / m for g in sb]
    return gradient


def hidden_delta_without_sigma_prime(delta, z, a, w_next, delta_next, act):
    """BP2 with the σ'(z^l_j) factor dropped: the classic backprop bug."""
    n_next, n = w_next.shape
    for j in range(n):
        s = 0.0
        for k in range(n_next):
            s += delta_next[k] * w_next[k, j]
        delta[j] = s


def output_delta_without_sigma_prime(delta, z, a, y, act, cost):
    """BP1 with σ'(z^L_j) dropped (right only for the paired costs)."""
    for j in range(z.shape[0]):
        delta[j] = a[j] - y[j]


def kernels_with(**broken):
    names = ("forward_layer", "output_delta", "hidden_delta", "accumulate_gradient")
    return types.SimpleNamespace(**{n: broken.get(n, getattr(kernels, n)) for n in names})


def test_correct_kernels_through_the_same_harness_pass():
    net = loopnet.Net([2, 3, 2], seed=1)
    X, Y = example_data([2, 3, 2], "sigmoid", seed=2)
    r = gradcheck(net, X, Y, gradient=averaged_gradient_with(kernels_with()))
    assert r.ok and r.max_rel_err < 1e-7, r.table()


def test_bp2_without_sigma_prime_is_flagged_in_the_hidden_layer_only():
    net = loopnet.Net([2, 3, 2], seed=1)
    X, Y = example_data([2, 3, 2], "sigmoid", seed=2)
    r = gradcheck(net, X, Y, gradient=averaged_gradient_with(
        kernels_with(hidden_delta=hidden_delta_without_sigma_prime)))
    assert not r.ok
    per = r.per_layer()
    assert per[1] > 0.5          # δ^1 is off by the factor 1/σ'(z) ≥ 4: a large error
    assert per[2] < 1e-7         # the output layer's gradient does not use BP2
    assert "FAILED" in r.table()
    assert r.table().splitlines()[2].split()[1] == "w"
    assert r.groups[0].worst.startswith("w^1_")


def test_bp1_without_sigma_prime_is_flagged_everywhere():
    net = loopnet.Net([2, 3, 2], seed=1)                   # sigmoid output, quadratic cost
    X, Y = example_data([2, 3, 2], "sigmoid", seed=2)
    r = gradcheck(net, X, Y, gradient=averaged_gradient_with(
        kernels_with(output_delta=output_delta_without_sigma_prime)))
    assert not r.ok
    assert all(v > 0.5 for v in r.per_layer().values())
    # ... while for cross-entropy with a sigmoid output the same formula is the right one
    net = loopnet.Net([2, 3, 2], cost="cross_entropy", seed=1)
    r = gradcheck(net, X, Y, gradient=averaged_gradient_with(
        kernels_with(output_delta=output_delta_without_sigma_prime)))
    assert r.ok, r.table()


def test_missing_average_is_flagged():
    net = loopnet.Net([2, 2, 1], seed=3)
    X, Y = example_data([2, 2, 1], "sigmoid", n_examples=4, seed=4)

    def summed(n, A, B):                       # forgets the 1/m: 4x too large
        g = n.gradient_sum(A, B)
        return n.unflatten(g)
    r = gradcheck(net, X, Y, gradient=summed)
    assert not r.ok and r.max_rel_err > 0.5


# --------------------------------------------------------------- options and edge cases

def test_net_is_not_modified_and_float32_goes_through_float64():
    net = loopnet.Net([2, 3, 2], seed=7, dtype="float32")
    before = net.params.copy()
    X, Y = example_data([2, 3, 2], "sigmoid", seed=8, dtype="float32")
    r = gradcheck(net, X, Y)
    np.testing.assert_array_equal(net.params, before)
    assert net.params.dtype == np.float32
    assert r.dtype == "float64" and r.ok, r.table()


def test_second_order_stencil_is_coarser_but_passes_a_looser_tol():
    net = loopnet.Net([2, 3, 2], seed=1)
    X, Y = example_data([2, 3, 2], "sigmoid", seed=2)
    r2 = gradcheck(net, X, Y, order=2, h=1e-5, tol=1e-5)
    r4 = gradcheck(net, X, Y)
    assert r2.ok and r4.ok
    assert r4.max_abs_err < r2.max_abs_err
    with pytest.raises(ValueError, match="order"):
        gradcheck(net, X, Y, order=3)
    with pytest.raises(ValueError, match="h must"):
        gradcheck(net, X, Y, h=0)


def test_random_sample_for_big_layers():
    net = loopnet.Net([6, 5, 3], seed=2)
    X, Y = example_data([6, 5, 3], "sigmoid", seed=3)
    r = gradcheck(net, X, Y, max_per_group=4, sample_seed=1)
    assert [(g.n_checked, g.n_params) for g in r.groups] == [(4, 30), (4, 5), (4, 15), (3, 3)]
    assert r.ok
    again = gradcheck(net, X, Y, max_per_group=4, sample_seed=1)
    assert [g.worst for g in again.groups] == [g.worst for g in r.groups]


def test_dead_relu_output_is_reported_as_vacuous():
    net = loopnet.Net([2, 2, 1], activation="sigmoid", output="relu", cost="quadratic", seed=0)
    net.biases = [np.zeros(2), np.array([-50.0])]          # output never fires
    X, Y = example_data([2, 2, 1], "relu", seed=1)
    r = gradcheck(net, X, Y)
    assert r.vacuous and r.ok
    assert any("tested nothing" in w for w in r.warnings)


def test_relu_kink_warning():
    net = loopnet.Net([1, 1, 1], activation="relu", output="identity", cost="quadratic", seed=0)
    net.weights = [np.array([[1.0]]), np.array([[1.0]])]
    net.biases = [np.array([-0.5 + 1e-4]), np.array([0.0])]  # z^1 = x - 0.4999 ~ 1e-4
    r = gradcheck(net, np.array([[0.5]]), np.array([[1.0]]))
    assert r.min_relu_margin == pytest.approx(1e-4)
    assert any("kink" in w for w in r.warnings)


def test_result_serialises():
    net = loopnet.Net([2, 2, 2], seed=0)
    X, Y = example_data([2, 2, 2], "sigmoid")
    r = gradcheck(net, X, Y)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["ok"] is True and d["sizes"] == [2, 2, 2] and len(d["groups"]) == 4
    assert isinstance(r, GradcheckResult) and str(r) == r.table()
    r.table(ascii=True).encode("ascii")


# --------------------------------------------------------------- CLI

def run_cmd(*argv):
    from loopnet.commands import gradcheck as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = io.StringIO()
    with redirect_stdout(out):
        code = cmd.run(parser.parse_args(list(argv)))
    return code, out.getvalue()


def test_cli_single_and_json():
    code, out = run_cmd("--sizes", "2,3,2", "--seed", "0")
    assert code == 0 and ": ok" in out
    code, out = run_cmd("--sizes", "2,2,2", "--json", "--output", "softmax", "--cost",
                        "log_likelihood")
    assert code == 0 and json.loads(out)["ok"] is True


def test_cli_all_pairs():
    code, out = run_cmd("--sizes", "2,2,2", "--all-pairs", "--examples", "2")
    assert code == 0
    assert f"{len(valid_combinations())} combinations, 0 failed" in out


def test_cli_failure_exit_code_and_usage_errors(capsys):
    # a tolerance nothing can meet makes the check fail: exit status 1
    code, out = run_cmd("--sizes", "2,2,2", "--tol", "0", "--order", "2")
    assert code == 1 and "FAILED" in out
    code, _ = run_cmd("--sizes", "2,0,2")
    assert code == 2
    assert capsys.readouterr().err.startswith("loopnet: error: ")


def test_registered_in_cli(capsys):
    from loopnet import cli
    assert cli.main(["gradcheck", "--sizes", "2,2,2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
