"""Activation functions σ and their derivatives σ', as integer codes.

Kernels cannot take Python callables without recompiling for each one, so an
activation is passed to them as a small integer and :func:`sigma` /
:func:`sigma_prime` branch on it.  The branch is on a loop-invariant value and
costs nothing measurable next to the multiply-adds.

=========  =======================  ==============================
name       σ(z)                     σ'(z)
=========  =======================  ==============================
sigmoid    1 / (1 + e^{-z})         σ(z) (1 − σ(z))
tanh       tanh z                   1 − tanh² z
relu       max(0, z)                1 if z > 0 else 0
identity   z                        1
softmax    e^{z_j} / Σ_k e^{z_k}    (output layer only; not elementwise, see kernels.output_delta)
=========  =======================  ==============================
"""

import math
import struct

from numba import types
from numba.cpython.unsafe.numbers import viewer
from numba.extending import overload

from ._jit import jit

SIGMOID, TANH, RELU, IDENTITY, SOFTMAX = 0, 1, 2, 3, 4
NAMES = ("sigmoid", "tanh", "relu", "identity", "softmax")
HIDDEN_NAMES = NAMES[:4]


def code(name):
    """Integer code of the activation called ``name`` (``ValueError`` if unknown)."""
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(NAMES)}")
    return NAMES.index(name)


@jit
def sigma(act, z):
    """σ(z) for the elementwise activations.

    The sigmoid is evaluated as e^z / (1 + e^z) for z < 0 so that e^{-z}
    never overflows; both forms equal 1 / (1 + e^{-z}).  They are written as
    one e = e^{−|z|} and a choice of numerator, (1 or e) / (1 + e), the same
    numbers without a branch on the sign of z: half the pre-activations of a
    layer are negative, in no order a CPU predicts, and the mispredicted branch
    cost as much as the exponential (11.8 against 5.9 ns per element on the
    2-core EPYC of profiles/results).
    """
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        return math.tanh(z)
    if act == RELU:
        return z if z > 0 else 0.0 * z
    return z  # IDENTITY


@jit
def sigmoid(z):
    """σ(z) = 1 / (1 + e^{−z}), as :func:`sigma` explains."""
    e = exp_nonpositive(-abs(z))
    return (1.0 if z >= 0 else e) / (1.0 + e)


# e^x for x ≤ 0 (exp_nonpositive): x = n ln 2 + r, |r| ≤ ln 2 / 2, e^x = 2^n e^r.
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01      # ln 2 in two parts (Cody and Waite): n · LN2_HI is
LN2_LO = 1.90821492927058770002e-10      # exact for |n| < 2^11
ROUNDER = 6755399441055744.0             # 1.5 · 2^52: x + ROUNDER − ROUNDER rounds x to an integer
EXP_FLOOR = -746.0                       # e^x < 2^−1075 below: rounds to 0


@jit
def exp_nonpositive(x):
    """e^x for x ≤ 0 (0 for x < −746), within one ulp of libm's ``exp``.

    Written with no call and no branch so that LLVM vectorises the loops that call it (a
    libm call per element kept :func:`sigma`'s loops scalar: 4.3 ns against 0.9 per sigmoid
    on the Xeon of profiles/README's seventeenth round).  Cody and Waite's reduction:
    n = round(x / ln 2) (by adding and subtracting 1.5 · 2^52), r = x − n ln 2 (in two
    parts), e^r by its Taylor series to r^13 (|r| ≤ 0.347: truncation below 2^−60), then
    e^x = e^r · 2^{n₁} · 2^{n − n₁} with n₁ = ⌊n/2⌋, two normal powers of two whose product
    underflows gradually, as e^x does.  Checked against NumPy's exp over [−746, 0]
    (tests/test_kernels.py).
    """
    x = max(float(x), EXP_FLOOR)      # float64 (a float32 x: NumPy would keep float32 in Python)
    t = x * LOG2E + ROUNDER
    n = t - ROUNDER
    r = (x - n * LN2_HI) - n * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = float_bits(t) - float_bits(ROUNDER)          # n as an integer
    half = k >> 1
    return p * from_bits((half + 1023) << 52) * from_bits((k - half + 1023) << 52)


def float_bits(x):
    """The IEEE 754 bits of the float64 x, as an int64."""
    return struct.unpack("<q", struct.pack("<d", x))[0]


def from_bits(i):
    """The float64 whose IEEE 754 bits are the int64 i (wrapped to 64 bits, as compiled)."""
    return struct.unpack("<d", struct.pack("<q", (int(i) + 2**63) % 2**64 - 2**63))[0]


@overload(float_bits)
def _float_bits(x):
    return lambda x: viewer(float(x), types.int64)      # Numba's own bitcast


@overload(from_bits)
def _from_bits(i):
    return lambda i: viewer(i, types.float64)


@jit
def sigma_prime(act, z):
    """σ'(z) = dσ/dz for the elementwise activations."""
    return sigma_prime_of(act, z, sigma(act, z))


@jit
def sigma_prime_of(act, z, a):
    """σ'(z) from z and the activation a = σ(z) that the forward pass already holds.

    sigmoid: σ'(z) = σ(z)(1 − σ(z)) = a(1 − a);  tanh: 1 − tanh² z = 1 − a²;
    relu: 1 if z > 0 else 0;  identity: 1.  Reusing a saves the exp and tanh
    that recomputing σ(z) would cost (they dominated BP2), with the same bits.
    """
    if act == SIGMOID:
        return a * (1.0 - a)
    if act == TANH:
        return 1.0 - a * a
    if act == RELU:
        return 1.0 if z > 0 else 0.0
    return 1.0  # IDENTITY
