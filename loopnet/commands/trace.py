"""``loopnet trace``: one example through a small network, every equation with its numbers."""

import sys

import numpy as np

HELP = "show every z, a, δ and gradient of one example with its equation (BP1-BP4)"

DESCRIPTION = HELP + """.

Layers are counted as in Nielsen's book (0 = input, L = output); neurons j, k from 0,
as the arrays are indexed.  Each backward line is labelled BP1..BP4 and names the
kernel in loopnet/kernels.py that computed it.  --json prints one object with keys
sizes, activation, output, cost, x, y, weights, biases, z, a, delta, nabla_w, nabla_b.
"""

EXAMPLES = """\
  loopnet trace --sizes 2,3,2 --seed 0            # every number of one example
  loopnet trace --sizes 2,3,2 --layer 1 --neuron 0 # only neuron 0 of layer 1
  loopnet trace --example hand_worked --digits 6  # the 2-2-2 network worked by hand
  loopnet trace --example chain --digits 9        # one neuron per layer, C0 = (a^L - y)^2
  loopnet trace --output softmax --cost log_likelihood --label 1 --json > trace.json
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
    """--sizes, --seed, --activation, --output, --cost, --init (shared with gradcheck)."""
    from .. import activations, costs
    parser.add_argument("--sizes", default=default_sizes,
                        help=f"layer sizes, input first (default {default_sizes})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default 0)")
    parser.add_argument("--activation", default="sigmoid", choices=activations.HIDDEN_NAMES,
                        help="hidden-layer activation σ (default sigmoid)")
    parser.add_argument("--output", default="sigmoid", choices=activations.NAMES,
                        help="output-layer activation (default sigmoid)")
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
    parser.add_argument("--digits", type=int, default=3,
                        help="significant digits per number (default 3)")
    parser.add_argument("--json", action="store_true",
                        help="print the trace as one JSON object instead of text")
    parser.add_argument("--ascii", action="store_true",
                        help="spell Greek letters in ASCII (automatic if the terminal needs it)")


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
    import loopnet
    from ..trace import render, to_json, trace
    try:
        if args.digits < 1 or args.digits > 17:
            raise ValueError(f"--digits must be between 1 and 17, got {args.digits}")
        if args.example:
            net, x, y = named_example(args.example)
        else:
            net = build_net(args)
            x, y = example_for(net, args.x, args.y, args.label)
        tr = trace(net, x, y)
        if args.json:
            out = to_json(tr) + "\n"
        else:
            out = render(tr, layer=args.layer, neuron=args.neuron, digits=args.digits)
    except (ValueError, TypeError) as e:
        print(f"loopnet: error: {e}", file=sys.stderr)
        return 2
    write_text(out, ascii=args.ascii)
    return 0
