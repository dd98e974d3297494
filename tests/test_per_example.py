"""Per-example costs and gradient norms, clipping and sample weights (issue 17), against
independent oracles: loopnet.reference (NumPy matrix form) run on ONE example at a time,
with each per-example gradient materialised as the outer product δ a^T."""

import math

import numpy as np
import pytest

from loopnet import Net, reference

NETS = [([6, 5, 4, 3], "tanh", "softmax", "log_likelihood"),
        ([6, 7, 2], "sigmoid", "sigmoid", "quadratic")]


def make(sizes, act, out, cost, n=13, seed=0):
    rng = np.random.default_rng(seed)
    net = Net(sizes, activation=act, output=out, cost=cost, seed=seed)
    X = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    return net, X, np.eye(sizes[-1])[y]


def numpy_per_example(net, X, Y):
    """[(C_x, [∇_{w^l} C_x], [∇_{b^l} C_x])] by the NumPy reference, one example at a time."""
    rows = []
    for x in range(len(X)):
        xb, yb = X[x:x + 1], Y[x:x + 1]
        _, A, D = reference.backprop(list(net.weights), list(net.biases), xb, yb,
                                     net.activation, net.output, net.cost_name)
        gw = [np.outer(D[l][0], A[l][0]) for l in range(len(D))]   # δ^l a^{l−1,T}, formed
        gb = [D[l][0] for l in range(len(D))]
        c = reference.cost_per_example(net.cost_name, A[-1], yb)[0]
        rows.append((c, gw, gb))
    return rows


@pytest.mark.parametrize("spec", NETS, ids=["tanh-softmax", "sigmoid-quadratic"])
def test_costs_and_norms_match_a_numpy_loop(spec):
    net, X, Y = make(*spec)
    want = numpy_per_example(net, X, Y)
    costs = net.per_example_costs(X, Y)
    np.testing.assert_allclose(costs, [c for c, _, _ in want], rtol=1e-12, atol=0)
    per_layer = net.per_example_gradient_norms(X, Y, per_layer=True)
    want_layer = np.array([[math.sqrt((gw_l ** 2).sum() + (gb_l ** 2).sum())
                            for gw_l, gb_l in zip(gw, gb)] for _, gw, gb in want])
    assert per_layer.shape == (len(X), len(spec[0]) - 1)
    np.testing.assert_allclose(per_layer, want_layer, rtol=1e-12, atol=0)
    total = net.per_example_gradient_norms(X, Y)
    np.testing.assert_allclose(total, np.sqrt((want_layer ** 2).sum(axis=1)), rtol=1e-12)
    # the norms job leaves the network alone
    assert np.array_equal(net.per_example_costs(X, Y), costs)


def test_norms_cover_more_rows_than_one_engine_block():
    net, X, Y = make([6, 5, 3], "sigmoid", "softmax", "log_likelihood", n=600)
    want = numpy_per_example(net, X[-3:], Y[-3:])
    got = net.per_example_gradient_norms(X, Y)[-3:]
    np.testing.assert_allclose(got, [math.sqrt(sum((g ** 2).sum() for g in gw + gb))
                                     for _, gw, gb in want], rtol=1e-12)


def plain_and(net, X, Y, **kw):
    a, b = net.copy(), net.copy()
    args = dict(epochs=2, batch_size=5, eta=0.5, monitor=False)
    a.fit(X, Y, **args)
    b.fit(X, Y, **args, **kw)
    return a, b


@pytest.mark.parametrize("kw", [dict(clip_norm=math.inf), dict(noise_multiplier=0.0),
                                dict(clip_norm=math.inf, noise_multiplier=0.0),
                                dict(sample_weight=np.ones(13)), dict(clip_norm=1e300)],
                         ids=["clip-inf", "noise-0", "both", "weights-1", "clip-huge"])
