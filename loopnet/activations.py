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
        e = math.exp(-abs(z))
        return (1.0 if z >= 0 else e) / (1.0 + e)
    if act == TANH:
        return math.tanh(z)
    if act == RELU:
        return z if z > 0 else 0.0 * z
    return z  # IDENTITY


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
