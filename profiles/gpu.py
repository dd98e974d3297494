"""loopnet on the GPU (loopnet.cuda) against PyTorch CUDA eager and torch.compile, one run.

    python profiles/gpu.py                 # on a GPU machine: W1-W5, float32 and float64
    python profiles/gpu.py --simulate      # no GPU: Numba's CUDA simulator, tiny sizes (plumbing only)

For every workload and dtype, in this order:

1. **validate** before timing: the gradient of the first mini-batch and the
   weights after ``--val-batches`` mini-batches of loopnet.cuda (cooperative
   launch), of the same on the per-phase driver, and of PyTorch CUDA, against
   :mod:`loopnet.reference` (max relative error ≤ 1e-10 in float64, 1e-5 in
   float32); the loopnet.cuda weights also against the CPU engine.  A row that
   fails is reported and not timed.
2. **time** one warm-up epoch of each row, then ``--repeats`` epochs of
   ``--n`` examples, the rows interleaved round-robin; median and best.
   Every row trains the same network (sigmoid, quadratic cost, η = 3, the
   scenario's mini-batch m) from the same initial weights on the same data
   (Fashion-MNIST when present, else synthetic) in the same shuffled order.

Rows:

* ``loopnet.cuda epoch``: ``CudaNet.fit(epochs=1)``'s own epoch time (the
  launch over the whole epoch, the order's upload, a device synchronise),
  X and Y already on the device: what the kernels cost.
* ``loopnet.cuda fit()``: the same call's wall-clock time, which also copies
  X and Y to the device (once per ``fit``) and checks the parameters for NaN.
* ``loopnet.cuda phases``: the per-phase driver (one launch per phase per
  mini-batch from Python), for comparison with the cooperative launch.
* ``PyTorch CUDA eager``: nn.Sequential + autograd + optim.SGD, X and Y on the
  device, the mini-batch picked by an index tensor on the device; ends with
  ``torch.cuda.synchronize()``.
* ``torch.compile``: the same model through ``torch.compile`` (compile time
  excluded: it happens in the warm-up epoch, reported separately).
* ``loopnet CPU``: ``Net.fit`` on the host's cores (threads chosen by loopnet).

The Markdown table names the GPU and goes to
``profiles/results/gpu-<gpu>.md``; it is (re)written after every workload,
so a run cut short keeps what it measured.
"""

import argparse
import os
import sys
import time
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PROFILES_DIR))
sys.path.insert(0, str(PROFILES_DIR.parent))

WORKLOADS = ("w1", "w3", "w5", "w2", "w4")
TINY = {"w1": [12, 6, 4], "w2": [12, 8, 4], "w3": [12, 8, 4], "w4": [12, 5, 5, 5, 4],
        "w5": [12, 40, 4]}
TOL = {"float64": 1e-10, "float32": 1e-5}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--simulate", action="store_true",
                   help="Numba's CUDA simulator, tiny sizes, PyTorch on the CPU (tests the script)")
    p.add_argument("--quick", action="store_true", help="W1 and W5 only, one repeat")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--n", type=int, default=20_000, help="examples per timed epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--val-batches", type=int, default=3)
    p.add_argument("--compile", default="w1,w5",
                   help="workloads that also time torch.compile ('' for none)")
    p.add_argument("--no-cpu", action="store_true", help="skip the loopnet CPU row")
    p.add_argument("--no-phases", action="store_true", help="skip the per-phase driver row")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="start no new workload after this many seconds (results so far are kept)")
    p.add_argument("--out", help="results file, or a folder to write gpu-<gpu>.md into "
                   "(default profiles/results/)")
    args = p.parse_args(argv)
    if args.quick:
        args.workloads, args.repeats = "w1,w5", 1
    if args.simulate:
        args.n = min(args.n, 24)
        args.repeats = 1
        args.val_batches = 2
        args.compile = ""
    return args


