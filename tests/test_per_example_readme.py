"""The README's worked example of per-example clipping on a 2-2-1 network, checked against
loopnet: every number quoted in the README section is what loopnet computes (to the digits
shown), and the section quotes each of them."""

import re
from pathlib import Path

import numpy as np
import pytest

import loopnet
from loopnet.trace import per_example_view, render, trace

README = Path(__file__).resolve().parents[1] / "README.md"


def section():
    text = README.read_text(encoding="utf-8")
    start = text.index("### Clipping by hand on a 2-2-1 network")
    return text[start:text.index("\n## ", start)]


@pytest.fixture
def worked():
    net = loopnet.Net([2, 2, 1], seed=0)
    net.weights = [np.array([[0.5, -0.4], [0.3, 0.8]]), np.array([[1.2, -0.7]])]
    net.biases = [np.array([0.1, -0.2]), np.array([0.05])]
    return net, np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0], [0.0]])


def quoted(value, text):
    """``value`` appears in ``text`` rounded to the digits printed there, with at least 4
    decimals (a minus may be the sign −)."""
    for shown in re.findall(r"[−-]?\d+\.\d{4,}", text):
        decimals = len(shown.split(".")[1])
        if abs(float(shown.replace("−", "-")) - value) <= 0.51 * 10 ** -decimals:
            return True
    return False


def test_the_readme_numbers_are_loopnets(worked):
    net, X, Y = worked
    text = section()
    per_layer = net.per_example_gradient_norms(X, Y, per_layer=True)
    total = net.per_example_gradient_norms(X, Y)
    c = np.minimum(1.0, 0.15 / total)
    values = [*per_layer.ravel(), *total, c[1]]
    for i in range(2):
        tr = trace(net, X[i], Y[i])
        values += [*tr["a"][1], tr["a"][2][0], tr["delta"][1][0], *tr["delta"][0]]
        view = per_example_view(tr, 0.15)
        assert view["grad_norm"] == pytest.approx(total[i], rel=1e-12)
        assert view["clip_factor"] == pytest.approx(c[i], rel=1e-12)
        assert "CLIP c_x = min(1, C/‖∇C_x‖)" in render(tr, clip_norm=0.15)
    assert c[0] == 1.0 and c[1] < 1.0              # one example clipped, one not
    stepped = net.copy()
    stepped.fit(X, Y, epochs=1, batch_size=2, eta=1.0, shuffle=False, clip_norm=0.15,
                monitor=False)
    values += [stepped.biases[1][0], *stepped.weights[1][0]]
    missing = [v for v in values if not quoted(float(v), text)]
    assert not missing, f"README does not quote {missing}"
    # the by-hand line: ||a^1||^2 + 1 for example 1
    a1 = trace(net, X[0], Y[0])["a"][1]
    assert quoted(float(a1 @ a1 + 1), text)
