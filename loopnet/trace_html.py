"""A trace as one self-contained HTML page that steps through backprop for one example.

The page draws the network (neurons in layers, weights as lines whose colour is their
sign and whose width is their size) and steps, with buttons or the arrow keys, through
the forward pass layer by layer, the cost, BP1, BP2 layer by layer back, BP3, BP4 and
the update w ← w − η ∂C/∂w.  Each step highlights what it computes and shows the
equation, the numbers substituted for the selected neuron (every term of Σ_k w_jk a_k,
or for wide layers the largest terms and the rest summed) and the kernel that computed
it.  Clicking a neuron, pixel or weight shows all of its quantities.

Everything is inline (CSS, JavaScript, SVG drawn by the script); the page loads nothing
from the network and opens from disk.  Rendering only: every number comes from
:func:`loopnet.trace.trace` (the kernels) and :func:`loopnet.trace.sgd_step` (the
update), formatted here with ``digits`` significant digits exactly as
``format(v, f".{digits}g")`` writes them (0 as ``0``).
"""

import html
import json

import numpy as np

from . import activations as _act
from . import costs as _costs

IMAGE_SHAPES = {784: (28, 28), 64: (8, 8)}
FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot")


def fmt(v, digits=4):
    """``v`` with ``digits`` significant digits as Python's ``g`` format writes it; 0 as ``0``."""
    v = float(v)
    return "0" if v == 0 else f"{v:.{digits}g}"


def _q(name, l=None, idx=""):
    """A symbol such as w<sup>2</sup><sub>10</sub> (indices joined by commas once one is ≥ 10)."""
    sup = f"<sup>{l}</sup>" if l is not None else ""
    if isinstance(idx, (tuple, list)):
        idx = "".join(str(i) for i in idx) if all(i < 10 for i in idx) else ",".join(
            str(i) for i in idx)
    return f"<i>{name}</i>{sup}<sub>{idx}</sub>" if idx != "" else f"<i>{name}</i>{sup}"


def _terms(weights, values, top):
    """Terms w_i·v_i of a sum: all in index order, or the ``top`` largest |w_i·v_i| first.

    Returns (indices shown, products, indices left out); products in float64.
    """
    prod = np.asarray(weights, np.float64) * np.asarray(values, np.float64)
    n = prod.shape[0]
    if n <= top:
        return list(range(n)), prod, []
    order = np.argsort(-np.abs(prod), kind="stable")
    shown = sorted(int(i) for i in order[:top])
    shown.sort(key=lambda i: -abs(prod[i]))
    rest = sorted(int(i) for i in order[top:])
    return shown, prod, rest


def _sum_view(weights, values, total, top, f):
    """{"t": [[i, w, v, w·v], ...], "rest": [count, sum of the others] or None, "s": Σ}."""
    shown, prod, rest = _terms(weights, values, top)
    out = {"t": [[i, f(weights[i]), f(values[i]), f(prod[i])] for i in shown], "rest": None,
           "s": f(total)}
    if rest:
        out["rest"] = [len(rest), f(float(np.sum(prod[rest])))]
    return out


def _bp1_view(tr, j, f):
    """The middle of BP1 for output neuron j: {"sym": html, "num": text}."""
    out, cost = tr["output"], tr["cost"]
    L = len(tr["sizes"]) - 1
    aL, y, z = tr["a"][L], tr["y"], tr["z"][L - 1]
    n = tr["sizes"][L]
    a_, y_, z_ = _q("a", "L", j), _q("y", None, j), _q("z", "L", j)
    if (out, cost) in (("softmax", "log_likelihood"), ("sigmoid", "cross_entropy")):
        return {"sym": f"{a_} − {y_}", "num": f"{f(aL[j])} − {_p(f, y[j])}"}
    cc = _costs.code(cost)
    if out == "softmax":
        g = [float(_costs.dcost_da(cc, aL[i], y[i], n)) for i in range(n)]
        ga = sum(g[i] * float(aL[i]) for i in range(n))
        return {"sym": f"{a_} · (∂C/∂{a_} − Σ<sub>i</sub> {_q('a', 'L', 'i')} ∂C/∂{_q('a', 'L', 'i')})",
                "num": f"{f(aL[j])} · ({f(g[j])} − {_p(f, ga)})"}
    sp = float(_act.sigma_prime(_act.code(out), z[j]))
    if cost == "quadratic":
        return {"sym": f"({a_} − {y_}) · σ′({z_})",
                "num": f"({f(aL[j])} − {_p(f, y[j])}) · {f(sp)}"}
    if cost == "mse":
        return {"sym": f"2 ({a_} − {y_}) / n<sub>L</sub> · σ′({z_})",
                "num": f"2·({f(aL[j])} − {_p(f, y[j])}) / {n} · {f(sp)}"}
    g = float(_costs.dcost_da(cc, aL[j], y[j], n))
    return {"sym": f"∂C/∂{a_} · σ′({z_})", "num": f"{_p(f, g)} · {f(sp)}"}


def _p(f, v):
    s = f(v)
    return f"({s})" if s.startswith("-") else s


def _cost_view(tr, f, top):
    """C_x written out with its terms (quadratic and mse, up to ``top`` outputs)."""
    cost, L = tr["cost"], len(tr["sizes"]) - 1
    aL, y, n = tr["a"][L], tr["y"], tr["sizes"][L]
    if cost in ("quadratic", "mse") and n <= max(top, 10):
        terms = " + ".join(f"({f(aL[j])} − {_p(f, y[j])})²" for j in range(n))
        return ("½ [" if cost == "quadratic" else f"(1/{n}) [") + terms + "]"
    if cost == "log_likelihood" and n <= max(top, 10):
        hot = [j for j in range(n) if y[j] != 0]
        return " − ".join([""] + [f"{_p(f, y[j])}·ln {f(aL[j])}" for j in hot]).strip()
    return ""


COST_HTML = {
    "quadratic": "C<sub>x</sub> = ½ Σ<sub>j</sub> (a<sup>L</sup><sub>j</sub> − y<sub>j</sub>)²",
    "mse": "C<sub>x</sub> = (1/n<sub>L</sub>) Σ<sub>j</sub> (a<sup>L</sup><sub>j</sub> − y<sub>j</sub>)²",
    "cross_entropy": "C<sub>x</sub> = −Σ<sub>j</sub> [y<sub>j</sub> ln a<sup>L</sup><sub>j</sub>"
                     " + (1 − y<sub>j</sub>) ln(1 − a<sup>L</sup><sub>j</sub>)]",
    "log_likelihood": "C<sub>x</sub> = −Σ<sub>j</sub> y<sub>j</sub> ln a<sup>L</sup><sub>j</sub>",
}
SIGMA_HTML = {"sigmoid": "σ(z) = 1/(1 + e<sup>−z</sup>)", "tanh": "σ(z) = tanh z",
              "relu": "σ(z) = max(0, z)", "identity": "σ(z) = z",
              "softmax": "a<sub>j</sub> = e<sup>z<sub>j</sub></sup> / Σ<sub>i</sub> e<sup>z<sub>i</sub></sup>"}
