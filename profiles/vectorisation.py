"""Did LLVM vectorise the kernels?  Count packed vs scalar floating-point instructions.

``python profiles/vectorisation.py [w1] [--dtype float32] [--target skylake-avx512]``

Compiles the engine's drivers (``drive_batches``, ``apply_step``) for the scenario's real
argument types WITHOUT running them, so that every compiled function of ``loopnet.kernels``,
``loopnet.tiles``, ``loopnet.engine`` and ``loopnet.optim`` has its real signatures, then
reads the machine code of each (``dispatcher.inspect_asm``) and counts arithmetic
instructions on packed registers (``ymm``/``zmm``: 4/8 float64 or 8/16 float32 lanes) against
scalar ones (``…sd``/``…ss`` on ``xmm``).  A hot loop whose multiply-adds are all scalar is
not vectorised: with ``fastmath`` not allowing ``reassoc``, a single running sum
(z_j += w_jk a_k) cannot be split across lanes; a loop whose inner index runs over
independent outputs (or several accumulators) can.  Counts are static (instructions in the
code), not executed counts: read them per function, next to the phase profile.  The engine's
linked helpers (``_jit.jit_linked``: its blocks, panels and ``run_tasks``) and the linked twins
of the kernels it calls (``_jit.linked_twin``) have no machine code of their own; the engine's
code is counted in ``engine.drive_batches``, which holds all of it, and each kernel's row is
the kernel compiled on its own for the signatures the engine uses.

``--target NAME`` compiles for another x86-64 CPU (``NUMBA_CPU_NAME=NAME`` with
``NUMBA_CPU_FEATURES`` empty, i.e. that CPU's own features, in a child with a scratch
cache): e.g. ``haswell`` (AVX2), ``skylake-avx512``, ``sapphirerapids``, ``znver3``,
``generic`` (SSE2).  Nothing is run, so targets this machine cannot execute work too.
"Packed share" = packed ÷ (packed + scalar) arithmetic instructions of the function.

``--time N`` also RUNS the code compiled for the target (only targets this CPU can
execute: not AVX-512 ones on an AVX2 machine): N examples of one training epoch
(``engine.run_batches``, TRAIN, random inputs) on one thread, best of ``--repeats``,
reported as s per 50,000-example epoch and GFLOP/s (FLOPs counted as in _harness).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

# Targets named by NUMBA_CPU_NAME that have AVX-512: their code is compiled and counted here,
# but never run on a host without AVX-512.
AVX512_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
               "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
               "graniterapids", "graniterapids-d", "alderlake-avx512", "znver4", "znver5",
               "x86-64-v4", "knl", "knm")

ARITH = r"(?:fmadd|fmsub|fnmadd|fnmsub)\d*|mul|add|sub|div|max|min"
# "v" prefix: AVX encodings; none: SSE2 (the generic x86-64 target), packed on xmm only
PACKED = re.compile(rf"^\s*v?(?:{ARITH})p[sd]\s+.*%?([yz]mm)\d+", re.M)
PACKED_X = re.compile(rf"^\s*v?(?:{ARITH})p[sd]\s+.*%?xmm\d+", re.M)
SCALAR = re.compile(rf"^\s*v?(?:{ARITH})s[sd]\s", re.M)


def count(asm):
    ymm = sum(1 for m in PACKED.finditer(asm) if m.group(1) == "ymm")
    zmm = sum(1 for m in PACKED.finditer(asm) if m.group(1) == "zmm")
    xmm = len(PACKED_X.findall(asm)) - ymm - zmm
    return {"zmm": zmm, "ymm": ymm, "xmm packed": max(xmm, 0), "scalar": len(SCALAR.findall(asm))}


def scenario_arch(sc):
    """The engine's Arch of the scenario's network (sizes, activations, cost)."""
    from loopnet import activations, costs, engine

    return engine.make_arch(sc.sizes, activations.code(sc.activation), activations.code(sc.output),
                            costs.code(sc.cost))


def compile_drivers(sc, dtype):
    """Compile drive_batches (run_batches' compiled driver) and apply_step for the scenario's
    argument types, without running
    them (the code may be for a CPU this machine cannot execute)."""
    import numba

    from loopnet import engine, optim

    arch = scenario_arch(sc)
    params = np.zeros(int(arch.p_off[-1]), dtype)
    state = optim.make_state(params.size, dtype)
    work = engine.make_work(arch, sc.m, dtype)
    X, Y = np.zeros((sc.m, sc.sizes[0]), dtype), np.zeros((sc.m, sc.sizes[-1]), dtype)
    hyper = optim.make_hyper("sgd", 0.1, 0.0, 1, 0.0, 0.9, 0.999, 1e-8)
    args = (params, state, work, X, Y, np.arange(sc.m), np.int64(sc.m), np.int64(0), np.int64(1),
            arch, hyper, np.int64(engine.TRAIN), np.empty((0, sc.sizes[-1]), dtype), np.empty(0),
            np.int64(1))
    engine.drive_batches.compile(tuple(numba.typeof(a) for a in args))
    engine.apply_step.compile(tuple(numba.typeof(a) for a in
                                    (params, state, params, 1.0, arch, optim.step_part(hyper))))
    # The engine calls linked twins of the kernels (_jit.linked_twin): compile the kernels
    # themselves for the same signatures, so that each one's own code can be read.
    from loopnet import _jit

    for kernel, twin in list(_jit._twins.items()):
        for sig in twin.signatures:
            kernel.compile(sig)


def time_target(sc, dtype, n, repeats):
    """One line: s per 50,000-example epoch and GFLOP/s of one thread training n examples
    (random inputs in [0, 1), one-hot targets) with the code compiled for this process's target."""
    import time

    import numba

    from loopnet import engine, optim

    import llvmlite.binding as llvm

    target = numba.config.CPU_NAME or "host"
    if target in AVX512_CPUS and not llvm.get_host_cpu_features().get("avx512f", False):
        return f"Timing: not run ({target} code needs AVX-512, which this CPU lacks)."
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    arch = scenario_arch(sc)
    params = (rng.standard_normal(int(arch.p_off[-1])) * 0.1).astype(dtype)
    X = rng.random((n, sc.sizes[0])).astype(dtype)
    Y = np.eye(sc.sizes[-1], dtype=dtype)[rng.integers(0, sc.sizes[-1], n)]
    hyper = optim.make_hyper("sgd", 0.1, 0.0, n, 0.0, 0.9, 0.999, 1e-8)
    work = engine.make_work(arch, sc.m, dtype)
    times = []
    for _ in range(repeats + 1):
        p = params.copy()
        state = optim.make_state(p.size, dtype)
        t0 = time.perf_counter()
        engine.run_batches(p, state, work, X, Y, np.arange(n), sc.m, 0, n // sc.m, arch, hyper,
                           engine.TRAIN, np.empty((0, sc.sizes[-1]), dtype), np.empty(0))
        times.append(time.perf_counter() - t0)
    best = min(times[1:])              # the first run loads what it needs: not kept
    trained = (n // sc.m) * sc.m
    flops = H.flops_per_epoch(sc.sizes, sc.m, trained)
    epoch = best * 50_000 / trained
    return (f"Timing, one thread, {n:,} examples, best of {repeats}: {epoch:.3f} s per 50,000-example "
            f"epoch, {flops / best / 1e9:.1f} GFLOP/s (load {os.getloadavg()[0]:.1f}).")


def dispatchers():
    import loopnet.engine as E
    import loopnet.kernels as K
    import loopnet.optim as O
    import loopnet.tiles as T

    for mod in (K, T, E, O):
        for name, obj in sorted(vars(mod).items()):
            if hasattr(obj, "inspect_asm") and getattr(obj, "__module__", mod.__name__) == mod.__name__:
                if not linked(obj):
                    yield f"{mod.__name__.split('.')[-1]}.{name}", obj


def linked(dispatcher):
    """Whether ``dispatcher`` is a linked helper (``_jit.jit_linked``): its own library is the
    unoptimised IR its callers optimise, so its code is counted in theirs, not on its own."""
    from loopnet import _linking

    return _linking.AVAILABLE and any(isinstance(cres.library, _linking.LinkedLibrary)
                                      for cres in dispatcher.overloads.values())


def main(argv=None):
    p = argparse.ArgumentParser(description="packed vs scalar FP instructions per compiled function")
    p.add_argument("scenario", nargs="?", default="w1", choices=list(H.SCENARIOS))
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--target", help="LLVM CPU name to compile for (default: this machine)")
    p.add_argument("--features", default="",
                   help="LLVM feature string with --target, e.g. '-prefer-256-bit' (default: the CPU's own)")
    p.add_argument("--out", help="results file ('-' = do not write)")
    p.add_argument("--time", type=int, default=0, metavar="N",
                   help="also time one thread training N examples with the target's code")
    p.add_argument("--repeats", type=int, default=5)
    args, _ = p.parse_known_args(argv)
    if not os.environ.get("_LOOPNET_VEC_CHILD"):
        # Numba cannot show the assembly of code loaded from its cache: compile afresh in a child
        # that imports a copy of the package without its __pycache__ (loopnet's own cache
        # locator does not follow NUMBA_CACHE_DIR)
        import shutil

        import loopnet

        with tempfile.TemporaryDirectory(prefix="loopnet-vec-") as tmp:
            shutil.copytree(Path(loopnet.__file__).resolve().parent, Path(tmp) / "pkg" / "loopnet",
                            ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"))
            env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "cache"), _LOOPNET_VEC_CHILD="1")
            if args.target:
                env.update(NUMBA_CPU_NAME=args.target, NUMBA_CPU_FEATURES=args.features)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tmp) / "pkg"), env.get("PYTHONPATH")]))
            argv = sys.argv[1:] if argv is None else list(argv)
            return subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], env=env,
                                  cwd=tmp).returncode
    import warnings

    warnings.filterwarnings("ignore", message="Inspection disabled")
    sc = H.SCENARIOS[args.scenario]
    compile_drivers(sc, np.dtype(args.dtype))
    dt = np.dtype(args.dtype)
    rows = []
    for name, d in dispatchers():
        for sig in d.signatures:
            if not any(str(a).startswith("array(" + dt.name) or dt.name in str(a) for a in sig):
                continue
            try:
                asm = d.inspect_asm(sig)
            except Exception:  # noqa: BLE001 - e.g. disabled JIT
                continue
            c = count(asm)
            rows.append((name, c))
            break
    import numba

    target = os.environ.get("NUMBA_CPU_NAME") or f"this machine ({numba.config.CPU_NAME or 'host'})"
    if os.environ.get("NUMBA_CPU_FEATURES"):
        target += f" with features {os.environ['NUMBA_CPU_FEATURES']}"
    lines = [f"### Vectorisation of the compiled functions, {args.dtype}, target {target}{H.stamp()} "
             "(static instruction counts)", "",
             "| function | zmm packed | ymm packed | xmm packed | scalar | packed share | verdict |",
             "|---|---|---|---|---|---|---|"]
    note = ("Packed = vector arithmetic (4/8 float64 lanes on ymm/zmm); scalar instructions remain in every "
            "function (loop remainders, σ, bounds), so read 'has packed loops' as 'the vectoriser fired "
            "somewhere', and check the phase GFLOP/s for whether the hot loop is the one.")
    for name, c in rows:
        packed = c["zmm"] + c["ymm"] + c["xmm packed"]
        if not packed and not c["scalar"]:
            continue  # no arithmetic of its own (views, helpers inlined elsewhere)
        verdict = "has packed loops" if c["zmm"] + c["ymm"] + c["xmm packed"] else "scalar only"
        share = packed / (packed + c["scalar"])
        lines.append(f"| {name} | {c['zmm']} | {c['ymm']} | {c['xmm packed']} | {c['scalar']} | {share:.0%} "
                     f"| {verdict} |")
    if args.time:
        lines += ["", time_target(sc, dt, args.time, args.repeats)]
    md = "\n".join(lines + ["", note]) + "\n"
    print(md)
    path = H.results_path(args.out)
    if path is not None and rows:
        key = f"vectorisation-{args.dtype}" + (f"-{args.target}" if args.target else "") + args.features
        H.update_results(path, None, {key: md})
    return 0


if __name__ == "__main__":
    sys.exit(main())