# ------------------------------------------------------------------ rows
class LoopnetCuda:
    """loopnet.cuda.CudaNet on a copy of the net; X and Y put on the device by each fit."""

    def __init__(self, net, launch, sim):
        from loopnet.cuda import to_device
        opts = dict(threads=4, blocks=1 if launch == "cooperative" else 2) if sim else {}
        self.dev = to_device(net.copy(), launch=launch, **opts)
        self.label = "loopnet.cuda " + ("epoch" if launch == "cooperative" else "phases")

    def set_params(self, params):
        self.dev._params.copy_to_device(params)

    def gradient(self, X, Y):
        return self.dev.gradient(X, Y)

    def train(self, X, Y, order, m, eta):
        start = time.perf_counter()
        self.dev.fit(X, Y, epochs=1, batch_size=m, eta=eta, order=order, monitor=False)
        self.wall = time.perf_counter() - start
        return self.dev.net.history[-1]["seconds"]

    def weights(self):
        return self.dev.weights + self.dev.biases


class Torch:
    """PyTorch eager (or torch.compile) as a user writes it, X and Y on the device."""

    def __init__(self, sizes, dtype, device, compiled):
        import torch
        self.t, self.device = torch, device
        self.tdtype = getattr(torch, dtype)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b, dtype=self.tdtype, device=device),
                       torch.nn.Sigmoid()]
        self.model = torch.nn.Sequential(*layers)
        self.linears = [l for l in self.model if isinstance(l, torch.nn.Linear)]
        self.forward = torch.compile(self.model) if compiled else self.model
        self.opt = None
        where = "CUDA" if device == "cuda" else "CPU (simulate)"
        self.label = f"torch.compile {where}" if compiled else f"PyTorch {where} eager"
        self._cache = None

    def set_params(self, ws, bs):
        with self.t.no_grad():
            for lin, w, b in zip(self.linears, ws, bs):
                lin.weight.copy_(self.t.from_numpy(w))
                lin.bias.copy_(self.t.from_numpy(b))
        self.opt = None

    def _loss(self, xb, yb):
        return 0.5 * ((self.forward(xb) - yb) ** 2).sum(dim=1).mean()

    def _sync(self):
        if self.device == "cuda":
            self.t.cuda.synchronize()

    def gradient(self, X, Y):
        for lin in self.linears:
            lin.weight.grad = lin.bias.grad = None
        self._loss(self.t.from_numpy(X).to(self.device), self.t.from_numpy(Y).to(self.device)
                   ).backward()
        return ([l.weight.grad.cpu().numpy() for l in self.linears],
                [l.bias.grad.cpu().numpy() for l in self.linears])

    def train(self, X, Y, order, m, eta):
        t = self.t
        if self._cache is None or self._cache[0] is not X:
            self._cache = (X, t.from_numpy(X).to(self.device), t.from_numpy(Y).to(self.device))
        Xd, Yd = self._cache[1], self._cache[2]
        if self.opt is None:
            self.opt = t.optim.SGD(self.model.parameters(), lr=eta)
        self._sync()
        start = time.perf_counter()
        idx_all = t.from_numpy(order).to(self.device)
        for k in range(0, len(order), m):
            idx = idx_all[k:k + m]
            self.opt.zero_grad()
            self._loss(Xd[idx], Yd[idx]).backward()
            self.opt.step()
        self._sync()
        self.wall = time.perf_counter() - start
        return self.wall

    def weights(self):
        return ([l.weight.detach().cpu().numpy() for l in self.linears]
                + [l.bias.detach().cpu().numpy() for l in self.linears])


class LoopnetCPU:
    def __init__(self, net):
        self.net = net.copy()
        self.label = "loopnet CPU"

    def set_params(self, params):
        self.net.params[...] = params

    def gradient(self, X, Y):
        return self.net.gradient(X, Y)

    def train(self, X, Y, order, m, eta):
        start = time.perf_counter()
        self.net.fit(X, Y, epochs=1, batch_size=m, eta=eta, order=order, monitor=False)
        self.wall = time.perf_counter() - start
        return self.wall

    def weights(self):
        return list(self.net.weights) + list(self.net.biases)


