"""The component form on the GPU: one numba.cuda kernel per equation.

Notation and equations as in :mod:`loopnet.kernels` (Nielsen, chapter 2);
the CPU kernels work on one example, these work on a mini-batch of m
examples with one GPU thread per output number.  Every phase is a device
function over a **grid-stride loop**: item t is handled by the thread with
global index ``t mod gridsize`` and nothing else, so what a thread computes
never depends on how many threads there are.  Each output number is written
by exactly one thread, and every sum inside a thread runs in a fixed order
(k = 0, 1, … or x = 0, 1, …): no atomics, no reductions across threads, so
the results are bit-identical run to run and for every launch configuration.

Device memory (one flat buffer, the CPU engine's layout):

* ``params``: for l = 1..L, w^l (n_l × n_{l−1}, C order) then b^l, layer i+1
  starting at ``p_off[i]``; the gradient and the optimizer state likewise.
* ``z``, ``a``, ``delta``: (m_max, U) arrays, one row per example x of the
  mini-batch, layers 1..L side by side from ``u_off[i]``.  a^0 is not copied:
  the input of example x is row ``order[lo + x]`` of ``X``.

==================  ==============================================  ========================
phase               equation                                        one thread per
==================  ==============================================  ========================
forward_phase       z^l_j = Σ_k w^l_jk a^{l−1}_k + b^l_j,            (x, j), j fastest
                    a^l_j = σ(z^l_j)
softmax_phase       a^L_j = e^{z_j − max z} / Σ_i e^{z_i − max z}   (x, j)
output_delta_phase  δ^L_j = ∂C/∂a^L_j σ'(z^L_j)              (BP1)  (x, j)
hidden_delta_phase  δ^l_j = Σ_k δ^{l+1}_k w^{l+1}_kj σ'(z^l_j) (BP2)  (x, j), j fastest
gradient_phase      ∂C/∂b^l_j = Σ_x δ^x_j                   (BP3)  parameter p = (j, k),
                    ∂C/∂w^l_jk = Σ_x δ^x_j a^{x,l−1}_k       (BP4)  k fastest
                    then the optimizer update of that parameter
cost_phase          C_x = C(a^L_x, y_x)                              example x
==================  ==============================================  ========================

Memory access: with j fastest, BP2 reads w^{l+1}_kj along j (coalesced) and
δ^{l+1}_k as a broadcast; BP3/BP4 with k fastest reads a^{l−1}_k along k
(coalesced, also the input rows of X) and δ_j as a broadcast, and writes the
parameters along k.  The forward sums walk each thread's own row of w^l along
k; neighbouring threads read neighbouring rows, which the L1/L2 caches serve
for the m examples of the mini-batch.

The scalar functions σ, σ', ∂C/∂a and C_x are not copied: they are the CPU
modules' own Python functions (``py_func``) compiled a second time for the
GPU, so both targets run the same source.
"""

import math

from numba import cuda

from .. import activations, costs
from ..activations import SIGMOID, SOFTMAX
from ..costs import CROSS_ENTROPY, LOG_LIKELIHOOD
from ..optim import ADAM

# What the gradient phase does with Σ_x ∇C_x of a parameter.
TRAIN, GRADIENT = 0, 1


def _device(fn):
    """The CPU module's scalar function, compiled again as a CUDA device function."""
    return cuda.jit(device=True)(getattr(fn, "py_func", fn))


sigma = _device(activations.sigma)
sigma_prime_of = _device(activations.sigma_prime_of)
dcost_da = _device(costs.dcost_da)
cost_x = _device(costs.cost_x)


@cuda.jit(device=True)
def previous(X, order, a, lo, x, i, u_off, k):
    """a^{l−1}_k of example x for layer index i (= l − 1): X[order[lo + x], k] when i = 0."""
    if i == 0:
        return X[order[lo + x], k]
    return a[x, u_off[i - 1] + k]


@cuda.jit(device=True)
def row_dot(params, w_start, src, r, c0, n):
    """Σ_k w_k src[r, c0 + k] for k = 0, 1, …, n−1 in order, w_k = params[w_start + k]."""
    s = params[w_start] * src[r, c0]
    for k in range(1, n):
        s += params[w_start + k] * src[r, c0 + k]
    return s


