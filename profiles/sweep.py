"""Scaling sweep: mini-batch size, width, depth and threads.

``python profiles/sweep.py [--quick] [--png] [--dtype float32]`` or ``loopnet profile --sweep``.

Every point trains real epochs (validated implementations from ``_harness``) on
Fashion-MNIST rows (synthetic when absent).  Each point times about ``--gflop`` GFLOP of
work (at least 1,000 and at most 20,000 examples), best of ``--repeats`` runs.
Single-thread columns use the process's CPU time, so that other processes on a shared
machine do not inflate them; multi-thread columns use wall time.

Sweeps (defaults):
  batch   [784, 30, 10], m = 1 … 1000                    loopnet 1 / all threads, NumPy (1 BLAS thread)
  width   [784, h, 10], h = 10 … 1000, m = 10             same columns, GFLOP/s
  depth   [784, 64 × d, 10], d = 1 … 8, m = 10            same columns, GFLOP/s
  threads W1, W2, W3 on 1 … cores threads                 loopnet examples/s and speed-up over 1 thread
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

_DATA = {}


def _data(n, dtype):
    if (n, dtype) not in _DATA:
        _DATA.clear()
        _DATA[(n, dtype)] = H.load_data(n, 784, 10, dtype)
    return _DATA[(n, dtype)]


def n_examples(sc, gflop, quick):
    if quick:
        return max(2 * sc.m, 100)
    per = sum(H.flops_per_example(sc.sizes, sc.m).values())
    n = int(np.clip(gflop * 1e9 / per, 1000, 20000))
    return max(n // sc.m, 2) * sc.m


def time_impl(impl, X, Y, ws, bs, repeats, wall=False):
    """Best seconds for one pass over X (CPU time when the impl runs on 1 thread, unless ``wall``)."""
    one = (impl.threads or H.n_cores()) == 1
    clock = time.process_time if one and not wall else time.perf_counter
    impl.set(ws, bs)
    order = np.arange(len(X))
    with impl.threads_ctx():
        impl.train(X, Y, order[: min(len(X), 10 * impl.sc.m)])  # warm-up (compiles once per dtype)
        best = np.inf
        for _ in range(repeats):
            impl.set(ws, bs)
            t0 = clock()
            impl.train(X, Y, order)
            best = min(best, clock() - t0)
    return best


def sweep_points(kind, cores):
    base = H.SCENARIOS["w1"]
    if kind == "batch":
        return [(f"m = {m}", replace(base, m=m)) for m in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)]
    if kind == "width":
        return [(f"h = {h}", replace(base, sizes=[784, h, 10])) for h in (10, 30, 100, 300, 1000)]
    if kind == "depth":
        return [(f"d = {d}", replace(base, sizes=[784] + [64] * d + [10])) for d in (1, 2, 3, 4, 6, 8)]
    raise ValueError(kind)


def run_sweep(kind, dtype, gflop, repeats, quick, cores, log):
    rows = []
    for label, sc in sweep_points(kind, cores):
        n = n_examples(sc, gflop, quick)
        X, Y, _, _ = _data(max(n, 20000) if not quick else n, dtype)
        X, Y = X[:n], Y[:n]
        ws, bs = H.init_params(sc.sizes, dtype)
        impls = [("loopnet1", H.Loopnet(sc, dtype, 1)), ("numpy1", H.NumpyMatrix(sc, dtype, threads=1))]
        if cores > 1:
            impls.insert(1, ("loopnet", H.Loopnet(sc, dtype, cores)))
        t = {k: time_impl(i, X, Y, ws, bs, repeats) for k, i in impls}
        fl = sum(H.flops_per_example(sc.sizes, sc.m).values())
        rows.append((label, sc, n, t, fl))
        log(f"  {kind} {label}: " + ", ".join(f"{k} {n / v:,.0f} ex/s" for k, v in t.items()))
    return rows


def run_threads(dtype, gflop, repeats, quick, cores, threads, log):
    rows = []
    for key in ("w1", "w2", "w3"):
        sc = H.SCENARIOS[key]
        n = n_examples(sc, gflop, quick)
        X, Y, _, _ = _data(max(n, 20000) if not quick else n, dtype)
        X, Y = X[:n], Y[:n]
        ws, bs = H.init_params(sc.sizes, dtype)
        t = {}
        for th in threads:
            # wall time for every thread count here, so the speed-up compares like with like
            t[th] = time_impl(H.Loopnet(sc, dtype, th), X, Y, ws, bs, repeats, wall=True)
        rows.append((sc, n, t))
        log(f"  threads {sc.title}: " + ", ".join(f"{th}: {n / v:,.0f} ex/s" for th, v in t.items()))
    return rows


def sweep_table(kind, rows, dtype, cores):
    unit = "examples / s" if kind == "batch" else "GFLOP/s"
    what = {"batch": "mini-batch size m, [784, 30, 10]", "width": "hidden width h, [784, h, 10], m = 10",
            "depth": "depth d, [784, 64 × d, 10], m = 10"}[kind]
    cols = ["loopnet 1 thread"] + ([f"loopnet {cores} threads"] if cores > 1 else []) + ["NumPy 1 thread"]
    keys = ["loopnet1"] + (["loopnet"] if cores > 1 else []) + ["numpy1"]
    lines = [f"#### Sweep over {what}, {dtype}{H.stamp()} ({unit}; 1-thread columns by process CPU time, "
             f"the {cores}-thread column by wall time)", "",
             "| point | examples timed | " + " | ".join(cols) + " | loopnet 1 thread vs NumPy 1 thread |",
             "|---|---|" + "---|" * len(cols) + "---|"]
    for label, sc, n, t, fl in rows:
        vals = []
        for k in keys:
            rate = n / t[k]
            vals.append(f"{rate:,.0f}" if kind == "batch" else f"{rate * fl / 1e9:.2f}")
        lines.append(f"| {label} | {n:,} | " + " | ".join(vals) + f" | {t['numpy1'] / t['loopnet1']:.2f}× |")
    return "\n".join(lines) + "\n"


def threads_table(rows, dtype, threads):
    lines = [f"#### Sweep over threads, {dtype}{H.stamp()} (loopnet examples / s, wall time; speed-up over 1 thread)",
             "",
             "| workload | examples timed | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads)
             + " |", "|---|---|" + "---|" * len(threads)]
    for sc, n, t in rows:
        cells = [f"{n / t[th]:,.0f} ({t[threads[0]] / t[th]:.2f}×)" for th in threads]
        lines.append(f"| {sc.title} | {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def draw(results, threads_rows, threads, dtype, path, cores):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (kind, rows) in zip(axes.flat, results.items()):
        keys = ["loopnet1"] + (["loopnet"] if cores > 1 else []) + ["numpy1"]
        names = {"loopnet1": "loopnet, 1 thread (CPU time)", "loopnet": f"loopnet, {cores} threads (wall)",
                 "numpy1": "NumPy, 1 thread (CPU time)"}
        xs = [sc.m if kind == "batch" else (sc.sizes[1] if kind == "width" else len(sc.sizes) - 2)
              for _, sc, _, _, _ in rows]
        for k in keys:
            ys = [(n / t[k]) * (1 if kind == "batch" else fl / 1e9) for _, _, n, t, fl in rows]
            ax.plot(xs, ys, "o-", label=names[k])
        ax.set_xlabel({"batch": "mini-batch size m", "width": "hidden width h", "depth": "hidden layers d"}[kind])
        ax.set_ylabel("examples / s" if kind == "batch" else "GFLOP/s")
        if kind != "depth":
            ax.set_xscale("log")
        ax.set_title({"batch": "[784, 30, 10]", "width": "[784, h, 10], m = 10",
                      "depth": "[784, 64 × d, 10], m = 10"}[kind])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes.flat[3]
    for sc, n, t in threads_rows:
        ax.plot(threads, [t[threads[0]] / t[th] for th in threads], "o-", label=sc.title)
    ax.plot(threads, [th / threads[0] for th in threads], "k:", label="linear")
    ax.set_xlabel("threads")
    ax.set_ylabel("speed-up over 1 thread")
    ax.set_xticks(threads)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"loopnet scaling, {dtype}, {H.cpu_model()} ({cores} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description="scaling sweep: batch size, width, depth, threads")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="float64")
    p.add_argument("--kinds", default="batch,width,depth,threads")
    p.add_argument("--gflop", type=float, default=1.0, help="work timed per point (GFLOP)")
    p.add_argument("--repeats", "-r", type=int, default=3)
    p.add_argument("--threads", default=None, help="thread counts (default 1..cores)")
    p.add_argument("--png", action="store_true", help="draw a PNG (needs matplotlib; default when installed)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", help="results file ('-' = do not write)")
    args, _ = p.parse_known_args(argv)
    if args.quick:
        args.repeats = 1
        args.out = args.out or "-"
    cores = H.n_cores()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else list(range(1, cores + 1))
    kinds = args.kinds.split(",")
    if args.dtype == "both":
        rc = 0
        for dt in ("float64", "float32"):
            rc |= main((argv if argv is not None else sys.argv[1:]) + ["--dtype", dt])  # the last --dtype wins
        return rc
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    sections, results, trows = {}, {}, []
    for kind in kinds:
        if kind == "threads":
            continue
        results[kind] = run_sweep(kind, args.dtype, args.gflop, args.repeats, args.quick, cores, log)
        md = sweep_table(kind, results[kind], args.dtype, cores)
        print(md)
        sections[f"sweep-{kind}-{args.dtype}"] = md
    if "threads" in kinds:
        trows = run_threads(args.dtype, args.gflop, args.repeats, args.quick, cores, threads, log)
        md = threads_table(trows, args.dtype, threads)
        print(md)
        sections[f"sweep-threads-{args.dtype}"] = md
    path = H.results_path(args.out)
    if path is not None:
        if len(results) == 3 and trows:
            png = draw(results, trows, threads, args.dtype, path.with_name(f"{path.stem}-sweep-{args.dtype}.png"),
                       cores)
            if png:
                log(f"drew {png}")
                key = f"sweep-{kinds[-1]}-{args.dtype}"
                sections[key] = sections[key] + f"\n![scaling sweep]({png.name})\n"
        H.update_results(path, None, sections)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
