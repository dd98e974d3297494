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
from .activations import SIGMOID, SOFTMAX, sigma, sigma_prime_of
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

    The same sums as :func:`forward_layer`, computed for a tile of four rows
    j × four examples per pass over k (:func:`dot_tile`): each w_jk and each
    x_k loaded serves four multiply-adds, which keeps the FMA units busy
    where one-row, one-example dot products wait on loads.
    """
    n_l = w.shape[0]
    j = 0
    while j + 4 <= n_l:
        s = dot_tile(w[j], w[j + 1], w[j + 2], w[j + 3], x0, x1, x2, x3)
        for q in range(4):
            z0[j + q] = s[q][0] + b[j + q]
            z1[j + q] = s[q][1] + b[j + q]
            z2[j + q] = s[q][2] + b[j + q]
            z3[j + q] = s[q][3] + b[j + q]
        j += 4
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        s = dot_row(w[j], x0, x1, x2, x3)
        z0[j] = s[0] + b[j]
        z1[j] = s[1] + b[j]
        z2[j] = s[2] + b[j]
        z3[j] = s[3] + b[j]
        j += 1


@jit_sums
def dot_row(w0, x0, x1, x2, x3):
    """The four dot products Σ_k w0[k] x_e[k] of one weight row with four inputs."""
    zero = w0.dtype.type(0)
    s0, s1, s2, s3 = zero, zero, zero, zero
    for k in range(w0.shape[0]):
        v = w0[k]
        s0 += v * x0[k]
        s1 += v * x1[k]
        s2 += v * x2[k]
        s3 += v * x3[k]
    return s0, s1, s2, s3


@jit_sums
def dot_tile(w0, w1, w2, w3, x0, x1, x2, x3):
    """The 4 × 4 dot products Σ_k w_r[k] x_e[k] of four weight rows with four inputs.

    Returned as four tuples, one per row r, of four sums, one per example e.
    Sixteen running sums live in registers; LLVM splits each into SIMD
    partial sums (``reassoc``).
    """
    zero = w0.dtype.type(0)
    s00, s01, s02, s03 = zero, zero, zero, zero
    s10, s11, s12, s13 = zero, zero, zero, zero
    s20, s21, s22, s23 = zero, zero, zero, zero
    s30, s31, s32, s33 = zero, zero, zero, zero
    for k in range(w0.shape[0]):
        p0, p1, p2, p3 = x0[k], x1[k], x2[k], x3[k]
        v = w0[k]
        s00 += v * p0
        s01 += v * p1
        s02 += v * p2
        s03 += v * p3
        v = w1[k]
        s10 += v * p0
        s11 += v * p1
        s12 += v * p2
        s13 += v * p3
        v = w2[k]
        s20 += v * p0
        s21 += v * p1
        s22 += v * p2
        s23 += v * p3
        v = w3[k]
        s30 += v * p0
        s31 += v * p1
        s32 += v * p2
        s33 += v * p3
    return ((s00, s01, s02, s03), (s10, s11, s12, s13),
            (s20, s21, s22, s23), (s30, s31, s32, s33))


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


@jit
def accumulate_gradient4(nabla_w, nabla_b, d0, d1, d2, d3, a0, a1, a2, a3):
    """BP3 and BP4 for four examples at once: :func:`accumulate_gradient` four times, fused.

    .. math::  \\frac{\\partial C}{\\partial w_{jk}} \\mathrel{+}= \\delta^{(0)}_j a^{(0)}_k
               + \\delta^{(1)}_j a^{(1)}_k + \\delta^{(2)}_j a^{(2)}_k + \\delta^{(3)}_j a^{(3)}_k

    The terms are added left to right, example 0 first, exactly as four calls
    would add them; but each ∂C/∂w_jk is loaded and stored once per four
    examples instead of once per example, and four rows j share each load of
    a_k (:func:`outer_tile`).
    """
    n_l = nabla_w.shape[0]
    j = 0
    while j + 4 <= n_l:
        outer_tile(nabla_w[j], nabla_w[j + 1], nabla_w[j + 2], nabla_w[j + 3],
                   (d0[j], d1[j], d2[j], d3[j]), (d0[j + 1], d1[j + 1], d2[j + 1], d3[j + 1]),
                   (d0[j + 2], d1[j + 2], d2[j + 2], d3[j + 2]),
                   (d0[j + 3], d1[j + 3], d2[j + 3], d3[j + 3]), a0, a1, a2, a3)
        j += 4
    while j < n_l:    # the last n_l mod 4 rows, one at a time
        e0, e1, e2, e3 = d0[j], d1[j], d2[j], d3[j]
        g = nabla_w[j]
        for k in range(g.shape[0]):
            g[k] = g[k] + e0 * a0[k] + e1 * a1[k] + e2 * a2[k] + e3 * a3[k]
        j += 1
    for j in range(n_l):
        nabla_b[j] = nabla_b[j] + d0[j] + d1[j] + d2[j] + d3[j]


@jit
def outer_tile(g0, g1, g2, g3, e0, e1, e2, e3, a0, a1, a2, a3):
    """g_r[k] += Σ_x e_r[x] a_x[k] for four rows r and four examples x, x in order.

    ``e_r`` holds δ_j of row r for the four examples; each a_x[k] loaded
    serves the four rows.
    """
    for k in range(g0.shape[0]):
        p0, p1, p2, p3 = a0[k], a1[k], a2[k], a3[k]
        g0[k] = g0[k] + e0[0] * p0 + e0[1] * p1 + e0[2] * p2 + e0[3] * p3
        g1[k] = g1[k] + e1[0] * p0 + e1[1] * p1 + e1[2] * p2 + e1[3] * p3
        g2[k] = g2[k] + e2[0] * p0 + e2[1] * p1 + e2[2] * p2 + e2[3] * p3
        g3[k] = g3[k] + e3[0] * p0 + e3[1] * p1 + e3[2] * p2 + e3[3] * p3
