"""Gradient checking: backprop's ∂C/∂w, ∂C/∂b against central finite differences.

For each parameter θ_i (a weight w^l_jk or a bias b^l_j) the cost C (the mean of
C_x over the rows of X, as :meth:`loopnet.Net.cost` computes it) is evaluated
with θ_i moved a little either way, and the slope is compared with
:meth:`loopnet.Net.gradient`:

* ``order=2``:  ∂C/∂θ ≈ [C(θ + h) − C(θ − h)] / 2h                       error O(h²)
* ``order=4``:  ∂C/∂θ ≈ [8(C(θ + h) − C(θ − h)) − (C(θ + 2h) − C(θ − 2h))] / 12h   error O(h⁴)

The default is the fourth-order stencil with h = 1e-3: its truncation error
(~h⁴) and its rounding error (~ε·C/h, ε = 2.2e-16) are both near 1e-13, so a
correct float64 gradient agrees to about 1e-12 relative.  The second-order
stencil has error ~h² + ε/h ≥ 1e-11 at best, enough to see any real bug but
not to show the agreement is exact.

The error of parameter i is reported in two ways:

* absolute: ``|numeric_i − backprop_i|``;
* relative: ``|numeric_i − backprop_i| / max(|numeric_i|, |backprop_i|, floor)``.
  Gradients smaller than ``floor`` (default 1e-6) are compared absolutely
  against ``floor``: the finite difference cannot resolve them any better.

A result whose largest relative error exceeds ``tol`` (default 1e-7) is
flagged.  A real bug, such as a kernel that forgets σ'(z), gives relative
errors of order 1.

ReLU has a kink at z = 0: when a finite-difference step carries some z^l_j
across it, the numeric slope is wrong although backprop is right.  The result
records the smallest |z| of any ReLU layer (``min_relu_margin``) and warns when
the stencil could cross it.

Networks in float32 are checked through a float64 copy (same weights), because
float32 rounding (~1e-7) swamps any finite difference.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from . import activations as _act
from . import costs as _costs
from . import reference as _ref
from .net import Net
from .trace import ascii_text


@dataclass
class LayerCheck:
    """Agreement for the weights or the biases of one layer."""
    layer: int               # l, 1..L
    kind: str                # "w" or "b"
    n_params: int            # parameters in this group
    n_checked: int           # how many were checked (all, or a random sample)
    max_abs_err: float
    max_rel_err: float
    worst: str               # e.g. "w^2_10" (0-based j, k as in the arrays)
    worst_numeric: float
    worst_backprop: float
    n_zero: int = 0          # checked parameters whose numeric and backprop slopes are both 0


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found; ``ok`` is True when every relative error ≤ ``tol``."""
    sizes: list
    activation: str
    output: str
    cost: str
    dtype: str               # dtype the check ran in (float64 unless asked otherwise)
    n_examples: int
    h: float
    order: int
    tol: float
    floor: float
    groups: list = field(default_factory=list)   # LayerCheck, layer by layer, w then b
    min_relu_margin: float = None               # smallest |z| in a ReLU layer (None: no ReLU)
    warnings: list = field(default_factory=list)
    net_seed: int = None     # set by gradcheck_all_pairs: the seed the network was made with

    @property
    def vacuous(self):
        """True when every checked gradient was exactly 0 both ways: nothing was tested."""
        return all(g.n_zero == g.n_checked for g in self.groups)

    @property
    def max_rel_err(self):
        return max((g.max_rel_err for g in self.groups), default=0.0)

    @property
    def max_abs_err(self):
        return max((g.max_abs_err for g in self.groups), default=0.0)

    @property
    def ok(self):
        return bool(np.isfinite(self.max_rel_err) and self.max_rel_err <= self.tol)

    def per_layer(self):
        """{l: largest relative error over w^l and b^l}."""
        out = {}
        for g in self.groups:
            out[g.layer] = max(out.get(g.layer, 0.0), g.max_rel_err)
        return out

    def to_dict(self):
        d = asdict(self)
        d["max_rel_err"] = self.max_rel_err
        d["max_abs_err"] = self.max_abs_err
        d["ok"] = self.ok
        d["vacuous"] = self.vacuous
        return d

    def table(self, ascii=False):
        """The result as a small text table, one row per layer and parameter kind."""
        rows = [f"gradcheck {self.sizes}  activation {self.activation}, output {self.output}, "
                f"cost {self.cost}  ({self.dtype}, {self.n_examples} examples, "
                f"order-{self.order} central differences, h = {self.h:g})",
                f"{'layer':>5}  {'param':<5}  {'checked':>11}  {'max abs err':>11}  "
                f"{'max rel err':>11}  {'worst':<10}  {'numeric':>12}  {'backprop':>12}"]
        for g in self.groups:
            rows.append(f"{g.layer:>5}  {g.kind:<5}  {f'{g.n_checked}/{g.n_params}':>11}  "
                        f"{g.max_abs_err:>11.2e}  {g.max_rel_err:>11.2e}  {g.worst:<10}  "
                        f"{g.worst_numeric:>12.5g}  {g.worst_backprop:>12.5g}")
        verdict = "ok" if self.ok else "FAILED"
        rows.append(f"max relative error {self.max_rel_err:.2e} (tol {self.tol:g}): {verdict}")
        for w in self.warnings:
            rows.append(f"warning: {w}")
        text = "\n".join(rows) + "\n"
        if ascii:
            text = ascii_text(text)
        return text

    __str__ = table


