"""The naive oracle for loopnet.engine: a plain serial loop of the textbook kernels.

``run_batches(...)`` takes the arguments of :func:`loopnet.engine.run_batches` (less its
scratch) and does what a student would write from Nielsen's chapter 2, one example at
a time, in example order (as stumpy keeps tests/naive.py beside its fast code):

    for each mini-batch order[lo:hi] (m = hi − lo examples, the last one may be shorter):
        ∇ = 0
        for each example x of it, in order:
            forward_layer, layer by layer            z^l, a^l    (kernels.forward_layer)
            record a^L and C_x where asked                       (costs.cost_x)
            output_delta                             δ^L  (BP1)  (kernels.output_delta)
            hidden_delta, from layer L−1 down to 1   δ^l  (BP2)  (kernels.hidden_delta)
            per-example rules (hyper.ex): f_x = w_x · min(1, C/‖∇C_x‖) with ‖∇C_x‖² =
              Σ_l gradient_norm_sq(δ^l, a^{l−1}); every δ^l ← f_x δ^l (kernels.scale_delta);
              dropout: a^l masked after σ, δ^l masked after BP2 (kernels.dropout)
            accumulate_gradient, every layer         ∇ += δ^l a^{l−1}  (BP3/BP4)
        TRAIN: DP noise σC·N(0, 1) keyed by (seed, t, p) added to each ∇_p (kernels.add_noise), then
               one optimizer step of every parameter from ∇ and m (or ex.denom)  (optim.update_rows)

Nothing is blocked, tiled, threaded or reordered.  ``first_layer=tiles.forward_tile``
(``tiles.forward_layer3`` or ``forward_layer5``) computes z^1 with the engine's fast twin
instead (three or five examples per call, the mini-batch's last example standing in past
its end, as the engine does; ``tiles.forward_chain`` per example for the mini-batches the
engine runs through ``tiles.forward_outer``, ``tiles.outer_block``); everything
else stays the serial loop above.  That variant isolates the one place where the engine
reorders a sum: tests/test_engine.py finds it bit for bit equal to the engine, and the
plain variant within a stated bound.
"""

import numpy as np

from loopnet import engine, optim
from loopnet.costs import cost_x
from loopnet.kernels import (accumulate_gradient, activate, add_noise, dropout, forward_layer,
                             gradient_norm_sq, hidden_delta, output_delta, scale_delta)
from loopnet.tiles import forward_chain, forward_layer3, forward_layer5, outer_block

# The fast twins of forward_layer, and the examples each takes per call.
TILE_WIDTH = {forward_layer3: 3, forward_layer5: 5}


def layers(buf, sizes):
    """[(w^1, b^1), …, (w^L, b^L)]: views of a flat parameter or gradient buffer."""
    views, start = [], 0
    for n_prev, n in zip(sizes[:-1], sizes[1:]):
        w = buf[start:start + n * n_prev].reshape(n, n_prev)
        b = buf[start + n * n_prev:start + n * n_prev + n]
        views.append((w, b))
        start += n * n_prev + n
    return views


def first_layer_tiled(twin, w, b, X, rows):
    """z^1 of examples X[rows] by ``twin`` (a key of TILE_WIDTH), its width of examples per
    call; past the last example, the last one is repeated (as engine.first_layer_panel
    does)."""
    m, width = len(rows), TILE_WIDTH[twin]
    Z = np.empty((m, w.shape[0]), w.dtype)
    if outer_block(w.shape[0], m):      # the engine's outer-product tiles: one FMA chain per z
        for t in range(m):
            forward_chain(Z[t], w, b, X[rows[t]])
        return Z
    for t in range(0, m, width):
        e = [min(t + q, m - 1) for q in range(width)]
        zs = [np.empty(w.shape[0], w.dtype) for _ in range(width)]
        twin(*zs, w, b, *(X[rows[q]] for q in e))
        for q in range(width):
            if t + q < m:
                Z[t + q] = zs[q]
    return Z


