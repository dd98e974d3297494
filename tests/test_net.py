"""The core API: training against the NumPy reference, optimizers, stopping,
rollback, and clear errors for bad input."""

import numpy as np
import pytest

import loopnet
from loopnet import reference as R


def small_problem(seed=0, m=40, sizes=(4, 5, 3)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, sizes[0]))
    y = rng.integers(0, sizes[-1], m)
    return X, y, np.eye(sizes[-1])[y]


def test_twenty_step_loss_trajectory_matches_reference():
    """20 mini-batches of SGD with L2, cost after every step, against matrix form."""
    X, _, Y = small_problem(m=60)
    net = loopnet.Net([4, 5, 3], seed=1)
    ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    order = np.arange(60)
    for step in range(20):
        rows = order[(3 * step) % 60:(3 * step) % 60 + 3]
        net.fit(X[rows], Y[rows], epochs=1, batch_size=3, eta=0.5, lmbda=0.1,
                shuffle=False, monitor=False)
        nw, nb = R.gradient(ws, bs, X[rows], Y[rows], "sigmoid", "sigmoid", "quadratic")
        ws, bs = R.sgd_step(ws, bs, nw, nb, 0.5, 0.1, 3)
        want = R.cost(ws, bs, X, Y, "sigmoid", "sigmoid", "quadratic")
        assert net.cost(X, Y) == pytest.approx(want, rel=1e-10)
    for got, want in zip(net.weights + net.biases, ws + bs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_epochs_match_reference_with_ragged_last_batch():
    X, _, Y = small_problem(m=23)
    net = loopnet.Net([4, 5, 3], activation="tanh", output="softmax", cost="log_likelihood",
                      seed=2)
    ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    state = np.random.default_rng(99)
    orders = [state.permutation(23) for _ in range(3)]
    for order in orders:
        net.fit(X, Y, epochs=1, batch_size=5, eta=0.3, lmbda=0.2, order=order, monitor=False)
        ws, bs = R.train_sgd(ws, bs, X, Y, order, 5, 0.3, "tanh", "softmax", "log_likelihood",
                             lmbda=0.2)
    for got, want in zip(net.weights + net.biases, ws + bs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_momentum_and_adam_match_textbook_updates():
    X, _, Y = small_problem(m=8)
    for optimizer, kw in (("sgd", {"momentum": 0.9}), ("adam", {})):
        net = loopnet.Net([4, 5, 3], seed=3)
        p = net.params.copy()
        v, m1, m2 = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        is_w = np.concatenate([np.r_[np.ones(w.size), np.zeros(b.size)]
                               for w, b in zip(net.weights, net.biases)]).astype(bool)
        for t in range(1, 4):
            g = net.gradient_sum(X, Y) / 8
            net.fit(X, Y, epochs=1, batch_size=8, eta=0.1, lmbda=0.5, shuffle=False,
                    monitor=False, optimizer=optimizer, **kw)
            if optimizer == "sgd":
                v = 0.9 * v - 0.1 * g
                p = np.where(is_w, (1 - 0.1 * 0.5 / 8) * p, p) + v
            else:
                g = g + np.where(is_w, 0.5 / 8 * p, 0.0)
                m1 = 0.9 * m1 + 0.1 * g
                m2 = 0.999 * m2 + 0.001 * g * g
                p = p - 0.1 * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
            np.testing.assert_allclose(net.params, p, rtol=1e-10, atol=1e-13)
        assert net.optimizer_state["t"] == 3


def test_digits_reach_95_percent_in_30_epochs():
    (X, y), (X_test, y_test) = loopnet.data.digits_split()
    net = loopnet.Net([64, 30, 10], seed=0)
    best = []
    net.fit(X, y, epochs=30, batch_size=10, eta=3.0,
            callback=lambda n, rec: best.append(n.accuracy(X_test, y_test)))
    assert len(net.history) == 30 and net.epoch == 30
    assert max(best) >= 0.95 and best[-1] >= 0.95


def test_gradient_is_average_of_per_example_gradients():
    X, _, Y = small_problem(m=6)
    net = loopnet.Net([4, 5, 3], seed=4)
    total = sum(net.gradient_sum(X[i:i + 1], Y[i:i + 1]) for i in range(6))
    nabla_w, nabla_b = net.gradient(X, Y)
    ws, bs = net.unflatten(total / 6)
    for got, want in zip(nabla_w + nabla_b, ws + bs):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_tol_stops_when_gradient_is_small():
    X, _, Y = small_problem(m=20)
    net = loopnet.Net([4, 3], output="identity", cost="mse", seed=5)
    net.fit(X, Y, epochs=500, batch_size=20, eta=0.5, tol=1e-3, monitor=False)
    assert net.epoch < 500
    assert net.history[-1]["grad_norm"] <= 1e-3
    nabla_w, nabla_b = net.gradient(X, Y)
    assert np.sqrt(sum((g ** 2).sum() for g in nabla_w + nabla_b)) <= 1e-3


def test_keyboard_interrupt_rolls_back_to_epoch_start():
    X, y, _ = small_problem(m=400)
    net = loopnet.Net([4, 5, 3], seed=6)
    net.fit(X, y, epochs=1, batch_size=1, eta=0.1)
    before = (net.params.copy(), net.rng.bit_generator.state, net.epoch)

    def interrupt(done, total):
        raise KeyboardInterrupt

    import loopnet.training as core
    old = core.SEGMENT_EXAMPLES
    core.SEGMENT_EXAMPLES = 50
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, epochs=1, batch_size=1, eta=0.1, progress=interrupt)
    finally:
        core.SEGMENT_EXAMPLES = old
    assert np.array_equal(net.params, before[0])
    assert net.rng.bit_generator.state == before[1] and net.epoch == before[2]
    # resuming now gives exactly the run that was never interrupted
    twin = loopnet.Net([4, 5, 3], seed=6)
    twin.fit(X, y, epochs=2, batch_size=1, eta=0.1)
    net.fit(X, y, epochs=1, batch_size=1, eta=0.1)
    assert np.array_equal(net.params, twin.params)


def test_divergence_raises_and_keeps_last_good_parameters():
    X, _, _ = small_problem(m=20)
    Y = np.random.default_rng(0).standard_normal((20, 3)) * 1e3
    net = loopnet.Net([4, 5, 3], activation="relu", output="identity", cost="mse", seed=7)
    good = net.params.copy()
    with pytest.raises(loopnet.DivergenceError, match="epoch 1.*smaller learning rate"):
        net.fit(X, Y, epochs=5, batch_size=2, eta=1e6)
    assert np.array_equal(net.params, good) and net.epoch == 0


def test_float32_follows_float64():
    X, y, _ = small_problem(m=50)
    a = loopnet.Net([4, 5, 3], seed=8).fit(X, y, epochs=3, batch_size=5, eta=0.5)
    b = loopnet.Net([4, 5, 3], seed=8, dtype="float32").fit(X, y, epochs=3, batch_size=5,
                                                               eta=0.5)
    assert b.params.dtype == np.float32 and b.predict(X).dtype == np.float32
    np.testing.assert_allclose(b.params, a.params, rtol=1e-4, atol=1e-5)


def test_weights_are_views_and_setter_validates():
    net = loopnet.Net([3, 4, 2], seed=0)
    assert [w.shape for w in net.weights] == [(4, 3), (2, 4)]
    assert [b.shape for b in net.biases] == [(4,), (2,)]
    net.weights[0][0, 0] = 42.0
    assert net.params[0] == 42.0
    with pytest.raises(ValueError, match=r"weights\[1\].*shape \(4, 2\).*expected \(2, 4\)"):
        net.weights = [np.zeros((4, 3)), np.zeros((4, 2))]
    net.weights[1] = np.ones((2, 4))          # element assignment writes into the net
    assert np.all(net.weights[1] == 1.0)
    net.biases[0] = np.arange(4.0).reshape(4, 1)   # Nielsen's (n, 1) columns are accepted
    assert np.array_equal(net.biases[0], np.arange(4.0))
    with pytest.raises(ValueError, match=r"biases\[1\] has shape \(3,\), expected \(2,\)"):
        net.biases[1] = np.zeros(3)
    with pytest.raises(ValueError, match="NaN"):
        net.weights[0] = np.full((4, 3), np.nan)


def test_same_seed_same_network_and_no_global_rng():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    X, y, _ = small_problem()
    a = loopnet.Net([4, 5, 3], seed=11).fit(X, y, epochs=2)
    b = loopnet.Net([4, 5, 3], seed=11).fit(X, y, epochs=2)
    assert np.array_equal(a.params, b.params)
    assert np.array_equal(np.random.get_state()[1], before)


def test_copy_is_independent():
    X, y, _ = small_problem()
    net = loopnet.Net([4, 5, 3], seed=1)
    twin = net.copy()
    net.fit(X, y, epochs=1)
    twin.fit(X, y, epochs=1)
    assert np.array_equal(net.params, twin.params)
    twin.fit(X, y, epochs=1)
    assert not np.array_equal(net.params, twin.params)


BAD_CONSTRUCTORS = [
    (dict(sizes=[4]), ValueError, "at least an input and an output"),
    (dict(sizes=[4, 0, 3]), ValueError, "positive integer"),
    (dict(sizes=[4, 2.5, 3]), ValueError, "positive integer"),
    (dict(sizes=5), TypeError, "list of layer widths"),
    (dict(sizes=[4, 3], activation="gelu"), ValueError, "unknown activation 'gelu'"),
    (dict(sizes=[4, 3], activation="softmax"), ValueError, "only available for the output"),
    (dict(sizes=[4, 3], cost="hinge"), ValueError, "unknown cost 'hinge'"),
    (dict(sizes=[4, 3], output="relu", cost="cross_entropy"), ValueError, "needs output"),
    (dict(sizes=[4, 3], dtype="float16"), ValueError, "dtype"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD_CONSTRUCTORS)
def test_bad_constructor_arguments(kwargs, exc, match):
    sizes = kwargs.pop("sizes")
    with pytest.raises(exc, match=match):
        loopnet.Net(sizes, **kwargs)


X_OK, Y_OK = np.zeros((5, 4)), np.array([0, 1, 2, 0, 1])
X_NAN = X_OK.copy()
X_NAN[3, 1] = np.nan
BAD_FITS = [
    (dict(X=np.zeros((5, 3))), ValueError, r"shape \(5, 3\).*\(m, 4\)"),
    (dict(X=np.zeros(4)), ValueError, "must be 2-D"),
    (dict(X=np.zeros((0, 4)), Y=np.zeros(0, int)), ValueError, "empty"),
    (dict(X=X_NAN), ValueError, "NaN or infinity.*row 3"),
    (dict(X=[["a"] * 4] * 5), TypeError, "real numbers"),
    (dict(Y=np.array([0, 1, 2, 3, 1])), ValueError, r"out of range.*labels are 0\.\.2"),
    (dict(Y=np.array([0, 1, -1, 0, 1])), ValueError, "out of range"),
    (dict(Y=np.array([0, 1, 2])), ValueError, "expected 5 integer labels"),
    (dict(Y=np.zeros((5, 2))), ValueError, r"shape \(5, 2\).*expected \(5, 3\)"),
    (dict(Y=np.array([0.5, 1, 2, 0, 1])), ValueError, "integer class labels"),
    (dict(eta=0), ValueError, "eta.*> 0"),
    (dict(eta=-1.0), ValueError, "eta"),
    (dict(eta=float("nan")), ValueError, "eta.*finite"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(lmbda=-0.1), ValueError, "lmbda"),
    (dict(momentum=1.0), ValueError, "momentum must be < 1"),
    (dict(optimizer="rmsprop"), ValueError, "unknown optimizer"),
    (dict(validation_data=np.zeros((2, 4))), TypeError, "validation_data must be a pair"),
    (dict(validation_data=(np.zeros((2, 5)), [0, 1])), ValueError, "validation X has shape"),
    (dict(order=np.array([0, 9])), ValueError, "order holds indices outside"),
    (dict(threads=0), ValueError, "threads must be >= 1"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD_FITS)
def test_bad_fit_arguments(kwargs, exc, match):
    net = loopnet.Net([4, 5, 3], seed=0)
    before = net.params.copy()
    X = kwargs.pop("X", X_OK)
    Y = kwargs.pop("Y", Y_OK)
    kwargs.setdefault("epochs", 1)
    with pytest.raises(exc, match=match):
        net.fit(X, Y, **kwargs)
    assert np.array_equal(net.params, before)


def test_bad_input_to_other_methods():
    net = loopnet.Net([4, 5, 3], seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        net.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="out of range"):
        net.gradient(np.zeros((2, 4)), [0, 7])
    with pytest.raises(ValueError, match="out of range"):
        net.accuracy(np.zeros((2, 4)), [0, 3])
    with pytest.raises(ValueError, match="lmbda"):
        net.cost(np.zeros((2, 4)), [0, 1], lmbda=-1)
    with pytest.raises(ValueError, match="gradient has shape"):
        net.step(np.zeros(3), eta=0.1)


def test_warmup_compiles_without_touching_anything():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    assert loopnet.warmup() > 0
    assert np.array_equal(np.random.get_state()[1], before)


def test_thread_choice_never_changes_the_result():
    X, y, _ = small_problem(m=300, sizes=(40, 30, 3))
    nets = [loopnet.Net([40, 30, 3], seed=9) for _ in range(3)]
    for net, threads in zip(nets, (None, 1, 2)):
        net.fit(X, y, epochs=2, batch_size=20, eta=0.5, threads=threads)
    assert np.array_equal(nets[0].params, nets[1].params)
    assert np.array_equal(nets[1].params, nets[2].params)


def test_pickle_round_trip_keeps_everything(tmp_path):
    import pickle
    X, y, _ = small_problem()
    net = loopnet.Net([4, 5, 3], seed=1, output="softmax", cost="log_likelihood")
    net.fit(X, y, epochs=2, optimizer="adam", eta=0.01)
    twin = pickle.loads(pickle.dumps(net))
    assert np.array_equal(twin.params, net.params) and twin.epoch == 2
    net.fit(X, y, epochs=1, optimizer="adam", eta=0.01)
    twin.fit(X, y, epochs=1, optimizer="adam", eta=0.01)
    assert np.array_equal(twin.params, net.params)
    # read-only (memory-mapped) parameters are copied into writable buffers
    state = net.__getstate__()
    state["params"] = state["params"].copy()
    state["params"].flags.writeable = False
    clone = loopnet.Net.__new__(loopnet.Net)
    clone.__setstate__(state)
    np.testing.assert_array_equal(clone.predict(X), net.predict(X))


def compiled_signatures(dispatcher):
    """How many specialisations Numba compiled for ``dispatcher``; None under
    NUMBA_DISABLE_JIT, where it is the plain Python function."""
    return len(dispatcher.signatures) if hasattr(dispatcher, "signatures") else None


def test_read_only_targets_train_the_same_without_another_compile():
    """The same bits from read-only targets, and (compiled) no second specialisation."""
    from loopnet import engine
    X, y, _ = small_problem()
    Y = np.eye(3)[y]
    a = loopnet.Net([4, 5, 3], seed=3)
    b = a.copy()
    a.fit(X, Y, epochs=2, batch_size=5, eta=0.5)
    compiled = compiled_signatures(engine.drive_batches)
    Y_ro = Y.copy()
    Y_ro.flags.writeable = False            # as a memory map, or scikit-learn's checks, give it
    b.fit(X, Y_ro, epochs=2, batch_size=5, eta=0.5)
    assert np.array_equal(a.params, b.params)
    assert compiled_signatures(engine.drive_batches) == compiled
    assert b.cost(X, Y_ro) == a.cost(X, Y)


def test_step_with_gradient_sum_is_exactly_fits_update():
    X, y, _ = small_problem(m=10)
    a = loopnet.Net([4, 5, 3], seed=2)
    b = a.copy()
    a.fit(X, y, epochs=1, batch_size=10, eta=0.7, lmbda=0.3, momentum=0.5, shuffle=False,
          monitor=False)
    b.step(b.gradient_sum(X, y), m=10, eta=0.7, lmbda=0.3, n=10, momentum=0.5)
    assert np.array_equal(a.params, b.params)


def test_order_may_visit_a_subset_of_the_rows():
    X, y, Y = small_problem(m=30)
    order = np.array([3, 7, 1, 22, 9])     # 5 of 30 rows: mini-batches of 2, 2, 1
    net = loopnet.Net([4, 5, 3], seed=4)
    ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    net.fit(X, y, epochs=1, batch_size=2, eta=0.5, order=order)
    ws, bs = R.train_sgd(ws, bs, X, Y, order, 2, 0.5, "sigmoid", "sigmoid", "quadratic")
    for got, want in zip(net.weights + net.biases, ws + bs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_how_fit_cuts_an_epoch_into_compiled_runs_never_changes_the_result(monkeypatch):
    """Runs of mini-batches end where Python checks for NaN; phase A1 of a run's first
    mini-batch is computed on its own, of the others inside the phase B before.  A
    different cut (here 2 mini-batches per run instead of all) gives the same bits."""
    X, y, _ = small_problem(m=300, sizes=(40, 30, 3))
    a, b = loopnet.Net([40, 30, 3], seed=9), loopnet.Net([40, 30, 3], seed=9)
    a.fit(X, y, epochs=2, batch_size=10, eta=0.5, monitor=False)
    monkeypatch.setattr(loopnet.training, "SEGMENT_EXAMPLES", 20)
    b.fit(X, y, epochs=2, batch_size=10, eta=0.5, monitor=False)
    assert np.array_equal(a.params, b.params)


@pytest.mark.parametrize("rows", [1, 3, 5, 258])
def test_an_example_predicts_the_same_whatever_is_predicted_with_it(rows):
    """Predictions go 4 examples per pass; a short last group is padded with copies of its
    last example, so a row's outputs do not depend on its neighbours (nor on the 256-row
    blocks of predict)."""
    X, _, _ = small_problem(m=300, sizes=(40, 30, 3))
    net = loopnet.Net([40, 30, 3], seed=3)
    whole = net.predict(X)
    assert net.predict(X[:rows]).tobytes() == whole[:rows].tobytes()
    assert net.predict(X[rows:rows + 7]).tobytes() == whole[rows:rows + 7].tobytes()


def test_float32_inputs_train_a_float64_net_as_their_float64_copy():
    """A float64 Net reads float32 X in place: fit (with validation data, dropout and
    clipping), predict, cost, accuracy, gradient_sum and the per-example norms equal those
    of X.astype(float64), bit for bit."""
    rng = np.random.default_rng(3)
    X32 = rng.standard_normal((37, 6)).astype(np.float32)
    y = rng.integers(0, 3, 37)
    outs = []
    for X in (X32, X32.astype(np.float64)):
        net = loopnet.Net([6, 5, 3], output="softmax", cost="log_likelihood", seed=2, dropout=0.2)
        net.fit(X, y, epochs=2, batch_size=8, eta=0.3, clip_norm=2.0,
                validation_data=(X[:9], y[:9]))
        outs.append((net.params.copy(), net.predict(X), net.cost(X, y), net.accuracy(X, y),
                     net.gradient_sum(X, y), net.per_example_gradient_norms(X, y),
                     [r.get("cost") for r in net.history]))
    for a, b in zip(*outs):
        assert np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
