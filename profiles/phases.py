"""Phase profile: where one training epoch's time goes.

``python profiles/phases.py w1 [--dtype float32] [--threads 1,2]`` or ``loopnet profile w1 --phases``.

How it is measured
------------------
Compute phases.  The engine's own compiled epoch loop, ``engine.run_batches``, runs on a
real Net's buffers (:meth:`loopnet.Net.engine_buffers`) with each of its jobs, which stop
after a given phase (the job is a run-time argument: the code timed is the code ``fit``
runs, and nothing is compiled here), so the runs give cumulative times

    T1 forward (PREDICT) | T2 + output and hidden errors, BP1 and BP2 (NORMS)
    | T3 + gradient accumulation, BP3/4 (GRADIENT) | T4 = T3 (no cross-chunk reduction in
    this engine: each gradient number has one owner) | T5 the real training step (TRAIN)

and each phase is the difference of two neighbours (best of R runs each, runs
interleaved).  A difference below the noise can come out slightly negative: it is
printed as measured.

Python/dispatch overhead.  A real ``net.fit`` epoch is run with every Numba dispatcher
of ``loopnet.engine`` / ``loopnet.training`` wrapped in a timer, so the time spent inside
compiled code is known exactly; overhead = fit epoch − time inside compiled calls
(validation, shuffling, divergence checks, Python loops between segments).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

STAGES = ["forward", "output and hidden errors (BP1, BP2)", "gradient accumulation (BP3/BP4)",
          "cross-chunk reduction", "parameter update"]


class EngineStages:
    """Cumulative stages driven through the engine's own compiled epoch loop on a real Net.

    ``engine.run_batches`` runs phase A then, by its ``job``, nothing more (PREDICT: the
    forward pass only; NORMS: with BP1 and BP2), phase B's sums without the update
    (GRADIENT: added into the scratch gradient, never zeroed) or the real training step
    (TRAIN).  The job is a run-time argument, so every stage runs the very code ``net.fit``
    runs, and nothing is compiled for the profile."""

    # stage → engine job; stage 4 (cross-chunk reduction) does not exist in this engine
    JOBS = {1: "PREDICT", 2: "NORMS", 3: "GRADIENT", 5: "TRAIN"}

    def __init__(self, net, sc, n):
        self.net, self.sc = net, sc
        self.p0 = net.params.copy()
        self.hyper = net.hyper("sgd", sc.eta, 0.0, n)

    def run(self, X, Y, order, stage):
        from loopnet import engine, training

        net, m = self.net, np.int64(self.sc.m)
        nb = np.int64(-(-len(order) // self.sc.m))
        net.params[:] = self.p0
        buf = net.engine_buffers()
        engine.run_batches(buf.params, buf.state, buf.work, X, Y, order, m, np.int64(0), nb,
                           buf.arch, self.hyper, getattr(engine, self.JOBS[stage]),
                           *training.no_output(buf))


class compiled_timer:
    """Wrap every Numba dispatcher reachable as loopnet.engine.<f> / loopnet.training.<f> in a timer."""

    def __init__(self, clock=time.perf_counter):
        import loopnet.engine as engine
        import loopnet.training as training

        self.mods = [engine, training]
        self.total = 0.0
        self.calls = 0
        self.clock = clock
        self.saved = []

    def __enter__(self):
        for mod in self.mods:
            for name, obj in list(vars(mod).items()):
                if hasattr(obj, "py_func") and hasattr(obj, "signatures"):
                    self.saved.append((mod, name, obj))
                    setattr(mod, name, self._wrap(obj))
        return self

    def _wrap(self, fn):
        def timed(*a, **k):
            t0 = self.clock()
            try:
                return fn(*a, **k)
            finally:
                self.total += self.clock() - t0
                self.calls += 1

        return timed

    def __exit__(self, *exc):
        for mod, name, obj in self.saved:
            setattr(mod, name, obj)


def subnormal_shares(weights, biases, X, Y, sc):
    """Share of the nonzero values of each a^l and δ^l (l = 1 … L) that are subnormal (0 < |v| <
    the dtype's smallest normal), as the NumPy matrix form (loopnet.reference) computes them in
    the parameters' dtype for the examples X: {"a1": share, …, "δ1": share, …}.

    x86 cores compute with a subnormal operand or result through a microcode assist, tens to
    hundreds of cycles instead of one: a phase that meets many of them is slowed by that, not by
    its kernel.  float32 reaches them below 1.2e-38, e.g. where a sigmoid output saturates
    (σ(z) for z < −87) or a product of two small factors underflows (δ^L = (a − y) σ'(z)).
    """
    from loopnet import reference

    _, A, deltas = reference.backprop(weights, biases, X, Y, sc.activation, sc.output, sc.cost)
    tiny = np.finfo(np.asarray(weights[0]).dtype).tiny

    def share(v):
        nonzero = np.count_nonzero(v)
        return float(np.count_nonzero((v != 0) & (np.abs(v) < tiny)) / nonzero) if nonzero else 0.0

    out = {f"a{l}": share(a) for l, a in enumerate(A[1:], 1)}
    out.update({f"δ{l}": share(d) for l, d in enumerate(deltas, 1)})
    return out


def profile_phases(sc, dtype="float64", n=10_000, repeats=3, threads=(1,), log=print,
                   subnormals=None):
    """{threads: {"stages": [T1..T6], "fit": s, "compiled": s, "calls": k}} in seconds per n examples,
    the data's source, and (:func:`subnormal_shares` of the network the stages run, whether
    the engine flushed them)."""
    import numba

    import loopnet

    X, Y, _, source = H.load_data(n, sc.sizes[0], sc.sizes[-1], dtype)
    ws, bs = H.init_params(sc.sizes, dtype)
    net = loopnet.Net(sc.sizes, activation=sc.activation, output=sc.output, cost=sc.cost, dtype=dtype,
                      seed=0, subnormals=subnormals)
    order = np.random.default_rng(1).permutation(n)
    warm = order[: min(n, 20 * sc.m)]
    net.weights, net.biases = ws, bs
    net.fit(X[warm], Y[warm], epochs=1, batch_size=sc.m, eta=sc.eta, monitor=False, shuffle=False)  # sizes scratch
    stages = EngineStages(net, sc, n)
    subnormal = (subnormal_shares(net.weights, net.biases, X[order], Y[order], sc),
                 net.subnormals == "flush")
    out = {}
    old = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            # 1 thread: CPU time of this process (other processes' load does not count);
            # more threads: wall time (CPU time would add up the threads).
            clock = time.process_time if t == 1 else time.perf_counter
            for stage in EngineStages.JOBS:  # warm up
                stages.run(X, Y, warm, stage)
            net.weights, net.biases = ws, bs
            net.fit(X[warm], Y[warm], epochs=1, batch_size=sc.m, eta=sc.eta, monitor=False, shuffle=False)
            best = [np.inf] * len(STAGES)
            fit_best, comp_best, calls = np.inf, np.inf, 0
            for r in range(repeats):
                for stage in EngineStages.JOBS:
                    t0 = clock()
                    stages.run(X, Y, order, stage)
                    best[stage - 1] = min(best[stage - 1], clock() - t0)
                best[3] = best[2]  # no reduction stage: T4 = T3
                net.weights, net.biases = ws, bs
                with compiled_timer(clock) as ct:
                    t0 = clock()
                    net.fit(X, Y, epochs=1, batch_size=sc.m, eta=sc.eta, order=order, monitor=False)
                    fit = clock() - t0
                if fit < fit_best:
                    fit_best, comp_best, calls = fit, ct.total, ct.calls
                log(f"  {t} thread(s), repeat {r + 1}/{repeats}: stages "
                    + " ".join(f"{b:.3f}" for b in best) + f"  fit {fit:.3f} (compiled {ct.total:.3f})")
            out[t] = {"stages": best, "fit": fit_best, "compiled": comp_best, "calls": calls}
    finally:
        numba.set_num_threads(old)
    return out, source, subnormal


HOW_ENGINE = ("Stages are whole epochs of the engine's own compiled loop, engine.run_batches, "
              "stopped after a phase by its job: forward only (PREDICT: layer 1 by row blocks, the "
              "rest per example), + BP1 and BP2 (NORMS: phase A), + BP3/BP4 (GRADIENT: phase B's "
              "sums, no zeroing, no update), = the real training step (TRAIN: zeroing + gradient + "
              "update). This engine has no cross-chunk reduction (each gradient number is owned by "
              "one task): 0 by construction.")

def phases_table(sc, dtype, n, res, source, subnormal=None, epoch_n=50_000):
    scale = epoch_n / n
    ths = list(res)
    fl = H.flops_per_example(sc.sizes, sc.m)
    flop_by_stage = [fl["forward"], fl["hidden"], fl["gradient"], 0, fl["update"]]
    head = "| phase | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}: ms / epoch | share" for t in ths) + \
           " | GFLOP/s (1st column) |"
    lines = [
        f"### Phases of one epoch: {sc.title}, {dtype}{H.stamp()}",
        "",
        f"Measured on {n:,} examples ({source}), reported per {epoch_n:,}-example epoch (× {scale:g}); "
        f"best of the runs; 1 thread: CPU time of the process (robust to other processes' load), "
        f"more threads: wall time. " + HOW_ENGINE +
        " Phases are differences of cumulative whole-epoch times, shares are of the staged epoch. "
        "Overhead = net.fit epoch − time inside compiled calls, share of the fit epoch.",
        "",
        head,
        "|---|" + "---|---|" * len(ths) + "---|",
    ]
    for k, name in enumerate(STAGES):
        cells = []
        for t in ths:
            st = res[t]["stages"]
            d = st[k] - (st[k - 1] if k else 0.0)
            if k == 3:
                cells.append("— | none in this engine")
                continue
            cells.append(f"{1e3 * d * scale:.1f} | {100 * d / st[-1]:.0f} %")
        d0 = res[ths[0]]["stages"][k] - (res[ths[0]]["stages"][k - 1] if k else 0.0)
        gf = f"{flop_by_stage[k] * n / d0 / 1e9:.2f}" if flop_by_stage[k] and d0 > 0 else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {gf} |")
    lines.append("| **= staged epoch (compiled)** | " + " | ".join(
        f"**{1e3 * res[t]['stages'][-1] * scale:.1f}** | 100 %" for t in ths) + " | |")
    lines.append("| real engine, time inside compiled calls | " + " | ".join(
        f"{1e3 * res[t]['compiled'] * scale:.1f} | {res[t]['calls']} calls" for t in ths) + " | |")
    lines.append("| Python / dispatch overhead | " + " | ".join(
        f"{1e3 * (res[t]['fit'] - res[t]['compiled']) * scale:.1f} | "
        f"{100 * (res[t]['fit'] - res[t]['compiled']) / res[t]['fit']:.1f} % of fit" for t in ths) + " | |")
    lines.append("| **net.fit epoch** | " + " | ".join(
        f"**{1e3 * res[t]['fit'] * scale:.1f}** | 100 %" for t in ths) + " | |")
    if subnormal is not None:
        lines += ["", subnormal_line(*subnormal)]
    return "\n".join(lines) + "\n"


def subnormal_line(shares, flushed=False):
    """One sentence on the subnormal values the stages computed with (:func:`subnormal_shares`),
    and on whether the engine flushed them to zero (``Net.subnormals``)."""
    listed = ", ".join(f"{k} {100 * v:.2g} %" for k, v in shares.items())
    line = (f"Subnormal values among the nonzero a^l and δ^l of the network the stages ran, as "
            f"the NumPy matrix form computes them: {listed}.")
    if max(shares.values(), default=0.0) > 1e-3:
        if flushed:
            line += (" The engine flushed them to zero (Net(subnormals=\"flush\"), float32's "
                     "default): no phase paid for them.")
        else:
            line += (" Arithmetic on subnormals takes a microcode assist on x86 (tens to hundreds "
                     "of cycles): phases that meet them (BP1/BP2 and the output layer's sums, "
                     "where δ^L is small) are slowed by that, not by their kernels "
                     "(Net(subnormals=\"flush\") flushes them).")
    return line


def main(argv=None):
    p = argparse.ArgumentParser(description="phase profile of one training epoch")
    p.add_argument("scenario", nargs="?", default="w1", choices=list(H.SCENARIOS))
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="float64")
    p.add_argument("--examples", "-n", type=int, default=5_000, help="examples timed (scaled to 50,000)")
    p.add_argument("--repeats", "-r", type=int, default=5)
    p.add_argument("--threads", default=None, help="comma list of thread counts (default 1,<cores>)")
    p.add_argument("--sizes")
    p.add_argument("--batch", "-m", type=int)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--subnormals", choices=["flush", "keep"],
                   help="Net(subnormals=...) (default: the dtype's, flush for float32)")
    p.add_argument("--out", help="results file ('-' = do not write)")
    args, _ = p.parse_known_args(argv)  # the scenario options of `loopnet profile` that do not apply here
    sc0 = H.SCENARIOS[args.scenario]
    sc = sc0
    from dataclasses import replace

    if args.sizes:
        sc = replace(sc, sizes=[int(s) for s in args.sizes.split(",")])
    if args.batch:
        sc = replace(sc, m=args.batch)
    if args.quick:
        args.examples, args.repeats = min(args.examples, 200), 1
        args.out = args.out or "-"
    cores = H.n_cores()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    sections = {}
    for dt in dtypes:
        log(f"phases of {sc.title}, {dt}, threads {threads}")
        res, source, subnormal = profile_phases(sc, dt, args.examples, args.repeats, threads, log,
                                                args.subnormals)
        md = phases_table(sc, dt, args.examples, res, source, subnormal)
        print(md)
        sections[f"phases-{args.scenario}-{dt}"] = md
    path = H.results_path(args.out)
    if path is not None and sc == sc0:
        H.update_results(path, None, sections)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