def test_no_op_rules_give_the_bits_of_plain_sgd(kw):
    net, X, Y = make(*NETS[0])
    a, b = plain_and(net, X, Y, **kw)
    assert np.array_equal(a.params, b.params)
    assert np.array_equal(a.rng.bit_generator.state["state"]["state"],
                          b.rng.bit_generator.state["state"]["state"])


def numpy_step(net, X, Y, eta, factors):
    """One sgd step on the batch X: w ← w − (η/m) Σ_x f_x ∇C_x (per-example loop)."""
    rows = numpy_per_example(net, X, Y)
    ws = [w.copy() for w in net.weights]
    bs = [b.copy() for b in net.biases]
    for l in range(len(ws)):
        ws[l] -= eta / len(X) * sum(f * gw[l] for f, (_, gw, _) in zip(factors, rows))
        bs[l] -= eta / len(X) * sum(f * gb[l] for f, (_, _, gb) in zip(factors, rows))
    return ws, bs, rows


@pytest.mark.parametrize("spec", NETS, ids=["tanh-softmax", "sigmoid-quadratic"])
def test_clipping_and_weights_match_a_numpy_step(spec):
    net, X, Y = make(*spec)
    rng = np.random.default_rng(5)
    w = rng.uniform(0.0, 3.0, len(X))
    rows = numpy_per_example(net, X, Y)
    norms = np.array([math.sqrt(sum((g ** 2).sum() for g in gw + gb)) for _, gw, gb in rows])
    clip = float(np.median(norms))      # about half the examples get clipped
    factors = w * np.minimum(1.0, clip / norms)
    ws, bs, _ = numpy_step(net, X, Y, 0.7, factors)
    got = net.copy()
    got.fit(X, Y, epochs=1, batch_size=len(X), eta=0.7, shuffle=False, monitor=False,
            clip_norm=clip, sample_weight=w)
    for l in range(len(ws)):
        np.testing.assert_allclose(got.weights[l], ws[l], rtol=0, atol=1e-13)
        np.testing.assert_allclose(got.biases[l], bs[l], rtol=0, atol=1e-13)


def test_weight_two_equals_the_example_counted_twice():
    net, X, Y = make(*NETS[0])
    eta = 0.6
    dup = net.copy()   # example 0 twice in its mini-batch of m + 1 = 14
    Xd, Yd = np.vstack([X[:1], X]), np.vstack([Y[:1], Y])
    dup.fit(Xd, Yd, epochs=1, batch_size=len(Xd), eta=eta, shuffle=False, monitor=False)
    w = np.ones(len(X))
    w[0] = 2.0
    weighted = net.copy()   # the same sum over m = 13: η scaled by 13/14 for the same step
    weighted.fit(X, Y, epochs=1, batch_size=len(X), eta=eta * len(X) / len(Xd), shuffle=False,
                 monitor=False, sample_weight=w)
    np.testing.assert_allclose(weighted.params, dup.params, rtol=0, atol=1e-12)
    assert not np.array_equal(weighted.params, net.params)


def test_weighted_cost_and_accuracy_are_weighted_means():
    net, X, Y = make(*NETS[0])
    w = np.arange(len(X)) % 3   # 0, 1, 2: like dropping / duplicating rows
    Xr, Yr = np.repeat(X, w, axis=0), np.repeat(Y, w, axis=0)
    assert net.cost(X, Y, sample_weight=w) == pytest.approx(net.cost(Xr, Yr), rel=1e-12)
    assert net.accuracy(X, Y, sample_weight=w) == pytest.approx(net.accuracy(Xr, Yr), rel=1e-12)


@pytest.mark.parametrize("w, match", [
    (-np.ones(13), "negative"), (np.full(13, np.nan), "NaN"), (np.ones(12), "one weight per"),
    (np.zeros(13), "all zero"), (np.ones((13, 1)), "one weight per")])
