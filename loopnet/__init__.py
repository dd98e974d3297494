"""loopnet: backpropagation in the component form of the textbooks, compiled with Numba.

    >>> import loopnet
    >>> net = loopnet.Net([64, 30, 10], seed=0)
    >>> (X, y), (X_test, y_test) = loopnet.data.digits_split()
    >>> net.fit(X, y, epochs=30, batch_size=10, eta=3.0)   # doctest: +SKIP
"""

from ._cli_start import interrupted_while_starting

try:
    from . import activations, costs, data, kernels, reference
    from .gradcheck import gradcheck
    from .net import DivergenceError, Net, warmup
    from .trace import trace
except KeyboardInterrupt:       # Ctrl-C while the `loopnet` command starts (imports numba):
    interrupted_while_starting()          # exits 130 quietly for the command line, else re-raises

__version__ = "0.1.0"
__all__ = ["Net", "DivergenceError", "warmup", "trace", "gradcheck", "activations", "costs", "data",
           "kernels", "reference"]
