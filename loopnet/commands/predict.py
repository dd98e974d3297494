"""``loopnet predict``: predicted labels (or outputs) of a saved model for some inputs."""

from __future__ import annotations

import sys

from . import _common as c

HELP = "predict labels (or output activations) for inputs in a .npy/.npz/.csv/IDX file"

DESCRIPTION = """Print one predicted label per input row (argmax of the output layer), or
with --outputs the output activations. Inputs: a .npy array (rows, or images that are
flattened), a .npz (X or X_test), a CSV of x1,...,xn rows (a leading label column is
ignored), or an IDX image file (plain or .gz). Inputs are divided by the number recorded
when the model was trained (255 for IDX images), unless --scale says otherwise."""

EXAMPLES = """  loopnet predict model.npz images.npy
  loopnet predict model.npz t10k-images-idx3-ubyte.gz --output labels.csv
  loopnet predict model.npz rows.csv --outputs
"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="a model saved by 'loopnet train --save'")
    p.add_argument("input", metavar="INPUT", help=".npy, .npz, .csv or IDX file of inputs")
    p.add_argument("--outputs", action="store_true",
                   help="print the output activations instead of labels")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write to FILE (.npy or .csv) instead of standard output")
    p.add_argument("--scale", metavar="MODE", type=c._scale_mode, default=None,
                   help="divide inputs by: auto, none, 255, max or a number (default: what "
                        "the model was trained with, recorded in its file; else auto)")


def run(args):
    import numpy as np

    from .. import datafiles, io

    if args.output:
        if not args.output.lower().endswith((".npy", ".csv")):
            raise c.UsageError(f"--output {args.output}: use a .npy or .csv file name")
        args.output = c.resolve_outputs({"--output": args.output},
                                        {"MODEL": args.model, "INPUT": args.input})["--output"]
    net, meta = io.load_with_meta(args.model)
    scale = args.scale
    if scale is None:
        scale = ((meta.get("extra") or {}).get("data") or {}).get("divisor") or "auto"
    X = datafiles.load_inputs(args.input, n_inputs=net.sizes[0], scale=scale)
    out = net.predict(np.asarray(X, dtype=net.dtype))
    result = out if args.outputs else np.argmax(out, axis=1).astype(np.int64)
    if args.output:
        if args.output.lower().endswith(".npy"):
            io.atomic_write(args.output, lambda f: np.save(f, result, allow_pickle=False))
        else:
            text = _csv(result)
            io.atomic_write(args.output, lambda f: f.write(text.encode()))
        print(f"loopnet: {len(result)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(_csv(result))
    return 0


def _csv(result):
    if result.ndim == 1:
        return "".join(f"{int(v)}\n" for v in result)
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in result)
