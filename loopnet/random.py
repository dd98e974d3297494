"""Counter-based random streams: a number from a key, not from a generator's state.

A stateful generator gives the k-th number only after the k−1 before it, so
its numbers depend on who draws first: on the thread count, on how an epoch
is cut into compiled runs, on whether training was resumed.  Here each
number is a pure function of its key (e.g. (seed, step, parameter index) for
DP-SGD's noise, (seed, example, layer, neuron) for a dropout mask), hashed
by splitmix64's finaliser (Steele, Lea & Flood 2014, the output function of
Java's SplittableRandom):

    h ← key;  h ← (h ⊕ h≫30)·0xBF58476D1CE4E5B9;  h ← (h ⊕ h≫27)·0x94D049BB133111EB;  h ⊕ h≫31

chained over the key's parts (each part added to the running hash times the
golden-ratio constant before mixing).  Whoever draws a number, in whatever
order, gets the same bits.  Standard normals (DP-SGD's noise) come from one such hash
each, by a counter-based Ziggurat (below); uniforms and Bernoulli draws (dropout,
Poisson batches) from the top 53 bits of one.
"""

import math

import numpy as np

from ._jit import jit, jit_inner

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
TWO_53 = 1.0 / 9007199254740992.0     # 2^−53


@jit_inner
def mix(h):
    """splitmix64's finaliser: a bijection of 64-bit words that scrambles every bit."""
    h = (h ^ (h >> np.uint64(30))) * MIX1
    h = (h ^ (h >> np.uint64(27))) * MIX2
    return h ^ (h >> np.uint64(31))


@jit_inner
def hash4(a, b, c, d):
    """A 64-bit hash of four integers: mix(… mix(mix(a·φ) + b·φ) …)."""
    h = mix(np.uint64(a) * GOLDEN + GOLDEN)
    h = mix(h + np.uint64(b) * GOLDEN)
    h = mix(h + np.uint64(c) * GOLDEN)
    return mix(h + np.uint64(d) * GOLDEN)


@jit
def uniform(h):
    """A float in [0, 1) from the top 53 bits of a hash (every value a multiple of 2^−53)."""
    return float(h >> np.uint64(11)) * TWO_53


@jit
def stream(a, b):
    """The start of the stream keyed by (a, b): hash the fixed parts of a key once."""
    return mix(mix(np.uint64(a) * GOLDEN + GOLDEN) + np.uint64(b) * GOLDEN)


# ---------------------------------------------------------------------------
# Standard normals: a counter-based Ziggurat.
#
# The Ziggurat method (Marsaglia & Tsang 2000, "The Ziggurat Method for Generating
# Random Variables", J. Stat. Softw. 5(8)) covers the half density f(x) = exp(−x²/2),
# x ≥ 0, with ZIG_LAYERS = 256 horizontal layers of equal area v: layer i spans
# heights [f(x_i), f(x_{i+1})] and widths [0, x_i], with x_1 = r, x_{i+1} =
# f⁻¹(f(x_i) + v/x_i), x_256 = 0; the base layer 0 is the rectangle of width r and
# height f(r) together with the tail beyond r, i.e. a rectangle of "virtual" width
# x_0 = v/f(r).  r is the one value for which the top layer's area x_255 (1 − f(x_255))
# is v too: r = 3.6541528853610088, the 256-layer constant of NumPy's generator
# (``ziggurat_nor_r`` in numpy/random/src/distributions/ziggurat_constants.h), which
# :func:`_ziggurat_r`'s bisection reproduces (tested; not run at import: it takes ~20 ms),
# and v = r f(r) + ∫_r^∞ f.  tests/test_dp.py checks every layer's area.
#
# A draw picks layer i and a uniform U on [0, 1) and a sign from DISJOINT bits of one
# 64-bit hash (Doornik 2005, "An Improved Ziggurat Method to Generate Normal Random
# Samples", who showed that reusing the uniform's low bits as the layer index biases the
# tails), sets x = U·x_i and accepts at once when U < x_{i+1}/x_i (~98.5 % of draws:
# one hash, one multiply, one comparison).  Otherwise the point lies in the wedge of
# layer i (accept when f(x_i) + V (f(x_{i+1}) − f(x_i)) < f(x), V a second uniform)
# or, for layer 0, beyond r, where the tail is drawn by Marsaglia's (1964) method; a
# rejected wedge starts a new attempt.  Every further word is hashed from the first
# (attempt a ≥ 1: mix(h + a·φ); j-th extra uniform of an attempt's word h:
# mix(h ⊕ j·MIX2)), so each normal stays a pure function of its key.
# ---------------------------------------------------------------------------

ZIG_LAYERS = 256


def _ziggurat_layers(r, n=ZIG_LAYERS):
    """(x_0 … x_n, v) for the base-layer edge r: x_0 = v/f(r), x_1 = r, x_{i+1} = f⁻¹(f(x_i) + v/x_i),
    x_n = 0; None for x when the layers reach the top of f before layer n − 1 (r too small)."""
    f = lambda t: math.exp(-0.5 * t * t)    # noqa: E731
    v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = [v / f(r), r]
    for _ in range(2, n):
        height = f(x[-1]) + v / x[-1]
        if height >= 1.0:
            return None, v
        x.append(math.sqrt(-2.0 * math.log(height)))
    return x + [0.0], v


