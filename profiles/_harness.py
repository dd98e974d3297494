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
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROFILES_DIR = Path(__file__).resolve().parent
REPO_DIR = PROFILES_DIR.parent
RESULTS_DIR = PROFILES_DIR / "results"
FASHION_DIR = Path(os.environ.get("LOOPNET_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))

if importlib.util.find_spec("loopnet") is None:  # `python profiles/w1.py` from an uninstalled checkout
    sys.path.insert(0, str(REPO_DIR))

TOL = {"float64": 1e-10, "float32": 1e-5}  # max relative error allowed in validation


def _optional(name):
    try:
        return __import__(name)
    except Exception:  # noqa: BLE001 - any import failure means "not installed"
        return None


# ---------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    sizes: list
    m: int
    eta: float = 3.0
    activation: str = "sigmoid"
    output: str = "sigmoid"
    cost: str = "quadratic"
    note: str = ""

    @property
    def title(self):
        return f"{self.key.upper()} {self.sizes}, m = {self.m}"


SCENARIOS = {
    "w1": Scenario("w1", [784, 30, 10], 10, note="Nielsen chapter 1"),
    "w2": Scenario("w2", [784, 100, 10], 10),
    "w3": Scenario("w3", [784, 100, 10], 100),
    "w4": Scenario("w4", [784, 64, 64, 64, 64, 10], 10, note="deep and narrow"),
    "w5": Scenario("w5", [784, 1000, 10], 100, note="wide"),
}


def flops_per_example(sizes, m):
    """FLOPs per example by phase, counted as in the module docstring."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    mac = sum(a * b for a, b in pairs)
    params = sum(a * b + b for a, b in pairs)
    return {
        "forward": 2 * mac,
        "hidden": 2 * sum(a * b for a, b in pairs[1:]),
        "gradient": 2 * mac,
        "update": 2 * params / m,
    }


def flops_per_epoch(sizes, m, n):
    return n * sum(flops_per_example(sizes, m).values())


# ---------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "fma", "avx512f") if f in flags]
    except OSError:
        pass
    return []


def n_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_slug():
    name = re.sub(r"\(.*?\)|processor|cpu|@.*", "", cpu_model(), flags=re.I)
    name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "machine"
    return f"{name}-{n_cores()}c"


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("numba", "torch", "sklearn"):
        lib = _optional(mod)
        out[mod] = getattr(lib, "__version__", None) if lib else None
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            out["blas"] = f"{blas[0]['internal_api']} {blas[0].get('version', '')}".strip()
            if blas[0].get("architecture"):
                out["blas"] += f", {blas[0]['architecture']} kernels"
    except Exception:  # noqa: BLE001
        pass
    return out


class blas_threads:
    """Context manager limiting NumPy's BLAS to ``n`` threads (threadpoolctl if installed)."""

    def __init__(self, n):
        self.n = n
        self._ctl = None

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits

            self._ctl = threadpool_limits(limits=self.n, user_api="blas")
        except Exception:  # noqa: BLE001
            self._ctl = None
        return self

    def __exit__(self, *exc):
        if self._ctl is not None:
            self._ctl.restore_original_limits()


def matmul_gflops(dtype, threads, n=2048, repeats=3):
    """Best GFLOP/s of an n×n matmul (2n³ FLOPs) with BLAS limited to ``threads``."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    best = best_cpu = math.inf
    with blas_threads(threads):
        np.matmul(a, b, out=c)  # warm-up: thread pool, page faults
        for _ in range(repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
    matmul_gflops.last_cpu = 2.0 * n**3 * threads / max(best_cpu, 1e-9) / 1e9  # per-thread CPU time basis
    return 2.0 * n**3 / best / 1e9


def bandwidth_gbs(threads, n_bytes=128 << 20, repeats=3):
    """STREAM-like add c = a + b on float64 arrays; counts 3 × n_bytes moved per pass.

    With ``threads`` > 1 the arrays are split into contiguous slices, one per
    Python thread (NumPy ufuncs release the GIL), so every core streams its own part.
    """
    n = n_bytes // 8
    a = np.ones(n)
    b = np.ones(n)
    c = np.zeros(n)
    bounds = np.linspace(0, n, threads + 1).astype(int)

    def part(i):
        s = slice(bounds[i], bounds[i + 1])
        np.add(a[s], b[s], out=c[s])

    def once():
        if threads == 1:
            part(0)
            return
        ts = [threading.Thread(target=part, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    once()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t0)
    return 3.0 * n * 8 / best / 1e9


def measure_peaks(quick=False):
    """Peaks of this machine measured now: the denominators of every '% peak'."""
    cores = n_cores()
    n = 256 if quick else 2048
    reps = 1 if quick else 3
    peaks = {"cores": cores, "matmul_n": n, "repeats": reps, "bw_mib": None, "load_before": _loadavg()}
    for dt in ("float64", "float32"):
        peaks[dt] = {1: matmul_gflops(dt, 1, n, reps)}
        peaks[dt + "_cpu"] = matmul_gflops.last_cpu
        peaks[dt][cores] = matmul_gflops(dt, cores, n, reps) if cores > 1 else peaks[dt][1]
    nb = (8 << 20) if quick else (128 << 20)
    peaks["bw_mib"] = nb >> 20
    peaks["bandwidth"] = {1: bandwidth_gbs(1, nb, reps)}
    peaks["bandwidth"][cores] = bandwidth_gbs(cores, nb, reps) if cores > 1 else peaks["bandwidth"][1]
    return peaks


def _loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def numba_threads():
    numba = _optional("numba")
    try:
        return numba.config.NUMBA_NUM_THREADS
    except Exception:  # noqa: BLE001
        return n_cores()


def machine_header(peaks):
    v = versions()
    cores = peaks["cores"]
    lines = [
        f"- **CPU**: {cpu_model()} ({', '.join(cpu_flags()) or 'no AVX2 flag'}), "
        f"{cores} cores available, Numba threads {numba_threads()}, {platform.system()} {platform.machine()}",
        f"- **Versions**: Python {v['python']}, NumPy {v['numpy']} ({v.get('blas', 'BLAS ?')}), "
        f"Numba {v['numba']}, PyTorch {v['torch'] or 'not installed'}, "
        f"scikit-learn {v['sklearn'] or 'not installed'}",
        f"- **Date**: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- **Measured peak** ({peaks['matmul_n']}² NumPy matmul, i.e. what this BLAS reaches, not the "
        f"silicon's FMA limit; best of {peaks['repeats']}): float64 {peaks['float64'][1]:.1f} GFLOP/s on 1 thread, "
        f"{peaks['float64'][cores]:.1f} on {cores}; float32 {peaks['float32'][1]:.1f} on 1, "
        f"{peaks['float32'][cores]:.1f} on {cores} (1 thread by CPU time instead of wall: float64 "
        f"{peaks.get('float64_cpu', 0):.1f}, float32 {peaks.get('float32_cpu', 0):.1f})",
        f"- **Memory bandwidth** (c = a + b, 3 × {peaks['bw_mib']} MiB moved): {peaks['bandwidth'][1]:.1f} GB/s on 1 thread, "
        f"{peaks['bandwidth'][cores]:.1f} on {cores}",
    ]
    load = peaks.get("load_before")
    if load is not None:
        busy = " — **busier than the cores: wall times are inflated; compare rows, and CPU times**" \
            if load > cores else ""
        lines.append(f"- **Machine load** (1-min load average when the peaks were measured): {load:.1f} "
                     f"on {cores} cores{busy}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


from loopnet.idx import read_idx  # noqa: E402  (the one IDX parser)


def load_data(n, n_in, n_out, dtype="float64", seed=0):
    """(X, Y one-hot, labels, source): Fashion-MNIST when the shape fits and the files exist,
    else synthetic data of the same shape (uniform pixels, labels from a random linear teacher)."""
    img = FASHION_DIR / "train-images-idx3-ubyte.gz"
    lab = FASHION_DIR / "train-labels-idx1-ubyte.gz"
    if n_in == 784 and n_out == 10 and img.exists() and lab.exists():
        images = read_idx(img).reshape(-1, 784)
        labels = read_idx(lab).astype(np.int64)
        if n <= len(images):
            X = (images[:n] / 255.0).astype(dtype)
            labels = labels[:n]
            source = f"Fashion-MNIST (first {n:,} training images)"
            return X, one_hot(labels, n_out, dtype), labels, source
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_in)).astype(dtype)
    labels = np.argmax(X @ rng.standard_normal((n_in, n_out)), axis=1)
    return X, one_hot(labels, n_out, dtype), labels, f"synthetic ({n:,} × {n_in}, uniform [0, 1))"


def one_hot(labels, n_classes, dtype="float64"):
    Y = np.zeros((len(labels), n_classes), dtype)
    Y[np.arange(len(labels)), labels] = 1
    return Y


def init_params(sizes, dtype, seed=0):
    """network2's default initialisation: w ~ N(0, 1)/sqrt(n_in), b ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((b, a)) / np.sqrt(a)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.standard_normal(b).astype(dtype) for b in sizes[1:]]
    return ws, bs


# ---------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------


def ref_gradient(sc, ws, bs, X, Y, output=None, cost=None):
    from loopnet import reference

    ws = [np.asarray(w, np.float64) for w in ws]
    bs = [np.asarray(b, np.float64) for b in bs]
    return reference.gradient(ws, bs, np.asarray(X, np.float64), np.asarray(Y, np.float64),
                              sc.activation, output or sc.output, cost or sc.cost)


def ref_sgd(sc, ws, bs, X, Y, n_batches, output=None, cost=None):
    """Plain SGD driven by the reference gradient: weights after ``n_batches`` mini-batches in order."""
    ws = [np.array(w, np.float64) for w in ws]
    bs = [np.array(b, np.float64) for b in bs]
    for k in range(n_batches):
        sl = slice(k * sc.m, (k + 1) * sc.m)
        gw, gb = ref_gradient(sc, ws, bs, X[sl], Y[sl], output, cost)
        for w, g in zip(ws, gw):
            w -= sc.eta * g
        for b, g in zip(bs, gb):
            b -= sc.eta * g
    return ws, bs


def rel_err(got, want):
    """max over arrays of max|got - want| / max|want|  (a relative error that a missing 1/m cannot hide in)."""
    worst = 0.0
    for g, w in zip(got, want):
        g = np.asarray(g, np.float64)
        w = np.asarray(w, np.float64)
        if g.shape != w.shape:
            return math.inf
        scale = max(float(np.max(np.abs(w))), 1e-300)
        worst = max(worst, float(np.max(np.abs(g - w))) / scale)
    return worst


# ---------------------------------------------------------------------------
# implementations: set(ws, bs); gradient(X, Y) -> (gw, gb) or None; train(X, Y, order); get()
# ---------------------------------------------------------------------------


def _sigmoid(z):
    with np.errstate(over="ignore"):  # e^{-z} = inf for z << 0 gives σ = 0, the right limit
        return 1.0 / (1.0 + np.exp(-z))


class Impl:
    label = "?"
    threads = None  # int or None for "library default"
    validates = "gradient after 1 mini-batch, weights after a few"
    fraction = 1.0  # share of the epoch timed (then scaled); < 1 for the slow per-example code
    output = None  # None: the scenario's output/cost; else (output, cost) that this library fixes

    def __init__(self, sc, dtype):
        self.sc = sc
        self.dtype = np.dtype(dtype)

    def threads_ctx(self):
        return _nullctx()

    def gradient(self, X, Y):
        return None


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class NumpyMatrix(Impl):
    """Vectorised NumPy, the mini-batch as a matrix: A^l = σ(A^{l-1} W^T + b), one BLAS call per product."""

    def __init__(self, sc, dtype, threads=None):
        super().__init__(sc, dtype)
        self.threads = threads
        self.label = "NumPy matrix form" + (f", BLAS {threads} thread" if threads else "")

    def threads_ctx(self):
        return blas_threads(self.threads) if self.threads else _nullctx()

    def set(self, ws, bs):
        self.w = [np.array(w, self.dtype) for w in ws]
        self.b = [np.array(b, self.dtype) for b in bs]

    def get(self):
        return self.w, self.b

    def _grad_sum(self, X, Y):
        acts = [X]
        a = X
        for w, b in zip(self.w, self.b):
            z = a @ w.T
            z += b
            a = _sigmoid(z)
            acts.append(a)
        a = acts[-1]
        delta = (a - Y) * a * (1 - a)  # quadratic cost, sigmoid output (BP1)
        gw = [None] * len(self.w)
        gb = [None] * len(self.w)
        for l in range(len(self.w) - 1, -1, -1):
            gw[l] = delta.T @ acts[l]  # BP4 summed over the batch
            gb[l] = delta.sum(axis=0)  # BP3
            if l:
                a = acts[l]
                delta = (delta @ self.w[l]) * a * (1 - a)  # BP2
        return gw, gb

    def gradient(self, X, Y):
        gw, gb = self._grad_sum(X.astype(self.dtype), Y.astype(self.dtype))
        return [g / len(X) for g in gw], [g / len(X) for g in gb]

    def train(self, X, Y, order):
        m, scale = self.sc.m, self.dtype.type(self.sc.eta / self.sc.m)
        for k in range(0, len(order), m):
            idx = order[k : k + m]
            gw, gb = self._grad_sum(X[idx], Y[idx])
            for w, g in zip(self.w, gw):
                w -= scale * g
            for b, g in zip(self.b, gb):
                b -= scale * g


class NielsenStyle(NumpyMatrix):
    """Per-example NumPy with column vectors, as in Nielsen's network.py (written here from the
    equations, not copied): backprop one example at a time, sum the nablas, update per mini-batch."""

    def __init__(self, sc, dtype, fraction=0.1):
        Impl.__init__(self, sc, dtype)
        self.label = "Nielsen-style per-example NumPy"
        self.fraction = fraction

    def threads_ctx(self):
        return _nullctx()

    def set(self, ws, bs):
        self.w = [np.array(w, self.dtype) for w in ws]
        self.b = [np.array(b, self.dtype)[:, None] for b in bs]

    def get(self):
        return self.w, [b[:, 0] for b in self.b]

    def _backprop(self, x, y):
        a = x
        acts = [a]
        zs = []
        for w, b in zip(self.w, self.b):
            z = np.dot(w, a) + b
            zs.append(z)
            a = _sigmoid(z)
            acts.append(a)
        sp = _sigmoid(zs[-1]) * (1 - _sigmoid(zs[-1]))
        delta = (acts[-1] - y) * sp
        nw = [None] * len(self.w)
        nb = [None] * len(self.w)
        nw[-1] = np.dot(delta, acts[-2].T)
        nb[-1] = delta
        for l in range(2, len(self.w) + 1):
            sp = _sigmoid(zs[-l]) * (1 - _sigmoid(zs[-l]))
            delta = np.dot(self.w[-l + 1].T, delta) * sp
            nw[-l] = np.dot(delta, acts[-l - 1].T)
            nb[-l] = delta
        return nw, nb

    def _batch_sum(self, X, Y):
        nw = [np.zeros_like(w) for w in self.w]
        nb = [np.zeros_like(b) for b in self.b]
        for x, y in zip(X, Y):
            dw, db = self._backprop(x[:, None], y[:, None])
            nw = [a + d for a, d in zip(nw, dw)]
            nb = [a + d for a, d in zip(nb, db)]
        return nw, nb

    def gradient(self, X, Y):
        nw, nb = self._batch_sum(X.astype(self.dtype), Y.astype(self.dtype))
        return [g / len(X) for g in nw], [g[:, 0] / len(X) for g in nb]

    def train(self, X, Y, order):
        m = self.sc.m
        for k in range(0, len(order), m):
            idx = order[k : k + m]
            nw, nb = self._batch_sum(X[idx], Y[idx])
            self.w = [w - (self.sc.eta / m) * g for w, g in zip(self.w, nw)]
            self.b = [b - (self.sc.eta / m) * g for b, g in zip(self.b, nb)]


class Loopnet(Impl):
    """loopnet.Net.fit with ``order=`` (one epoch, no monitoring), Numba limited to ``threads``."""

    def __init__(self, sc, dtype, threads):
        super().__init__(sc, dtype)
        self.threads = threads
        self.label = f"loopnet, {threads} thread{'s' if threads > 1 else ''}"
        import loopnet

        self.net = loopnet.Net(sc.sizes, activation=sc.activation, output=sc.output, cost=sc.cost,
                               dtype=self.dtype.name, seed=0)

    def threads_ctx(self):
        return numba_threads_ctx(self.threads)

    def set(self, ws, bs):
        self.net.weights = [np.array(w, self.dtype) for w in ws]
        self.net.biases = [np.array(b, self.dtype) for b in bs]

    def get(self):
        return [w.copy() for w in self.net.weights], [b.copy() for b in self.net.biases]

    def gradient(self, X, Y):
        with self.threads_ctx():
            gw, gb = self.net.gradient(X.astype(self.dtype), Y.astype(self.dtype))
        return gw, gb

    def train(self, X, Y, order):
        if len(order) < len(X):  # a partial epoch (warm-up, validation): hand fit exactly those rows
            X, Y, order = X[order], Y[order], np.arange(len(order))
        self.net.fit(X, Y, epochs=1, batch_size=self.sc.m, eta=self.sc.eta, order=order, monitor=False)


class numba_threads_ctx:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import numba

        self.old = numba.get_num_threads()
        numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc):
        import numba

        numba.set_num_threads(self.old)


class Torch(Impl):
    """PyTorch CPU eager, the way a user writes it: nn.Sequential, autograd, optim.SGD."""

    def __init__(self, sc, dtype, threads):
        super().__init__(sc, dtype)
        import torch

        self.torch = torch
        self.threads = threads
        self.label = f"PyTorch CPU eager, {threads} thread{'s' if threads > 1 else ''}"
        self.tdtype = {"float64": torch.float64, "float32": torch.float32}[self.dtype.name]
        layers = []
        for a, b in zip(sc.sizes[:-1], sc.sizes[1:]):
            layers += [torch.nn.Linear(a, b, dtype=self.tdtype), torch.nn.Sigmoid()]
        self.model = torch.nn.Sequential(*layers)
        self.linears = [l for l in self.model if isinstance(l, torch.nn.Linear)]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=sc.eta)

    def threads_ctx(self):
        impl = self

        class ctx:
            def __enter__(self):
                self.old = impl.torch.get_num_threads()
                impl.torch.set_num_threads(impl.threads)

            def __exit__(self, *exc):
                impl.torch.set_num_threads(self.old)

        return ctx()

    def set(self, ws, bs):
        with self.torch.no_grad():
            for lin, w, b in zip(self.linears, ws, bs):
                lin.weight.copy_(self.torch.from_numpy(np.asarray(w, self.dtype)))
                lin.bias.copy_(self.torch.from_numpy(np.asarray(b, self.dtype)))

    def get(self):
        return ([l.weight.detach().numpy().copy() for l in self.linears],
                [l.bias.detach().numpy().copy() for l in self.linears])

    def _loss(self, xb, yb):
        out = self.model(xb)
        return 0.5 * ((out - yb) ** 2).sum(dim=1).mean()  # quadratic cost, averaged over the batch

    def gradient(self, X, Y):
        t = self.torch
        with self.threads_ctx():
            self.opt.zero_grad()
            self._loss(t.from_numpy(X.astype(self.dtype)), t.from_numpy(Y.astype(self.dtype))).backward()
        return ([l.weight.grad.numpy().copy() for l in self.linears],
                [l.bias.grad.numpy().copy() for l in self.linears])

    def train(self, X, Y, order):
        t = self.torch
        Xt, Yt, idx_all = t.from_numpy(X), t.from_numpy(Y), t.from_numpy(order)
        m = self.sc.m
        for k in range(0, len(order), m):
            idx = idx_all[k : k + m]
            self.opt.zero_grad()
            self._loss(Xt[idx], Yt[idx]).backward()
            self.opt.step()