# ------------------------------------------------------------ validation
def rel_err(got, want):
    """max over arrays of max|got − want| / max|want|."""
    import numpy as np
    worst = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(g - w))) / max(float(np.max(np.abs(w))), 1e-300))
    return worst


def validate(row, sc, net, X, Y, n_batches, dtype, reset):
    """Errors of the first mini-batch's gradient and of the weights after n_batches, vs reference."""
    import numpy as np

    from loopnet import reference as ref
    ws = [w.astype(np.float64) for w in net.weights]
    bs = [b.astype(np.float64) for b in net.biases]
    m = sc.m
    gw, gb = ref.gradient(ws, bs, X[:m].astype(np.float64), Y[:m].astype(np.float64),
                          "sigmoid", "sigmoid", "quadratic")
    got = row.gradient(X[:m], Y[:m])
    e_grad = rel_err(list(got[0]) + list(got[1]), gw + gb)
    order = np.arange(n_batches * m, dtype=np.int64)
    rw, rb = ref.train_sgd(ws, bs, X.astype(np.float64), Y.astype(np.float64), order, m, sc.eta,
                           "sigmoid", "sigmoid", "quadratic")
    row.train(X, Y, order, m, sc.eta)
    e_w = rel_err(row.weights(), rw + rb)
    reset(row)
    return e_grad, e_w, e_grad <= TOL[dtype] and e_w <= TOL[dtype]


