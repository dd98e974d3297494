"""The per-example view (issue 17), side by side in one run: what clipping, DP-SGD and the
per-example gradient norms cost next to a plain epoch.

``python profiles/per_example.py [--examples N] [--repeats R] [--scenarios w1,w2,w3] [--no-opacus]``

For each scenario (sizes, mini-batch m, eta of _scenarios.SCENARIOS), on N Fashion-MNIST
training images (random inputs when the files are missing), interleaved, R rounds,
the best round kept for each:

* plain: ``net.fit(X, y, epochs=1)``, one epoch of mini-batch SGD;
* norms in training: ``fit(..., record_norms=True)``, a plain epoch that also records every
  ‖∇C_x‖ from its own pass (``net.example_norms``); its cost is its excess over plain;
* norms pass: ``net.per_example_gradient_norms(X, y)``, ‖∇C_x‖ of all N examples by a
  separate forward and backward pass without the gradient sums, as a share of the plain epoch;
* clipped: ``fit(..., clip_norm=1)``;
* DP-SGD: ``fit(..., clip_norm=1, noise_multiplier=1.1)``: clipping, noise on every
  parameter every step, and ε from the accountant after the epoch (all inside the timing);
* (accountant): the ε computation alone, included in the DP-SGD epoch (once per epoch);
* Opacus (when installed): the same network and DP-SGD epoch in PyTorch with Opacus'
  per-sample gradients, same threads.

Targets (issue 17): norms ≤ 10 % of a plain epoch (norms in training ≤ 1.10×, or the separate
pass ≤ 0.10×); a DP-SGD epoch ≤ 1.3× a plain one.
Every network and epoch starts from the same weights.  The machine's load is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _scenarios import FASHION_DIR, SCENARIOS  # noqa: E402

import loopnet  # noqa: E402
from loopnet import privacy  # noqa: E402


def load(n):
    """(X, y): n Fashion-MNIST training images scaled to [0, 1], or random ones."""
    try:
        from loopnet.idx import read_idx
        X = read_idx(next(FASHION_DIR.glob("train-images*")))[:n]
        y = read_idx(next(FASHION_DIR.glob("train-labels*")))[:n]
        return X.reshape(len(X), -1).astype(np.float64) / 255.0, y.astype(np.int64), "fashion-mnist"
    except Exception:  # noqa: BLE001 - any failure: fall back to random data
        rng = np.random.default_rng(0)
        return rng.random((n, 784)), rng.integers(0, 10, n), "random"


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cases(sc, X, y, start, opacus=True):
    """name -> a call that runs it from the weights ``start``."""
    def fit(**kw):
        def run():
            net = start.copy()
            net.fit(X, y, epochs=1, batch_size=sc.m, eta=sc.eta, monitor=False, **kw)
        return run
    out = {"plain": fit(), "norms in training": fit(record_norms=True),
           "norms pass": lambda: start.per_example_gradient_norms(X, y),
           "clipped": fit(clip_norm=1.0),
           "DP-SGD": fit(clip_norm=1.0, noise_multiplier=1.1, delta=1e-5),
           "accountant": lambda: privacy.epsilon(1.1, sc.m / len(X), -(-len(X) // sc.m), 1e-5)}
    opacus_epoch = opacus_case(sc, X, y) if opacus else None
    if opacus_epoch is not None:
        out["Opacus DP-SGD"] = opacus_epoch
    return out


def opacus_case(sc, X, y):
    """A DP-SGD epoch of the same network in PyTorch + Opacus, or None when not installed."""
    try:
        import torch
        from opacus import PrivacyEngine
    except Exception:  # noqa: BLE001
        return None
    torch.set_num_threads(numba.get_num_threads())
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y)

    def run():
        layers = []
        for a, b in zip(sc.sizes[:-1], sc.sizes[1:]):
            layers += [torch.nn.Linear(a, b).double(), torch.nn.Sigmoid()]
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=sc.eta)
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xt, yt),
                                           batch_size=sc.m, shuffle=True)
        model, opt, data = PrivacyEngine().make_private(
            module=model, optimizer=opt, data_loader=data, noise_multiplier=1.1,
            max_grad_norm=1.0, poisson_sampling=False)
        eye = torch.eye(sc.sizes[-1], dtype=torch.float64)
        for xb, yb in data:
            opt.zero_grad()
            loss = 0.5 * ((model(xb) - eye[yb]) ** 2).sum(dim=1).mean()
            loss.backward()
            opt.step()
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scenarios", default="w1,w2,w3")
    p.add_argument("--no-opacus", action="store_true",
                   help="leave Opacus out (its epochs take most of the run's time)")
    args = p.parse_args(argv)
    X, y, source = load(args.examples)
    loopnet.warmup(rules=True, moments=True)    # the one engine every run here then uses
    print(f"per-example view: {len(X)} {source} examples, best of {args.repeats} interleaved "
          f"rounds; NUMBA_NUM_THREADS={numba.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'scenario':<26} {'plain s':>8} {'norms in train':>14} {'norms pass':>14} "
          f"{'clipped':>14} {'DP-SGD':>14} {'(accountant)':>14} {'Opacus DP':>14}")
    rows = {}
    for key in args.scenarios.split(","):
        sc = SCENARIOS[key]
        start = loopnet.Net(sc.sizes, activation=sc.activation, output=sc.output,
                            cost=sc.cost, seed=0)
        calls = cases(sc, X, y, start, opacus=not args.no_opacus)
        for call in calls.values():      # compile and warm every path once
            call()
        best = {name: np.inf for name in calls}
        for _ in range(args.repeats):
            for name, call in calls.items():
                best[name] = min(best[name], timed(call))
        plain = best["plain"]
        cell = {k: f"{v:6.3f}s {v / plain:5.2f}x" for k, v in best.items()}
        print(f"{sc.title:<26} {plain:8.3f} {cell['norms in training']:>14} "
              f"{cell['norms pass']:>14} {cell['clipped']:>14} "
              f"{cell['DP-SGD']:>14} {cell['accountant']:>14} "
              f"{cell.get('Opacus DP-SGD', 'not installed'):>14}")
        rows[key] = best
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print("targets: norms in training <= 1.10x plain (or norms pass <= 0.10x); "
          "DP-SGD <= 1.30x plain")
    return rows


if __name__ == "__main__":
    main()
