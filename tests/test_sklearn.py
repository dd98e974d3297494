"""loopnet.sklearn: scikit-learn's own estimator checks, and MLPClassifier/MLPRegressor as oracle.

scikit-learn's MLP is an independent implementation of the same algorithm:
with the same ``random_state`` both draw the same Glorot start, shuffles and
validation split, so after training their coefficients must agree to rounding
(Adam with a negligible ε, whose placement differs; see loopnet/sklearn.py).
"""
import inspect
import math
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import loopnet  # noqa: E402
from loopnet.data import digits_split  # noqa: E402
from loopnet.sklearn import LoopNetClassifier, LoopNetRegressor  # noqa: E402

# Short runs stop at max_iter on purpose; the warning is tested by scikit-learn's checks.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Under NUMBA_DISABLE_JIT=1 the engine runs as plain Python (about 1 ms per example):
# the checks run with fewer epochs, and the accuracy tests, which need many, are skipped.
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
needs_jit = pytest.mark.skipif(NO_JIT, reason="trains for many epochs; minutes without JIT")


def small_digits(n=300):
    (X, y), _ = digits_split()
    return X[:n], y[:n]


def max_diff(a_list, b_list):
    return max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(a_list, b_list))


@pytest.mark.parametrize("estimator", [LoopNetClassifier(max_iter=10, learning_rate_init=0.03),
                                       LoopNetRegressor(max_iter=10, learning_rate_init=0.03)],
                         ids=["classifier", "regressor"])
def test_check_estimator(estimator):
    # All of scikit-learn's checks pass but one: with sample_weight (issue 17) loopnet
    # divides each mini-batch's weighted sum by its m (Net.fit's rule), so a weight of 2 is
    # not the row repeated (it equals the row counted twice in its batch:
    # tests/test_per_example.py).  scikit-learn's own MLP passes this check (checked with
    # 1.9.1): it divides by the batch's Σ w, and the check's data fit in one mini-batch.
    # (a small max_iter only keeps the run short; the defaults pass as well.)
    # Skipped by scikit-learn itself here: pandas and array-API input checks,
    # when pandas / SCIPY_ARRAY_API are absent.
    expected = {"check_sample_weight_equivalence_on_dense_data":
                "loopnet divides a mini-batch's weighted sum by m, not by its sum of weights"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_estimator(estimator, expected_failed_checks=expected)


def test_signature_and_defaults_are_mlps():
    # Same parameters, same order, same defaults; loopnet's extras come last.
    for ours, theirs in ((LoopNetClassifier, MLPClassifier), (LoopNetRegressor, MLPRegressor)):
        mine = list(inspect.signature(ours).parameters.values())
        ref = list(inspect.signature(theirs).parameters.values())
        assert mine[:len(ref)] == ref
        extras = ["threads", "dtype"] + (["class_weight"] if ours is LoopNetClassifier else [])
        assert [p.name for p in mine[len(ref):]] == extras


# ---------------------------------------------------------------- the oracle
@pytest.mark.parametrize("params", [
    dict(epsilon=1e-30),                                        # Adam (the default solver)
    dict(epsilon=1e-30, alpha=0.3, batch_size=64),              # L2 and a short last batch
    dict(solver="sgd", momentum=0.0, learning_rate_init=0.2, alpha=0.05, batch_size=50,
         activation="tanh"),
    dict(solver="sgd", momentum=0.0, learning_rate="invscaling", learning_rate_init=0.5,
         activation="logistic"),
], ids=["adam", "adam-l2-short-batch", "sgd-l2", "sgd-invscaling"])
def test_coefficients_match_mlpclassifier(params):
    X, y = small_digits(230)
    kw = dict(hidden_layer_sizes=(12,), max_iter=3, random_state=3, **params)
    ours = LoopNetClassifier(**kw).fit(X, y)
    ref = MLPClassifier(**kw).fit(X, y)
    assert max_diff(ours.coefs_, ref.coefs_) < 1e-10
    assert max_diff(ours.intercepts_, ref.intercepts_) < 1e-10
    assert ours.n_iter_ == ref.n_iter_ == 3 and ours.t_ == ref.t_ == 3 * 230


def test_binary_and_regression_match_mlp():
    X, y = small_digits(200)
    yb = np.where(y > 4, "big", "small")
    kw = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0, epsilon=1e-30, alpha=0.01)
    ours, ref = LoopNetClassifier(**kw).fit(X, yb), MLPClassifier(**kw).fit(X, yb)
    assert ours.out_activation_ == ref.out_activation_ == "logistic"
    assert ours.n_outputs_ == ref.n_outputs_ == 1
    assert max_diff(ours.coefs_, ref.coefs_) < 1e-10
    assert np.abs(ours.predict_proba(X) - ref.predict_proba(X)).max() < 1e-10
    assert np.array_equal(ours.predict(X), ref.predict(X))
    Y = np.column_stack([X[:, 20], X[:, 30] - X[:, 40]])
    ours, ref = LoopNetRegressor(**kw).fit(X, Y), MLPRegressor(**kw).fit(X, Y)
    assert max_diff(ours.coefs_, ref.coefs_) < 1e-10
    assert ours.predict(X).shape == ref.predict(X).shape == (200, 2)


