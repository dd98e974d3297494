"""Dropout (issue 17, Nielsen chapter 3): inverted dropout of the hidden layers in training,
its mask keyed by (seed, example row, layer, neuron), checked against a NumPy step."""

import numpy as np
import pytest

from loopnet import Net, reference
from loopnet.random import uniform_at


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def test_p_zero_gives_the_bits_of_no_dropout():
    X, y = data()
    a = Net([5, 6, 4, 3], seed=1).fit(X, y, epochs=2, batch_size=5, eta=0.5)
    b = Net([5, 6, 4, 3], seed=1, dropout=[0.0, 0.0]).fit(X, y, epochs=2, batch_size=5, eta=0.5)
    assert np.array_equal(a.params, b.params)
    assert "dropout" not in b.config


def numpy_dropout_step(net, X, Y, eta, ps, seed):
    """One full-batch sgd step in matrix form with inverted dropout on each hidden layer:
    Ã^l = A^l ⊙ M^l / (1 − p_l), Δ^l = (Δ^{l+1} W^{l+1}) ⊙ σ'(Z^l) ⊙ M^l / (1 − p_l)."""
    ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    L = len(ws)
    A, Z, M = [X], [], []
    for l in range(L):
        z = A[-1] @ ws[l].T + bs[l]
        f = net.activation if l < L - 1 else net.output
        a = reference.sigma(f, z)
        if l < L - 1:
            m = np.array([[uniform_at(seed, r, l, j) >= ps[l] for j in range(z.shape[1])]
                          for r in range(len(X))]) / (1 - ps[l])
            a = a * m
            M.append(m)
        Z.append(z)
        A.append(a)
    D = [None] * L
    D[-1] = reference.output_error(Z[-1], A[-1], Y, net.output, net.cost_name)
    for l in range(L - 2, -1, -1):
        D[l] = (D[l + 1] @ ws[l + 1]) * reference.sigma_prime(net.activation, Z[l]) * M[l]
    for l in range(L):
        ws[l] -= eta / len(X) * D[l].T @ A[l]
        bs[l] -= eta / len(X) * D[l].sum(axis=0)
    return ws, bs


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_one_step_matches_numpy_with_the_same_masks(act):
    X, y = data()
    Y = np.eye(3)[y]
    net = Net([5, 9, 6, 3], activation=act, seed=4, dropout=[0.5, 0.25])
    seed = int(net.copy().rng.integers(2 ** 62))   # shuffle=False: the epoch's one draw
    ws, bs = numpy_dropout_step(net, X, Y, 0.4, [0.5, 0.25], seed)
    net.fit(X, Y, epochs=1, batch_size=len(X), eta=0.4, shuffle=False, monitor=False)
    for l in range(3):
        np.testing.assert_allclose(net.weights[l], ws[l], rtol=0, atol=1e-13)
        np.testing.assert_allclose(net.biases[l], bs[l], rtol=0, atol=1e-13)


def test_only_training_drops():
    X, y = data()
    net = Net([5, 6, 3], seed=1, dropout=0.5)
    plain = Net([5, 6, 3], seed=1)
    assert np.array_equal(net.predict(X), plain.predict(X))
    assert np.array_equal(net.per_example_gradient_norms(X, y),
                          plain.per_example_gradient_norms(X, y))
    net.fit(X, y, epochs=1, batch_size=4)
    plain.fit(X, y, epochs=1, batch_size=4)
    assert not np.array_equal(net.params, plain.params)


def test_model_files_keep_the_dropout_setting(tmp_path):
    from loopnet import io
    net = Net([5, 6, 4, 3], seed=1, dropout=[0.2, 0.4])
    io.save(net, tmp_path / "m.npz")
    assert io.load(tmp_path / "m.npz").dropout == (0.2, 0.4)
    assert net.copy().dropout == (0.2, 0.4)


@pytest.mark.parametrize("bad, match", [(1.0, "< 1"), (-0.1, ">= 0"), ([0.1], "one per hidden"),
                                        ("x", "number")])
def test_bad_dropout_gets_a_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        Net([5, 6, 4, 3], dropout=bad)


def test_dropout_is_checked_when_assigned():
    net = Net([5, 6, 4, 3], seed=1)
    net.dropout = 0.5
    assert net.dropout == (0.5, 0.5)
    for bad in (1.0, -0.1, [0.2], float("nan")):
        with pytest.raises((ValueError, TypeError)):
            net.dropout = bad
    assert net.dropout == (0.5, 0.5)
