"""Where a cold compile goes: Numba's passes, LLVM's steps and loopnet's compiled functions.

Each repeat is a fresh process with its own empty ``NUMBA_CACHE_DIR`` that imports loopnet and
runs ``loopnet.warmup(dtype)`` (the suite's cold-compile probe without the fit and gradient
after it), with three sets of timers installed before loopnet is imported:

* **passes**: every pass of Numba's compiler pipelines (``PassManager._runPass``), timed
  *exclusive* of the compiles nested in it (typing a call compiles the callee inside the
  caller's type inference);
* **LLVM**: the code library steps where Numba hands work to LLVM (``add_ir_module``: the IR
  printed as text, parsed, verified and cleaned up; ``_optimize_functions``: that clean-up;
  ``_optimize_final_module``: O3 of a library with everything it links; ``_finalize_specific``:
  machine code), exclusive, by library class (``LinkedLibrary``: loopnet's linked helpers,
  :mod:`loopnet._linking`);
* **functions**: Numba's ``numba:compile`` events per Python function, self time (exclusive of
  the callees compiled inside) and inclusive time.

The timers cost a few per cent; the times are those of one warmup, the median over repeats per
row.  The child runs with ``PYTHONDONTWRITEBYTECODE=1``, so its import compiles loopnet's
sources (tens of ms more than an import from cached bytecode; ``startup.py`` times that one).  Timing wrappers rest on Numba internals (0.62-0.68): a method that is not there is left
unwrapped.  Used in profiles/README.md's nineteenth round.

    python profiles/compile_time.py [--dtype float64] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: Code library methods timed as LLVM steps (see the module docstring).
LLVM_STEPS = ("add_ir_module", "_optimize_functions", "_optimize_final_module",
              "_finalize_specific")


class ExclusiveTimes:
    """Nested timers: each key gets the time between ``start`` and ``stop`` minus the time of the
    timers started inside it (``exclusive``) and the whole (``inclusive``, counted once per
    outermost entry of a key, so a recursive key is not counted twice)."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.exclusive = defaultdict(float)
        self.inclusive = defaultdict(float)
        self.calls = defaultdict(int)
        self._stack = []            # [key, started, time of the timers inside]

    def start(self, key):
        self._stack.append([key, self.clock(), 0.0])

    def stop(self):
        key, started, inner = self._stack.pop()
        elapsed = self.clock() - started
        self.exclusive[key] += elapsed - inner
        self.calls[key] += 1
        if all(entry[0] != key for entry in self._stack):
            self.inclusive[key] += elapsed
        if self._stack:
            self._stack[-1][2] += elapsed

    def timed(self, key, fn, *args, **kwargs):
        self.start(key)
        try:
            return fn(*args, **kwargs)
        finally:
            self.stop()


def _wrap_method(cls, name, timers, label):
    original = cls.__dict__.get(name)
    if original is None:
        return

    def wrapper(self, *args, **kwargs):
        return timers.timed((label(self), name), original, self, *args, **kwargs)
    setattr(cls, name, wrapper)


def install(passes, llvm, functions):
    """Install the three sets of timers (before loopnet compiles anything)."""
    from numba.core import codegen, compiler_machinery, event

    run_pass = compiler_machinery.PassManager._runPass

    def timed_pass(self, index, pss, state):
        name = pss.name() if hasattr(pss, "name") else type(pss).__name__
        return passes.timed(name, run_pass, self, index, pss, state)
    compiler_machinery.PassManager._runPass = timed_pass

    from loopnet import _linking
    classes = [codegen.CPUCodeLibrary, codegen.JITCodeLibrary]
    if _linking.AVAILABLE:
        classes += [_linking.LinkedLibrary, _linking.OptimisedLinkedLibrary]
    for cls in classes:
        for step in LLVM_STEPS:
            _wrap_method(cls, step, llvm, lambda lib: type(lib).__name__)

    class Compiles(event.Listener):
        def on_start(self, ev):
            fn = ev.data["dispatcher"].py_func
            functions.start(f"{fn.__module__}.{fn.__qualname__}")

        def on_end(self, ev):
            functions.stop()
    event.register("numba:compile", Compiles())


