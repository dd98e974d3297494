"""Trace one example through a network: every z, a, δ and ∂C/∂w, ∂C/∂b, by index.

This is loopnet's teaching view of backpropagation (Nielsen, *Neural Networks
and Deep Learning*, chapter 2).  :func:`trace` runs the **compiled
per-example kernels** of :mod:`loopnet.kernels`, the equations the training engine
is built from, one call per layer and equation, and keeps every intermediate array:

=======  ==========================================  ==============================
eq.      component form                              kernel
=======  ==========================================  ==============================
forward  z^l_j = Σ_k w^l_jk a^{l−1}_k + b^l_j,        ``kernels.forward_layer``
         a^l_j = σ(z^l_j)
BP1      δ^L_j = ∂C/∂a^L_j · σ'(z^L_j)                ``kernels.output_delta``
BP2      δ^l_j = (Σ_k w^{l+1}_kj δ^{l+1}_k) · σ'(z^l_j) ``kernels.hidden_delta``
BP3      ∂C/∂b^l_j = δ^l_j                            ``kernels.accumulate_gradient``
BP4      ∂C/∂w^l_jk = a^{l−1}_k δ^l_j                 ``kernels.accumulate_gradient``
=======  ==========================================  ==============================

Indexing
--------
Layers are counted as in the book: l = 0 is the input, l = L the output.  The
per-layer lists in the trace hold layers 1..L, so ``tr["z"][l - 1]`` is z^l;
``tr["a"]`` also holds the input, so ``tr["a"][l]`` is a^l.  Neurons j (in layer
l) and k (in layer l − 1) are counted **from 0**, exactly as the arrays are
indexed (3Blue1Brown's convention): w^l_jk is ``tr["weights"][l - 1][j, k]``.

:func:`render` turns a trace into text with each equation written out with its
numbers, e.g. ``δ^2_1 = (a^2_1 − y_1) · σ'(z^2_1) = (0.731 − 1) · 0.197 = -0.053``;
:func:`to_json` turns it into one JSON object for notebooks.

Dropout
-------
A network built with ``dropout=p`` trains with inverted dropout (Nielsen chapter 3):
in the training pass of epoch e, hidden neuron j of layer l of example row r keeps
ã^l_j = a^l_j · m^l_j / (1 − p_l), m^l_j = 1[u(s_e, r, l − 1, j) ≥ p_l], with s_e the
epoch's seed (``net.history[e − 1]["dropout_seed"]``), and BP2's δ^l_j is multiplied by
the same m^l_j / (1 − p_l) (``kernels.dropout``).  ``trace(net, x, y, dropout=(e, r))``
traces that pass, mask included (``tr["dropout"]``); without ``dropout`` the trace is the
pass without a mask, as ``predict`` and ``cost`` compute it.
"""

import json
from collections import namedtuple

import numpy as np

from . import activations as _act
from . import costs as _costs
from . import kernels as _kernels
from . import tiles as _tiles
from . import trace_html as _html
from ._jit import python_function
from .net import Net

KEYS = ("sizes", "activation", "output", "cost", "x", "y", "weights", "biases",
        "z", "a", "delta", "nabla_w", "nabla_b", "cost_x")

# Where each stage of the trace is computed (file:function), as the teaching views name it.
KERNELS = {
    "forward": "loopnet/kernels.py:forward_layer",
    "cost": "loopnet/costs.py:cost_x",
    "BP1": "loopnet/kernels.py:output_delta",
    "BP2": "loopnet/kernels.py:hidden_delta",
    "BP3": "loopnet/kernels.py:accumulate_gradient",
    "BP4": "loopnet/kernels.py:accumulate_gradient",
    "update": "loopnet/optim.py:sgd_update",
    "dropout": "loopnet/kernels.py:dropout",
}

#: The key of one training pass's dropout masks: the epoch's seed s, the example's row r
#: of the training data, and (for the record only) the epoch.
DropoutKey = namedtuple("DropoutKey", "seed index epoch", defaults=(None,))


class Trace(dict):
    """What :func:`trace` returns: a dict with the keys of :data:`KEYS`, which also draws itself.

    ``to_html()`` is one self-contained page that steps through the forward and backward
    pass (see :mod:`loopnet.trace_html`); in Jupyter the trace shows as that page.
    """

    def to_html(self, **options):
        """The stepping page as one HTML string; options of :func:`view_model`."""
        return _html.page(view_model(self, **options))

    def write_html(self, path, **options):
        """Write :meth:`to_html` to ``path`` (UTF-8)."""
        return _html.write_html(view_model(self, **options), path)

    def _repr_html_(self):
        return _html.iframe(view_model(self))


def view_model(tr, *, eta=3.0, **options):
    """What the page and the picture show: :func:`loopnet.trace_html.view_model` of this
    trace, with its update step (:func:`sgd_step` with ``eta``) and :data:`KERNELS`."""
    return _html.view_model(tr, update=sgd_step(tr, eta), kernels=KERNELS, eta=eta, **options)


