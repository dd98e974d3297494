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
order, gets the same bits.
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


@jit_inner
def stream(a, b):
    """The start of the stream keyed by (a, b): hash the fixed parts of a key once."""
    return mix(mix(np.uint64(a) * GOLDEN + GOLDEN) + np.uint64(b) * GOLDEN)


@jit_inner
def gaussian_pair(base, i):
    """Two independent standard normals N(0, 1), number i of the stream ``base``
    (:func:`stream`), by the Box–Muller transform:

    .. math::  r = \\sqrt{-2 \\ln(1 - u_1)}, \\qquad (g_0, g_1) = (r \\cos 2\\pi u_2,\\ r \\sin 2\\pi u_2)

    with u_1, u_2 uniform on [0, 1) from two hashes of (base, i) (1 − u_1 > 0, so the
    logarithm is finite).  Three 64-bit mixes, one log, sqrt, cos and sin per pair.
    """
    h = mix(mix(base + np.uint64(i) * GOLDEN) + GOLDEN)
    u1 = uniform(h)
    u2 = uniform(mix(h + GOLDEN))
    r = math.sqrt(-2.0 * math.log(1.0 - u1))
    t = 2.0 * math.pi * u2
    return r * math.cos(t), r * math.sin(t)


@jit
def gaussian(a, b, p):
    """The standard normal number p of the stream (a, b): element p mod 2 of
    :func:`gaussian_pair` number p // 2."""
    g0, g1 = gaussian_pair(stream(a, b), p >> 1)
    return g0 if p % 2 == 0 else g1


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
