"""What each optimisation bought: loopnet at several git revisions, timed in one run.

``python profiles/history.py REV [REV ...] [--scenarios w1,w2,w3]``; a REV is anything
``git rev-parse`` accepts, or ``WORKTREE`` for the files as they are now.

Each revision's ``loopnet/`` is exported with ``git archive`` into a temporary folder (the
repository is only read) and run in its own child process with its own empty
``NUMBA_CACHE_DIR``, by this checkout's harness: validation against this revision's
``loopnet.reference``, then interleaved epochs of the NumPy matrix form (the yardstick
inside every child) and loopnet on 1 and all threads.  The children are run in rounds
(every revision once per round) and each cell keeps the best round, so that slow phases of a
shared machine hit every revision alike.  Times are per 50,000-example epoch, measured on
``--examples`` examples and scaled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

_CHILD = r"""
import json, sys
sys.path.insert(1, sys.argv[1])
import numpy as np
import _harness as H
keys, n, repeats, dtype = json.loads(sys.argv[2])
cores = H.n_cores()
out = {}
for key in keys:
    sc = H.SCENARIOS[key]
    X, Y, _, _ = H.load_data(n, sc.sizes[0], sc.sizes[-1], dtype)
    ws, bs = H.init_params(sc.sizes, dtype)
    impls, errs = [], {}
    for k, make in (("numpy", lambda: H.NumpyMatrix(sc, dtype, threads=1)), ("loopnet1", lambda: H.Loopnet(sc, dtype, 1)),
                    ("loopnet", lambda: H.Loopnet(sc, dtype, cores))):
        try:
            impl = make()
            e = H.validate(impl, sc, X, Y, ws, bs)
        except Exception as exc:
            errs[k] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
            continue
        if any(x is not None and not x <= H.TOL[dtype] for x in e):
            errs[k] = f"validation error {max(x for x in e if x is not None):.1e}"
            continue
        impls.append((k, impl))
    best, cpu, _ = H.time_ladder(impls, X, Y, ws, bs, repeats, log=lambda s: None, warmup_examples=min(1000, n))
    # 1-thread rows by CPU time (robust on a shared machine), the all-thread row by wall time
    out[key] = {"best": {k: (cpu[k] if k != "loopnet" else best[k]) for k in best}, "errors": errs}
print("@@" + json.dumps(out))
"""


def export(rev, root):
    """Folder holding ``loopnet/`` as it is at ``rev`` (or the working tree for WORKTREE)."""
    if rev == "WORKTREE":
        return H.REPO_DIR
    dest = Path(root) / rev.replace("/", "_")
    dest.mkdir(parents=True, exist_ok=True)
    tar = dest / "src.tar"
    subprocess.run(["git", "-C", str(H.REPO_DIR), "archive", "-o", str(tar), rev, "loopnet"], check=True)
    with tarfile.open(tar) as t:
        t.extractall(dest)
    return dest


def describe(rev):
    if rev == "WORKTREE":
        return "working tree (uncommitted)"
    # the last commit at or before rev that changed loopnet/ (what the timing actually ran)
    r = subprocess.run(["git", "-C", str(H.REPO_DIR), "log", "-1", "--format=%h %s", rev, "--", "loopnet"],
                       capture_output=True, text=True, check=True)
    text = r.stdout.strip()
    return text if len(text) < 90 else text[:87] + "…"


def main(argv=None):
    p = argparse.ArgumentParser(description="loopnet at several revisions, timed in one run")
    p.add_argument("revs", nargs="+")
    p.add_argument("--scenarios", default="w1,w2,w3")
    p.add_argument("--examples", "-n", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", "-r", type=int, default=2, help="epochs per child (best kept)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--out", help="results file ('-' = do not write)")
    args = p.parse_args(argv)
    keys = args.scenarios.split(",")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    best = {rev: {} for rev in args.revs}
    errors = {rev: {} for rev in args.revs}
    with tempfile.TemporaryDirectory(prefix="loopnet-history-") as root:
        dirs = {rev: export(rev, root) for rev in args.revs}
        for rnd in range(args.rounds):
            for rev in args.revs:
                env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(root) / f"cache-{rev.replace('/', '_')}"))
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dirs[rev]), env.get("PYTHONPATH")]))
                r = subprocess.run([sys.executable, "-c", _CHILD, str(H.PROFILES_DIR),
                                    json.dumps([keys, args.examples, args.repeats, args.dtype])],
                                   env=env, capture_output=True, text=True, cwd=root)
                lines = [ln for ln in r.stdout.splitlines() if ln.startswith("@@")]
                if r.returncode or not lines:
                    tail = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
                    errors[rev]["*"] = tail
                    log(f"round {rnd + 1}, {rev}: failed: {tail}")
                    continue
                res = json.loads(lines[-1][2:])
                for key, v in res.items():
                    for impl, t in v["best"].items():
                        cell = best[rev].setdefault(key, {})
                        cell[impl] = min(cell.get(impl, float("inf")), t)
                    errors[rev].update({f"{key}/{k}": e for k, e in v["errors"].items()})
                log(f"round {rnd + 1}, {rev}: " + "; ".join(
                    f"{k} " + ", ".join(f"{i} {t:.3f}s" for i, t in v["best"].items()) for k, v in res.items()))
    scale = 50_000 / args.examples
    cores = H.n_cores()
    head = "| revision | " + " | ".join(
        f"{k.upper()} loopnet 1 thr / {cores} thr (NumPy 1 thr)" for k in keys) + " |"
    lines = [f"### loopnet across revisions, {args.dtype}{H.stamp()}", "",
             f"s per 50,000-example epoch (measured on {args.examples:,} examples × {scale:g}), best of "
             f"{args.rounds} rounds × {args.repeats} epochs, each revision in its own process with its own cold "
             f"Numba cache; NumPy matrix form (BLAS on 1 thread) timed in the same process as the yardstick. "
             f"1-thread columns are process CPU time, the {cores}-thread column wall time.", "",
             head, "|---|" + "---|" * len(keys)]
    for rev in args.revs:
        cells = []
        for k in keys:
            c = best[rev].get(k, {})
            f = lambda i: H.fmt_s(c[i] * scale) if i in c else "–"  # noqa: E731
            cells.append(f"{f('loopnet1')} / {f('loopnet')} ({f('numpy')})")
        lines.append(f"| {describe(rev)} | " + " | ".join(cells) + " |")
    errs = [f"{rev}: {k}: {e}" for rev in args.revs for k, e in errors[rev].items()]
    if errs:
        lines += ["", "Not timed: " + "; ".join(errs)]
    md = "\n".join(lines) + "\n"
    print(md)
    path = H.results_path(args.out)
    if path is not None:
        H.update_results(path, None, {f"history-{args.dtype}": md})
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
