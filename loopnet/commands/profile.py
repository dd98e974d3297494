"""``loopnet profile``: run a benchmark scenario from ``profiles/`` (validated, then timed).

The scenarios are NOT part of the installed package: they live in a source checkout's
``profiles/`` folder (next to the ``loopnet`` package, or where ``$LOOPNET_PROFILES``
points).  This command needs such a checkout; it locates the folder and runs a scenario
in this process, exactly as ``python profiles/<name>.py`` would.  An installed loopnet
without a checkout gets a one-line error saying so.
"""

import os
import sys

HELP = "time loopnet against NumPy, PyTorch and scikit-learn on a profiles/ scenario (--phases, --sweep)"

DESCRIPTION = """\
Validate every implementation against the NumPy reference, then time them side by side in
one process: NumPy matrix form, Nielsen-style per-example NumPy, loopnet on 1 and on all
threads, PyTorch CPU eager and scikit-learn when installed.  Prints a Markdown table (and
writes it to profiles/results/<machine>.md) with s/epoch, examples/s, GFLOP/s, the share of
the machine's peak measured in the same run, ratios to NumPy, and loopnet's cold-compile and
cached-start times.  Progress goes to stderr, the table to stdout.

Needs a source checkout of loopnet: the scenarios are the repository's profiles/ folder,
which a pip-installed loopnet does not ship (set $LOOPNET_PROFILES to point at one)."""

EPILOG = """\
scenarios: w1 [784,30,10] m=10, w2 [784,100,10] m=10, w3 [784,100,10] m=100,
           w4 [784,64,64,64,64,10] m=10, w5 [784,1000,10] m=100, all (every one + summary)
examples:
  loopnet profile w1                      # the Nielsen chapter-1 network, float64
  loopnet profile w2 --dtype both         # float64 and float32
  loopnet profile w1 --phases             # where one epoch's time goes
  loopnet profile --sweep                 # batch size, width, depth and thread scaling
  loopnet profile all --readme            # every scenario, summary into README.md
  loopnet profile w1 --quick              # smoke run: tiny epoch, nothing written
"""

PASS_THROUGH = ("dtype", "examples", "repeats", "impls", "sizes", "batch", "nielsen_fraction", "slow_fraction",
                "no_compile", "quick", "out", "threads", "readme", "png")


def add_arguments(parser):
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("scenario", nargs="?", default=None,
                        help="w1 … w5, all, or the path of a scenario file (default w1)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--phases", action="store_true",
                        help="break one epoch into phases (forward, output error, hidden errors, "
                             "gradient accumulation, reduction, update, Python overhead)")
    parser.add_argument("--sweep", action="store_true",
                        help="scaling sweep: batch size 1…1000, width, depth, threads 1…cores")
    g = parser.add_argument_group("scenario options")
    g.add_argument("--dtype", choices=("float64", "float32", "both"), default=None,
                   help="dtype of every implementation (default float64)")
    g.add_argument("--examples", "-n", type=int, default=None, metavar="N",
                   help="examples per epoch (default 50,000)")
    g.add_argument("--repeats", "-r", type=int, default=None, metavar="R",
                   help="timed epochs per implementation; the best is reported (default 3)")
    g.add_argument("--impls", default=None,
                   help="comma list among numpy,numpy1,nielsen,loopnet1,loopnet,torch1,torch,sklearn")
    g.add_argument("--sizes", default=None, help="override the layer sizes, e.g. 20,8,4")
    g.add_argument("--batch", "-m", type=int, default=None, help="override the mini-batch size")
    g.add_argument("--nielsen-fraction", type=float, default=None, metavar="F",
                   help="share of each epoch timed for the per-example NumPy code (scaled up)")
    g.add_argument("--slow-fraction", type=float, default=None, metavar="F",
                   help="share of each epoch timed for PyTorch and scikit-learn (default 0.25; scaled up)")
    g.add_argument("--no-compile", action="store_true", help="skip the cold/cached compile probe")
    g.add_argument("--quick", action="store_true",
                   help="smoke mode: tiny epoch, one repeat, no compile probe, nothing written")
    g.add_argument("--out", default=None, metavar="FILE",
                   help="results file (default profiles/results/<machine>.md; '-' writes nothing)")
    g.add_argument("--threads", default=None, help="--sweep/--phases: thread counts, e.g. 1,2")
    g.add_argument("--readme", action="store_true", help="all: put the summary into README.md")
    g.add_argument("--png", action="store_true", help="--sweep: also draw PNGs (needs matplotlib)")


def profiles_dir():
    """The profiles/ folder: $LOOPNET_PROFILES, else next to the package, else ./profiles."""
    from pathlib import Path

    from ._common import CommandError

    env = os.environ.get("LOOPNET_PROFILES")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "profiles", Path.cwd() / "profiles"]
    for c in candidates:
        if (c / "_harness.py").is_file():
            return c
    raise CommandError("loopnet profile needs a source checkout: the profiles/ scenarios are not "
                       "installed with the package; run it from a loopnet checkout (git clone) "
                       "or set LOOPNET_PROFILES to its profiles/ folder")


def _argv(args):
    out = []
    for name in PASS_THROUGH:
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value not in (None, False):
            out += [flag, str(value)]
    return out


def run(args):
    try:
        return _run(args)
    except SystemExit as exc:  # argparse inside a profiles script: a usage error
        return exc.code if isinstance(exc.code, int) else 2


def _run(args):
    import importlib

    from ._common import CommandError, UsageError

    folder = profiles_dir()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    harness = importlib.import_module("_harness")
    if args.list:
        for key, sc in harness.SCENARIOS.items():
            print(f"{key}  {sc.sizes}  m={sc.m}  {sc.note}")
        print("all  every scenario above, float64 and float32, with a summary table")
        return 0
    argv = _argv(args)
    if args.sweep:
        return importlib.import_module("sweep").main(argv)
    scenario = args.scenario or "w1"
    if args.phases:
        return importlib.import_module("phases").main([scenario] + argv)
    if scenario == "all":
        return importlib.import_module("suite").main(argv)
    if scenario.endswith(".py"):
        import runpy

        if not os.path.isfile(scenario):
            raise CommandError(f"{scenario}: no such scenario file")
        old = sys.argv
        sys.argv = [scenario] + argv
        try:
            runpy.run_path(scenario, run_name="__main__")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 0
        finally:
            sys.argv = old
        return 0
    if scenario not in harness.SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; choose one of "
                         f"{', '.join(harness.SCENARIOS)}, all (see 'loopnet profile --list')")
    if args.threads or args.readme or args.png:
        raise UsageError("--threads/--readme/--png apply to --phases, all and --sweep")
    return harness.main_for(scenario, argv)
