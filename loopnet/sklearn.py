"""scikit-learn estimators on loopnet's compiled engine: drop-ins for MLPClassifier / MLPRegressor.

``LoopNetClassifier`` and ``LoopNetRegressor`` take scikit-learn's
``MLPClassifier`` / ``MLPRegressor`` parameters with their names, meanings and
defaults, so switching is a one-word change::

    clf = MLPClassifier(hidden_layer_sizes=(100,), alpha=1e-4, random_state=0)
    clf = LoopNetClassifier(hidden_layer_sizes=(100,), alpha=1e-4, random_state=0)

What is the same as scikit-learn (1.9)
--------------------------------------
* Glorot-uniform initial weights and biases drawn from ``random_state`` in
  scikit-learn's order, the per-epoch shuffle and the early-stopping split
  drawn from the same generator: with ``solver='adam'`` and the same
  ``random_state`` the fitted coefficients agree with ``MLPClassifier``'s to
  rounding (see tests/test_sklearn.py).
* Output layer and loss: multiclass → softmax with the log-loss
  −(1/n) Σ_x ln a_y; binary → one logistic unit with the binary log-loss;
  regression → identity with ½·mean((a − y)²) (scikit-learn's ½ and its mean
  over outputs; the gradient, like scikit-learn's, is Σ_j (a_j − y_j) per example).
* L2: scikit-learn adds (alpha/2m) Σ w² to the loss of each mini-batch of
  size m, i.e. the gradient term (alpha/m)·w.  loopnet's λ is per training set
  (λ/n)·w, so each mini-batch runs with λ = alpha·n/m (the short last batch
  with its own m).  Biases are not penalised, in both.
* Mini-batches of ``batch_size='auto'`` = min(200, n); ``solver='adam'``
  (the default) or ``'sgd'`` with ``momentum`` and ``learning_rate`` =
  'constant', 'invscaling' (η = learning_rate_init / (t_ + 1)^power_t after
  each epoch) or 'adaptive' (η / 5 after ``n_iter_no_change`` + 1 epochs
  without improvement, stop below 1e-6).
* Stopping: when the training loss (or with ``early_stopping`` the
  validation score: accuracy, R²) has not improved by ``tol`` for more than
  ``n_iter_no_change`` epochs; ``ConvergenceWarning`` at ``max_iter``;
  ``early_stopping`` restores the best-scoring parameters.
* Fitted attributes: ``coefs_`` (list of (fan_in, fan_out) arrays),
  ``intercepts_``, ``loss_``, ``loss_curve_``, ``best_loss_``,
  ``validation_scores_``, ``best_validation_score_``, ``n_iter_`` (epochs of the
  last fit call, as scikit-learn), ``t_`` (examples seen), ``classes_``,
  ``n_features_in_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``.

What differs (documented, measured in the tests)
------------------------------------------------
* ``coefs_[l]`` is the transpose VIEW of loopnet's ``w^{l+1}`` (n_l, n_{l−1}),
  i.e. ``net_.weights[l].T``; writing into it writes into the network.
  ``weights_`` / ``biases_`` give loopnet's (Nielsen's) layout.
* ``loss_curve_[i]`` is the training loss measured after epoch i (one extra
  forward pass); scikit-learn reports the mean of the mini-batch losses
  during the epoch.  The L2 part is the same (n_batches·alpha/2n) Σ w².
* ``solver='lbfgs'`` is not supported (error).  ``nesterovs_momentum=True``
  (scikit-learn's default, used only with ``solver='sgd'``) runs classical
  momentum with a warning; pass ``nesterovs_momentum=False`` to silence it.
  With momentum and alpha > 0, loopnet decays weights outside the velocity
  (w ← (1 − ηλ/n) w + v) where scikit-learn puts alpha·w into it.
  Adam's ε is added to √v̂ (scikit-learn: to √v before the bias correction).
* ``max_fun`` is accepted and ignored (it is for lbfgs).  Multilabel targets
  are not supported.
* ``fit(X, y, sample_weight=)`` (and ``partial_fit``) weigh each example's
  gradient by w_x with loopnet's rule (1/m) Σ_x w_x ∇C_x + (alpha/m)·w per
  mini-batch of m rows; scikit-learn 1.9 divides the batch's sum and its
  alpha·w by Σ_x w_x over the batch instead (the same when every batch's weights
  average 1, e.g. all ones).  The loss in ``loss_curve_`` has the weighted data
  part Σ_x w_x C_x / Σ_x w_x (as scikit-learn) with the unweighted L2 part above;
  the early-stopping split carries the weights, and the validation score is
  weighted, as scikit-learn's.  With the 1/m rule a weight of 2 is not a repeated row
  (scikit-learn's check_sample_weight_equivalence_on_dense_data: expected failure).

loopnet's own keyword parameters: ``threads`` (None: one thread when an epoch
is small, see :data:`SMALL_EPOCH_FLOPS`, else loopnet's measured choice),
``dtype`` ('float64' or 'float32') and, for the classifier, ``class_weight``
(None, 'balanced' or a dict, as scikit-learn's ``compute_class_weight``).  The
old loopnet names (``eta``, ``lmbda``, ``optimizer``, ``beta1``…) raise a
TypeError naming their new name.

scikit-learn is an optional dependency: ``pip install 'loopnet[sklearn]'``.
"""