class Sklearn(Impl):
    """scikit-learn MLPClassifier(solver='sgd'), constant learning rate, no momentum, no L2.

    Its output layer is softmax with log-loss whatever we ask, so it is validated against the
    reference with output='softmax', cost='log_likelihood' (same shapes and FLOPs, other loss).
    The gradient is read back from one partial_fit step: g = (w_before - w_after) / η."""

    output = ("softmax", "log_likelihood")

    def __init__(self, sc, dtype):
        super().__init__(sc, dtype)
        from sklearn.neural_network import MLPClassifier

        self.label = "scikit-learn MLPClassifier (sgd)"
        self.validates = "weights after 1 and after a few mini-batches (softmax + log-loss)"
        self.clf = MLPClassifier(hidden_layer_sizes=tuple(sc.sizes[1:-1]), activation="logistic",
                                 solver="sgd", batch_size=sc.m, learning_rate="constant",
                                 learning_rate_init=sc.eta, momentum=0.0, nesterovs_momentum=False,
                                 alpha=0.0, shuffle=False, random_state=0)
        self.classes = np.arange(sc.sizes[-1])
        X0 = np.zeros((sc.m, sc.sizes[0]), self.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(X0, np.arange(sc.m) % sc.sizes[-1], classes=self.classes)

    def set(self, ws, bs):
        self.clf.coefs_ = [np.array(w, self.dtype).T.copy() for w in ws]  # sklearn stores (fan_in, fan_out)
        self.clf.intercepts_ = [np.array(b, self.dtype) for b in bs]

    def get(self):
        return [c.T.copy() for c in self.clf.coefs_], [b.copy() for b in self.clf.intercepts_]

    def gradient(self, X, Y):
        if self.dtype == np.float32:
            # (w0 - w1)/η loses ~eps32·|w|/|η g| ≈ 1e-4 to rounding: not a test of sklearn;
            # float32 is validated by the weights after the mini-batches only
            return None
        w0, b0 = self.get()
        self._fit(X.astype(self.dtype), Y.argmax(axis=1))
        w1, b1 = self.get()
        self.set(w0, b0)
        eta = self.sc.eta
        return [(a - b) / eta for a, b in zip(w0, w1)], [(a - b) / eta for a, b in zip(b0, b1)]

    def _fit(self, X, labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(X, labels)

    def train(self, X, Y, order):
        self._fit(X[order], Y[order].argmax(axis=1))  # partial_fit = one epoch in batches of m


def ladder(sc, dtype, cores, want=None):
    """The implementations timed for one scenario, in table order (those installed)."""
    rows = [("numpy", lambda: NumpyMatrix(sc, dtype)),
            ("numpy1", lambda: NumpyMatrix(sc, dtype, threads=1)),
            ("nielsen", lambda: NielsenStyle(sc, dtype)),
            ("loopnet1", lambda: Loopnet(sc, dtype, 1))]
    if cores > 1:
        rows.append(("loopnet", lambda: Loopnet(sc, dtype, cores)))
    if _optional("torch") is not None:
        rows.append(("torch1", lambda: Torch(sc, dtype, 1)))
        if cores > 1:
            rows.append(("torch", lambda: Torch(sc, dtype, cores)))
    if _optional("sklearn") is not None:
        rows.append(("sklearn", lambda: Sklearn(sc, dtype)))
    out = []
    for key, make in rows:
        if want and key not in want:
            continue
        out.append((key, make()))
    return out


# ---------------------------------------------------------------------------
# validation, timing, compile
# ---------------------------------------------------------------------------


def validate(impl, sc, X, Y, ws, bs, n_batches=3):
    """(gradient rel err, weights rel err) against the reference; None where not measurable."""
    n_batches = max(1, min(n_batches, len(X) // sc.m))
    output, cost = impl.output or (sc.output, sc.cost)
    Xv, Yv = X[: n_batches * sc.m].astype(np.float64), Y[: n_batches * sc.m].astype(np.float64)
    impl.set(ws, bs)
    g = impl.gradient(Xv[: sc.m], Yv[: sc.m])
    g_err = None
    if g is not None:
        rw, rb = ref_gradient(sc, ws, bs, Xv[: sc.m], Yv[: sc.m], output, cost)
        g_err = rel_err(list(g[0]) + list(g[1]), rw + rb)
    impl.set(ws, bs)
    with impl.threads_ctx():
        impl.train(X[: n_batches * sc.m], Y[: n_batches * sc.m], np.arange(n_batches * sc.m))
    got_w, got_b = impl.get()
    rw, rb = ref_sgd(sc, ws, bs, Xv, Yv, n_batches, output, cost)
    w_err = rel_err(list(got_w) + list(got_b), rw + rb)
    return g_err, w_err


def time_ladder(impls, X, Y, ws, bs, repeats, seed=1, warmup_examples=2000, log=print):
    """Best seconds per epoch of len(X) examples for each impl, epochs interleaved round-robin.

    Each impl starts from the same weights, runs a warm-up on ``warmup_examples``, then
    ``repeats`` epochs (each a fresh permutation shared by all impls).  Impls with
    ``fraction`` < 1 time only that share of each epoch's mini-batches and are scaled up.
    Returns ({key: best wall s}, {key: best process-CPU s}, {key: [wall s, ...]})."""
    n = len(X)
    rng = np.random.default_rng(seed)
    wall = {key: [] for key, _ in impls}
    cpu = {key: [] for key, _ in impls}
    for key, impl in impls:
        impl.set(ws, bs)
        with impl.threads_ctx():
            w = min(warmup_examples, n)
            impl.train(X, Y, np.arange(w - w % impl.sc.m))
    for r in range(repeats):
        order = rng.permutation(n)
        for key, impl in impls:
            n_run = n if impl.fraction >= 1 else max(impl.sc.m, int(n * impl.fraction) // impl.sc.m * impl.sc.m)
            sub = order[:n_run]
            with impl.threads_ctx():
                time.sleep(0.02)  # let other libraries' spinning worker threads go idle
                c0 = time.process_time()
                t0 = time.perf_counter()
                impl.train(X, Y, sub)
                dt = time.perf_counter() - t0
                dc = time.process_time() - c0
            wall[key].append(dt * n / n_run)
            cpu[key].append(dc * n / n_run)
        log(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in wall.items()))
    return {k: min(v) for k, v in wall.items()}, {k: min(v) for k, v in cpu.items()}, wall


_COMPILE_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import loopnet
t1 = time.perf_counter()
sizes, m, dtype = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.random((2 * m, sizes[0])).astype(dtype)
Y = np.zeros((2 * m, sizes[-1]), dtype); Y[np.arange(2 * m), np.arange(2 * m) % sizes[-1]] = 1
tw = time.perf_counter()
warm = loopnet.warmup(dtype) if hasattr(loopnet, "warmup") else None  # every compiled path, if offered
tw = time.perf_counter() - tw if warm is not None else None
net = loopnet.Net(sizes, dtype=dtype, seed=0)
net.fit(X, Y, epochs=1, batch_size=m, eta=0.1, monitor=False)
net.gradient(X[:m], Y[:m])
t2 = time.perf_counter()
net.fit(X, Y, epochs=1, batch_size=m, eta=0.1, monitor=False)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "again_s": t3 - t2, "warmup_s": tw}))
"""


def compile_times(sc, dtype, cache_dir=None):
    """Cold and cached start of loopnet, each in a fresh process, timed inside the child:
    import + loopnet.warmup(dtype) when it exists + Net + first fit of two mini-batches + first
    gradient.

    Cold means no compiled code anywhere: the child imports a fresh copy of the ``loopnet``
    package (without its ``__pycache__``) from a temporary folder, with ``NUMBA_CACHE_DIR``
    pointing at an empty folder too, so the result does not depend on where loopnet keeps its
    cache.  Cached is a second child on the same copy, after the first one filled the cache."""
    import loopnet

    out = {}
    with tempfile.TemporaryDirectory(prefix="loopnet-compile-probe-") as tmp:
        src = Path(loopnet.__file__).resolve().parent
        shutil.copytree(src, Path(tmp) / "pkg" / "loopnet",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"))
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir or str(Path(tmp) / "numba-cache"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tmp) / "pkg"), env.get("PYTHONPATH")]))
        for label in ("cold", "cached"):
            r = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET, json.dumps([sc.sizes, sc.m, dtype])],
                               env=env, capture_output=True, text=True, timeout=900, cwd=tmp)
            if r.returncode:
                raise RuntimeError(f"compile probe failed: {r.stderr.strip().splitlines()[-1:]}")
            out[label] = json.loads(r.stdout.strip().splitlines()[-1])
            out[label]["loopnet_from"] = "copy"
    return out


# ---------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------


def stamp():
    """' (HH:MM UTC, load L)': when a section was measured, for sections written by other scripts."""
    now = datetime.datetime.now(datetime.timezone.utc)
    load = _loadavg()
    return f" ({now:%Y-%m-%d %H:%M} UTC" + (f", load {load:.1f})" if load is not None else ")")


def fmt_s(s):
    if s is None or not math.isfinite(s):
        return "–"
    return f"{s:.3g}" if s < 10 else f"{s:.1f}"


def fmt_err(e):
    return "–" if e is None else f"{e:.1e}"


def scenario_table(res):
    """Markdown for one scenario run (res from run_scenario)."""
    sc, dtype, peaks, cores = res["scenario"], res["dtype"], res["peaks"], res["peaks"]["cores"]
    n, N = res["n"], res["epoch_n"]
    scale = N / n
    fl = flops_per_epoch(sc.sizes, sc.m, N)
    base = res["best"].get("numpy")
    measured = f"{N:,}-example epoch" + (f", measured on {n:,} examples and scaled × {scale:g}" if n != N else "")
    lines = [
        f"### {sc.title}, {dtype}" + (f" ({sc.note})" if sc.note else ""),
        "",
        f"{measured}; {res['source']}; η = {sc.eta}, {sc.activation} / {sc.output} / {sc.cost}. "
        f"{fl / N / 1e3:.1f} kFLOP per example, {fl / 1e9:.2f} GFLOP per epoch. "
        f"Steady state = best of {res['repeats']} epochs after a warm-up, epochs interleaved across rows.",
        "",
        "| implementation | threads | s / epoch | CPU s / epoch | examples / s | GFLOP/s | % of peak | vs NumPy | "
        "max rel err: gradient / weights |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, impl in res["impls"]:
        t = res["best"].get(key)
        err = res["errors"].get(key, (None, None))
        thr = impl.threads or cores
        if t is None:
            lines.append(f"| {impl.label} | {thr} | not timed: {res['failed'].get(key, 'failed')} | | | | | | "
                         f"{fmt_err(err[0])} / {fmt_err(err[1])} |")
            continue
        t = t * scale
        gf = fl / t / 1e9
        pk = peaks[dtype][thr if thr in peaks[dtype] else cores]
        note = f" ¹ ({impl.fraction:.0%})" if impl.fraction < 1 else ""
        ratio = f"{base * scale / t:.2f}×" if base else "–"
        lines.append(f"| {impl.label}{note} | {thr} | {fmt_s(t)} | {fmt_s(res['cpu'][key] * scale)} | "
                     f"{N / t:,.0f} | {gf:.3g} | {100 * gf / pk:.0f} % | {ratio} | "
                     f"{fmt_err(err[0])} / {fmt_err(err[1])} |")
    bw = peaks["bandwidth"]
    in_bytes = N * sc.sizes[0] * np.dtype(dtype).itemsize
    lines.append(f"| *hardware bound: FLOPs / peak* | 1 / {cores} | {fmt_s(fl / peaks[dtype][1] / 1e9)} / "
                 f"{fmt_s(fl / peaks[dtype][cores] / 1e9)} | | | | 100 % | | |")
    lines.append(f"| *memory bound: stream X once* | 1 / {cores} | {fmt_s(in_bytes / bw[1] / 1e9)} / "
                 f"{fmt_s(in_bytes / bw[cores] / 1e9)} | | | | | | |")
    lines.append("")
    notes = []
    if any(impl.fraction < 1 for _, impl in res["impls"]):
        notes.append("¹ timed on the given share of each epoch's mini-batches (the first ones of that "
                     "epoch's permutation) and scaled to the full epoch: the slow rows, to keep a run short.")
    notes.append("s / epoch = wall time; CPU s = CPU time of the whole process (best of the repeats): "
                 "≈ threads × wall when every thread computes or spins, < wall when the process waited "
                 "for a core held by another process. vs NumPy = NumPy matrix form "
                 "s/epoch ÷ this row's (> 1 is faster). % of peak = GFLOP/s ÷ the matmul peak measured on "
                 "the same thread count in this run.")
    if "sklearn" in res["best"]:
        notes.append("scikit-learn always uses a softmax output with log-loss; it is charged the same FLOPs.")
    if res.get("bit_identical") is not None:
        notes.append(f"loopnet weights after {res['bit_identical'][1]} mini-batches on 1 vs {cores} threads: "
                     + ("**bit-identical**." if res["bit_identical"][0] else "**DIFFER** (should be bit-identical)."))
    if res.get("compile"):
        c = res["compile"]
        notes.append(f"loopnet start (import + warmup() + first fit + first gradient, fresh process): cold compile "
                     f"**{c['cold']['import_s'] + c['cold']['first_s']:.2f} s** (empty NUMBA_CACHE_DIR), "
                     f"cached **{c['cached']['import_s'] + c['cached']['first_s']:.2f} s** "
                     f"(of which import {c['cached']['import_s']:.2f} s).")
    lines += [x + "  " for x in notes]
    return "\n".join(lines).rstrip() + "\n"


def update_results(path, header, sections):
    """Write ``header`` and replace/append each section {key: markdown} between markers in ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    begin_h, end_h = "<!-- machine -->", "<!-- /machine -->"
    if header is None:  # keep the header already there (or measure one for a new file)
        if begin_h in text:
            header = text.split(begin_h, 1)[1].split(end_h, 1)[0].strip("\n")
        else:
            header = machine_header(measure_peaks())
    head = f"# loopnet profiles on {machine_slug()}\n\n{begin_h}\n{header}\n{end_h}\n"
    if begin_h in text:
        text = head + text.split(end_h, 1)[1].lstrip("\n")
    else:
        text = head + "\n" + text
    for key, md in sections.items():
        b, e = f"<!-- begin {key} -->", f"<!-- end {key} -->"
        block = f"{b}\n{md.rstrip()}\n{e}"
        if b in text and e in text:
            pre, rest = text.split(b, 1)
            text = pre + block + rest.split(e, 1)[1]
        elif key == "summary":  # right under the machine header
            text = text.replace(end_h + "\n", end_h + "\n\n" + block + "\n", 1)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text.rstrip("\n") + "\n")
    return path


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
        outs = []
        for key in ("loopnet1", "loopnet"):
            impl = dict(ok)[key]
            impl.set(ws, bs)
            with impl.threads_ctx():
                impl.train(X[: nb * sc.m], Y[: nb * sc.m], np.arange(nb * sc.m))
            outs.append(impl.get())
        same = all(np.array_equal(a, b) for a, b in zip(outs[0][0] + outs[0][1], outs[1][0] + outs[1][1]))
        res["bit_identical"] = (same, nb)
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
    p.add_argument("--impls", help="comma list among numpy,numpy1,nielsen,loopnet1,loopnet,torch1,torch,sklearn")
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
