"""DP-SGD (issue 17): the noise on the clipped sum, Poisson batches, ε from the accountant,
and bit-identical results for any thread count and after resume (also for dropout)."""

import math

import numpy as np
import pytest

from conftest import run_python
from loopnet import Net, privacy, random

dp_accounting = pytest.importorskip("dp_accounting")


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def accountant_epsilon(sigma, q, steps, delta):
    """The accountant's own answer, asked directly."""
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
                steps)
    return acc.get_epsilon(delta)


@pytest.mark.parametrize("sampling", ["shuffle", "poisson"])
def test_epsilon_is_the_accountants_answer(sampling):
    X, y = data()
    net = Net([5, 4, 3], output="softmax", cost="log_likelihood", seed=1)
    net.fit(X, y, epochs=2, batch_size=12, eta=0.1, clip_norm=1.0, noise_multiplier=1.3,
            sampling=sampling, delta=1e-4)
    for epoch, record in enumerate(net.history, 1):
        assert record["dp_steps"] == 5 * epoch
        assert record["epsilon"] == accountant_epsilon(1.3, 12 / 60, 5 * epoch, 1e-4)
    assert net.history[1]["epsilon"] > net.history[0]["epsilon"] > 0


@pytest.mark.parametrize("sigma, q", [(0.6, 0.001), (1.1, 10 / 50000), (4.0, 0.3)])
def test_epsilon_equals_the_accountant_for_any_step_count(sigma, q):
    """privacy.epsilon keeps one step's RDP per (σ, q) and scales it; the accountant
    composes T steps itself: the same ε, bit for bit, whatever T and δ, in any order."""
    for steps, delta in [(1, 1e-5), (5000, 1e-5), (37, 1e-3), (250000, 1e-6), (5000, 1e-5)]:
        assert privacy.epsilon(sigma, q, steps, delta) == \
            accountant_epsilon(sigma, q, steps, delta)


def test_default_delta_is_the_power_of_ten_below_one_over_n():
    assert privacy.default_delta(60000) == 1e-5
    assert privacy.default_delta(100) == 1e-3
    assert privacy.default_delta(60) == 1e-2


def test_noise_is_sigma_c_standard_normals_on_the_clipped_sum():
    """One full-batch sgd step with and without noise: the difference of the parameters is
    −(η/m) σC g with g ~ N(0, 1) per coordinate, independent of the gradient."""
    X, y = data(n=40)
    net = Net([5, 30, 3], seed=2)
    args = dict(epochs=1, batch_size=40, eta=0.5, shuffle=False, monitor=False, clip_norm=0.2)
    clipped, noisy = net.copy(), net.copy()
    clipped.fit(X, y, **args)
    noisy.fit(X, y, **args, noise_multiplier=2.0)
    g = (noisy.params - clipped.params) / (-(0.5 / 40) * 2.0 * 0.2)
    assert g.size == 273
    assert abs(g.mean()) < 4 / math.sqrt(g.size)
    assert 0.85 < g.std() < 1.15


def test_poisson_batches_have_the_expected_size():
    sizes = [len(random.poisson_batch(5, step, 0.1, 1000)) for step in range(200)]
    assert abs(np.mean(sizes) - 100) < 3
    assert np.std(sizes) == pytest.approx(math.sqrt(1000 * 0.1 * 0.9), rel=0.2)
    assert np.array_equal(random.poisson_batch(5, 3, 0.1, 1000),
                          random.poisson_batch(5, 3, 0.1, 1000))


def test_ziggurat_layers_have_equal_areas():
    """Every layer of the Ziggurat table has the area v = r f(r) + ∫_r^∞ f (the tail integral
    from scipy's normal survival function), f(x) = e^{−x²/2}; the base layer's virtual width is
    v/f(r); the layers reach x = 0 at the top."""
    from scipy.stats import norm
    x, r, v = random.ZIG_X, random.ZIG_R, random.ZIG_V
    f = np.exp(-0.5 * x * x)
    assert v == pytest.approx(r * f[1] + math.sqrt(2 * math.pi) * norm.sf(r), rel=1e-13)
    assert x.shape == (257,) and x[1] == r and x[256] == 0.0
    assert x[0] * f[1] == pytest.approx(v, rel=1e-14)
    areas = x[1:256] * (f[2:257] - f[1:256])       # layers 1 … 255
    assert np.max(np.abs(areas / v - 1)) < 1e-11
    assert np.all(np.diff(x[1:]) < 0)
    assert random._ziggurat_r() == pytest.approx(r, rel=1e-15)    # r solves "top area = v"


def noise_sample(n, seed=7, step=1):
    """n standard normals of the stream (seed, step), as add_noise adds them to zeros."""
    from loopnet.kernels import add_noise
    g = np.zeros(n)
    add_noise(g, 0, n, 1.0, seed, step)
    return g


