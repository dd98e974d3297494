"""Cost functions C_x for one example and their derivatives ∂C_x/∂a^L_j.

=================  ==========================================  ==========================
name               C_x(a, y)                                   ∂C_x/∂a_j
=================  ==========================================  ==========================
quadratic          ½ Σ_j (a_j − y_j)²            (Nielsen)      a_j − y_j
cross_entropy      −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)]    (a_j − y_j) / (a_j (1 − a_j))
log_likelihood     −Σ_j y_j ln a_j  (= −ln a_y for one-hot y)   −y_j / a_j
mse                (1/n_L) Σ_j (a_j − y_j)²                     2 (a_j − y_j) / n_L
=================  ==========================================  ==========================

The cost of a data set is the mean over its examples, C = (1/n) Σ_x C_x.
Terms with y_j = 0 (or 1 − y_j = 0) are skipped in the logarithmic costs, so
that 0 · ln 0 counts as 0, as ``np.nan_to_num`` does in Nielsen's network2.
"""

import math

from ._jit import jit

QUADRATIC, CROSS_ENTROPY, LOG_LIKELIHOOD, MSE = 0, 1, 2, 3
NAMES = ("quadratic", "cross_entropy", "log_likelihood", "mse")

# Output activations whose values lie in (0, 1), as the logarithmic costs need.
PROBABILITY_OUTPUTS = ("sigmoid", "softmax")


def code(name):
    """Integer code of the cost called ``name`` (``ValueError`` if unknown)."""
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown cost {name!r}; choose one of {', '.join(NAMES)}")
    return NAMES.index(name)


def check_pair(output, cost):
    """Reject output/cost pairs whose cost is undefined (ln of a value outside (0, 1))."""
    if cost in ("cross_entropy", "log_likelihood") and output not in PROBABILITY_OUTPUTS:
        raise ValueError(
            f"cost {cost!r} takes logarithms of the outputs, so it needs output "
            f"'sigmoid' or 'softmax', not {output!r}; use 'quadratic' or 'mse' instead")


@jit
def cost_x(cost, a, y):
    """C_x for one example: output activations ``a`` and targets ``y`` (1-D)."""
    n = a.shape[0]
    c = 0.0
    for j in range(n):
        # d * d, not d ** 2: the same number, without Numba's integer-power helper, which
        # is compiled on its own (0.3 s of a cold compile of fit on the Zen 3 VM).
        if cost == QUADRATIC:
            d = a[j] - y[j]
            c += 0.5 * (d * d)
        elif cost == MSE:
            d = a[j] - y[j]
            c += d * d / n
        elif cost == CROSS_ENTROPY:
            if y[j] != 0:
                c -= y[j] * math.log(a[j])
            if y[j] != 1:
                c -= (1.0 - y[j]) * math.log(1.0 - a[j])
        else:  # LOG_LIKELIHOOD
            if y[j] != 0:
                c -= y[j] * math.log(a[j])
    return c


@jit
def dcost_da(cost, a_j, y_j, n):
    """∂C_x/∂a_j for output neuron j of a layer of ``n`` neurons."""
    if cost == QUADRATIC:
        return a_j - y_j
    if cost == MSE:
        return 2.0 * (a_j - y_j) / n
    if cost == CROSS_ENTROPY:
        return (a_j - y_j) / (a_j * (1.0 - a_j))
    return -y_j / a_j  # LOG_LIKELIHOOD