def child(dtype):
    """One cold warmup with the timers: JSON on stdout."""
    passes, llvm, functions = ExclusiveTimes(), ExclusiveTimes(), ExclusiveTimes()
    started = time.perf_counter()
    import loopnet                          # noqa: F401 - imports numba before the hooks
    imported = time.perf_counter()
    install(passes, llvm, functions)
    loopnet.warmup(dtype)
    done = time.perf_counter()
    print(json.dumps({
        "import": imported - started, "warmup": done - imported,
        "passes": dict(passes.exclusive),
        "llvm": {f"{cls}.{step}": t for (cls, step), t in llvm.exclusive.items()},
        "llvm_calls": {f"{cls}.{step}": n for (cls, step), n in llvm.calls.items()},
        "self": dict(functions.exclusive), "inclusive": dict(functions.inclusive)}))


def run_child(dtype):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONDONTWRITEBYTECODE="1")
        out = subprocess.run([sys.executable, __file__, "--child", "--dtype", dtype], env=env,
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_rows(runs, field):
    keys = set().union(*(r[field] for r in runs))
    return {k: statistics.median(r[field].get(k, 0.0) for r in runs) for k in keys}


def table(title, rows, total, top, unit_total=None):
    lines = [f"| {title} | s | share of the warmup |", "|---|---:|---:|"]
    ranked = sorted(rows.items(), key=lambda kv: -kv[1])
    for key, t in ranked[:top]:
        lines.append(f"| {key} | {t:.3f} | {100 * t / total:.0f} % |")
    rest = sum(t for _, t in ranked[top:])
    if rest:
        lines.append(f"| {len(ranked) - top} others | {rest:.3f} | {100 * rest / total:.0f} % |")
    summed = sum(rows.values())
    lines.append(f"| **all {unit_total or 'rows'}** | **{summed:.3f}** | "
                 f"**{100 * summed / total:.0f} %** |")
    return "\n".join(lines)


def report(runs, dtype):
    from _machine import code_target, cpu_identity, cpu_model, machine_slug, n_cores, versions
    warmup = statistics.median(r["warmup"] for r in runs)
    imported = statistics.median(r["import"] for r in runs)
    v = versions()
    load = os.getloadavg()[0]
    head = (f"### Where a cold compile goes: {dtype}, {machine_slug()} "
            f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load {load:.1f})\n\n"
            f"{cpu_model()} ({cpu_identity()}), {n_cores()} cores; {code_target()}; Python "
            f"{v['python']}, Numba {v['numba']}. `python profiles/compile_time.py --dtype {dtype} "
            f"--repeats {len(runs)}`: median over {len(runs)} fresh process(es), each with an empty "
            f"cache: import {imported:.2f} s, cold `warmup` {warmup:.2f} s "
            f"(each: {', '.join(format(r['warmup'], '.2f') for r in runs)}). Times are exclusive of "
            f"what is nested inside (see the script's docstring); shares are of the warmup.")
    functions = median_rows(runs, "self")
    inclusive = median_rows(runs, "inclusive")
    top_inclusive = sorted(inclusive.items(), key=lambda kv: -kv[1])[:6]
    return "\n\n".join([
        head,
        table("Numba pass (exclusive)", median_rows(runs, "passes"), warmup, 12, "passes"),
        table("LLVM step, by library class (exclusive)", median_rows(runs, "llvm"), warmup, 12,
              "LLVM steps"),
        table(f"compiled function, self time ({len(functions)} functions)", functions, warmup,
              15, "functions"),
        "Inclusive (with the callees compiled inside): "
        + ", ".join(f"`{k}` {t:.2f} s" for k, t in top_inclusive) + "."])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="-", help="results file to append to ('-': print only)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.dtype)
        return
    runs = []
    for r in range(args.repeats):
        runs.append(run_child(args.dtype))
        print(f"repeat {r + 1}: warmup {runs[-1]['warmup']:.2f} s", file=sys.stderr, flush=True)
    text = report(runs, args.dtype)
    print(text)
    if args.out != "-":
        with open(args.out, "a") as f:
            f.write("\n" + text + "\n")
        print(f"appended to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
