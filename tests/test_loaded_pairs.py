"""The drop-ins train on load_data_wrapper()'s pairs in place (found by loopnet.pairs):
the same bits and output as on copies of the same pairs, which are converted as any data is."""
import contextlib
import gc
import io
import random

import numpy as np
import pytest

from loopnet import layout, mnist_loader, network, network2, pairs
from test_mnist_loader import make_idx_dir


@pytest.fixture
def loaded(tmp_path):
    make_idx_dir(str(tmp_path), n_train=72, n_test=21)
    return mnist_loader.load_data_wrapper(str(tmp_path))


def copies(data):
    """The same pairs as new arrays (and new label objects): not recognised, so converted."""
    return [(np.array(x), np.array(y) if isinstance(y, np.ndarray) else int(y)) for x, y in data]


def train(module, training, test, **kw):
    random.seed(3)
    np.random.seed(3)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        net = module.Network([784, 7, 10])
        result = net.SGD(training, 2, 5, 1.5, **kw)
    return net, out.getvalue(), result


def same_parameters(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.weights + a.biases, b.weights + b.biases))


def test_pairs_are_views_of_the_split_matrices(loaded):
    training, validation, test = loaded
    (X, Y), rows = pairs.find(training)
    assert np.array_equal(rows, np.arange(len(training))) and X.dtype == np.float32
    for i in (0, 17, len(training) - 1):
        x, y = training[i]
        assert np.shares_memory(x, X) and np.array_equal(x[:, 0], X[i])
        assert np.array_equal(y, mnist_loader.vectorized_result(int(np.argmax(y))))
        assert np.shares_memory(y, Y) and np.array_equal(y[:, 0], Y[i])
    (VX, labels), vrows = pairs.find(validation)
    assert labels.dtype == np.int64 and [int(v[1]) for v in validation] == labels.tolist()
    assert pairs.find(copies(training)) is None
    assert pairs.find(copies(test)) is None


def test_network_sgd_on_loaded_pairs_equals_sgd_on_copies(loaded):
    training, _, test = loaded
    twin, twin_test = copies(training), copies(test)
    a, out_a, _ = train(network, training, test, test_data=test)
    b, out_b, _ = train(network, twin, twin_test, test_data=twin_test)
    assert out_a == out_b and "Epoch 1: " in out_a
    assert same_parameters(a, b)
    # SGD shuffled both lists in place, alike; the shuffled list is still recognised.
    assert [int(np.argmax(y)) for _, y in training] == [int(np.argmax(y)) for _, y in twin]
    (_, _), rows = pairs.find(training)
    assert not np.array_equal(rows, np.arange(len(training)))
    assert a.evaluate(test) == b.evaluate(twin_test)


def test_network2_sgd_and_monitors_on_loaded_pairs_equal_copies(loaded):
    training, validation, _ = loaded
    kw = dict(lmbda=0.3, monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
              monitor_training_cost=True, monitor_training_accuracy=True)
    twin, twin_val = copies(training), copies(validation)
    a, out_a, res_a = train(network2, training, None, evaluation_data=validation, **kw)
    b, out_b, res_b = train(network2, twin, None, evaluation_data=twin_val, **kw)
    assert out_a == out_b and res_a == res_b
    assert same_parameters(a, b)


def test_writing_into_a_loaded_x_is_seen(loaded):
    training, _, test = loaded
    training[4][0][100:200, 0] = 0.5        # into the pair's own array, as NumPy users do
    twin, twin_test = copies(training), copies(test)
    assert pairs.find(training) is not None
    a, out_a, _ = train(network, training, test, test_data=test)
    b, out_b, _ = train(network, twin, twin_test, test_data=twin_test)
    assert out_a == out_b and same_parameters(a, b)