# --------------------------------------------------------------------------- compute

def backprop_example(weights, biases, x, y, activation="sigmoid", output="sigmoid",
                     cost="quadratic", kernels=None, dropout=None):
    """Forward and backward pass for one example, one kernel call per layer and equation.

    ``weights``/``biases`` are lists for layers 1..L (w^l has shape (n_l, n_{l−1})),
    ``x`` and ``y`` 1-D arrays of the network's dtype.  ``kernels`` is any object with
    the four per-example kernels (default :mod:`loopnet.kernels`); tests pass a copy
    with one kernel broken to see that :func:`loopnet.gradcheck` notices.
    ``dropout``: None, or ``(p, seed, r)`` to apply the training pass's masks
    (:func:`passes_with_dropout`); ``a`` then holds the masked ã^l.

    Returns ``(z, a, delta, nabla_w, nabla_b)``: lists for layers 1..L, except ``a``
    whose first entry is the input a^0 = x.  ``nabla_*`` are ∂C_x/∂w and ∂C_x/∂b for
    this single example (no averaging).
    """
    return passes_with_dropout(weights, biases, x, y, activation, output, cost, kernels,
                               dropout)[:5]


def passes_with_dropout(weights, biases, x, y, activation, output, cost, kernels=None,
                        dropout=None):
    """:func:`backprop_example`, and the dropout masks it applied: ``(z, a, delta, nabla_w,
    nabla_b, masks, a_sigma)``.

    With ``dropout = (p, seed, r)`` (p: one probability per hidden layer), each hidden layer
    with p_l > 0 runs, as the engine's training pass does (loopnet/engine.py:
    backpropagate_errors), :func:`loopnet.kernels.dropout` keyed by (seed, r, l − 1):
    forward ã^l_j = a^l_j · m^l_j/(1 − p_l), and in BP2
    δ^l_j = (Σ_k w^{l+1}_kj δ^{l+1}_k) · σ'(z^l_j) · m^l_j/(1 − p_l), σ' taken at a^l = σ(z^l).
    ``masks[l − 1]`` (int8, 0 = dropped) and ``a_sigma[l − 1]`` (a^l before the mask) for
    hidden layers l = 1..L−1; both None without ``dropout``.
    """
    K = _kernels if kernels is None else kernels
    hidden = _act.code(activation)
    out = _act.code(output)
    cost_code = _costs.code(cost)
    L = len(weights)
    dtype = x.dtype
    z = [np.zeros(w.shape[0], dtype) for w in weights]
    a = [x] + [np.zeros(w.shape[0], dtype) for w in weights]
    p, masks, a_sigma = _dropout_rates(dropout, L), None, None
    if dropout is not None:
        masks = [np.ones(w.shape[0], np.int8) for w in weights[:-1]]
        a_sigma = [None] * (L - 1)
    # Forward pass: z^l = w^l a^{l-1} + b^l, a^l = σ(z^l), layer by layer (weights[l] is w^{l+1}).
    for i in range(L):
        K.forward_layer(z[i], a[i + 1], weights[i], biases[i], a[i], out if i == L - 1 else hidden)
        if dropout is not None and i < L - 1:
            a_sigma[i] = a[i + 1].copy()
            if p[i] > 0:
                masks[i] = _mask(len(z[i]), p[i], dropout, i, dtype)
                _kernels.dropout(a[i + 1], p[i], dropout[1], dropout[2], i, 0)
    delta = [np.zeros(w.shape[0], dtype) for w in weights]
    # BP1 at the output layer, then BP2 from layer L-1 down to layer 1.
    K.output_delta(delta[L - 1], z[L - 1], a[L], y, out, cost_code)
    for i in range(L - 2, -1, -1):
        a_i = a[i + 1] if dropout is None else a_sigma[i]
        K.hidden_delta(delta[i], z[i], a_i, weights[i + 1], delta[i + 1], hidden)
        if p[i] > 0:
            _kernels.dropout(delta[i], p[i], dropout[1], dropout[2], i, 0)
    # BP3 and BP4: the gradient buffers start at zero and the kernel only adds (+=).
    nabla_w = [np.zeros_like(w) for w in weights]
    nabla_b = [np.zeros_like(b) for b in biases]
    for i in range(L):
        K.accumulate_gradient(nabla_w[i], nabla_b[i], delta[i], a[i])
    return z, a, delta, nabla_w, nabla_b, masks, a_sigma


def _dropout_rates(dropout, L):
    """p of hidden layers 1..L−1 (zeros without dropout), checked against the layer count."""
    if dropout is None:
        return [0.0] * (L - 1)
    p = [float(v) for v in dropout[0]]
    if len(p) != L - 1:
        raise ValueError(f"dropout needs one p per hidden layer ({L - 1}), got {len(p)}")
    return p