def run_batches(params, state, X, Y, order, batch_size, first, last, sizes, act, out_act, cost,
                hyper, job, out, costs, grad, first_layer=forward_layer):
    """Mini-batches first … last−1 of ``order`` as a serial loop; see the module docstring.

    TRAIN updates ``params``/``state``; GRADIENT adds Σ_x ∇C_x into ``grad``; every job
    writes ``out[p]`` = a^L and ``costs[p]`` = C_x of example order[p] where they have rows.
    """
    L = len(sizes) - 1
    ex = hyper.ex if hyper.ex is not None else optim.make_rules()    # None: no rules
    drop = list(ex.drop) if ex.drop.shape[0] else [0.0] * L
    P = layers(params, sizes)
    n = len(order)
    for bt in range(first, last):
        lo, hi = bt * batch_size, min((bt + 1) * batch_size, n)
        rows = order[lo:hi]
        nabla = np.zeros_like(params) if job == engine.TRAIN else grad
        G = layers(nabla, sizes)
        Z1 = (first_layer_tiled(first_layer, P[0][0], P[0][1], X, rows)
              if first_layer in TILE_WIDTH and L > 1 else None)
        for t, r in enumerate(rows):
            z = [np.empty(s, params.dtype) for s in sizes[1:]]
            a = [np.empty(s, params.dtype) for s in sizes[1:]]
            for i in range(L):
                f = act if i < L - 1 else out_act
                if i == 0 and Z1 is not None:
                    z[0][:] = Z1[t]
                    activate(a[0], z[0], f)   # f is never softmax on a hidden layer
                else:
                    forward_layer(z[i], a[i], P[i][0], P[i][1], X[r] if i == 0 else a[i - 1], f)
                if drop[i] > 0:
                    dropout(a[i], drop[i], ex.drop_seed, r, i, 0)
            if out.shape[0]:
                out[lo + t] = a[-1]
            if costs.shape[0]:
                costs[lo + t] = cost_x(cost, a[-1], Y[r])
            if job == engine.PREDICT:
                continue
            delta = [np.empty(s, params.dtype) for s in sizes[1:]]
            output_delta(delta[-1], z[-1], a[-1], Y[r], out_act, cost)
            for i in range(L - 2, -1, -1):
                if drop[i] > 0:
                    activate(a[i], z[i], act)   # σ'(z) from the unmasked a
                hidden_delta(delta[i], z[i], a[i], P[i + 1][0], delta[i + 1], act)
                if drop[i] > 0:
                    dropout(delta[i], drop[i], ex.drop_seed, r, i, 0)
                    dropout(a[i], drop[i], ex.drop_seed, r, i, 0)
            f_x = ex.weight[r] if ex.weight.shape[0] else 1.0
            if ex.norms.shape[0] or ex.clip < np.inf:
                sq = [gradient_norm_sq(delta[i], X[r] if i == 0 else a[i - 1]) for i in range(L)]
                if ex.norms.shape[0]:
                    ex.norms[lo + t, :] = sq
                total = 0.0
                for v in sq:
                    total += v
                if total > ex.clip * ex.clip:
                    f_x *= ex.clip / np.sqrt(total)
            if f_x != 1.0:
                for i in range(L):
                    scale_delta(delta[i], f_x)
            if job == engine.NORMS:
                continue
            for i in range(L):
                accumulate_gradient(G[i][0], G[i][1], delta[i], X[r] if i == 0 else a[i - 1])
        if job == engine.TRAIN:
            state.t[0] += 1
            if ex.sigma > 0:
                add_noise(nabla, 0, nabla.size, ex.sigma * ex.clip, ex.noise_seed, state.t[0])
            m = ex.denom if ex.denom > 0 else float(hi - lo)
            start = 0
            for n_prev, n_l in zip(sizes[:-1], sizes[1:]):
                w_end = start + n_l * n_prev
                optim.update_rows(params, state, nabla, start, w_end, w_end, w_end + n_l,
                                  m, optim.step_of(hyper))
                start = w_end + n_l


__all__ = ["run_batches", "layers", "first_layer_tiled"]
