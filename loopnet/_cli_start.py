"""What a Ctrl-C during ``import loopnet`` does: one line and exit 130 for the command line.

The ``loopnet`` command (and ``python -m loopnet``) import the package, and with it Numba,
before :func:`loopnet.cli.main` can catch anything; a Ctrl-C in that second would print a
traceback.  The package's ``__init__`` calls :func:`interrupted_while_starting` instead.
Imports only the standard library.
"""

import os
import sys


def started_as_command():
    """True when this process is the ``loopnet`` console script or ``python -m loopnet``."""
    argv0 = sys.argv[0] if sys.argv else ""
    return os.path.basename(argv0) in ("loopnet", "-m") or \
        argv0.endswith(os.path.join("loopnet", "__main__.py"))


def interrupted_while_starting():
    """Exit 130 with ``loopnet: error: interrupted`` for the command line; else re-raise."""
    if not started_as_command() or os.environ.get("LOOPNET_DEBUG"):
        raise KeyboardInterrupt
    sys.stderr.write("loopnet: error: interrupted\n")
    raise SystemExit(130)
