"""loopnet on an NVIDIA GPU (optional: ``pip install loopnet[cuda]``, the numba-cuda package).

``import loopnet`` never imports this package.  ``loopnet.cuda.to_device(net)``
returns a :class:`~loopnet.cuda.engine.CudaNet` with ``fit``, ``predict``,
``gradient``, ``gradient_sum``, ``cost``, ``weights``/``biases`` (copied back
on access) and ``to_cpu()``.  The kernels (:mod:`loopnet.cuda.kernels`) are the
component-form equations, one GPU thread per neuron of one example or per weight.

Without a GPU, set ``NUMBA_ENABLE_CUDASIM=1`` before anything imports
``numba.cuda`` to run them on Numba's CUDA simulator (slow; for tests).
"""

import numpy as _np

# numba-cuda 0.30.4 (the newest on PyPI, 2026-11) overloads np.row_stack when it first compiles a
# kernel, and NumPy 2.5 removed that alias of np.vstack: without it every kernel compile fails
# with "module 'numpy' has no attribute 'row_stack'" (seen on an H200 machine with NumPy 2.5.2).
if not hasattr(_np, "row_stack"):
    _np.row_stack = _np.vstack

try:
    from numba import cuda as _cuda  # noqa: F401  (numba-cuda provides the target)
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("loopnet.cuda needs the numba-cuda package: pip install 'loopnet[cuda]'") \
        from exc

from .engine import CudaNet, simulated, to_device  # noqa: E402

__all__ = ["CudaNet", "to_device", "simulated", "available"]


def available():
    """True when a CUDA GPU (or the simulator) can run the kernels."""
    return bool(_cuda.is_available())
