"""The book's runs end to end: Nielsen's code vs loopnet's drop-ins vs the core ``Net.fit``.

    python profiles/nielsen.py --nielsen /path/to/ported/src [--repeats 3] [--no-cold]

``--nielsen DIR`` holds a Python 3 port of Nielsen's ``network.py`` and
``network2.py`` (print(), range; see tests/fixtures/nielsen/README.md); his
code is not part of this repository.  Without it only loopnet is timed.

Every scenario is what a reader of the book runs, on the 50,000 training
images of Fashion-MNIST (or MNIST) in Nielsen's format
(``loopnet.mnist_loader.load_data_wrapper()``), with the same seeds for every
implementation:

* ``ch1 1 epoch``: ``network.Network([784, 30, 10]).SGD(training_data, 1, 10,
  3.0, test_data=test_data)``;
* ``ch1 1 epoch, pairs built by Nielsen's loader``: the same, on new pairs made as his
  ``mnist_loader`` makes them, every repeat (the drop-in converts them, once per set of
  pairs for all networks; it trains on ``load_data_wrapper()``'s own pairs in place);
  after each timed call the pairs are dropped and ``loopnet.pairs.release()`` frees the
  drop-in's hold on them, untimed, as Nielsen's are freed when the call returns;
* ``ch1 3 x SGD(..., 1, ...)``: the same network trained by three calls of one
  epoch each, as an early-stopping loop does;
* ``ch3 1 epoch`` / ``ch3 3 x SGD(..., 1, ...)``: ``network2.Network([784, 30,
  10], cost=CrossEntropyCost).SGD(training_data, 1, 10, 0.5, lmbda=5.0,
  evaluation_data=validation_data, monitor_evaluation_accuracy=True)``;
* ``backprop x 5000``: ``net.backprop(x, y)`` on 5,000 examples, one call each;
* ``subclass update_mini_batch``: a subclass whose ``update_mini_batch`` sums
  ``self.backprop`` over the mini-batch (the book's exercises), one epoch of
  ``SGD`` on 5,000 examples;
* ``first run``: the whole script (load the data, one chapter-1 epoch) in a
  fresh process with an empty ``NUMBA_CACHE_DIR``, as right after install,
  and again with the cache filled.

"core" is ``loopnet.Net.fit`` doing the same work on arrays prepared
beforehand (same sizes, cost, eta, lmbda, epochs, mini-batch size, the same
evaluation after each epoch; ``backprop`` -> ``gradient_sum`` of one row):
what the drop-in is measured against.  Each repeat runs every scenario and
implementation once, interleaved; the best time of each is kept and the
ratios come from this one run.  The machine's load average is printed with
every scenario.  Nothing here asserts a time.
"""

import argparse
import contextlib
import importlib.util
import io
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import loopnet  # noqa: E402
from loopnet import mnist_loader, pairs  # noqa: E402
from loopnet import network as loopnet_network  # noqa: E402
from loopnet import network2 as loopnet_network2  # noqa: E402

SEED = 12345
SMALL = 5000        # examples for the per-example backprop and the subclass