import difflib
import inspect
import math
import numbers
import warnings

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state, shuffle as sk_shuffle
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                          validate_data)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "loopnet.sklearn needs scikit-learn (>= 1.6), which is not installed "
        "(%s); install it with: pip install 'loopnet[sklearn]'" % exc) from None

import contextlib

import numba
import numpy as np

import loopnet
from loopnet import checks

__all__ = ["LoopNetClassifier", "LoopNetRegressor"]

#: scikit-learn's activation names → loopnet's ('sigmoid' is accepted as loopnet's name).
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "sigmoid": "sigmoid"}
SOLVERS = ("adam", "sgd")
LEARNING_RATES = ("constant", "invscaling", "adaptive")

#: With ``threads=None`` an epoch of fewer floating-point operations than this
#: (4 Σ n_l n_{l−1} per example, forward and backward) trains on one thread:
#: on digits-sized data an epoch is a single compiled call, too short for
#: loopnet's own timing of one thread against all, and inside GridSearchCV or
#: on a busy machine waking idle threads twice per mini-batch costs more than
#: it saves (measured: README, "Drop-in for Nielsen's code and scikit-learn").
SMALL_EPOCH_FLOPS = 2e9

#: Old loopnet keyword → (new name, note).
RENAMED = {
    "eta": ("learning_rate_init", "the step size of sgd/adam"),
    "lmbda": ("alpha", "scikit-learn's L2 penalty; network2's λ per mini-batch of m "
                       "examples out of n equals alpha·n/m"),
    "optimizer": ("solver", "'sgd' or 'adam'"),
    "beta1": ("beta_1", "Adam's β₁"),
    "beta2": ("beta_2", "Adam's β₂"),
    "epochs": ("max_iter", "the maximum number of epochs"),
    "mini_batch_size": ("batch_size", "examples per mini-batch"),
    "seed": ("random_state", "seeds the initial weights, the shuffles and the split"),
}


def _check_param(name, value, kind, minimum=None, below=None, strict=False, maximum=None):
    """loopnet.checks' int/real checks (the same mistake gets the same error as in
    loopnet.Net), with an upper bound where scikit-learn has one."""
    if kind is numbers.Integral:
        value = checks.check_int(value, name, minimum)
    else:
        value = checks.check_real(value, name, minimum, below, strict)
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_choice(name, value, choices):
    return checks.check_choice(value, name, choices)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError("%s must be True or False; got %r" % (name, value))
    return bool(value)


def _unknown_keyword(cls, key):
    """The TypeError message for a keyword that ``cls.__init__`` does not take."""
    name = cls.__name__
    if key in RENAMED:
        new, note = RENAMED[key]
        return ("%s() takes scikit-learn's parameter names: the old loopnet keyword %r is now "
                "%r (%s)" % (name, key, new, note))
    valid = cls._get_param_names()
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = ("; did you mean %s?" % " or ".join(repr(c) for c in close)) if close else ""
    return ("%s() got an unexpected keyword argument %r%s (valid parameters: %s)"
            % (name, key, hint, ", ".join(valid)))


