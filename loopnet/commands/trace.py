"""``loopnet trace``: one example through a small network, every equation with its numbers."""

import sys

import numpy as np

HELP = "show every z, a, δ and gradient of one example with its equation (BP1-BP4)"

DESCRIPTION = HELP + """.

Layers are counted as in Nielsen's book (0 = input, L = output); neurons j, k from 0,
as the arrays are indexed.  Each backward line is labelled BP1..BP4 and names the
kernel in loopnet/kernels.py that computed it.  --json prints one object with keys
sizes, activation, output, cost, x, y, weights, biases, z, a, delta, nabla_w, nabla_b,
cost_x (and dropout, with --dropout-epoch).  --html writes one self-contained page (no
network needed to open it) that steps through the forward pass, the cost, BP1-BP4 and the
update with the arrow keys; --png and --svg a static picture (matplotlib).  --model
traces a saved network on one example of a data set (--dataset, --index).  For a network
trained with dropout, --dropout-epoch E traces the training pass of epoch E instead, with
the dropout mask training applied to the example (row --dropout-example of the training
data; default: --index with --split train).
"""

EXAMPLES = """\
  loopnet trace --sizes 2,3,2 --seed 0            # every number of one example
  loopnet trace --sizes 2,3,2 --layer 1 --neuron 0 # only neuron 0 of layer 1
  loopnet trace --example hand_worked --digits 6  # the 2-2-2 network worked by hand
  loopnet trace --example chain --digits 9        # one neuron per layer, C0 = (a^L - y)^2
  loopnet trace --output-activation softmax --cost log_likelihood --label 1 --json > trace.json
  loopnet trace --sizes 2,3,2 --html trace.html    # open trace.html in a browser, press →
  loopnet trace --model fm.npz --dataset fashion-mnist --index 17 --html fm.html --png fm.png
  loopnet trace --model drop.npz --split train --index 5 --dropout-epoch 3  # with epoch 3's mask
"""


def _ints(text):
    try:
        vals = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
    return vals


