"""loopnet: backpropagation in the component form of the textbooks, compiled with Numba.

    >>> import loopnet
    >>> net = loopnet.Net([64, 30, 10], seed=0)
    >>> (X, y), (X_test, y_test) = loopnet.data.digits_split()
    >>> net.fit(X, y, epochs=30, batch_size=10, eta=3.0)   # doctest: +SKIP
"""

import os as _os
import sys as _sys

try:
    from . import activations, costs, data, kernels, reference
    from .gradcheck import gradcheck
    from .net import DivergenceError, Net, warmup
    from .trace import trace
except KeyboardInterrupt:
    # Importing NumPy and Numba takes a second or more.  Ctrl-C then, under the `loopnet`
    # command, ends with one line instead of a traceback; a library user's own script
    # gets the KeyboardInterrupt as usual.
    if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "loopnet":
        _sys.stderr.write("loopnet: interrupted\n")
        raise SystemExit(130) from None
    raise

__version__ = "0.1.0"
__all__ = ["Net", "DivergenceError", "warmup", "trace", "gradcheck", "activations", "costs", "data",
           "kernels", "reference"]