def test_replaced_or_collected_pairs_are_not_taken_for_the_loaded_ones(loaded):
    training, _, test = loaded
    training[3] = (training[3][0], mnist_loader.vectorized_result(9))    # a new y
    assert pairs.find(training) is None
    training[3] = (np.array(training[3][0]), training[3][1])
    assert pairs.find(training) is None
    twin, twin_test = copies(training), copies(test)
    a, out_a, _ = train(network, training, test, test_data=test)          # converted instead
    b, out_b, _ = train(network, twin, twin_test, test_data=twin_test)
    assert out_a == out_b and same_parameters(a, b)
    (X, labels), rows = pairs.find(test)
    del test[0]                   # the rest are still rows of the set (it holds pair 0's x)
    (X2, _), rows2 = pairs.find(test)
    assert X2 is X and np.array_equal(rows2, rows[1:])


def test_loaded_pairs_that_do_not_fit_the_network_get_the_usual_error(loaded):
    training, _, test = loaded
    net = network.Network([100, 5, 10])
    with pytest.raises(ValueError, match=r"training_data\[0\]\[0\].*sizes\[0\] = 100"):
        net.SGD(training, 1, 5, 1.0)
    with pytest.raises(ValueError, match=r"training_data\[0\]\[1\].*vectorized_result"):
        network.Network([784, 5, 10]).SGD(test, 1, 5, 1.0)


def test_pairs_converted_once_for_every_network_and_forgotten_with_the_data(monkeypatch):
    """Other pairs (as Nielsen's own loader builds them) are converted on the first call and
    found again by any Network, in any order; once the caller's pairs are gone, the
    converted matrices go with the next set remembered."""
    import weakref
    rs = np.random.RandomState(0)
    data = [(rs.rand(784, 1).astype(np.float32), mnist_loader.vectorized_result(i % 10))
            for i in range(40)]
    test = [(rs.rand(784, 1).astype(np.float32), i % 10) for i in range(9)]
    stacked = []
    real = network._stack_columns
    monkeypatch.setattr(network, "_stack_columns", lambda *a, **k: stacked.append(1) or real(*a, **k))
    runs = [train(network, list(data), test, test_data=test) for _ in range(2)]
    assert len(stacked) == 3                    # x and y of the training list, x of the test list
    train(network, data, test, test_data=test)  # (shuffles ``data`` itself)
    assert len(stacked) == 3
    assert runs[0][1] == runs[1][1] and same_parameters(runs[0][0], runs[1][0])
    (X, Y), rows = pairs.find(data)             # SGD shuffled the list: rows follow it
    assert np.array_equal(X[rows], np.stack([x[:, 0] for x, _ in data]))
    assert np.array_equal(Y[rows], np.stack([y[:, 0] for _, y in data]))
    matrix = weakref.ref(X)
    del X, Y, rows, data, runs
    gc.collect()
    assert matrix() is not None           # until another set is remembered
    train(network, [(np.array(x), mnist_loader.vectorized_result(1)) for x, _ in test], test)
    assert matrix() is None
    (X, _), _ = pairs.find(test)          # the test list is still held: release keeps it
    matrix = weakref.ref(X)
    pairs.release()
    assert pairs.find(test)[0][0] is X
    del X, test
    gc.collect()
    pairs.release()                       # nothing holds it now: freed at once
    assert matrix() is None


# ------------------------------------------------------------ pairs made by Nielsen's own loader

def nielsens_pairs(n=1200, n_test=1000, seed=0):
    """Pairs as Nielsen's own mnist_loader makes them from his float32 image matrices: each x
    ``np.reshape(row, (784, 1))`` (a view), each y a new vectorized_result array, test labels
    NumPy integers.  Not load_data_wrapper()'s: the drop-ins must find the matrices themselves."""
    rng = np.random.default_rng(seed)
    images, test_images = (rng.random((k, 784), dtype=np.float32) for k in (n, n_test))
    labels, test_labels = rng.integers(0, 10, n), rng.integers(0, 10, n_test)
    training = [(np.reshape(x, (784, 1)), mnist_loader.vectorized_result(y))
                for x, y in zip(images, labels)]
    test = list(zip([np.reshape(x, (784, 1)) for x in test_images], test_labels))
    return images, training, test_images, test


