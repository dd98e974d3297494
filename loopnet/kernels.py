"""The four equations of backpropagation, one compiled function each.

Notation (Nielsen, *Neural Networks and Deep Learning*, chapter 2): layer l has
n_l neurons; ``w`` of layer l has shape (n_l, n_{l−1}) so ``w[j, k]`` = w^l_jk
joins neuron k of layer l−1 to neuron j of layer l.  Each kernel works on ONE
example; its arguments are plain 1-D/2-D arrays (outputs first, then inputs)
and integer codes from :mod:`loopnet.activations` and :mod:`loopnet.costs`.
No validation happens here: :mod:`loopnet.net` checks everything first.

================  ==========================================================
kernel            equation
================  ==========================================================
forward_layer     z^l_j = Σ_k w^l_jk a^{l−1}_k + b^l_j,   a^l_j = σ(z^l_j)
output_delta      δ^L_j = ∂C/∂a^L_j · σ'(z^L_j)                       (BP1)
hidden_delta      δ^l_j = Σ_k δ^{l+1}_k w^{l+1}_kj · σ'(z^l_j)        (BP2)
accumulate_       ∂C/∂b^l_j = δ^l_j                                    (BP3)
gradient          ∂C/∂w^l_jk = a^{l−1}_k δ^l_j                         (BP4)
================  ==========================================================

and the per-example view (issue 17), which reads or scales one example's
δ^x before the mini-batch's sum:

=================  =========================================================
gradient_norm_sq   ‖∇_{w^l,b^l} C_x‖² = ‖δ^l‖² (‖a^{l−1}‖² + 1)
scale_delta        δ^l_j ← f δ^l_j   (scales ∇_{w^l,b^l} C_x by f)
dropout            v_j ← v_j · 1[u_j ≥ p] / (1 − p)   (inverted dropout)
add_noise          g_p ← g_p + σC · N(0, 1)   (DP-SGD, on the clipped sum)
=================  =========================================================

forward_layer and gradient_norm_sq let LLVM split their sums into SIMD partial
sums (``_jit.jit_sums``); everything else adds in the order written.  softmax and
activate, the two helpers of the forward pass, follow forward_layer.

This file holds the textbook layer only.  Training runs output_delta,
hidden_delta and forward_layer (layers 2 … L, and layer 1 of a network
without hidden layers) as written here; for forward_layer on layer 1 of a
network with hidden layers, and for accumulate_gradient, it runs their fast
twins in :mod:`loopnet.tiles` (``tiles.FAST_TWIN``), which compute the same
quantities for several examples per pass.  tests/naive.py runs this file's
kernels in a plain serial loop over a mini-batch and checks the engine
against it.
"""

import math

import numpy as np

from ._jit import jit, jit_sums
from .random import bernoulli_keep, normal_of_word, normal_word, stream
from .activations import SIGMOID, SOFTMAX, sigma, sigma_prime_of, sigmoid
from .costs import CROSS_ENTROPY, LOG_LIKELIHOOD, dcost_da


@jit_sums
def forward_layer(z, a, w, b, a_prev, act):
    """Feed one example forward through one layer.

    .. math::  z_j = \\sum_k w_{jk} a^{prev}_k + b_j, \\qquad a_j = \\sigma(z_j)

    For ``act == SOFTMAX`` the activation couples the layer:
    a_j = e^{z_j} / Σ_i e^{z_i} (computed with max z subtracted, which leaves it unchanged).
    """
    n_l, n_prev = w.shape  # j runs over the n_l neurons, k over the n_prev inputs
    for j in range(n_l):
        z_j = w.dtype.type(0)
        for k in range(n_prev):
            z_j += w[j, k] * a_prev[k]
        z[j] = z_j + b[j]
    if act == SOFTMAX:
        softmax(a, z)
    else:
        activate(a, z, act)


