"""Machine facts: CPU model and flags, cores, library versions, measured matmul peaks and
memory bandwidth, and the header every results table starts with.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import threading
import time
from pathlib import Path

import numpy as np

from _scenarios import _optional


# ---------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------


def cpuinfo():
    """The first value of each field of /proc/cpuinfo (keys lower-cased), {} where unreadable."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model():
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags():
    flags = set(cpuinfo().get("flags", "").split())
    return [f for f in ("avx2", "fma", "avx512f") if f in flags]


def cpu_identity():
    """'family F model M' from /proc/cpuinfo (one vendor's model name covers several
    generations: 'AMD EPYC' was a Zen 3 one day and a Zen 4 the next), '' where unknown."""
    info = cpuinfo()
    if "cpu family" not in info or "model" not in info:
        return ""
    return f"family {info['cpu family']} model {info['model']}"


def code_target():
    """LLVM's name of the CPU Numba compiles for (NUMBA_CPU_NAME, else the host's) and the
    register tiles loopnet runs there."""
    from loopnet import tiles
    name = target_cpu_name()
    pair = ("4 × 5 forward, 5-example gradient (32 vector registers)" if tiles.WIDE_TILES
            else "4 × 3 forward, 4-example gradient (16 vector registers)")
    return f"code for LLVM target {name}, loopnet tiles {pair}"


def n_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_slug():
    """The results file's name for this machine: model name, LLVM's name of the host CPU and
    cores, e.g. ``amd-epyc-znver5-2c`` (the model name alone, 'AMD EPYC', named a Zen 3, a Zen 4
    and a Zen 5 VM, whose results overwrote one another)."""
    name = re.sub(r"\(.*?\)|processor|cpu|@.*", "", cpu_model(), flags=re.I)
    name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "machine"
    host = re.sub(r"[^a-z0-9]+", "-", host_cpu_name().lower()).strip("-")
    return f"{name}-{host}-{n_cores()}c" if host and host != "generic" else f"{name}-{n_cores()}c"


def host_cpu_name():
    """LLVM's name of this machine's CPU (whatever NUMBA_CPU_NAME asks to compile for)."""
    import llvmlite.binding as ll
    return ll.get_host_cpu_name()


def target_cpu_name():
    """LLVM's name of the CPU Numba compiles for: NUMBA_CPU_NAME, else :func:`host_cpu_name`."""
    import numba
    return numba.config.CPU_NAME or host_cpu_name()


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("numba", "torch", "sklearn"):
        lib = _optional(mod)
        out[mod] = getattr(lib, "__version__", None) if lib else None
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        # NumPy's own BLAS first: SciPy (imported by scikit-learn) brings another OpenBLAS,
        # which threadpoolctl may list first (0.3.30 beside NumPy's 0.3.31 here).
        blas.sort(key=lambda i: "numpy" not in str(i.get("filepath", "")).lower())
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
    identity = cpu_identity()
    lines = [
        f"- **CPU**: {cpu_model()}{f' ({identity})' if identity else ''} "
        f"({', '.join(cpu_flags()) or 'no AVX2 flag'}), "
        f"{cores} cores available, Numba threads {numba_threads()}, {platform.system()} {platform.machine()}; "
        f"{code_target()}",
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