def _floats(text):
    try:
        return [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def add_common_network_arguments(parser, default_sizes="2,3,2"):
    """--sizes, --seed, --activation, --output-activation, --cost, --init (shared with
    gradcheck).  ``--output`` is the old name of --output-activation (as in ``loopnet train``,
    where --output is kept hidden too: elsewhere it names an output file)."""
    import argparse

    from .. import activations, costs
    parser.add_argument("--sizes", default=default_sizes,
                        help=f"layer sizes, input first (default {default_sizes})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default 0)")
    parser.add_argument("--activation", default="sigmoid", choices=activations.HIDDEN_NAMES,
                        help="hidden-layer activation σ (default sigmoid)")
    parser.add_argument("--output-activation", dest="output", default="sigmoid",
                        choices=activations.NAMES, help="output-layer activation (default sigmoid)")
    parser.add_argument("--output", dest="output", choices=activations.NAMES,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--cost", default="quadratic", choices=costs.NAMES,
                        help="cost function (default quadratic, C = ½ Σ (a − y)²)")
    parser.add_argument("--init", default="default", choices=("default", "large"),
                        help="weight initialisation (default: N(0,1)/sqrt(n_in); large: N(0,1))")


def add_arguments(parser):
    add_common_network_arguments(parser)
    parser.add_argument("--x", help="input values, comma-separated (default: drawn with --seed, "
                        "rounded to 2 decimals)")
    parser.add_argument("--y", help="target values, comma-separated (default: one-hot of --label)")
    parser.add_argument("--label", type=int,
                        help="class label; the target is its one-hot vector (default: drawn)")
    parser.add_argument("--example", choices=("hand_worked", "chain"),
                        help="trace a network of loopnet.examples (its weights, x and y) "
                             "instead of a random one")
    parser.add_argument("--layer", type=int, help="show only layer L (0 = input, 1..L)")
    parser.add_argument("--neuron", type=int, help="show only neuron J (counted from 0)")
    parser.add_argument("--clip-norm", type=float, dest="clip_norm", metavar="C",
                        help="also show the example's clip factor min(1, C/||grad C_x||)")
    parser.add_argument("--digits", type=int, default=None,
                        help="significant digits per number (default 3; 4 in --html)")
    parser.add_argument("--json", action="store_true",
                        help="print the trace as one JSON object instead of text")
    parser.add_argument("--ascii", action="store_true",
                        help="spell Greek letters in ASCII (automatic if the terminal needs it)")
    g = parser.add_argument_group("pictures")
    g.add_argument("--html", metavar="FILE", help="write a page that steps through the trace "
                   "(self-contained: opens from disk, loads nothing)")
    g.add_argument("--png", metavar="FILE", help="write a static picture (needs matplotlib)")
    g.add_argument("--svg", metavar="FILE", help="write a static picture as SVG (needs matplotlib)")
    g.add_argument("--eta", type=float, default=None,
                   help="learning rate of the update step shown (default: the model's, else 3)")
    g.add_argument("--top", type=int, default=8,
                   help="terms of a wider sum shown one by one; the rest are summed (default 8)")
    d = parser.add_argument_group("a saved network on a real example")
    d.add_argument("--model", metavar="FILE", help="trace a network saved by loopnet.io.save / "
                   "'loopnet train --save' instead of a random one")
    d.add_argument("--dataset", choices=("digits", "fashion-mnist", "mnist"),
                   help="take the example from this data set (default with --model: the one "
                        "it was trained on)")
    d.add_argument("--data", metavar="PATH", help="directory of IDX files or a .csv/.npz file")
    d.add_argument("--index", type=int, default=0, help="which example (default 0)")
    d.add_argument("--split", choices=("test", "train"), default="test",
                   help="held-out (default) or training examples")
    d.add_argument("--dropout-epoch", type=int, dest="dropout_epoch", metavar="E",
                   help="a network trained with dropout: trace epoch E's training pass, with "
                        "the dropout mask training applied to this example")
    d.add_argument("--dropout-example", type=int, dest="dropout_example", metavar="I",
                   help="the example's row in the training data, which keys its mask "
                        "(default: --index with --split train)")


def build_net(args):
    import loopnet
    sizes = _ints(args.sizes)
    return loopnet.Net(sizes, activation=args.activation, output=args.output, cost=args.cost,
                       seed=args.seed, init=args.init)


def example_for(net, x_text=None, y_text=None, label=None):
    """The example to trace: given values, or drawn from ``net.rng`` (deterministic per seed)."""
    n_in, n_out = net.sizes[0], net.sizes[-1]
    rng = np.random.default_rng(net.rng.integers(2**63))
    x = _floats(x_text) if x_text is not None else list(np.round(rng.uniform(0, 1, n_in), 2))
    if len(x) != n_in:
        raise ValueError(f"--x has {len(x)} values but the network has {n_in} inputs")
    if y_text is not None and label is not None:
        raise ValueError("give either --y or --label, not both")
    if y_text is not None:
        y = _floats(y_text)
        if len(y) != n_out:
            raise ValueError(f"--y has {len(y)} values but the network has {n_out} outputs")
    else:
        if label is None:
            label = int(rng.integers(n_out))
        if not 0 <= label < n_out:
            raise ValueError(f"--label must be between 0 and {n_out - 1}, got {label}")
        y = [1.0 if j == label else 0.0 for j in range(n_out)]
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


def named_example(name):
    """(net, x, y) of the worked examples in :mod:`loopnet.examples`."""
    if name == "hand_worked":
        from ..examples import hand_worked as ex
        return ex.make_net(), np.array(ex.X), np.array(ex.Y)
    from ..examples import chain as ex
    return ex.make_net(), np.array([ex.X]), np.array([ex.Y])


def dataset_example(args, net, meta):
    """(x, y label, caption, class names, eta) for --model / --dataset."""
    from . import _common as c
    extra = (meta or {}).get("extra") or {}
    saved = dict(extra.get("data") or {})
    spec = {"dataset": args.dataset, "data": args.data, "test": None, "holdout": None,
            "limit": None, "scale": None}
    if args.dataset is None and args.data is None:
        spec = c.data_spec(argparse_namespace(spec), saved)
        if spec.get("dataset") is None and spec.get("data") is None:
            if net.sizes[0] != 64:
                raise ValueError("say which data set the example comes from (--dataset or --data)")
            spec["dataset"] = "digits"
    elif spec["scale"] is None and saved.get("divisor") and spec["dataset"] == saved.get("dataset"):
        spec["scale"] = saved["divisor"]
    ds = c.load_data(spec, n_classes=net.sizes[-1])
    X, y = (ds.X_test, ds.y_test) if args.split == "test" else (ds.X_train, ds.y_train)
    if not 0 <= args.index < len(y):
        raise ValueError(f"--index must be between 0 and {len(y) - 1} ({args.split} set of "
                         f"{ds.name}), got {args.index}")
    if X.shape[1] != net.sizes[0]:
        raise ValueError(f"{ds.name} examples have {X.shape[1]} inputs but the network has "
                         f"{net.sizes[0]}")
    label = int(y[args.index])
    names = None
    if ds.name == "fashion-mnist":
        from ..trace_html import FASHION_MNIST
        names = FASHION_MNIST
    caption = (f"{ds.name} {args.split} example {args.index}, label {label}"
               + (f" ({names[label]})" if names else "")
               + (f"; network from {args.model}" if args.model else ""))
    eta = (extra.get("train") or {}).get("eta")
    row = fit_row(args.index, len(ds.y_train), extra, spec.get("dataset")) \
        if args.split == "train" else None
    return np.asarray(X[args.index], dtype=np.float64), label, caption, names, eta, row


def fit_row(index, n_train, extra, dataset):
    """The row of training example ``index`` in the data ``fit`` was given: with the
    --validation split 'loopnet train' saved (:func:`loopnet.commands.train.validation_split`),
    its place among the training rows; None when it was held out for validation."""
    opts = extra.get("train")
    if not opts:                  # not saved by 'loopnet train': fit saw the rows as they are
        return index
    from .train import validation_split
    rows, _ = validation_split(n_train, opts.get("validation"), opts.get("seed") or 0, dataset)
    at = int(np.searchsorted(rows, index))
    return at if at < len(rows) and rows[at] == index else None


def dropout_option(args, net, row=None):
    """``trace(dropout=...)`` from --dropout-epoch / --dropout-example: None, or (epoch, row);
    ``row``: the traced example's row in the training data (:func:`fit_row`), if known."""
    if args.dropout_epoch is None:
        if args.dropout_example is not None:
            raise ValueError("--dropout-example needs --dropout-epoch")
        return None
    if not any(net.dropout):
        raise ValueError("--dropout-epoch: this network has no dropout (p = 0 in every hidden "
                         "layer), so training applied no mask")
    if args.dropout_example is not None:
        return args.dropout_epoch, args.dropout_example
    if args.split == "train" and (args.model or args.dataset or args.data):
        if row is None:
            raise ValueError(f"train example {args.index} was held out for validation: training "
                             f"applied no mask to it")
        return args.dropout_epoch, row
    raise ValueError("--dropout-epoch needs --dropout-example (the example's row in the "
                     "training data), or --split train and --index")


def argparse_namespace(d):
    import argparse
    return argparse.Namespace(**d)


def write_pictures(tr, args, caption="", names=None, eta=3.0):
    """--html / --png / --svg, one line on stderr per file written."""
    if args.html:
        tr.write_html(args.html, eta=eta, top=args.top, caption=caption, label_names=names,
                      digits=args.digits or 4)
        print(f"loopnet: wrote {args.html} (open it in a browser; → and ← step)", file=sys.stderr)
    for path in (args.png, args.svg):
        if path:
            from ..trace_plot import save_figure
            save_figure(tr, path, top=args.top, caption=caption, label_names=names)
            print(f"loopnet: wrote {path}", file=sys.stderr)


def write_text(text, ascii=False, stream=None):
    """Write ``text``; fall back to ASCII spellings if the stream cannot encode Greek letters."""
    from ..trace import ascii_text
    stream = sys.stdout if stream is None else stream
    if ascii:
        text = ascii_text(text)
    try:
        stream.write(text)
    except UnicodeEncodeError:
        stream.write(ascii_text(text))
    stream.flush()


def run(args):
    from . import _common as c
    from ..trace import render, to_json, trace
    pictures = args.html or args.png or args.svg
    caption, names, eta, row = "", None, None, None
    try:
        if args.digits is not None and not 1 <= args.digits <= 17:
            raise ValueError(f"--digits must be between 1 and 17, got {args.digits}")
        if args.top < 1:
            raise ValueError(f"--top must be at least 1, got {args.top}")
        if args.eta is not None and not (0 < args.eta < float("inf")):
            raise ValueError(f"--eta must be a finite number > 0, got {args.eta}")
        for path in (args.html, args.png, args.svg):
            c.check_output_path(path, "output file")
        if args.model and args.example:
            raise ValueError("give either --model or --example, not both")
        if args.model:
            from .. import io
            net, meta = io.load_with_meta(args.model)
        elif args.example:
            net, x, y = named_example(args.example)
        else:
            net, meta = build_net(args), None
        if args.model or args.dataset or args.data:
            if args.example:
                raise ValueError("--dataset/--data cannot be used with --example")
            x, y, caption, names, eta, row = dataset_example(args, net, meta)
        elif not args.example:
            x, y = example_for(net, args.x, args.y, args.label)
        tr = trace(net, x, y, dropout=dropout_option(args, net, row))
        if args.json:
            out = to_json(tr) + "\n"
        elif pictures:
            out = ""
        else:
            out = render(tr, layer=args.layer, neuron=args.neuron, digits=args.digits or 3,
                         clip_norm=args.clip_norm)
        if pictures:
            write_pictures(tr, args, caption, names, args.eta or eta or 3.0)
    except (ValueError, TypeError, OSError, c.CommandError, ImportError) as e:
        print(f"loopnet: error: {e}", file=sys.stderr)
        return 2
    if out:
        write_text(out, ascii=args.ascii)
    return 0