# ----------------------------------------------------------------- phases
@cuda.jit(device=True)
def forward_phase(z, a, params, X, order, lo, m, sizes, p_off, u_off, i, act, start, stride):
    """Layer i+1 of m examples: z_j = Σ_k w_jk a^{prev}_k + b_j,  a_j = σ(z_j).

    Item t = x · n_l + j (j fastest).  The sum adds k = 0, 1, … in order.
    For ``act == SOFTMAX`` only z is written (a^L waits for :func:`softmax_phase`).
    """
    n_prev, n_l = sizes[i], sizes[i + 1]
    w0 = p_off[i]
    b0 = w0 + n_l * n_prev
    u = u_off[i]
    for t in range(start, m * n_l, stride):
        x = t // n_l
        j = t - x * n_l
        if i == 0:
            s = row_dot(params, w0 + j * n_prev, X, order[lo + x], 0, n_prev)
        else:
            s = row_dot(params, w0 + j * n_prev, a, x, u_off[i - 1], n_prev)
        z[x, u + j] = s + params[b0 + j]
        if act != SOFTMAX:
            a[x, u + j] = sigma(act, z[x, u + j])


@cuda.jit(device=True)
def softmax_phase(a, z, m, n, u, start, stride):
    """a_j = e^{z_j − max z} / Σ_i e^{z_i − max z} over the n outputs from column u.

    Item t = x · n + j; each thread finds max z and the sum of its example
    itself, in the order of :func:`loopnet.kernels.softmax`.
    """
    for t in range(start, m * n, stride):
        x = t // n
        j = t - x * n
        z_max = z[x, u]
        for i in range(1, n):
            if z[x, u + i] > z_max:
                z_max = z[x, u + i]
        total = 0.0
        for i in range(n):
            total += math.exp(z[x, u + i] - z_max)
        a[x, u + j] = math.exp(z[x, u + j] - z_max)
        a[x, u + j] = a[x, u + j] / total


@cuda.jit(device=True)
def output_delta_phase(delta, z, a, Y, order, lo, m, n, u, act, cost, start, stride):
    """BP1: δ^L_j = ∂C/∂a^L_j σ'(z^L_j), item t = x · n + j.

    The cases of :func:`loopnet.kernels.output_delta`: a − y for cross-entropy
    with sigmoid, a Σy − y for log-likelihood with softmax, the softmax
    Jacobian a_j (∂C/∂a_j − Σ_i ∂C/∂a_i a_i) for softmax with another cost.
    """
    for t in range(start, m * n, stride):
        x = t // n
        j = t - x * n
        y = Y[order[lo + x]]
        a_j = a[x, u + j]
        if cost == CROSS_ENTROPY and act == SIGMOID:
            delta[x, u + j] = a_j - y[j]
        elif cost == LOG_LIKELIHOOD and act == SOFTMAX:
            y_total = y[0]
            for i in range(1, n):
                y_total += y[i]
            delta[x, u + j] = a_j * y_total - y[j]
        elif act == SOFTMAX:
            s = 0.0
            for i in range(n):
                s += dcost_da(cost, a[x, u + i], y[i], n) * a[x, u + i]
            delta[x, u + j] = a_j * (dcost_da(cost, a_j, y[j], n) - s)
        else:
            delta[x, u + j] = dcost_da(cost, a_j, y[j], n) * sigma_prime_of(act, z[x, u + j], a_j)


@cuda.jit(device=True)
def hidden_delta_phase(delta, z, a, params, m, sizes, p_off, u_off, i, act, start, stride):
    """BP2 for layer i+1 (hidden): δ_j = Σ_k δ^{next}_k w^{next}_kj σ'(z_j), item t = x · n_l + j.

    The sum adds k = 0, 1, … in order, like :func:`loopnet.kernels.hidden_delta`.
    """
    n_l, n_next = sizes[i + 1], sizes[i + 2]
    w_next = p_off[i + 1]
    u, u_next = u_off[i], u_off[i + 1]
    for t in range(start, m * n_l, stride):
        x = t // n_l
        j = t - x * n_l
        s = delta[x, u_next] * params[w_next + j]
        for k in range(1, n_next):
            s += delta[x, u_next + k] * params[w_next + k * n_l + j]
        delta[x, u + j] = s * sigma_prime_of(act, z[x, u + j], a[x, u + j])