@pytest.mark.parametrize("shuffled", [False, True])
def test_nielsens_loader_pairs_are_read_in_place_and_train_as_copies(shuffled):
    images, training, test_images, test = nielsens_pairs()
    if shuffled:                              # a list already in another order than the matrix
        random.Random(5).shuffle(training)
    twin, twin_test = copies(training), copies(test)
    a, out_a, _ = train(network, training, test, test_data=test)
    b, out_b, _ = train(network, twin, twin_test, test_data=twin_test)
    assert out_a == out_b and "Epoch 1: " in out_a
    assert same_parameters(a, b)
    (X, Y), rows = pairs.find(training)       # the caller's matrix itself, no copy
    assert X is images and sorted(rows) == list(range(len(images)))
    for i in (0, 7, len(training) - 1):
        x, y = training[i]
        assert np.shares_memory(x, X[rows[i]]) and np.array_equal(Y[rows[i]], y[:, 0])
    assert pairs.find(test)[0][0] is test_images
    assert a.evaluate(test) == b.evaluate(twin_test)


def test_nielsens_loader_pairs_with_network2_monitors_equal_copies():
    _, training, _, test = nielsens_pairs(seed=1)
    kw = dict(lmbda=0.3, monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
              monitor_training_cost=True, monitor_training_accuracy=True)
    twin, twin_test = copies(training), copies(test)      # (before SGD shuffles training)
    a, out_a, res_a = train(network2, training, None, evaluation_data=test, **kw)
    b, out_b, res_b = train(network2, twin, None, evaluation_data=twin_test, **kw)
    assert out_a == out_b and res_a == res_b
    assert same_parameters(a, b)


def test_views_that_are_not_whole_distinct_rows_are_copied():
    images, training, _, _ = nielsens_pairs(seed=2)
    twice = training[:700] + training[:700]                  # the same rows twice
    few = training[:500]                                     # under half of the matrix
    columns = [(np.reshape(images[:, j % 784][:784], (784, 1)), y)      # strided views
               for j, (_, y) in enumerate(training)]
    for data in (twice, few, columns):
        twin = copies(data)
        a, out_a, _ = train(network, data, None)
        b, out_b, _ = train(network, twin, None)
        assert same_parameters(a, b)
        assert pairs.find(data)[0][0] is not images


def test_a_nan_in_nielsens_matrix_is_named_by_its_pair():
    images, training, _, _ = nielsens_pairs(seed=3)
    images[11, 5] = np.nan
    row = next(i for i, (x, _) in enumerate(training) if np.isnan(x).any())
    with pytest.raises(ValueError, match=r"training_data\[%d\]\[0\] contains NaN" % row):
        network.Network([784, 7, 10]).SGD(training, 1, 10, 3.0)


def test_without_the_memory_layout_pairs_are_asked_one_by_one_with_the_same_results(monkeypatch):
    """loopnet.layout reads the pairs' fields in bulk; where its probe fails, the ids come from
    id() and the x's are copied: the same training, bit for bit."""
    images, training, _, test = nielsens_pairs(seed=4)
    bulk = [ids.tolist() for ids in pairs.item_ids(training)[:2]]
    with monkeypatch.context() as m:
        m.setitem(layout._state, "trusted", False)
        assert layout.list_items(training) is None
        asked = pairs.item_ids(training)
        assert [ids.tolist() for ids in asked[:2]] == bulk and not asked.tuples
    a, out_a, _ = train(network, training, test, test_data=test)
    assert pairs.find(training)[0][0] is images
    monkeypatch.setitem(layout._state, "trusted", False)
    _, twin, _, twin_test = nielsens_pairs(seed=4)
    asked = pairs.item_ids(twin)
    b, out_b, _ = train(network, twin, twin_test, test_data=twin_test)
    assert out_a == out_b and same_parameters(a, b)
    assert pairs.find(twin, asked)[0][0] is not images      # copied


