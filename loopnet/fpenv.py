"""The floating-point environment of the engine's threads: flushing subnormal numbers to zero.

A float is subnormal when it is nonzero and below the dtype's smallest normal number (1.18e-38
in float32, 2.2e-308 in float64).  x86 cores compute with such numbers through a microcode
assist, tens to hundreds of cycles instead of one.  float32 training meets them wherever a
sigmoid saturates: σ(z) for z < −87, or δ^L = (a − y) σ'(z) where a and σ'(z) are both small.
In W5 (profiles/README, eighteenth round) 43 % of δ^L were subnormal and a float32 epoch of
10,000 examples took 0.29 s on a 2-core Xeon; with them flushed, 0.18 s.

Two bits of the x86 MXCSR register decide (for SSE and AVX arithmetic, per thread):

* FTZ (flush to zero, bit 15): a result that would be subnormal is 0 (with the sign kept);
* DAZ (denormals are zero, bit 6): a subnormal operand counts as 0.

:func:`enter` sets both in the calling thread (or clears both, for "keep", so that a caller's
own setting changes no result) and returns the register's old value, which :func:`leave` puts
back: the engine brackets each of its parallel tasks with them (``engine.Arch.flush``), so
the threads it borrows from Numba's pool are left as they were found.  Its driver's thread
does not flush outside the tasks: Numba's pool creates its threads during the first parallel
region, and a new thread inherits its creator's MXCSR.  Every task of a run sets the same two
bits, so a result does not depend on the thread count.  (LLVM does not order plain
arithmetic after a write to MXCSR; it may compute a loop-invariant value, such as η/m, before
a task's :func:`enter`: the same code in every thread, so the same bits.)

What flushes: every run of the engine (``fit``, ``predict``, ``cost``, ``gradient_sum``: all go
through ``engine.run_batches``).  What does not: ``Net.step`` (a serial update), the trace
(``loopnet.trace``, which calls the kernels themselves) and the NumPy reference, so in a
float32 net that meets subnormals those differ from training's numbers by less than 1.2e-38
each.  Elsewhere than x86-64, and with the JIT off, :func:`enter` changes nothing and returns
-1 (AArch64 has its own FZ bit in FPCR; not handled here).
"""

import platform

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

FLUSH_BITS = 0x8040      # FTZ (bit 15) | DAZ (bit 6)
X86 = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _exchange_mxcsr(typingctx, value):
    """MXCSR's current value; then, if value ≥ 0, MXCSR = value."""
    def codegen(context, builder, sig, args):
        i32, byte_ptr = ir.IntType(32), ir.IntType(8).as_pointer()
        signature = ir.FunctionType(ir.VoidType(), [byte_ptr])
        save = cgutils.get_or_insert_function(builder.module, signature, "llvm.x86.sse.stmxcsr")
        load = cgutils.get_or_insert_function(builder.module, signature, "llvm.x86.sse.ldmxcsr")
        slot = cgutils.alloca_once(builder, i32)
        builder.call(save, [builder.bitcast(slot, byte_ptr)])
        old = builder.load(slot)
        with builder.if_then(builder.icmp_signed(">=", args[0], ir.Constant(args[0].type, 0))):
            builder.store(builder.trunc(args[0], i32), slot)
            builder.call(load, [builder.bitcast(slot, byte_ptr)])
        return builder.zext(old, ir.IntType(64))
    return types.int64(types.int64), codegen


def _unavailable(value):
    """Where MXCSR cannot be reached (JIT off, not x86-64): nothing is read or set."""
    return -1


exchange = _exchange_mxcsr if X86 and not numba.config.DISABLE_JIT else _unavailable


@jit
def read():
    """MXCSR of the calling thread (-1 where it cannot be read)."""
    return exchange(-1)


@jit
def enter(flush):
    """FTZ and DAZ on in this thread if ``flush``, off if not (whatever the caller had set, e.g.
    ``torch.set_flush_denormal(True)``: the engine's numbers do not depend on it); returns
    MXCSR's old value for :func:`leave`, or -1 when nothing was changed."""
    old = exchange(-1)
    if old < 0:
        return -1
    want = old | FLUSH_BITS if flush else old & ~FLUSH_BITS
    if want == old:
        return -1
    exchange(want)
    return old


@jit
def leave(old):
    """Put back the MXCSR value :func:`enter` returned (nothing for -1)."""
    if old >= 0:
        exchange(old)


class flushed:
    """``with flushed():`` runs its block with subnormals flushed in THIS thread (e.g. a naive
    loop of the kernels, to compare with the engine bit for bit); ``flushed(False)`` leaves
    everything as it is."""

    def __init__(self, flush=True):
        self.flush = flush
        self.old = -1

    def __enter__(self):
        self.old = enter(self.flush)
        return self

    def __exit__(self, *exc):
        leave(self.old)
