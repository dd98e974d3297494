"""loopnet: backpropagation in the component form of the textbooks, compiled with Numba.

    >>> import loopnet
    >>> net = loopnet.Net([64, 30, 10], seed=0)
    >>> (X, y), (X_test, y_test) = loopnet.data.digits_split()
    >>> net.fit(X, y, epochs=30, batch_size=10, eta=3.0)   # doctest: +SKIP
"""

from . import activations, costs, data, kernels, reference
from .gradcheck import gradcheck
from .net import DivergenceError, Net, warmup
from .trace import trace

__version__ = "0.1.0"
__all__ = ["Net", "DivergenceError", "warmup", "trace", "gradcheck", "activations", "costs", "data",
           "kernels", "reference"]
