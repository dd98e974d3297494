"""Reporting: the Markdown table of one scenario and the results file it is written into.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np

from _scenarios import flops_per_epoch
from _machine import _loadavg, machine_header, machine_slug, measure_peaks


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
