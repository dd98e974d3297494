"""One neuron per layer: the chain rule of 3Blue1Brown's "Backpropagation calculus".

A network [1, 1, 1, 1] has one weight w^l and one bias b^l per layer, so every
quantity is a single number and backpropagation is the scalar chain rule:

    z^l = w^l a^{l−1} + b^l,   a^l = σ(z^l),   C0 = (a^L − y)²

    ∂C0/∂w^L = ∂z^L/∂w^L · ∂a^L/∂z^L · ∂C0/∂a^L = a^{L−1} · σ'(z^L) · 2(a^L − y)
    ∂C0/∂b^L =          1 · σ'(z^L) · 2(a^L − y)
    ∂C0/∂a^{L−1} =    w^L · σ'(z^L) · 2(a^L − y)      (and on down the chain)

loopnet's cost ``"mse"`` is (1/n_L) Σ_j (a^L_j − y_j)², which for n_L = 1 is exactly
C0 = (a^L − y)² (the book's ``"quadratic"`` has a ½ in front instead).

The numbers, worked with a pocket calculator (σ(z) = 1/(1 + e^{−z}),
σ'(z) = σ(z)(1 − σ(z))), for x = a^0 = 0.9, y = 1 and
w^1 = 0.5, b^1 = 0.1;  w^2 = −1.0, b^2 = 0.3;  w^3 = 2.0, b^3 = −0.5  (L = 3):

    z^1 = 0.5·0.9 + 0.1                    = 0.55           a^1 = σ(0.55)    = 0.634135591
    z^2 = −1.0·0.634135591 + 0.3           = −0.334135591   a^2 = σ(−0.3341) = 0.417234712
    z^3 = 2.0·0.417234712 − 0.5            = 0.334469423    a^3 = σ(0.3345)  = 0.582846457
    C0  = (0.582846457 − 1)²               = 0.174017078

    ∂C0/∂a^3 = 2(a^3 − y)                  = −0.834307085
    σ'(z^3)                                = 0.243136465
    ∂C0/∂z^3 = σ'(z^3) · 2(a^3 − y)        = −0.202850475   (= δ^3, BP1)
    ∂C0/∂w^3 = a^2 · ∂C0/∂z^3 = 0.417234712 · (−0.202850475) = −0.0846362595   (BP4)
    ∂C0/∂b^3 = ∂C0/∂z^3                    = −0.202850475   (BP3)
    ∂C0/∂a^2 = w^3 · ∂C0/∂z^3              = −0.405700950
    ∂C0/∂z^2 = σ'(z^2) · ∂C0/∂a^2 = 0.243149907 · (−0.405700950) = −0.0986461483   (BP2)
    ∂C0/∂w^2 = a^1 · ∂C0/∂z^2              = −0.0625550336
    ∂C0/∂a^1 = w^2 · ∂C0/∂z^2              = 0.0986461483
    ∂C0/∂z^1 = σ'(z^1) · ∂C0/∂a^1 = 0.232007643 · 0.0986461483 = 0.0228866604
    ∂C0/∂w^1 = a^0 · ∂C0/∂z^1              = 0.0205979943

Run ``python -m loopnet.examples.chain`` to see the chain rule evaluated with plain
``math`` next to what ``loopnet.trace`` computes with the compiled kernels.
"""

import math

import numpy as np

from loopnet.net import Net
from loopnet.trace import example_cost, render, trace
from loopnet.examples import run_main

X, Y = 0.9, 1.0
W = (0.5, -1.0, 2.0)
B = (0.1, 0.3, -0.5)


def sigma(z):
    return 1.0 / (1.0 + math.exp(-z))


def sigma_prime(z):
    return sigma(z) * (1.0 - sigma(z))


def by_hand(x=X, y=Y, w=W, b=B):
    """The scalar chain rule with ``math`` only: dict of lists per layer 1..L."""
    a, z = [x], []
    for wl, bl in zip(w, b):
        z.append(wl * a[-1] + bl)
        a.append(sigma(z[-1]))
    L = len(w)
    cost = (a[L] - y) ** 2
    dC_da = 2.0 * (a[L] - y)           # ∂C0/∂a^L
    dz, dw, db, da = [0.0] * L, [0.0] * L, [0.0] * L, [0.0] * L
    for l in range(L, 0, -1):          # l = L, L−1, ..., 1
        da[l - 1] = dC_da
        dz[l - 1] = sigma_prime(z[l - 1]) * dC_da        # ∂a^l/∂z^l · ∂C0/∂a^l
        dw[l - 1] = a[l - 1] * dz[l - 1]                 # ∂z^l/∂w^l = a^{l−1}
        db[l - 1] = dz[l - 1]                            # ∂z^l/∂b^l = 1
        dC_da = w[l - 1] * dz[l - 1]                     # ∂z^l/∂a^{l−1} = w^l
    return {"z": z, "a": a, "cost": cost, "dC_da": da, "delta": dz, "dw": dw, "db": db}


def make_net(w=W, b=B):
    """The same chain as a loopnet network [1, 1, 1, 1] with cost "mse" (= C0 for one output)."""
    net = Net([1] * (len(w) + 1), activation="sigmoid", output="sigmoid", cost="mse")
    net.weights = [np.array([[v]]) for v in w]
    net.biases = [np.array([v]) for v in b]
    return net


def main(verbose=True):
    hand = by_hand()
    net = make_net()
    tr = trace(net, [X], [Y])
    L = len(W)
    rows = []
    for l in range(L, 0, -1):
        rows.append((f"δ^{l} = ∂C0/∂z^{l}", hand["delta"][l - 1], float(tr["delta"][l - 1][0])))
        rows.append((f"∂C0/∂w^{l}", hand["dw"][l - 1], float(tr["nabla_w"][l - 1][0, 0])))
        rows.append((f"∂C0/∂b^{l}", hand["db"][l - 1], float(tr["nabla_b"][l - 1][0])))
    rows.append(("C0", hand["cost"], example_cost(tr)))
    if verbose:
        print(__doc__.split("Run ``python")[0])
        print(f"C0 = (a^L − y)² with L = {L}:  ∂C0/∂w^L = a^(L−1) · σ'(z^L) · 2(a^L − y) = "
              f"{hand['a'][L - 1]:.9g} · {sigma_prime(hand['z'][L - 1]):.9g} · "
              f"{2 * (hand['a'][L] - Y):.9g} = {hand['dw'][L - 1]:.9g}\n")
        print(f"{'quantity':<16} {'chain rule (math)':>20} {'loopnet.trace':>20} {'difference':>11}")
        for name, h, t in rows:
            print(f"{name:<16} {h:>20.12g} {t:>20.12g} {abs(h - t):>11.1e}")
        print()
        print(render(tr, digits=9))
    return {"rows": rows, "hand": hand, "trace": tr,
            "max_abs_diff": max(abs(h - t) for _, h, t in rows)}


if __name__ == "__main__":
    run_main(main)
