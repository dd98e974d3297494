"""Default ``fit`` (threads=None) against fixed thread counts, side by side, interleaved.

Issue 13: ``threads=None`` must not lose to the best fixed thread count by more than 10 %.
On the real Fashion-MNIST (the first N training images, /255), for W1 [784,30,10] m=10,
W3 [784,100,10] m=100 and W5 [784,1000,10] m=100: one fit epoch with every default (monitor=True) under threads=None,
1 and all threads, in rotating order, R rounds; prints the median and best seconds of each
and the default's ratio to the best fixed count, twice: as the ratio of the medians, and as the
median over rounds of each round's own ratio (default ÷ the faster fixed count of the same
round).  The second is the one to read on a VM whose speed drifts: a round's three epochs run
within a second of one another, so a slow spell slows all three.  The load average is printed
before and after.

    python profiles/default_threads.py [--n 20000] [--rounds 7]
"""

import argparse
import os
import statistics
import time

import numba
import numpy as np

import loopnet
from loopnet import datafiles

WORKLOADS = {"W1": ([784, 30, 10], 10), "W3": ([784, 100, 10], 100),
             "W5": ([784, 1000, 10], 100)}


def epoch_seconds(sizes, m, X, y, threads):
    net = loopnet.Net(sizes, seed=0)
    start = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=m, eta=0.1, threads=threads)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    ds = datafiles.load_dataset("fashion-mnist")
    X, y = np.ascontiguousarray(ds.X_train[:args.n]), ds.y_train[:args.n]
    loopnet.warmup()
    print(f"load before: {os.getloadavg()}; numba threads {numba.get_num_threads()}; n={args.n}")
    choices = [None] + sorted({1, numba.get_num_threads()})
    for name, (sizes, m) in WORKLOADS.items():
        times = {c: [] for c in choices}
        epoch_seconds(sizes, m, X[:2000], y[:2000], None)       # first-touch
        for r in range(args.rounds):
            k = r % len(choices)
            for c in choices[k:] + choices[:k]:                   # rotate the order
                times[c].append(epoch_seconds(sizes, m, X, y, c))
        fixed = choices[1:]
        best_fixed = min(statistics.median(times[c]) for c in fixed)
        paired = [times[None][r] / min(times[c][r] for c in fixed) for r in range(args.rounds)]
        for c in choices:
            print(f"{name} threads={str(c):4s} median {statistics.median(times[c]):.4f} s  "
                  f"best {min(times[c]):.4f} s  all {' '.join(f'{t:.3f}' for t in times[c])}")
        print(f"{name} default / best fixed (medians): "
              f"{statistics.median(times[None]) / best_fixed:.3f}; "
              f"median of the rounds' own ratios: {statistics.median(paired):.3f} "
              f"(rounds {' '.join(f'{q:.2f}' for q in paired)})")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
