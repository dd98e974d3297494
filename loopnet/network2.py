"""Drop-in replacement for Michael Nielsen's ``network2.py`` (chapter 3:
cross-entropy cost, L2 regularization, better initialization), trained by
loopnet's compiled kernels.

Change ``import network2`` to ``from loopnet import network2``: same classes,
methods, returned lists and printed lines; with the same seeds
(``random.seed(s); numpy.random.seed(s)``) the same numbers, up to
floating-point summation order.  See ``loopnet.network`` for how the global
``random`` / ``numpy.random`` generators are consumed exactly as in the
original and for what is checked more strictly.

``save`` writes Nielsen's JSON format (keys ``sizes``, ``weights``,
``biases``, ``cost``), so files move freely between his code and this
module; ``load`` validates a file before trusting it.

Cost classes other than ``QuadraticCost`` and ``CrossEntropyCost`` (your
own ``fn`` / ``delta``) work too, through Nielsen's per-example Python loop.
"""

import json
import os
import sys

import numpy as np

from .io import atomic_write
from .network import (_Compiled, _check_int, _check_real, _check_sizes, _materialize,
                      _replaced)

__all__ = ["QuadraticCost", "CrossEntropyCost", "Network", "load", "vectorized_result",
           "sigmoid", "sigmoid_prime"]


class QuadraticCost(object):
    """C_x = ||a - y||^2 / 2."""

    @staticmethod
    def fn(a, y):
        """Cost of output ``a`` for desired output ``y``."""
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        """Error delta^L = (a - y) * sigma'(z) of the output layer."""
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost(object):
    """C_x = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]."""

    @staticmethod
    def fn(a, y):
        """Cost of output ``a`` for desired output ``y``; ``nan_to_num`` makes
        0 * ln 0 count as 0."""
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        """Error delta^L = a - y of the output layer (``z`` unused)."""
        return (a - y)


_LOOPNET_COST = {QuadraticCost: "quadratic", CrossEntropyCost: "cross_entropy"}
# The built-in costs' methods as defined, to notice ``CrossEntropyCost.delta = f``.
_ORIGINAL_COST = {(c, m): getattr(c, m) for c in _LOOPNET_COST for m in ("fn", "delta")}


