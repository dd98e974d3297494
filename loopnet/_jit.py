"""Numba options in one place.

Every compiled function in loopnet is decorated with :func:`jit` (serial) or
:func:`pjit` (may contain ``prange``).  ``cache=True`` keeps compiled code on
disk so a second process starts in well under a second.

Floating-point flags
--------------------
``FASTMATH = {"contract", "reassoc"}``:

* ``contract`` lets LLVM fuse ``a*b + c`` into one FMA instruction.
* ``reassoc`` lets LLVM split a long sum such as z_j = Σ_k w_jk a_k into
  several partial sums that run in SIMD lanes.  Without it the sum is one
  dependent chain of additions and the forward pass of [784, 30, 10] runs
  about 10× slower (21 µs instead of 2 µs per example on layer 1).

Both change the last bits of a result compared with a plain Python loop, but
never between runs or thread counts: every number is computed by the same
compiled code whatever ``NUMBA_NUM_THREADS`` is (see :mod:`loopnet.engine`),
and results stay within 1e-10 relative of the NumPy reference (tested).
``nnan``/``ninf`` are NOT used: NaN must stay visible to divergence checks.

Cache caveat: Numba invalidates a cached function when ITS source file
changes, not when a function it calls changes in another file.  After
editing loopnet's kernels by hand, delete ``loopnet/__pycache__/*.nb[ic]``.
"""

import numba

FASTMATH = {"contract", "reassoc"}

OPTIONS = dict(cache=True, nogil=True, fastmath=FASTMATH)


def jit(fn):
    """Compile ``fn`` as a serial nopython function."""
    return numba.njit(**OPTIONS)(fn)


def pjit(fn):
    """Compile ``fn`` with ``parallel=True`` so that its ``prange`` loops run on threads."""
    return numba.njit(parallel=True, **OPTIONS)(fn)