@contextlib.contextmanager
def _at_most(threads):
    """Run the block with at most ``threads`` Numba threads (None: unchanged); restore after."""
    before = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), before)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


class _LoopNetBase(BaseEstimator):
    """Shared fit / partial_fit machinery; subclasses define targets and the output layer."""

    def __init_subclass__(cls, **kwargs):
        # inspect.signature(cls) would otherwise show __new__'s (*args, **kwargs).
        super().__init_subclass__(**kwargs)
        sig = inspect.signature(cls.__init__)
        cls.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])

    def __new__(cls, *args, **kwargs):
        # Runs before __init__ with the same keywords: an unknown or renamed one gets a
        # message naming the valid parameter instead of Python's bare TypeError.
        valid = set(cls._get_param_names())
        for key in kwargs:
            if key not in valid:
                raise TypeError(_unknown_keyword(cls, key))
        return super().__new__(cls)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 threads=None, dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.threads = threads
        self.dtype = dtype

    # -- validation ----------------------------------------------------------
    def _checked_hidden(self):
        """hidden_layer_sizes as a tuple of positive ints (an int is one layer)."""
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError("hidden_layer_sizes must be a tuple of positive integers, got %r"
                             % (self.hidden_layer_sizes,)) from None
        if not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0
                   for h in hidden):
            raise ValueError("hidden_layer_sizes must be positive integers, got %r"
                             % (self.hidden_layer_sizes,))
        return tuple(int(h) for h in hidden)

    def _check_params(self):
        """Validate every hyper-parameter (at fit, as scikit-learn does); return the hidden sizes."""
        hidden = self._checked_hidden()
        _check_choice("activation", self.activation, ("identity", "logistic", "tanh", "relu"))
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not supported by loopnet, which trains by "
                             "mini-batch gradient descent; use solver='adam' (the default) "
                             "or solver='sgd'")
        _check_choice("solver", self.solver, SOLVERS)
        _check_param("alpha", self.alpha, numbers.Real, 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_param("batch_size ('auto' or)", self.batch_size, numbers.Integral, 1)
        _check_choice("learning_rate", self.learning_rate, LEARNING_RATES)
        _check_param("learning_rate_init", self.learning_rate_init, numbers.Real, 0, strict=True)
        _check_param("power_t", self.power_t, numbers.Real, 0)
        _check_param("max_iter", self.max_iter, numbers.Integral, 1)
        _check_bool("shuffle", self.shuffle)
        _check_param("tol", self.tol, numbers.Real, 0)
        _check_bool("warm_start", self.warm_start)
        _check_param("momentum (loopnet needs < 1)", self.momentum, numbers.Real, 0, below=1)
        _check_bool("nesterovs_momentum", self.nesterovs_momentum)
        _check_bool("early_stopping", self.early_stopping)
        _check_param("validation_fraction", self.validation_fraction, numbers.Real, 0, below=1)
        _check_param("beta_1", self.beta_1, numbers.Real, 0, below=1)
        _check_param("beta_2", self.beta_2, numbers.Real, 0, below=1)
        _check_param("epsilon", self.epsilon, numbers.Real, 0, strict=True)
        if self.n_iter_no_change != np.inf:
            _check_param("n_iter_no_change (or numpy.inf)", self.n_iter_no_change,
                         numbers.Integral, 1)
        _check_param("max_fun", self.max_fun, numbers.Integral, 1)
        if self.threads is not None:
            _check_param("threads (or None)", self.threads, numbers.Integral, 1)
        _check_choice("dtype", str(self.dtype), checks.DTYPES)
        if self.solver == "sgd" and self.nesterovs_momentum and self.momentum > 0:
            warnings.warn("%s: loopnet's sgd uses classical momentum, not Nesterov's; pass "
                          "nesterovs_momentum=False to silence this warning"
                          % type(self).__name__, UserWarning)
        return hidden

    def _validate_X(self, X, reset=False):
        return validate_data(self, X, reset=reset, dtype=self._X_dtype())

    def _validate_Xy(self, X, y, reset, **kwargs):
        return validate_data(self, X, y, reset=reset, dtype=self._X_dtype(), **kwargs)

    def _X_dtype(self):
        return np.float32 if str(self.dtype) == "float32" else np.float64

    @staticmethod
    def _writable(X):
        # Numba compiles a separate specialization for read-only arrays; a copy
        # of a read-only (e.g. memory-mapped) input avoids that compile.
        return X if X.flags.writeable and X.flags.c_contiguous else np.array(X, order="C")

    # -- fitted attributes in scikit-learn's layout ---------------------------
    @property
    def coefs_(self):
        """scikit-learn's coefs_[l], (fan_in, fan_out): views ``net_.weights[l].T``."""
        check_is_fitted(self, "net_")
        return [w.T for w in self.net_.weights]

    @coefs_.setter
    def coefs_(self, values):
        self.net_.weights = [np.asarray(c).T for c in values]

    @property
    def intercepts_(self):
        """scikit-learn's intercepts_[l], (fan_out,): views of ``net_.biases[l]``."""
        check_is_fitted(self, "net_")
        return list(self.net_.biases)

    @intercepts_.setter
    def intercepts_(self, values):
        self.net_.biases = list(values)

    @property
    def weights_(self):
        """loopnet's (Nielsen's) layout w^l, (n_l, n_{l−1}): views ``net_.weights``."""
        check_is_fitted(self, "net_")
        return list(self.net_.weights)

    @property
    def biases_(self):
        """loopnet's b^l, (n_l,): views ``net_.biases`` (same arrays as ``intercepts_``)."""
        return self.intercepts_

    # -- initialisation -------------------------------------------------------
    def _initialize(self, n_in, n_out, hidden, rs):
        """A new Net with scikit-learn's Glorot-uniform start drawn from ``rs``.

        Layer by layer: coef ~ U(−b, b) of shape (fan_in, fan_out), then
        intercept ~ U(−b, b), b = √(f / (fan_in + fan_out)), f = 2 for
        logistic and 6 otherwise (MLPClassifier._init_coef).
        """
        sizes = [n_in, *hidden, n_out]
        self.net_ = loopnet.Net(sizes, activation=ACTIVATIONS[self.activation],
                                output=self._net_output, cost=self._net_cost,
                                dtype=str(self.dtype), seed=0)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = math.sqrt(factor / (fan_in + fan_out))
            self.net_.weights[l] = rs.uniform(-bound, bound, (fan_in, fan_out)).T
            self.net_.biases[l] = rs.uniform(-bound, bound, fan_out)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_out
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._out_activation
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # -- the training loop ----------------------------------------------------
    def _fit(self, X, Y, incremental, sample_weight=None):
        """MLP._fit_stochastic's loop with loopnet's compiled epochs; ``sample_weight``:
        checked per-row weights w_x (or None), which follow their rows through the split."""
        hidden = self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        rs = check_random_state(self.random_state)
        if not hasattr(self, "net_") or not (self.warm_start or incremental):
            self._initialize(X.shape[1], Y.shape[1], hidden, rs)
        elif list(self.net_.sizes[1:-1]) != list(hidden) or self.net_.sizes[-1] != Y.shape[1]:
            raise ValueError("the data or hidden_layer_sizes do not fit the fitted network %s; "
                             "fit from scratch with warm_start=False" % (self.net_.sizes,))
        if not incremental or not hasattr(self, "_eta"):
            # scikit-learn builds a fresh optimizer for every fit (warm_start included).
            self._eta = float(self.learning_rate_init)
            self._reset_optimizer()
        X_val = Y_val = None
        w, w_val = sample_weight, None
        if self.early_stopping:
            # The weights are one more array to split: the same draw as without them.
            parts = train_test_split(X, Y, *([] if w is None else [w]), random_state=rs,
                                     test_size=self.validation_fraction,
                                     stratify=self._stratify(Y))
            X, X_val, Y, Y_val = parts[:4]
            if w is not None:
                w, w_val = self._split_weights(parts[4], parts[5])
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            X = self._writable(X)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        threads = self._threads(n)
        order = np.arange(n)
        self._best_params = self.net_.params.copy() if self.early_stopping else None
        self._w, self._w_val = w, w_val      # per fit call only: not kept in pickles
        self.n_iter_ = 0
        try:
            self._epochs(X, Y, X_val, Y_val, rs, order, batch_size, threads, incremental)
            if self.early_stopping:
                self.net_.params[...] = self._best_params
        except KeyboardInterrupt:
            # As scikit-learn: keep the model (Net.fit rolled the interrupted epoch back).
            warnings.warn("Training interrupted by user.")
            if self.early_stopping:
                self.net_.params[...] = self._best_params
        finally:
            del self._best_params              # a copy of the parameters: not for pickles
            del self._w, self._w_val
        return self

    def _epochs(self, X, Y, X_val, Y_val, rs, order, batch_size, threads, incremental):
        """Up to max_iter epochs (one if incremental) with scikit-learn's stopping rule."""
        n = X.shape[0]
        for _ in range(self.max_iter):
            if self.shuffle:
                order = sk_shuffle(order, random_state=rs)
            self._train_epoch(X, Y, order, batch_size, threads)
            self.n_iter_ += 1
            self.t_ += n
            with _at_most(threads):
                self.loss_ = self._loss(X, Y, batch_size)
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            if self._update_no_improvement_count(X_val, Y_val):
                self._best_params = self.net_.params.copy()
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._eta = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if self.early_stopping else "Training loss"
                msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                       % (what, self.tol, self.n_iter_no_change))
                if self._trigger_stopping(msg):
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                              "optimization hasn't converged yet." % self.max_iter,
                              ConvergenceWarning)

    @staticmethod
    def _split_weights(w, w_val):
        """The training and validation rows' weights; each part must weigh something."""
        for part, name in ((w, "training"), (w_val, "validation")):
            if not np.any(part > 0):
                raise ValueError("sample_weight is zero on every %s row left by the "
                                 "early-stopping split; give those rows weight or set "
                                 "early_stopping=False" % name)
        return np.ascontiguousarray(w), np.ascontiguousarray(w_val)

    def _sample_weight(self, sample_weight, X):
        """w_x as a float64 (n,) array (a number: the same for every row), or None.

        scikit-learn's _check_sample_weight (shape, numbers), then loopnet's
        rule: finite, ≥ 0 and not all zero.
        """
        if sample_weight is None:
            return None
        w = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return checks.check_sample_weight(w, X.shape[0])

    def _reset_optimizer(self):
        """A fresh optimizer state (t = 0, zero moments), as scikit-learn's new optimizer."""
        zeros = np.zeros_like(self.net_.params)
        self.net_.optimizer_state = {"name": self.solver, "t": 0, "velocity": zeros,
                                     "m": zeros, "v": zeros}

    def _threads(self, n):
        """Threads for n rows: the user's, or 1 for a small epoch, else loopnet's choice (None).

        Used for Net.fit and, the same way, around Net.cost / Net.predict.
        """
        if self.threads is not None:
            return int(self.threads)
        sizes = self.net_.sizes
        epoch_flops = 4.0 * n * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        return 1 if epoch_flops < SMALL_EPOCH_FLOPS else None

    def _train_epoch(self, X, Y, order, batch_size, threads):
        """One epoch of mini-batches in ``order``, L2 scaled as scikit-learn's alpha.

        scikit-learn's gradient for a mini-batch of m examples is
        (1/m) Σ_x ∇C_x + (alpha/m) w; loopnet adds (λ/n) w, so λ = alpha·n/m.
        A short last mini-batch has its own m, so it is a second Net.fit call.
        With sample weights (``self._w``, indexed by row) each ∇C_x is w_x ∇C_x,
        still divided by m (Net.fit's rule).
        """
        n = len(order)
        full = n - n % batch_size
        parts = [(order, batch_size)]
        if self.alpha and full < n:
            parts = [(order[:full], batch_size), (order[full:], n - full)]
        adam = self.solver == "adam"
        for part, m in parts:
            self.net_.fit(X, Y, epochs=1, batch_size=m, eta=self._eta,
                          lmbda=float(self.alpha) * X.shape[0] / m,
                          momentum=0.0 if adam else float(self.momentum),
                          optimizer=self.solver, beta1=float(self.beta_1),
                          beta2=float(self.beta_2), epsilon=float(self.epsilon),
                          order=part, monitor=False, threads=threads,
                          sample_weight=self._w)

    def _loss(self, X, Y, batch_size):
        """scikit-learn's loss after the epoch: data loss + (n_batches · alpha / 2n) Σ w²;
        with sample weights the data loss is the weighted mean Σ_x w_x C_x / Σ_x w_x."""
        loss = self.net_.cost(X, Y, sample_weight=self._w) / self._loss_outputs(Y)
        if self.alpha:
            n = X.shape[0]
            squares = sum(float(np.dot(w.ravel(), w.ravel())) for w in self.net_.weights)
            loss += 0.5 * float(self.alpha) * math.ceil(n / batch_size) / n * squares
        return float(loss)

    def _loss_outputs(self, Y):
        return 1

    def _update_no_improvement_count(self, X_val, Y_val):
        """scikit-learn's rule; True when the validation score is a new best."""
        if X_val is None:
            last = self.loss_curve_[-1]
            if last > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, last)
            return False
        with _at_most(self._threads(len(X_val))):
            score = self._validation_score(X_val, Y_val, self._w_val)
        self.validation_scores_.append(score)
        if self.verbose:
            print("Validation score: %f" % score)
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            return True
        return False

    def _trigger_stopping(self, msg):
        """Adam and non-adaptive sgd stop; adaptive sgd divides η by 5 until it is ≤ 1e-6."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._eta <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._eta /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._eta)
        return False

    def _stratify(self, Y):
        return None

    def _forward(self, X):
        check_is_fitted(self, "net_")
        X = self._validate_X(X, reset=False)
        with _at_most(self._threads(X.shape[0])):
            return self.net_.predict(self._writable(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    # -- pickling ------------------------------------------------------------
    # Only what a later predict / warm start / partial_fit needs: parameters, the
    # optimizer arrays that are not all zero (Adam: m, v; sgd with momentum: velocity), the
    # step count, the Net's generator state, the fitted attributes.  No scratch,
    # no zero arrays of an unused optimizer, no copies.  The Net is rebuilt on
    # load (also because joblib's memory-mapped arrays would be read-only).
    def __getstate__(self):
        state = super().__getstate__()
        net = state.get("net_")
        if isinstance(net, loopnet.Net):
            state = dict(state)
            opt = net.optimizer_state
            arrays = {k: np.array(opt[k]) for k in ("velocity", "m", "v") if np.any(opt[k])}
            state["net_"] = {
                "config": net.config, "params": np.array(net.params),
                "optimizer": {"name": opt["name"], "t": opt["t"], **arrays},
                "rng": net.rng.bit_generator.state, "epoch": net.epoch}
        return state

    def __setstate__(self, state):
        net = state.get("net_")
        if isinstance(net, dict) and "config" in net:
            state = dict(state)
            new = loopnet.Net(**net["config"], seed=0)
            new.params[...] = net["params"]
            zeros = np.zeros_like(new.params)
            opt = net["optimizer"]
            new.optimizer_state = {"name": opt["name"], "t": opt["t"],
                                   **{k: opt.get(k, zeros) for k in ("velocity", "m", "v")}}
            new.rng.bit_generator.state = net["rng"]
            new.epoch = net["epoch"]
            state["net_"] = new
        super().__setstate__(state)


_PARAMETERS_DOC = """
    Parameters are scikit-learn's (same names, meanings and defaults):
    hidden_layer_sizes=(100,), activation='relu' ('identity', 'logistic',
    'tanh', 'relu'), solver='adam' ('sgd', 'adam'; 'lbfgs' is an error),
    alpha=1e-4, batch_size='auto' (min(200, n)), learning_rate='constant'
    ('invscaling', 'adaptive'; sgd only), learning_rate_init=0.001,
    power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
    verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True
    (classical momentum is used, with a warning), early_stopping=False,
    validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
    n_iter_no_change=10, max_fun=15000 (ignored).  See the module docstring
    for the few differences from scikit-learn.

    loopnet's own:

    threads : int or None, default None
        Threads that train (at most ``numba.get_num_threads()``, which joblib
        limits in its workers).  None: one thread when an epoch is smaller than
        SMALL_EPOCH_FLOPS, else loopnet's measured choice; results are
        bit-identical either way.
    dtype : {'float64', 'float32'}, default 'float64'