def test_early_stopping_and_stopping_rule_match_mlp():
    X, y = small_digits(400)
    kw = dict(hidden_layer_sizes=(10,), random_state=1, epsilon=1e-30, learning_rate_init=0.01)
    for params in (dict(early_stopping=True, n_iter_no_change=2, max_iter=60),
                   dict(tol=0.05, n_iter_no_change=3, max_iter=60)):
        ours = LoopNetClassifier(**kw, **params).fit(X, y)
        ref = MLPClassifier(**kw, **params).fit(X, y)
        assert len(ours.loss_curve_) == ours.n_iter_ < 60
        if params.get("early_stopping"):
            assert ours.n_iter_ == ref.n_iter_
            assert ours.validation_scores_ == ref.validation_scores_
            assert ours.best_validation_score_ == max(ours.validation_scores_)
            assert ours.best_loss_ is None and ref.best_loss_ is None
            # the best-scoring parameters are restored, as in scikit-learn
            assert max_diff(ours.coefs_, ref.coefs_) < 1e-10
        else:
            # Our loss is measured after each epoch, scikit-learn's averaged during it,
            # so the epoch may differ; the rule is scikit-learn's, written out here:
            # stop once the loss failed to beat best − tol more than n_iter_no_change times.
            best, count, stop = np.inf, 0, None
            for epoch, loss in enumerate(ours.loss_curve_, 1):
                count = count + 1 if loss > best - params["tol"] else 0
                best = min(best, loss)
                if count > params["n_iter_no_change"]:
                    stop = epoch
                    break
            assert stop == ours.n_iter_ and abs(ours.n_iter_ - ref.n_iter_) <= 2
            assert ours.best_loss_ == min(ours.loss_curve_)


def test_adaptive_learning_rate_matches_mlp():
    X, y = small_digits(200)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, learning_rate="adaptive",
              learning_rate_init=0.3, tol=0.02, n_iter_no_change=1, max_iter=12, random_state=2)
    ours, ref = LoopNetClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == ref.n_iter_
    assert max_diff(ours.coefs_, ref.coefs_) < 1e-10


def test_partial_fit_and_warm_start_match_mlp():
    X, y = small_digits(300)
    kw = dict(hidden_layer_sizes=(10,), random_state=0, epsilon=1e-30)
    ours, ref = LoopNetClassifier(**kw), MLPClassifier(**kw)
    for est in (ours, ref):
        est.partial_fit(X[:150], y[:150], classes=np.arange(10))
        est.partial_fit(X[150:], y[150:])
    assert max_diff(ours.coefs_, ref.coefs_) < 1e-10
    assert ours.n_iter_ == ref.n_iter_ == 1 and len(ours.loss_curve_) == 2
    kw.update(warm_start=True, max_iter=2)
    ours, ref = LoopNetClassifier(**kw), MLPClassifier(**kw)
    for est in (ours, ref):
        est.fit(X, y)
        est.fit(X, y)          # continues (n_iter_ counts this call, as scikit-learn)
    assert max_diff(ours.coefs_, ref.coefs_) < 1e-10
    assert ours.n_iter_ == 2 and len(ours.loss_curve_) == 4 and ours.t_ == 4 * 300
    with pytest.raises(ValueError, match="classes must be passed"):
        LoopNetClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        LoopNetClassifier(early_stopping=True).partial_fit(X, y, classes=np.arange(10))


