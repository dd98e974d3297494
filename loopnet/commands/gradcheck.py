"""``loopnet gradcheck``: backprop's gradient against central finite differences."""

import json
import sys

HELP = "check backprop's gradient against central finite differences, layer by layer"

DESCRIPTION = HELP + """.

Relative error = |numeric − backprop| / max(|numeric|, |backprop|, floor).  A correct
float64 gradient agrees to ~1e-12; the check fails above --tol (default 1e-7).  Exit
status 0 when every checked combination passes, 1 otherwise.
"""

EXAMPLES = """\
  loopnet gradcheck                                # [2,3,2] sigmoid, quadratic cost
  loopnet gradcheck --all-pairs                    # every activation/output/cost pair
  loopnet gradcheck --sizes 64,30,10 --output-activation softmax --cost log_likelihood --max-per-layer 50
"""


def add_arguments(parser):
    from .trace import add_common_network_arguments
    add_common_network_arguments(parser)
    parser.add_argument("--all-pairs", action="store_true",
                        help="check every valid activation/output/cost combination "
                             "(--activation/--output/--cost are then ignored)")
    parser.add_argument("--examples", type=int, default=4,
                        help="number of random examples the cost is averaged over (default 4)")
    parser.add_argument("--h", type=float, default=1e-3, help="finite-difference step (default 1e-3)")
    parser.add_argument("--order", type=int, default=4, choices=(2, 4),
                        help="central-difference stencil: 2 (two points) or 4 (four points, default)")
    parser.add_argument("--tol", type=float, default=1e-7,
                        help="largest acceptable relative error (default 1e-7)")
    parser.add_argument("--floor", type=float, default=1e-6,
                        help="gradients below this are compared absolutely (default 1e-6)")
    parser.add_argument("--max-per-layer", type=int, default=None, metavar="N",
                        help="check a random sample of N weights and N biases per layer "
                             "(default: every parameter)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                        help="dtype of the network (float32 is checked through a float64 copy)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--ascii", action="store_true", help="plain ASCII output")


def run(args):
    import loopnet
    from ..gradcheck import example_data, gradcheck, gradcheck_all_pairs, summary_table
    from .trace import _ints, write_text
    try:
        sizes = _ints(args.sizes)
        if args.examples < 1:
            raise ValueError(f"--examples must be at least 1, got {args.examples}")
        if args.max_per_layer is not None and args.max_per_layer < 1:
            raise ValueError(f"--max-per-layer must be at least 1, got {args.max_per_layer}")
        opts = dict(h=args.h, order=args.order, tol=args.tol, floor=args.floor,
                    max_per_group=args.max_per_layer, sample_seed=args.seed)
        if args.all_pairs:
            if args.dtype != "float64" or args.init != "default":
                raise ValueError("--all-pairs uses float64 networks with the default init")
            results = gradcheck_all_pairs(sizes, seed=args.seed, n_examples=args.examples, **opts)
        else:
            net = loopnet.Net(sizes, activation=args.activation, output=args.output,
                              cost=args.cost, seed=args.seed, init=args.init, dtype=args.dtype)
            X, Y = example_data(sizes, args.output, n_examples=args.examples, seed=args.seed + 1,
                                dtype=args.dtype)
            results = [gradcheck(net, X, Y, **opts)]
    except (ValueError, TypeError) as e:
        print(f"loopnet: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        payload = [r.to_dict() for r in results] if args.all_pairs else results[0].to_dict()
        write_text(json.dumps(payload, indent=1) + "\n")
    elif args.all_pairs:
        write_text(summary_table(results), ascii=args.ascii)
    else:
        write_text(results[0].table(), ascii=args.ascii)
    return 0 if all(r.ok for r in results) else 1