SIGMA_PRIME_HTML = {"sigmoid": "σ′(z) = σ(z)(1 − σ(z))", "tanh": "σ′(z) = 1 − tanh² z",
                    "relu": "σ′(z) = 1 if z > 0 else 0", "identity": "σ′(z) = 1",
                    "softmax": "(softmax: see BP1)"}


def view_model(tr, *, update, kernels, eta=3.0, digits=4, top=8, image=None, title=None,
               label_names=None, caption=None):
    """Everything the page shows, as JSON-able data with the numbers already formatted.

    ``update``: the update step of the example (:func:`loopnet.trace.sgd_step` with the
    same ``eta``); ``kernels``: which function computed each stage
    (:data:`loopnet.trace.KERNELS`).  :func:`loopnet.trace.view_model` passes both: this
    module only renders, it computes nothing.
    ``eta``: learning rate of the update step; ``digits``: significant digits; ``top``:
    terms shown of a wider sum (the rest are summed); ``image``: (height, width) to draw
    the input as a picture (default: 28×28 for 784 inputs, 8×8 for 64, else none);
    ``label_names``: names of the output classes; ``caption``: where the example came from.
    """
    if not 1 <= int(digits) <= 17:
        raise ValueError(f"digits must be between 1 and 17, got {digits}")
    if int(top) < 1:
        raise ValueError(f"top must be at least 1, got {top}")

    def f(v):
        return fmt(v, digits)

    def fv(v):
        return [f(u) for u in np.ravel(v)]

    sizes = [int(n) for n in tr["sizes"]]
    L = len(sizes) - 1
    if image is None:
        image = IMAGE_SHAPES.get(sizes[0])
    elif image is not False:
        image = tuple(int(i) for i in image)
        if image[0] * image[1] != sizes[0]:
            raise ValueError(f"image {image[0]}x{image[1]} does not match {sizes[0]} inputs")
    upd = update
    W, B, Z, A, Dl = tr["weights"], tr["biases"], tr["z"], tr["a"], tr["delta"]
    drop = tr.get("dropout")
    lay = [None]
    Wv = [None]
    fwd, bp2 = [None], [None]
    for l in range(1, L + 1):
        act = tr["output"] if l == L else tr["activation"]
        z = Z[l - 1]
        sp = (np.array([_act.sigma_prime(_act.code(act), v) for v in z]) if act != "softmax"
              else np.full(z.shape, np.nan))
        lay.append({"z": fv(z), "a": fv(A[l]), "b": fv(B[l - 1]), "d": fv(Dl[l - 1]),
                    "nb": fv(tr["nabla_b"][l - 1]), "sp": [None if np.isnan(s) else f(s) for s in sp],
                    "bn": fv(upd["biases"][l - 1]), "act": act})
        if drop is not None and l < L and drop["p"][l - 1] > 0:   # ã = a·m/(1 − p) went on
            lay[-1].update({"p": f(drop["p"][l - 1]), "as": fv(drop["a"][l - 1]),
                            "mask": [int(m) for m in drop["mask"][l - 1]]})
        Wv.append({"w": [fv(r) for r in W[l - 1]], "g": [fv(r) for r in tr["nabla_w"][l - 1]],
                   "wn": [fv(r) for r in upd["weights"][l - 1]]})
        fwd.append([_sum_view(W[l - 1][j], A[l - 1], float(z[j]) - float(B[l - 1][j]), top, f)
                    for j in range(sizes[l])])
        if l < L:
            back = [float(np.dot(W[l][:, j].astype(np.float64), Dl[l].astype(np.float64)))
                    for j in range(sizes[l])]
            bp2.append([_sum_view(W[l][:, j], Dl[l], back[j], top, f) for j in range(sizes[l])])
        else:
            bp2.append(None)
    y = np.asarray(tr["y"])
    label = int(np.argmax(y)) if np.all((y == 0) | (y == 1)) and y.sum() == 1 else None
    hid, out, cost = tr["activation"], tr["output"], tr["cost"]
    vm = {
        "title": title or f"Backprop, step by step: one example through a {sizes} network",
        "caption": caption or "", "sizes": sizes, "L": L, "activation": hid, "output": out,
        "cost": cost, "eta": f(eta), "digits": int(digits), "top": int(top), "kernels": dict(kernels),
        "image": list(image) if image else None, "label": label,
        "label_names": list(label_names) if label_names else None,
        "x": fv(tr["x"]), "y": fv(y), "cost_x": f(tr["cost_x"]), "cost_after": f(upd["cost_x"]),
        "lay": lay, "W": Wv, "fwd": fwd, "bp2": bp2,
        "bp1": [_bp1_view(tr, j, f) for j in range(sizes[L])],
        "cost_html": COST_HTML[cost], "cost_terms": _cost_view(tr, f, top),
        "sigma_html": {"hidden": SIGMA_HTML[hid], "output": SIGMA_HTML[out]},
        "sigma_prime_html": {"hidden": SIGMA_PRIME_HTML[hid], "output": SIGMA_PRIME_HTML[out]},
        "bp1_html": _bp1_general_html(out, cost),
    }
    if drop is not None:      # (only then: pages without dropout stay as they were)
        when = f"epoch {drop['epoch']}, " if drop["epoch"] is not None else ""
        vm["dropout"] = (f"dropout: the training pass of {when}example row {drop['index']} "
                         f"(seed {drop['seed']}); dropped neurons are drawn dashed")
    return vm


def _bp1_general_html(output, cost):
    d = "δ<sup>L</sup><sub>j</sub>"
    a, y, z = "a<sup>L</sup><sub>j</sub>", "y<sub>j</sub>", "z<sup>L</sup><sub>j</sub>"
    if output == "softmax" and cost == "log_likelihood":
        return f"{d} = {a} − {y} &nbsp; (softmax with log-likelihood: the Jacobian collapses)"
    if output == "softmax":
        return (f"{d} = Σ<sub>i</sub> ∂C/∂a<sup>L</sup><sub>i</sub> · ∂a<sup>L</sup><sub>i</sub>/∂{z}"
                f" = {a} (∂C/∂{a} − Σ<sub>i</sub> a<sup>L</sup><sub>i</sub> ∂C/∂a<sup>L</sup><sub>i</sub>)")
    if output == "sigmoid" and cost == "cross_entropy":
        return f"{d} = ∂C/∂{a} · σ′({z}) = {a} − {y} &nbsp; (σ′ cancels)"
    return f"{d} = ∂C/∂{a} · σ′({z})"


def page(vm):
    """The whole page as an HTML string, from a :func:`view_model`."""
    data = json.dumps(vm, separators=(",", ":")).replace("</", "<\\/")
    return (_TEMPLATE.replace("__TITLE__", html.escape(vm["title"]))
            .replace("__CSS__", _CSS).replace("__JS__", _JS).replace("__DATA__", data))


