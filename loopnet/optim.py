"""Parameter updates over the flat buffer, one contiguous block at a time.

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

Each update is one branch-free pass over a contiguous range of the flat buffer
(the weights of some rows, or their biases), which LLVM vectorises.  It takes
the gradient SUM over the m examples and divides by m as it goes.  With μ = 0
and λ = 0 the sgd line is network.py's w ← w − (η/m) Σ_x ∇C_x.
"""

import math
from collections import namedtuple

import numpy as np

from ._jit import jit, jit_inner

SGD, ADAM = 0, 1
NAMES = ("sgd", "adam")

# Hyper-parameters of one run; ``shrink`` = ηλ/n, ``l2`` = λ/n; ``ex``: the per-example
# :class:`Rules`, or None when there are none (plain training: Numba then compiles the engine
# without the per-example code, a sixth of a cold compile, as each ``if ex is not None`` is
# decided while compiling; the defaults of make_rules() give the same bits).
Hyper = namedtuple("Hyper", "kind eta shrink l2 mu beta1 beta2 eps ex")
# Hyper without ``ex``: what a parallel region may capture (Numba's prange cannot take a
# tuple nested in a tuple when it holds arrays, so the engine passes ``ex`` beside it).
Step = namedtuple("Step", "kind eta shrink l2 mu beta1 beta2 eps")

#: What happens to each example's gradient before the mini-batch's sum, and to the sum
#: (see loopnet.engine, phases A2 and B):
#:
#: * ``weight`` (float64, one per row of X; empty: every w_x = 1) and ``clip`` (C; inf:
#:   none): δ^x of every layer is scaled by f_x = w_x · min(1, C/‖∇C_x‖), which scales
#:   the whole ∇C_x = (δ^x, δ^x a^{x,T});
#: * ``norms`` (float64, (rows, L); 0 rows: not written): ‖∇_{w^l,b^l} C_x‖² of example
#:   order[p] in row p, before any scaling;
#: * ``sigma``, ``noise_seed``: DP-SGD adds σC·N(0, 1) keyed by (noise_seed, step,
#:   parameter index) to each coordinate of the clipped sum (σ = 0: none);
#: * ``denom``: divide the sum by it instead of by m (DP-SGD with Poisson batches: q·n);
#:   0 means m;
#: * ``drop`` (float64, one p per layer, the output's 0; empty: none) and ``drop_seed``:
#:   inverted dropout in training, the mask of example x (row of X), layer l, neuron j
#:   keyed by (drop_seed, x, l, j).
Rules = namedtuple("Rules", "weight clip norms sigma noise_seed denom drop drop_seed")


#: Whether this process has made per-example rules (:func:`make_rules`): from then on, plain
#: runs pass the default rules (same bits) instead of None, so that the engine already
#: compiled with the rules' code serves them too, rather than a second compile without it
#: (on an empty cache: 32 s more on a 2-core machine).
_rules_made = False


def make_rules(weight=None, clip=math.inf, norms=None, sigma=0.0, noise_seed=0, denom=0.0,
               drop=None, drop_seed=0):
    """Pack per-example rules for the engine (defaults: none, plain SGD)."""
    global _rules_made
    _rules_made = True
    empty = np.empty(0, np.float64)
    return Rules(empty if weight is None else np.ascontiguousarray(weight, np.float64),
                 float(clip), np.empty((0, 0), np.float64) if norms is None else norms,
                 float(sigma), np.int64(noise_seed), float(denom),
                 empty if drop is None else np.ascontiguousarray(drop, np.float64),
                 np.int64(drop_seed))
# Optimizer state, same layout as params; ``t`` is a one-element step counter.
State = namedtuple("State", "velocity m v t")


def code(name):
    """Integer code of the optimizer called ``name`` (``ValueError`` if unknown)."""
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(NAMES)}")
    return NAMES.index(name)


def no_rules():
    """The ``ex`` of a run without per-example rules: None, or make_rules()'s defaults once
    this process has compiled the engine with rules (see ``_rules_made``)."""
    return make_rules() if _rules_made else None


def make_hyper(optimizer, eta, lmbda, n, momentum, beta1, beta2, epsilon, rules=None):
    """Pack validated hyper-parameters for the compiled update (``rules``: :func:`make_rules`;
    None: :func:`no_rules`)."""
    return Hyper(np.int64(code(optimizer)), float(eta), eta * lmbda / n, lmbda / n,
                 float(momentum), float(beta1), float(beta2), float(epsilon),
                 no_rules() if rules is None else rules)


def step_part(hyper):
    """The :class:`Step` of a :class:`Hyper`, built in Python (what :func:`step_of` gives compiled code).

    The engine's updates are compiled for a Step; handing them one from Python as well means
    ``loopnet.engine.apply_step`` reuses the update code ``run_batches`` compiled instead of
    compiling every update a second time for the Hyper type."""
    return Step(*hyper[:len(Step._fields)])


@jit
def step_of(hyper):
    """The optimizer's part of ``hyper`` (a :class:`Step`: every field but ``ex``)."""
    return Step(hyper.kind, hyper.eta, hyper.shrink, hyper.l2, hyper.mu, hyper.beta1,
                hyper.beta2, hyper.eps)


