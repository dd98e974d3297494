"""Busy machines (issue 13, item 4): how much each implementation slows down beside a competing
process, side by side in one run.

``python profiles/busy.py [--examples N] [--repeats R] [--workloads w1,w3] [--out FILE]``

For each workload (sizes, m, η of _scenarios.SCENARIOS; the first N Fashion-MNIST training
images, as every scenario loads them), the suite's own implementation classes (_impls.py):

* ``fit``: loopnet's default call, ``net.fit(X, Y, epochs=1, batch_size=m, eta=η)`` with every
  other argument at its default (threads=None, monitor at its default), the suite's
  :class:`LoopnetDefaultFit` row;
* ``numpy``: the NumPy matrix form, BLAS at its default thread count;
* ``torch``: PyTorch CPU eager at its default thread count (``torch.get_num_threads()``), when
  installed; timed on a share of each epoch (``--torch-fraction``) and scaled, as the suite does;
* optional (``--impls``): ``loopnet1``/``loopnet`` (fit on exactly 1 / all threads), ``numpy1``,
  ``torch1``: to see what the default choice leaves on the table.

each (1) alone and (2) beside a competitor process, started just before a group of timings and
killed right after it (the group times every implementation once, in rotating order):

* ``blas``: a NumPy float64 512×512 matmul loop on one BLAS thread (OPENBLAS_NUM_THREADS=1 and
  friends): one core's worth of compute-bound work;
* ``train``: another loopnet default ``fit`` loop, on a different network ([784, 64, 10],
  m = 20), with its own thread choice: another training run on the same machine.

R rounds, the state (alone / blas / train) and the implementations in rotating order; each cell
keeps its best round.  Times are per 50,000-example epoch (N timed, scaled linearly).  Printed
per workload: seconds per cell, the slowdown busy/alone of each implementation, and the key
comparison: loopnet's slowdown over NumPy's (≤ 1: loopnet degrades no worse than NumPy) and
loopnet's speed over NumPy's when both are busy (NumPy s / loopnet s).  Every timing starts from
the same weights.  The machine block (peaks measured in this run) and the load are printed.
"""

from __future__ import annotations

import argparse
import os
import warnings
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import SCENARIOS, _optional  # noqa: E402
from _machine import machine_header, measure_peaks  # noqa: E402
from _timing import SETTLE_S  # noqa: E402
from _impls import (Loopnet, LoopnetDefaultFit, NumpyMatrix, Torch, init_params,  # noqa: E402
                    load_data)

EPOCH_N = 50_000

#: The competitors: Python source run in a child process.  Each prints "ready" once its loop
#: is warm (compiled, pages touched), then loops until killed.
COMPETITORS = {
    "blas": (
        "import numpy as np\n"
        "a = np.random.default_rng(1).random((512, 512)); b = a.copy(); c = np.empty_like(a)\n"
        "np.matmul(a, b, out=c)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    np.matmul(a, b, out=c)\n"),
    "train": (
        "import sys\n"
        "sys.path[:0] = [{profiles!r}]\n"
        "import loopnet\n"
        "from _impls import load_data\n"
        "X, Y, labels, _ = load_data(10_000, 784, 10)\n"
        "net = loopnet.Net([784, 64, 10], seed=1)\n"
        "net.fit(X[:1000], labels[:1000], epochs=1, batch_size=20, eta=0.5)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    net.fit(X, labels, epochs=1, batch_size=20, eta=0.5)\n"),
}

#: One BLAS thread for the competitor whatever library NumPy was built with.
ONE_THREAD_ENV = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                    "BLIS_NUM_THREADS")}


class Competitor:
    """A competing process for the duration of a ``with`` block: started and warm on entry,
    killed on exit."""

    def __init__(self, kind, timeout=120.0):
        self.kind = kind
        self.timeout = timeout
        self.proc = None

    def __enter__(self):
        if self.kind == "alone":
            return self
        src = COMPETITORS[self.kind].format(profiles=str(Path(__file__).resolve().parent))
        env = dict(os.environ)
        if self.kind == "blas":
            env.update(ONE_THREAD_ENV)
        self.proc = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()          # blocks until warm (or the child died)
        if line.strip() != "ready":
            self.proc.kill()
            err = self.proc.stderr.read().strip().splitlines()[-1:]
            raise RuntimeError(f"competitor {self.kind!r} did not start: {err}")
        time.sleep(0.3)                              # let it settle into its loop
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return False


