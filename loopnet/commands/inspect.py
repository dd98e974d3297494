"""``loopnet inspect``: the hardest examples of a data set, by cost C_x or by ‖∇C_x‖."""

from __future__ import annotations

import json
import sys

from . import _common as c

HELP = "list the hardest examples of a data set by cost or per-example gradient norm"

DESCRIPTION = """List the examples of a data set on which a saved model does worst: by their
cost C_x, or by the norm of their own gradient ||grad C_x|| over all weights and biases
(computed exactly from each example's errors delta^l and activations a^(l-1), without forming
the per-example gradient: ||grad_(w^l,b^l) C_x||^2 = ||delta^l||^2 (||a^(l-1)||^2 + 1)).
Without data options the model's own held-out set is used, as for 'loopnet eval'."""

EXAMPLES = """  loopnet inspect model.npz --dataset digits --by grad-norm --top 10
  loopnet inspect model.npz --by cost --split train --json
"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="a model saved by 'loopnet train --save'")
    c.add_data_arguments(p)
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="inspect the held-out set (default) or the training set")
    p.add_argument("--by", choices=("cost", "grad-norm"), default="cost",
                   help="rank by C_x (default) or by ||grad C_x||")
    p.add_argument("--top", type=c.positive_int, default=10, metavar="K",
                   help="how many examples to list (default 10)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def hardest(net, X, y, by, top):
    """The ``top`` rows of X with the largest C_x (``by="cost"``) or ‖∇C_x‖, largest first:
    [{"row", "label", "predicted", "cost", "grad_norm"}]."""
    import numpy as np
    costs = net.per_example_costs(X, y)
    norms = net.per_example_gradient_norms(X, y)
    key = costs if by == "cost" else norms
    rows = np.argsort(-key, kind="stable")[:top]
    pred = np.argmax(net.predict(X[rows]), axis=1) if len(rows) else []
    return [{"row": int(r), "label": int(y[r]), "predicted": int(p), "cost": float(costs[r]),
             "grad_norm": float(norms[r])} for r, p in zip(rows, pred)]


def run(args):
    import numpy as np
    from .. import io

    net, meta = io.load_with_meta(args.model)
    extra = meta.get("extra") or {}
    given = any(getattr(args, k) is not None for k in ("dataset", "data", "test"))
    spec = c.data_spec(args, {} if given else dict(extra.get("data") or {}))
    divisor = (extra.get("data") or {}).get("divisor")
    if args.scale is None and divisor:
        spec["scale"] = divisor        # the inputs as the model was trained on them
    if args.split == "test":
        spec["limit"] = None
    ds = c.load_data(spec, n_classes=net.sizes[-1])
    X, y = (ds.X_test, ds.y_test) if args.split == "test" else (ds.X_train, ds.y_train)
    if X.shape[1] != net.sizes[0]:
        raise c.CommandError(f"{ds.source}: examples have {X.shape[1]} inputs, the model "
                             f"takes {net.sizes[0]}")
    top = hardest(net, np.asarray(X, dtype=net.dtype), y, args.by, args.top)
    if args.json:
        json.dump({"model": args.model, "data": ds.source, "split": args.split, "by": args.by,
                   "examples": top}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"the {len(top)} hardest of {len(y)} {ds.name} {args.split} examples by "
          f"{'C_x' if args.by == 'cost' else '||grad C_x||'} (model {args.model}, "
          f"{net.cost_name})")
    print(f"{'row':>7}  {'label':>5}  {'predicted':>9}  {'cost C_x':>10}  {'||grad C_x||':>12}")
    for e in top:
        print(f"{e['row']:>7}  {e['label']:>5}  {e['predicted']:>9}  {e['cost']:>10.5f}  "
              f"{e['grad_norm']:>12.5f}")
    return 0
