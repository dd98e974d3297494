"""loopnet.pyrandom against CPython's own random.shuffle: the same permutation and the
same generator state afterwards, bit for bit."""

import random

import numpy as np
import pytest

from loopnet import pyrandom


def python_shuffle(n):
    perm = list(range(n))
    random.shuffle(perm)
    return perm


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 64, 65, 1000, 50000, 2 ** 16 + 3])
@pytest.mark.parametrize("seed", [0, 12345])
def test_shuffled_range_is_random_shuffle_of_range(n, seed):
    random.seed(seed)
    random.random()                  # start mid-block: the position is part of the state
    want = python_shuffle(n)
    after = random.getstate()
    random.seed(seed)
    random.random()
    got = pyrandom.shuffled_range(n)
    assert got.dtype == np.int64 and got.tolist() == want
    assert random.getstate() == after
    assert random.random() == (random.setstate(after) or random.random())


def test_many_calls_cross_many_twists_in_step_with_python():
    random.seed(7)
    want = [python_shuffle(n) for n in (700, 3, 5000, 1, 2000)] + [random.random()]
    random.seed(7)
    got = [pyrandom.shuffled_range(n).tolist() for n in (700, 3, 5000, 1, 2000)]
    assert got + [random.random()] == want


def test_a_replaced_shuffle_is_called(monkeypatch):
    calls = []
    monkeypatch.setattr(random, "shuffle", lambda x: calls.append(len(x)) or x.reverse())
    assert pyrandom.shuffled_range(4).tolist() == [3, 2, 1, 0]
    assert calls == [4]
