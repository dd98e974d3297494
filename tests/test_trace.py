"""loopnet.trace: the numbers come from the kernels and agree with the NumPy matrix form;
the text shows BP1-BP4 with numbers that multiply out; the CLI prints text and JSON.
Tiny sizes so this also runs under NUMBA_DISABLE_JIT=1."""

import argparse
import io
import json
import re
import types
from contextlib import redirect_stdout

import numpy as np
import pytest

import loopnet
from loopnet import kernels, tiles
from loopnet import reference as R
from loopnet.gradcheck import valid_combinations
from loopnet.trace import KEYS, backprop_example, render, to_json, to_jsonable, trace
from conftest import HIDDEN, OUTPUT_COST, make_targets


def small_net(sizes=(2, 3, 2), activation="sigmoid", output="sigmoid", cost="quadratic",
              seed=0, dtype="float64"):
    return loopnet.Net(list(sizes), activation=activation, output=output, cost=cost,
                       seed=seed, dtype=dtype)


def test_keys_shapes_and_copies():
    net = small_net((2, 3, 2))
    tr = trace(net, [0.5, 0.2], 1)
    assert set(tr) == set(KEYS)
    assert tr["sizes"] == [2, 3, 2]
    assert (tr["activation"], tr["output"], tr["cost"]) == ("sigmoid", "sigmoid", "quadratic")
    assert [z.shape for z in tr["z"]] == [(3,), (2,)]
    assert [a.shape for a in tr["a"]] == [(2,), (3,), (2,)]        # input first
    assert [d.shape for d in tr["delta"]] == [(3,), (2,)]
    assert [w.shape for w in tr["nabla_w"]] == [(3, 2), (2, 3)]
    assert [b.shape for b in tr["nabla_b"]] == [(3,), (2,)]
    np.testing.assert_array_equal(tr["a"][0], [0.5, 0.2])
    np.testing.assert_array_equal(tr["x"], [0.5, 0.2])
    np.testing.assert_array_equal(tr["y"], [0.0, 1.0])              # label 1 -> one-hot
    # weights are copies: changing the trace does not change the network
    tr["weights"][0][0, 0] += 1.0
    assert net.weights[0][0, 0] != tr["weights"][0][0, 0]