def make_impls(sc, dtype, want, cores):
    """(key, impl) for the requested implementations, the suite's classes from _impls."""
    torch = _optional("torch")
    makers = {
        "fit": lambda: LoopnetDefaultFit(sc, dtype),
        "numpy": lambda: NumpyMatrix(sc, dtype),
        "numpy1": lambda: NumpyMatrix(sc, dtype, threads=1),
        "loopnet1": lambda: Loopnet(sc, dtype, 1),
        "loopnet": lambda: Loopnet(sc, dtype, cores),
    }
    if torch is not None:
        makers["torch"] = lambda: Torch(sc, dtype, torch.get_num_threads())
        makers["torch1"] = lambda: Torch(sc, dtype, 1)
    out = []
    for key in want:
        if key in makers:
            out.append((key, makers[key]()))
        elif key.startswith("torch"):
            print(f"  {key}: PyTorch not installed, left out", file=sys.stderr)
        else:
            raise SystemExit(f"unknown implementation {key!r}; choose among {', '.join(makers)}")
    return out


def rotate(seq, r):
    r %= len(seq)
    return list(seq[r:]) + list(seq[:r])


def time_one(impl, X, Y, ws, bs, order, fraction):
    """Seconds per EPOCH_N examples of impl.train on ``order`` (its first ``fraction`` share
    when < 1), from the weights ws, bs."""
    m = impl.sc.m
    n_run = len(order) if fraction >= 1 else max(m, int(len(order) * fraction) // m * m)
    impl.set(ws, bs)
    with impl.threads_ctx(), warnings.catch_warnings():
        warnings.simplefilter("ignore")              # η = 3 saturates W5: fit's warning says so
        time.sleep(SETTLE_S)                         # let other libraries' spinning threads idle
        t0 = time.perf_counter()
        impl.train(X, Y, order[:n_run])
        dt = time.perf_counter() - t0
    return dt * EPOCH_N / n_run


def run_workload(key, n, repeats, want, states, torch_fraction, dtype="float64", log=print):
    """{impl key: {state: best s per EPOCH_N examples}} and the load seen, for one workload."""
    sc = SCENARIOS[key]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    X, Y, _, source = load_data(n, sc.sizes[0], sc.sizes[-1], dtype)
    ws, bs = init_params(sc.sizes, dtype)
    impls = make_impls(sc, dtype, want, cores)
    fractions = {k: (torch_fraction if k.startswith("torch") else 1.0) for k, _ in impls}
    for k, impl in impls:                            # compile / warm every implementation alone
        time_one(impl, X, Y, ws, bs, np.arange(min(n, 2000)), 1.0)
    rng = np.random.default_rng(1)
    times = {k: {s: [] for s in states} for k, _ in impls}
    loads = []
    for r in range(repeats):
        order = rng.permutation(n)
        for state in rotate(states, r):
            with Competitor(state):
                loads.append(os.getloadavg()[0])
                for k, impl in rotate(impls, r):
                    times[k][state].append(time_one(impl, X, Y, ws, bs, order, fractions[k]))
            log(f"  {key} round {r + 1}/{repeats} {state:>5}: "
                + ", ".join(f"{k} {times[k][state][-1]:.3f}s" for k, _ in impls))
    best = {k: {s: min(v) for s, v in per.items()} for k, per in times.items()}
    labels = {k: impl.label for k, impl in impls}
    return {"scenario": sc, "source": source, "best": best, "all": times, "labels": labels,
            "loads": loads, "n": n, "fractions": fractions}


def workload_table(res, states):
    """Markdown: one row per implementation, seconds alone and busy, slowdowns; then the
    key comparison of loopnet's default fit with the NumPy matrix form."""
    sc, best = res["scenario"], res["best"]
    busy = [s for s in states if s != "alone"]
    head = ["implementation", "alone s"] + [f"beside {s} s" for s in busy] + [f"{s} slowdown" for s in busy]
    lines = [f"**{sc.title}**, η = {sc.eta}, {res['n']:,} of {res['source']} timed per cell, "
             f"s per {EPOCH_N:,}-example epoch (best of {len(next(iter(res['all'].values()))['alone'])} "
             f"rounds); load during the cells {min(res['loads']):.2f}–{max(res['loads']):.2f}",
             "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for k, per in best.items():
        label = res["labels"][k]
        if res["fractions"][k] < 1:
            label += f" ({res['fractions'][k]:.0%} of each epoch, scaled)"
        cells = [f"{per['alone']:.3f}"] + [f"{per[s]:.3f}" for s in busy] + \
                [f"{per[s] / per['alone']:.2f}×" for s in busy]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "fit" in best and "numpy" in best:
        lines += ["", "| key comparison | " + " | ".join(busy) + " |", "|---|" + "---:|" * len(busy)]
        f, np_ = best["fit"], best["numpy"]
        lines.append("| loopnet fit() slowdown / NumPy slowdown (≤ 1: no worse) | " + " | ".join(
            f"{(f[s] / f['alone']) / (np_[s] / np_['alone']):.2f}" for s in busy) + " |")
        lines.append("| loopnet fit() speed over NumPy, both busy (NumPy s / loopnet s) | " + " | ".join(
            f"{np_[s] / f[s]:.2f}×" for s in busy) + " |")
        lines.append("| (same, alone) | " + " | ".join(f"{np_['alone'] / f['alone']:.2f}×" for _ in busy) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", "-n", type=int, default=10_000,
                   help="examples timed per cell (scaled to a 50,000-example epoch); default 10,000")
    p.add_argument("--w5-examples", type=int, default=2_000, help="examples per cell for w5 (default 2,000)")
    p.add_argument("--repeats", "-r", type=int, default=3, help="rounds; each cell keeps its best")
    p.add_argument("--workloads", default="w1,w3", help="comma list of scenario keys (w5 allowed)")
    p.add_argument("--impls", default="fit,numpy,torch",
                   help="comma list among fit,numpy,torch,loopnet1,loopnet,numpy1,torch1")
    p.add_argument("--competitors", default="blas,train", help="comma list among blas,train")
    p.add_argument("--torch-fraction", type=float, default=0.05,
                   help="share of each epoch timed for PyTorch (scaled up); its OpenMP pool on a "
                        "busy 2-core machine can be 100× slower")
    p.add_argument("--quick-peaks", action="store_true", help="small peak probes in the machine block")
    p.add_argument("--out", help="also write the machine block and tables to this Markdown file")
    args = p.parse_args(argv)
    states = ["alone"] + [c for c in args.competitors.split(",") if c]
    for s in states[1:]:
        if s not in COMPETITORS:
            raise SystemExit(f"unknown competitor {s!r}; choose among {', '.join(COMPETITORS)}")
    want = [k for k in args.impls.split(",") if k]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr
    load0 = os.getloadavg()
    peaks = measure_peaks(args.quick_peaks)
    header = machine_header(peaks)
    print(header + "\n")
    sections = [header, ""]
    for key in args.workloads.split(","):
        n = args.w5_examples if key == "w5" else args.examples
        log(f"{SCENARIOS[key].title}: {n:,} examples per cell, states {states}")
        res = run_workload(key, n, args.repeats, want, states, args.torch_fraction, log=log)
        table = workload_table(res, states)
        print(table + "\n", flush=True)
        sections += [table, ""]
    load1 = os.getloadavg()
    tail = (f"Load average (1, 5, 15 min) before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
            f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}.  Command: "
            f"`python profiles/busy.py {' '.join(argv if argv is not None else sys.argv[1:])}`")
    print(tail)
    sections.append(tail)
    if args.out:
        Path(args.out).write_text("\n".join(sections) + "\n")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
