"""Numba options in one place.

Every compiled function in loopnet is decorated with :func:`jit` (serial) or
:func:`pjit` (may contain ``prange``).  ``cache=True`` keeps compiled code on
disk so a second process starts in well under a second.

Floating-point flags
--------------------
``FASTMATH = {"contract"}`` lets LLVM fuse ``a*b + c`` into one FMA
instruction.  That changes the last bit of some results compared with plain
Python, but never between runs or thread counts: the same compiled code runs
whatever ``NUMBA_NUM_THREADS`` is.  We do **not** allow ``reassoc``: sums are
taken in the order the equations write them (k = 0, 1, 2, ...), and no
``nnan``/``ninf``, because NaN must stay visible to divergence checks.
"""

import numba

FASTMATH = {"contract"}

OPTIONS = dict(cache=True, nogil=True, fastmath=FASTMATH)


def jit(fn):
    """Compile ``fn`` as a serial nopython function."""
    return numba.njit(**OPTIONS)(fn)


def pjit(fn):
    """Compile ``fn`` with ``parallel=True`` so that its ``prange`` loops run on threads."""
    return numba.njit(parallel=True, **OPTIONS)(fn)
