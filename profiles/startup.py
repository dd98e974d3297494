"""loopnet's start-up, measured as the suite's probe does, for one or more git revisions side by side.

Each probe is a fresh process that imports a fresh copy of the ``loopnet`` package (no
``__pycache__``) from a temporary folder, with ``NUMBA_CACHE_DIR`` pointing at its own empty
folder, and runs the suite's snippet (:data:`_timing._COMPILE_SNIPPET`): ``import loopnet`` +
``loopnet.warmup(dtype)`` + ``Net`` + first ``fit`` of two mini-batches + first ``gradient``.
The first process on a copy is the **cold compile**, the second the **cached start**.  A third
pair of processes runs the plain user call

    import loopnet, numpy as np; net = loopnet.Net([784, 30, 10], seed=0)
    net.fit(np.random.rand(1000, 784), np.random.randint(0, 10, 1000), epochs=1)

first with an empty cache, then with the cache it left (**user first / second**), timed
from outside (process wall time, interpreter start included).

Revisions are run interleaved (rev A cold, rev B cold, ..., A cached, B cached, ..., then
the next repeat), so a change in the machine's load hits all of them alike; the load
average is printed with every line.  ``--rev WORKTREE`` means the files as they are now, ``--rev DIR`` the ``loopnet`` package
inside DIR (an experiment outside git).

    python profiles/startup.py                        # this worktree, 3 repeats
    python profiles/startup.py --rev HEAD~3 --rev WORKTREE --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import _COMPILE_SNIPPET  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

USER_CALL = ("import loopnet, numpy as np; net = loopnet.Net([784, 30, 10], seed=0); "
             "net.fit(np.random.rand(1000, 784), np.random.randint(0, 10, 1000), epochs=1)")


def checkout(rev, dest):
    """The ``loopnet`` package of ``rev`` (or of the working tree) copied to dest/loopnet."""
    dest.mkdir(parents=True)
    if rev == "WORKTREE" or os.path.isdir(os.path.join(rev, "loopnet")):
        src = ROOT if rev == "WORKTREE" else Path(rev)
        shutil.copytree(src / "loopnet", dest / "loopnet",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"))
        return
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "loopnet"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def load():
    return os.getloadavg()[0]


BYTECODE = True     # let the children write __pycache__ into the copy (--no-bytecode: not)


def child(pkg, cache, argv):
    """Run ``python argv`` on the copy ``pkg``: (stdout, wall s, CPU s of the child)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(pkg))
    if BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True,
                       timeout=1200, cwd=str(pkg))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode:
        raise RuntimeError(f"start-up probe failed: {r.stderr.strip().splitlines()[-3:]}")
    return r.stdout, wall, cpu


def probe(pkg, cache, sizes, m, dtype):
    """The suite's snippet in a fresh process: its own timings (seconds)."""
    out, wall, cpu = child(pkg, cache, ["-c", _COMPILE_SNIPPET, json.dumps([sizes, m, dtype])])
    res = json.loads(out.strip().splitlines()[-1])
    res["total_s"] = res["import_s"] + res["first_s"]
    res["process_s"] = wall
    res["cpu_s"] = cpu
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rev", action="append", help="git revision, or WORKTREE (default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--no-user", action="store_true", help="skip the plain user call")
    p.add_argument("--no-bytecode", action="store_true",
                   help="PYTHONDONTWRITEBYTECODE=1 in the children: every import compiles loopnet's sources")
    args = p.parse_args(argv)
    global BYTECODE
    BYTECODE = not args.no_bytecode
    revs = args.rev or ["WORKTREE"]
    sizes, m = [784, 30, 10], 10
    rows = {rev: {"cold": [], "cached": [], "cached_import": [], "user1": [], "user2": [],
                  "cold_cpu": [], "cached_cpu": []}
            for rev in revs}
    with tempfile.TemporaryDirectory(prefix="loopnet-startup-") as tmp:
        tmp = Path(tmp)
        for rep in range(args.repeats):
            dirs = {}
            for i, rev in enumerate(revs):
                base = tmp / f"r{rep}-{i}"
                checkout(rev, base / "pkg")
                dirs[rev] = base
            for label in ("cold", "cached"):
                for rev in revs:
                    r = probe(dirs[rev] / "pkg", dirs[rev] / "cache", sizes, m, args.dtype)
                    rows[rev][label].append(r["total_s"])
                    rows[rev][label + "_cpu"].append(r["cpu_s"])
                    if label == "cached":
                        rows[rev]["cached_import"].append(r["import_s"])
                    print(f"repeat {rep + 1} {rev:>10} {label:>6}: {r['total_s']:6.2f} s "
                          f"(import {r['import_s']:.2f}, warmup {r['warmup_s']:.2f}, "
                          f"process {r['process_s']:.2f} wall, {r['cpu_s']:.2f} CPU) load {load():.2f}", file=sys.stderr)
            if not args.no_user:
                for label in ("user1", "user2"):
                    for rev in revs:
                        _, wall, _ = child(dirs[rev] / "pkg", dirs[rev] / "user-cache", ["-c", USER_CALL])
                        rows[rev][label].append(wall)
                        print(f"repeat {rep + 1} {rev:>10} {label:>6}: {wall:6.2f} s (process wall) "
                              f"load {load():.2f}", file=sys.stderr)
            for rev in revs:
                shutil.rmtree(dirs[rev])
    print(f"loopnet start-up, {args.dtype}, [784, 30, 10] m={m}; {args.repeats} repeats interleaved; "
          f"median (min-max) seconds; bytecode cached: {'yes' if BYTECODE else 'no'}; "
          f"load average now {load():.2f}\n")
    print("| revision | cold compile | cold, CPU of the process | cached start | cached, CPU of the process "
          "| of which import | user 1st fit (process) | user 2nd fit (process) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")

    def cell(v):
        return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-"

    for rev in revs:
        r = rows[rev]
        print(f"| {rev} | {cell(r['cold'])} | {cell(r['cold_cpu'])} | {cell(r['cached'])} | "
              f"{cell(r['cached_cpu'])} | {cell(r['cached_import'])} | {cell(r['user1'])} | {cell(r['user2'])} |")


if __name__ == "__main__":
    main()
