"""``loopnet info``: what a saved model is and how it was trained."""

from __future__ import annotations

import json
import sys

from . import _common as c

HELP = "describe a saved model: sizes, activations, cost, parameters, history"

EXAMPLES = """  loopnet info model.npz
  loopnet info model.npz --json
  loopnet info model.npz --history all      # every epoch record, not the first and last 5
"""

#: History records shown at each end by default.
HISTORY_ENDS = 5


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="a model saved by 'loopnet train --save'")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--history", metavar="N|all", type=_history_count, default=HISTORY_ENDS,
                   help=f"epoch records to show at each end of the history (default "
                        f"{HISTORY_ENDS}; 'all' shows every one)")


def _history_count(text):
    if text == "all":
        return None
    return c.nonneg_int(text)


def bounded(history, ends):
    """(first ``ends`` records, number left out, last ``ends`` records); all when ends is None."""
    if ends is None or len(history) <= 2 * ends:
        return list(history), 0, []
    return list(history[:ends]), len(history) - 2 * ends, list(history[len(history) - ends:])


def run(args):
    from .. import io

    net, meta = io.load_with_meta(args.model)
    extra = meta.get("extra") or {}
    opt = net.optimizer_state
    d = {"model": args.model, "format_version": meta.get("format_version"),
         "sizes": list(net.sizes), "activation": net.activation, "output": net.output,
         "cost": net.cost_name, "dtype": net.dtype.name,
         "parameters": int(net.params.size), "epoch": net.epoch,
         "optimizer": {"name": opt["name"], "t": opt["t"]},
         "status": extra.get("status"), "train": extra.get("train"), "data": extra.get("data"),
         "history_records": len(net.history)}
    head, left_out, tail = bounded(net.history, args.history)
    d["history"] = head + tail
    if left_out:
        d["history_left_out"] = {"after": len(head), "count": left_out}
    if args.json:
        json.dump(d, sys.stdout)
        sys.stdout.write("\n")
        return 0
    n_w = sum(w.size for w in net.weights)
    kind = "network2 JSON, no training state" if meta.get("format") == "network2" else \
        f"loopnet format version {d['format_version']}"
    print(f"model:       {args.model} ({kind})")
    print(f"sizes:       {','.join(map(str, net.sizes))}")
    print(f"activations: {net.activation} (hidden), {net.output} (output)")
    print(f"cost:        {net.cost_name}")
    print(f"dtype:       {net.dtype.name}")
    print(f"parameters:  {net.params.size:,} ({n_w:,} weights, {net.params.size - n_w:,} "
          "biases)")
    print(f"epochs:      {net.epoch}" + (f" ({d['status']})" if d["status"] else ""))
    print(f"optimizer:   {opt['name']} (t = {opt['t']})")
    t = d["train"] or {}
    if t:
        keys = ("batch_size", "eta", "lmbda", "momentum", "seed")
        print("training:    " + ", ".join(f"{k} {t[k]}" for k in keys if k in t))
    data = d["data"] or {}
    if data:
        print("data:        " + (", ".join(f"{k} {v}" for k, v in data.items() if v is not None) or "digits (embedded)"))
    if net.history:
        print(f"history:     {len(net.history)} epoch records" +
              (f" (first and last {len(head)}; --history all shows every one)" if left_out else ""))
        for h in head:
            print("  " + c.epoch_line(h))
        if left_out:
            print(f"  ... {left_out} more ...")
        for h in tail:
            print("  " + c.epoch_line(h))
    return 0