def _mask(n, p, dropout, i, dtype):
    """m^{i+1}_j, 0 or 1, from the kernel itself: :func:`loopnet.kernels.dropout` of ones."""
    ones = np.ones(n, dtype)
    _kernels.dropout(ones, p, dropout[1], dropout[2], i, 0)
    return (ones != 0).astype(np.int8)


def _target(y, n_out, dtype):
    """Targets as a 1-D array: an int label becomes a one-hot vector."""
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
        if not 0 <= y < n_out:
            raise ValueError(f"label y={y} is out of range for {n_out} output neurons")
        t = np.zeros(n_out, dtype)
        t[int(y)] = 1
        return t
    t = np.asarray(y, dtype=dtype)
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.shape != (n_out,):
        raise ValueError(f"y must be an int label or {n_out} target values, got shape {t.shape}")
    return np.ascontiguousarray(t)


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def dropout_key(net, epoch, index):
    """The :class:`DropoutKey` of training epoch ``epoch`` (1 = the first) for example row
    ``index`` of the training data as ``fit`` was given it: the epoch's seed is the one
    training recorded, ``net.history[…]["dropout_seed"]`` (saved with the model)."""
    if not any(getattr(net, "dropout", ())):
        raise ValueError("this network has no dropout (p = 0 in every hidden layer): "
                         "there is no mask to trace")
    epoch, index = _int(epoch, "the dropout epoch"), _int(index, "the dropout example index")
    if index < 0:
        raise ValueError(f"the dropout example index is a row of the training data (>= 0), "
                         f"got {index}")
    trained = [r for r in net.history if r.get("epoch") == epoch]
    if not 1 <= epoch <= net.epoch or not trained:
        raise ValueError(f"the dropout epoch must be one this network was trained for "
                         f"(1..{net.epoch}), got {epoch}")
    if "dropout_seed" not in trained[-1]:
        raise ValueError(f"epoch {epoch} has no recorded dropout seed (trained without dropout, "
                         f"or by a loopnet that did not record it)")
    return DropoutKey(int(trained[-1]["dropout_seed"]), index, epoch)


def _resolve_dropout(net, dropout):
    """None, or ``(p per hidden layer, key)`` for ``trace(dropout=...)``."""
    if dropout is None:
        return None
    if not isinstance(dropout, DropoutKey):
        if not isinstance(dropout, (tuple, list)) or len(dropout) != 2:
            raise ValueError(f"dropout must be (epoch, example index) or a DropoutKey, "
                             f"got {dropout!r}")
        dropout = dropout_key(net, *dropout)
    seed = _int(dropout.seed, "the dropout seed")
    index = _int(dropout.index, "the dropout example index")
    if not 0 <= seed < 2 ** 63:
        raise ValueError(f"the dropout seed must be between 0 and 2^63 − 1, got {seed}")
    if index < 0:
        raise ValueError(f"the dropout example index is a row of the training data (>= 0), "
                         f"got {index}")
    return [float(p) for p in net.dropout], DropoutKey(seed, index, dropout.epoch)