def test_targets_gathered_at_once_equal_numpys_stack_and_name_a_nan():
    rs = np.random.RandomState(1)
    for vectors in ([rs.rand(10) for _ in range(50)], [rs.rand(10, 1)[::-1] for _ in range(50)]):
        ids = np.array([id(y) for y in vectors], np.int64)
        assert np.array_equal(network._stack_columns(vectors, 10, "d", "y", ids=ids),
                              np.stack([y.ravel() for y in vectors]))
    ys = [rs.rand(10, 1) for _ in range(300)]
    ids = np.array([id(y) for y in ys], np.int64)
    assert network._gathered(ys, 10, ids) is not None
    stacked = network._stack_columns(ys, 10, "training_data", "desired output y", ids=ids)
    assert np.array_equal(stacked, np.stack([y.ravel() for y in ys]))
    mixed = ys[:150] + [ys[150].ravel()] + ys[151:]                    # an (n,) among (n, 1)
    assert network._gathered(mixed, 10, np.array([id(y) for y in mixed], np.int64)) is None
    mixed = ys[:-1] + [ys[-1].astype(np.float32)]             # not all float64: stacked by NumPy
    ids[-1] = id(mixed[-1])
    assert np.array_equal(network._stack_columns(mixed, 10, "d", "desired output y", ids=ids),
                          np.stack([y.ravel() for y in mixed]).astype(np.float64))
    ys[42][3, 0] = np.nan
    ids[-1] = id(ys[-1])
    with pytest.raises(ValueError, match=r"training_data\[42\]\[1\] contains NaN"):
        network._stack_columns(ys, 10, "training_data", "desired output y", ids=ids)


def test_pairs_held_by_the_set_keep_their_arrays_and_list_pairs_are_held_item_by_item():
    """A remembered set holds the caller's tuples (which hold their x and y), so a list of
    new tuples of the same arrays is still found; pairs that are lists (which can change)
    are held item by item, train as tuples do, and a replaced x is not taken for the old."""
    _, training, _, _ = nielsens_pairs(n=1100, seed=6)
    train(network, training, None)
    rezipped = [(x, y) for x, y in training]
    del training
    gc.collect()
    pairs.release()                           # the x's are still held (by the new tuples)
    assert pairs.find(rezipped) is not None
    as_lists = [[x, y] for x, y in rezipped]
    ids = pairs.item_ids(as_lists)
    assert not ids.tuples and ids.x.tolist() == [id(x) for x, _ in rezipped]
    fresh = [[x, y] for x, y in copies(rezipped)]
    b, _, _ = train(network, fresh, None)
    c, _, _ = train(network, copies(rezipped), None)
    assert same_parameters(b, c)
    assert pairs.find(fresh) is not None
    old_x = fresh[0][0]
    fresh[0][0] = old_x + 1.0                 # a list pair can change: its new x is new
    assert pairs.find(fresh) is None
    assert pairs.find([[old_x, fresh[0][1]]] + fresh[1:]) is not None


def test_pairs_that_unpack_but_cannot_be_indexed_train_and_are_not_remembered():
    rs = np.random.RandomState(7)
    arrays = [(rs.rand(6, 1), mnist_loader.vectorized_result(i % 10)) for i in range(12)]

    class Pair(object):                       # unpacks as (x, y), has no [0]
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __iter__(self):
            return iter((self.x, self.y))

    odd = [Pair(x, y) for x, y in arrays]
    assert pairs.item_ids(odd) is None
    nets = []
    for data in (odd, [(x, y) for x, y in arrays]):
        random.seed(1)
        np.random.seed(1)
        nets.append(network.Network([6, 4, 10]))
        with contextlib.redirect_stdout(io.StringIO()):
            nets[-1].SGD(data, 2, 3, 1.0)
    assert same_parameters(*nets)
    assert pairs.find(odd) is None