class Network(_Compiled):
    """Nielsen's ``network2.Network``."""

    def __init__(self, sizes, cost=CrossEntropyCost):
        """``sizes`` lists the neurons per layer; ``cost`` is a cost class
        (``CrossEntropyCost`` by default).  Weights start from
        ``default_weight_initializer``."""
        sizes = _check_sizes(sizes)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.default_weight_initializer()
        self.cost = cost

    @property
    def _loopnet_cost(self):
        return _LOOPNET_COST.get(self.cost, "quadratic")

    def default_weight_initializer(self):
        """Weights from N(0, 1/n_in), biases from N(0, 1) (``np.random.randn``,
        biases first, as in the original)."""
        self.biases = [np.random.randn(y, 1) for y in self.sizes[1:]]
        self.weights = [np.random.randn(y, x) / np.sqrt(x)
                        for x, y in zip(self.sizes[:-1], self.sizes[1:])]

    def large_weight_initializer(self):
        """Weights and biases from N(0, 1), as in chapter 1."""
        self.biases = [np.random.randn(y, 1) for y in self.sizes[1:]]
        self.weights = [np.random.randn(y, x)
                        for x, y in zip(self.sizes[:-1], self.sizes[1:])]

    def _replacement(self, name):
        """As in :class:`loopnet.network.Network`, and ``"cost.delta"`` / ``"cost.fn"``:
        a cost class of the user's, or a method of the built-in ones replaced
        (``network2.CrossEntropyCost.delta = ...``)."""
        if name.startswith("cost."):
            attr = name[len("cost."):]
            cost = self.cost
            if cost not in _LOOPNET_COST:
                return "the cost class %s is not QuadraticCost or CrossEntropyCost" % (
                    getattr(cost, "__name__", type(cost).__name__))
            if getattr(cost, attr, None) is not _ORIGINAL_COST[cost, attr]:
                return "%s.%s is replaced" % (cost.__name__, attr)
            return None
        return _Compiled._replacement(self, name)

    # -- training ------------------------------------------------------------
    def SGD(self, training_data, epochs, mini_batch_size, eta,
            lmbda=0.0,
            evaluation_data=None,
            monitor_evaluation_cost=False,
            monitor_evaluation_accuracy=False,
            monitor_training_cost=False,
            monitor_training_accuracy=False):
        """Train with mini-batch SGD and L2 regularization ``lmbda``.

        Returns ``(evaluation_cost, evaluation_accuracy, training_cost,
        training_accuracy)``, each a per-epoch list (empty unless its monitor
        flag is set), and prints Nielsen's progress lines.
        """
        epochs = _check_int(epochs, "epochs", 0)
        mini_batch_size = _check_int(mini_batch_size, "mini_batch_size", 1)
        eta = _check_real(eta, "eta")
        lmbda = _check_real(lmbda, "lmbda")
        evaluation, _ = _materialize(evaluation_data, "evaluation_data")
        if (monitor_evaluation_cost or monitor_evaluation_accuracy) and not evaluation:
            flag = ("monitor_evaluation_cost" if monitor_evaluation_cost
                    else "monitor_evaluation_accuracy")
            raise ValueError("%s=True needs evaluation_data (a non-empty list of "
                             "(x, label) pairs)" % flag)
        n_data = len(evaluation) if evaluation else 0
        fast = not _replaced(self, _TRAINING_PIECES, "SGD")
        # Which monitors may run compiled (otherwise Nielsen's methods are called).
        acc_fast = (monitor_training_accuracy or monitor_evaluation_accuracy) and not _replaced(
            self, _ACCURACY_PIECES, "SGD's accuracy monitors")
        cost_fast = (monitor_training_cost or monitor_evaluation_cost) and not _replaced(
            self, _COST_PIECES, "SGD's cost monitors")
        ev = None
        if evaluation and ((monitor_evaluation_accuracy and acc_fast)
                           or (monitor_evaluation_cost and cost_fast)):
            (EX, elabels), erows = self._labelled_arrays(evaluation, "evaluation_data",
                                                         _EVALUATION_HINT)
            EY = self._one_hot(elabels, "evaluation_data") if monitor_evaluation_cost else None
            ev = (EX, elabels, EY, erows)
        evaluation_cost, evaluation_accuracy = [], []
        training_cost, training_accuracy = [], []
        training_list, _ = _materialize(training_data, "training_data")
        n = len(training_list)

        def after_epoch(j, state):
            print("Epoch %s training complete" % j)
            arrays = isinstance(state, tuple)          # the compiled path's (X, Y, rows)
            if monitor_training_cost:
                if arrays and cost_fast:
                    cost = self._cost_arrays(state[0], state[1], lmbda, state[2])
                else:
                    cost = self.total_cost(training_list, lmbda)
                training_cost.append(cost)
                print("Cost on training data: {}".format(cost))
            if monitor_training_accuracy:
                if arrays and acc_fast:
                    X, Y, rows = state
                    accuracy = self._count_correct(X, np.argmax(Y, axis=1), rows)
                else:
                    accuracy = self.accuracy(training_list, convert=True)
                training_accuracy.append(accuracy)
                print("Accuracy on training data: {} / {}".format(accuracy, n))
            if monitor_evaluation_cost:
                if cost_fast:
                    cost = self._cost_arrays(ev[0], ev[2], lmbda, ev[3])
                else:
                    cost = self.total_cost(evaluation, lmbda, convert=True)
                evaluation_cost.append(cost)
                print("Cost on evaluation data: {}".format(cost))
            if monitor_evaluation_accuracy:
                if acc_fast:
                    accuracy = shown = self._count_correct(ev[0], ev[1], ev[3])
                else:
                    accuracy = self.accuracy(evaluation)
                    shown = self.accuracy(evaluation)      # Nielsen's code calls it twice
                evaluation_accuracy.append(accuracy)
                print("Accuracy on evaluation data: {} / {}".format(shown, n_data))
            print()

        self._run_epochs(training_list, epochs, mini_batch_size, eta, lmbda, after_epoch, fast)
        return evaluation_cost, evaluation_accuracy, training_cost, training_accuracy

    def _python_update(self, mini_batch, eta, lmbda, n):
        self.update_mini_batch(mini_batch, eta, lmbda, n)

    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        """One gradient-descent step with weight decay on ``mini_batch``:
        w -> (1 - eta lmbda/n) w - (eta/m) sum_x dC_x/dw."""
        eta = _check_real(eta, "eta")
        lmbda = _check_real(lmbda, "lmbda")
        n = _check_int(n, "n", 1)
        if not _replaced(self, _TRAINING_PIECES[1:], "update_mini_batch"):
            return self._compiled_update(mini_batch, eta, lmbda, n)
        data, _ = _materialize(mini_batch, "mini_batch")
        nabla_b, nabla_w = self._gradient_sum_python(data)
        m = len(data)
        self.weights = [(1 - eta * (lmbda / n)) * w - (eta / m) * nw
                        for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / m) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        """Return ``(nabla_b, nabla_w)``, the gradient of C_x for one example."""
        if _replaced(self, _TRAINING_PIECES[2:], "backprop"):
            x, y = self._check_xy(x, y)
            return self._numpy_backprop(x, y, self.cost.delta)
        return self._compiled_backprop(x, y)

    # -- monitoring ------------------------------------------------------------
    def _one_hot(self, labels, name):
        n_out = self.sizes[-1]
        if n_out != 10:
            raise ValueError(
                "the cost on %s compares the outputs with vectorized_result(label), a "
                "10-dimensional vector, but this Network has %d output neurons; Nielsen's "
                "code only supports this for 10 outputs" % (name, n_out))
        li = labels.astype(np.int64)
        bad = np.nonzero((li != labels) | (li < 0) | (li >= 10))[0]
        if len(bad):
            raise ValueError("%s[%d][1] is %r, not a label 0-9 for vectorized_result"
                             % (name, bad[0], labels[bad[0]]))
        return np.eye(10)[li]

    def _cost_arrays(self, X, Y, lmbda, rows):
        """Nielsen's total_cost over the examples ``rows`` of arrays X, Y: sum_x C_x/n
        in the order of ``rows`` (his list order), + the L2 term."""
        n = len(rows)
        if n == 0:
            raise ValueError("cannot compute the cost of an empty data set")
        A = self._predict(X)
        if self.cost is QuadraticCost:
            D = A - Y
            per = 0.5 * np.sqrt(np.einsum("ij,ij->i", D, D)) ** 2
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                per = np.sum(np.nan_to_num(-Y * np.log(A) - (1 - Y) * np.log(1 - A)), axis=1)
        # Sequential sum (cumsum), as Nielsen's loop ``cost += C_x/len(data)`` adds.
        cost = 0.0 + np.cumsum(per[rows] / n)[-1]
        cost += 0.5 * (lmbda / n) * sum(np.linalg.norm(w) ** 2 for w in self.weights)
        return np.float64(cost)

    def accuracy(self, data, convert=False):
        """Number of examples in ``data`` classified correctly (index of the
        most active output neuron).  ``convert=False``: ``data`` holds
        ``(x, label)`` pairs (validation/test data); ``convert=True``:
        ``(x, one-hot y)`` pairs (training data)."""
        data, _ = _materialize(data, "data")
        if not data:
            return 0
        if _replaced(self, _ACCURACY_PIECES[1:], "accuracy"):
            if convert:
                results = [(np.argmax(self.feedforward(x)), np.argmax(y)) for (x, y) in data]
            else:
                results = [(np.argmax(self.feedforward(x)), y) for (x, y) in data]
            return sum(int(x == y) for (x, y) in results)
        if convert:
            (X, Y), rows = self._training_arrays(data, "data")
            return self._count_correct(X, np.argmax(Y, axis=1), rows)
        (X, labels), rows = self._labelled_arrays(
            data, "data", "; for training data, whose y are vectors, call "
                          "accuracy(data, convert=True)")
        return self._count_correct(X, labels, rows)

    def total_cost(self, data, lmbda, convert=False):
        """Mean cost over ``data`` plus the L2 term 0.5 (lmbda/n) sum w^2.
        ``convert=False``: ``(x, y-vector)`` pairs (training data);
        ``convert=True``: ``(x, label)`` pairs."""
        lmbda = _check_real(lmbda, "lmbda")
        data, _ = _materialize(data, "data")
        if _replaced(self, _COST_PIECES[1:], "total_cost"):
            cost = 0.0
            for x, y in data:
                a = self.feedforward(x)
                if convert:
                    y = _this_module.vectorized_result(y)
                cost += self.cost.fn(a, y) / len(data)
            cost += 0.5 * (lmbda / len(data)) * sum(
                np.linalg.norm(w) ** 2 for w in self.weights)
            return cost
        if not data:
            raise ValueError("total_cost: data is empty")
        if convert:
            (X, labels), rows = self._labelled_arrays(
                data, "data", "; with convert=True, data holds (x, label) pairs")
            Y = self._one_hot(labels, "data")
        else:
            try:
                (X, Y), rows = self._training_arrays(data, "data")
            except ValueError as e:
                raise ValueError(str(e) + "; for (x, label) pairs (validation or test data) "
                                 "call total_cost(data, lmbda, convert=True)") from None
        return self._cost_arrays(X, Y, lmbda, rows)

    # -- files -------------------------------------------------------------
    def save(self, filename):
        """Save to ``filename`` in Nielsen's JSON format (sizes, weights,
        biases, cost name); the file is written atomically."""
        data = {"sizes": list(self.sizes),
                "weights": [np.asarray(w).tolist() for w in self.weights],
                "biases": [np.asarray(b).tolist() for b in self.biases],
                "cost": str(self.cost.__name__)}
        text = json.dumps(data)
        # atomic, at the mode open() would give (0666 less the umask), temporary removed
        atomic_write(os.fspath(filename), lambda f: f.write(text.encode()))