def write_html(vm, path):
    """Write :func:`page` of the view model ``vm`` to ``path`` (UTF-8)."""
    text = page(vm)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def iframe(vm, height=760):
    """The page inside an ``<iframe srcdoc>``, for Jupyter (its CSS and keys stay inside)."""
    return (f'<iframe srcdoc="{html.escape(page(vm), quote=True)}" '
            f'style="width:100%;height:{int(height)}px;border:1px solid #ccc"></iframe>')


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__CSS__</style></head>
<body data-step="">
<header><h1 id="title"></h1><div id="config"></div></header>
<nav id="steps" aria-label="steps"></nav>
<div id="controls"><button id="prev" title="previous step (←)">◀ Prev</button>
<span id="stepno"></span><button id="next" title="next step (→)">Next ▶</button>
<span class="hint">keys: ← → step · ↑ ↓ choose a neuron · click a neuron, pixel or weight for all its numbers</span></div>
<main><section id="left"><svg id="net" xmlns="http://www.w3.org/2000/svg" role="img"></svg>
<div id="legend"></div><div id="info"></div></section>
<section id="panel" aria-live="polite"></section></main>
<section id="all"></section>
<script type="application/json" id="data">__DATA__</script>
<script>__JS__</script>
</body></html>
"""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 14px;color:#222;background:#fff;font-size:15px}
header h1{font-size:20px;margin:10px 0 2px}
#config{color:#555;font-size:13px}
#steps{display:flex;flex-wrap:wrap;gap:4px;margin:8px 0}
#steps button{border:1px solid #bbb;background:#f6f6f6;border-radius:12px;padding:3px 9px;font-size:13px;cursor:pointer}
#steps button.current{background:#222;color:#fff;border-color:#222}
#steps button .tag{font-weight:700}
#controls{display:flex;align-items:center;gap:10px;margin-bottom:6px}
#controls button{font-size:15px;padding:4px 14px;cursor:pointer}
.hint{color:#666;font-size:12px}
main{display:flex;gap:16px;align-items:flex-start}
#left{flex:0 0 auto}
#panel{flex:1 1 420px;min-width:380px;max-width:760px}
svg#net{background:#fcfcfc;border:1px solid #ddd;display:block}
svg .edge{stroke-linecap:round;cursor:pointer}
svg .dim{opacity:.13}
svg .hl{opacity:1}
svg .edge.faint{opacity:.35}
svg .src{opacity:1}
svg .neuron{stroke:#555;stroke-width:1.2;cursor:pointer}
svg .neuron.hl{stroke:#000;stroke-width:2.2}
svg .neuron.sel,svg .pix.sel{stroke:#e6a700;stroke-width:4}
svg .neuron.dropped{stroke-dasharray:3 2;fill-opacity:.25}
svg .edge.sel{stroke:#e6a700 !important;opacity:1}
svg .pix{cursor:pointer;stroke:none;shape-rendering:crispEdges}
svg text{font-size:11px;fill:#222;pointer-events:none}
svg text.layer{font-size:13px;font-weight:600}
svg text.val{font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg .sel{opacity:1}
svg text.val.hl{font-weight:700}
h2{font-size:18px;margin:4px 0}
.tag{display:inline-block;background:#222;color:#fff;border-radius:4px;padding:0 6px;margin-right:6px;font-weight:700}
.what{color:#333;margin:4px 0 8px}
.eq{font-family:"Cambria Math","STIX Two Math","Latin Modern Math",Georgia,serif;font-size:19px;background:#f3f6fb;border-left:4px solid #3b6fb6;padding:6px 10px;margin:6px 0}
.sub{font-family:"Cambria Math",Georgia,serif;font-size:17px;margin:6px 0;line-height:1.6}
.sub .num,.num{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:14px;background:#fff6d6;padding:0 2px;border-radius:3px}
.result{font-weight:700}
.kernel{margin:8px 0;font-size:13px;color:#333}
.kernel code{background:#eef;border:1px solid #ccd;padding:1px 5px;border-radius:3px;font-size:13px}
table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3;font-weight:600}
tr.sel td{background:#fff1bf}
tr.rest td{color:#555;font-style:italic}
#info{margin-top:8px;max-width:640px}
#info h3{font-size:15px;margin:4px 0}
#legend{font-size:12px;color:#444;margin-top:4px;max-width:640px}
.sw{display:inline-block;width:22px;height:4px;vertical-align:middle;margin:0 3px}
#all{margin:18px 0 30px}
#all h2{font-size:16px}
#all .mat{display:inline-block;vertical-align:top;margin-right:16px}
.pos{color:#1f5fa8}.neg{color:#c0392b}
"""

