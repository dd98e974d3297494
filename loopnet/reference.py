"""The same network in NumPy matrix form: the test oracle and benchmark baseline.

Shares no code with the compiled kernels.  Examples are the ROWS of a batch
A^{l−1} (m × n_{l−1}), so the batched forward line is Z^l = A^{l−1} (W^l)ᵀ + b^l,
the transpose of the column-vector form z^l = W^l a^{l−1} + b^l of the book.

  BP1  Δ^L = ∇_a C ⊙ σ'(Z^L)                 (or A^L − Y for the paired costs, one-hot Y)
  BP2  Δ^l = (Δ^{l+1} W^{l+1}) ⊙ σ'(Z^l)      (row form of ((W^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l))
  BP3  ∂C/∂b^l = (1/m) Σ_rows Δ^l
  BP4  ∂C/∂W^l = (1/m) (Δ^l)ᵀ A^{l−1}
"""

import numpy as np


def sigma(name, z):
    """σ(z) elementwise (softmax row-wise)."""
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z.copy()
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(name)


def sigma_prime(name, z):
    """σ'(z) elementwise (not defined for softmax)."""
    if name == "sigmoid":
        s = sigma("sigmoid", z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "identity":
        return np.ones_like(z)
    raise ValueError(name)


def cost_per_example(name, A, Y):
    """C_x for every row: a vector of length m."""
    if name == "quadratic":
        return 0.5 * ((A - Y) ** 2).sum(axis=-1)
    if name == "mse":
        return ((A - Y) ** 2).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "cross_entropy":
            terms = -Y * np.log(A) - (1 - Y) * np.log(1 - A)
            return np.where(np.isnan(terms), 0.0, terms).sum(axis=-1)
        if name == "log_likelihood":
            return np.where(Y != 0, -Y * np.log(A), 0.0).sum(axis=-1)
    raise ValueError(name)


def dcost_da(name, A, Y):
    """∇_a C_x for every row."""
    if name == "quadratic":
        return A - Y
    if name == "mse":
        return 2.0 * (A - Y) / A.shape[-1]
    if name == "cross_entropy":
        return (A - Y) / (A * (1 - A))
    if name == "log_likelihood":
        return -Y / A
    raise ValueError(name)


def forward(weights, biases, X, activation, output):
    """Lists Z = [Z^1..Z^L] and A = [X, A^1..A^L] for the batch X (m × n_0)."""
    A = [np.asarray(X)]
    Z = []
    for l, (W, b) in enumerate(zip(weights, biases)):
        Z.append(A[-1] @ W.T + b)
        A.append(sigma(output if l == len(weights) - 1 else activation, Z[-1]))
    return Z, A


def output_error(ZL, AL, Y, output, cost):
    """BP1 for the batch: Δ^L (m × n_L)."""
    if (output, cost) == ("sigmoid", "cross_entropy"):
        return AL - Y
    if (output, cost) == ("softmax", "log_likelihood"):  # a Σy − y; a − y for one-hot y
        return AL * Y.sum(axis=-1, keepdims=True) - Y
    G = dcost_da(cost, AL, Y)
    if output == "softmax":  # δ = J_softmax(a) g = a ⊙ (g − (g·a))
        return AL * (G - (G * AL).sum(axis=-1, keepdims=True))
    return G * sigma_prime(output, ZL)


def backprop(weights, biases, X, Y, activation, output, cost):
    """Z, A and Δ = [Δ^1..Δ^L] for the batch."""
    Z, A = forward(weights, biases, X, activation, output)
    deltas = [output_error(Z[-1], A[-1], Y, output, cost)]
    for l in range(len(weights) - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ weights[l + 1]) * sigma_prime(activation, Z[l]))
    return Z, A, deltas


def gradient(weights, biases, X, Y, activation, output, cost):
    """Averaged gradient (1/m) Σ_x ∇C_x: lists shaped like weights and biases."""
    _, A, deltas = backprop(weights, biases, X, Y, activation, output, cost)
    m = X.shape[0]
    nabla_w = [D.T @ A[l] / m for l, D in enumerate(deltas)]
    nabla_b = [D.sum(axis=0) / m for D in deltas]
    return nabla_w, nabla_b


def cost(weights, biases, X, Y, activation, output, cost_name, lmbda=0.0):
    """Mean cost over the rows, plus (λ/2n) Σ w² when λ > 0."""
    _, A = forward(weights, biases, X, activation, output)
    c = cost_per_example(cost_name, A[-1], Y).mean()
    if lmbda:
        c += 0.5 * lmbda / X.shape[0] * sum((W ** 2).sum() for W in weights)
    return c


def sgd_step(weights, biases, nabla_w, nabla_b, eta, lmbda=0.0, n=1):
    """network2's update: w ← (1 − ηλ/n) w − η ∇w,  b ← b − η ∇b (new lists)."""
    new_w = [(1 - eta * lmbda / n) * W - eta * nW for W, nW in zip(weights, nabla_w)]
    new_b = [b - eta * nb for b, nb in zip(biases, nabla_b)]
    return new_w, new_b


def train_sgd(weights, biases, X, Y, order, batch_size, eta, activation, output, cost_name,
              lmbda=0.0):
    """One epoch of mini-batch SGD in matrix form over examples X[order]."""
    n = len(order)
    for lo in range(0, n, batch_size):
        rows = order[lo:lo + batch_size]
        nabla_w, nabla_b = gradient(weights, biases, X[rows], Y[rows], activation, output,
                                    cost_name)
        weights, biases = sgd_step(weights, biases, nabla_w, nabla_b, eta, lmbda, n)
    return weights, biases
