"""loopnet.simd's array view: the same view NumPy's reshape gives, in compiled code and with the
JIT off."""

import numpy as np
import pytest

from loopnet._jit import jit
from loopnet.simd import matrix_view


@jit
def view_and_write(buf, start, rows, cols):
    v = matrix_view(buf, start, rows, cols)
    v[rows - 1, cols - 1] = -1.0        # a view: the write lands in buf
    return v.copy(), v.shape[0], v.shape[1], v.strides[0], v.strides[1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("start, rows, cols", [(0, 3, 4), (5, 2, 7), (1, 1, 1)])
def test_matrix_view_is_numpys_reshape_of_the_slice(dtype, start, rows, cols):
    buf = np.arange(30, dtype=dtype)
    want = buf[start:start + rows * cols].reshape((rows, cols)).copy()
    want[rows - 1, cols - 1] = -1.0
    got, n, m, s0, s1 = view_and_write(buf, start, rows, cols)
    assert np.array_equal(got, want)
    assert (n, m) == (rows, cols)
    assert (s0, s1) == (cols * buf.itemsize, buf.itemsize)
    assert buf[start + rows * cols - 1] == -1.0
    assert np.array_equal(np.delete(buf, start + rows * cols - 1),
                          np.delete(np.arange(30, dtype=dtype), start + rows * cols - 1))