_JS = r"""
(function(){
'use strict';
const D = JSON.parse(document.getElementById('data').textContent);
const L = D.L, S = D.sizes, TOP = D.top;
const NS = 'http://www.w3.org/2000/svg';
const num = s => parseFloat(s);
const POS = [31,95,168], NEG = [192,57,43];
function col(v, m){ // diverging colour, white at 0
  const t = m > 0 ? Math.min(1, Math.abs(v)/m) : 0, c = v >= 0 ? POS : NEG;
  return 'rgb(' + c.map(x => Math.round(255 + (x-255)*t)).join(',') + ')';
}
function maxabs(a){ let m = 0; for (const s of a){ const v = Math.abs(num(s)); if (v > m) m = v; } return m; }
function esc(s){ return String(s).replace(/&/g,'&amp;').replace(/</g,'&lt;'); }
function N(s){ return '<span class="num">' + esc(s) + '</span>'; }
function P(s){ return s[0] === '-' ? '(' + N(s) + ')' : N(s); }
function ix(){ const a = Array.from(arguments); return a.every(i => typeof i !== 'number' || i < 10) ? a.join('') : a.join(','); }
function q(name, l, idx){ return '<i>' + name + '</i>' + (l === null ? '' : '<sup>' + l + '</sup>') + (idx === undefined ? '' : '<sub>' + idx + '</sub>'); }
const labelName = j => D.label_names && j >= 0 ? ' (' + esc(D.label_names[j]) + ')' : '';

// ------------------------------------------------------------------ state
const sel = [];  // selected neuron per layer
for (let l = 0; l <= L; l++) sel.push(0);
if (D.label !== null) sel[L] = D.label;
function argmaxAbs(arr){ let b = 0, m = -1; arr.forEach((s, i) => { const v = Math.abs(num(s)); if (v > m){ m = v; b = i; } }); return b; }
for (let l = L - 1; l >= 1; l--) sel[l] = argmaxAbs(D.lay[l].d);   // the hidden neuron with the largest error
sel[0] = D.fwd[1][sel[1]].t[0][0];                                    // its largest input term
let info = null;        // {kind:'neuron', l, j} or {kind:'weight', l, j, k}
let focusBP = L;        // layer shown by BP3 and update

const steps = [];
steps.push({id:'input', tag:'x', name:'The example', layer:0});
for (let l = 1; l <= L; l++) steps.push({id:'forward-' + l, tag:'→', name:'Forward, layer ' + l, layer:l, stage:'forward'});
steps.push({id:'cost', tag:'C', name:'Cost', layer:L, stage:'cost'});
steps.push({id:'bp1', tag:'BP1', name:'Output error', layer:L, stage:'BP1'});
for (let l = L - 1; l >= 1; l--) steps.push({id:'bp2-' + l, tag:'BP2', name:'Error, layer ' + l, layer:l, stage:'BP2'});
steps.push({id:'bp3', tag:'BP3', name:'∂C/∂b', layer:null, stage:'BP3'});
for (let l = L; l >= 1; l--) steps.push({id:'bp4-' + l, tag:'BP4', name:'∂C/∂w, layer ' + l, layer:l, stage:'BP4'});
steps.push({id:'update', tag:'η', name:'Update', layer:null, stage:'update'});
let cur = 0;
function stepLayer(){ const s = steps[cur]; return s.layer === null ? focusBP : s.layer; }
// how far the computation has got at this step: forward layers done, deltas done
function progress(){
  const s = steps[cur], id = s.id;
  if (id === 'input') return {fwd:0, dFrom:L + 1, grads:false};
  if (s.stage === 'forward') return {fwd:s.layer, dFrom:L + 1, grads:false};
  if (id === 'cost') return {fwd:L, dFrom:L + 1, grads:false};
  if (id === 'bp1') return {fwd:L, dFrom:L, grads:false};
  if (s.stage === 'BP2') return {fwd:L, dFrom:s.layer, grads:false};
  return {fwd:L, dFrom:1, grads:true};
}

// ------------------------------------------------------------------ drawing
const svg = document.getElementById('net');
const IMG = D.image;
const W0 = D.label_names ? 800 : 730, H0 = 520, PAD = 34;
const imgSide = IMG ? 230 : 0;
const colX = [];
(function(){
  const x0 = IMG ? PAD + imgSide + 130 : PAD + 50, x1 = W0 - PAD - (D.label_names ? 205 : 150);
  for (let l = 0; l <= L; l++) colX.push(IMG && l === 0 ? PAD + imgSide / 2 : (L === 0 ? x0 : (IMG ? x0 + (x1 - x0) * (l - 1) / Math.max(1, L - 1) : x0 + (x1 - x0) * l / L)));
  if (IMG && L === 1) colX[1] = x1;
})();
svg.setAttribute('width', W0); svg.setAttribute('height', H0);
svg.setAttribute('viewBox', '0 0 ' + W0 + ' ' + H0);
function pos(l, j){
  if (IMG && l === 0){
    const h = IMG[0], w = IMG[1], c = imgSide / Math.max(h, w);
    const r = Math.floor(j / w), k = j % w;
    return [PAD + (k + 0.5) * c, H0 / 2 - h * c / 2 + (r + 0.5) * c, c];
  }
  const n = S[l], top = 44, bot = H0 - 24, span = bot - top;
  const gap = span / n, r = Math.max(2.5, Math.min(17, gap * 0.38));
  return [colX[l], top + gap * (j + 0.5), r];
}
function el(tag, attrs, parent){
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function edgesOf(l, p){
  // all edges of layer l when few; else the selected neuron's largest terms
  const n = S[l] * S[l - 1];
  if (n <= 1500) { const out = []; for (let j = 0; j < S[l]; j++) for (let k = 0; k < S[l - 1]; k++) out.push([j, k]); return out; }
  const j = sel[l];
  let ks = D.fwd[l][j].t.map(t => t[0]);
  const st = steps[cur].stage;
  if ((st === 'BP4' && steps[cur].layer === l) || st === 'update') ks = topBy(D.W[l].g[j], TOP);
  if (!ks.includes(sel[l - 1])) ks.push(sel[l - 1]);
  return ks.map(k => [j, k]);
}
let gPix = null, pixels = null;   // the input image is drawn once
function topBy(row, n){
  const ks = row.map((_, i) => i);
  ks.sort((p, r) => Math.abs(num(row[r])) - Math.abs(num(row[p])));
  return ks.slice(0, n);
}
function draw(){
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const s = steps[cur], pr = progress(), sl = stepLayer();
  if (!gPix) gPix = el('g', {}, null);
  svg.appendChild(gPix);
  const gEdges = el('g', {}, svg), gNodes = el('g', {}, svg), gText = el('g', {}, svg);
  // which edges are highlighted: forward l -> w^l; BP2 l -> w^{l+1}; BP4 l -> w^l; update -> all
  let hlW = null;
  if (s.stage === 'forward') hlW = s.layer;
  else if (s.stage === 'BP2') hlW = s.layer + 1;
  else if (s.stage === 'BP4') hlW = s.layer;
  for (let l = 1; l <= L; l++){
    const useGrad = (s.stage === 'BP4' && l === s.layer) || s.stage === 'update';
    const M = useGrad ? D.W[l].g : D.W[l].w;
    let m = 0; for (const row of M) { const v = maxabs(row); if (v > m) m = v; }
    const list = edgesOf(l);
    const lit = hlW === l || s.stage === 'update';
    const many = list.length > 40;
    // in a crowded layer only the lines of the selected neuron stand out
    const mine = (j, k) => (s.stage === 'BP2' ? k === sel[l - 1] : j === sel[l]);
    for (const [j, k] of list){
      const v = num(M[j][k]);
      const [x1, y1] = pos(l - 1, k), [x2, y2] = pos(l, j);
      const wdt = 0.4 + 4.6 * (m > 0 ? Math.abs(v) / m : 0);
      const e = el('line', {x1:x1, y1:y1, x2:x2, y2:y2, stroke: v >= 0 ? 'rgb(31,95,168)' : 'rgb(192,57,43)',
        'stroke-width': wdt.toFixed(2), 'class':'edge ' + (lit && (!many || mine(j, k)) ? 'hl' + (mine(j, k) || s.stage === 'update' ? '' : ' faint') : 'dim'), id:'e' + l + '_' + j + '_' + k}, gEdges);
      if (!lit) e.setAttribute('stroke-opacity', 1);
      const selW = info && info.kind === 'weight' ? info : ((s.stage === 'BP4' && s.layer === l) || (s.stage === 'update' && focusBP === l) ? {l:l, j:sel[l], k:sel[l - 1]} : null);
      if (selW && selW.l === l && selW.j === j && selW.k === k) e.classList.add('sel');
      e.addEventListener('click', ev => { ev.stopPropagation(); sel[l] = j; sel[l - 1] = k; if (steps[cur].layer === null) focusBP = l; info = {kind:'weight', l:l, j:j, k:k}; render(); });
      const t = el('title', {}, e); t.textContent = 'w' + l + '[' + j + ',' + k + '] = ' + D.W[l].w[j][k];
    }
  }
  // neurons; the value shown is a (forward) or δ (once computed)
  for (let l = 0; l <= L; l++){
    const isHl = (s.stage === 'BP3' || s.stage === 'update') ? l >= 1 : (s.id === 'cost' ? l === L : l === sl);
    let vals, kind;
    if (l === 0) { vals = D.x; kind = 'a'; }
    else if (l >= pr.dFrom) { vals = D.lay[l].d; kind = 'δ'; }
    else if (l <= pr.fwd) { vals = D.lay[l].a; kind = 'a'; }
    else { vals = null; kind = ''; }
    const m = vals ? maxabs(vals) : 0;
    const lab = el('text', {x: l === 0 && IMG ? PAD + imgSide / 2 : colX[l], y: 22, 'text-anchor':'middle', 'class':'layer'}, gText);
    lab.textContent = (l === 0 ? 'input' : (l === L ? 'output' : 'hidden')) + ' l=' + l + (kind ? ' (' + kind + ')' : '');
    for (let j = 0; j < S[l]; j++){
      const [cx, cy, r] = pos(l, j);
      let e;
      if (IMG && l === 0){
        if (pixels) { pixels[j].classList.toggle('sel', j === sel[0]); continue; }
        const g = Math.round(255 * (1 - Math.max(0, Math.min(1, num(D.x[j])))));
        e = el('rect', {x: cx - r / 2, y: cy - r / 2, width: r, height: r, fill: 'rgb(' + g + ',' + g + ',' + g + ')', 'class':'pix', id:'n0_' + j}, gPix);
        if (j === S[0] - 1) pixels = Array.from(gPix.children);
      } else {
        const fill = vals === null ? '#fff' : (kind === 'a' && l > 0 && D.lay[l].act === 'sigmoid' ? col(num(vals[j]), 1) : col(num(vals[j]), m));
        e = el('circle', {cx:cx, cy:cy, r:r, fill:fill, 'class':'neuron', id:'n' + l + '_' + j}, gNodes);
      }
      const isSrc = (s.stage === 'forward' || s.stage === 'BP4') && l === s.layer - 1 || s.stage === 'BP2' && l === s.layer + 1;
      if (!(IMG && l === 0)) e.classList.add(isHl ? 'hl' : (isSrc ? 'src' : 'dim'));
      if (j === sel[l]) e.classList.add('sel');
      e.addEventListener('click', ev => { ev.stopPropagation(); sel[l] = j; if (steps[cur].layer === null && l >= 1) focusBP = l; info = {kind:'neuron', l:l, j:j}; render(); });
      const gone = l >= 1 && D.lay[l].mask && D.lay[l].mask[j] === 0;
      if (gone) e.classList.add('dropped');
      const t = el('title', {}, e); t.textContent = 'layer ' + l + ', neuron ' + j + (gone ? ' (dropped: mask 0)' : '');
      const big = S[l] <= 12;
      if (vals && !(IMG && l === 0) && (big || j === sel[l])){
        const tx = el('text', {x: cx + r + 4, y: cy + 4, 'class':'val' + (isHl ? ' hl' : '')}, gText);
        tx.textContent = (j === sel[l] && !big ? 'j=' + j + ' ' : '') + kind + '=' + vals[j] + (l === L && pr.fwd === L && s.id !== 'forward-' + L ? '  y=' + D.y[j] : '') + (l === L && D.label_names && big ? ' ' + D.label_names[j] : '');
      }
      if (l === 0 && !IMG && S[0] <= 12) {
        const tx = el('text', {x: cx - r - 4, y: cy + 4, 'text-anchor':'end'}, gText); tx.textContent = 'x' + j;
      }
    }
  }
  if (IMG){
    const [cx, cy, c] = pos(0, sel[0]);
    const t = el('text', {x: PAD, y: H0 / 2 + IMG[0] * c / 2 + 18}, gText);
    t.textContent = 'pixel k=' + sel[0] + ': a⁰ = ' + D.x[sel[0]] + (D.label !== null ? '   label ' + D.label + (D.label_names ? ' ' + D.label_names[D.label] : '') : '');
  }
}

// ------------------------------------------------------------------ the explanation panel
const panel = document.getElementById('panel');
function kernel(stage, extra){ return '<div class="kernel">computed by <code>' + D.kernels[stage] + '</code>' + (extra || '') + '</div>'; }
function termsTable(v, wname, vname, l, j, back){
  let h = '<table><tr><th>k</th><th>' + wname + '</th><th>' + vname + '</th><th>product</th></tr>';
  for (const t of v.t) h += '<tr' + (t[0] === sel[back ? l + 1 : l - 1] ? ' class="sel"' : '') + '><td>' + t[0] + '</td><td>' + N(t[1]) + '</td><td>' + N(t[2]) + '</td><td>' + N(t[3]) + '</td></tr>';
  if (v.rest) h += '<tr class="rest"><td colspan="3">the other ' + v.rest[0] + ' terms, summed</td><td>' + N(v.rest[1]) + '</td></tr>';
  h += '<tr><th colspan="3">Σ</th><td>' + N(v.s) + '</td></tr></table>';
  return h;
}
function sumNumbers(v, back){
  // every term as w·a (or the largest ones and "+ (n others)")
  const parts = v.t.map(t => P(t[1]) + '·' + P(t[2]));
  let s = parts.join(' + ');
  if (v.rest) s += ' + <span title="the other terms, summed">[' + v.rest[0] + ' more terms: ' + N(v.rest[1]) + ']</span>';
  return s;
}
function layerTable(l, cols){
  if (S[l] > 32) return '';
  let h = '<table><tr><th>j</th>' + cols.map(c => '<th>' + c[0] + '</th>').join('') + '</tr>';
  for (let j = 0; j < S[l]; j++) h += '<tr' + (j === sel[l] ? ' class="sel"' : '') + '><td>' + j + (l === L ? labelName(j) : '') + '</td>' + cols.map(c => '<td>' + N(c[1][j]) + '</td>').join('') + '</tr>';
  return h + '</table>';
}
function forwardPanel(l){
  const j = sel[l], v = D.fwd[l][j], Ly = D.lay[l], soft = Ly.act === 'softmax';
  const nk = S[l - 1];
  let h = '<div class="what">Each neuron j of layer ' + l + ' adds up its weighted inputs from layer ' + (l - 1) + ' plus its bias (the weighted input z), then applies ' + (soft ? 'softmax' : 'σ') + ' to get its activation a.</div>';
  h += '<div class="eq">' + q('z', l, 'j') + ' = Σ<sub>k</sub> ' + q('w', l, 'jk') + ' ' + q('a', l - 1, 'k') + ' + ' + q('b', l, 'j') + ' &nbsp;&nbsp; ' + q('a', l, 'j') + ' = ' + (soft ? 'e<sup>z<sub>j</sub></sup> / Σ<sub>i</sub> e<sup>z<sub>i</sub></sup>' : 'σ(' + q('z', l, 'j') + ')') + '</div>';
  h += '<div class="what">' + (l === L ? D.sigma_html.output : D.sigma_html.hidden) + '</div>';
  h += '<div class="sub">For the selected neuron j = ' + j + labelName(l === L ? j : -1) + ' (↑/↓ or click to choose another):<br>';
  h += q('z', l, j) + ' = ' + (nk <= TOP ? Array.from({length:nk}, (_, k) => q('w', l, ix(j, k)) + q('a', l - 1, k)).join(' + ') : 'Σ<sub>k</sub> ' + q('w', l, j + 'k') + q('a', l - 1, 'k') + ' (' + nk + ' terms' + (v.rest ? ', the ' + v.t.length + ' largest shown' : '') + ')') + ' + ' + q('b', l, j) + '<br>';
  h += '&nbsp;&nbsp;&nbsp;= ' + sumNumbers(v) + ' + ' + P(Ly.b[j]) + '<br>';
  if (v.rest || nk > TOP) h += '&nbsp;&nbsp;&nbsp;= ' + N(v.s) + ' + ' + P(Ly.b[j]) + '<br>';
  h += '&nbsp;&nbsp;&nbsp;= <span class="result">' + N(Ly.z[j]) + '</span><br>';
  h += soft ? q('a', l, j) + ' = softmax(z<sup>' + l + '</sup>)<sub>' + j + '</sub> = <span class="result">' + N(Ly.a[j]) + '</span>'
            : q('a', l, j) + ' = σ(' + N(Ly.z[j]) + ') = <span class="result">' + N(Ly.mask ? Ly.as[j] : Ly.a[j]) + '</span>';
  if (Ly.mask) h += '<br>dropout: ' + q('ã', l, j) + ' = ' + q('a', l, j) + ' · ' + q('m', l, j) + '/(1 − p) = ' + P(Ly.as[j]) + ' · ' + Ly.mask[j] + '/(1 − ' + N(Ly.p) + ') = <span class="result">' + N(Ly.a[j]) + '</span>' + (Ly.mask[j] === 0 ? ' (dropped)' : '') + ' goes on to layer ' + (l + 1);
  h += '</div>';
  if (Ly.mask) h += '<div class="what">' + esc(D.dropout) + '</div>';
  h += termsTable(v, q('w', l, ix(j, 'k')), q('a', l - 1, 'k'), l, j, false);
  h += kernel('forward', ' (one call per layer: all j of layer ' + l + ')');
  h += '<div>Whole layer ' + l + ':</div>' + layerTable(l, Ly.mask ? [['b', Ly.b], ['z', Ly.z], ['a = σ(z)', Ly.as], ['mask', Ly.mask.map(String)], ['ã', Ly.a]] : [['b', Ly.b], ['z', Ly.z], ['a = σ(z)', Ly.a]]);
  return h;
}
function inputPanel(){
  let h = '<div class="what">The input x is the activation of layer 0: a<sup>0</sup> = x. The target y is what the output layer should produce' + (D.label !== null ? ': the one-hot vector of label ' + D.label + labelName(D.label) : '') + '.</div>';
  if (D.caption) h += '<div class="what">' + esc(D.caption) + '</div>';
  h += '<div class="eq">a<sup>0</sup> = x, &nbsp; n<sub>0</sub> = ' + S[0] + ' inputs' + (IMG ? ' (a ' + IMG[0] + '×' + IMG[1] + ' image, drawn on the left: dark = large)' : '') + '</div>';
  if (S[0] <= 32) h += '<table><tr><th>k</th><th>x<sub>k</sub></th></tr>' + D.x.map((v, k) => '<tr' + (k === sel[0] ? ' class="sel"' : '') + '><td>' + k + '</td><td>' + N(v) + '</td></tr>').join('') + '</table>';
  else h += '<div class="sub">selected pixel k = ' + sel[0] + ': x<sub>' + sel[0] + '</sub> = ' + N(D.x[sel[0]]) + ' (click a pixel)</div>';
  h += '<table><tr><th>j</th><th>y<sub>j</sub></th></tr>' + D.y.map((v, j) => '<tr' + (j === D.label ? ' class="sel"' : '') + '><td>' + j + labelName(j) + '</td><td>' + N(v) + '</td></tr>').join('') + '</table>';
  h += '<div class="what">Press → to run the network forward, one layer at a time.</div>';
  return h;
}
function costPanel(){
  const Ly = D.lay[L];
  let h = '<div class="what">The cost of this one example measures how far the output a<sup>L</sup> is from the target y (L = ' + L + ').</div>';
  h += '<div class="eq">' + D.cost_html + '</div>';
  h += '<div class="sub">C<sub>x</sub> = ' + (D.cost_terms ? D.cost_terms.replace(/(-?[0-9][0-9.e+-]*)/g, m => m) + ' = ' : '') + '<span class="result">' + N(D.cost_x) + '</span></div>';
  h += kernel('cost');
  h += layerTable(L, [['a<sup>L</sup>', Ly.a], ['y', D.y]]);
  h += '<div class="what">Backpropagation now finds how C<sub>x</sub> changes with every weight and bias, starting at the output.</div>';
  return h;
}
function bp1Panel(){
  const j = sel[L], Ly = D.lay[L], b = D.bp1[j];
  let h = '<div class="what"><b>BP1</b>: the error δ = ∂C/∂z of each output neuron: how much the cost changes when its weighted input z changes.</div>';
  h += '<div class="eq">' + D.bp1_html + '</div>';
  if (Ly.act !== 'softmax') h += '<div class="what">' + D.sigma_prime_html.output + '</div>';
  h += '<div class="sub">For output neuron j = ' + j + labelName(j) + ':<br>' + q('δ', L, j) + ' = ' + b.sym.replace(/<sup>L<\/sup>/g, '<sup>' + L + '</sup>').replace(/<sub>j<\/sub>/g, '<sub>' + j + '</sub>') + '<br>&nbsp;&nbsp;&nbsp;= ' + b.num.replace(/(^|[\s(·])(-?\d[\d.]*(?:e[-+]\d+)?)/g, (m0, a, n) => a + N(n)) + ' = <span class="result">' + N(Ly.d[j]) + '</span></div>';
  h += kernel('BP1');
  h += layerTable(L, Ly.act === 'softmax' ? [['a', Ly.a], ['y', D.y], ['δ', Ly.d]]
                                          : [['a', Ly.a], ['y', D.y], ['σ′(z)', Ly.sp], ['δ', Ly.d]]);
  return h;
}
function bp2Panel(l){
  const j = sel[l], v = D.bp2[l][j], Ly = D.lay[l], nk = S[l + 1];
  let h = '<div class="what"><b>BP2</b>: the error of neuron j in layer ' + l + ' is the errors of layer ' + (l + 1) + ' sent back through the weights that leave j, times σ′(z). (Note the index order w<sub>kj</sub>: the transpose.)</div>';
  h += '<div class="eq">' + q('δ', l, 'j') + ' = (Σ<sub>k</sub> ' + q('w', l + 1, 'kj') + ' ' + q('δ', l + 1, 'k') + ') · σ′(' + q('z', l, 'j') + ')</div>';
  h += '<div class="what">' + D.sigma_prime_html.hidden + '</div>';
  h += '<div class="sub">For neuron j = ' + j + ':<br>' + q('δ', l, j) + ' = (' + (nk <= TOP ? Array.from({length:nk}, (_, k) => q('w', l + 1, ix(k, j)) + q('δ', l + 1, k)).join(' + ') : 'Σ<sub>k</sub> ' + q('w', l + 1, 'k' + j) + q('δ', l + 1, 'k')) + ') · σ′(' + q('z', l, j) + ')<br>';
  h += '&nbsp;&nbsp;&nbsp;= (' + sumNumbers(v) + ') · ' + N(Ly.sp[j]) + '<br>';
  h += '&nbsp;&nbsp;&nbsp;= ' + N(v.s) + ' · ' + N(Ly.sp[j]) + (Ly.mask ? ' · ' + Ly.mask[j] + '/(1 − ' + N(Ly.p) + ') (dropout mask' + (Ly.mask[j] === 0 ? ': dropped' : '') + ')' : '') + ' = <span class="result">' + N(Ly.d[j]) + '</span></div>';
  h += termsTable(v, q('w', l + 1, ix('k', j)), q('δ', l + 1, 'k'), l, j, true);
  h += kernel('BP2');
  h += layerTable(l, [['z', Ly.z], ['σ′(z)', Ly.sp], ['δ', Ly.d]]);
  return h;
}
function bp3Panel(){
  const l = focusBP, j = sel[l], Ly = D.lay[l];
  let h = '<div class="what"><b>BP3</b>: the gradient of the cost with respect to a bias is the neuron\'s error. (Every layer at once; click a neuron of another layer to see it.)</div>';
  h += '<div class="eq">∂C/∂' + q('b', 'l', 'j') + ' = ' + q('δ', 'l', 'j') + '</div>';
  h += '<div class="sub">Layer ' + l + ', neuron j = ' + j + ': ∂C/∂' + q('b', l, j) + ' = ' + q('δ', l, j) + ' = <span class="result">' + N(Ly.nb[j]) + '</span></div>';
  h += kernel('BP3', ' (the bias part: nabla_b[j] += δ[j])');
  for (let m = L; m >= 1; m--) if (S[m] <= 32) h += '<div>Layer ' + m + ':</div>' + layerTable(m, [['δ', D.lay[m].d], ['∂C/∂b', D.lay[m].nb]]);
  return h;
}
function weightK(l){ // the selected weight's k in layer l
  return sel[l - 1];
}
function bp4Panel(l){
  const j = sel[l], k = weightK(l), Wl = D.W[l], a = l - 1 === 0 ? D.x : D.lay[l - 1].a;
  let h = '<div class="what"><b>BP4</b>: the gradient with respect to the weight from neuron k (layer ' + (l - 1) + ') to neuron j (layer ' + l + ') is the activation going in times the error coming out. The lines of layer ' + l + ' now show ∂C/∂w (colour = sign, width = size).</div>';
  h += '<div class="eq">∂C/∂' + q('w', l, 'jk') + ' = ' + q('a', l - 1, 'k') + ' ' + q('δ', l, 'j') + '</div>';
  h += '<div class="sub">Selected weight j = ' + j + ', k = ' + k + ' (click a line, or a neuron on each side):<br>∂C/∂' + q('w', l, ix(j, k)) + ' = ' + q('a', l - 1, k) + ' · ' + q('δ', l, j) + ' = ' + N(a[k]) + ' · ' + P(D.lay[l].d[j]) + ' = <span class="result">' + N(Wl.g[j][k]) + '</span></div>';
  h += kernel('BP4', ' (the weight part: nabla_w[j, k] += δ[j] · a[k])');
  // the row of neuron j: every k, or the largest ones
  const nk = S[l - 1];
  let ks = Array.from({length:nk}, (_, i) => i);
  if (nk > TOP) { ks = topBy(Wl.g[j], TOP); if (!ks.includes(k)) ks.push(k); }
  h += '<div>Row j = ' + j + (nk > TOP ? ' (the ' + TOP + ' largest of ' + nk + ')' : '') + ':</div><table><tr><th>k</th><th>' + q('a', l - 1, 'k') + '</th><th>' + q('δ', l, j) + '</th><th>∂C/∂' + q('w', l, ix(j, 'k')) + '</th></tr>';
  for (const i of ks) h += '<tr' + (i === k ? ' class="sel"' : '') + '><td>' + i + '</td><td>' + N(a[i]) + '</td><td>' + N(D.lay[l].d[j]) + '</td><td>' + N(Wl.g[j][i]) + '</td></tr>';
  return h + '</table>';
}
function updatePanel(){
  const l = focusBP, j = sel[l], k = weightK(l), Wl = D.W[l], Ly = D.lay[l];
  let h = '<div class="what">Gradient descent: every weight and bias takes a step of size η against its gradient (one example, so m = 1). The lines show ∂C/∂w.</div>';
  h += '<div class="eq">' + q('w', 'l', 'jk') + ' ← ' + q('w', 'l', 'jk') + ' − η ∂C/∂' + q('w', 'l', 'jk') + ' &nbsp;&nbsp; ' + q('b', 'l', 'j') + ' ← ' + q('b', 'l', 'j') + ' − η ∂C/∂' + q('b', 'l', 'j') + ' &nbsp; (η = ' + D.eta + ')</div>';
  h += '<div class="sub">Layer ' + l + ', j = ' + j + ', k = ' + k + ':<br>' + q('w', l, ix(j, k)) + ' ← ' + N(Wl.w[j][k]) + ' − ' + N(D.eta) + ' · ' + P(Wl.g[j][k]) + ' = <span class="result">' + N(Wl.wn[j][k]) + '</span><br>';
  h += q('b', l, j) + ' ← ' + N(Ly.b[j]) + ' − ' + N(D.eta) + ' · ' + P(Ly.nb[j]) + ' = <span class="result">' + N(Ly.bn[j]) + '</span></div>';
  h += kernel('update', ' (through <code>Net.step</code>)');
  const up = num(D.cost_after) > num(D.cost_x);
  h += '<div class="sub">The cost of this example: before ' + N(D.cost_x) + ', after the step ' + N(D.cost_after) + (up ? ': it went <b>up</b>, the step overshot (η is too large here; try a smaller --eta)' : ': it went down') + '.</div>';
  return h;
}
function renderPanel(){
  const s = steps[cur];
  let h = '<h2><span class="tag">' + s.tag + '</span>' + esc(s.name) + '</h2>';
  if (s.id === 'input') h += inputPanel();
  else if (s.stage === 'forward') h += forwardPanel(s.layer);
  else if (s.id === 'cost') h += costPanel();
  else if (s.id === 'bp1') h += bp1Panel();
  else if (s.stage === 'BP2') h += bp2Panel(s.layer);
  else if (s.id === 'bp3') h += bp3Panel();
  else if (s.stage === 'BP4') h += bp4Panel(s.layer);
  else h += updatePanel();
  panel.innerHTML = h;
}

// ------------------------------------------------------------------ click details
const infoBox = document.getElementById('info');
function renderInfo(){
  if (!info) { infoBox.innerHTML = ''; return; }
  const l = info.l, j = info.j;
  let h;
  if (info.kind === 'neuron'){
    if (l === 0) {
      h = '<h3>Input k = ' + j + '</h3><table><tr><th>x<sub>' + j + '</sub> = a<sup>0</sup><sub>' + j + '</sub></th><td>' + N(D.x[j]) + '</td></tr></table>';
    } else {
      const Ly = D.lay[l];
      const rows = [['b', Ly.b[j]], ['z = Σ w a + b', Ly.z[j]], ['a = σ(z)', Ly.a[j]], ['σ′(z)', Ly.sp[j]], ['δ = ∂C/∂z', Ly.d[j]], ['∂C/∂b', Ly.nb[j]], ['b after the update', Ly.bn[j]]];
      if (l === L) rows.splice(3, 0, ['y (target)', D.y[j]]);
      h = '<h3>Neuron j = ' + j + ' of layer ' + l + (l === L ? labelName(j) : '') + '</h3><table>' + rows.filter(r => r[1] !== null).map(r => '<tr><th>' + r[0] + '</th><td>' + N(r[1]) + '</td></tr>').join('') + '</table>';
    }
  } else {
    const k = info.k, Wl = D.W[l], a = l - 1 === 0 ? D.x : D.lay[l - 1].a;
    h = '<h3>Weight w<sup>' + l + '</sup><sub>' + ix(j, k) + '</sub>: from neuron ' + k + ' of layer ' + (l - 1) + ' to neuron ' + j + ' of layer ' + l + '</h3><table>' +
      [['w', Wl.w[j][k]], ['a<sup>' + (l - 1) + '</sup><sub>' + k + '</sub> (in)', a[k]], ['δ<sup>' + l + '</sup><sub>' + j + '</sub> (out)', D.lay[l].d[j]], ['∂C/∂w = a · δ', Wl.g[j][k]], ['w after the update', Wl.wn[j][k]]]
        .filter(r => r[1] !== null).map(r => '<tr><th>' + r[0] + '</th><td>' + N(r[1]) + '</td></tr>').join('') + '</table>';
  }
  infoBox.innerHTML = h;
}

// ------------------------------------------------------------------ all numbers (small networks)
function renderAll(){
  const box = document.getElementById('all');
  let h = '<h2>All the numbers of this example</h2><div class="what">Formatted to ' + D.digits + ' significant digits. C<sub>x</sub> = ' + N(D.cost_x) + '.</div>';
  const vec = (name, arr) => '<div class="mat"><table><tr><th>' + name + '</th></tr>' + arr.map((v, i) => '<tr><td>' + i + ': ' + N(v) + '</td></tr>').join('') + '</table></div>';
  if (S[0] <= 64) h += vec('x', D.x);
  h += vec('y', D.y);
  for (let l = 1; l <= L; l++){
    const Ly = D.lay[l];
    if (S[l] <= 64) h += '<div class="mat"><b>layer ' + l + '</b>' + layerTable2(l, [['b', Ly.b], ['z', Ly.z], ['a', Ly.a], ['δ', Ly.d], ['∂C/∂b', Ly.nb]]) + '</div>';
  }
  h += '<br>';
  for (let l = 1; l <= L; l++){
    if (S[l] * S[l - 1] > 400) { h += '<div class="what">w<sup>' + l + '</sup> and ∂C/∂w<sup>' + l + '</sup> have ' + S[l] * S[l - 1] + ' entries each: click a neuron or a line, or step to BP4, to see them.</div>'; continue; }
    for (const [name, M] of [['w<sup>' + l + '</sup><sub>jk</sub>', D.W[l].w], ['∂C/∂w<sup>' + l + '</sup><sub>jk</sub>', D.W[l].g]]){
      h += '<div class="mat"><table><tr><th>' + name + '</th>' + M[0].map((_, k) => '<th>k=' + k + '</th>').join('') + '</tr>' + M.map((row, j) => '<tr><th>j=' + j + '</th>' + row.map(v => '<td>' + N(v) + '</td>').join('') + '</tr>').join('') + '</table></div>';
    }
  }
  box.innerHTML = h;
}
function layerTable2(l, cols){
  let h = '<table><tr><th>j</th>' + cols.map(c => '<th>' + c[0] + '</th>').join('') + '</tr>';
  for (let j = 0; j < S[l]; j++) h += '<tr><td>' + j + '</td>' + cols.map(c => '<td>' + N(c[1][j]) + '</td>').join('') + '</tr>';
  return h + '</table>';
}

// ------------------------------------------------------------------ navigation
const nav = document.getElementById('steps');
steps.forEach((s, i) => {
  const b = document.createElement('button');
  b.innerHTML = '<span class="tag">' + s.tag + '</span>' + esc(s.name);
  b.id = 'step-' + s.id;
  b.addEventListener('click', () => go(i));
  nav.appendChild(b);
});
function go(i){ cur = Math.max(0, Math.min(steps.length - 1, i)); render(); }
function render(){
  document.body.dataset.step = steps[cur].id;
  Array.from(nav.children).forEach((b, i) => b.classList.toggle('current', i === cur));
  document.getElementById('stepno').textContent = 'step ' + (cur + 1) + ' of ' + steps.length;
  document.getElementById('prev').disabled = cur === 0;
  document.getElementById('next').disabled = cur === steps.length - 1;
  draw(); renderPanel(); renderInfo();
}
document.getElementById('prev').addEventListener('click', () => go(cur - 1));
document.getElementById('next').addEventListener('click', () => go(cur + 1));
document.addEventListener('keydown', ev => {
  if (ev.key === 'ArrowRight' || ev.key === 'PageDown') { go(cur + 1); ev.preventDefault(); }
  else if (ev.key === 'ArrowLeft' || ev.key === 'PageUp') { go(cur - 1); ev.preventDefault(); }
  else if (ev.key === 'Home') { go(0); ev.preventDefault(); }
  else if (ev.key === 'End') { go(steps.length - 1); ev.preventDefault(); }
  else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    const l = stepLayer(), d = ev.key === 'ArrowDown' ? 1 : -1;
    sel[l] = (sel[l] + d + S[l]) % S[l];
    info = null; render(); ev.preventDefault();
  }
});
svg.addEventListener('click', () => { info = null; render(); });
document.getElementById('title').textContent = D.title;
document.getElementById('config').textContent = 'layers ' + S.join(' → ') + ' · hidden σ: ' + D.activation + ' · output: ' + D.output + ' · cost: ' + D.cost + ' · η = ' + D.eta + ' · numbers to ' + D.digits + ' significant digits · layers l = 0 (input) … L = ' + L + ', neurons counted from 0';
document.getElementById('legend').innerHTML = 'Lines: <span class="sw" style="background:rgb(31,95,168)"></span>positive <span class="sw" style="background:rgb(192,57,43)"></span>negative weight, width ∝ |w| (∂C/∂w in BP4 and the update). Circles: fill = the value written beside them (a, or δ once backprop reaches the layer). Gold ring: the selected neuron.' + (S[0] * S[1] > 1500 ? ' Layer 1 has ' + S[0] * S[1] + ' weights: only the selected neuron\'s largest input terms are drawn.' : '');
renderAll();
render();
})();
"""
