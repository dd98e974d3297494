"""Nielsen's four equations of backpropagation, checked numerically on a random network.

δ^l_j is *defined* as ∂C/∂z^l_j, the rate of change of the cost when the weighted
input of neuron j in layer l is nudged.  The four equations (chapter 2) claim:

    BP1  δ^L_j = ∂C/∂a^L_j · σ'(z^L_j)
    BP2  δ^l_j = (Σ_k w^{l+1}_kj δ^{l+1}_k) · σ'(z^l_j)     i.e. ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l)
    BP3  ∂C/∂b^l_j = δ^l_j
    BP4  ∂C/∂w^l_jk = a^{l−1}_k δ^l_j

For one example through a random network this script takes the numbers that
``loopnet.trace`` computed with the compiled kernels and checks each equation two ways:

* **equation**: the right-hand side evaluated with NumPy from the trace's own
  numbers (a, z, w, δ of the next layer) equals the left-hand side the kernel wrote;
* **definition**: the left-hand side equals a central finite difference of the
  cost.  For BP1/BP2 the weighted input z^l_j itself is nudged and the rest of the
  network is re-run in NumPy (:mod:`loopnet.reference`); for BP3/BP4 the bias or
  weight is nudged.  These derivatives never touch the kernels.

Run ``python -m loopnet.examples.bp_equations`` (options: see ``main``).
"""

import numpy as np

from loopnet import reference as ref
from loopnet.net import Net
from loopnet.trace import trace
from loopnet.examples import run_main


def _cost_from_layer(weights, biases, l, z_l, y, activation, output, cost):
    """C for one example when the weighted input of layer l (1-based) is ``z_l``."""
    L = len(weights)
    a = ref.sigma(output if l == L else activation, z_l[None, :])
    for i in range(l, L):       # weights[i] is w^{i+1}
        z = a @ weights[i].T + biases[i]
        a = ref.sigma(output if i == L - 1 else activation, z)
    return float(ref.cost_per_example(cost, a, y[None, :])[0])


def _cost_params(weights, biases, x, y, activation, output, cost):
    return float(ref.cost(weights, biases, x[None, :], y[None, :], activation, output, cost))


def check(tr, h=1e-6):
    """Check BP1–BP4 on a trace; returns {name: (n_checked, max_eq_err, max_fd_err)}."""
    W, B, Z, A, D = tr["weights"], tr["biases"], tr["z"], tr["a"], tr["delta"]
    x, y = np.asarray(tr["x"], np.float64), np.asarray(tr["y"], np.float64)
    act, out, cost = tr["activation"], tr["output"], tr["cost"]
    L = len(W)
    res = {}

    def fd(fun, arr, idx):
        old = arr[idx]
        arr[idx] = old + h
        up = fun()
        arr[idx] = old - h
        down = fun()
        arr[idx] = old
        return (up - down) / (2 * h)

    # BP1: the kernel's δ^L against the equation and against ∂C/∂z^L by nudging z^L.
    rhs = ref.output_error(Z[-1][None, :], A[-1][None, :], y[None, :], out, cost)[0]
    zL = Z[-1].astype(np.float64).copy()
    num = [fd(lambda: _cost_from_layer(W, B, L, zL, y, act, out, cost), zL, j)
           for j in range(zL.size)]
    res["BP1"] = (zL.size, float(np.max(np.abs(D[-1] - rhs))), float(np.max(np.abs(D[-1] - num))))

    # BP2: every hidden layer, δ^l = ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l), against ∂C/∂z^l.
    n, eq_err, fd_err = 0, 0.0, 0.0
    for l in range(L - 1, 0, -1):
        rhs = (W[l].T @ D[l]) * ref.sigma_prime(act, Z[l - 1])
        zl = Z[l - 1].astype(np.float64).copy()
        num = [fd(lambda: _cost_from_layer(W, B, l, zl, y, act, out, cost), zl, j)
               for j in range(zl.size)]
        n += zl.size
        eq_err = max(eq_err, float(np.max(np.abs(D[l - 1] - rhs))))
        fd_err = max(fd_err, float(np.max(np.abs(D[l - 1] - num))))
    res["BP2"] = (n, eq_err, fd_err)

    # BP3 and BP4: the kernel's gradient against δ, a δ and nudged parameters.
    Wc = [w.astype(np.float64).copy() for w in W]
    Bc = [b.astype(np.float64).copy() for b in B]
    cost_fn = lambda: _cost_params(Wc, Bc, x, y, act, out, cost)  # noqa: E731
    n3, e3, f3, n4, e4, f4 = 0, 0.0, 0.0, 0, 0.0, 0.0
    for i in range(L):
        e3 = max(e3, float(np.max(np.abs(tr["nabla_b"][i] - D[i]))))
        e4 = max(e4, float(np.max(np.abs(tr["nabla_w"][i] - np.outer(D[i], A[i])))))
        for j in range(Bc[i].size):
            f3 = max(f3, abs(float(tr["nabla_b"][i][j]) - fd(cost_fn, Bc[i], j)))
            n3 += 1
        for jk in np.ndindex(Wc[i].shape):
            f4 = max(f4, abs(float(tr["nabla_w"][i][jk]) - fd(cost_fn, Wc[i], jk)))
            n4 += 1
    res["BP3"] = (n3, e3, f3)
    res["BP4"] = (n4, e4, f4)
    return res


STATEMENTS = {
    "BP1": "δ^L_j = ∂C/∂a^L_j · σ'(z^L_j)",
    "BP2": "δ^l_j = (Σ_k w^{l+1}_kj δ^{l+1}_k) · σ'(z^l_j)",
    "BP3": "∂C/∂b^l_j = δ^l_j",
    "BP4": "∂C/∂w^l_jk = a^{l−1}_k δ^l_j",
}


def main(sizes=(3, 4, 3, 2), seed=1, activation="sigmoid", output="sigmoid", cost="quadratic",
         verbose=True):
    net = Net(list(sizes), activation=activation, output=output, cost=cost, seed=seed)
    rng = np.random.default_rng(seed + 100)
    x = rng.uniform(0, 1, sizes[0])
    y = np.eye(sizes[-1])[rng.integers(sizes[-1])]
    tr = trace(net, x, y)
    res = check(tr)
    if verbose:
        print(f"network {list(sizes)} (seed {seed}), activation {activation}, output {output}, "
              f"cost {cost}; one example x = {np.round(x, 3).tolist()}, y = {y.tolist()}\n")
        print(f"{'':4} {'equation':<44} {'checked':>7}  {'|kernel − equation|':>19}  "
              f"{'|kernel − finite diff.|':>23}")
        for name, (n, e, f) in res.items():
            print(f"{name:<4} {STATEMENTS[name]:<44} {n:>7}  {e:>19.1e}  {f:>23.1e}")
        print("\n'equation': right-hand side in NumPy from the trace's numbers; 'finite diff.':"
              " central difference of C (h = 1e-6),\nnudging z^l_j itself for BP1/BP2 — the "
              "definition δ^l_j = ∂C/∂z^l_j.")
    return res


if __name__ == "__main__":
    run_main(main)
