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