def _ziggurat_r(n=ZIG_LAYERS):
    """r such that the top layer, x_{n−1} (1 − f(x_{n−1})), has the area v of the others (bisection)."""
    lo, hi = 2.0, 5.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        x, v = _ziggurat_layers(mid, n)
        if x is None or x[n - 1] * (1.0 - math.exp(-0.5 * x[n - 1] ** 2)) < v:
            lo = mid          # the layers ran out, or the top one is too small: r must grow
        else:
            hi = mid
    return hi


ZIG_R = 3.6541528853610088
_x, ZIG_V = _ziggurat_layers(ZIG_R)
ZIG_X = np.array(_x)                                  # x_0 … x_256 (x_256 = 0)
ZIG_F = np.exp(-0.5 * ZIG_X * ZIG_X)                  # f(x_i), f(x_256) = 1
ZIG_RATIO = ZIG_X[1:] / ZIG_X[:-1]                    # x_{i+1}/x_i: the fast acceptance bound of layer i
del _x
LAYER_MASK = np.uint64(ZIG_LAYERS - 1)                # bits 0–7: the layer
SIGN_SHIFT = np.uint64(8)                             # bit 8: the sign (the uniform takes bits 11–63)
# The fast path's tables, indexed by j = bits 0–8 (layer i = j mod 256, sign = j ≥ 256), with
# the uniform's 2^−53 folded in (exact: a power of two): x = (h ≫ 11) · ZIG_XS[j] is
# ±U·x_i rounded once, and (h ≫ 11) < ZIG_RS[j] is U < x_{i+1}/x_i.
ZIG_XS = np.concatenate([ZIG_X[:-1], -ZIG_X[:-1]]) * TWO_53
ZIG_RS = np.concatenate([ZIG_RATIO, ZIG_RATIO]) / TWO_53
FAST_MASK = np.uint64(2 * ZIG_LAYERS - 1)


@jit
def normal_word(base, p):
    """The first 64-bit word of normal number p of the stream ``base``: mix(base + p·φ)."""
    return mix(base + np.uint64(p) * GOLDEN)


@jit
def ziggurat_try(h):
    """Ziggurat's fast path on the word h: (x, accepted) with x = ±U·x_i, layer i = bits 0–7,
    sign = bit 8, U = bits 11–63 / 2^53; accepted when U < x_{i+1}/x_i."""
    j = h & FAST_MASK
    u53 = float(h >> np.uint64(11))
    return u53 * ZIG_XS[j], u53 < ZIG_RS[j]


@jit
def extra_uniform(h, j):
    """The j-th further uniform on [0, 1) of the attempt whose word is h: uniform(mix(h ⊕ j·MIX2))."""
    return uniform(mix(h ^ (np.uint64(j) * MIX2)))


@jit
def ziggurat_tail(h):
    """A normal conditioned on x ≥ r (Marsaglia 1964): a = −ln(U₁)/r, b = −ln(U₂) until 2b > a²; r + a."""
    j = 1
    while True:
        a = -math.log(1.0 - extra_uniform(h, j)) / ZIG_R
        b = -math.log(1.0 - extra_uniform(h, j + 1))
        j += 2
        if 2.0 * b > a * a:
            return ZIG_R + a


@jit
def ziggurat_slow(h0):
    """The full Ziggurat from the first word h0 (whose fast path was rejected): attempt 0 on
    h0, attempt a ≥ 1 on mix(h0 + a·φ); wedge test f(x_i) + V (f(x_{i+1}) − f(x_i)) < e^{−x²/2},
    tail beyond r for layer 0."""
    h = h0
    attempt = 0
    while True:
        x, accepted = ziggurat_try(h)
        if accepted:
            return x
        i = h & LAYER_MASK
        if i == 0:
            return (1.0 - 2.0 * float((h >> SIGN_SHIFT) & np.uint64(1))) * ziggurat_tail(h)
        y = ZIG_F[i] + extra_uniform(h, 1) * (ZIG_F[i + 1] - ZIG_F[i])
        if y < math.exp(-0.5 * x * x):
            return x
        attempt += 1
        h = mix(h0 + np.uint64(attempt) * GOLDEN)


@jit
def normal_of_word(h0):
    """The standard normal whose first word is h0 (:func:`ziggurat_try`, else :func:`ziggurat_slow`)."""
    x, accepted = ziggurat_try(h0)
    return x if accepted else ziggurat_slow(h0)


@jit
def gaussian(a, b, p):
    """The standard normal N(0, 1) number p of the stream (a, b), by the Ziggurat above from
    the word mix(stream(a, b) + p·φ).  The scalar reference of :func:`loopnet.kernels.add_noise`."""
    return normal_of_word(normal_word(stream(a, b), p))


@jit_inner
def bernoulli_keep(p, a, b, c, d):
    """True with probability 1 − p (keyed by (a, b, c, d)): u ≥ p for u uniform on [0, 1)."""
    return uniform(hash4(a, b, c, d)) >= p

@jit
def uniform_at(a, b, c, d):
    """A uniform on [0, 1) keyed by (a, b, c, d)."""
    return uniform(hash4(a, b, c, d))


@jit
def poisson_batch(seed, step, q, n):
    """Poisson sampling (Abadi et al. 2016): the rows i of 0 … n−1 that join step ``step``'s
    batch, each independently with probability q (u(seed, step, i) < q), in row order."""
    chosen = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if uniform(hash4(seed, step, i, 1)) < q:
            chosen[m] = i
            m += 1
    return chosen[:m].copy()
