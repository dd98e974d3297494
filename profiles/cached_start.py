"""Where a cached start goes: the imports, the garbage collector and the first fit, stage by stage.

A cached start is what every process after the first pays: ``import loopnet`` and a first
``fit`` that loads the engine from Numba's disk cache instead of compiling it (issue 13's
target: 0.5 s).  This script warms a cache once (one cold process, reported too), then runs
``--repeats`` fresh processes on it.  Each imports a copy of the working tree's ``loopnet``
(with its bytecode cached, as an installed package has it; see ``startup.py``) and times, in
order:

* ``import numpy``, ``import numba``, ``import loopnet`` (loopnet's modules and the
  dispatchers of its compiled functions);
* ``import numpy.ma``: Numba's ``typeof`` imports it on the first call with an array; done
  here on its own so that the first fit's row holds the loading of the engine only;
* ``Net([784, 30, 10])`` and its first ``fit`` (two mini-batches of 10): Numba initialises its
  runtime, reads the cache index and loads the engine's object code;
* the second ``fit``, the same call with everything loaded, for scale.

For every stage also the seconds spent in Python's garbage collector (``gc.callbacks``) and the
number of whole-heap (generation 2) collections: with NumPy and Numba loaded, one walks every
object they made.  The cached start is the sum from ``import numpy`` to the first fit, the
span ``startup.py`` and the suite time (their probe loads the engine in ``loopnet.warmup()``
before its first fit); the interpreter's start (from the parent's spawn to the child's first
line) and exit (the rest of the process's wall time) are rows too, for scale.

    python profiles/cached_start.py [--repeats 5] [--dtype float64] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import startup  # noqa: E402  (checkout, child: the same fresh-process set-up as startup.py)

#: The child: timed stages, as JSON on its last line.
CHILD = r"""
import gc, json, sys, time
since_spawn, first_line = time.time() - float(sys.argv[2]), time.perf_counter()
collector = {"s": 0.0, "whole": 0, "since": 0.0}
def count(phase, info):
    if phase == "start":
        collector["since"] = time.perf_counter()
    else:
        collector["s"] += time.perf_counter() - collector["since"]
        collector["whole"] += info["generation"] == 2
gc.callbacks.append(count)
stages = []
def stage(name, fn):
    s, whole = collector["s"], collector["whole"]
    t = time.perf_counter()
    out = fn()
    stages.append([name, time.perf_counter() - t, collector["s"] - s, collector["whole"] - whole])
    return out
stage("import numpy", lambda: __import__("numpy"))
stage("import numba", lambda: __import__("numba"))
stage("import loopnet", lambda: __import__("loopnet"))
stage("import numpy.ma (Numba's typeof)", lambda: __import__("numpy.ma"))
import numpy as np, loopnet
dtype = sys.argv[1]
X = np.random.default_rng(0).random((20, 784)).astype(dtype)
labels = np.arange(20) % 10
net = stage("Net([784, 30, 10])", lambda: loopnet.Net([784, 30, 10], dtype=dtype, seed=0))
fit = lambda: net.fit(X, labels, epochs=1, batch_size=10, eta=0.1)
stage("first fit (loads the cached engine)", fit)
stage("second fit (all loaded)", fit)
print(json.dumps({"started": since_spawn, "timed": time.perf_counter() - first_line,
                  "stages": stages}))
"""

#: The stages of the cached start (the span startup.py and the suite time, from the child's
#: first line; the interpreter's start and exit and the second fit are there for scale).
START = ("import numpy", "import numba", "import loopnet", "import numpy.ma (Numba's typeof)",
         "Net([784, 30, 10])", "first fit (loads the cached engine)")


def run(pkg, cache, dtype):
    """One child on the package copy ``pkg`` with the cache directory ``cache``: rows
    [stage, s, GC s, whole-heap collections], from the interpreter's start to its exit."""
    out, wall, _ = startup.child(pkg, cache, ["-c", CHILD, dtype, repr(time.time())])
    res = json.loads(out.strip().splitlines()[-1])
    return ([["interpreter start (spawn to first line)", res["started"], 0.0, 0]] + res["stages"]
            + [["interpreter exit (the rest of the process wall time)",
                wall - res["started"] - res["timed"], 0.0, 0]])


def table(runs):
    """Median (min-max) per stage over ``runs`` (each a list of rows from :func:`run`), then the
    cached start: the sum of the START stages, per run."""
    names = [row[0] for row in runs[0]]
    lines = ["| stage | s, median (min-max) | of which garbage collection "
             "| whole-heap collections |", "|---|---:|---:|---:|"]

    def cell(values, digits=3):
        return (f"{statistics.median(values):.{digits}f} "
                f"({min(values):.{digits}f}-{max(values):.{digits}f})")

    for i, name in enumerate(names):
        seconds = [r[i][1] for r in runs]
        gc_s = [r[i][2] for r in runs]
        whole = [r[i][3] for r in runs]
        lines.append(f"| {name} | {cell(seconds)} | {statistics.median(gc_s):.3f} | "
                     f"{statistics.median(whole):g} |")
    totals = [sum(row[1] for row in r if row[0] in START) for r in runs]
    gc_totals = [sum(row[2] for row in r if row[0] in START) for r in runs]
    lines.append(f"| **cached start** (from `import numpy` to the first fit) | "
                 f"**{cell(totals)}** | {statistics.median(gc_totals):.3f} | |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--out", default="-", help="results file to append to ('-': print only)")
    args = p.parse_args(argv)
    from _machine import machine_slug, versions
    with tempfile.TemporaryDirectory(prefix="loopnet-cached-start-") as tmp:
        pkg, cache = Path(tmp) / "pkg", Path(tmp) / "cache"
        startup.checkout("WORKTREE", pkg)
        cold = run(pkg, cache, args.dtype)
        runs = [run(pkg, cache, args.dtype) for _ in range(args.repeats)]
    v = versions()
    cold_fit = next(row[1] for row in cold if row[0].startswith("first fit"))
    text = (f"### Where a cached start goes: {args.dtype}, {machine_slug()} "
            f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load "
            f"{os.getloadavg()[0]:.1f})\n\n"
            f"Python {v['python']}, NumPy {v['numpy']}, Numba {v['numba']}. "
            f"`python profiles/cached_start.py --dtype {args.dtype} --repeats {args.repeats}`: "
            f"{args.repeats} fresh processes on a cache that one cold process filled (its first "
            f"fit, compiling: {cold_fit:.2f} s).\n\n" + table(runs))
    print(text)
    if args.out != "-":
        with open(args.out, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