def trace(net, x, y, *, kernels=None, dropout=None):
    """All intermediate quantities of backprop for one example ``(x, y)`` through ``net``.

    ``x``: n_in input values; ``y``: n_out targets or an int class label (one-hot).
    Returns a dict with keys ``sizes, activation, output, cost`` (the configuration),
    ``x, y`` (1-D arrays), ``weights, biases`` (copies), per-layer lists for layers
    1..L: ``z, delta, nabla_w, nabla_b``; ``a`` holds a^0 = x first, then a^1..a^L; and
    ``cost_x``, the example's cost C_x (a float, :func:`example_cost`).
    Every number is produced by the textbook kernels of :mod:`loopnet.kernels`.
    ``nabla_w``/``nabla_b`` are the gradient of this one example's cost C_x, the same sums
    as ``net.gradient(x[None], y[None])`` computes, but not always bit for bit: with a
    hidden layer, training and ``net.gradient`` compute z^1 with the fast twin
    ``loopnet.tiles.forward_tile`` (``forward_layer3``, or ``forward_layer5`` on AVX-512
    targets; ``forward_outer`` for wide layers in blocks of ≥ 32 examples on CPUs with
    full-width 512-bit FMAs), which splits the sum over k differently; the two then agree within
    2·n_0·ε relative (ε of the dtype, n_0 inputs; tests/test_engine.py), and bit for bit
    for a network without hidden layers.

    ``dropout=(epoch, index)`` (a network with dropout, trained that epoch) traces the
    training pass of example row ``index`` in that epoch: the masks training applied
    (:func:`dropout_key`; or give a :class:`DropoutKey` with the seed itself).  ``a`` then
    holds the masked ã^l of the hidden layers, ``delta`` the masked δ^l, and the trace gains
    ``dropout``: ``{"p": [p_l], "seed", "index", "epoch", "mask": [m^l, int8 0/1],
    "a": [a^l = σ(z^l) before the mask]}`` for hidden layers l = 1..L−1.  Without it
    (the default) the trace is that of the pass without dropout, as ``predict`` computes.
    """
    drop = _resolve_dropout(net, dropout)
    dtype = np.dtype(net.dtype)
    sizes = [int(n) for n in net.sizes]
    xa = np.asarray(x, dtype=dtype)
    if xa.ndim == 2 and xa.shape[0] == 1:
        xa = xa[0]
    if xa.shape != (sizes[0],):
        raise ValueError(f"x must hold {sizes[0]} input values, got shape {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise ValueError("x contains NaN or infinite values")
    xa = np.ascontiguousarray(xa)
    ya = _target(y, sizes[-1], dtype)
    weights = [np.array(w, dtype=dtype, order="C") for w in net.weights]
    biases = [np.array(b, dtype=dtype, order="C") for b in net.biases]
    key = None if drop is None else (drop[0], drop[1].seed, drop[1].index)
    z, a, delta, nabla_w, nabla_b, masks, a_sigma = passes_with_dropout(
        weights, biases, xa, ya, net.activation, net.output, net.cost_name, kernels, key)
    tr = Trace({
        "sizes": sizes, "activation": net.activation, "output": net.output,
        "cost": net.cost_name, "x": xa, "y": ya, "weights": weights, "biases": biases,
        "z": z, "a": a, "delta": delta, "nabla_w": nabla_w, "nabla_b": nabla_b,
    })
    tr["cost_x"] = example_cost(tr)
    if drop is not None:
        p, k = drop
        tr["dropout"] = {"p": p, "seed": k.seed, "index": k.index, "epoch": k.epoch,
                         "mask": masks, "a": a_sigma}
    return tr


def _key_of(tr):
    """The :class:`DropoutKey` a trace was taken with (None without dropout)."""
    d = tr.get("dropout")
    return None if d is None else DropoutKey(d["seed"], d["index"], d["epoch"])


def sgd_step(tr, eta):
    """The update w ← w − η ∂C_x/∂w, b ← b − η ∂C_x/∂b for this one example (m = 1).

    Computed by ``Net.step`` (:func:`loopnet.optim.sgd_update`) on a network holding the
    trace's weights.  Returns ``{"eta", "weights", "biases", "cost_x"}``: the new
    parameters (lists for layers 1..L) and C_x of the same example after the step.
    """
    eta = float(eta)
    if not eta > 0 or not np.isfinite(eta):
        raise ValueError(f"eta must be a finite number > 0, got {eta}")
    drop = tr.get("dropout")
    net = Net(tr["sizes"], activation=tr["activation"], output=tr["output"], cost=tr["cost"],
              dtype=tr["x"].dtype.name, seed=0, dropout=drop["p"] if drop else 0.0)
    net.weights, net.biases = tr["weights"], tr["biases"]
    grad = np.zeros_like(net.params)
    gw, gb = net.unflatten(grad)
    for l in range(len(gw)):
        gw[l][...], gb[l][...] = tr["nabla_w"][l], tr["nabla_b"][l]
    net.step(grad, eta=eta)
    after = trace(net, tr["x"], tr["y"], dropout=_key_of(tr))   # the same masks
    return {"eta": eta, "weights": [np.array(w) for w in net.weights],
            "biases": [np.array(b) for b in net.biases], "cost_x": after["cost_x"]}


def to_jsonable(tr):
    """The trace with arrays turned into (nested) lists of floats, ready for ``json.dumps``;
    a trace with dropout also has its ``dropout`` record (masks as lists of 0/1)."""
    def conv(v):
        if isinstance(v, dict):
            return {k: conv(u) for k, u in v.items()}
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (list, tuple)):
            return [conv(u) for u in v]
        if isinstance(v, np.generic):
            return v.item()
        return v
    keys = KEYS + (("dropout",) if tr.get("dropout") is not None else ())
    return {k: conv(tr[k]) for k in keys}


def to_json(tr, indent=None):
    """One JSON object with the keys of :data:`KEYS`, and ``dropout`` when traced with it
    (floats written to full precision)."""
    return json.dumps(to_jsonable(tr), indent=indent)


def example_cost(tr):
    """C_x of the traced example, from the output activations by :func:`loopnet.costs.cost_x`."""
    aL = tr["a"][-1]
    return float(_costs.cost_x(_costs.code(tr["cost"]), aL, tr["y"].astype(aL.dtype)))


# --------------------------------------------------------------------------- render

_ASCII = str.maketrans({
    "σ": "sigma", "δ": "delta", "∂": "d", "Σ": "sum", "·": "*", "−": "-", "½": "1/2",
    "′": "'", "≈": "~", "→": "->", "ᵀ": "^T", "⊙": "(.)", "²": "^2", "…": "...",
    "η": "eta", "λ": "lambda", "ℓ": "l", "≤": "<=", "≥": ">=", "∈": "in", "ε": "eps",
    "‖": "||", "√": "sqrt", "∇": "grad", "ã": "a~",
})