def _param_name(kind, layer, idx, shape):
    if kind == "b":
        return f"b^{layer}_{idx}"
    j, k = divmod(idx, shape[1])
    sep = "" if j < 10 and k < 10 else ","
    return f"w^{layer}_{j}{sep}{k}"


def _float64_twin(net):
    """A float64 network with the same configuration and parameter values."""
    config = dict(net.config)          # sizes, activation, output, cost, dtype (+ engine options)
    config["dtype"] = "float64"
    sizes = config.pop("sizes")
    twin = Net(list(sizes), seed=0, **config)
    twin.weights = [np.asarray(w, dtype=np.float64) for w in net.weights]
    twin.biases = [np.asarray(b, dtype=np.float64) for b in net.biases]
    return twin


def _stencil(order):
    """Pairs (s, c): ∂C/∂θ ≈ Σ c·[C(θ + s·h) − C(θ − s·h)] / h."""
    if order == 2:
        return ((1.0, 1 / 2),)
    if order == 4:
        return ((1.0, 8 / 12), (2.0, -1 / 12))
    raise ValueError(f"order must be 2 or 4, got {order!r}")


def gradcheck(net, X, Y, *, h=1e-3, order=4, tol=1e-7, floor=1e-6, max_per_group=None,
              sample_seed=0, gradient=None, dtype="float64"):
    """Compare ``net.gradient(X, Y)`` with central finite differences of ``net.cost(X, Y)``.

    ``max_per_group``: check at most this many weights (and as many biases) per layer,
    drawn at random with ``sample_seed``; ``None`` checks every parameter.  ``gradient``: a
    callable ``(net, X, Y) -> (nabla_w, nabla_b)`` to check instead of ``net.gradient``
    (tests use it to show that a broken backprop is caught).  ``dtype="float64"``
    checks float32 networks through a float64 copy; ``None`` checks ``net`` as it is.
    ``net`` itself is never modified.  Returns a :class:`GradcheckResult`.
    """
    if not (isinstance(h, (int, float)) and h > 0):
        raise ValueError(f"h must be a positive number, got {h!r}")
    pairs = _stencil(order)
    if dtype is not None and np.dtype(net.dtype) != np.dtype(dtype):
        if np.dtype(dtype) != np.float64:
            raise ValueError("dtype must be 'float64' or None")
        work = _float64_twin(net)
    else:
        work = net.copy()
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[None, :]
    Ya = np.asarray(Y)
    if Ya.ndim == 1 and np.issubdtype(Ya.dtype, np.floating) and X.shape[0] == 1 \
            and Ya.shape[0] == work.sizes[-1]:
        Ya = Ya[None, :]
    grad_fn = gradient if gradient is not None else (lambda n, A, B: n.gradient(A, B))
    nabla_w, nabla_b = grad_fn(work, X, Ya)
    rng = np.random.default_rng(sample_seed)
    result = GradcheckResult(
        sizes=[int(n) for n in work.sizes], activation=work.activation, output=work.output,
        cost=work.cost_name, dtype=str(np.dtype(work.dtype)), n_examples=int(X.shape[0]),
        h=float(h), order=int(order), tol=float(tol), floor=float(floor))

    def numeric(view, i):
        # Element i (C order) of a layer's weight or bias view, which writes into the
        # network's parameters.  Differences are taken first, so a parameter that changes
        # nothing (a dead ReLU unit) gives exactly 0 rather than rounding noise.
        old = view.flat[i]
        total = 0.0
        for s, c in pairs:
            view.flat[i] = old + s * h
            up = float(work.cost(X, Ya))
            view.flat[i] = old - s * h
            down = float(work.cost(X, Ya))
            total += c * (up - down)
        view.flat[i] = old
        return total / h

    for l, (w, b) in enumerate(zip(work.weights, work.biases), start=1):
        for kind, arr, grad in (("w", w, nabla_w[l - 1]), ("b", b, nabla_b[l - 1])):
            size = arr.size
            idx = np.arange(size)
            if max_per_group is not None and size > max_per_group:
                idx = np.sort(rng.choice(size, size=max_per_group, replace=False))
            g = np.asarray(grad, dtype=np.float64).ravel()
            best = (-1.0, 0.0, 0, 0.0, 0.0)
            max_abs = 0.0
            n_zero = 0
            for i in idx:
                num = numeric(arr, int(i))
                bp = float(g[i])
                n_zero += num == 0 and bp == 0
                err = abs(num - bp)
                rel = err / max(abs(num), abs(bp), floor)
                if not np.isfinite(rel):
                    rel = float("inf")
                max_abs = max(max_abs, err) if np.isfinite(err) else float("inf")
                if rel > best[0]:
                    best = (rel, err, int(i), num, bp)
            result.groups.append(LayerCheck(
                layer=l, kind=kind, n_params=int(size), n_checked=int(len(idx)),
                max_abs_err=float(max_abs), max_rel_err=float(max(best[0], 0.0)),
                worst=_param_name(kind, l, best[2], arr.shape),
                worst_numeric=float(best[3]), worst_backprop=float(best[4]), n_zero=int(n_zero)))
    _relu_margin(work, X, result, max(s for s, _ in pairs))
    n_checked = sum(g.n_checked for g in result.groups)
    n_zero = sum(g.n_zero for g in result.groups)
    if n_zero:
        result.warnings.append(
            f"{n_zero} of {n_checked} checked gradients are exactly 0 both ways (e.g. dead ReLU "
            "units); they agree trivially" + (", so this check tested nothing" if n_zero == n_checked
                                              else ""))
    return result