# --------------------------------------------------- hand-computed oracles
def _glorot(rs, sizes, factor):
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = math.sqrt(factor / (fan_in + fan_out))
        coefs.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-bound, bound, fan_out))
    return coefs, intercepts


def test_alpha_and_loss_against_numpy_sgd():
    # scikit-learn's rule written out: per mini-batch of m rows (the last one short),
    # grad W = (A^T δ + alpha W) / m, W ← W − η grad; loss after the epoch here is
    # ½ mean((a − y)²) + (n_batches · alpha / 2n) Σ W²  (tanh hidden, identity out).
    rs = np.random.RandomState(5)
    X, Y = rs.randn(7, 3), rs.randn(7, 2)
    alpha, eta, m = 0.7, 0.05, 3
    W, b = _glorot(np.random.RandomState(11), [3, 4, 2], 6.0)
    for lo in range(0, 7, m):
        xb, yb = X[lo:lo + m], Y[lo:lo + m]
        h = np.tanh(xb @ W[0] + b[0])
        d1 = h @ W[1] + b[1] - yb
        d0 = (d1 @ W[1].T) * (1 - h ** 2)
        gW = [(xb.T @ d0 + alpha * W[0]) / len(xb), (h.T @ d1 + alpha * W[1]) / len(xb)]
        gb = [d0.mean(axis=0), d1.mean(axis=0)]
        W = [w - eta * g for w, g in zip(W, gW)]
        b = [c - eta * g for c, g in zip(b, gb)]
    reg = LoopNetRegressor(hidden_layer_sizes=(4,), activation="tanh", solver="sgd",
                           momentum=0.0, alpha=alpha, learning_rate_init=eta, batch_size=m,
                           shuffle=False, max_iter=1, random_state=11).fit(X, Y)
    assert max_diff(reg.coefs_, W) < 1e-13 and max_diff(reg.intercepts_, b) < 1e-13
    out = np.tanh(X @ W[0] + b[0]) @ W[1] + b[1]
    loss = 0.5 * np.mean((out - Y) ** 2) + 3 * alpha / 14 * sum((w ** 2).sum() for w in W)
    assert abs(reg.loss_ - loss) < 1e-13 and reg.loss_curve_ == [reg.loss_]


def test_coefs_are_transposed_views_of_the_net():
    X, y = small_digits(100)
    clf = LoopNetClassifier(hidden_layer_sizes=(7, 5), max_iter=2, random_state=0).fit(X, y)
    net = clf.net_
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10 and clf.out_activation_ == "softmax"
    assert [c.shape for c in clf.coefs_] == [(64, 7), (7, 5), (5, 10)]
    assert all(np.array_equal(c, w.T) for c, w in zip(clf.coefs_, net.weights))
    assert all(np.array_equal(i, b) for i, b in zip(clf.intercepts_, net.biases))
    clf.coefs_[2][:, 3] += 100.0        # writes through into the network
    assert np.all(clf.predict(X[:5]) == clf.classes_[3])


# -------------------------------------------------------------- the user's view
@needs_jit
def test_one_word_switch_on_digits():
    (X, y), (Xt, yt) = digits_split()
    scores = {}
    for cls in (MLPClassifier, LoopNetClassifier):
        clf = cls(hidden_layer_sizes=(50,), max_iter=40, random_state=0).fit(X, y)
        scores[cls.__name__] = clf.score(Xt, yt)
        assert len(clf.loss_curve_) == clf.n_iter_ == 40 and clf.loss_ == clf.loss_curve_[-1]
        assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 64
        proba = clf.predict_proba(Xt)
        assert proba.shape == (360, 10) and np.allclose(proba.sum(axis=1), 1.0)
    ours, ref = scores["LoopNetClassifier"], scores["MLPClassifier"]
    assert ours >= 0.93 and abs(ours - ref) <= 0.02, scores


