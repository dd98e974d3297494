"""Nielsen's chapter-1 run, his network.py vs loopnet.network, same seeds.

    python profiles/nielsen_ch1.py --nielsen /path/to/ported/src [--epochs 1]

runs, for each implementation,

    random.seed(s); numpy.random.seed(s)
    net = network.Network([784, 30, 10])
    net.SGD(training_data, epochs, 10, 3.0, test_data=test_data)

on the 50,000 training images of Fashion-MNIST (or MNIST) as returned by
``loopnet.mnist_loader.load_data_wrapper()``, and prints the wall time of
``SGD`` (its per-epoch test evaluation included, as in the book), the lines
each printed, the largest weight difference between the two trained networks,
and the speed-up.  A second run of Nielsen's code from initial weights
perturbed by one part in 10^15 shows how far two correct runs drift apart
after thousands of mini-batches at eta = 3.0 (the summation order differs
between NumPy's BLAS and loopnet's kernels just as much).

``--nielsen DIR`` is a directory holding a Python 3 port of Nielsen's
``network.py`` (print(), range; see tests/fixtures/nielsen/README.md).
Without it, only loopnet is timed.  loopnet's one-off JIT compile (or cache
load) is done and reported before the timed run.  The machine is shared and
noisy: this prints one measurement; it asserts nothing about time.
"""

import argparse
import contextlib
import importlib.util
import io
import os
import platform
import random
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from loopnet import mnist_loader  # noqa: E402
from loopnet import network as loopnet_network  # noqa: E402


