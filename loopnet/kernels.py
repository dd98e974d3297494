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

forward_layer lets LLVM split its sums over k into SIMD partial sums
(``_jit.jit_sums``); everything else adds in the order written.
"""

import math

from ._jit import jit, jit_sums
from .activations import SIGMOID, SOFTMAX, sigma, sigma_prime
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
        for j in range(n_l):
            a[j] = sigma(act, z[j])


@jit_sums
def forward_layer4(z0, z1, z2, z3, w, b, x0, x1, x2, x3):
    """z_j = Σ_k w_jk x_k + b_j for four examples at once (no activation).

    The same sums as :func:`forward_layer`, but each w_jk is loaded once for
    four examples; streaming w is what limits the one-example kernel when
    mini-batches are large.
    """
    n_l, n_prev = w.shape
    for j in range(n_l):
        s0 = w.dtype.type(0)
        s1 = w.dtype.type(0)
        s2 = w.dtype.type(0)
        s3 = w.dtype.type(0)
        for k in range(n_prev):
            w_jk = w[j, k]
            s0 += w_jk * x0[k]
            s1 += w_jk * x1[k]
            s2 += w_jk * x2[k]
            s3 += w_jk * x3[k]
        z0[j] = s0 + b[j]
        z1[j] = s1 + b[j]
        z2[j] = s2 + b[j]
        z3[j] = s3 + b[j]


@jit
def activate(a, z, act):
    """a_j = σ(z_j) for every j of an elementwise activation."""
    for j in range(z.shape[0]):
        a[j] = sigma(act, z[j])


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
            delta[j] = dcost_da(cost, a[j], y[j], n) * sigma_prime(act, z[j])


@jit
def hidden_delta(delta, z, w_next, delta_next, act):
    """BP2, the error of hidden layer l from the error of layer l+1.

    Differentiates the forward line z^{l+1}_k = Σ_j w^{l+1}_kj σ(z^l_j) + b^{l+1}_k:

    .. math::  \\delta^l_j = \\sum_k \\delta^{l+1}_k w^{l+1}_{kj} \\, \\sigma'(z^l_j)

    The sum over k is the outer loop, so the inner loop walks along row k of
    w^{l+1} (contiguous in memory) for every j at once; each δ^l_j still adds
    its terms in the order k = 0, 1, 2, …
    """
    n_next, n_l = w_next.shape
    for j in range(n_l):
        delta[j] = 0
    for k in range(n_next):
        d_k = delta_next[k]
        for j in range(n_l):
            delta[j] += d_k * w_next[k, j]
    for j in range(n_l):
        delta[j] *= sigma_prime(act, z[j])


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


@jit
def accumulate_gradient4(nabla_w, nabla_b, d0, d1, d2, d3, a0, a1, a2, a3):
    """BP3 and BP4 for four examples at once: :func:`accumulate_gradient` four times, fused.

    .. math::  \\frac{\\partial C}{\\partial w_{jk}} \\mathrel{+}= \\delta^{(0)}_j a^{(0)}_k
               + \\delta^{(1)}_j a^{(1)}_k + \\delta^{(2)}_j a^{(2)}_k + \\delta^{(3)}_j a^{(3)}_k

    The terms are added left to right, example 0 first, exactly as four calls
    would add them; but each ∂C/∂w_jk is loaded and stored once per four
    examples instead of once per example, which is what limits the speed.
    """
    n_l, n_prev = nabla_w.shape
    for j in range(n_l):
        e0, e1, e2, e3 = d0[j], d1[j], d2[j], d3[j]
        nabla_b[j] = nabla_b[j] + e0 + e1 + e2 + e3
        for k in range(n_prev):
            nabla_w[j, k] = nabla_w[j, k] + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k]