def ascii_text(text):
    """Replace the Greek letters and math signs of a rendered trace by ASCII spellings."""
    return text.translate(_ASCII)


def _kernel_tag(name, L):
    """Which kernel computed a line here, and which one training runs for it
    (:data:`loopnet.tiles.FAST_TWIN`: the twin of layer 1's forward pass with hidden
    layers, of BP3/BP4 always; the textbook kernel otherwise)."""
    twins = {python_function(k).__name__: t for k, t in _tiles.FAST_TWIN.items()}
    twin = twins.get(name)
    here = f"loopnet/kernels.py: {name}"
    if twin is None:
        return here + "; training runs it too"
    twin_name = python_function(twin).__name__
    if name == "forward_layer":
        if L == 1:
            return here + "; training runs it too"
        return here + f"; training runs tiles.{twin_name} for layer 1 (sum over k split differently)"
    return here + f"; training runs tiles.{twin_name} (the same sums in the same order)"


def _sup(l):
    return f"^{l}" if l < 10 else "^{" + str(l) + "}"


def _sub(*idx):
    if all(i < 10 for i in idx):
        return "_" + "".join(str(i) for i in idx)
    return "_{" + ",".join(str(i) for i in idx) + "}"


class _Fmt:
    def __init__(self, digits):
        self.digits = digits

    def __call__(self, v):
        """A number with ``digits`` significant digits; 0.0 as 0, no trailing zeros."""
        v = float(v)
        if v == 0:
            return "0"
        s = f"{v:.{self.digits}g}"
        return s

    def p(self, v):
        """Like ``__call__`` but parenthesised when negative, for use as a factor."""
        s = self(v)
        return f"({s})" if s.startswith("-") else s


def _sigma_text(name):
    return {"sigmoid": "σ(z) = 1/(1 + e^(−z))", "tanh": "σ(z) = tanh z",
            "relu": "σ(z) = max(0, z)", "identity": "σ(z) = z",
            "softmax": "a_j = e^(z_j) / Σ_i e^(z_i)"}[name]


def _sigma_prime_text(name):
    return {"sigmoid": "σ'(z) = σ(z)(1 − σ(z))", "tanh": "σ'(z) = 1 − tanh² z",
            "relu": "σ'(z) = 1 if z > 0 else 0", "identity": "σ'(z) = 1"}.get(name, "")


def _cost_text(cost):
    return {"quadratic": "C = ½ Σ_j (a^L_j − y_j)²",
            "mse": "C = (1/n_L) Σ_j (a^L_j − y_j)²",
            "cross_entropy": "C = −Σ_j [y_j ln a^L_j + (1 − y_j) ln(1 − a^L_j)]",
            "log_likelihood": "C = −Σ_j y_j ln a^L_j"}[cost]


def _bp1_general(output, cost):
    """The BP1 formula as the kernel evaluates it for this output/cost pair."""
    if output == "softmax":
        if cost == "log_likelihood":
            return "δ^L_j = a^L_j − y_j   (softmax with log-likelihood: the Jacobian collapses)"
        return ("δ^L_j = Σ_i ∂C/∂a^L_i · ∂a^L_i/∂z^L_j = a^L_j (∂C/∂a^L_j − Σ_i a^L_i ∂C/∂a^L_i)"
                "   (softmax Jacobian)")
    if output == "sigmoid" and cost == "cross_entropy":
        return ("δ^L_j = ∂C/∂a^L_j · σ'(z^L_j) = (a^L_j − y_j)/(a^L_j (1 − a^L_j)) · a^L_j (1 − a^L_j)"
                " = a^L_j − y_j   (σ' cancels)")
    dc = {"quadratic": "(a^L_j − y_j)", "mse": "2 (a^L_j − y_j)/n_L",
          "cross_entropy": "(a^L_j − y_j)/(a^L_j (1 − a^L_j))",
          "log_likelihood": "(−y_j / a^L_j)"}[cost]
    return f"δ^L_j = ∂C/∂a^L_j · σ'(z^L_j) = {dc} · σ'(z^L_j)"


def per_example_view(tr, clip_norm=None):
    """The example's own gradient norm and clip factor (issue 17), from its δ^l and a^{l−1}:

    ‖∇_{w^l,b^l} C_x‖² = ‖δ^l‖² (‖a^{l−1}‖² + 1)  (:func:`loopnet.kernels.gradient_norm_sq`),
    ‖∇C_x‖ = √(Σ_l of them), and with ``clip_norm`` C the factor c_x = min(1, C/‖∇C_x‖) that
    ``fit(clip_norm=C)`` scales the example's δ^l, hence its whole gradient, by.
    Returns ``{"grad_norm_layers": [l = 1..L], "grad_norm", "clip_factor" (or None)}``.
    """
    sq = [_kernels.gradient_norm_sq(d, a) for d, a in zip(tr["delta"], tr["a"][:-1])]
    total = float(np.sqrt(sum(sq)))
    factor = None
    if clip_norm is not None:
        factor = min(1.0, float(clip_norm) / total) if total > 0 else 1.0
    return {"grad_norm_layers": [float(np.sqrt(v)) for v in sq], "grad_norm": total,
            "clip_factor": factor}


