"""The worked examples of loopnet.examples, checked against numbers computed here
independently (plain ``math``, never loopnet) and against the numbers written in their
comments.  Tiny sizes so this also runs under NUMBA_DISABLE_JIT=1."""

import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from loopnet.examples import bp_equations, chain, hand_worked, matrix_form
from loopnet.trace import trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


# ----------------------------------------------------------------- the one-neuron chain

def test_chain_matches_the_scalar_chain_rule_computed_here():
    # x = 0.9, y = 1; (w, b) = (0.5, 0.1), (-1.0, 0.3), (2.0, -0.5); C0 = (a^3 - y)^2
    a0 = 0.9
    z1 = 0.5 * a0 + 0.1
    a1 = sig(z1)
    z2 = -1.0 * a1 + 0.3
    a2 = sig(z2)
    z3 = 2.0 * a2 - 0.5
    a3 = sig(z3)
    dC_da3 = 2 * (a3 - 1.0)
    d3 = dC_da3 * a3 * (1 - a3)             # ∂C0/∂z^3 = σ'(z^3) · 2(a^3 − y)
    d2 = 2.0 * d3 * a2 * (1 - a2)           # ∂C0/∂z^2 = w^3 · δ^3 · σ'(z^2)
    d1 = -1.0 * d2 * a1 * (1 - a1)          # ∂C0/∂z^1 = w^2 · δ^2 · σ'(z^1)
    tr = trace(chain.make_net(), [0.9], [1.0])
    for got, want in [(tr["z"][0][0], z1), (tr["z"][2][0], z3), (tr["a"][3][0], a3),
                      (tr["delta"][2][0], d3), (tr["delta"][1][0], d2), (tr["delta"][0][0], d1),
                      (tr["nabla_w"][2][0, 0], a2 * d3),     # ∂C0/∂w^L = a^{L−1} σ'(z^L) 2(a^L − y)
                      (tr["nabla_w"][1][0, 0], a1 * d2), (tr["nabla_w"][0][0, 0], a0 * d1),
                      (tr["nabla_b"][2][0], d3)]:
        assert got == pytest.approx(want, rel=1e-13, abs=1e-16)
    # the numbers written in the module's docstring (9 significant digits)
    for got, want in [(a3, 0.582846457), ((a3 - 1) ** 2, 0.174017078), (d3, -0.202850475),
                      (a2 * d3, -0.0846362595), (d2, -0.0986461483), (a1 * d2, -0.0625550336),
                      (d1, 0.0228866604), (a0 * d1, 0.0205979943)]:
        assert got == pytest.approx(want, rel=5e-9)    # 9 significant digits
        assert f"{want:.9g}".lstrip("-").rstrip("0") in chain.__doc__.replace("−", "-")


def test_chain_main_agrees_with_trace():
    res = chain.main(verbose=False)
    assert res["max_abs_diff"] < 1e-15
    assert len(res["rows"]) == 10


# ----------------------------------------------------------------- 2-2-2 by hand

def mazur_by_hand():
    """Mazur's 2-2-2 network worked with math.exp, nothing else (neurons from 0)."""
    x, y = (0.05, 0.10), (0.01, 0.99)
    w1, b1 = ((0.15, 0.20), (0.25, 0.30)), (0.35, 0.35)
    w2, b2 = ((0.40, 0.45), (0.50, 0.55)), (0.60, 0.60)
    z1 = [w1[j][0] * x[0] + w1[j][1] * x[1] + b1[j] for j in range(2)]
    a1 = [sig(v) for v in z1]
    z2 = [w2[j][0] * a1[0] + w2[j][1] * a1[1] + b2[j] for j in range(2)]
    a2 = [sig(v) for v in z2]
    cost = sum(0.5 * (a2[j] - y[j]) ** 2 for j in range(2))
    d2 = [(a2[j] - y[j]) * a2[j] * (1 - a2[j]) for j in range(2)]
    d1 = [(w2[0][j] * d2[0] + w2[1][j] * d2[1]) * a1[j] * (1 - a1[j]) for j in range(2)]
    nw1 = [[d1[j] * x[k] for k in range(2)] for j in range(2)]
    nw2 = [[d2[j] * a1[k] for k in range(2)] for j in range(2)]
    return {"z": [z1, z2], "a": [list(x), a1, a2], "cost": cost, "delta": [d1, d2],
            "nabla_b": [d1, d2], "nabla_w": [nw1, nw2],
            "sigma_prime": [[v * (1 - v) for v in a1], [v * (1 - v) for v in a2]]}


