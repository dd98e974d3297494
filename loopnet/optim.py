"""Parameter updates, one parameter at a time over the flat buffer.

=========  ==================================================================
optimizer  update for one parameter p with averaged gradient g = ∂C/∂p
=========  ==================================================================
sgd        w ← (1 − ηλ/n) w − η g          (network2's L2 weight decay)
           b ← b − η g                      (biases are not decayed)
momentum   v ← μ v − η g,   w ← (1 − ηλ/n) w + v   (Nielsen ch. 3; μ = 0 is plain sgd)
adam       g' = g + (λ/n) w  (L2 added to the gradient of weights)
           m ← β₁ m + (1 − β₁) g',  v ← β₂ v + (1 − β₂) g'²
           p ← p − η m̂ / (√v̂ + ε),  m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
=========  ==================================================================

With μ = 0 and λ = 0 the sgd line is exactly network.py's w ← w − (η/m) Σ_x ∇C_x.
"""

import math
from collections import namedtuple

import numpy as np

from ._jit import jit

SGD, ADAM = 0, 1
NAMES = ("sgd", "adam")

# Hyper-parameters of one run; ``decay`` = 1 − ηλ/n, ``l2`` = λ/n.
Hyper = namedtuple("Hyper", "kind eta decay l2 mu beta1 beta2 eps")
# Optimizer state, same layout as params; ``t`` is a one-element step counter.
State = namedtuple("State", "velocity m v t")


def code(name):
    """Integer code of the optimizer called ``name`` (``ValueError`` if unknown)."""
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(NAMES)}")
    return NAMES.index(name)


def make_hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon):
    """Pack validated hyper-parameters for the compiled update."""
    return Hyper(np.int64(code(optimizer)), float(eta), 1.0 - eta * lmbda / n, lmbda / n,
                 float(momentum), float(beta1), float(beta2), float(epsilon))


def make_state(n_params, dtype):
    """Zeroed optimizer state: velocity (momentum), m and v (Adam), t = 0."""
    return State(np.zeros(n_params, dtype), np.zeros(n_params, dtype),
                 np.zeros(n_params, dtype), np.zeros(1, np.int64))


@jit
def bias_corrections(hyper, t):
    """(1 − β₁ᵗ, 1 − β₂ᵗ) for Adam's step t (1-based)."""
    return 1.0 - hyper.beta1 ** t, 1.0 - hyper.beta2 ** t


@jit
def update_parameter(params, state, p, g, is_weight, hyper, c1, c2):
    """Apply one optimizer step to parameter ``p`` given its averaged gradient ``g``."""
    if hyper.kind == SGD:
        step = -hyper.eta * g
        if hyper.mu != 0.0:
            step = hyper.mu * state.velocity[p] + step
            state.velocity[p] = step
        if is_weight:
            params[p] = hyper.decay * params[p] + step
        else:
            params[p] = params[p] + step
    else:
        if is_weight:
            g = g + hyper.l2 * params[p]
        m = hyper.beta1 * state.m[p] + (1.0 - hyper.beta1) * g
        v = hyper.beta2 * state.v[p] + (1.0 - hyper.beta2) * g * g
        state.m[p] = m
        state.v[p] = v
        params[p] = params[p] - hyper.eta * (m / c1) / (math.sqrt(v / c2) + hyper.eps)