def test_noise_is_standard_normal():
    """10⁶ draws: moments, a Kolmogorov–Smirnov test against the normal CDF, the frequency of
    |g| beyond 3σ, 4σ and the tail start r (each within 5 binomial standard deviations), the
    share of positive values."""
    from scipy import stats
    n = 10 ** 6
    g = noise_sample(n)
    assert abs(g.mean()) < 5 / math.sqrt(n)
    assert abs(g.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(np.mean(g ** 4) - 3) < 5 * math.sqrt(96 / n)
    assert stats.kstest(g, "norm").pvalue > 1e-3
    for t in (3.0, 4.0, random.ZIG_R):
        q = 2 * stats.norm.sf(t)
        assert abs(np.sum(np.abs(g) > t) - n * q) < 5 * math.sqrt(n * q * (1 - q))
    assert abs(np.mean(g > 0) - 0.5) < 5 * 0.5 / math.sqrt(n)


def test_neighbouring_noise_is_independent():
    """Correlations of g_p with g_{p+1}, of g_p² with g_{p+1}², and between two steps' streams
    of the same parameters: all within 5/√n of 0."""
    n = 10 ** 6
    g, h = noise_sample(n), noise_sample(n, step=2)
    bound = 5 / math.sqrt(n)
    assert abs(np.corrcoef(g[:-1], g[1:])[0, 1]) < bound
    assert abs(np.corrcoef(g[:-1] ** 2, g[1:] ** 2)[0, 1]) < bound
    assert abs(np.corrcoef(g, h)[0, 1]) < bound


def test_noise_is_the_scalar_reference_bit_for_bit():
    """add_noise's vectorised pass + fast path equals random.gaussian (which runs the whole
    Ziggurat on one word) for 20,000 parameters, among them the ~1.5 % that take the wedge or
    the tail (checked to be there)."""
    g = noise_sample(20000, seed=11, step=5)
    assert np.array_equal(g, [random.gaussian(11, 5, p) for p in range(20000)])
    base = np.uint64(random.stream(11, 5))
    slow = [p for p in range(20000) if not random.ziggurat_try(np.uint64(random.normal_word(base, p)))[1]]
    assert 150 < len(slow) < 450
    assert np.any(np.abs(g[slow]) > random.ZIG_R)        # some went down the tail


def test_noise_of_a_range_is_the_stream_whatever_the_cut():
    """kernels.add_noise over [lo, hi) in pieces (as phase B's blocks cut it, at odd and even
    boundaries) adds σC · gaussian(seed, step, p) to each p, the same bits as in one piece."""
    from loopnet.kernels import add_noise
    whole, cut = np.zeros(37), np.zeros(37)
    add_noise(whole, 0, 37, 0.5, 11, 3)
    for lo, hi in ((0, 5), (5, 6), (6, 20), (20, 37)):
        add_noise(cut, lo, hi, 0.5, 11, 3)
    assert np.array_equal(whole, cut)
    assert np.array_equal(whole, [0.5 * random.gaussian(11, 3, p) for p in range(37)])


RUN = """
import hashlib, tempfile, os, numpy as np, numba, loopnet, loopnet.io as lio
(X, y), _ = loopnet.data.digits_split()
X, y = X[:300], y[:300]
out = [str(numba.get_num_threads())]
cases = [dict(dropout=0.0, kw=dict(clip_norm=1.0, noise_multiplier=1.1)),
         dict(dropout=0.0, kw=dict(clip_norm=1.0, noise_multiplier=1.1, sampling="poisson")),
         dict(dropout=[0.3], kw=dict(clip_norm=0.5, sample_weight=np.arange(300) % 3 + 0.5))]
for case in cases:
    def fresh():
        return loopnet.Net([64, 24, 10], seed=3, dropout=case["dropout"])
    args = dict(batch_size=40, eta=1.0, threads=numba.get_num_threads(), monitor=False, **case["kw"])
    whole = fresh().fit(X, y, epochs=3, **args)
    half = fresh().fit(X, y, epochs=1, **args)
    path = os.path.join(tempfile.mkdtemp(), "m.npz")
    lio.save(half, path)
    resumed = lio.load(path).fit(X, y, epochs=2, **args)
    out.append(hashlib.sha256(whole.params.tobytes()).hexdigest()[:16])
    out.append(str(np.array_equal(whole.params, resumed.params)))
print(*out)
"""


def test_dp_and_dropout_bit_identical_for_any_thread_count_and_after_resume():
    results = {}
    for threads in ("1", "2"):
        line = run_python(RUN, env={"NUMBA_NUM_THREADS": threads}).split()
        assert line[0] == threads
        results[threads] = line[1:]
    assert results["1"] == results["2"]
    assert results["1"][1::2] == ["True"] * 3     # resumed == uninterrupted, every case
