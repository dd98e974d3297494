"""Validation before timing, the interleaved timing of the ladder, and loopnet's cold-compile
and cached-start probes (fresh processes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _impls import ref_gradient, ref_sgd, rel_err

# Seconds of sleep before each timed run, so that the worker threads the previous run left
# spinning (OpenBLAS's keep polling for work for about 0.1 s after a call) have gone to sleep
# and do not take a core from the run being timed.  Measured on the 2-core Zen 5 VM
# (2026-12-02): loopnet's fit of 10,000 W3 examples right after NumPy matmuls took 1.6x as
# long with a 20 ms gap (this constant's former value), 1.05x with 0.1 s, 1.0x with 0.3 s.
SETTLE_S = 0.25


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


def weights_after(impl, sc, X, Y, ws, bs, n_batches=5):
    """impl's weights and biases, as one flat list of arrays, after up to ``n_batches``
    mini-batches of X from (ws, bs): what the bit-for-bit thread checks compare."""
    nb = max(1, min(n_batches, len(X) // sc.m))
    impl.set(ws, bs)
    with impl.threads_ctx():
        impl.train(X[: nb * sc.m], Y[: nb * sc.m], np.arange(nb * sc.m))
    w, b = impl.get()
    return [np.array(a) for a in list(w) + list(b)]


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
                time.sleep(SETTLE_S)  # let other libraries' spinning worker threads go idle
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
    cache.  Cached is a second child on the same copy, after the first one filled the cache,
    Python's bytecode (``__pycache__``, which the first child writes into the copy even where
    ``PYTHONDONTWRITEBYTECODE`` is set) as well as Numba's: a user's second start."""
    import loopnet

    out = {}
    with tempfile.TemporaryDirectory(prefix="loopnet-compile-probe-") as tmp:
        src = Path(loopnet.__file__).resolve().parent
        shutil.copytree(src, Path(tmp) / "pkg" / "loopnet",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"))
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir or str(Path(tmp) / "numba-cache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)   # else every import compiles loopnet's sources again
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tmp) / "pkg"), env.get("PYTHONPATH")]))
        for label in ("cold", "cached"):
            r = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET, json.dumps([sc.sizes, sc.m, dtype])],
                               env=env, capture_output=True, text=True, timeout=900, cwd=tmp)
            if r.returncode:
                raise RuntimeError(f"compile probe failed: {r.stderr.strip().splitlines()[-1:]}")
            out[label] = json.loads(r.stdout.strip().splitlines()[-1])
            out[label]["loopnet_from"] = "copy"
    return out
