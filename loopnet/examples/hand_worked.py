"""A 2-2-2 network worked by hand, every number written down.

The network, input and target are those of Matt Mazur's well-known "A Step by
Step Backpropagation Example" (2015), so the numbers can be checked against a
second, independent source.  Sigmoid everywhere, quadratic cost
C = ½ Σ_j (a^2_j − y_j)² (Nielsen's, and Mazur's E_total).  Neurons counted from 0:

    x = a^0 = (0.05, 0.10)            y = (0.01, 0.99)
    w^1 = [[0.15, 0.20],              b^1 = (0.35, 0.35)
           [0.25, 0.30]]
    w^2 = [[0.40, 0.45],              b^2 = (0.60, 0.60)
           [0.50, 0.55]]

(Mazur's w1..w8 are w^1_00, w^1_01, w^1_10, w^1_11, w^2_00, w^2_01, w^2_10, w^2_11.)

Forward pass, z^l_j = Σ_k w^l_jk a^{l−1}_k + b^l_j and a^l_j = σ(z^l_j) = 1/(1 + e^{−z}):

    z^1_0 = 0.15·0.05 + 0.20·0.10 + 0.35               = 0.3775
    z^1_1 = 0.25·0.05 + 0.30·0.10 + 0.35               = 0.3925
    a^1_0 = σ(0.3775)                                  = 0.593269992
    a^1_1 = σ(0.3925)                                  = 0.596884378
    z^2_0 = 0.40·0.593269992 + 0.45·0.596884378 + 0.60 = 1.10590597
    z^2_1 = 0.50·0.593269992 + 0.55·0.596884378 + 0.60 = 1.22492140
    a^2_0 = σ(1.10590597)                              = 0.751365070
    a^2_1 = σ(1.22492140)                              = 0.772928465
    C     = ½(0.751365070 − 0.01)² + ½(0.772928465 − 0.99)²
          = 0.274811083 + 0.0235600256                 = 0.298371109

Backward pass.  σ'(z) = σ(z)(1 − σ(z)) = a(1 − a):

    BP1  δ^2_j = (a^2_j − y_j) · σ'(z^2_j)
    σ'(z^2_0) = 0.751365070 · 0.248634930             = 0.186815602
    σ'(z^2_1) = 0.772928465 · 0.227071535             = 0.175510053
    δ^2_0 = (0.751365070 − 0.01) · 0.186815602        = 0.138498562
    δ^2_1 = (0.772928465 − 0.99) · 0.175510053        = −0.0380982365

    BP2  δ^1_j = (Σ_k w^2_kj δ^2_k) · σ'(z^1_j)
    σ'(z^1_0) = 0.593269992 · 0.406730008             = 0.241300709
    σ'(z^1_1) = 0.596884378 · 0.403115622             = 0.240613417
    δ^1_0 = (0.40·0.138498562 + 0.50·(−0.0380982365)) · 0.241300709
          = 0.0363503064 · 0.241300709                 = 0.00877135469
    δ^1_1 = (0.45·0.138498562 + 0.55·(−0.0380982365)) · 0.240613417
          = 0.0413703226 · 0.240613417                 = 0.00995425471

    BP3  ∂C/∂b^l_j = δ^l_j
    ∂C/∂b^1 = (0.00877135469, 0.00995425471)      ∂C/∂b^2 = (0.138498562, −0.0380982365)

    BP4  ∂C/∂w^l_jk = a^{l−1}_k δ^l_j
    ∂C/∂w^2_00 = 0.593269992 · 0.138498562       = 0.0821670406   (Mazur: ∂E/∂w5 = 0.082167041)
    ∂C/∂w^2_01 = 0.596884378 · 0.138498562       = 0.0826676278
    ∂C/∂w^2_10 = 0.593269992 · (−0.0380982365)   = −0.0226025405
    ∂C/∂w^2_11 = 0.596884378 · (−0.0380982365)   = −0.0227402422
    ∂C/∂w^1_00 = 0.05 · 0.00877135469            = 0.000438567735 (Mazur: ∂E/∂w1 = 0.000438568)
    ∂C/∂w^1_01 = 0.10 · 0.00877135469            = 0.000877135469
    ∂C/∂w^1_10 = 0.05 · 0.00995425471            = 0.000497712735
    ∂C/∂w^1_11 = 0.10 · 0.00995425471            = 0.000995425471

``python -m loopnet.examples.hand_worked`` prints ``loopnet.trace`` of this network
with 6 significant digits: every number above, rounded to 6 digits, appears in it
(``tests/test_examples.py`` checks this line by line).
"""

import numpy as np

from loopnet.net import Net
from loopnet.trace import render, trace
from loopnet.examples import run_main

X = (0.05, 0.10)
Y = (0.01, 0.99)
W1 = ((0.15, 0.20), (0.25, 0.30))
B1 = (0.35, 0.35)
W2 = ((0.40, 0.45), (0.50, 0.55))
B2 = (0.60, 0.60)

# Every number of the docstring, worked by hand (9 significant digits).  Keys follow the
# trace: z[l-1][j] is z^l_j, a[l][j] is a^l_j, nabla_w[l-1][j][k] is ∂C/∂w^l_jk.
HAND = {
    "z": [[0.3775, 0.3925], [1.10590597, 1.22492140]],
    "a": [[0.05, 0.10], [0.593269992, 0.596884378], [0.751365070, 0.772928465]],
    "cost": 0.298371109,
    "sigma_prime": [[0.241300709, 0.240613417], [0.186815602, 0.175510053]],
    "delta": [[0.00877135469, 0.00995425471], [0.138498562, -0.0380982365]],
    "nabla_b": [[0.00877135469, 0.00995425471], [0.138498562, -0.0380982365]],
    "nabla_w": [[[0.000438567735, 0.000877135469], [0.000497712735, 0.000995425471]],
                [[0.0821670406, 0.0826676278], [-0.0226025405, -0.0227402422]]],
}

# Two values published by Mazur, an independent source for the same network.
MAZUR = {"E_total": 0.298371109, "dE/dw5": 0.082167041, "dE/dw1": 0.000438568}


def make_net():
    """The 2-2-2 network above as a loopnet.Net (sigmoid, quadratic cost, float64)."""
    net = Net([2, 2, 2], activation="sigmoid", output="sigmoid", cost="quadratic")
    net.weights = [np.array(W1), np.array(W2)]
    net.biases = [np.array(B1), np.array(B2)]
    return net


def main(verbose=True, digits=6):
    tr = trace(make_net(), X, Y)
    text = render(tr, digits=digits)
    if verbose:
        print(text)
    return {"trace": tr, "text": text}


if __name__ == "__main__":
    run_main(main)
