"""Issue 14, classes 1, 5 and 7 through the API: nothing a user assigns reaches compiled code
unchecked; values a network cannot represent are refused; valid spellings are accepted."""

import numpy as np
import pytest

from loopnet import Net


def small(**kw):
    return Net([3, 4, 2], seed=0, **kw)


def test_sizes_are_immutable_and_equal_to_the_list():
    net = small()
    assert net.sizes == [3, 4, 2] and net.sizes == (3, 4, 2)
    with pytest.raises(TypeError):
        net.sizes[-1] = 3
    with pytest.raises(AttributeError):
        net.sizes = [3, 4, 3]
    assert net.predict(np.zeros((2, 3))).shape == (2, 2)


@pytest.mark.parametrize("bad", ["short", "long", "2d", "nan", "text"])
def test_params_setter_checks_shape_and_values(bad):
    net = small()
    before = net.params.copy()
    value = {"short": net.params[:-1].copy(), "long": np.zeros(net.params.size + 1),
             "2d": net.params.reshape(1, -1).copy(),
             "nan": np.full(net.params.size, np.nan), "text": ["a"] * net.params.size}[bad]
    with pytest.raises((ValueError, TypeError)):
        net.params = value
    assert np.array_equal(net.params, before)


def test_params_setter_copies_into_the_buffer():
    net = small()
    buf = net.params
    new = np.arange(net.params.size, dtype=np.float64) / 100
    net.params = new
    assert net.params is buf and np.array_equal(buf, new)


@pytest.mark.parametrize("name", ["dtype", "activation", "output", "cost_name"])
def test_layout_names_are_read_only(name):
    net = small()
    with pytest.raises(AttributeError):
        setattr(net, name, "float32" if name == "dtype" else "relu")


def test_rng_and_epoch_are_checked():
    net = small()
    with pytest.raises(TypeError):
        net.rng = 5
    with pytest.raises(ValueError):
        net.epoch = -5
    with pytest.raises(TypeError):
        net.epoch = 2.5


def test_step_with_non_finite_gradient_raises_and_leaves_params():
    net = small()
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    g = net.gradient_sum(X, y)
    before = net.params.copy()
    for value in (np.nan, np.inf):
        g2 = g.copy()
        g2[3] = value
        with pytest.raises(ValueError, match="gradient contains NaN or infinity"):
            net.step(g2, eta=0.5, m=4)
        assert np.array_equal(net.params, before)


def test_float32_net_refuses_values_beyond_float32():
    net = small(dtype="float32")
    X = np.zeros((2, 3))
    X[1, 2] = 1e39
    for call in (lambda: net.predict(X), lambda: net.fit(X, [0, 1], epochs=1)):
        with pytest.raises(ValueError, match="beyond the range of float32.*row 1"):
            call()
    g = np.zeros(net.params.size)
    g[0] = 1e300
    with pytest.raises(ValueError, match="gradient"):
        net.step(g, eta=0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.dtype("float32"), "float32"])
def test_dtype_spellings_accepted(dtype):
    assert Net([2, 2], dtype=dtype).dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [np.int32, "float16", ">f8", "x", None])
def test_other_dtypes_refused(dtype):
    with pytest.raises(ValueError, match="dtype must be"):
        Net([2, 2], dtype=dtype)


def test_huge_batch_size_uses_scratch_for_n_rows():
    net = small()
    X, y = np.ones((5, 3)), np.array([0, 1, 0, 1, 1])
    ref = small().fit(X, y, epochs=2, batch_size=5, monitor=False, shuffle=False)
    net.fit(X, y, epochs=2, batch_size=1_000_000_000, monitor=False, shuffle=False)
    assert np.array_equal(net.params, ref.params)


@pytest.mark.parametrize("edit", ["short", "nan", "t", "name", "none"])
def test_optimizer_state_setter_checks(edit):
    net = small()
    state = dict(net.optimizer_state)
    if edit == "short":
        state["m"] = state["m"][:-1]
    elif edit == "nan":
        state["v"] = np.full_like(state["v"], np.nan)
    elif edit == "t":
        state["t"] = -1
    elif edit == "name":
        state["name"] = "rmsprop"
    else:
        state["velocity"] = None
    with pytest.raises((ValueError, TypeError)):
        net.optimizer_state = state


def test_optimizer_state_from_read_only_arrays_is_copied():
    net = small()
    state = dict(net.optimizer_state)
    for key in ("velocity", "m", "v"):
        state[key] = state[key].copy()
        state[key].flags.writeable = False
    net.optimizer_state = state
    net.fit(np.ones((4, 3)), [0, 1, 0, 1], epochs=1, batch_size=2, monitor=False)
    assert net.optimizer_state["velocity"].flags.writeable


def test_adopt_params_takes_only_a_buffer_the_kernels_can_use():
    net = Net([3, 4, 2], seed=0)
    X = np.random.default_rng(1).random((5, 3))
    buf = net.params.copy() * 2.0
    assert net.adopt_params(buf) is buf and net.params is buf
    other = Net([3, 4, 2], seed=0)
    other.params = buf                       # the copying setter: same numbers
    assert np.array_equal(net.predict(X), other.predict(X))
    P = buf.size
    for bad in (np.zeros(P, np.float32), np.zeros(P - 1), np.zeros(2 * P)[::2],
                np.full(P, np.nan), list(buf)):
        with pytest.raises(ValueError):
            net.adopt_params(bad)
    assert net.params is buf
