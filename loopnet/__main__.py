"""``python -m loopnet``: the same as the ``loopnet`` command."""

import sys

from loopnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