@cuda.jit(device=True)
def gradient_phase(params, velocity, mom, vsq, grad, X, order, a, delta, lo, m, sizes, p_off,
                   u_off, job, kind, eta, shrink, l2, mu, beta1, beta2, eps, t_step,
                   start, stride):
    """BP3/BP4 summed over the mini-batch, then (``job == TRAIN``) the update.

    .. math::  \\frac{\\partial C}{\\partial b_j} = \\sum_x \\delta^x_j, \\qquad
               \\frac{\\partial C}{\\partial w_{jk}} = \\sum_x \\delta^x_j a^{x,prev}_k

    Item = flat parameter index p (k fastest within a row of w, then the
    biases).  The sum over x runs x = 0, 1, …, m−1 in one thread.  With
    ``job == GRADIENT`` it continues from ``grad[p]`` and stores there, so
    successive blocks of examples add in example order.
    """
    n_layers = sizes.shape[0] - 1
    for p in range(start, p_off[n_layers], stride):
        i = 0
        while p >= p_off[i + 1]:
            i += 1
        n_prev, n_l = sizes[i], sizes[i + 1]
        q = p - p_off[i]
        is_weight = q < n_l * n_prev
        u = u_off[i]
        g = grad[p] if job == GRADIENT else params.dtype.type(0)
        if is_weight:
            j = q // n_prev
            k = q - j * n_prev
            for x in range(m):
                g += delta[x, u + j] * previous(X, order, a, lo, x, i, u_off, k)
        else:
            j = q - n_l * n_prev
            for x in range(m):
                g += delta[x, u + j]
        if job == GRADIENT:
            grad[p] = g
        else:
            update_parameter(params, velocity, mom, vsq, p, g, m, is_weight, kind, eta, shrink,
                             l2, mu, beta1, beta2, eps, t_step)


@cuda.jit(device=True)
def update_parameter(params, velocity, mom, vsq, p, g_sum, m, is_weight, kind, eta, shrink, l2,
                     mu, beta1, beta2, eps, t):
    """One parameter's optimizer step from g_sum = Σ_x ∂C_x/∂p over m examples.

    The lines of :mod:`loopnet.optim`, with the same roundings:
    sgd  w ← (1 − ηλ/n) w − (η/m) g_sum;  momentum  v ← μv − (η/m) g_sum,
    w ← (1 − ηλ/n) w + v;  adam with g = g_sum/m + (λ/n) w, step t.
    Biases are not decayed.
    """
    if kind == ADAM:
        lam = l2 if is_weight else 0.0
        c1 = 1.0 - beta1 ** t
        c2 = 1.0 - beta2 ** t
        g = (1.0 / m) * g_sum + lam * params[p]
        mom[p] = beta1 * mom[p] + (1.0 - beta1) * g
        vsq[p] = beta2 * vsq[p] + (1.0 - beta2) * g * g
        params[p] = params[p] - eta * (mom[p] / c1) / (math.sqrt(vsq[p] / c2) + eps)
    else:
        decay = 1.0 - shrink if is_weight else 1.0
        step = params.dtype.type(eta / m)
        keep = params.dtype.type(decay)
        if mu != 0.0:
            v = params.dtype.type(mu) * velocity[p] - step * g_sum
            velocity[p] = v
            params[p] = keep * params[p] + v
        else:
            params[p] = keep * params[p] - step * g_sum


@cuda.jit(device=True)
def cost_phase(costs, a, Y, order, lo, m, n, u, cost, start, stride):
    """C_x = C(a^L, y) of each example x (one thread per example)."""
    for x in range(start, m, stride):
        costs[lo + x] = cost_x(cost, a[x, u:u + n], Y[order[lo + x]])


@cuda.jit(device=True)
def output_phase(out, a, lo, m, n, u, start, stride):
    """out[lo + x, j] = a^L_j of example x, item t = x · n + j."""
    for t in range(start, m * n, stride):
        x = t // n
        j = t - x * n
        out[lo + x, j] = a[x, u + j]


