"""``loopnet eval``: accuracy, cost and confusion matrix of a saved model on a dataset."""

from __future__ import annotations

import json
import os
import sys

from . import _common as c

HELP = "evaluate a saved model: accuracy, cost, confusion matrix"

DESCRIPTION = """Evaluate a saved model on a held-out set. Without data options the model is
evaluated on the held-out set of the data it was trained on (as recorded in the model file;
the embedded digits for a model without that record)."""

EXAMPLES = """  loopnet eval model.npz
  loopnet eval model.npz --dataset fashion-mnist --data ~/data/fashion
  loopnet eval model.npz --data test.csv      # every row of a CSV file
  loopnet eval model.npz --json
"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="a model saved by 'loopnet train --save'")
    c.add_data_arguments(p)
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="evaluate on the held-out set (default) or the training set")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def evaluate(net, X, y):
    """accuracy, cost, confusion matrix and predicted labels of ``net`` on (X, y)."""
    import numpy as np
    out = net.predict(X)
    pred = np.argmax(out, axis=1)
    n_classes = net.sizes[-1]
    cm = c.confusion_matrix(y, pred, n_classes)
    return {"n": int(len(y)), "correct": int((pred == y).sum()),
            "accuracy": float((pred == y).mean()), "cost": float(net.cost(X, y)),
            "confusion": cm.tolist()}


def run(args):
    import numpy as np
    from .. import datafiles, io

    net, meta = io.load_with_meta(args.model)
    extra = meta.get("extra") or {}
    given = any(getattr(args, k) is not None for k in ("dataset", "data", "test"))
    saved = {} if given else dict(extra.get("data") or {})
    spec = c.data_spec(args, saved)
    divisor = (extra.get("data") or {}).get("divisor")
    if args.scale is None and divisor:
        spec["scale"] = divisor        # the inputs as the model was trained on them
    if args.split == "test":
        spec["limit"] = None       # --limit only trims the training rows
    if args.data and os.path.isfile(args.data) and args.test is None:
        # a file given here is evaluated whole (its test arrays, if an .npz has them)
        sets = c.read_single(args.data, net.sizes[-1], "none")
        X, y = sets.get(args.split) or sets["train"]
        X = X / datafiles.input_divisor(X, spec.get("scale") or "auto")
        name = source = args.data
    else:
        ds = c.load_data(spec, n_classes=net.sizes[-1])
        X, y = (ds.X_test, ds.y_test) if args.split == "test" else (ds.X_train, ds.y_train)
        name, source = ds.name, ds.source
    if X.shape[1] != net.sizes[0]:
        raise c.CommandError(f"{source}: examples have {X.shape[1]} inputs, the model "
                             f"takes {net.sizes[0]}")
    r = evaluate(net, np.asarray(X, dtype=net.dtype), y)
    r.update({"model": args.model, "data": source, "split": args.split, "epoch": net.epoch})
    if args.json:
        json.dump(r, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"model {args.model} ({','.join(map(str, net.sizes))}, epoch {net.epoch}) on "
          f"{name} {args.split} set ({r['n']} examples)")
    print(f"accuracy: {100 * r['accuracy']:.2f}% ({r['correct']}/{r['n']})")
    print(f"cost:     {r['cost']:.6f} ({net.cost_name})")
    print(c.format_confusion(np.array(r["confusion"])))
    return 0