@pytest.mark.parametrize("act", HIDDEN)
@pytest.mark.parametrize("output,cost", OUTPUT_COST)
def test_trace_matches_matrix_form_and_net_gradient(act, output, cost, rng):
    sizes = (3, 4, 3, 2)
    net = small_net(sizes, act, output, cost, seed=3)
    x = rng.uniform(0, 1, sizes[0])
    y = make_targets(rng, 1, sizes[-1], output, cost)[0]
    tr = trace(net, x, y)
    W = [np.asarray(w) for w in net.weights]
    B = [np.asarray(b) for b in net.biases]
    Z, A, D = R.backprop(W, B, x[None, :], y[None, :], act, output, cost)
    for l in range(len(W)):
        np.testing.assert_allclose(tr["z"][l], Z[l][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(tr["a"][l + 1], A[l + 1][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(tr["delta"][l], D[l][0], rtol=1e-10, atol=1e-14)
    gw, gb = R.gradient(W, B, x[None, :], y[None, :], act, output, cost)
    nw, nb = net.gradient(x[None, :], y[None, :])
    for l in range(len(W)):
        np.testing.assert_allclose(tr["nabla_w"][l], gw[l], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(tr["nabla_b"][l], gb[l], rtol=1e-10, atol=1e-14)
        # net.gradient for m = 1 is this example's gradient (the engine may fuse or
        # reorder the same kernels, so allow for rounding)
        np.testing.assert_allclose(tr["nabla_w"][l], nw[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(tr["nabla_b"][l], nb[l], rtol=1e-12, atol=1e-15)


def test_trace_calls_each_kernel_once_per_layer_and_equation():
    calls = []

    def counting(name):
        fn = getattr(kernels, name)

        def wrapper(*args):
            calls.append(name)
            return fn(*args)
        return wrapper

    ns = types.SimpleNamespace(**{n: counting(n) for n in (
        "forward_layer", "output_delta", "hidden_delta", "accumulate_gradient")})
    net = small_net((2, 3, 4, 2))
    tr = trace(net, [0.1, 0.9], 0, kernels=ns)
    assert calls == (["forward_layer"] * 3 + ["output_delta"] + ["hidden_delta"] * 2
                     + ["accumulate_gradient"] * 3)
    ref = trace(net, [0.1, 0.9], 0)
    for key in ("z", "delta", "nabla_w"):
        for u, v in zip(tr[key], ref[key]):
            np.testing.assert_array_equal(u, v)


def test_float32_network_traces_in_float32():
    net = small_net(dtype="float32")
    tr = trace(net, [0.5, 0.2], [0.0, 1.0])
    assert all(a.dtype == np.float32 for a in tr["a"] + tr["delta"] + tr["nabla_w"])
    ref = trace(small_net(dtype="float64"), [0.5, 0.2], [0.0, 1.0])
    np.testing.assert_allclose(tr["nabla_w"][0], ref["nabla_w"][0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("x,y,msg", [
    ([0.5], 0, "x must hold 2"), ([0.5, 0.2], 2, "out of range"),
    ([0.5, 0.2], [1.0, 0.0, 0.0], "y must be"), ([np.nan, 0.2], 0, "NaN"),
])
def test_bad_input(x, y, msg):
    with pytest.raises(ValueError, match=msg):
        trace(small_net(), x, y)


# ----------------------------------------------------------------------------- text

def rendered(tr, **kw):
    return render(tr, **kw).splitlines()


NUM = r"\(?(-?\d+(?:\.\d+)?(?:e[-+]\d+)?)\)?"


def test_render_labels_each_equation_and_kernel():
    text = render(trace(small_net(), [0.5, 0.2], 1))
    for label, kernel in (("BP1", "output_delta"), ("BP2", "hidden_delta"),
                          ("BP3", "accumulate_gradient"), ("BP4", "accumulate_gradient")):
        line = next(l for l in text.splitlines() if l.startswith(label))
        assert f"loopnet/kernels.py: {kernel}" in line
    forward, gradient = (("forward_layer5", "accumulate_gradient5") if tiles.WIDE_TILES
                         else ("forward_layer3", "accumulate_gradient4"))
    assert f"[loopnet/kernels.py: forward_layer; training runs tiles.{forward} for layer 1" in text
    # which kernel training runs, per line: the fast twin where tiles.FAST_TWIN has one
    bp4 = next(l for l in text.splitlines() if l.startswith("BP4"))
    assert f"training runs tiles.{gradient} (the same sums in the same order)" in bp4
    bp2 = next(l for l in text.splitlines() if l.startswith("BP2"))
    assert "training runs it too" in bp2
    single = render(trace(loopnet.Net([2, 2], seed=0), [0.5, 0.2], 1))
    assert "[loopnet/kernels.py: forward_layer; training runs it too]" in single
    # the issue's example form, with this network's numbers
    assert re.search(r"^  δ\^2_1 = \(a\^2_1 − y_1\) · σ'\(z\^2_1\) = \(" + NUM + r" − 1\) · "
                     + NUM + " = " + NUM + "$", text, re.M)


def test_render_numbers_multiply_out():
    """Each printed line's numbers, as printed (6 digits), reproduce its printed result."""
    tr = trace(small_net((2, 3, 2), seed=4), [0.3, 0.8], 0)
    lines = rendered(tr, digits=6)
    n_checked = 0
    for line in lines:
        m = re.match(r"  δ\^2_\d = .* = \(" + NUM + " − " + NUM + r"\) · " + NUM + " = " + NUM
                     + "$", line)
        if m:                                             # BP1: (a − y) · σ' = δ
            a, y, s, d = map(float, m.groups())
            assert (a - y) * s == pytest.approx(d, rel=1e-5)
            n_checked += 1
        m = re.match(r"  ∂C/∂w\^\d_\d\d = .* = " + NUM + " · " + NUM + " = " + NUM + "$", line)
        if m:                                             # BP4: a · δ = ∂C/∂w
            a, d, g = map(float, m.groups())
            assert a * d == pytest.approx(g, rel=1e-5)
            n_checked += 1
        m = re.match(r"  δ\^1_\d = .* = \(" + NUM + "·" + NUM + r" \+ " + NUM + "·" + NUM
                     + r"\) · " + NUM + " = " + NUM + "$", line)
        if m:                                             # BP2: (w·δ + w·δ) · σ' = δ
            w0, d0, w1, d1, s, d = map(float, m.groups())
            assert (w0 * d0 + w1 * d1) * s == pytest.approx(d, rel=1e-4)
            n_checked += 1
    assert n_checked == 2 + 12 + 3


def test_render_final_numbers_are_the_kernel_values():
    tr = trace(small_net(), [0.5, 0.2], 1)
    lines = rendered(tr, digits=9)
    for l in (1, 2):
        for j, d in enumerate(tr["delta"][l - 1]):
            line = next(s for s in lines if s.startswith(f"  δ^{l}_{j} = "))
            assert line.endswith(f"= {float(d):.9g}")
        for j in range(tr["sizes"][l]):
            for k in range(tr["sizes"][l - 1]):
                line = next(s for s in lines if s.startswith(f"  ∂C/∂w^{l}_{j}{k} = "))
                assert line.endswith(f"= {float(tr['nabla_w'][l - 1][j, k]):.9g}")


def test_render_filters():
    tr = trace(small_net((2, 3, 2)), [0.5, 0.2], 1)
    lines = rendered(tr, layer=1, neuron=2)
    body = [l for l in lines if re.match(r"  (z|a|δ|∂C)", l)]
    assert body, lines
    for l in body:
        lhs = l.split("=")[0]
        assert re.search(r"\^1_2", lhs), l
    assert not any(l.startswith("  δ^2_") for l in lines)
    lines0 = rendered(tr, layer=0)
    assert any(l.startswith("x = a^0") for l in lines0)
    assert not any(l.startswith("  z^") for l in lines0)
    with pytest.raises(ValueError, match="layer"):
        render(tr, layer=3)
    with pytest.raises(ValueError, match="neuron"):
        render(tr, layer=2, neuron=2)


def test_render_big_layers_are_summarised():
    net = small_net((30, 4, 2))
    tr = trace(net, np.linspace(0, 1, 30), 0)
    text = render(tr)
    assert "(30 terms)" in text
    assert "more for j = 0" in text
    assert max(len(l) for l in text.splitlines()) < 200


@pytest.mark.parametrize("act,output,cost", valid_combinations())
def test_render_every_combination(act, output, cost):
    net = small_net((2, 2, 2), act, output, cost, seed=1)
    tr = trace(net, [0.4, 0.6], [0.3, 0.7])
    text = render(tr, digits=4)
    for label in ("BP1", "BP2", "BP3", "BP4"):
        assert label in text
    ascii_text = render(tr, ascii=True)
    ascii_text.encode("ascii")
    # the printed δ^L is the kernel's
    for j, d in enumerate(tr["delta"][-1]):
        line = next(s for s in text.splitlines() if s.startswith(f"  δ^2_{j} = "))
        assert line.endswith(f"= {float(d):.4g}" if d != 0 else "= 0")


def test_json_has_the_issue_keys_and_full_precision():
    tr = trace(small_net(), [0.5, 0.2], 1)
    obj = json.loads(to_json(tr))
    assert set(obj) == set(KEYS)
    assert obj["sizes"] == [2, 3, 2]
    assert len(obj["a"]) == 3 and obj["a"][0] == [0.5, 0.2]
    assert len(obj["z"]) == len(obj["delta"]) == len(obj["nabla_w"]) == 2
    for l in range(2):
        np.testing.assert_array_equal(np.array(obj["nabla_w"][l]), tr["nabla_w"][l])
        np.testing.assert_array_equal(np.array(obj["weights"][l]), tr["weights"][l])
    assert to_jsonable(tr)["activation"] == "sigmoid"


def test_backprop_example_without_a_net():
    W = [np.array([[0.5]]), np.array([[-1.0]])]
    B = [np.array([0.0]), np.array([0.0])]
    z, a, d, nw, nb = backprop_example(W, B, np.array([1.0]), np.array([0.0]), "identity",
                                       "identity", "quadratic")
    # z1 = 0.5, z2 = -0.5, C = ½ z2², δ2 = -0.5, δ1 = w2 δ2 = 0.5
    assert z[0][0] == 0.5 and z[1][0] == -0.5
    assert d[1][0] == -0.5 and d[0][0] == 0.5
    assert nw[1][0, 0] == -0.25 and nw[0][0, 0] == 0.5


# ----------------------------------------------------------------------------- CLI

def run_trace(*argv):
    from loopnet.commands import trace as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    with redirect_stdout(out):
        code = cmd.run(args)
    return code, out.getvalue()


def test_cli_text_and_json_agree():
    code, text = run_trace("--sizes", "2,3,2", "--seed", "0")
    assert code == 0
    assert "BP1" in text and "BP4" in text
    code, out = run_trace("--sizes", "2,3,2", "--seed", "0", "--json")
    assert code == 0
    obj = json.loads(out)
    assert set(obj) == set(KEYS)
    net = loopnet.Net([2, 3, 2], seed=0)
    tr = trace(net, obj["x"], obj["y"])
    for l in range(2):
        np.testing.assert_array_equal(np.array(obj["delta"][l]), tr["delta"][l])
    # the same seed gives the same example and numbers
    assert json.loads(run_trace("--sizes", "2,3,2", "--seed", "0", "--json")[1]) == obj


def test_cli_options():
    code, out = run_trace("--sizes", "2,2,1", "--x", "0.5,0.25", "--y", "0.7", "--activation",
                          "tanh", "--output", "identity", "--cost", "mse", "--layer", "2",
                          "--digits", "5", "--ascii")
    assert code == 0
    out.encode("ascii")
    assert "x = a^0" not in out and "y = [0.7]" in out
    obj = json.loads(run_trace("--sizes", "2,2,3", "--label", "2", "--output", "softmax",
                               "--cost", "log_likelihood", "--json")[1])
    assert obj["y"] == [0.0, 0.0, 1.0]


def test_output_activation_is_the_documented_name_and_output_the_old_one():
    """As in `loopnet train`: --output-activation (shown in --help); --output still works."""
    new = run_trace("--sizes", "2,2,3", "--output-activation", "softmax", "--cost",
                    "log_likelihood", "--json")[1]
    old = run_trace("--sizes", "2,2,3", "--output", "softmax", "--cost", "log_likelihood",
                    "--json")[1]
    default = run_trace("--sizes", "2,2,3", "--json")[1]
    assert new == old != default
    from loopnet.commands import trace as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    shown = parser.format_help()
    assert "--output-activation" in shown and "--output " not in shown


@pytest.mark.parametrize("argv,msg", [
    (("--sizes", "2,x"), "integers"), (("--x", "1,2,3"), "--x has 3"),
    (("--label", "5"), "--label"), (("--layer", "7"), "layer"),
    (("--cost", "cross_entropy", "--output", "identity"), "cross_entropy"),
])
def test_cli_errors_are_one_line(argv, msg, capsys):
    from loopnet.commands import trace as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    code = cmd.run(parser.parse_args(list(argv)))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("loopnet: error: ") and msg in err and err.count("\n") == 1


def test_registered_in_cli(capsys):
    from loopnet import cli
    assert cli.main(["trace", "--sizes", "2,3,2", "--seed", "0", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(KEYS)


def test_top_level_api():
    """loopnet.trace(net, x, y) and loopnet.gradcheck(net, X, Y), once loopnet/__init__.py
    exports them (``from .trace import trace`` / ``from .gradcheck import gradcheck``)."""
    if not callable(getattr(loopnet, "trace", None)):
        pytest.skip("loopnet/__init__.py does not export trace/gradcheck yet (core file)")
    tr = loopnet.trace(loopnet.Net([2, 2], seed=0), [0.1, 0.2], 0)
    assert set(tr) == set(KEYS)
    assert loopnet.gradcheck(loopnet.Net([2, 2], seed=0), [[0.1, 0.2]], [[0.0, 1.0]]).ok
