"""Every scenario, float64 and float32, in one process, plus a summary table.

``python profiles/suite.py [--readme]`` or ``loopnet profile all [--readme]``.

Writes every scenario's section to ``profiles/results/<machine>.md`` and puts the summary
at its top; with ``--readme`` the same summary (exactly what is printed) replaces the body
of the ``## Performance`` section of README.md (appended when missing).  W5 is timed on
10,000 examples per epoch and scaled to 50,000 (each epoch is ~240 GFLOP); the others on
the full 50,000.  The cold-compile probe runs once per dtype (on W1): Numba compiles per
argument type, not per layer size, so it is the same for every shape.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

COLS = [("numpy", "NumPy matrix"), ("nielsen", "Nielsen-style per-example"), ("torch1", "PyTorch eager 1 thread"),
        ("torch", "PyTorch eager {c} threads"),
        ("sklearn", "sklearn MLP (sgd)"), ("loopnet1", "loopnet 1 thread"), ("loopnet", "loopnet {c} threads"),
        ("fit", "loopnet fit() defaults")]


def summary(results, peaks, dtypes):
    cores = peaks["cores"]
    present = [(k, name.format(c=cores)) for k, name in COLS if any(k in r["best"] for r in results)]
    out = []
    for dt in dtypes:
        rs = [r for r in results if r["dtype"] == dt]
        if not rs:
            continue
        out += [f"**{dt}**, seconds per {rs[0]['epoch_n']:,}-example epoch (best of the repeats; lower is better):",
                "",
                "| workload | " + " | ".join(n for _, n in present) + f" | hardware bound 1 / {cores} threads"
                " | loopnet best vs NumPy | default fit vs NumPy | default fit vs best PyTorch |",
                "|---|" + "---|" * len(present) + "---|---|---|---|"]
        for r in rs:
            sc, scale = r["scenario"], r["epoch_n"] / r["n"]
            cells = []
            for k, _ in present:
                t = r["best"].get(k)
                cells.append("–" if t is None else H.fmt_s(t * scale))
            fl = H.flops_per_epoch(sc.sizes, sc.m, r["epoch_n"])
            bound = f"{H.fmt_s(fl / peaks[dt][1] / 1e9)} / {H.fmt_s(fl / peaks[dt][cores] / 1e9)}"
            lp = [r["best"][k] for k in ("loopnet1", "loopnet") if k in r["best"]]
            ratio = f"{r['best']['numpy'] / min(lp):.2f}×" if lp and "numpy" in r["best"] else "–"
            best = r["best"]
            fit = best.get("fit")
            torch = [best[k] for k in ("torch1", "torch") if k in best]
            fit_np = f"{best['numpy'] / fit:.2f}×" if fit and "numpy" in best else "–"
            fit_torch = f"{min(torch) / fit:.2f}×" if fit and torch else "–"
            name = f"{sc.key.upper()} {sc.sizes}, m = {sc.m}" + (" ²" if r["epoch_n"] != r["n"] else "")
            cells_s = " | ".join(cells)
            out.append(f"| {name} | {cells_s} | {bound} | {ratio} | {fit_np} | {fit_torch} |")
        comp = [r["compile"] for r in rs if r.get("compile")]
        if comp:
            c = comp[0]
            out.append("")
            out.append(f"loopnet start, {dt}: cold compile {c['cold']['import_s'] + c['cold']['first_s']:.2f} s "
                       f"(fresh process, empty NUMBA_CACHE_DIR), cached "
                       f"{c['cached']['import_s'] + c['cached']['first_s']:.2f} s.")
        ident = [r.get("bit_identical") for r in rs if r.get("bit_identical") is not None]
        if ident:
            out.append(f"loopnet 1 vs {cores} threads bit-identical in {sum(1 for i in ident if i[0])} of "
                       f"{len(ident)} workloads.")
        out.append("")
    out.append("Every implementation was validated against loopnet.reference before it was timed (gradient "
               "after one mini-batch and weights after three, within 1e-10 relative in float64, 1e-5 in "
               "float32); Nielsen-style code timed on 10 % of each epoch, PyTorch and scikit-learn on 25 % (PyTorch "
               "on all threads 5 %), and scaled; "
               "² timed on fewer examples than the epoch (the scenario's table says how many) and "
               "scaled. Hardware bound = epoch FLOPs ÷ the matmul "
               "peak measured in the same run (FLOPs counted as in profiles/README.md).")
    return "\n".join(out) + "\n"


def update_readme(path, text):
    """Replace the body of README's ``## Performance`` section (append the section if missing).
    Returns False, writing nothing, when README.md does not exist (its top belongs to the lead)."""
    path = Path(path)
    if not path.exists():
        return False
    body = path.read_text()
    head = "## Performance"
    if head in body:
        pre, rest = body.split(head, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        body = pre + head + "\n\n" + text.rstrip("\n") + "\n\n" + tail
    else:
        body = body.rstrip("\n") + "\n\n" + head + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(body.rstrip("\n") + "\n")
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description="all scenarios + summary")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--scenarios", default=",".join(H.SCENARIOS))
    p.add_argument("--repeats", "-r", type=int, default=3)
    p.add_argument("--examples", "-n", type=int, default=50_000)
    p.add_argument("--wide-examples", type=int, default=10_000, help="examples timed for W5 (scaled)")
    p.add_argument("--impls")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--readme", action="store_true", help="replace README.md's ## Performance section body")
    p.add_argument("--out")
    args, _ = p.parse_known_args(argv)
    if args.quick:
        args.examples, args.wide_examples, args.repeats, args.no_compile = 200, 200, 1, True
        args.out = args.out or "-"
        args.readme = False  # a smoke run never replaces the published numbers
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    want = set(args.impls.split(",")) if args.impls else None
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log("measuring peaks ...")
    peaks = H.measure_peaks(args.quick)
    header = H.machine_header(peaks)
    print(header + "\n")
    results, sections = [], {}
    for dt in dtypes:
        for i, key in enumerate(args.scenarios.split(",")):
            sc = H.SCENARIOS[key]
            n = args.wide_examples if key == "w5" else args.examples
            log(f"{sc.title}, {dt}")
            r = H.run_scenario(sc, dt, n=n, repeats=args.repeats, quick=args.quick, want=want, peaks=peaks,
                               compile_probe=(i == 0 and not args.no_compile), log=log)
            results.append(r)
            sections[f"{key}-{dt}"] = r["markdown"]
    summ = summary(results, peaks, dtypes)
    cpu = f"{H.cpu_model()}, {peaks['cores']} cores"
    text = (f"Measured by `python profiles/suite.py` on {cpu} (the machine header below); full tables "
            f"with GFLOP/s, share of peak, CPU time and validation errors in "
            f"[profiles/results/{H.machine_slug()}.md](profiles/results/{H.machine_slug()}.md); how to run "
            f"and how FLOPs are counted in [profiles/README.md](profiles/README.md).\n\n{header}\n\n{summ}")
    print("\n" + summ)
    if args.readme:
        print("README.md ## Performance body, as written:\n\n" + text)
    for r in results:
        print(r["markdown"])
    failed = any(r["failed"] for r in results)
    path = H.results_path(args.out)
    if path is not None:
        H.update_results(path, header, {"summary": "## Summary\n\n" + summ, **sections})
        log(f"wrote {path}")
    if args.readme:
        if update_readme(H.REPO_DIR / "README.md", text):
            log("updated README.md ## Performance")
        else:
            log("README.md does not exist: nothing written there")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
