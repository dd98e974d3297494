"""Each kernel, and the whole averaged gradient, against independent oracles:
NumPy matrix form (loopnet.reference), a network worked by hand, central
differences.  Sizes are tiny so this file also runs under NUMBA_DISABLE_JIT=1."""

import itertools
import math

import numpy as np
import pytest

import loopnet
from loopnet import activations, costs, kernels
from loopnet import reference as R
from conftest import HIDDEN, OUTPUT_COST, make_targets

RTOL = 1e-10


def central_differences(net, X, Y, h=1e-6):
    """(C(p + h) − C(p − h)) / 2h for every parameter p, in net.params' layout."""
    numeric = np.empty_like(net.params)
    for p in range(net.params.size):
        keep = net.params[p]
        net.params[p] = keep + h
        plus = net.cost(X, Y)
        net.params[p] = keep - h
        minus = net.cost(X, Y)
        net.params[p] = keep
        numeric[p] = (plus - minus) / (2 * h)
    return numeric


def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("act", activations.NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_layer_matches_matrix_form(act, dtype, rng):
    w = rng.standard_normal((4, 5)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    a_prev = rng.standard_normal(5).astype(dtype)
    z, a = np.empty(4, dtype), np.empty(4, dtype)
    kernels.forward_layer(z, a, w, b, a_prev, activations.code(act))
    z_ref = w.astype(float) @ a_prev.astype(float) + b
    tol = RTOL if dtype == np.float64 else 1e-5
    assert rel_err(z, z_ref) < tol
    assert rel_err(a, R.sigma(act, z_ref)) < tol


@pytest.mark.parametrize("output,cost", OUTPUT_COST)
def test_output_delta_matches_matrix_form(output, cost, rng):
    z = rng.standard_normal(3)
    a = R.sigma(output, z)
    y = make_targets(rng, 1, 3, output, cost)[0]
    delta = np.empty(3)
    kernels.output_delta(delta, z, a, y, activations.code(output), costs.code(cost))
    ref = R.output_error(z[None], a[None], y[None], output, cost)[0]
    assert rel_err(delta, ref) < RTOL


@pytest.mark.parametrize("act", HIDDEN)
def test_hidden_delta_is_transpose_product(act, rng):
    w_next = rng.standard_normal((3, 4))
    delta_next = rng.standard_normal(3)
    z = rng.standard_normal(4)
    delta = np.empty(4)
    kernels.hidden_delta(delta, z, R.sigma(act, z), w_next, delta_next, activations.code(act))
    assert rel_err(delta, (w_next.T @ delta_next) * R.sigma_prime(act, z)) < RTOL


def test_accumulate_gradient_adds_outer_product(rng):
    nabla_w = rng.standard_normal((3, 4))
    nabla_b = rng.standard_normal(3)
    before_w, before_b = nabla_w.copy(), nabla_b.copy()
    delta, a_prev = rng.standard_normal(3), rng.standard_normal(4)
    kernels.accumulate_gradient(nabla_w, nabla_b, delta, a_prev)
    assert rel_err(nabla_w, before_w + np.outer(delta, a_prev)) < RTOL
    assert rel_err(nabla_b, before_b + delta) < RTOL


def test_network_worked_by_hand():
    """A [2, 2, 1] sigmoid network, quadratic cost, x = (1, 0.5), y = 1.

    Forward:  z^1_0 = 0.1·1 + 0.2·0.5 + 0.0 = 0.2          a^1_0 = σ(0.2) = 0.549834
              z^1_1 = −0.3·1 + 0.4·0.5 + 0.1 = 0.0         a^1_1 = σ(0) = 0.5
              z^2_0 = 0.5·0.549834 − 0.6·0.5 + 0.2 = 0.174917,  a^2_0 = σ(z) = 0.543618
    C = ½ (0.543618 − 1)² = 0.104142
    BP1: δ^2_0 = (a − y) σ'(z) = (−0.456382)(0.543618 · 0.456382) = −0.113227
    BP2: δ^1_0 = w^2_00 δ^2_0 σ'(z^1_0) = 0.5 · (−0.113227) · (0.549834 · 0.450166) = −0.014013
         δ^1_1 = −0.6 · (−0.113227) · 0.25 = 0.016984
    BP4: ∂C/∂w^2_00 = δ^2_0 a^1_0 = −0.062256,  ∂C/∂w^2_01 = δ^2_0 · 0.5 = −0.056614
         ∂C/∂w^1_jk = δ^1_j x_k: [[−0.014013, −0.007006], [0.016984, 0.008492]]
    BP3: ∂C/∂b = δ.
    """
    net = loopnet.Net([2, 2, 1], seed=0)
    net.weights = [np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([[0.5, -0.6]])]
    net.biases = [np.array([0.0, 0.1]), np.array([0.2])]
    X, Y = np.array([[1.0, 0.5]]), np.array([[1.0]])
    assert net.predict(X)[0, 0] == pytest.approx(0.543618, abs=5e-7)
    assert net.cost(X, Y) == pytest.approx(0.104142, abs=5e-7)
    nabla_w, nabla_b = net.gradient(X, Y)
    np.testing.assert_allclose(nabla_b[1], [-0.113227], atol=5e-7)
    np.testing.assert_allclose(nabla_b[0], [-0.014013, 0.016984], atol=5e-7)
    np.testing.assert_allclose(nabla_w[1], [[-0.062256, -0.056614]], atol=5e-7)
    np.testing.assert_allclose(nabla_w[0], [[-0.014013, -0.007006], [0.016984, 0.008492]],
                               atol=5e-7)


DEPTHS = {1: [3, 2], 2: [3, 4, 2], 3: [3, 4, 3, 2], 4: [2, 3, 4, 3, 3]}


@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("act,output,cost",
                         [(h,) + oc for h, oc in itertools.product(HIDDEN, OUTPUT_COST)])
def test_averaged_gradient_matches_reference(depth, act, output, cost):
    rng = np.random.default_rng(depth)
    sizes = DEPTHS[depth]
    net = loopnet.Net(sizes, activation=act, output=output, cost=cost, seed=depth)
    X = rng.standard_normal((7, sizes[0]))
    Y = make_targets(rng, 7, sizes[-1], output, cost)
    nabla_w, nabla_b = net.gradient(X, Y)
    ref_w, ref_b = R.gradient(net.weights, net.biases, X, Y, act, output, cost)
    for got, want in zip(nabla_w + nabla_b, ref_w + ref_b):
        assert rel_err(got, want) < RTOL
    assert net.cost(X, Y) == pytest.approx(
        R.cost(net.weights, net.biases, X, Y, act, output, cost), rel=RTOL)
    np.testing.assert_allclose(net.predict(X), R.forward(net.weights, net.biases, X, act,
                                                         output)[1][-1], rtol=RTOL, atol=1e-300)


@pytest.mark.parametrize("act,output,cost",
                         [("sigmoid", "sigmoid", "quadratic"), ("tanh", "softmax", "log_likelihood"),
                          ("relu", "identity", "mse"), ("sigmoid", "sigmoid", "cross_entropy"),
                          ("tanh", "softmax", "quadratic")])
def test_gradient_matches_central_differences(act, output, cost):
    rng = np.random.default_rng(7)
    net = loopnet.Net([3, 4, 2], activation=act, output=output, cost=cost, seed=3)
    X = rng.standard_normal((5, 3))
    Y = make_targets(rng, 5, 2, output, cost)
    grad = np.concatenate([g.ravel() for pair in zip(*net.gradient(X, Y)) for g in pair])
    assert rel_err(grad, central_differences(net, X, Y)) < 1e-7


def test_sigmoid_is_stable_for_large_inputs():
    for z in (-800.0, -40.0, 0.0, 40.0, 800.0):
        s = activations.sigma(activations.SIGMOID, z)
        assert 0.0 <= s <= 1.0 and math.isfinite(s)
        assert s == pytest.approx(1 / (1 + math.exp(-z)) if z > -700 else 0.0, abs=1e-300)


def test_softmax_log_likelihood_with_targets_not_summing_to_one():
    """δ^L = a Σy − y holds for any targets, e.g. label-smoothed or unnormalised rows."""
    rng = np.random.default_rng(3)
    net = loopnet.Net([3, 4, 3], activation="tanh", output="softmax", cost="log_likelihood",
                      seed=5)
    X = rng.standard_normal((4, 3))
    Y = rng.uniform(0.0, 1.0, (4, 3))   # rows sum to anything
    assert rel_err(net.gradient_sum(X, Y) / 4, central_differences(net, X, Y)) < 1e-7


def test_exp_nonpositive_within_one_ulp_of_numpy_and_the_same_in_python():
    """activations.exp_nonpositive (the sigmoid's e^{−|z|}, vectorisable) against NumPy's exp
    over [−746, 0]: gradual underflow, zeros below, −inf and NaN; the same for its
    pure-Python run (NUMBA_DISABLE_JIT), whose products are not fused into FMAs."""
    rng = np.random.default_rng(11)
    x = -np.concatenate([np.abs(rng.standard_normal(2000)) * 60, np.linspace(0, 746, 20001),
                         [0.0, 1e-300, 708.39, 709.0, 744.5, 745.1, 745.2, 800.0, np.inf]])
    got = np.array([activations.exp_nonpositive(v) for v in x])
    want = np.exp(x)
    normal = want >= np.finfo(np.float64).tiny
    ulps = np.abs(got - want)[normal] / np.spacing(want[normal])
    assert ulps.max() <= 1.0
    assert np.all(np.abs(got - want)[~normal] <= np.finfo(np.float64).smallest_subnormal)
    assert np.isnan(activations.exp_nonpositive(np.nan))
    python = getattr(activations.exp_nonpositive, "py_func", activations.exp_nonpositive)
    py = np.array([python(v) for v in x[normal][::37]])
    assert np.max(np.abs(py - want[normal][::37]) / np.spacing(want[normal][::37])) <= 1.0