# --------------------------------------------------------------- machine
def gpu_header(sim):
    import numba
    import numpy as np
    lines = []
    if sim:
        name = "simulated"
        lines.append("- GPU: none: Numba's CUDA simulator on the CPU (NUMBA_ENABLE_CUDASIM=1); "
                     "these numbers test the script, they time nothing useful")
    else:
        from numba import cuda
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        sms = dev.MULTIPROCESSOR_COUNT
        lines.append(f"- GPU: {name}, compute capability {dev.compute_capability}, {sms} SMs")
        try:
            lines.append(f"- CUDA driver {cuda.cudadrv.driver.driver.get_version()}, "
                         f"runtime {cuda.runtime.get_version()}")
        except Exception:  # noqa: BLE001
            pass
    try:
        import numba_cuda
        nc = numba_cuda.__version__
    except Exception:  # noqa: BLE001
        nc = "?"
    try:
        import torch
        tv = f"{torch.__version__} (CUDA {torch.version.cuda})"
    except Exception:  # noqa: BLE001
        tv = "not installed"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:  # noqa: BLE001
        pass
    lines.append(f"- host: {cpu}, {os.cpu_count()} logical CPUs, load {os.getloadavg()[0]:.2f}")
    lines.append(f"- Python {sys.version.split()[0]}, NumPy {np.__version__}, Numba {numba.__version__}, "
                 f"numba-cuda {nc}, PyTorch {tv}")
    lines.append(f"- date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    return name, lines


def slug(name):
    import re
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


# ------------------------------------------------------------------ main
def run(args):
    if args.simulate:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numpy as np

    import loopnet
    from _harness import SCENARIOS, flops_per_epoch, load_data
    from numba import cuda
    sim = args.simulate
    if not sim and not cuda.is_available():
        sys.exit("no CUDA GPU here (numba.cuda.is_available() is False); "
                 "use --simulate to test the script on the CPU")
    try:
        import torch
        tdev = "cuda" if not sim and torch.cuda.is_available() else ("cpu" if sim else None)
    except ImportError:
        torch, tdev = None, None
    name, header = gpu_header(sim)
    out = Path(args.out) if args.out else PROFILES_DIR / "results"
    if out.is_dir():
        out = out / f"gpu-{slug(name)}.md"
    print("\n".join(header), flush=True)
    table = []
    began = time.perf_counter()
    for key in args.workloads.split(","):
        sc = SCENARIOS[key]
        sizes = TINY[key] if sim else sc.sizes
        m = min(sc.m, 4) if sim else sc.m
        sc = type(sc)(sc.key, sizes, m, sc.eta)
        for dtype in args.dtypes.split(","):
            if time.perf_counter() - began > args.budget_s:
                print(f"  {key} {dtype}: skipped, past --budget-s {args.budget_s:.0f} s",
                      flush=True)
                continue
            X, Y, _, source = load_data(args.n, sizes[0], sizes[-1], dtype)
            net = loopnet.Net(sizes, dtype=dtype, seed=0)
            p0 = net.params.copy()
            ws0 = [w.copy() for w in net.weights]
            bs0 = [b.copy() for b in net.biases]
            rows = [LoopnetCuda(net, "cooperative", sim)]
            if not args.no_phases:
                rows.append(LoopnetCuda(net, "phases", sim))
            if tdev is not None:
                rows.append(Torch(sizes, dtype, tdev, compiled=False))
                if key in args.compile.split(","):
                    rows.append(Torch(sizes, dtype, tdev, compiled=True))
            if not args.no_cpu:
                rows.append(LoopnetCPU(net))

            def reset(row):
                if isinstance(row, Torch):
                    row.set_params(ws0, bs0)
                else:
                    row.set_params(p0)

            ok_rows, results = [], {}
            for row in rows:
                reset(row)
                try:
                    e_g, e_w, ok = validate(row, sc, net, X, Y, args.val_batches, dtype, reset)
                except Exception as exc:  # noqa: BLE001 - report, do not time
                    print(f"  {key} {dtype} {row.label}: FAILED to run: {exc!r}", flush=True)
                    results[row.label] = {"error": f"{type(exc).__name__}"}
                    continue
                results[row.label] = {"e_grad": e_g, "e_w": e_w}
                print(f"  {key} {dtype} {row.label}: gradient err {e_g:.1e}, weights err "
                      f"{e_w:.1e} {'ok' if ok else 'FAILED validation, not timed'}", flush=True)
                if ok:
                    ok_rows.append(row)
            # Weights after the validation batches, loopnet.cuda against the CPU engine.
            cuda_vs_cpu = None
            rng = np.random.default_rng(1)
            orders = [rng.permutation(len(X)).astype(np.int64) for _ in range(args.repeats + 1)]
            times = {r.label: [] for r in ok_rows}
            walls = {r.label: [] for r in ok_rows}
            for rep, order in enumerate(orders):     # rep 0 is the warm-up (compiles)
                for row in list(ok_rows):
                    reset(row)
                    try:
                        s = row.train(X, Y, order, m, sc.eta)
                    except Exception as exc:  # noqa: BLE001 - report the row, keep the others
                        print(f"  {key} {dtype} {row.label}: FAILED while timing: {exc!r}",
                              flush=True)
                        results[row.label] = {"error": f"{type(exc).__name__} while timing"}
                        ok_rows.remove(row)
                        del times[row.label], walls[row.label]
                        continue
                    if rep == 0:
                        results[row.label]["warmup"] = row.wall
                    else:
                        times[row.label].append(s)
                        walls[row.label].append(row.wall)
            by = {r.label: r for r in ok_rows}
            cu, cpu = by.get("loopnet.cuda epoch"), by.get("loopnet CPU")
            if cu is not None and cpu is not None:     # both just trained epoch `orders[-1]`
                cuda_vs_cpu = rel_err(cu.weights(), cpu.weights())
            flops = flops_per_epoch(sizes, m, len(X))
            eager = np.median(times.get(f"PyTorch {'CUDA' if not sim else 'CPU (simulate)'} eager",
                                        [np.nan])) if times else np.nan
            for label, ts in times.items():
                med, best = float(np.median(ts)), float(np.min(ts))
                r = results[label]
                r.update(median=med, best=best, wall=float(np.median(walls[label])),
                         gflops=flops / med / 1e9, vs_eager=eager / med)
            table.append((sc, dtype, len(X), source, results, cuda_vs_cpu))
            write(out, header, table, sim, args)
            print(f"  [{time.perf_counter() - began:.0f} s so far]", flush=True)
    print(render(header, table, sim, args))
    print(f"written to {out}")


def fmt(x, digits=3):
    import math
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def render(header, table, sim, args):
    lines = ["# loopnet on the GPU" + (" (SIMULATED: not a timing)" if sim else ""), ""]
    lines += header
    lines += ["", f"Epochs of {args.n:,} examples (or the data available), sigmoid + quadratic "
              f"cost, η = 3; median of {args.repeats} epochs after one warm-up epoch, rows "
              "interleaved; errors are max relative errors against loopnet.reference "
              "(gradient of the first mini-batch / weights after "
              f"{args.val_batches} mini-batches).", ""]
    lines += ["| workload | dtype | row | epoch s (median) | best s | call wall s | "
              "GFLOP/s | × PyTorch eager | warm-up s | grad err | weights err |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc, dtype, n, source, results, cuda_vs_cpu in table:
        for label, r in results.items():
            if "error" in r:
                lines.append(f"| {sc.title} | {dtype} | {label} | failed: {r['error']} "
                             "| | | | | | | |")
                continue
            lines.append(
                f"| {sc.title} | {dtype} | {label} | {fmt(r.get('median'))} | "
                f"{fmt(r.get('best'))} | {fmt(r.get('wall'))} | {fmt(r.get('gflops'))} | "
                f"{fmt(r.get('vs_eager'))} | {fmt(r.get('warmup'))} | "
                f"{r['e_grad']:.1e} | {r['e_w']:.1e} |")
        if cuda_vs_cpu is not None:
            lines.append(f"| {sc.title} | {dtype} | loopnet.cuda vs loopnet CPU weights after "
                         f"the last timed epoch: max rel. difference {cuda_vs_cpu:.1e} "
                         "| | | | | | | | |")
    lines += ["", "Data: " + "; ".join(sorted({t[3] for t in table})), ""]
    lines += targets(table, sim)
    return "\n".join(lines)


MUST = {"w1": 10.0, "w3": 1.0, "w5": 1.0}   # issue 19: × PyTorch CUDA eager, epoch time


def targets(table, sim):
    """Issue 19's must targets, read off this run's table (errors ≤ tolerance; speed ratios)."""
    out = ["## Targets (issue 19), from this run", "",
           "| workload | dtype | errors ≤ tol | × eager (must) | × loopnet CPU (goal > 1 for W1) |",
           "|---|---|---|---|---|"]
    for sc, dtype, n, source, results, _ in table:
        cu = results.get("loopnet.cuda epoch", {})
        eager = next((r for k, r in results.items() if k.endswith("eager")), {})
        cpu = results.get("loopnet CPU", {})
        ok = "e_w" in cu and cu["e_grad"] <= TOL[dtype] and cu["e_w"] <= TOL[dtype]
        ratio = cu.get("vs_eager")
        need = MUST.get(sc.key)
        verdict = "–" if ratio is None else f"{ratio:.3g}×" + (
            "" if need is None else (" met" if ratio >= need else " NOT met") + f" (≥ {need:g}×)")
        vs_cpu = (f"{cpu['median'] / cu['median']:.3g}×" if "median" in cpu and "median" in cu
                  else "–")
        out.append(f"| {sc.title} | {dtype} | {'yes' if ok else 'NO'} | {verdict} | {vs_cpu} |")
    if sim:
        out += ["", "(simulated: the ratios mean nothing)"]
    return out + [""]


def write(out, header, table, sim, args):
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(header, table, sim, args))


if __name__ == "__main__":
    run(parse(sys.argv[1:]))