# -------------------------------------------- one kernel per phase
@cuda.jit
def forward_layer(z, a, params, X, order, lo, m, sizes, p_off, u_off, i, act):
    """Kernel of :func:`forward_phase`: z^l_j = Σ_k w^l_jk a^{l−1}_k + b^l_j, a^l_j = σ(z^l_j)."""
    forward_phase(z, a, params, X, order, lo, m, sizes, p_off, u_off, i, act,
                  cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def softmax(a, z, m, n, u):
    """Kernel of :func:`softmax_phase`: a^L_j = e^{z_j} / Σ_i e^{z_i}."""
    softmax_phase(a, z, m, n, u, cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def output_delta(delta, z, a, Y, order, lo, m, n, u, act, cost):
    """Kernel of :func:`output_delta_phase` (BP1): δ^L_j = ∂C/∂a^L_j σ'(z^L_j)."""
    output_delta_phase(delta, z, a, Y, order, lo, m, n, u, act, cost,
                       cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def hidden_delta(delta, z, a, params, m, sizes, p_off, u_off, i, act):
    """Kernel of :func:`hidden_delta_phase` (BP2): δ^l_j = Σ_k δ^{l+1}_k w^{l+1}_kj σ'(z^l_j)."""
    hidden_delta_phase(delta, z, a, params, m, sizes, p_off, u_off, i, act,
                       cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def gradient_step(params, velocity, mom, vsq, grad, X, order, a, delta, lo, m, sizes, p_off,
                  u_off, job, kind, eta, shrink, l2, mu, beta1, beta2, eps, t_step):
    """Kernel of :func:`gradient_phase` (BP3, BP4, update): ∂C/∂w_jk = Σ_x δ^x_j a^x_k."""
    gradient_phase(params, velocity, mom, vsq, grad, X, order, a, delta, lo, m, sizes, p_off,
                   u_off, job, kind, eta, shrink, l2, mu, beta1, beta2, eps, t_step,
                   cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def example_costs(costs, a, Y, order, lo, m, n, u, cost):
    """Kernel of :func:`cost_phase`: C_x for each example."""
    cost_phase(costs, a, Y, order, lo, m, n, u, cost, cuda.grid(1), cuda.gridsize(1))


@cuda.jit
def outputs(out, a, lo, m, n, u):
    """Kernel of :func:`output_phase`: copy a^L of the block into ``out``."""
    output_phase(out, a, lo, m, n, u, cuda.grid(1), cuda.gridsize(1))


# --------------------------------- a whole run of mini-batches in one launch
@cuda.jit
def train_batches(params, velocity, mom, vsq, grad, X, Y, order, z, a, delta, sizes, p_off,
                  u_off, act, out_act, cost, batch_size, first, last, job, kind, eta, shrink,
                  l2, mu, beta1, beta2, eps, t0):
    """Mini-batches first … last−1 of ``order``, every phase of each, in ONE cooperative launch.

    The phases of :mod:`loopnet.cuda.engine`'s per-phase driver, in the same
    order, separated by grid-wide synchronisation (``this_grid().sync()``)
    instead of kernel boundaries; the grid must be co-resident (launch at most
    ``max_cooperative_grid_blocks`` blocks).  Mini-batch b is update step
    t0 + (b − first) + 1 of Adam.

    For an elementwise output σ, BP1 follows the output layer's forward line
    without a synchronisation: item t = x · n_L + j of both phases falls to
    the same thread, which reads back only the z_j and a_j it has just written.
    """
    grid = cuda.cg.this_grid()
    start, stride = cuda.grid(1), cuda.gridsize(1)
    n = order.shape[0]
    n_layers = sizes.shape[0] - 1
    out_u = u_off[n_layers - 1]
    n_out = sizes[n_layers]
    for b in range(first, last):
        lo = b * batch_size
        m = min(batch_size, n - lo)
        for i in range(n_layers):
            layer_act = out_act if i == n_layers - 1 else act
            forward_phase(z, a, params, X, order, lo, m, sizes, p_off, u_off, i, layer_act,
                          start, stride)
            if i < n_layers - 1 or out_act == SOFTMAX:
                grid.sync()     # (BP1 of an elementwise output reads only its own thread's z, a)
        if out_act == SOFTMAX:
            softmax_phase(a, z, m, n_out, out_u, start, stride)
            grid.sync()
        output_delta_phase(delta, z, a, Y, order, lo, m, n_out, out_u, out_act, cost,
                           start, stride)
        grid.sync()
        for i in range(n_layers - 2, -1, -1):
            hidden_delta_phase(delta, z, a, params, m, sizes, p_off, u_off, i, act,
                               start, stride)
            grid.sync()
        gradient_phase(params, velocity, mom, vsq, grad, X, order, a, delta, lo, m, sizes,
                       p_off, u_off, job, kind, eta, shrink, l2, mu, beta1, beta2, eps,
                       t0 + (b - first) + 1, start, stride)
        grid.sync()
