"""sample_weight and class_weight in loopnet.sklearn (issue 17), with scikit-learn's meaning."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.class_weight import compute_class_weight  # noqa: E402

from loopnet.sklearn import LoopNetClassifier, LoopNetRegressor  # noqa: E402


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    y = np.array([0] * 25 + [1] * 10 + [2] * 5)
    return X, y


def fitted(cls, X, y, **kw):
    return cls(hidden_layer_sizes=(5,), max_iter=3, random_state=0, n_iter_no_change=100, **kw)


def test_balanced_class_weight_weighs_as_compute_class_weight():
    X, y = data()
    by_hand = len(y) / (3 * np.bincount(y))          # n / (n_classes · n_c), worked by hand
    assert np.allclose(compute_class_weight("balanced", classes=np.unique(y), y=y), by_hand)
    balanced = fitted(LoopNetClassifier, X, y, class_weight="balanced").fit(X, y)
    weighted = fitted(LoopNetClassifier, X, y).fit(X, y, sample_weight=by_hand[y])
    plain = fitted(LoopNetClassifier, X, y).fit(X, y)
    assert np.array_equal(balanced.net_.params, weighted.net_.params)
    assert not np.array_equal(balanced.net_.params, plain.net_.params)


def test_dict_class_weight_times_sample_weight():
    X, y = data()
    sw = np.linspace(0.5, 1.5, len(y))
    a = fitted(LoopNetClassifier, X, y, class_weight={0: 1.0, 2: 4.0}).fit(X, y, sample_weight=sw)
    b = fitted(LoopNetClassifier, X, y).fit(X, y, sample_weight=sw * np.array([1.0, 1.0, 4.0])[y])
    assert np.array_equal(a.net_.params, b.net_.params)


def test_regressor_sample_weight_and_bad_weights():
    X, y = data()
    t = X[:, 0] * 0.5
    ones = fitted(LoopNetRegressor, X, t).fit(X, t, sample_weight=np.ones(len(t)))
    plain = fitted(LoopNetRegressor, X, t).fit(X, t)
    assert np.array_equal(ones.net_.params, plain.net_.params)
    with pytest.raises(ValueError, match="negative"):
        fitted(LoopNetRegressor, X, t).fit(X, t, sample_weight=-np.ones(len(t)))


# ------------------------------------------------ independent oracles for the weights
def _glorot(rs, sizes):
    """scikit-learn's Glorot-uniform start (tanh: factor 6), layer by layer from ``rs``."""
    W, b = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        b.append(rs.uniform(-bound, bound, fan_out))
    return W, b


def test_weighted_sgd_follows_the_shuffled_rows_against_numpy():
    # Weighted mini-batch SGD written out in NumPy: each epoch the rows are visited in
    # sklearn.utils.shuffle's order drawn from the same RandomState after the Glorot start
    # (scikit-learn's sequence); per mini-batch of m rows grad W = (A^T (w·δ) + alpha W) / m.
    # Loss after the last epoch: Σ w ½ mean_j (a − y)² / Σ w + (n_batches·alpha/2n) Σ W².
    from sklearn.utils import shuffle
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((11, 3)), rng.standard_normal((11, 2))
    w = rng.uniform(0.0, 3.0, 11)
    alpha, eta, m, epochs = 0.3, 0.05, 4, 2
    rs = np.random.RandomState(7)
    W, b = _glorot(rs, [3, 5, 2])
    order = np.arange(11)
    for _ in range(epochs):
        order = shuffle(order, random_state=rs)
        for lo in range(0, 11, m):
            rows = order[lo:lo + m]
            xb, yb, wb = X[rows], Y[rows], w[rows]
            h = np.tanh(xb @ W[0] + b[0])
            d1 = (h @ W[1] + b[1] - yb) * wb[:, None]
            d0 = (d1 @ W[1].T) * (1 - h ** 2)
            gW = [(xb.T @ d0 + alpha * W[0]) / len(rows), (h.T @ d1 + alpha * W[1]) / len(rows)]
            gb = [d0.mean(axis=0), d1.mean(axis=0)]
            W = [a - eta * g for a, g in zip(W, gW)]
            b = [c - eta * g for c, g in zip(b, gb)]
    reg = LoopNetRegressor(hidden_layer_sizes=(5,), activation="tanh", solver="sgd", momentum=0.0,
                           alpha=alpha, learning_rate_init=eta, batch_size=m, max_iter=epochs,
                           random_state=7).fit(X, Y, sample_weight=w)
    assert max(np.abs(a - c).max() for a, c in zip(reg.coefs_, W)) < 1e-13
    assert max(np.abs(a - c).max() for a, c in zip(reg.intercepts_, b)) < 1e-13
    out = np.tanh(X @ W[0] + b[0]) @ W[1] + b[1]
    per_row = 0.5 * np.mean((out - Y) ** 2, axis=1)
    loss = np.sum(w * per_row) / np.sum(w) + 3 * alpha / 22 * sum((a ** 2).sum() for a in W)
    assert abs(reg.loss_ - loss) < 1e-13 and len(reg.loss_curve_) == epochs


def test_weights_follow_the_early_stopping_split_as_mlpclassifier():
    # scikit-learn's MLP divides each mini-batch's weighted sum by Σ w, loopnet by m: with one
    # mini-batch, alpha = 0 and Adam with a negligible ε the two differ by a constant factor
    # of the gradient, which Adam's step m̂/√v̂ cancels.  So the coefficients and the weighted
    # validation accuracies agree only if the weights went with their rows through the split.
    from sklearn.neural_network import MLPClassifier
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] + 0.5 * rng.standard_normal(60) > 0).astype(int) + (X[:, 1] > 1)
    w = rng.uniform(0.1, 5.0, 60)
    kw = dict(hidden_layer_sizes=(6,), alpha=0.0, epsilon=1e-30, batch_size=200,
              learning_rate_init=0.05, early_stopping=True, validation_fraction=0.25,
              n_iter_no_change=3, max_iter=25, random_state=4)
    ours = LoopNetClassifier(**kw).fit(X, y, sample_weight=w)
    ref = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    assert ours.n_iter_ == ref.n_iter_
    assert np.allclose(ours.validation_scores_, ref.validation_scores_, rtol=0, atol=1e-12)
    assert max(np.abs(a - c).max() for a, c in zip(ours.coefs_, ref.coefs_)) < 1e-9
    plain = LoopNetClassifier(**kw).fit(X, y)
    assert plain.validation_scores_ != ours.validation_scores_   # the weights did count


def test_partial_fit_weights_and_class_weight_errors():
    X, y = data()
    sw = np.linspace(0.5, 1.5, len(y))
    a = fitted(LoopNetClassifier, X, y, class_weight={2: 3.0})
    b = fitted(LoopNetClassifier, X, y)
    a.partial_fit(X, y, sample_weight=sw, classes=[0, 1, 2])
    b.partial_fit(X, y, sample_weight=sw * np.array([1.0, 1.0, 3.0])[y], classes=[0, 1, 2])
    assert np.array_equal(a.net_.params, b.net_.params)
    with pytest.raises(ValueError, match="balanced' is not supported for partial_fit"):
        fitted(LoopNetClassifier, X, y, class_weight="balanced").partial_fit(
            X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="non-zero"):
        fitted(LoopNetClassifier, X, y).fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="NaN"):
        fitted(LoopNetClassifier, X, y).fit(X, y, sample_weight=np.full(len(y), np.nan))
    with pytest.raises(ValueError, match="shape"):
        fitted(LoopNetClassifier, X, y).fit(X, y, sample_weight=np.ones(3))
