"""The matrix form of backpropagation equals the loop (component) form.

Textbooks write the equations for a whole layer at once (Nielsen, chapter 2):

    z^l = w^l a^{l−1} + b^l,    δ^L = ∇_a C ⊙ σ'(z^L),
    δ^l = ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l),    ∂C/∂b^l = δ^l,    ∂C/∂w^l = δ^l (a^{l−1})ᵀ

and, for a mini-batch of m examples stacked as the ROWS of A^{l−1} (m × n_{l−1}),

    Z^l = A^{l−1} (W^l)ᵀ + b^l,    Δ^l = (Δ^{l+1} W^{l+1}) ⊙ σ'(Z^l),
    ∂C/∂W^l = (1/m) (Δ^l)ᵀ A^{l−1},    ∂C/∂b^l = (1/m) Σ_rows Δ^l.

(scikit-learn and many lecture notes store the transpose, coefs_[l] = (W^{l+1})ᵀ
of shape (fan_in, fan_out), and write Z = A W + b; loopnet keeps the book's
w^l_jk with shape (n_l, n_{l−1}).)

loopnet's kernels never form a matrix product: they loop over j and k, one
example at a time.  :mod:`loopnet.reference` is the matrix form in NumPy and
shares no code with them.  This script computes both and prints the largest
difference for each quantity; they agree to rounding (~1e-16).

Run ``python -m loopnet.examples.matrix_form``.
"""

import numpy as np

from loopnet import reference as ref
from loopnet.net import Net
from loopnet.trace import trace
from loopnet.examples import run_main


def compare(net, X, Y):
    """{quantity: max |loop form − matrix form|} for the batch (X, Y)."""
    W = [np.asarray(w, np.float64) for w in net.weights]
    B = [np.asarray(b, np.float64) for b in net.biases]
    act, out, cost = net.activation, net.output, net.cost_name
    L = len(W)
    traces = [trace(net, x, y) for x, y in zip(X, Y)]
    Z, A, D = ref.backprop(W, B, X, Y, act, out, cost)         # matrix form, whole batch
    diffs = {}
    for l in range(1, L + 1):
        loop_Z = np.stack([t["z"][l - 1] for t in traces])     # rows = examples
        loop_A = np.stack([t["a"][l] for t in traces])
        loop_D = np.stack([t["delta"][l - 1] for t in traces])
        diffs[f"Z^{l} = A^{l - 1} (W^{l})ᵀ + b^{l}"] = float(np.max(np.abs(loop_Z - Z[l - 1])))
        f = "softmax" if (l == L and out == "softmax") else "σ"
        diffs[f"A^{l} = {f}(Z^{l})"] = float(np.max(np.abs(loop_A - A[l])))
        diffs[f"Δ^{l}" + (" (BP1)" if l == L else " = (Δ^%d W^%d) ⊙ σ'(Z^%d)  (BP2)" % (l + 1, l + 1, l))] = \
            float(np.max(np.abs(loop_D - D[l - 1])))
    # The column-vector form of BP2 for one example, straight from the book.
    t = traces[0]
    col = max((float(np.max(np.abs(
        (W[l].T @ t["delta"][l]) * ref.sigma_prime(act, t["z"][l - 1]) - t["delta"][l - 1])))
        for l in range(L - 1, 0, -1)), default=0.0)
    diffs["δ^l = ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l), one example"] = col
    # Gradients: the batch formula against the compiled, chunked loop (net.gradient)
    # and against the mean of the per-example traces.
    gw, gb = ref.gradient(W, B, X, Y, act, out, cost)
    nw, nb = net.gradient(X, Y)
    mean_w = [np.mean([t["nabla_w"][i] for t in traces], axis=0) for i in range(L)]
    mean_b = [np.mean([t["nabla_b"][i] for t in traces], axis=0) for i in range(L)]
    diffs["∂C/∂W = (1/m) Δᵀ A  vs  net.gradient"] = max(
        float(np.max(np.abs(a - b))) for a, b in zip(list(gw) + list(gb), list(nw) + list(nb)))
    diffs["∂C/∂W = (1/m) Δᵀ A  vs  mean of traces"] = max(
        float(np.max(np.abs(a - b))) for a, b in zip(list(gw) + list(gb), mean_w + mean_b))
    return diffs


def main(sizes=(3, 4, 3, 2), m=5, seed=2, activation="sigmoid", output="softmax",
         cost="log_likelihood", verbose=True):
    net = Net(list(sizes), activation=activation, output=output, cost=cost, seed=seed)
    rng = np.random.default_rng(seed + 100)
    X = rng.uniform(0, 1, (m, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(sizes[-1], size=m)]
    diffs = compare(net, X, Y)
    if verbose:
        print(f"network {list(sizes)} (seed {seed}), {activation}/{output}/{cost}, "
              f"batch of m = {m}\n")
        print(f"{'quantity (matrix form)':<52} {'max |loop − matrix|':>20}")
        for k, v in diffs.items():
            print(f"{k:<52} {v:>20.1e}")
    return diffs


if __name__ == "__main__":
    run_main(main)