#: Whether this process has run an optimizer that keeps moments (momentum or Adam): from then
#: on plain SGD is given the whole state too (same bits), so that the engine already compiled
#: with the moments' code serves it, rather than a second compile without it.
_moments_used = False


def engine_state(state, hyper):
    """``state`` as the engine is to see it for ``hyper`` (a Hyper or Step): plain SGD without
    momentum reads neither the velocity nor Adam's moments, so they go as None and Numba
    compiles the update without them (a tenth of a cold compile), until this process has run
    momentum or Adam (``_moments_used``).  The step counter ``t`` is the same array."""
    if hyper.kind == SGD and hyper.mu == 0.0:
        return state if _moments_used else State(None, None, None, state.t)
    use_moments()
    return state


def use_moments():
    """From now on, give the engine the whole state for plain SGD too (see engine_state)."""
    global _moments_used
    _moments_used = True


def make_state(n_params, dtype):
    """Zeroed optimizer state: velocity (momentum), m and v (Adam), t = 0."""
    return State(np.zeros(n_params, dtype), np.zeros(n_params, dtype),
                 np.zeros(n_params, dtype), np.zeros(1, np.int64))


@jit_inner
def sgd_update(w, g_sum, m, decay, hyper):
    """w ← (1 − ηλ/n) w − (η/m) Σ_x ∂C_x/∂w, elementwise (biases: decay = 1).

    η/m multiplies the gradient sum as in network.py; a division per
    parameter would cost more than the update itself.  The factors are
    rounded to the parameters' dtype first, so float32 updates run in float32.

    Without decay (biases, λ = 0) the step is written w − (η/m) g, with one product:
    ``contract`` lets LLVM fuse one of the two products of (1 − ηλ/n) w − (η/m) g into an
    FMA, and where it sees decay = 1 as a constant (one caller) it fuses the other one
    than where decay is a value (another caller), which rounds some parameters differently
    (found by tests/test_engine.py's naive loop on a [9000, 70, 5] network).
    """
    step = w.dtype.type(hyper.eta / m)
    keep = w.dtype.type(decay)
    if decay == 1.0:
        for p in range(w.shape[0]):
            w[p] = w[p] - step * g_sum[p]
    else:
        for p in range(w.shape[0]):
            w[p] = keep * w[p] - step * g_sum[p]


@jit_inner
def momentum_update(w, velocity, g_sum, m, decay, hyper):
    """v ← μ v − (η/m) Σ_x ∂C_x/∂w,  w ← (1 − ηλ/n) w + v, elementwise, in w's dtype."""
    step = w.dtype.type(hyper.eta / m)
    keep = w.dtype.type(decay)
    mu = w.dtype.type(hyper.mu)
    for p in range(w.shape[0]):
        v = mu * velocity[p] - step * g_sum[p]
        velocity[p] = v
        w[p] = keep * w[p] + v


@jit_inner
def adam_update(w, mom, vel, g_sum, m, l2, hyper, t):
    """Adam step t (1-based), elementwise, g = Σ_x ∂C_x/∂w / m + l2 · w (l2 = λ/n for weights)."""
    c1 = 1.0 - hyper.beta1 ** t
    c2 = 1.0 - hyper.beta2 ** t
    inv_m = 1.0 / m
    for p in range(w.shape[0]):
        g = inv_m * g_sum[p] + l2 * w[p]
        mom[p] = hyper.beta1 * mom[p] + (1.0 - hyper.beta1) * g
        vel[p] = hyper.beta2 * vel[p] + (1.0 - hyper.beta2) * g * g
        w[p] = w[p] - hyper.eta * (mom[p] / c1) / (math.sqrt(vel[p] / c2) + hyper.eps)


@jit
def update_rows(params, state, grad, w_lo, w_hi, b_lo, b_hi, m, hyper):
    """Apply the optimizer to weights [w_lo, w_hi) and biases [b_lo, b_hi) of the flat buffer,
    from the gradient sum ``grad`` over m examples.

    ``state.t`` already counts this step.  Weight decay applies to the weights only.
    The loops run over views starting at 0, which is what lets LLVM vectorise them.
    ``state`` may come without its moments (see :func:`engine_state`).
    """
    for part in range(2):
        is_weight = part == 0
        lo, hi = (w_lo, w_hi) if is_weight else (b_lo, b_hi)
        update_part(params[lo:hi], grad[lo:hi], state.velocity, state.m, state.v, lo, hi, m,
                    is_weight, hyper, state.t[0])


@jit_inner
def update_part(w, g_sum, velocity, mom, vel, lo, hi, m, is_weight, hyper, t):
    """One optimizer step of w = params[lo:hi] (weights or biases) from its gradient sum.

    ``velocity`` (momentum) and ``mom``, ``vel`` (Adam) are the whole state arrays, sliced
    here; None when the run needs none of them: Numba then decides each ``is not None`` at
    compile time and compiles plain SGD alone.
    """
    if mom is not None and hyper.kind == ADAM:
        l2 = hyper.l2 if is_weight else 0.0
        adam_update(w, mom[lo:hi], vel[lo:hi], g_sum, m, l2, hyper, t)
    else:
        decay = 1.0 - hyper.shrink if is_weight else 1.0
        if velocity is not None and hyper.mu != 0.0:
            momentum_update(w, velocity[lo:hi], g_sum, m, decay, hyper)
        else:
            sgd_update(w, g_sum, m, decay, hyper)