def test_hand_worked_trace_equals_math_exp():
    mine = mazur_by_hand()
    tr = hand_worked.main(verbose=False)["trace"]
    for key in ("z", "a", "delta", "nabla_b", "nabla_w"):
        for got, want in zip(tr[key], mine[key]):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-18)


def test_numbers_written_in_the_example_are_right():
    mine = mazur_by_hand()
    for key, written in hand_worked.HAND.items():
        np.testing.assert_allclose(np.array(written, dtype=float), np.array(mine[key]),
                                   rtol=6e-9, err_msg=key)
    # and agree with the values Mazur published for the same network
    assert mine["cost"] == pytest.approx(hand_worked.MAZUR["E_total"], abs=1e-9)
    assert mine["nabla_w"][1][0][0] == pytest.approx(hand_worked.MAZUR["dE/dw5"], abs=1e-9)
    assert mine["nabla_w"][0][0][0] == pytest.approx(hand_worked.MAZUR["dE/dw1"], abs=1e-9)
    # every number of HAND is also written in the docstring
    doc = hand_worked.__doc__.replace("−", "-")
    for key in ("z", "a", "delta", "nabla_w", "sigma_prime"):
        for v in np.ravel(np.array(hand_worked.HAND[key], dtype=float)):
            assert re.search(re.escape(f"{v:.9g}".rstrip("0").rstrip(".")), doc), (key, v)


def test_hand_worked_numbers_match_the_trace_to_all_printed_digits():
    """Each result the trace prints with 6 digits is the hand-worked number rounded to 6."""
    H = hand_worked.HAND
    text = hand_worked.main(verbose=False, digits=6)["text"]
    lines = text.splitlines()

    def printed(prefix):
        line = next(l for l in lines if l.startswith(prefix))
        return line.rsplit("= ", 1)[1]

    def six(v):
        return f"{v:.6g}"

    n = 0
    for l in (1, 2):
        for j in range(2):
            assert printed(f"  z^{l}_{j} = ") == six(H["z"][l - 1][j])
            assert printed(f"  a^{l}_{j} = ") == six(H["a"][l][j])
            assert printed(f"  δ^{l}_{j} = ") == six(H["delta"][l - 1][j])
            assert printed(f"  ∂C/∂b^{l}_{j} = ") == six(H["nabla_b"][l - 1][j])
            n += 4
            for k in range(2):
                assert printed(f"  ∂C/∂w^{l}_{j}{k} = ") == six(H["nabla_w"][l - 1][j][k])
                n += 1
    cost_line = next(l for l in lines if l.startswith("Cost"))
    assert f"= {six(H['cost'])}   [" in cost_line
    # σ'(z) in the BP1 / BP2 lines
    for j in range(2):
        assert f") · {six(H['sigma_prime'][1][j])} = " in next(
            l for l in lines if l.startswith(f"  δ^2_{j} = "))
        assert f") · {six(H['sigma_prime'][0][j])} = " in next(
            l for l in lines if l.startswith(f"  δ^1_{j} = "))
    assert n == 24


def test_cli_example_prints_the_same_trace():
    import argparse
    import io
    from contextlib import redirect_stdout
    from loopnet.commands import trace as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = io.StringIO()
    with redirect_stdout(out):
        assert cmd.run(parser.parse_args(["--example", "hand_worked", "--digits", "6"])) == 0
    assert out.getvalue() == hand_worked.main(verbose=False, digits=6)["text"]


# ----------------------------------------------------------------- BP1-BP4 and matrix form

