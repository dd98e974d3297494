"""The ``loopnet`` console script: loopnet.cli.main, with Ctrl-C quiet from the first moment.

Importing loopnet loads NumPy and Numba (a second or more); this module is outside the
package so that a Ctrl-C during those imports ends with one line, not a traceback.
"""

import sys


def main():
    try:
        from loopnet.cli import main as loopnet_main
    except KeyboardInterrupt:
        sys.stderr.write("loopnet: interrupted\n")
        return 130
    return loopnet_main()


if __name__ == "__main__":
    sys.exit(main())
