"""Thread scaling, side by side in one run: loopnet on 1, 2, 4, … up to every core, its
default ``fit``, and NumPy's and PyTorch's epochs on all cores.

    python profiles/scaling.py [--scenarios w1,w3,w5] [--examples 20000] [--wide-examples 5000]
                               [--repeats 3] [--dtype float64] [--out FILE]

For each scenario (sizes, m and eta of _scenarios.SCENARIOS; Fashion-MNIST when installed),
every implementation is validated against loopnet.reference, then timed by
_timing.time_ladder: epochs interleaved round-robin, the best of ``--repeats`` kept, each
scaled to 50,000 examples.  Rows: loopnet with ``threads=t`` for t = 1, 2, 4, … and the
number of cores (Numba's thread count), ``fit()`` with every default (threads=None), the
NumPy matrix form with its BLAS on every core, and PyTorch CPU eager on every core (when
installed).  Columns: s per epoch, speed-up over loopnet on 1 thread, and parallel efficiency
(speed-up ÷ threads).  The results of every thread count are checked bit for bit against
1 thread (weights after 5 mini-batches).  The machine block (peaks, load) comes first.
Issue 13's goal: near-linear scaling to 16 threads on W3 and W5.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _harness as H  # noqa: E402


def thread_counts(cores):
    """1, 2, 4, … below ``cores``, then ``cores`` itself."""
    counts, t = [], 1
    while t < cores:
        counts.append(t)
        t *= 2
    return counts + [cores]


def implementations(sc, dtype, cores):
    rows = [(f"loopnet{t}", H.Loopnet(sc, dtype, t)) for t in thread_counts(cores)]
    rows.append(("fit", H.LoopnetDefaultFit(sc, dtype)))
    rows.append(("numpy", H.NumpyMatrix(sc, dtype)))
    try:
        import torch  # noqa: F401
        torch_all = H.Torch(sc, dtype, cores)
        torch_all.fraction = 0.05   # its thread pool is pathological on a busy machine (_harness)
        rows.append(("torch", torch_all))
    except ImportError:
        pass
    return rows


def bit_identical(impls, sc, X, Y, ws, bs):
    """{key: weights after 5 mini-batches equal, bit for bit, to loopnet's on 1 thread}."""
    out = {key: H.weights_after(impl, sc, X, Y, ws, bs)
           for key, impl in impls if key.startswith("loopnet")}
    return {k: all(np.array_equal(a, c) for a, c in zip(v, out["loopnet1"])) for k, v in out.items()}


def scenario(sc, dtype, n, repeats, cores, log=print):
    X, Y, _, source = H.load_data(n, sc.sizes[0], sc.sizes[-1], dtype)
    ws, bs = H.init_params(sc.sizes, dtype)
    impls = []
    for key, impl in implementations(sc, dtype, cores):
        errs = H.validate(impl, sc, X, Y, ws, bs)
        if any(e is not None and not e <= H.TOL[dtype] for e in errs):
            log(f"  {impl.label}: validation failed {errs}; not timed")
            continue
        impls.append((key, impl))
    same = bit_identical(impls, sc, X, Y, ws, bs)
    log(f"  timing {len(impls)} rows, {repeats} epochs of {n:,} examples ...")
    best, cpu, _ = H.time_ladder(impls, X, Y, ws, bs, repeats, log=log,
                                 warmup_examples=min(2000, n))
    scale = 50_000 / n
    one = best["loopnet1"]
    lines = [f"### {sc.title}, {dtype}: {n:,} {source} examples per timed epoch, scaled to 50,000"
             f" (load {os.getloadavg()[0]:.1f})", "",
             "| implementation | threads | s / epoch | CPU s / epoch | speed-up vs loopnet 1 thread "
             "| efficiency | bit-identical to 1 thread |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for key, impl in impls:
        t = getattr(impl, "threads", None)
        threads = t if key.startswith("loopnet") else ("fit's choice" if key == "fit" else cores)
        speedup = one / best[key]
        eff = f"{speedup / t:.0%}" if key.startswith("loopnet") and t else ""
        ident = ("yes" if same.get(key) else "NO") if key in same else ""
        lines.append(f"| {impl.label} | {threads} | {best[key] * scale:.3g} | {cpu[key] * scale:.3g} "
                     f"| {speedup:.2f}× | {eff} | {ident} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default="w1,w3,w5")
    p.add_argument("--examples", type=int, default=20_000)
    p.add_argument("--wide-examples", type=int, default=5_000, help="examples for W5")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--out", help="markdown file to write (default: print only)")
    args = p.parse_args(argv)
    cores = H.n_cores()
    peaks = H.measure_peaks(False)
    parts = [f"# Thread scaling on {H.machine_slug()}", "", H.machine_header(peaks), ""]
    print("\n".join(parts))
    for name in args.scenarios.split(","):
        sc = H.SCENARIOS[name.strip()]
        n = args.wide_examples if sc.sizes[1] >= 1000 else args.examples
        print(f"{sc.title}: validating and timing ...")
        md = scenario(sc, args.dtype, n, args.repeats, cores)
        print(md)
        parts.append(md)
    if args.out:
        Path(args.out).write_text("\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