def test_bad_weights_get_a_clear_error(w, match):
    net, X, Y = make(*NETS[0])
    for call in (lambda: net.fit(X, Y, epochs=1, sample_weight=w),
                 lambda: net.cost(X, Y, sample_weight=w),
                 lambda: net.accuracy(X, Y, sample_weight=w)):
        with pytest.raises(ValueError, match=match):
            call()


def test_bad_clip_and_noise_get_a_clear_error():
    net, X, Y = make(*NETS[0])
    with pytest.raises(ValueError, match="clip_norm"):
        net.fit(X, Y, epochs=1, clip_norm=-1.0)
    with pytest.raises(ValueError, match="finite clip_norm"):
        net.fit(X, Y, epochs=1, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="sampling"):
        net.fit(X, Y, epochs=1, sampling="poisson")


# ------------------------------------------------------------ fit(record_norms=True)
def norm_of(grads):
    gw, gb = grads
    return math.sqrt(sum((g ** 2).sum() for g in gw + gb))


@pytest.mark.parametrize("spec", NETS, ids=["tanh-softmax", "sigmoid-quadratic"])
def test_recorded_norms_are_each_examples_norm_before_its_step(spec):
    """fit(record_norms=True) over an order of 11 of the 13 rows, mini-batches of 4: each
    visited row's ‖∇C_x‖ equals the NumPy per-example loop's at the weights before its
    mini-batch's update (the reference net steps batch by batch); unvisited rows are NaN."""
    net, X, Y = make(*spec)
    order = np.random.default_rng(3).permutation(13)[:11]
    got = net.copy()
    got.fit(X, Y, epochs=1, batch_size=4, eta=0.5, order=order, monitor=False,
            record_norms=True)
    want = np.full(13, np.nan)
    ref = net.copy()
    for lo in range(0, 11, 4):
        batch = order[lo:lo + 4]
        want[batch] = [norm_of((gw, gb)) for _, gw, gb in numpy_per_example(ref, X[batch],
                                                                             Y[batch])]
        ref.fit(X, Y, epochs=1, batch_size=4, eta=0.5, order=batch, monitor=False)
    assert len(got.example_norms) == 1 and got.example_norms[0].shape == (13,)
    np.testing.assert_allclose(got.example_norms[0], want, rtol=1e-12, atol=0)
    assert np.array_equal(np.isnan(got.example_norms[0]), np.isnan(want))
    assert np.array_equal(got.params, ref.params)


@pytest.mark.parametrize("kw", [{}, dict(clip_norm=0.05)], ids=["plain", "clipped"])
def test_recording_norms_changes_no_bit_of_training(kw):
    net, X, Y = make(*NETS[0])
    a, b = net.copy(), net.copy()
    args = dict(epochs=3, batch_size=5, eta=0.5, **kw)
    a.fit(X, Y, **args)
    b.fit(X, Y, **args, record_norms=True)
    assert np.array_equal(a.params, b.params) and a.history[-1]["cost"] == b.history[-1]["cost"]
    assert a.example_norms == [] and len(b.example_norms) == 3
    assert all("example_norms" not in r for r in b.history)
    assert np.all(np.isfinite(b.example_norms[2])) and np.all(b.example_norms[2] > 0)
    assert np.array_equal(b.copy().example_norms[2], b.example_norms[2])
    b.fit(X, Y, epochs=1, batch_size=5, eta=0.5, record_norms=True)
    assert len(b.example_norms) == 1          # one entry per epoch of the last such fit


def test_record_norms_bad_use_gets_a_clear_error():
    net, X, Y = make(*NETS[0])
    with pytest.raises(ValueError, match="record_norms must be True or False"):
        net.fit(X, Y, epochs=1, record_norms="yes")
    with pytest.raises(ValueError, match="record_norms is not available with sampling='poisson'"):
        net.fit(X, Y, epochs=1, clip_norm=1.0, noise_multiplier=1.0, sampling="poisson",
                record_norms=True)
