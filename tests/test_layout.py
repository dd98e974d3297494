"""loopnet.layout reads objects' fields from memory: every reading is compared with what
Python and NumPy say of the same objects (their attributes, the independent oracle)."""
import numpy as np
import pytest

from loopnet import layout


def test_this_interpreter_and_numpy_are_read():
    # CPython 3 on a little-endian 64-bit machine with NumPy 1.x or 2.x: the layouts read.
    assert layout.trusted(), "layout's probe failed: the drop-ins fall back to slow copies"


def arrays_of_every_kind():
    M = np.arange(60.0).reshape(12, 5)
    return [M[3], M[5:7], M.T, M[:, 1], M[2:, 1:], np.zeros((4, 1), np.float32),
            np.ones(7, np.int64), np.zeros(0), np.zeros((0, 3)), M[::2], np.asfortranarray(M),
            np.reshape(M[4], (5, 1)), np.array([1.5, 2.5]).astype(">f8"), M[7:8]]


def test_array_fields_say_what_numpy_says():
    arrays = arrays_of_every_kind()
    f = layout.array_fields([id(a) for a in arrays])
    for i, a in enumerate(arrays):
        assert layout.agrees(f, arrays, i)
        assert f.data[i] == a.__array_interface__["data"][0]
        assert (f.dim0[i], f.dim1[i])[:a.ndim] == a.shape and f.ndim[i] == a.ndim
        assert f.base[i] == (0 if a.base is None else id(a.base)) and f.descr[i] == id(a.dtype)
        assert f.c_contiguous[i] == a.flags.c_contiguous


def test_array_fields_refuse_what_is_not_a_plain_array_of_few_dimensions():
    class Sub(np.ndarray):
        pass
    M = np.zeros((3, 4))
    for other in ([M, M.view(Sub)], [M, np.zeros((2, 2, 2))], [np.float64(1)], [M, [1.0]],
                  [np.zeros(())]):
        assert layout.array_fields([id(a) for a in other]) is None
    assert layout.array_fields([id(M)], dims=1) is None
    row = M[0]                                  # (held while its id is read)
    assert layout.array_fields([id(row)], dims=1) is not None


def test_list_and_pair_items_are_the_ids_python_gives():
    xs = [np.zeros(2) for _ in range(50)]
    data = [(x, i) for i, x in enumerate(xs)]
    ids = layout.list_items(data)
    assert ids.tolist() == [id(p) for p in data]
    firsts, seconds = layout.pair_items(ids)
    assert firsts.tolist() == [id(x) for x in xs] and seconds.tolist() == [id(i) for i, _ in
                                                                          enumerate(xs)]
    assert layout.list_items([]).tolist() == [] and layout.list_items((1, 2)) is None
    for not_pairs in ([(1, 2), (1,)], [(1, 2), (1, 2, 3)], [(1, 2), [1, 2]], [(1, 2), "ab"]):
        assert layout.pair_items([id(p) for p in not_pairs]) is None


def test_gather_copies_each_arrays_values():
    rs = np.random.RandomState(0)
    vs = [rs.rand(10, 1) for _ in range(30)] + [rs.rand(10)]
    f = layout.array_fields([id(v) for v in vs])
    assert np.array_equal(layout.gather(f.data, 10, np.float64),
                          np.stack([v.ravel() for v in vs]))
    with pytest.raises(ValueError):
        layout.gather(f.data, 10, np.float32)