@jit
def softmax(a, z):
    """a_j = e^{z_j} / Σ_i e^{z_i}, evaluated as e^{z_j − max z} / Σ_i e^{z_i − max z}."""
    n = z.shape[0]
    z_max = z[0]
    for j in range(1, n):
        if z[j] > z_max:
            z_max = z[j]
    total = 0.0
    for j in range(n):
        e = math.exp(z[j] - z_max)
        a[j] = e
        total += e
    for j in range(n):
        a[j] = a[j] / total


@jit
def activate(a, z, act):
    """a_j = σ(z_j) for every j of an elementwise activation.

    The sigmoid has a loop of its own, which LLVM vectorises (the loop over every
    activation's branches it leaves scalar: 4.5 against 0.9 ns per element).
    """
    if act == SIGMOID:
        for j in range(z.shape[0]):
            a[j] = sigmoid(z[j])
        return
    for j in range(z.shape[0]):
        a[j] = sigma(act, z[j])


@jit
def output_delta(delta, z, a, y, act, cost):
    """BP1, the error of the output layer.

    Differentiates the forward lines a^L_j = σ(z^L_j) and C = C_x(a^L, y):

    .. math::  \\delta^L_j = \\frac{\\partial C}{\\partial a^L_j} \\sigma'(z^L_j)

    Two pairs simplify because σ' cancels against ∂C/∂a (Nielsen, chapter 3):
    cross-entropy with sigmoid gives δ^L_j = a^L_j − y_j; log-likelihood with
    softmax gives δ^L_j = a^L_j Σ_i y_i − y_j, which is a^L_j − y_j for one-hot
    (or any probability) targets.  A softmax output with another cost uses the
    full Jacobian ∂a_i/∂z_j = a_i (1[i = j] − a_j):
    δ^L_j = a_j (∂C/∂a_j − Σ_i ∂C/∂a_i a_i).
    """
    n = z.shape[0]
    if cost == CROSS_ENTROPY and act == SIGMOID:
        for j in range(n):
            delta[j] = a[j] - y[j]
    elif cost == LOG_LIKELIHOOD and act == SOFTMAX:
        y_total = y.dtype.type(0)
        for i in range(n):
            y_total += y[i]
        for j in range(n):
            delta[j] = a[j] * y_total - y[j]
    elif act == SOFTMAX:
        s = 0.0
        for i in range(n):
            s += dcost_da(cost, a[i], y[i], n) * a[i]
        for j in range(n):
            delta[j] = a[j] * (dcost_da(cost, a[j], y[j], n) - s)
    else:
        for j in range(n):
            delta[j] = dcost_da(cost, a[j], y[j], n) * sigma_prime_of(act, z[j], a[j])


@jit
def hidden_delta(delta, z, a, w_next, delta_next, act):
    """BP2, the error of hidden layer l from the error of layer l+1.

    Differentiates the forward line z^{l+1}_k = Σ_j w^{l+1}_kj σ(z^l_j) + b^{l+1}_k:

    .. math::  \\delta^l_j = \\sum_k \\delta^{l+1}_k w^{l+1}_{kj} \\, \\sigma'(z^l_j)

    The sum over k is the outer loop, so the inner loop walks along row k of
    w^{l+1} (contiguous in memory) for every j at once; each δ^l_j still adds
    its terms in the order k = 0, 1, 2, …  σ'(z^l_j) is computed from the
    stored a^l_j = σ(z^l_j) (:func:`~loopnet.activations.sigma_prime_of`).
    """
    n_next, n_l = w_next.shape
    for j in range(n_l):
        delta[j] = 0
    for k in range(n_next):
        d_k = delta_next[k]
        for j in range(n_l):
            delta[j] += d_k * w_next[k, j]
    for j in range(n_l):
        delta[j] *= sigma_prime_of(act, z[j], a[j])