def _relu_margin(net, X, result, reach_steps):
    """Record the smallest |z| in ReLU layers and warn when the stencil may cross the kink."""
    L = len(net.sizes) - 1
    relu_layers = [l for l in range(1, L + 1)
                   if (net.output if l == L else net.activation) == "relu"]
    if not relu_layers:
        return
    Z, A = _ref.forward([np.asarray(w, np.float64) for w in net.weights],
                        [np.asarray(b, np.float64) for b in net.biases],
                        np.asarray(X, np.float64), net.activation, net.output)
    margin = min(float(np.min(np.abs(Z[l - 1]))) for l in relu_layers)
    result.min_relu_margin = margin
    # moving one parameter by s·h moves z^l_j by about s·h·|a| (weights) or s·h (biases)
    reach = reach_steps * result.h * max(1.0, max(float(np.max(np.abs(a)))
                                                                  for a in A))
    if margin < 10 * reach:
        result.warnings.append(
            f"a ReLU pre-activation is {margin:.1e} from the kink at z = 0; finite differences "
            f"with h = {result.h:g} may cross it, so a large error there need not be a bug "
            "(try a smaller h or another seed)")


# --------------------------------------------------------------------------- all pairs

def valid_combinations():
    """Every (hidden activation, output activation, cost) that loopnet accepts."""
    out = []
    for act in _act.HIDDEN_NAMES:
        for outp in _act.NAMES:
            for cost in _costs.NAMES:
                try:
                    _costs.check_pair(outp, cost)
                except ValueError:
                    continue
                out.append((act, outp, cost))
    return out