"""


class LoopNetClassifier(ClassifierMixin, _LoopNetBase):
    """Drop-in for scikit-learn's ``MLPClassifier``, trained by loopnet's compiled kernels.

    Multiclass: softmax output with the log-loss; binary: one logistic output
    with the binary log-loss (``predict_proba`` gives both columns).
    """ + _PARAMETERS_DOC + """    class_weight : 'balanced', dict or None, default None
        Weights of the classes with scikit-learn's meaning
        (``sklearn.utils.class_weight.compute_class_weight``): 'balanced' gives
        class c the weight n / (n_classes · n_c); a dict {label: weight} (others 1).
        Each example's gradient and loss are weighted by its class's weight
        times its ``sample_weight``.
"""

    _net_output, _net_cost = "softmax", "log_likelihood"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 threads=None, dtype="float64", class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            threads=threads, dtype=dtype)
        self.class_weight = class_weight

    @property
    def _out_activation(self):
        return "softmax" if len(self.classes_) > 2 else "logistic"

    def _set_output_layer(self):
        binary = len(self.classes_) == 2
        self._net_output = "sigmoid" if binary else "softmax"
        self._net_cost = "cross_entropy" if binary else "log_likelihood"

    def _labels(self, X, y, reset):
        X, y = self._validate_Xy(X, y, reset=reset)
        if np.ndim(y) == 2 and np.shape(y)[1] > 1:
            raise ValueError("multilabel (2-D) targets are not supported by %s; pass 1-D "
                             "class labels" % type(self).__name__)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        return self._writable(X), y

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and labels ``y``, each example's gradient
        and loss weighted by ``sample_weight`` times its class's ``class_weight``; returns self."""
        keep = self.warm_start and hasattr(self, "classes_") and hasattr(self, "net_")
        X, y = self._labels(X, y, reset=not keep)
        classes = np.unique(y)
        if keep:
            if set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes "
                                 "as in the previous call to fit. Previously got %s, `y` has %s"
                                 % (self.classes_, classes))
        else:
            self._set_classes(classes)
        Y = self._encode(y)
        return self._fit(X, Y, incremental=False,
                         sample_weight=self._example_weights(X, y, sample_weight))

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``X, y`` (rows weighted as in :meth:`fit`); ``classes`` (all
        labels) is required on the first call."""
        first = not hasattr(self, "net_")
        X, y = self._labels(X, y, reset=first)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit "
                                 "(all labels that y may contain)")
            self._set_classes(np.unique(classes))
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError("`classes=%r` is not the same as on last call to partial_fit, "
                             "was: %r" % (classes, self.classes_))
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            raise ValueError("class_weight='balanced' is not supported for partial_fit (one "
                             "batch does not show the classes' frequencies); pass a dict")
        Y = self._encode(y)
        return self._fit(X, Y, incremental=True,
                         sample_weight=self._example_weights(X, y, sample_weight))

    def _example_weights(self, X, y, sample_weight):
        """w_x = class_weight[y_x] · sample_weight_x (None when neither is given).

        Class weights as scikit-learn's compute_class_weight: 'balanced' gives
        class c the weight n / (n_classes · n_c), a dict {label: weight}
        (missing labels 1).
        """
        w = self._sample_weight(sample_weight, X)
        if self.class_weight is None:
            return w
        per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        by_class = per_class[np.searchsorted(self.classes_, y)]
        return checks.check_sample_weight(by_class if w is None else by_class * w, X.shape[0],
                                          "class_weight × sample_weight")

    def _set_classes(self, classes):
        if len(classes) < 2:
            raise ValueError("a classifier needs at least 2 classes in y; got 1 class (%r)"
                             % (classes[0],))
        self.classes_ = classes
        self._set_output_layer()

    def _encode(self, y):
        """One-hot rows (multiclass) or one column y == classes_[1] (binary), as LabelBinarizer."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != y
        if np.any(unseen):
            raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` has %s. "
                             "'y' has e.g. %r." % (self.classes_, y[unseen][0]))
        if len(self.classes_) == 2:
            return idx.astype(np.float64).reshape(-1, 1)
        Y = np.zeros((len(y), len(self.classes_)))
        Y[np.arange(len(y)), idx] = 1.0
        return Y

    def _stratify(self, Y):
        # As scikit-learn 1.9: stratified only when there is one output column (binary).
        return Y if Y.shape[1] == 1 else None

    def _validation_score(self, X, Y, w=None):
        """Accuracy on the validation rows (scikit-learn's ``score``), weighted by ``w``."""
        P = self.net_.predict(X)
        if P.shape[1] == 1:
            return float(accuracy_score(Y[:, 0] > 0.5, P[:, 0] > 0.5, sample_weight=w))
        return float(accuracy_score(np.argmax(Y, axis=1), np.argmax(P, axis=1),
                                    sample_weight=w))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes); rows sum to 1."""
        P = self._forward(X)
        if P.shape[1] == 1:
            return np.hstack([1.0 - P, P])
        return P

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class for each row of ``X``."""
        P = self._forward(X)
        if P.shape[1] == 1:
            return self.classes_[(P[:, 0] > 0.5).astype(int)]
        return self.classes_[np.argmax(P, axis=1)]


class LoopNetRegressor(RegressorMixin, _LoopNetBase):
    """Drop-in for scikit-learn's ``MLPRegressor``, trained by loopnet's compiled kernels.

    Identity output with the squared loss ½·mean((a − y)²); ``y`` may be 1-D
    or (n_samples, n_outputs).  With ``early_stopping`` the validation score is R².
    """ + _PARAMETERS_DOC

    _net_output, _net_cost = "identity", "quadratic"
    _out_activation = "identity"

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 threads=None, dtype="float64"):
        # MLPRegressor's signature: loss comes first.
        self.loss = loss
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            threads=threads, dtype=dtype)

    def _check_params(self):
        if self.loss == "poisson":
            raise ValueError("loss='poisson' is not supported by loopnet; use "
                             "loss='squared_error' (the default)")
        _check_choice("loss", self.loss, ("squared_error",))
        return super()._check_params()

    def _targets(self, X, y, reset):
        X, y = self._validate_Xy(X, y, reset=reset, multi_output=True, y_numeric=True)
        Y = np.asarray(y, dtype=np.float64)
        if reset:
            self._y_1d = Y.ndim == 1
        return self._writable(X), np.ascontiguousarray(Y.reshape(len(Y), -1))

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and targets ``y``, each example's gradient
        and loss weighted by ``sample_weight``; returns self."""
        reset = not (self.warm_start and hasattr(self, "net_"))
        X, Y = self._targets(X, y, reset)
        return self._fit(X, Y, incremental=False,
                         sample_weight=self._sample_weight(sample_weight, X))

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X, y`` (rows weighted as in :meth:`fit`)."""
        X, Y = self._targets(X, y, not hasattr(self, "net_"))
        return self._fit(X, Y, incremental=True,
                         sample_weight=self._sample_weight(sample_weight, X))

    def _loss_outputs(self, Y):
        # loopnet's quadratic cost sums ½(a_j − y_j)² over outputs; scikit-learn averages.
        return Y.shape[1]

    def _validation_score(self, X, Y, w=None):
        """R² on the validation rows, averaged over outputs (scikit-learn's ``score``),
        weighted by ``w``."""
        return float(r2_score(Y, self.net_.predict(X), sample_weight=w))

    def predict(self, X):
        """Network outputs: shape (n_samples,) for 1-D training targets, else (n, n_outputs)."""
        out = self._forward(X)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