class Tee(io.StringIO):
    """Capture what SGD prints and echo it, prefixed, to stderr."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def write(self, s):
        for line in s.splitlines():
            if line:
                sys.stderr.write("  [%s] %s\n" % (self.prefix, line))
        return super().write(s)


def import_nielsen(directory):
    path = os.path.join(directory, "network.py")
    if not os.path.isfile(path):
        return None, "no network.py in %s" % directory
    spec = importlib.util.spec_from_file_location("nielsen_network", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        return None, ("%s is not Python 3 (%s); port it first (print(), range), see "
                      "tests/fixtures/nielsen/README.md" % (path, e.msg))
    return module, None


def run(module, label, training, test, epochs, seed, perturb=0.0):
    data = list(training)            # SGD shuffles its list in place: start from the same order
    random.seed(seed)
    np.random.seed(seed)
    out = Tee(label)
    with contextlib.redirect_stdout(out):
        net = module.Network([784, 30, 10])
        if perturb:
            # w -> w (1 + perturb * N(0,1)) from a private generator: global RNGs untouched.
            rs = np.random.RandomState(0)
            net.weights = [w * (1 + perturb * rs.randn(*w.shape)) for w in net.weights]
        start = time.perf_counter()
        net.SGD(data, epochs, 10, 3.0, test_data=test)
        seconds = time.perf_counter() - start
    return net, seconds, out.getvalue().splitlines()


def warm_up(test):
    """Compile (or load from cache) loopnet's kernels before timing; keeps RNG state."""
    state_r, state_np = random.getstate(), np.random.get_state()
    start = time.perf_counter()
    tiny = [(x, np.eye(10)[[int(y)]].T) for x, y in test[:20]]
    with contextlib.redirect_stdout(io.StringIO()):
        loopnet_network.Network([784, 30, 10]).SGD(tiny, 1, 10, 3.0, test_data=test[:20])
    random.setstate(state_r)
    np.random.set_state(state_np)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nielsen", metavar="DIR", help="directory with Nielsen's network.py "
                   "ported to Python 3")
    p.add_argument("--epochs", type=int, default=1, help="epochs (the book uses 30; default 1)")
    p.add_argument("--examples", type=int, default=50_000,
                   help="training examples (first N of the 50,000; default all)")
    p.add_argument("--data", metavar="DIR", help="MNIST/Fashion-MNIST directory "
                   "(default: LOOPNET_DATA or /usr/share/datasets/fashion-mnist)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--repeats", type=int, default=1,
                   help="run each implementation R times, interleaved; report the best time")
    p.add_argument("--no-sensitivity", action="store_true",
                   help="skip the second Nielsen run with initial weights perturbed by 1e-15")
    p.add_argument("--threads", type=int, help="Numba threads for loopnet (default: Numba's "
                   "default, all cores); results are bit-identical for any count")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.examples < 1 or args.repeats < 1:
        p.error("--epochs, --examples and --repeats must be positive")

    if args.threads is not None:
        import numba
        numba.set_num_threads(args.threads)
    kind, where = mnist_loader.find_data(args.data)
    training, _validation, test = mnist_loader.load_data_wrapper(args.data)
    training = training[:args.examples]
    print("# Nielsen chapter 1: Network([784, 30, 10]).SGD(training_data, %d, 10, 3.0, test_data)"
          % args.epochs)
    print("data: %s (%s), %d training / %d test examples" % (where, kind, len(training), len(test)))
    import numba
    print("machine: %s, %d logical CPUs, Python %s, NumPy %s, Numba %s (%d threads)"
          % (platform.processor() or platform.machine(), os.cpu_count(),
             platform.python_version(), np.__version__, numba.__version__,
             numba.get_num_threads()))

    nielsen, why = (None, "--nielsen DIR not given") if not args.nielsen \
        else import_nielsen(args.nielsen)
    if nielsen is None:
        print("Nielsen's network.py: not timed (%s); timing loopnet.network only" % why)

    compile_s = warm_up(test)
    print("loopnet JIT compile / cache load (not timed below): %.2f s" % compile_s)

    results = {}
    for rep in range(args.repeats):
        # Interleaved, best time kept: on a shared machine the load changes minute by minute.
        runs = [("loopnet", loopnet_network, 0.0)]
        if nielsen is not None:
            runs.insert(0, ("nielsen", nielsen, 0.0))
            if not args.no_sensitivity and rep == 0:
                runs.insert(1, ("nielsen, w*(1+1e-15 N(0,1))", nielsen, 1e-15))
        for name, module, perturb in runs:
            sys.stderr.write("running %s (%d/%d) ...\n" % (name, rep + 1, args.repeats))
            got = run(module, name.split(",")[0], training, test, args.epochs, args.seed,
                      perturb=perturb)
            if name not in results or got[1] < results[name][1]:
                results[name] = got
    print()
    print("| implementation | SGD wall time (s)%s | s / epoch | last line printed |"
          % (", best of %d" % args.repeats if args.repeats > 1 else ""))
    print("|---|---:|---:|---|")
    for name, (_, seconds, lines) in results.items():
        print("| %s | %.2f | %.2f | %s |" % (name, seconds, seconds / args.epochs, lines[-1]))
    if "nielsen" not in results:
        return 0
    (n_net, n_s, n_lines), (l_net, l_s, l_lines) = results["nielsen"], results["loopnet"]

    def max_dw(a, b):
        return max(max(np.abs(u - v).max() for u, v in zip(a.weights, b.weights)),
                   max(np.abs(u - v).max() for u, v in zip(a.biases, b.biases)))

    print()
    print("same printed lines: %s" % ("yes" if n_lines == l_lines else "no"))
    print("max |w_nielsen - w_loopnet| over all weights and biases: %.3g" % max_dw(n_net, l_net))
    for name, (p_net, _, p_lines) in results.items():
        if name.startswith("nielsen,"):
            print("sensitivity: Nielsen's own run with %s ends %.3g away (max |dw|), printing %r"
                  % (name[len("nielsen, "):], max_dw(n_net, p_net), p_lines[-1]))
            print("  (SGD at eta = 3.0 amplifies rounding differences: after thousands of "
                  "mini-batches two\n   correct implementations agree in accuracy only "
                  "statistically, not digit for digit)")
    print("speed-up (Nielsen time / loopnet time): %.1fx" % (n_s / l_s))
    return 0

if __name__ == "__main__":
    sys.exit(main())