def example_data(sizes, output, n_examples=4, seed=0, dtype="float64"):
    """Inputs in [0, 1) and targets suited to the output layer.

    Softmax gets one-hot targets: the kernels' BP1 for softmax with log-likelihood,
    δ^L = a^L − y, assumes Σ_j y_j = 1, which soft targets rounded to float32 miss by
    ~1e-7.  Other outputs get targets drawn from [0.05, 0.95].
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n_examples, sizes[0])).astype(dtype)
    if output == "softmax":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(sizes[-1], size=n_examples)]
    else:
        Y = rng.uniform(0.05, 0.95, (n_examples, sizes[-1])).astype(dtype)
    return X, Y


def gradcheck_all_pairs(sizes=(2, 3, 2), *, seed=0, n_examples=4, combinations=None, retries=10,
                        **kwargs):
    """Run :func:`gradcheck` on a fresh network for every valid activation/output/cost.

    Returns a list of :class:`GradcheckResult`, one per combination, all on the same
    data.  The network is made with ``seed``; when every gradient of that network is
    exactly 0 (a ReLU output layer that is dead on all examples) the check would test
    nothing, so up to ``retries`` further seeds (seed + 1, seed + 2, ...) are tried;
    ``result.net_seed`` says which was used.  ``kwargs`` go to :func:`gradcheck`.
    """
    results = []
    for act, outp, cost in (combinations or valid_combinations()):
        X, Y = example_data(list(sizes), outp, n_examples=n_examples, seed=seed + 1)
        for s in range(seed, seed + retries + 1):
            net = Net(list(sizes), activation=act, output=outp, cost=cost, seed=s)
            res = gradcheck(net, X, Y, **kwargs)
            res.net_seed = s
            if not res.vacuous:
                break
        results.append(res)
    return results


def summary_table(results, ascii=False):
    """One row per combination: its largest relative error per layer and the verdict."""
    L = max(len(r.sizes) - 1 for r in results) if results else 0
    head = f"{'activation':<10} {'output':<9} {'cost':<15} {'seed':>4}" + "".join(
        f" {'layer ' + str(l):>9}" for l in range(1, L + 1)) + "  verdict"
    rows = [head]
    for r in results:
        per = r.per_layer()
        note = ""
        if r.vacuous:
            note = "  (every gradient 0: nothing tested)"
        elif r.min_relu_margin is not None and any("kink" in w for w in r.warnings):
            note = "  (near a ReLU kink)"
        seed = "" if r.net_seed is None else r.net_seed
        rows.append(f"{r.activation:<10} {r.output:<9} {r.cost:<15} {seed:>4}" + "".join(
            f" {per.get(l, float('nan')):>9.1e}" for l in range(1, L + 1))
            + ("  ok" if r.ok else "  FAILED") + note)
    n_bad = sum(not r.ok for r in results)
    tol = results[0].tol if results else 0.0
    rows.append(f"{len(results)} combinations, {n_bad} failed (tol {tol:g}); entries are the "
                "largest relative error |numeric − backprop| / max(|numeric|, |backprop|, floor) "
                "per layer")
    text = "\n".join(rows) + "\n"
    if ascii:
        text = ascii_text(text)
    return text
