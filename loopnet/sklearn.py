"""scikit-learn estimators on loopnet's compiled engine.

``LoopNetClassifier`` and ``LoopNetRegressor`` follow scikit-learn's
conventions: keyword-only hyper-parameters stored verbatim by ``__init__``
(and validated in ``fit``), ``fit`` / ``partial_fit`` returning ``self``,
learned attributes ending in ``_``, ``random_state``, ``warm_start``, early
stopping on a validation fraction, ``predict`` / ``predict_proba`` /
``score``.  They pass ``sklearn.utils.estimator_checks.check_estimator``.

Learned attributes:

``net_``            the trained :class:`loopnet.Net`
``weights_``        list of w^l, each (n_l, n_{l-1}): loopnet's (and Nielsen's) layout.
                    **This is the transpose of scikit-learn's ``MLPClassifier.coefs_``**,
                    which are (fan_in, fan_out).
``biases_``         list of b^l, each (n_l,)  (``intercepts_`` in scikit-learn)
``loss_curve_``     training cost after each epoch (all epochs of this model)
``n_iter_``         epochs trained so far
``classes_``        class labels (classifier)
``validation_scores_``, ``best_validation_score_``   with ``early_stopping=True``

The networks: hidden layers of ``activation``; the classifier ends in a
softmax layer with the log-likelihood cost (so ``predict_proba`` rows sum to
1), the regressor in an identity layer with the quadratic cost
C_x = ||a - y||^2 / 2.

scikit-learn is an optional dependency: ``pip install 'loopnet[sklearn]'``.
"""

import numbers
import warnings

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                          validate_data)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "loopnet.sklearn needs scikit-learn (>= 1.6), which is not installed "
        "(%s); install it with: pip install 'loopnet[sklearn]'" % exc) from None

import numpy as np

import loopnet
from loopnet import checks

__all__ = ["LoopNetClassifier", "LoopNetRegressor"]

ACTIVATIONS, OPTIMIZERS = checks.ACTIVATIONS, checks.OPTIMIZERS


def _check_param(name, value, kind, minimum=None, below=None, strict=False):
    """loopnet.checks' int/real checks: the same mistake gets the same error as in loopnet.Net."""
    if kind is numbers.Integral:
        return checks.check_int(value, name, minimum)
    return checks.check_real(value, name, minimum, below, strict)