def render(tr, *, layer=None, neuron=None, digits=3, max_terms=6, ascii=False, clip_norm=None):
    """The trace as text: each equation with its symbols, then its numbers, then the result.

    ``layer``: only show quantities of layer l (1..L; 0 shows the input); ``neuron``:
    only neuron j of the shown layers (and, for ∂C/∂w^l_jk, row j).  ``digits``:
    significant digits per number.  Sums with more than ``max_terms`` terms are
    shown as their value only.  ``ascii=True`` spells Greek letters in ASCII.
    Every right-hand-side result printed is the kernel's output; the numbers in the
    middle (σ'(z), ∂C/∂a) are recomputed from them with :mod:`loopnet.activations`
    and :mod:`loopnet.costs` for display.  A trace with dropout (``trace(dropout=...)``)
    shows each hidden layer's mask, ã^l_j = a^l_j · m^l_j/(1 − p) in the forward pass and
    the same factor in BP2, the dropped neurons marked "(dropped)".
    """
    f = _Fmt(digits)
    sizes = tr["sizes"]
    L = len(sizes) - 1
    if layer is not None and not 0 <= layer <= L:
        raise ValueError(f"layer must be between 0 and {L} (0 is the input), got {layer}")
    if neuron is not None:
        top = max(sizes) if layer is None else sizes[layer]
        if not 0 <= neuron < top:
            raise ValueError(f"neuron must be between 0 and {top - 1}, got {neuron}")
    hid, out, cost = tr["activation"], tr["output"], tr["cost"]
    W, B, Z, A, D = tr["weights"], tr["biases"], tr["z"], tr["a"], tr["delta"]
    NW, NB, y = tr["nabla_w"], tr["nabla_b"], tr["y"]
    drop = tr.get("dropout")

    def p_of(l):
        """Dropout p of layer l in this trace (0 without dropout, for the output, or for p = 0)."""
        return drop["p"][l - 1] if drop is not None and 1 <= l < L else 0.0

    def a_sym(l):
        """a, or ã where layer l's activations went on masked."""
        return "ã" if p_of(l) > 0 else "a"

    def dropped(l, j):
        return "   (dropped)" if p_of(l) > 0 and drop["mask"][l - 1][j] == 0 else ""

    def layers():
        return [l for l in range(1, L + 1) if layer is None or layer == l]

    def neurons(l):
        return [j for j in range(sizes[l]) if neuron is None or neuron == j]

    def act_of(l):
        return out if l == L else hid

    def sp(l, j):
        """σ'(z^l_j) from the activation module (display only)."""
        return float(_act.sigma_prime(_act.code(act_of(l)), Z[l - 1][j]))

    lines = []
    add = lines.append
    add(f"Trace of one example through a {sizes} network "
        f"(activation {hid}, output {out}, cost {cost})")
    add(f"  layers l = 0 (input) .. L = {L} (output); neurons j (layer l), k (layer l−1) "
        "counted from 0 as in the arrays:")
    add("  w^l_jk = weights[l−1][j, k], z^l_j = z[l−1][j], a^l_j = a[l][j], δ^l_j = delta[l−1][j]")
    if hid == out or L == 1:
        add(f"  σ: {_sigma_text(out if L == 1 else hid)}")
    else:
        add(f"  hidden σ: {_sigma_text(hid)};  output: {_sigma_text(out)}")
    add("")
    def vec(v):
        if len(v) <= 4 * max_terms:
            return "[" + ", ".join(f(u) for u in v) + "]"
        return "[" + ", ".join(f(u) for u in v[:2 * max_terms]) + f", … ({len(v)} values)]"

    if layer in (None, 0):
        add("x = a^0 = " + vec(A[0]))
    add("y = " + vec(y))
    if drop is not None:
        add("")
        when = (f"epoch {drop['epoch']}, " if drop["epoch"] is not None else "")
        add(f"Dropout (inverted, the training pass of {when}example row {drop['index']}; "
            f"seed {drop['seed']})   [loopnet/kernels.py: dropout]")
        add("  m^l_j = 1[u(seed, row, l−1, j) ≥ p_l];  ã^l_j = a^l_j · m^l_j/(1 − p_l) goes on;"
            "  BP2's δ^l_j gets the same factor")
        for l in range(1, L):
            if layer in (None, l):
                m = drop["mask"][l - 1]
                shown = " ".join(str(int(v)) for v in m[:4 * max_terms * 2])
                more = f" … ({len(m)} values)" if len(m) > 8 * max_terms else ""
                dropped_js = [j for j in range(len(m)) if m[j] == 0]
                add(f"  p_{l} = {f(p_of(l))}: mask{_sup(l)} = [{shown}{more}]   "
                    f"dropped: {len(dropped_js)} of {len(m)}")

    # ---- forward
    add("")
    add("Forward pass   z^l_j = Σ_k w^l_jk a^{l−1}_k + b^l_j ;  a^l_j = σ(z^l_j)"
        f"   [{_kernel_tag('forward_layer', L)}]")
    for l in layers():
        add(f" layer {l}")
        nk = sizes[l - 1]
        for j in neurons(l):
            zval = Z[l - 1][j]
            if nk <= max_terms:
                sym = " + ".join(f"w{_sup(l)}{_sub(j, k)}·{a_sym(l - 1)}{_sup(l - 1)}{_sub(k)}"
                                 for k in range(nk))
                num = " + ".join(f"{f.p(W[l - 1][j, k])}·{f.p(A[l - 1][k])}" for k in range(nk))
                add(f"  z{_sup(l)}{_sub(j)} = {sym} + b{_sup(l)}{_sub(j)}"
                    f" = {num} + {f.p(B[l - 1][j])} = {f(zval)}")
            else:
                s = float(zval) - float(B[l - 1][j])
                add(f"  z{_sup(l)}{_sub(j)} = Σ_k w{_sup(l)}_{j}k·{a_sym(l - 1)}{_sup(l - 1)}_k ({nk} terms)"
                    f" + b{_sup(l)}{_sub(j)} = {f(s)} + {f.p(B[l - 1][j])} = {f(zval)}")
        if act_of(l) == "softmax":
            zs = ", ".join(f(v) for v in Z[l - 1]) if sizes[l] <= max_terms else "…"
            for j in neurons(l):
                add(f"  a{_sup(l)}{_sub(j)} = e^(z{_sup(l)}{_sub(j)}) / Σ_i e^(z{_sup(l)}_i)"
                    f" = softmax([{zs}])_{j} = {f(A[l][j])}")
        else:
            for j in neurons(l):
                a_lj = drop["a"][l - 1][j] if p_of(l) > 0 else A[l][j]
                add(f"  a{_sup(l)}{_sub(j)} = σ(z{_sup(l)}{_sub(j)}) = σ({f(Z[l - 1][j])})"
                    f" = {f(a_lj)}")
            if p_of(l) > 0:
                for j in neurons(l):
                    m = int(drop["mask"][l - 1][j])
                    add(f"  ã{_sup(l)}{_sub(j)} = a{_sup(l)}{_sub(j)} · m{_sup(l)}{_sub(j)}/(1 − p)"
                        f" = {f.p(drop['a'][l - 1][j])} · {m}/(1 − {f(p_of(l))})"
                        f" = {f(A[l][j])}{dropped(l, j)}")

    # ---- cost
    add("")
    nL = sizes[L]
    expand = ""
    if cost in ("quadratic", "mse") and nL <= max_terms:
        terms = " + ".join(f"({f(A[L][j])} − {f.p(y[j])})²" for j in range(nL))
        expand = f" = ½[{terms}]" if cost == "quadratic" else f" = (1/{nL})[{terms}]"
    add(f"Cost   {_cost_text(cost)}{expand} = {f(example_cost(tr))}   [loopnet/costs.py: cost_x]")

    # ---- backward
    add("")
    add("Backward pass (δ^l_j = ∂C/∂z^l_j)")
    show_L = layer in (None, L)
    add(f"BP1  {_bp1_general(out, cost)}   (L = {L})   [{_kernel_tag('output_delta', L)}]")
    if show_L:
        cc = _costs.code(cost)
        aL = A[L]
        for j in neurons(L):
            d = D[L - 1][j]
            aj, yj = aL[j], y[j]
            s = f"  δ{_sup(L)}{_sub(j)} = "
            if out == "softmax" and cost == "log_likelihood" or out == "sigmoid" and cost == "cross_entropy":
                s += f"a{_sup(L)}{_sub(j)} − y{_sub(j)} = {f(aj)} − {f.p(yj)} = {f(d)}"
            elif out == "softmax":
                g = [float(_costs.dcost_da(cc, aL[i], y[i], sizes[L])) for i in range(sizes[L])]
                ga = sum(g[i] * float(aL[i]) for i in range(sizes[L]))
                s += (f"a{_sup(L)}{_sub(j)} · (∂C/∂a{_sup(L)}{_sub(j)} − Σ_i a{_sup(L)}_i ∂C/∂a{_sup(L)}_i)"
                      f" = {f(aj)} · ({f(g[j])} − {f.p(ga)}) = {f(d)}")
            else:
                g = float(_costs.dcost_da(cc, aj, yj, sizes[L]))
                spj = sp(L, j)
                if cost == "quadratic":
                    s += (f"(a{_sup(L)}{_sub(j)} − y{_sub(j)}) · σ'(z{_sup(L)}{_sub(j)})"
                          f" = ({f(aj)} − {f.p(yj)}) · {f(spj)} = {f(d)}")
                elif cost == "mse":
                    s += (f"2 (a{_sup(L)}{_sub(j)} − y{_sub(j)})/n_L · σ'(z{_sup(L)}{_sub(j)})"
                          f" = 2·({f(aj)} − {f.p(yj)})/{sizes[L]} · {f(spj)} = {f(d)}")
                else:
                    s += (f"∂C/∂a{_sup(L)}{_sub(j)} · σ'(z{_sup(L)}{_sub(j)})"
                          f" = {f.p(g)} · {f(spj)} = {f(d)}")
            add(s)
    add("BP2  δ^l_j = (Σ_k w^{l+1}_kj δ^{l+1}_k) · σ'(z^l_j)   "
        f"[{_kernel_tag('hidden_delta', L)}]")
    if hid in ("sigmoid", "tanh", "relu", "identity"):
        add(f"     with {_sigma_prime_text(hid)}")
    if drop is not None and any(p_of(l) > 0 for l in range(1, L)):
        add("     with dropout: δ^l_j = (Σ_k w^{l+1}_kj δ^{l+1}_k) · σ'(z^l_j) · m^l_j/(1 − p_l),"
            " σ' at a^l = σ(z^l)   [loopnet/kernels.py: dropout]")
    if L == 1:
        add("  (no hidden layers)")
    for l in reversed(layers()):   # backwards: δ^{L−1} from δ^L, then δ^{L−2}, ...
        if l == L:
            continue
        nk = sizes[l + 1]
        for j in neurons(l):
            back = sum(float(W[l][k, j]) * float(D[l][k]) for k in range(nk))
            lhs = f"  δ{_sup(l)}{_sub(j)} = "
            if nk <= max_terms:
                sym = " + ".join(f"w{_sup(l + 1)}{_sub(k, j)}·δ{_sup(l + 1)}{_sub(k)}" for k in range(nk))
                num = " + ".join(f"{f.p(W[l][k, j])}·{f.p(D[l][k])}" for k in range(nk))
            else:
                sym = f"Σ_k w{_sup(l + 1)}_k{j}·δ{_sup(l + 1)}_k"
                num = f"{f(back)}"
            if p_of(l) > 0:
                m = int(drop["mask"][l - 1][j])
                add(lhs + f"({sym}) · σ'(z{_sup(l)}{_sub(j)}) · m{_sup(l)}{_sub(j)}/(1 − p)"
                    f" = ({num}) · {f(sp(l, j))} · {m}/(1 − {f(p_of(l))}) = {f(D[l - 1][j])}"
                    f"{dropped(l, j)}")
                continue
            add(lhs + f"({sym}) · σ'(z{_sup(l)}{_sub(j)}) = ({num}) · {f(sp(l, j))} = {f(D[l - 1][j])}")
    add(f"BP3  ∂C/∂b^l_j = δ^l_j   [{_kernel_tag('accumulate_gradient', L)}]")
    for l in layers():
        for j in neurons(l):
            add(f"  ∂C/∂b{_sup(l)}{_sub(j)} = δ{_sup(l)}{_sub(j)} = {f(NB[l - 1][j])}")
    add("BP4  ∂C/∂w^l_jk = a^{l−1}_k δ^l_j   "
        f"[{_kernel_tag('accumulate_gradient', L)}]")
    for l in layers():
        for j in neurons(l):
            nk = sizes[l - 1]
            ks = range(nk) if nk <= max_terms * 4 else list(range(max_terms)) + [None]
            for k in ks:
                if k is None:
                    add(f"  … ({nk - max_terms} more for j = {j})")
                    continue
                add(f"  ∂C/∂w{_sup(l)}{_sub(j, k)} = {a_sym(l - 1)}{_sup(l - 1)}{_sub(k)} · δ{_sup(l)}{_sub(j)}"
                    f" = {f(A[l - 1][k])} · {f.p(D[l - 1][j])} = {f(NW[l - 1][j, k])}")
    view = per_example_view(tr, clip_norm)
    add("NORM ‖∇_{w^l,b^l} C_x‖² = ‖δ^l‖² (‖a^{l−1}‖² + 1)   [loopnet/kernels.py: gradient_norm_sq]")
    for l in range(1, L + 1):
        add(f"  ‖∇{_sup(l)} C_x‖ = {f(view['grad_norm_layers'][l - 1])}")
    add(f"  ‖∇C_x‖ = √(Σ_l ‖∇^l C_x‖²) = {f(view['grad_norm'])}")
    if clip_norm is not None:
        add(f"CLIP c_x = min(1, C/‖∇C_x‖) = min(1, {f(float(clip_norm))}/{f(view['grad_norm'])})"
            f" = {f(view['clip_factor'])}: fit(clip_norm=C) uses c_x·δ^l, i.e. c_x·∇C_x")
    text = "\n".join(lines) + "\n"
    return ascii_text(text) if ascii else text
