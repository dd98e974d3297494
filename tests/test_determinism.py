"""Seeded training gives the same bytes whatever NUMBA_NUM_THREADS is."""

import hashlib

import pytest

from conftest import run_python

TRAIN = """
import hashlib, numpy as np, loopnet, numba
(X, y), _ = loopnet.data.digits_split()
out = []
for opt, kw, m in (("sgd", {}, 10), ("sgd", {"momentum": 0.5, "lmbda": 1.0}, 7),
                   ("adam", {"eta": 0.01}, 33)):
    net = loopnet.Net([64, 20, 10], seed=3)
    # threads= forces every thread to work (by default small batches use one)
    args = dict(epochs=2, batch_size=m, eta=1.0, threads=numba.get_num_threads())
    args.update(kw)
    net.fit(X, y, optimizer=opt, **args)
    out.append(hashlib.sha256(net.params.tobytes()).hexdigest())
    out.append(hashlib.sha256(net.predict(X).tobytes()).hexdigest())
    g = net.gradient(X, y)[0][0]
    out.append(hashlib.sha256(g.tobytes()).hexdigest())
    # the epoch's cost and accuracy from the training pass: not the sum of per-run sums
    out.append(hashlib.sha256(repr([(r["cost"], r["accuracy"]) for r in net.history])
                              .encode()).hexdigest())
# a first layer wide enough for the outer-product tiles (tiles.outer_block), mini-batches of 40
net = loopnet.Net([64, 300, 10], seed=3)
net.fit(X, y, epochs=1, batch_size=40, eta=1.0, threads=numba.get_num_threads())
out.append(hashlib.sha256(net.params.tobytes()).hexdigest())
out.append(hashlib.sha256(net.predict(X).tobytes()).hexdigest())
# the default threads=None: runs of lengths that follow the chooser's timing
net = loopnet.Net([64, 20, 10], seed=3)
net.fit(X, y, epochs=2, batch_size=5, eta=1.0)
out.append(hashlib.sha256(net.params.tobytes()).hexdigest())
out.append(hashlib.sha256(repr([r["cost"] for r in net.history]).encode()).hexdigest())
print(numba.get_num_threads(), *out)
"""


def test_bit_identical_for_any_thread_count():
    results = {}
    for threads in ("1", "2", "4"):
        line = run_python(TRAIN, env={"NUMBA_NUM_THREADS": threads}).split()
        assert line[0] == threads
        results[threads] = line[1:]
    assert results["1"] == results["2"] == results["4"]