@jit
def accumulate_gradient(nabla_w, nabla_b, delta, a_prev):
    """BP3 and BP4 for one example, added to the running sums of a mini-batch.

    Differentiates z_j = Σ_k w_jk a^{prev}_k + b_j:

    .. math::  \\frac{\\partial C_x}{\\partial b_j} = \\delta_j, \\qquad
               \\frac{\\partial C_x}{\\partial w_{jk}} = \\delta_j a^{prev}_k
    """
    n_l, n_prev = nabla_w.shape  # j runs over the n_l neurons, k over the n_prev inputs
    for j in range(n_l):
        d = delta[j]
        nabla_b[j] += d
        for k in range(n_prev):
            nabla_w[j, k] += d * a_prev[k]


@jit_sums
def gradient_norm_sq(delta, a_prev):
    """The squared norm of one example's gradient for one layer, without forming it.

    By BP3/BP4, ∇_{w^l} C_x = δ^l a^{l−1,T} (an outer product) and ∇_{b^l} C_x = δ^l, so

    .. math::  \\|\\nabla_{w^l,b^l} C_x\\|^2 = \\sum_{j,k} (\\delta_j a_k)^2 + \\sum_j \\delta_j^2
               = \\|\\delta^l\\|^2 \\left(\\|a^{l-1}\\|^2 + 1\\right)

    (sums of squares in float64, split into SIMD partial sums: in index order they
    waited on each add in turn, ~1 µs per example for 784 inputs, a tenth of a
    plain W1 epoch; each is within n·ε relative of the index-order sum).
    """
    dd = 0.0
    for j in range(delta.shape[0]):
        d = np.float64(delta[j])       # (Numba's float() of a float32 stays a float32)
        dd += d * d
    aa = 0.0
    for k in range(a_prev.shape[0]):
        a = np.float64(a_prev[k])
        aa += a * a
    return dd * (aa + 1.0)


@jit
def scale_delta(delta, f):
    """δ_j ← f δ_j: since ∇C_x = (δ, δ a^T) layer by layer, this scales the example's gradient by f."""
    g = delta.dtype.type(f)
    for j in range(delta.shape[0]):
        delta[j] = g * delta[j]


@jit
def dropout(v, p, seed, x, layer, j0):
    """Inverted dropout (Nielsen chapter 3): v_j ← v_j · mask_j / (1 − p), in place.

    mask_j = 1[u ≥ p] with u uniform on [0, 1) keyed by (seed, example x, layer,
    neuron j0 + j) (:func:`loopnet.random.bernoulli_keep`), so the same key gives
    the same mask wherever and whenever it is drawn.  Applied to a^l in the forward
    pass and to δ^l in BP2 with the same key: ∂ã_j/∂a_j = mask_j / (1 − p).
    """
    keep = v.dtype.type(1.0 / (1.0 - p))
    for j in range(v.shape[0]):
        if bernoulli_keep(p, seed, x, layer, j0 + j):
            v[j] = v[j] * keep
        else:
            v[j] = 0


@jit
def add_noise(grad, lo, hi, scale, seed, step):
    """DP-SGD's noise (Abadi et al. 2016) on the clipped gradient sum, p in [lo, hi):

    .. math::  g_p \\leftarrow g_p + \\sigma C \\, \\mathcal{N}(0, 1)_{(seed,\\ step,\\ p)}

    ``scale`` = σC.  The normal of parameter p at optimizer step t is number p of the
    stream (seed, t), bit for bit :func:`loopnet.random.gaussian` (a counter-based
    Ziggurat), so it does not depend on which thread draws it, nor on how the range is
    cut, nor on how training was cut or resumed.  Per parameter: one word
    h = mix(base + p·φ), the Ziggurat's fast path on it (two table loads, a multiply, a
    comparison) and, for the ~1.5 % it rejects, the slow path.  About 2.7 ns per parameter
    on the 2-core AMD EPYC (Zen 3) of profiles/results, Box–Muller's was 33 ns.  The loop
    is scalar: LLVM does not vectorise the table loads on AVX2 (no profitable gather), and
    a vectorised hashing pass before it measured no faster.
    """
    base = stream(seed, step)
    g = grad[lo:hi]
    for k in range(hi - lo):
        g[k] = g[k] + g.dtype.type(scale * normal_of_word(normal_word(base, lo + k)))