_COSTS = {"QuadraticCost": QuadraticCost, "CrossEntropyCost": CrossEntropyCost}


def load(filename):
    """Load a network saved by ``Network.save`` (ours or Nielsen's).

    As in the original, this constructs ``Network(sizes, cost)`` (drawing
    its initial weights from ``np.random``) and then replaces the weights and
    biases with those in the file.  A malformed file raises ``ValueError``
    saying what is wrong.
    """
    with open(filename, "r") as f:
        try:
            data = json.load(f)
        except ValueError as e:
            raise ValueError("%s is not a network2 file (invalid JSON: %s)" % (filename, e)) \
                from None
    if not isinstance(data, dict):
        raise ValueError("%s is not a network2 file: expected a JSON object" % filename)
    missing = [k for k in ("sizes", "weights", "biases", "cost") if k not in data]
    if missing:
        raise ValueError("%s is not a network2 file: missing %s" % (filename, ", ".join(missing)))
    try:
        sizes = _check_sizes(data["sizes"])
    except (TypeError, ValueError) as e:
        raise ValueError("%s: bad sizes: %s" % (filename, e)) from None
    if data["cost"] not in _COSTS:
        raise ValueError("%s: unknown cost %r; expected one of %s"
                         % (filename, data["cost"], ", ".join(sorted(_COSTS))))
    L = len(sizes) - 1
    weights, biases = data["weights"], data["biases"]
    if not isinstance(weights, list) or not isinstance(biases, list) \
            or len(weights) != L or len(biases) != L:
        raise ValueError("%s: sizes %s need %d weight matrices and %d bias vectors"
                         % (filename, sizes, L, L))
    ws, bs = [], []
    for l in range(L):
        try:
            w = np.array(weights[l], dtype=np.float64)
            b = np.array(biases[l], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("%s: weights[%d] / biases[%d] are not numeric arrays"
                             % (filename, l, l)) from None
        if w.shape != (sizes[l + 1], sizes[l]):
            raise ValueError("%s: weights[%d] has shape %s, but sizes %s need (%d, %d)"
                             % (filename, l, w.shape, sizes, sizes[l + 1], sizes[l]))
        if b.shape != (sizes[l + 1], 1):
            raise ValueError("%s: biases[%d] has shape %s, but sizes %s need (%d, 1)"
                             % (filename, l, b.shape, sizes, sizes[l + 1]))
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError("%s: weights[%d] or biases[%d] hold NaN or infinity"
                             % (filename, l, l))
        ws.append(w)
        bs.append(b)
    net = Network(data["sizes"], cost=_COSTS[data["cost"]])
    net.weights = ws
    net.biases = bs
    return net


def vectorized_result(j):
    """10-dimensional unit vector with 1.0 in position ``j``."""
    e = np.zeros((10, 1))
    e[j] = 1.0
    return e



def sigmoid(z):
    """The sigmoid function 1 / (1 + e^-z)."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))


# What SGD's pieces use, outermost first: each runs compiled only if none is replaced.
_TRAINING_PIECES = ("update_mini_batch", "backprop", "cost.delta", "sigmoid", "sigmoid_prime")
_ACCURACY_PIECES = ("accuracy", "feedforward", "sigmoid")
_COST_PIECES = ("total_cost", "feedforward", "sigmoid", "cost.fn", "vectorized_result")
_EVALUATION_HINT = ("; evaluation_data holds (x, label) pairs, as load_data_wrapper()'s "
                    "validation and test data")

# The originals, to tell what a user replaced (network2.sigmoid = f, Network.backprop = f, ...).
_this_module = sys.modules[__name__]
_ORIGINAL = {"sigmoid": sigmoid, "sigmoid_prime": sigmoid_prime,
             "vectorized_result": vectorized_result}
Network._module = _this_module
Network._ORIGINAL_METHODS = dict(
    {name: Network.__dict__[name] for name in
     ("update_mini_batch", "backprop", "accuracy", "total_cost") },
    feedforward=_Compiled.feedforward)
