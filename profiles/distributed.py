"""Data-parallel training over MPI: time per epoch, allreduce per step, and when scaling pays.

    python profiles/distributed.py                 # 1, 2 ranks, then 3 and 4 (oversubscribed here)
    python profiles/distributed.py --ranks 1,2 --n 6000 --no-write

The driver launches ``mpiexec -n k python -m mpi4py profiles/distributed.py --worker`` for every
rank count k (``NUMBA_NUM_THREADS=1`` per rank: the parallelism is the ranks).  Each worker

1. validates before timing: 2 epochs on 600 examples with ``deterministic=True`` must be
   bit-identical to the one-process emulation of the same k-piece decomposition and equal
   ``Net.fit`` within 1e-12 (bit-identical on 1 rank) - checked on rank 0;
2. times ``loopnet.distributed.fit`` on the first ``--n`` Fashion-MNIST training images, read
   through a memory map (each rank reads only its rows), for [784,30,10] (P = 23,860, "24k")
   and [784,100,10] (P = 79,510, "80k") at m = 10 and 100: seconds per epoch (best of the
   epochs), time inside the gradient combination per step (Allreduce, or gather + sum +
   broadcast with ``--deterministic``; waiting for the slowest rank included);
3. times a bare ``Allreduce`` and gather + sum + broadcast of P float64 (barrier, then the
   collective; median of 200) - the pure communication cost;
4. with k = 1 also times plain ``Net.fit`` (whole epochs in compiled code) for comparison.

The model printed at the end: one step on k ranks costs

    t_step(k) = t_py + t_x * m / k + t_ar(P, k)

with t_x the compute time per example (from the 1-rank run), t_py the Python cost of a step
(the 1-rank distributed step minus its compute) and t_ar the allreduce.  k ranks beat one when
t_ar(P, k) < t_x * m * (1 - 1/k): the break-even mini-batch m* is printed for each width.  The
same formula with t_ar(P, k) = 2 log2(k) α + 2 (k-1)/k * 8P / B (reduce-scatter + allgather)
gives the cluster projection of README.md's "Distributed training (MPI)" section.

Rank counts above the number of cores are marked "oversubscribed": ranks then share cores,
and their times measure contention, not scaling (they run with MPICH's
``MPIR_CVAR_ENABLE_HEAVY_YIELD=1``, without which every busy-waiting collective costs a
scheduler time slice).  Results go to ``profiles/results/distributed-<machine>.md``.  On a machine shared with other jobs, every
number here is noisy; the ratios within one run are what to read.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROFILES_DIR = Path(__file__).resolve().parent
REPO_DIR = PROFILES_DIR.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

FASHION = Path(os.environ.get("LOOPNET_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
CONFIGS = [([784, 30, 10], 10), ([784, 30, 10], 100), ([784, 100, 10], 10), ([784, 100, 10], 100)]


def n_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def n_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


# --------------------------------------------------------------------------- worker (under mpiexec)


def _collective_times(comm, P, reps=200):
    from mpi4py import MPI

    g = np.ones(P)
    buf = np.empty((comm.size, P)) if comm.rank == 0 else None
    out = {}
    for name in ("allreduce", "gather_sum_bcast"):
        ts = []
        for _ in range(reps):
            comm.Barrier()
            t = time.perf_counter()
            if name == "allreduce":
                comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            else:
                if comm.rank == 0:
                    comm.Gather(g, buf, root=0)
                    g[...] = buf[0]
                    for r in range(1, comm.size):
                        g += buf[r]
                else:
                    comm.Gather(g, None, root=0)
                comm.Bcast(g, root=0)
            ts.append(time.perf_counter() - t)
            g[...] = 1.0
        out[name] = float(np.median(ts))
    return out


def worker(args):
    from mpi4py import MPI

    import loopnet
    from loopnet import distributed

    comm = MPI.COMM_WORLD
    k, rank = comm.size, comm.rank
    X = distributed.open_idx(FASHION / "train-images-idx3-ubyte.gz", divide_by=255, comm=comm)
    y = distributed.open_idx(FASHION / "train-labels-idx1-ubyte.gz", comm=comm)
    n = min(args.n, len(X))
    Xn, yn = X[:n], y[:n]  # the timed runs read rows through the memory map (each rank its own)
    result = {"ranks": k, "cores": n_cores(), "n": n, "configs": []}

    # 1. validate before timing
    Xs, ys = np.asarray(X[:600]), np.asarray(y[:600])
    net = loopnet.Net([784, 30, 10], seed=0)
    distributed.fit(net, Xs, ys, comm=comm, deterministic=True, epochs=2, batch_size=10, eta=3.0, monitor=False)
    if rank == 0:
        emu = loopnet.Net([784, 30, 10], seed=0)
        distributed.fit(emu, Xs, ys, ranks=k, deterministic=True, epochs=2, batch_size=10, eta=3.0, monitor=False)
        plain = loopnet.Net([784, 30, 10], seed=0).fit(Xs, ys, epochs=2, batch_size=10, eta=3.0, monitor=False)
        exact_one = k == 1      # one rank: Net.step(Σ, m=m) is Net.fit's update, bit for bit
        result["validated"] = bool(net.params.tobytes() == emu.params.tobytes()
                                   and np.max(np.abs(net.params - plain.params)) <= 1e-12
                                   and (not exact_one or net.params.tobytes() == plain.params.tobytes()))

    # the Python cost of one step, measured on a net too small to compute anything
    rng = np.random.default_rng(0)
    Xt, yt = rng.random((4000, 4)), rng.integers(0, 2, 4000)
    tiny = loopnet.Net([4, 2, 2], seed=0)
    distributed.fit(tiny, Xt, yt, comm=comm, epochs=2, batch_size=10 * k, eta=0.1, monitor=False)
    result["py_step_s"] = comm.allreduce(min(h["seconds"] - h["comm_seconds"] for h in tiny.history), op=MPI.MAX) \
        / (4000 // (10 * k))

    # 2-4. time
    for sizes, m in CONFIGS:
        P = n_params(sizes)
        row = {"sizes": sizes, "m": m, "P": P}
        for det in (False, True):
            comm.Barrier()
            net = loopnet.Net(sizes, seed=0)  # compiled code is warm: the validation ran the same kernels
            distributed.fit(net, Xn, yn, comm=comm, deterministic=det, epochs=args.epochs, batch_size=m, eta=0.5,
                            monitor=False)
            best = min(net.history, key=lambda h: h["seconds"])
            steps = -(-n // m)
            # the slowest rank sets the pace: take the max over ranks of each epoch's time
            sec = comm.allreduce(best["seconds"], op=MPI.MAX)
            comm_s = comm.allreduce(best["comm_seconds"], op=MPI.MAX)
            key = "det" if det else "ar"
            row[f"{key}_epoch_s"] = sec
            row[f"{key}_comm_per_step_s"] = comm_s / steps
        row.update({f"pure_{a}": b for a, b in _collective_times(comm, P).items()})
        if k == 1:
            plain = loopnet.Net(sizes, seed=0)
            plain.fit(Xn, yn, epochs=1, batch_size=m, eta=0.5, monitor=False)  # compiled, warm
            plain.fit(Xn, yn, epochs=args.epochs, batch_size=m, eta=0.5, monitor=False)
            row["net_fit_epoch_s"] = min(h["seconds"] for h in plain.history[1:])
        result["configs"].append(row)
    if rank == 0:
        with open(args.json, "w") as f:
            json.dump(result, f)
    return 0


# --------------------------------------------------------------------------- driver


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if os.access(here, os.X_OK) else shutil.which("mpiexec")


def launch(k, n, epochs, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONPATH=str(REPO_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if k > n_cores():
            # MPICH busy-waits in collectives; with more ranks than cores every wait costs a
            # scheduler time slice (Allreduce of 24k: ~15 ms instead of ~1 ms with this set)
            env.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")
        cmd = [_mpiexec(), "-n", str(k), sys.executable, "-m", "mpi4py", str(Path(__file__).resolve()),
               "--worker", "--json", str(out), "--n", str(n), "--epochs", str(epochs)]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_DIR, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"mpiexec -n {k} ran over {timeout} s and was killed")
        if proc.returncode != 0:
            raise SystemExit(f"mpiexec -n {k} failed with exit code {proc.returncode}")
        res = json.loads(out.read_text())
        res["wall_s"] = time.monotonic() - t0
        return res


def startup_seconds(reps=3):
    """mpiexec -n 2 python -m mpi4py -c 'barrier' (MPI start-up without loopnet)."""
    ts = []
    for _ in range(reps):
        t = time.monotonic()
        subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", "-c",
                        "from mpi4py import MPI; MPI.COMM_WORLD.Barrier()"], check=True)
        ts.append(time.monotonic() - t)
    return min(ts)


def us(s):
    return f"{s * 1e6:,.0f}"


def allreduce_model(P, k, alpha, bandwidth_bytes):
    """Reduce-scatter + allgather (Rabenseifner / ring bandwidth term): 2 log2 k α + 2 (k-1)/k 8P/B."""
    if k == 1:
        return 0.0
    return 2 * math.ceil(math.log2(k)) * alpha + 2 * (k - 1) / k * 8 * P / bandwidth_bytes


WIDE = [784, 1000, 10]  # not timed here (too slow for a shared 2-core box): t_x scaled by P


def projection(model, nodes=64):
    """Markdown lines: the step model with t_ar from the alpha-beta formula, for a cluster."""
    # per-example compute per parameter, from the largest mini-batch measured (update cost amortised)
    rate = {}
    for (sizes, m), (t_x, _) in model.items():
        P = n_params(list(sizes))
        rate[P] = min(rate.get(P, float("inf")), t_x)
    per_param = max(t / P for P, t in rate.items())  # the slower (larger-P) rate: conservative
    rate[n_params(WIDE)] = per_param * n_params(WIDE)
    t_py = next(iter(model.values()))[1]
    out = [
        f"Cluster projection, {nodes} nodes, one rank per node computing at this machine's single-core "
        f"t_x (P = {n_params(WIDE) / 1000:.0f}k: t_x scaled from the 80k measurement), Python cost "
        f"t_py = {t_py * 1e6:.0f} µs per step, t_ar = 2·⌈log2 {nodes}⌉·α + 2·({nodes}−1)/{nodes}·8P/B. "
        "The allreduce is blocking (no overlap), so 'hidden' means the compute dominates the step: "
        "efficiency E = t_x·m/k / (t_py + t_x·m/k + t_ar); speed-up = t_x·m / (that step) over one node "
        "running `Net.fit`.",
        "",
        "| network (P) | link (α) | t_ar µs | m/k for E = 50% | m/k for E = 90% | speed-up at m = 1,000 "
        "| at m = 10,000 | at m = 100,000 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for P, t_x in sorted(rate.items()):
        for gbit, alpha in ((10, 25e-6), (100, 3e-6)):
            t_ar = allreduce_model(P, nodes, alpha, gbit * 1e9 / 8)
            half = math.ceil((t_ar + t_py) / t_x)
            ninety = math.ceil(9 * (t_ar + t_py) / t_x)
            speed = [t_x * m / (t_py + t_x * m / nodes + t_ar) for m in (1000, 10000, 100000)]
            out.append(f"| {P / 1000:.0f}k | {gbit} Gb/s ({alpha * 1e6:.0f} µs) | {us(t_ar)} | {half:,} | "
                       f"{ninety:,} | " + " | ".join(f"{x:.1f}x" for x in speed) + " |")
    return out


def report(results, startup):
    cores = results[0]["cores"]
    one = {tuple(c["sizes"]) + (c["m"],): c for c in results[0]["configs"]}
    lines = []
    lines.append(f"MPI start-up (mpiexec -n 2 python -m mpi4py, barrier, no loopnet): **{startup:.2f} s**; "
                 f"n = {results[0]['n']:,} Fashion-MNIST images read through a memory map; "
                 f"NUMBA_NUM_THREADS=1 per rank; {cores} cores. Epoch time = best epoch, slowest rank.")
    lines.append("")
    lines.append("| ranks | network (P) | m | epoch s (Allreduce) | speed-up | epoch s (deterministic) "
                 "| comm µs/step in training | pure Allreduce µs | gather+sum+bcast µs | validated |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        k = res["ranks"]
        mark = f"{k} (**oversubscribed**, heavy yield)" if k > cores else str(k)
        for c in res["configs"]:
            base = one[tuple(c["sizes"]) + (c["m"],)]["ar_epoch_s"]
            lines.append(
                f"| {mark} | {','.join(map(str, c['sizes']))} ({c['P'] / 1000:.0f}k) | {c['m']} | "
                f"{c['ar_epoch_s']:.3f} | {base / c['ar_epoch_s']:.2f}x | {c['det_epoch_s']:.3f} | "
                f"{us(c['ar_comm_per_step_s'])} / {us(c['det_comm_per_step_s'])} | "
                f"{us(c['pure_allreduce']) if k > 1 else '-'} | {us(c['pure_gather_sum_bcast']) if k > 1 else '-'} | "
                f"{'yes' if res.get('validated') else 'NO'} |")
    lines.append("")
    lines.append("Single process for comparison: plain `Net.fit` (whole epochs in compiled code) vs "
                 "`distributed.fit` on 1 rank (a Python step per mini-batch):")
    lines.append("")
    lines.append(f"| network | m | Net.fit epoch s | distributed, 1 rank, epoch s | t_x µs/example |")
    lines.append("|---|---|---|---|---|")
    model = {}
    t_py = results[0]["py_step_s"]
    for c in results[0]["configs"]:
        n = results[0]["n"]
        steps = -(-n // c["m"])
        t_x = c["net_fit_epoch_s"] / n
        model[(tuple(c["sizes"]), c["m"])] = (t_x, t_py)
        lines.append(f"| {','.join(map(str, c['sizes']))} | {c['m']} | {c['net_fit_epoch_s']:.3f} | "
                     f"{c['ar_epoch_s']:.3f} | {t_x * 1e6:.1f} |")
    lines.append("")
    lines.append(f"t_py, the Python cost of one `distributed.fit` step (slicing, `gradient_sum`/`step` wrappers; "
                 f"measured on a [4,2,2] net): **{t_py * 1e6:.0f} µs** on 1 rank"
                 + "".join(f", {r['py_step_s'] * 1e6:.0f} µs on {r['ranks']}" for r in results[1:]) + ".")
    lines.append("")
    # when scaling pays, from this machine's numbers
    lines.append("When k ranks pay: a distributed step costs t_py + t_x·m/k + t_ar(P, k) (t_py is paid by every "
                 "rank at once and does not shrink with k), a `Net.fit` step t_x·m, so k ranks win when "
                 "t_py + t_ar(P, k) < t_x·m·(1 − 1/k). Break-even m* = (t_py + t_ar) / (t_x·(1 − 1/k)) with the "
                 "measured 2-rank Allreduce and t_x from the largest m (per-step costs amortised):")
    lines.append("")
    two = next((r for r in results if r["ranks"] == 2), None)
    if two:
        lines.append("| network (P) | t_x µs/example | Allreduce µs (2 ranks) | m* (2 ranks) |")
        lines.append("|---|---|---|---|")
        seen = set()
        for c in two["configs"]:
            if tuple(c["sizes"]) in seen:
                continue
            seen.add(tuple(c["sizes"]))
            t_x = min(v[0] for (sz, _), v in model.items() if sz == tuple(c["sizes"]))
            t_ar = c["pure_allreduce"]
            lines.append(f"| {','.join(map(str, c['sizes']))} ({c['P'] / 1000:.0f}k) | {t_x * 1e6:.1f} | "
                         f"{us(t_ar)} | {(t_py + t_ar) / (t_x * 0.5):.0f} |")
        lines.append("")
    # cluster projection
    lines += projection(model)
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", default="1,2,3,4", help="rank counts to run (default 1,2,3,4)")
    ap.add_argument("--n", type=int, default=12000, help="training examples (default 12,000)")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per setting (best is kept)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--no-write", action="store_true",
                    help="print only; do not write profiles/results/distributed-<machine>.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if _mpiexec() is None:
        print("profiles/distributed.py: no mpiexec (pip install 'loopnet[mpi]')", file=sys.stderr)
        return 1
    startup = startup_seconds()
    results = []
    for k in (int(x) for x in args.ranks.split(",")):
        print(f"-- {k} rank(s){' (oversubscribed)' if k > n_cores() else ''} ...", flush=True)
        results.append(launch(k, args.n, args.epochs, args.timeout))
    if results[0]["ranks"] != 1:
        raise SystemExit("--ranks must start with 1 (the baseline)")
    md = report(results, startup)
    print(md)
    if not args.no_write:
        sys.path.insert(0, str(PROFILES_DIR))
        from _harness import machine_slug, update_results

        path = update_results(PROFILES_DIR / "results" / f"distributed-{machine_slug()}.md", None,
                              {"distributed": "## Distributed training (MPI): profiles/distributed.py\n\n" + md})
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
