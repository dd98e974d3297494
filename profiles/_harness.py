"""The measuring instrument shared by every scenario in ``profiles/``.

One scenario = one network shape, one mini-batch size, one dtype.  A run

1. prints a machine header: CPU model, cores, threads, library versions, date,
   and the peaks measured *in this run*: float64 and float32 matmul GFLOP/s on
   1 thread and on all threads, and a STREAM-like memory bandwidth;
2. validates every implementation against :mod:`loopnet.reference` (gradient
   after one mini-batch, weights after a few mini-batches) BEFORE timing it;
   an implementation that fails is reported and not timed;
3. times the ladder side by side in one process, epochs interleaved
   round-robin so that noise from other processes hits every row alike;
4. measures loopnet's cold compile (fresh process, empty ``NUMBA_CACHE_DIR``)
   and cached start (fresh process, warm cache);
5. prints a Markdown table and writes it to ``profiles/results/<machine>.md``
   (one section per scenario and dtype, replaced in place on a rerun).

FLOP counting (per example, from the layer sizes only)
------------------------------------------------------
For layers l = 1..L with n_{l-1} inputs and n_l outputs, P parameters:

* forward          z = W a + b               2 · Σ_l n_l n_{l-1}
* hidden errors    δ^{l-1} = (W^l)^T δ^l     2 · Σ_{l≥2} n_l n_{l-1}
* gradient         ∇W += δ a^T               2 · Σ_l n_l n_{l-1}
* update           w -= η/m ∇w               2 · P / m

Only multiply-adds of the matrix products (2 FLOPs each) and the update are
counted; bias additions, σ, σ' and the Hadamard products are O(Σ n_l) per
example and left out (under 1.5 % for every workload here).  W1
[784, 30, 10] at m = 10 gives 47.6k + 0.6k + 47.6k + 4.8k ≈ 101 kFLOP per
example, 5.0 GFLOP per 50,000-example epoch.  Every implementation is charged
the same FLOPs, whatever it really executes (Nielsen-style code recomputes σ,
PyTorch's autograd may do extra work): GFLOP/s is "useful work per second".

The *hardware bound* of a row is epoch FLOPs / measured matmul peak on the
same number of threads: what a perfect BLAS-speed kernel would need.  The
memory column is the time to stream the epoch's input once (n · n_0 · itemsize
bytes) at the measured bandwidth: the bound that matters when the network is
small and the input is large.

The instrument is kept in parts by job: :mod:`_scenarios` (paths, tolerances, scenarios,
FLOP counts), :mod:`_machine` (machine facts and peaks), :mod:`_impls` (data, the NumPy
oracle, the implementations on the ladder), :mod:`_timing` (validation, interleaved timing,
compile probes) and :mod:`_report` (tables and the results file).  This module runs one
scenario end to end and re-exports every part, so ``import _harness as H`` sees them all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:    # the parts below sit next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import *  # noqa: F401,F403  (the instrument's parts, re-exported for the scenario files)
from _machine import *  # noqa: F401,F403  (the instrument's parts, re-exported for the scenario files)
from _impls import *  # noqa: F401,F403  (the instrument's parts, re-exported for the scenario files)
from _timing import *  # noqa: F401,F403  (the instrument's parts, re-exported for the scenario files)
from _report import *  # noqa: F401,F403  (the instrument's parts, re-exported for the scenario files)
from _scenarios import RESULTS_DIR, SCENARIOS, TOL, flops_per_epoch
from _machine import machine_header, machine_slug, measure_peaks, n_cores
from _impls import NielsenStyle, Sklearn, Torch, init_params, ladder, load_data
from _timing import compile_times, time_ladder, validate, weights_after
from _report import fmt_err, scenario_table, update_results


# ---------------------------------------------------------------------------
# one scenario, end to end
# ---------------------------------------------------------------------------


def run_scenario(sc, dtype="float64", n=50_000, repeats=3, quick=False, want=None, peaks=None,
                 compile_probe=True, nielsen_fraction=0.1, log=print, epoch_n=None, slow_fraction=0.25):
    """Validate, then time, one scenario.  ``n`` examples are timed per epoch; times are
    reported per ``epoch_n`` examples (default n; 50,000 when n is smaller, scaled linearly)."""
    cores = n_cores()
    if peaks is None:
        log("measuring peaks ...")
        peaks = measure_peaks(quick)
    X, Y, labels, source = load_data(n, sc.sizes[0], sc.sizes[-1], dtype)
    ws, bs = init_params(sc.sizes, dtype)
    impls = ladder(sc, dtype, cores, want)
    for _, impl in impls:
        if isinstance(impl, NielsenStyle):
            impl.fraction = nielsen_fraction
        elif isinstance(impl, (Torch, Sklearn)):
            impl.fraction = slow_fraction
            if isinstance(impl, Torch) and impl.threads > 1:
                # PyTorch's OpenMP pool on a busy machine: one barrier per op, each waiting for a
                # descheduled thread, measured at 150 s per W1 epoch: time a smaller share
                impl.fraction = min(slow_fraction, 0.05)
    if epoch_n is None:
        epoch_n = n if quick else max(n, 50_000)
    res = {"scenario": sc, "dtype": dtype, "peaks": peaks, "n": n, "epoch_n": epoch_n, "source": source,
           "repeats": repeats,
           "flops_epoch": flops_per_epoch(sc.sizes, sc.m, n), "impls": impls, "errors": {}, "failed": {},
           "best": {}}
    tol = TOL[dtype]
    ok = []
    for key, impl in impls:
        try:
            errs = validate(impl, sc, X, Y, ws, bs)
        except Exception as exc:  # noqa: BLE001 - report, do not time
            msg = (str(exc).strip().splitlines() or [""])[0][:160]
            res["failed"][key] = f"{type(exc).__name__}: {msg}"
            log(f"  {impl.label}: validation raised {res['failed'][key]}")
            continue
        res["errors"][key] = errs
        bad = [e for e in errs if e is not None and not e <= tol]
        log(f"  validate {impl.label}: gradient {fmt_err(errs[0])}, weights {fmt_err(errs[1])}"
            + ("  FAILED" if bad else "  ok"))
        if bad:
            res["failed"][key] = f"validation error above {tol:g}"
        else:
            ok.append((key, impl))
    keys = [k for k, _ in ok]
    if "loopnet1" in keys and "loopnet" in keys:
        nb = max(1, min(5, len(X) // sc.m))
        one, many = (weights_after(dict(ok)[key], sc, X, Y, ws, bs, nb)
                     for key in ("loopnet1", "loopnet"))
        res["bit_identical"] = (all(np.array_equal(a, b) for a, b in zip(one, many)), nb)
    if compile_probe and "loopnet1" in keys:
        log("  compile probe (two fresh processes) ...")
        try:
            res["compile"] = compile_times(sc, dtype)
        except Exception as exc:  # noqa: BLE001
            log(f"  compile probe failed: {exc}")
    log(f"  timing {len(ok)} implementations, {repeats} epochs of {n:,} examples each ...")
    res["best"], res["cpu"], res["all_times"] = time_ladder(ok, X, Y, ws, bs, repeats, log=log,
                                                warmup_examples=min(2000, n))
    res["markdown"] = scenario_table(res)
    return res


def scenario_parser(sc=None, description=None):
    p = argparse.ArgumentParser(description=description or (f"profile {sc.title}" if sc else None))
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="float64")
    p.add_argument("--examples", "-n", type=int, default=50_000, help="examples per epoch (default 50,000)")
    p.add_argument("--repeats", "-r", type=int, default=3, help="timed epochs per implementation (best is kept)")
    p.add_argument("--impls", help="comma list among numpy,numpy1,nielsen,loopnet1,loopnet,fit,torch1,torch,sklearn "
                   "(fit: loopnet's default fit call)")
    p.add_argument("--sizes", help="override the layer sizes, e.g. 20,8,4 (for smoke tests)")
    p.add_argument("--batch", "-m", type=int, help="override the mini-batch size")
    p.add_argument("--nielsen-fraction", type=float, default=0.1,
                   help="share of each epoch timed for the per-example code (scaled up)")
    p.add_argument("--slow-fraction", type=float, default=0.25,
                   help="share of each epoch timed for PyTorch and scikit-learn (scaled up; 1 = all)")
    p.add_argument("--no-compile", action="store_true", help="skip the cold/cached compile probe")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: 400 examples, 1 repeat, small peak probes, no compile probe, no results file")
    p.add_argument("--out", help="results file (default profiles/results/<machine>.md; '-' = do not write)")
    return p


def apply_overrides(sc, args):
    from dataclasses import replace

    if args.sizes:
        sc = replace(sc, sizes=[int(s) for s in args.sizes.split(",")])
    if args.batch:
        sc = replace(sc, m=args.batch)
    if args.quick:
        args.examples = min(args.examples, 400)
        args.repeats = 1
        args.no_compile = True
        if args.out is None:
            args.out = "-"
    return sc


def results_path(out):
    if out == "-":
        return None
    return Path(out) if out else RESULTS_DIR / f"{machine_slug()}.md"


def main_for(key, argv=None):
    """Entry point of ``profiles/<key>.py`` and ``loopnet profile <key>``.  Returns an exit code."""
    sc0 = SCENARIOS[key]
    args = scenario_parser(sc0).parse_args(argv)
    sc = apply_overrides(sc0, args)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    want = set(args.impls.split(",")) if args.impls else None
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr, table on stdout
    peaks = measure_peaks(args.quick)
    header = machine_header(peaks)
    print(header + "\n")
    sections = {}
    failed = False
    for dt in dtypes:
        log(f"{sc.title}, {dt}")
        res = run_scenario(sc, dt, n=args.examples, repeats=args.repeats, quick=args.quick, want=want,
                           peaks=peaks, compile_probe=not args.no_compile,
                           nielsen_fraction=args.nielsen_fraction, slow_fraction=args.slow_fraction, log=log)
        print(res["markdown"])
        failed |= bool(res["failed"])
        sections[f"{key}-{dt}"] = res["markdown"]
    path = results_path(args.out)
    if path is not None and sc == sc0:
        update_results(path, header, sections)
        log(f"wrote {path}")
    return 1 if failed else 0
