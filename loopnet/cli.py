"""The ``loopnet`` command (also ``python -m loopnet``).

Each subcommand is a module ``loopnet/commands/<name>.py`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (optionally ``DESCRIPTION`` and
``EXAMPLES``). Register one by adding a line to :data:`COMMANDS`. Modules are imported only
when needed (``loopnet --help`` imports them for their ``HELP`` but never runs them), and a
registered module that is not installed is skipped.

A registered module whose
imports fail is left out of ``loopnet --help`` (and named there); running it says why.

Exit codes: 0 success, 1 failure, 2 usage; errors are one line ``loopnet: error: ...`` on
stderr without a traceback (set ``LOOPNET_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {
    "train": "loopnet.commands.train",
    "eval": "loopnet.commands.eval",
    "predict": "loopnet.commands.predict",
    "info": "loopnet.commands.info",
    "trace": "loopnet.commands.trace",
    "inspect": "loopnet.commands.inspect",
    "gradcheck": "loopnet.commands.gradcheck",
    "profile": "loopnet.commands.profile",
}

PROG = "loopnet"

_EPILOG = """examples:
  loopnet train                                  # [64,30,10] on the embedded digits
  loopnet train --dataset fashion-mnist --epochs 10 --save fm.npz
  loopnet eval fm.npz
  loopnet <command> --help                       # options of one command
"""


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and no sys.exit, so main() can return the code."""

    def error(self, message):
        import difflib
        import re
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
        where = self.prog[len(PROG) + 1:]
        raise _Usage(f"{where + ': ' if where else ''}{message} (see '{self.prog} --help')")


def _import(name):
    """The command module, or None when its module is not installed."""
    modname = COMMANDS[name]
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and (modname == exc.name or modname.startswith(exc.name + ".")):
            return None
        raise


def _version():
    try:
        from importlib.metadata import version
        return version("loopnet")
    except Exception:   # not installed (run from a source tree)
        from . import __version__
        return __version__


def build_parser(only=None):
    """The full parser; ``only`` limits which subcommand modules get imported."""
    parser = _Parser(prog=PROG, description="Backpropagation in component form, compiled "
                     "with Numba: train, evaluate and inspect networks.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"loopnet {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    broken = []
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            module = _import(name)
        except Exception as exc:     # a registered command whose own imports fail
            if only is not None:
                from .commands._common import CommandError
                raise CommandError(f"command '{name}' cannot be loaded: "
                                   f"{type(exc).__name__}: {exc}") from None
            broken.append(name)      # keep `loopnet --help` working for the others
            continue
        if module is None:
            continue
        epilog = getattr(module, "EXAMPLES", None)
        p = sub.add_parser(name, help=module.HELP,
                           description=getattr(module, "DESCRIPTION", module.HELP),
                           epilog=("examples:\n" + epilog) if epilog else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    if broken:
        parser.epilog += (f"\nnot available here (their imports fail; run one for the "
                          f"reason): {', '.join(broken)}\n")
    return parser


def _one_line(text):
    return " ".join(str(text).split())


def _error(message, code):
    sys.stderr.write(f"{PROG}: error: {_one_line(message)}\n")
    sys.stderr.flush()
    return code


def main(argv=None):
    """Run the command line; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("LOOPNET_DEBUG"))
    first = next((a for a in argv if not a.startswith("-")), None)
    only = first if first in COMMANDS and "-h" not in argv[:argv.index(first)] else None
    try:
        parser = build_parser(only)
        try:
            args, unknown = parser.parse_known_args(argv)
            if unknown:
                sub = f"{PROG} {args.command}" if getattr(args, "command", None) else PROG
                raise _Usage(f"{sub[len(PROG) + 1:] + ': ' if sub != PROG else ''}unrecognized "
                             f"arguments: {' '.join(unknown)} (see '{sub} --help')")
        except _Usage as exc:
            return _error(exc, 2)
        except SystemExit as exc:          # --help / --version
            return exc.code if isinstance(exc.code, int) else 0
        if getattr(args, "_run", None) is None:
            if args.command is None:
                parser.print_help()
                return 2
            return _error(f"command '{args.command}' is not installed", 1)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        return _error("interrupted", 130)
    except BrokenPipeError:               # e.g. `loopnet predict ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as exc:  # every failure becomes one line
        if debug:
            raise
        from .commands._common import CommandError
        if isinstance(exc, CommandError):
            return _error(exc, exc.code)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            return _error(f"{exc.filename}: {exc.strerror}", 1)
        if isinstance(exc, (ValueError, TypeError, OSError)):
            return _error(exc, 1)
        return _error(f"unexpected {type(exc).__name__}: {exc} (set LOOPNET_DEBUG=1 for a "
                      "traceback and please report it)", 1)


if __name__ == "__main__":
    sys.exit(main())