def test_grid_search_and_pipeline_work_unchanged():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = small_digits(200)
    pipe = make_pipeline(StandardScaler(),
                         LoopNetClassifier(max_iter=5, learning_rate_init=0.01, random_state=0))
    grid = GridSearchCV(pipe, {"loopnetclassifier__alpha": [1e-4, 1e-2],
                               "loopnetclassifier__hidden_layer_sizes": [(8,), (16,)]}, cv=2)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"loopnetclassifier__alpha",
                                      "loopnetclassifier__hidden_layer_sizes"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(eta=0.1), "'eta' is now 'learning_rate_init'"),
    (dict(lmbda=5.0), "'lmbda' is now 'alpha'"),
    (dict(optimizer="adam"), "'optimizer' is now 'solver'"),
    (dict(beta1=0.8), "'beta1' is now 'beta_1'"),
    (dict(learning_rate_int=0.1), "did you mean 'learning_rate_init'"),
    (dict(hiden_layer_sizes=(3,)), "did you mean 'hidden_layer_sizes'"),
])
def test_unknown_or_old_names_say_what_to_use(kwargs, message):
    with pytest.raises(TypeError, match=message):
        LoopNetClassifier(**kwargs)


@pytest.mark.parametrize("params, message", [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(activation="softmax"), "activation"),
    (dict(solver="lbfgs"), "lbfgs' is not supported"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate="cosine"), "learning_rate"),
    (dict(momentum=1.0), "momentum"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_parameters_raise_at_fit(params, message):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    clf = LoopNetClassifier(**params)          # stored verbatim, no error yet
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="poisson' is not supported"):
        LoopNetRegressor(loss="poisson").fit(X, y)


def test_nesterov_runs_classical_momentum_with_a_warning():
    X, y = small_digits(50)
    with pytest.warns(UserWarning, match="nesterovs_momentum=False"):
        LoopNetClassifier(solver="sgd", max_iter=1).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        LoopNetClassifier(solver="sgd", nesterovs_momentum=False, max_iter=1).fit(X, y)


# --------------------------------------------------------- pickles and threads
@pytest.mark.parametrize("solver, arrays", [("adam", 3), ("sgd", 1)])
def test_pickle_is_compact_and_resumes_exactly(solver, arrays):
    # Parameters (+ Adam's m and v) and small state only: no scratch, no zero arrays,
    # no copies.  24k parameters as in issue 16 (was 956 KB, 5 arrays of 191 KB).
    rs = np.random.RandomState(0)
    X, y = rs.rand(60, 784), rs.randint(0, 10, 60)
    kw = dict(hidden_layer_sizes=(30,), solver=solver, max_iter=1, random_state=0,
              nesterovs_momentum=False, momentum=0.0)
    clf = LoopNetClassifier(**kw).fit(X, y)
    size = len(pickle.dumps(clf))
    n_params = clf.net_.params.size
    assert n_params == 23860
    assert arrays * 8 * n_params < size < arrays * 8 * n_params + 8000, size
    copy = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    assert np.array_equal(copy.net_.params, clf.net_.params)


def test_threads_do_not_change_results():
    X, y = small_digits(300)
    a = LoopNetClassifier(hidden_layer_sizes=(40,), max_iter=2, random_state=0, threads=1)
    b = LoopNetClassifier(hidden_layer_sizes=(40,), max_iter=2, random_state=0, threads=2)
    c = LoopNetClassifier(hidden_layer_sizes=(40,), max_iter=2, random_state=0)
    a, b, c = a.fit(X, y), b.fit(X, y), c.fit(X, y)
    assert np.array_equal(a.net_.params, b.net_.params)
    assert np.array_equal(a.net_.params, c.net_.params)
    assert c._threads(300) == 1                       # a small epoch: one thread
    assert c._threads(10**7) is None                  # a big one: loopnet measures


def test_clear_import_error_without_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import loopnet.sklearn\n"
            "except ImportError as e:\n    print(e)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert "pip install 'loopnet[sklearn]'" in out.stdout, out.stdout + out.stderr