class _LoopNetBase(BaseEstimator):
    """Shared fit / partial_fit machinery; subclasses define the output layer."""

    _output = "identity"
    _cost = "quadratic"

    def __init__(self, hidden_layer_sizes=(30,), *, activation="sigmoid", optimizer="sgd",
                 eta=0.5, lmbda=0.0, momentum=0.0, batch_size=10, max_iter=200,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False,
                 validation_fraction=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 shuffle=True, random_state=None, warm_start=False, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.eta = eta
        self.lmbda = lmbda
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # -- validation ----------------------------------------------------------
    def _validate_params(self):
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError("hidden_layer_sizes must be a tuple of positive integers, got %r"
                             % (self.hidden_layer_sizes,)) from None
        if not all(checks.is_int(h) and h > 0 for h in hidden):
            raise ValueError("hidden_layer_sizes must be positive integers, got %r"
                             % (self.hidden_layer_sizes,))
        checks.check_choice(self.activation, "activation", ACTIVATIONS)
        checks.check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        _check_param("eta", self.eta, numbers.Real, 0, strict=True)
        _check_param("lmbda", self.lmbda, numbers.Real, 0)
        _check_param("momentum", self.momentum, numbers.Real, 0, below=1)
        _check_param("batch_size", self.batch_size, numbers.Integral, 1)
        _check_param("max_iter", self.max_iter, numbers.Integral, 1)
        _check_param("tol", self.tol, numbers.Real, 0)
        _check_param("n_iter_no_change", self.n_iter_no_change, numbers.Integral, 1)
        _check_param("validation_fraction", self.validation_fraction, numbers.Real, 0,
                     below=1, strict=True)
        _check_param("beta1", self.beta1, numbers.Real, 0, below=1)
        _check_param("beta2", self.beta2, numbers.Real, 0, below=1)
        _check_param("epsilon", self.epsilon, numbers.Real, 0, strict=True)
        return hidden

    @staticmethod
    def _writable(X):
        # Numba compiles a separate specialization for read-only arrays; a copy
        # of a read-only (e.g. memory-mapped) input avoids that compile.
        return X if X.flags.writeable and X.flags.c_contiguous else np.array(X, order="C")

    # -- the training loop ----------------------------------------------------
    def _new_net(self, n_in, n_out, hidden, rng):
        seed = int(rng.randint(np.iinfo(np.int32).max))
        return loopnet.Net([n_in, *hidden, n_out], activation=self.activation,
                           output=self._output, cost=self._cost, seed=seed)

    def _fit_epochs(self, X, Y, epochs, incremental, sample_weight=None):
        """Train ``epochs`` epochs (all if not ``incremental``), with stopping rules;
        ``sample_weight`` weighs each row's gradient and cost (loopnet.Net.fit)."""
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        hidden = self._validate_params()
        rng = check_random_state(self.random_state)
        n_out = Y.shape[1]
        reuse = hasattr(self, "net_") and (incremental or self.warm_start)
        if reuse:
            if self.net_.sizes[0] != X.shape[1] or self.net_.sizes[-1] != n_out:
                raise ValueError("the data do not fit the existing network %s; fit from "
                                 "scratch with warm_start=False" % (self.net_.sizes,))
        else:
            self.net_ = self._new_net(X.shape[1], n_out, hidden, rng)
            self.loss_curve_ = []
            self.n_iter_ = 0
            self.best_loss_ = np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self._no_improvement = 0
        X_val = Y_val = None
        if self.early_stopping and not incremental:
            stratify = self._stratify(Y)
            parts = train_test_split(X, Y, *([] if w is None else [w]),
                                     test_size=self.validation_fraction, random_state=rng,
                                     stratify=stratify)
            X, X_val, Y, Y_val = parts[:4]
            w = None if w is None else parts[4]
            if len(X_val) < 1 or len(X) < 1:
                raise ValueError("validation_fraction=%r leaves no validation or training "
                                 "examples" % self.validation_fraction)
        net = self.net_
        best_params = None
        batch_size = min(self.batch_size, X.shape[0])
        self._no_improvement = 0 if not incremental else self._no_improvement
        for _ in range(epochs):
            order = None if self.shuffle else np.arange(X.shape[0])
            net.fit(X, Y, epochs=1, batch_size=batch_size, eta=self.eta, lmbda=self.lmbda,
                    momentum=self.momentum, optimizer=self.optimizer, beta1=self.beta1,
                    beta2=self.beta2, epsilon=self.epsilon, order=order, monitor=False,
                    sample_weight=w)
            loss = net.cost(X, Y, lmbda=self.lmbda, sample_weight=w)
            self.loss_curve_.append(loss)
            self.n_iter_ += 1
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
            if incremental:
                continue
            if X_val is not None:
                score = self._validation_score(net, X_val, Y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print("Validation score: %f" % score)
                improved = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = net.params.copy()
            else:
                improved = loss < self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, loss)
            self._no_improvement = 0 if improved else self._no_improvement + 1
            if self._no_improvement >= self.n_iter_no_change:
                break
        else:
            if not incremental and epochs == self.max_iter:
                warnings.warn("%s: stopped after max_iter=%d epochs without converging "
                              "(tol=%g); raise max_iter or eta"
                              % (type(self).__name__, self.max_iter, self.tol),
                              ConvergenceWarning)
        if best_params is not None:
            net.params[...] = best_params
        self.weights_ = [w.copy() for w in net.weights]
        self.biases_ = [b.copy() for b in net.biases]
        return self

    def _stratify(self, Y):
        return None

    def _forward(self, X):
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.net_.predict(self._writable(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    # -- pickling ------------------------------------------------------------
    # The Net is stored as plain state and rebuilt on load: unpickled through
    # joblib's memory mapping its buffers would otherwise be read-only, and the
    # compiled kernels cannot write into them.
    def __getstate__(self):
        state = super().__getstate__()
        net = state.get("net_")
        if isinstance(net, loopnet.Net):
            state = dict(state)
            state["net_"] = {"config": net.config, "params": np.array(net.params),
                             "rng": net.rng.bit_generator.state, "epoch": net.epoch,
                             "history": list(net.history),
                             "optimizer_state": dict(net.optimizer_state)}
        return state

    def __setstate__(self, state):
        net = state.get("net_")
        if isinstance(net, dict) and "config" in net:
            state = dict(state)
            new = loopnet.Net(**net["config"], seed=0)
            new.params[...] = net["params"]
            new.rng.bit_generator.state = net["rng"]
            new.epoch = net["epoch"]
            new.history = list(net["history"])
            new.optimizer_state = net["optimizer_state"]
            state["net_"] = new
        super().__setstate__(state)


class LoopNetClassifier(ClassifierMixin, _LoopNetBase):
    """Multi-layer perceptron classifier trained by loopnet's compiled kernels.

    Parameters (keyword-only after ``hidden_layer_sizes``)
    ----------
    hidden_layer_sizes : tuple of int, default (30,)
        Neurons in each hidden layer (input and output sizes come from the data).
    activation : {"sigmoid", "tanh", "relu", "identity"}, default "sigmoid"
    optimizer : {"sgd", "adam"}, default "sgd"
    eta : float, default 0.5
        Learning rate η.
    lmbda : float, default 0.0
        L2 strength λ: weight decay (1 − ηλ/n) per step, as in Nielsen's network2.
    momentum : float, default 0.0
    batch_size : int, default 10
        Mini-batch size m (clipped to the number of examples).
    max_iter : int, default 200
        Maximum number of epochs.
    tol, n_iter_no_change : float, int
        Stop when the training cost (or, with ``early_stopping``, the
        validation accuracy) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified) and keep
        the parameters with the best validation accuracy.
    beta1, beta2, epsilon : Adam's constants.
    shuffle : bool, default True
        Shuffle the examples every epoch (with the net's seeded generator).
    random_state : int, RandomState or None
        Seeds the initial weights, the shuffles and the validation split.
    warm_start : bool, default False
        Continue from the previous fit instead of starting afresh.
    verbose : bool, default False
        Print the cost after each epoch.
    class_weight : "balanced", dict or None, default None
        Weights of the classes, with scikit-learn's meaning
        (``sklearn.utils.class_weight.compute_class_weight``): "balanced" gives
        class c the weight n / (n_classes · n_c); each example's gradient and cost
        are weighted by its class's weight (times its ``sample_weight``).
    """

    _output = "softmax"
    _cost = "log_likelihood"

    def __init__(self, hidden_layer_sizes=(30,), *, activation="sigmoid", optimizer="sgd",
                 eta=0.5, lmbda=0.0, momentum=0.0, batch_size=10, max_iter=200,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False,
                 validation_fraction=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 shuffle=True, random_state=None, warm_start=False, verbose=False,
                 class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation=activation, optimizer=optimizer, eta=eta,
            lmbda=lmbda, momentum=momentum, batch_size=batch_size, max_iter=max_iter, tol=tol,
            n_iter_no_change=n_iter_no_change, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta1=beta1, beta2=beta2,
            epsilon=epsilon, shuffle=shuffle, random_state=random_state,
            warm_start=warm_start, verbose=verbose)
        self.class_weight = class_weight

    def _example_weights(self, y, sample_weight):
        """w_x = class_weight[y_x] · sample_weight_x, or None when neither is given."""
        if self.class_weight is None:
            return sample_weight
        per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        w = per_class[np.searchsorted(self.classes_, y)]
        return w if sample_weight is None else w * _check_sample_weight(sample_weight, y)

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and labels ``y``, each example's gradient
        and cost weighted by ``sample_weight`` (and ``class_weight``); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64,
                             reset=not (self.warm_start and hasattr(self, "net_")))
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        classes = np.unique(y)
        if self.warm_start and hasattr(self, "classes_"):
            if not np.array_equal(classes, self.classes_) and \
                    not np.isin(classes, self.classes_).all():
                raise ValueError("warm_start: y has classes %s not seen in the first fit %s"
                                 % (classes, self.classes_))
        else:
            if len(classes) < 2:
                raise ValueError("a classifier needs at least 2 classes in y; got 1 class (%r)"
                                 % (classes[0],))
            self.classes_ = classes
        Y = self._one_hot(y)
        return self._fit_epochs(self._writable(X), Y, self.max_iter, incremental=False,
                                sample_weight=self._example_weights(y, sample_weight))

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X, y``; ``classes`` (all labels) is required on the first call."""
        first = not hasattr(self, "net_")
        X, y = validate_data(self, X, y, dtype=np.float64, reset=first)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit "
                                 "(all labels that y may contain)")
            self.classes_ = np.unique(classes)
            if len(self.classes_) < 2:
                raise ValueError("a classifier needs at least 2 classes")
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError("classes=%r differs from the classes of the first call %r"
                             % (classes, self.classes_))
        Y = self._one_hot(y)
        return self._fit_epochs(self._writable(X), Y, 1, incremental=True)

    def _one_hot(self, y):
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != y
        if np.any(unseen):
            raise ValueError("y holds labels not in classes_ %r, e.g. %r"
                             % (self.classes_, y[unseen][0]))
        Y = np.zeros((len(y), len(self.classes_)))
        Y[np.arange(len(y)), idx] = 1.0
        return Y

    def _stratify(self, Y):
        counts = Y.sum(axis=0)
        return np.argmax(Y, axis=1) if counts.min() >= 2 else None

    def _validation_score(self, net, X, Y):
        return float(np.mean(np.argmax(net.predict(X), axis=1) == np.argmax(Y, axis=1)))

    def predict_proba(self, X):
        """Class probabilities (softmax outputs), shape (n_samples, n_classes)."""
        return self._forward(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class for each row of ``X``."""
        proba = self._forward(X)
        return self.classes_[np.argmax(proba, axis=1)]


class LoopNetRegressor(RegressorMixin, _LoopNetBase):
    """Multi-layer perceptron regressor trained by loopnet's compiled kernels.

    Same parameters as :class:`LoopNetClassifier` except the default learning
    rate ``eta=0.05``.  The output layer is linear (identity) and the cost is
    quadratic; ``y`` may be 1-D or (n_samples, n_outputs).  With
    ``early_stopping`` the validation score is R².  Targets are used as
    given, so scale them (e.g. with ``StandardScaler``) when they are large:
    SGD diverges (``loopnet.DivergenceError``) if eta is too big for them.
    """

    def __init__(self, hidden_layer_sizes=(30,), *, activation="sigmoid", optimizer="sgd",
                 eta=0.05, lmbda=0.0, momentum=0.0, batch_size=10, max_iter=200,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False,
                 validation_fraction=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 shuffle=True, random_state=None, warm_start=False, verbose=False):
        super().__init__(
            hidden_layer_sizes, activation=activation, optimizer=optimizer, eta=eta,
            lmbda=lmbda, momentum=momentum, batch_size=batch_size, max_iter=max_iter, tol=tol,
            n_iter_no_change=n_iter_no_change, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta1=beta1, beta2=beta2,
            epsilon=epsilon, shuffle=shuffle, random_state=random_state,
            warm_start=warm_start, verbose=verbose)

    def _targets(self, X, y, reset):
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True,
                             y_numeric=True, reset=reset)
        Y = np.asarray(y, dtype=np.float64)
        self._y_1d = Y.ndim == 1 if reset else self._y_1d
        return self._writable(X), np.ascontiguousarray(Y.reshape(len(Y), -1))

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and targets ``y``, each example's gradient
        and cost weighted by ``sample_weight``; returns self."""
        reset = not (self.warm_start and hasattr(self, "net_"))
        X, Y = self._targets(X, y, reset)
        return self._fit_epochs(X, Y, self.max_iter, incremental=False,
                                sample_weight=sample_weight)

    def partial_fit(self, X, y):
        """One epoch over ``X, y``."""
        X, Y = self._targets(X, y, not hasattr(self, "net_"))
        return self._fit_epochs(X, Y, 1, incremental=True)

    def _validation_score(self, net, X, Y):
        P = net.predict(X)
        ss_res = ((Y - P) ** 2).sum(axis=0)
        ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, 0.0)
        return float(np.mean(r2))

    def predict(self, X):
        """Network outputs: shape (n_samples,) for 1-D training targets, else (n, n_outputs)."""
        out = self._forward(X)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