def import_file(directory, name):
    path = os.path.join(directory, name + ".py")
    if not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location("nielsen_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summed_update(self, mini_batch, eta):
    """A subclass's update_mini_batch, as the book's exercises write them: add up
    self.backprop(x, y) over the mini-batch in place, then take one step."""
    sum_b = [np.zeros(np.shape(b)) for b in self.biases]
    sum_w = [np.zeros(np.shape(w)) for w in self.weights]
    for x, y in mini_batch:
        grad_b, grad_w = self.backprop(x, y)
        for total, g in zip(sum_b + sum_w, list(grad_b) + list(grad_w)):
            total += g
    step = eta / len(mini_batch)
    self.weights = [w - step * g for w, g in zip(self.weights, sum_w)]
    self.biases = [b - step * g for b, g in zip(self.biases, sum_b)]


def seeded():
    random.seed(SEED)
    np.random.seed(SEED)


class Data:
    """Nielsen-format lists and the same examples as arrays for the core."""

    def __init__(self, directory, examples):
        training, validation, test = mnist_loader.load_data_wrapper(directory)
        self.training = training[:examples]
        self.validation, self.test = validation, test
        self.X = np.array([x.ravel() for x, _ in self.training], dtype=np.float64)
        self.Y = np.array([y.ravel() for _, y in self.training], dtype=np.float64)
        self.X_test = np.array([x.ravel() for x, _ in test], dtype=np.float64)
        self.y_test = np.array([y for _, y in test])
        self.X_val = np.array([x.ravel() for x, _ in validation], dtype=np.float64)
        self.y_val = np.array([y for _, y in validation])
        # The same pairs as Nielsen's own mnist_loader builds them (views of his split's
        # matrix, a new vectorized_result array per y), which loopnet's drop-ins do not
        # recognise as load_data_wrapper()'s: they convert them as any data.
        (tr_x, tr_y), _, (te_x, te_y) = mnist_loader.load_data(directory)
        self.arrays_other = (tr_x[:examples], tr_y[:examples], te_x, te_y)

    def other_loaders_pairs(self):
        """New pairs built as Nielsen's mnist_loader builds them, every call (so that each
        timed SGD call converts them, as the first call of a script does)."""
        tr_x, tr_y, te_x, te_y = self.arrays_other
        n_in = tr_x.shape[1]
        training = [(np.reshape(x, (n_in, 1)), mnist_loader.vectorized_result(y))
                    for x, y in zip(tr_x, tr_y)]
        return training, list(zip([np.reshape(x, (n_in, 1)) for x in te_x], te_y))


# ------------------------------------------------------------------ scenarios
# Each takes (implementation, data) and returns (seconds, a short result to compare).

def ch1(impl, data, calls, other_loader=False):
    module = impl["network"]
    # SGD shuffles the list in place: a copy of it (the same pairs) each time.
    training, test = data.other_loaders_pairs() if other_loader else (list(data.training),
                                                                       data.test)
    seeded()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if module is None:
            net = loopnet.Net([784, 30, 10], cost="quadratic", init="large", seed=SEED)
            start = time.perf_counter()
            for _ in range(calls):
                net.fit(data.X, data.Y, epochs=1, batch_size=10, eta=3.0, monitor=False)
                print(int(round(net.accuracy(data.X_test, data.y_test) * len(data.y_test))))
        else:
            net = module.Network([784, 30, 10])
            start = time.perf_counter()
            for _ in range(calls):
                net.SGD(training, 1, 10, 3.0, test_data=test)
        seconds = time.perf_counter() - start
    if other_loader:
        # These pairs are dropped at once (as Nielsen's are, when this returns, untimed);
        # the drop-in keeps them until it next remembers a set: free them now, untimed,
        # not inside the next repeat's SGD call (15-20 ms for 50,000 pairs).
        del training, test, net
        pairs.release()
    return seconds, out.getvalue().split("\n")[-2]


def ch3(impl, data, calls):
    module = impl["network2"]
    training = list(data.training)
    seeded()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if module is None:
            net = loopnet.Net([784, 30, 10], cost="cross_entropy", seed=SEED)
            start = time.perf_counter()
            for _ in range(calls):
                net.fit(data.X, data.Y, epochs=1, batch_size=10, eta=0.5, lmbda=5.0,
                        monitor=False)
                print(int(round(net.accuracy(data.X_val, data.y_val) * len(data.y_val))))
        else:
            net = module.Network([784, 30, 10], cost=module.CrossEntropyCost)
            start = time.perf_counter()
            for _ in range(calls):
                net.SGD(training, 1, 10, 0.5, lmbda=5.0, evaluation_data=data.validation,
                        monitor_evaluation_accuracy=True)
        seconds = time.perf_counter() - start
    lines = [line for line in out.getvalue().split("\n") if line]
    return seconds, lines[-1]


def backprop(impl, data):
    module = impl["network"]
    seeded()
    pairs = data.training[:SMALL]
    if module is None:
        net = loopnet.Net([784, 30, 10], cost="quadratic", init="large", seed=SEED)
        X, Y = data.X[:SMALL], data.Y[:SMALL]
        start = time.perf_counter()
        for i in range(len(X)):
            g = net.gradient_sum(X[i:i + 1], Y[i:i + 1])
        return time.perf_counter() - start, "%.6g" % np.abs(g).sum()
    net = module.Network([784, 30, 10])
    start = time.perf_counter()
    for x, y in pairs:
        nabla_b, nabla_w = net.backprop(x, y)
    seconds = time.perf_counter() - start
    return seconds, "%.6g" % sum(np.abs(a).sum() for a in nabla_b + nabla_w)


def subclass(impl, data):
    module = impl["network"]
    training = list(data.training[:SMALL])
    seeded()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if module is None:
            net = loopnet.Net([784, 30, 10], cost="quadratic", init="large", seed=SEED)
            start = time.perf_counter()
            net.fit(data.X[:SMALL], data.Y[:SMALL], epochs=1, batch_size=10, eta=3.0,
                    monitor=False)
            seconds = time.perf_counter() - start
            return seconds, "%.6g" % np.abs(net.params).sum()
        cls = type("Summed", (module.Network,), {"update_mini_batch": summed_update})
        net = cls([784, 30, 10])
        start = time.perf_counter()
        net.SGD(training, 1, 10, 3.0)
        seconds = time.perf_counter() - start
    return seconds, "%.6g" % sum(np.abs(w).sum() for w in net.weights + net.biases)


SCENARIOS = [
    ("ch1 1 epoch", lambda impl, data: ch1(impl, data, 1)),
    ("ch1 1 epoch, pairs built by Nielsen's loader", lambda impl, data: ch1(impl, data, 1, True)),
    ("ch1 3 x SGD(..., 1, ...)", lambda impl, data: ch1(impl, data, 3)),
    ("ch3 1 epoch", lambda impl, data: ch3(impl, data, 1)),
    ("ch3 3 x SGD(..., 1, ...)", lambda impl, data: ch3(impl, data, 3)),
    ("backprop x %d" % SMALL, backprop),
    ("subclass update_mini_batch, %d examples" % SMALL, subclass),
]

FIRST_RUN = """
import sys, time
start = time.perf_counter()
sys.path.insert(0, {path!r})
import network
from loopnet import mnist_loader
training_data, validation_data, test_data = mnist_loader.load_data_wrapper({data!r})
net = network.Network([784, 30, 10])
net.SGD(training_data, 1, 10, 3.0, test_data=test_data)
"""


def first_run(network_dir, data_dir, cache_dir):
    """Wall seconds of the whole script in a fresh process, and what it wrote to stderr."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = FIRST_RUN.format(path=network_dir, data=data_dir)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError("first-run script failed:\n" + out.stderr)
    return seconds, out.stderr.strip().splitlines()


def load():
    return "%.1f" % os.getloadavg()[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nielsen", metavar="DIR", help="directory with Nielsen's network.py and "
                   "network2.py ported to Python 3")
    p.add_argument("--data", metavar="DIR", help="MNIST/Fashion-MNIST directory")
    p.add_argument("--examples", type=int, default=50_000, help="training examples (default all)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats, best kept")
    p.add_argument("--only", help="comma-separated scenario numbers (1-7) to run")
    p.add_argument("--no-cold", action="store_true", help="skip the first-run measurement")
    args = p.parse_args(argv)

    import numba
    kind, where = mnist_loader.find_data(args.data)
    data = Data(args.data, args.examples)
    print("# Nielsen's runs: his code vs loopnet's drop-in vs the core Net.fit")
    print("data: %s (%s), %d training / %d validation / %d test examples"
          % (where, kind, len(data.training), len(data.validation), len(data.test)))
    print("machine: %s, %d logical CPUs, Python %s, NumPy %s, Numba %s (%d threads), "
          "load average at start %s" % (platform.processor() or platform.machine(),
                                        os.cpu_count(), platform.python_version(),
                                        np.__version__, numba.__version__,
                                        numba.get_num_threads(), load()))
    impls = {"drop-in": {"network": loopnet_network, "network2": loopnet_network2},
             "core": {"network": None, "network2": None}}
    if args.nielsen:
        nielsen = {"network": import_file(args.nielsen, "network"),
                   "network2": import_file(args.nielsen, "network2")}
        if nielsen["network"] is None or nielsen["network2"] is None:
            p.error("--nielsen %s: network.py and network2.py not found" % args.nielsen)
        impls = dict({"nielsen": nielsen}, **impls)
    else:
        print("Nielsen's code: not timed (--nielsen DIR not given)")
    print("compile / cache load before timing: %.1f s" % loopnet.warmup())
    chosen = [int(k) - 1 for k in args.only.split(",")] if args.only else range(len(SCENARIOS))

    best, loads = {}, {}
    for rep in range(args.repeats):
        for i in chosen:
            name, scenario = SCENARIOS[i]
            loads.setdefault(name, []).append(load())
            for label, impl in impls.items():
                sys.stderr.write("[%d/%d] %s: %s (load %s)\n"
                                 % (rep + 1, args.repeats, name, label, load()))
                seconds, result = scenario(impl, data)
                key = (name, label)
                if key not in best or seconds < best[key][0]:
                    best[key] = (seconds, result)

    print()
    has_n = "nielsen" in impls
    print("| scenario | %sdrop-in (s) | core (s) | %sdrop-in / core speed | load | "
          "last result (%s) |" % ("Nielsen (s) | " if has_n else "",
                                  "drop-in vs Nielsen | " if has_n else "",
                                  " / ".join(impls)))
    print("|---|%s---:|---:|%s---:|---|---|" % ("---:|" if has_n else "", "---:|" if has_n else ""))
    for i in chosen:
        name = SCENARIOS[i][0]
        d, c = best[(name, "drop-in")][0], best[(name, "core")][0]
        row = "| %s | " % name
        if has_n:
            row += "%.3f | " % best[(name, "nielsen")][0]
        row += "%.3f | %.3f | " % (d, c)
        if has_n:
            row += "%.1fx | " % (best[(name, "nielsen")][0] / d)
        row += "%.0f %% | %s | %s |" % (100 * c / d, ", ".join(loads[name]),
                                         " / ".join(best[(name, k)][1] for k in impls))
        print(row)

    if not args.no_cold:
        print()
        print("| the whole script (load data, 1 chapter-1 epoch), fresh process | seconds |")
        print("|---|---:|")
        data_dir = where if kind == "idx" else os.path.dirname(where)
        with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as standin:
            with open(os.path.join(standin, "network.py"), "w") as f:
                f.write("from loopnet.network import *  # noqa\n")
            seconds, err = first_run(standin, data_dir, empty)
            print("| loopnet drop-in, empty NUMBA_CACHE_DIR (first run after install) | %.1f |"
                  % seconds)
            seconds2, err2 = first_run(standin, data_dir, empty)
            print("| loopnet drop-in, cache filled by the run above | %.1f |" % seconds2)
        if has_n:
            seconds3, _ = first_run(args.nielsen, data_dir, tempfile.gettempdir())
            print("| Nielsen's code | %.1f |" % seconds3)
        print()
        print("stderr of the first run: %s" % (" | ".join(err) or "(nothing)"))
        print("stderr of the second run: %s" % (" | ".join(err2) or "(nothing)"))
    print("load average at the end: %s" % load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
