"""loopnet.checks: the NaN scan remembers big arrays it has passed."""

import gc

import numpy as np
import pytest

import loopnet
from loopnet import checks, training


def big(rows=2048, cols=64):
    return np.random.default_rng(0).random((rows, cols))     # 1 MiB of float64


def test_a_big_checked_array_is_not_scanned_again(monkeypatch):
    X = big()
    checks.check_finite(X, "X")
    calls, isfinite = [], np.isfinite
    monkeypatch.setattr(checks.np, "isfinite", lambda *a: calls.append(1) or isfinite(*a))
    checks.check_finite(X, "X")
    assert calls == []                                   # remembered
    checks.check_finite(X[1:], "X")                       # another object: scanned
    checks.check_finite(X.copy(), "X")
    assert len(calls) == 2


def test_nan_is_caught_in_any_array_not_yet_checked():
    X = big()
    checks.check_finite(X, "X")
    Y = X.copy()
    Y[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first in row 7\)"):
        checks.check_finite(Y, "X")
    assert not checks._was_checked(Y)
    small = np.ones((3, 3))
    checks.check_finite(small, "X")
    assert not checks._was_checked(small)                 # below REMEMBER_BYTES: always scanned


def test_the_memory_forgets_an_array_when_it_is_freed():
    X = big()
    checks.check_finite(X, "X")
    key = id(X)
    assert key in checks._checked
    del X
    gc.collect()
    assert key not in checks._checked


def test_a_nan_written_after_the_check_still_stops_training():
    X = big(2048, 64)
    y = np.arange(2048) % 3
    net = loopnet.Net([64, 5, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=64, eta=0.1, monitor=False)
    X[100, 5] = np.nan
    with pytest.raises(training.DivergenceError):
        net.fit(X, y, epochs=1, batch_size=64, eta=0.1, monitor=False)