@pytest.mark.parametrize("act,out,cost", [
    ("sigmoid", "sigmoid", "quadratic"), ("tanh", "softmax", "log_likelihood"),
    ("relu", "identity", "mse"), ("sigmoid", "softmax", "quadratic"),
    ("identity", "sigmoid", "cross_entropy"),
])
def test_bp_equations_hold_numerically(act, out, cost):
    res = bp_equations.main(activation=act, output=out, cost=cost, verbose=False)
    assert set(res) == {"BP1", "BP2", "BP3", "BP4"}
    assert [res[k][0] for k in ("BP1", "BP2", "BP3", "BP4")] == [2, 7, 9, 30]
    for name, (n, eq_err, fd_err) in res.items():
        assert eq_err < 1e-14, name          # the kernel computes the equation as written
        assert fd_err < 1e-8, name           # ... and the equation is ∂C/∂z, ∂C/∂b, ∂C/∂w


def test_bp_check_catches_a_wrong_delta():
    net_tr = trace(__import__("loopnet").Net([2, 3, 2], seed=0), [0.3, 0.7], 1)
    net_tr["delta"][0] = net_tr["delta"][0] * 1.01
    res = bp_equations.check(net_tr)
    assert res["BP2"][1] > 1e-6 and res["BP2"][2] > 1e-6


@pytest.mark.parametrize("act,out,cost", [
    ("sigmoid", "softmax", "log_likelihood"), ("tanh", "sigmoid", "quadratic"),
    ("relu", "softmax", "mse"),
])
def test_matrix_form_equals_loop_form(act, out, cost):
    diffs = matrix_form.main(activation=act, output=out, cost=cost, verbose=False)
    assert len(diffs) == 3 * 3 + 3
    for name, d in diffs.items():
        assert d < 1e-13, name


@pytest.mark.parametrize("name", ["chain", "bp_equations", "hand_worked", "matrix_form"])
def test_examples_run_as_scripts(name):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", f"loopnet.examples.{name}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


# ----------------------------------------------------------------- README section

def readme_section():
    path = os.path.join(ROOT, "README.md")
    if not os.path.exists(path):
        pytest.skip("no README.md")
    text = open(path, encoding="utf-8").read()
    start = text.find("## Learning backprop with loopnet")
    if start < 0:
        pytest.skip("README has no 'Learning backprop with loopnet' section")
    end = text.find("\n## ", start + 3)
    return text[start:end if end > 0 else len(text)]


def test_readme_table_names_tests_that_exist():
    section = readme_section()
    refs = re.findall(r"`(tests/\w+\.py)::(\w+)`", section)
    assert len(refs) >= 10
    for path, name in refs:
        source = open(os.path.join(ROOT, path), encoding="utf-8").read()
        assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name}"
    for func in re.findall(r"`loopnet/kernels\.py: (\w+)`", section):
        from loopnet import kernels
        assert hasattr(kernels, func), func


def test_readme_outputs_are_real():
    """Every line shown in the README's trace and gradcheck blocks is in the real output."""
    import argparse
    import io
    from contextlib import redirect_stdout
    from loopnet.commands import gradcheck as gc_cmd
    from loopnet.commands import trace as tr_cmd
    section = readme_section()
    blocks = re.findall(r"```\n\$ (loopnet [^\n]*)\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for command, shown in blocks:
        argv = command.split()[1:]
        cmd = tr_cmd if argv[0] == "trace" else gc_cmd
        parser = argparse.ArgumentParser()
        cmd.add_arguments(parser)
        out = io.StringIO()
        with redirect_stdout(out):
            assert cmd.run(parser.parse_args(argv[1:])) == 0
        # gradcheck's errors (~1e-11) are rounding noise that any change of summation
        # order moves: compare those lines with the numbers masked, and bound the numbers
        sci = re.compile(r"\d\.\de-\d\d")
        real = [sci.sub("#", l) for l in out.getvalue().splitlines()]
        # the README shows the tiles of a 16-register CPU; an AVX-512 one names its own
        real = [l.replace("tiles.forward_layer5", "tiles.forward_layer3")
                 .replace("tiles.accumulate_gradient5", "tiles.accumulate_gradient4") for l in real]
        for line in shown.splitlines():
            if line.strip() in ("...", ""):
                continue
            assert sci.sub("#", line) in real, line
            assert all(float(v) < 1e-7 for v in sci.findall(line) if argv[0] == "gradcheck")
