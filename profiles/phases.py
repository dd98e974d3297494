"""Phase profile: where one training epoch's time goes.

``python profiles/phases.py w1 [--dtype float32] [--threads 1,2]`` or ``loopnet profile w1 --phases``.

How it is measured
------------------
Compute phases.  Whole-epoch loops compiled here call the engine's own phases
(``engine.run_phase`` with A1, A2_FORWARD, A2 and B_SUM, and ``kernels.output_delta``)
on a real Net's buffers (:meth:`loopnet.Net.engine_buffers`); each loop stops after a
given phase, so the runs give cumulative times

    T1 forward | T2 + output error (BP1) | T3 + hidden errors (BP2)
    | T4 + gradient accumulation (BP3/4) | T5 = T4 (no cross-chunk reduction in this
    engine: each gradient number has one owner) | T6 the real engine.run_batches(TRAIN)

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

STAGES = ["forward", "output error (BP1)", "hidden errors (BP2)", "gradient accumulation (BP3/BP4)",
          "cross-chunk reduction", "parameter update"]

# The compiled drivers below are NOT cached on disk: Numba checks only this file's stamp, so a
# cached driver would keep running an edited engine's old code.  They compile at each run,
# during the warm-up, outside every timing.

_drivers = None


def _build_engine_drivers():
    """Compiled epoch loops that call the engine's own phases (once per process).

    Phase A is ``run_phase`` A1 (layer 1 by blocks of rows) then A2 (the rest per example),
    phase B is ``run_phase`` B_SUM; the real epoch is ``run_batches(TRAIN)``."""
    global _drivers
    if _drivers is not None:
        return _drivers
    import numba
    from numba import prange

    from loopnet import engine as E
    from loopnet.kernels import output_delta

    units = E.units
    run_phase, run_batches, half = E.run_phase, E.run_batches, E.half
    A1, A2, A2_FORWARD, B_SUM = (np.int64(E.A1), np.int64(E.A2), np.int64(E.A2_FORWARD),
                                 np.int64(E.B_SUM))

    @numba.njit
    def phase_a(params, state, work, X, Y, order, lo, hi, arch, hyper, a2, nb):
        here = half(work, 0)
        if arch.sizes.shape[0] > 2:
            run_phase(params, state, here, X, Y, order, lo, hi, arch, hyper, A1, here, lo, hi, nb)
        run_phase(params, state, here, X, Y, order, lo, hi, arch, hyper, a2, here, lo, hi, nb)

    @numba.njit(parallel=True)
    def bp1_only(delta, z, a, Y, order, lo, m, arch):
        out = arch.sizes.shape[0] - 2
        for t in prange(m):
            output_delta(units(delta[t], arch, out), units(z[t], arch, out),
                         units(a[t], arch, out), Y[order[lo + t]], arch.out_act, arch.cost)

    @numba.njit
    def forward_only(params, state, work, X, Y, order, m, n_batches, arch, hyper, nb, with_bp1):
        for bt in range(n_batches):
            lo = bt * m
            phase_a(params, state, work, X, Y, order, lo, lo + m, arch, hyper, A2_FORWARD, nb)
            if with_bp1:
                bp1_only(work.delta[0], work.z[0], work.a[0], Y, order, lo, m, arch)

    @numba.njit
    def errors_only(params, state, work, X, Y, order, m, n_batches, arch, hyper, nb):
        for bt in range(n_batches):
            phase_a(params, state, work, X, Y, order, bt * m, bt * m + m, arch, hyper, A2, nb)

    @numba.njit
    def errors_and_gradient(params, state, work, X, Y, order, m, n_batches, arch, hyper, nb):
        for bt in range(n_batches):  # sums into work.grad without zeroing (zeroing is counted with the update)
            phase_a(params, state, work, X, Y, order, bt * m, bt * m + m, arch, hyper, A2, nb)
            here = half(work, 0)
            run_phase(params, state, here, X, Y, order, bt * m, bt * m + m, arch, hyper, B_SUM,
                      here, 0, 0, nb)

    _drivers = (forward_only, errors_only, errors_and_gradient, run_batches)
    return _drivers


class EngineStages:
    """Stages 1..6 driven through the engine's own compiled functions on a real Net."""

    def __init__(self, net, sc, n):
        self.net, self.sc = net, sc
        self.fns = _build_engine_drivers()
        self.p0 = net.params.copy()
        self.hyper = net.hyper("sgd", sc.eta, 0.0, n)

    def run(self, X, Y, order, stage):
        import numba

        from loopnet import engine, training

        net, m = self.net, np.int64(self.sc.m)
        nb = np.int64(len(order) // self.sc.m)
        net.params[:] = self.p0
        fwd, err, grad, train = self.fns
        buf = net.engine_buffers()
        tasks = engine.block_count(buf.arch, numba.get_num_threads())
        args = (buf.params, buf.state, buf.work, X, Y, order, m, nb, buf.arch, self.hyper, tasks)
        if stage <= 2:
            fwd(*args, stage == 2)
        elif stage == 3:
            err(*args)
        elif stage in (4, 5):  # no cross-chunk reduction in this engine: stage 5 = stage 4
            grad(*args)
        else:
            train(buf.params, buf.state, buf.work, X, Y, order, m, np.int64(0), nb, buf.arch,
                  self.hyper, engine.TRAIN, *training.no_output(buf))


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


def profile_phases(sc, dtype="float64", n=10_000, repeats=3, threads=(1,), log=print):
    """{threads: {"stages": [T1..T6], "fit": s, "compiled": s, "calls": k}} in seconds per n examples."""
    import numba

    import loopnet

    X, Y, _, source = H.load_data(n, sc.sizes[0], sc.sizes[-1], dtype)
    ws, bs = H.init_params(sc.sizes, dtype)
    net = loopnet.Net(sc.sizes, activation=sc.activation, output=sc.output, cost=sc.cost, dtype=dtype, seed=0)
    order = np.random.default_rng(1).permutation(n)
    warm = order[: min(n, 20 * sc.m)]
    net.weights, net.biases = ws, bs
    net.fit(X[warm], Y[warm], epochs=1, batch_size=sc.m, eta=sc.eta, monitor=False, shuffle=False)  # sizes scratch
    stages = EngineStages(net, sc, n)
    out = {}
    old = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            # 1 thread: CPU time of this process (other processes' load does not count);
            # more threads: wall time (CPU time would add up the threads).
            clock = time.process_time if t == 1 else time.perf_counter
            for stage in range(1, 7):  # compile + warm up
                stages.run(X, Y, warm, stage)
            net.weights, net.biases = ws, bs
            net.fit(X[warm], Y[warm], epochs=1, batch_size=sc.m, eta=sc.eta, monitor=False, shuffle=False)
            best = [np.inf] * 6
            fit_best, comp_best, calls = np.inf, np.inf, 0
            for r in range(repeats):
                for stage in range(1, 7):
                    if stage == 5:
                        continue  # no reduction stage: T5 = T4 below
                    t0 = clock()
                    stages.run(X, Y, order, stage)
                    best[stage - 1] = min(best[stage - 1], clock() - t0)
                best[4] = best[3]
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
    return out, source


HOW_ENGINE = ("Stages call the engine's own compiled functions in epoch loops: forward only "
              "(engine.run_phase A1, then A2_FORWARD: layer 1 by row blocks, the rest per example), "
              "+ BP1 (a prange of engine's output_delta), = phase A (run_phase A1 + A2), + BP3/BP4 "
              "(run_phase B_SUM: no zeroing, no update), "
              "= the real engine.run_batches(TRAIN) (zeroing + gradient + update). This engine has no "
              "cross-chunk reduction (each gradient number is owned by one task): 0 by construction.")

def phases_table(sc, dtype, n, res, source, epoch_n=50_000):
    scale = epoch_n / n
    ths = list(res)
    fl = H.flops_per_example(sc.sizes, sc.m)
    flop_by_stage = [fl["forward"], 0, fl["hidden"], fl["gradient"], 0, fl["update"]]
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
            if k == 4:
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
    return "\n".join(lines) + "\n"


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
        res, source = profile_phases(sc, dt, args.examples, args.repeats, threads, log)
        md = phases_table(sc, dt, args.examples, res, source)
        print(md)
        sections[f"phases-{args.scenario}-{dt}"] = md
    path = H.results_path(args.out)
    if path is not None and sc == sc0:
        H.update_results(path, None, sections)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
