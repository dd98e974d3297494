"""Training cases shared by the MPI worker (run under mpiexec) and tests/test_distributed.py.

The worker is launched as ``mpiexec -n R python -m mpi4py tests/_mpi_cases.py OUTDIR [options]``;
every case trains a seeded net with ``loopnet.distributed.fit(..., comm=COMM_WORLD)``, and
rank 0 writes the parameters, histories and per-rank fingerprints to OUTDIR/result.npz and
OUTDIR/result.json.  The test then runs the same case in one process with ``comm=None,
ranks=R`` (the same R-piece decomposition) and compares.  Several cases share one launch
because MPI + Numba start-up costs about a second.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

SIZES = [64, 12, 10]
N_TRAIN = 203  # not a multiple of the batch size or of 2 or 3: uneven pieces and a short last batch
N_VAL = 61

# name -> (net keywords, fit keywords, data kind).  Each case exercises a different path.
CASES = {
    "det_sgd": (dict(), dict(deterministic=True, epochs=3, batch_size=10, eta=3.0), "labels"),
    "allreduce_sgd": (dict(), dict(deterministic=False, epochs=3, batch_size=10, eta=3.0), "labels"),
    "det_xent_momentum_l2": (
        dict(cost="cross_entropy"),
        dict(deterministic=True, epochs=3, batch_size=7, eta=0.5, lmbda=2.0, momentum=0.5),
        "onehot",
    ),
    "allreduce_adam_softmax_val": (
        dict(output="softmax", cost="log_likelihood", activation="tanh"),
        dict(deterministic=False, epochs=2, batch_size=16, eta=0.01, optimizer="adam", validation="yes"),
        "labels",
    ),
    "det_data_partition": (dict(), dict(deterministic=True, partition="data", epochs=3, batch_size=10, eta=3.0), "labels"),
    "det_idx_memmap": (dict(), dict(deterministic=True, partition="data", epochs=2, batch_size=9, eta=3.0), "idx"),
    "det_idx_memmap_batch": (dict(), dict(deterministic=True, epochs=2, batch_size=9, eta=3.0), "idx"),
    # every rank builds its net with a different seed: rank 0's parameters and generator must win
    "det_seed_per_rank": (dict(seed_per_rank=True), dict(deterministic=True, epochs=2, batch_size=10, eta=3.0), "labels"),
}

SEED = 1234
CLI_ARGS = ["--epochs", "2", "--limit", "300", "--seed", "3"]


def load_data(kind, idx_dir=None):
    """(X, Y, validation_data) for a case; 'idx' reads the IDX files the test wrote to idx_dir."""
    import loopnet

    X, y = loopnet.data.load_digits()
    X, y = X[: N_TRAIN + N_VAL], y[: N_TRAIN + N_VAL]
    Xt, yt, Xv, yv = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]
    if kind == "onehot":
        return Xt, loopnet.data.one_hot(yt, 10), (Xv, yv)
    if kind == "idx":
        from loopnet import distributed

        Xi = distributed.open_idx(os.path.join(idx_dir, "images-idx3-ubyte"), divide_by=16)
        Yi = distributed.open_idx(os.path.join(idx_dir, "labels-idx1-ubyte"))
        return Xi, Yi, (Xv, yv)
    return Xt, yt, (Xv, yv)


def write_idx_files(directory):
    """The first N_TRAIN digits as IDX files: uint8 images 8x8 (values 0..16) and uint8 labels."""
    import loopnet

    X, y = loopnet.data.load_digits()
    img = np.rint(X[:N_TRAIN] * 16).astype(np.uint8).reshape(-1, 8, 8)
    with open(os.path.join(directory, "images-idx3-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + np.array(img.shape, dtype=">i4").tobytes() + img.tobytes())
    with open(os.path.join(directory, "labels-idx1-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 0x08, 1]) + np.array([N_TRAIN], dtype=">i4").tobytes() + y[:N_TRAIN].astype(np.uint8).tobytes())


def idx_equivalent(X):
    """What open_idx(..., divide_by=16) returns, as an in-memory array (for the one-process run)."""
    return np.rint(X * 16).astype(np.uint8).astype(np.float64) / 16


def run_case(name, comm=None, ranks=None, idx_dir=None, rank=0):
    """Train case ``name``; comm=None emulates ``ranks`` ranks in this process."""
    import loopnet
    from loopnet import distributed

    net_kw, fit_kw, kind = CASES[name]
    net_kw, fit_kw = dict(net_kw), dict(fit_kw)
    seed = SEED + (rank if net_kw.pop("seed_per_rank", False) else 0)
    X, Y, val = load_data(kind, idx_dir)
    if fit_kw.pop("validation", None):
        fit_kw["validation_data"] = val
    net = loopnet.Net(SIZES, seed=seed, **net_kw)
    distributed.fit(net, X, Y, comm=comm, ranks=ranks, **fit_kw)
    return net


def run_net_fit(name, idx_dir=None):
    """Case ``name`` trained by plain ``Net.fit`` (partition="batch" cases)."""
    import loopnet

    net_kw, fit_kw, kind = CASES[name]
    net_kw, fit_kw = dict(net_kw), dict(fit_kw)
    net_kw.pop("seed_per_rank", None)
    fit_kw.pop("deterministic")
    fit_kw.pop("partition", None)
    X, Y, val = load_data(kind, idx_dir)
    if fit_kw.pop("validation", None):
        fit_kw["validation_data"] = val
    return loopnet.Net(SIZES, seed=SEED, **net_kw).fit(np.asarray(X), np.asarray(Y), **fit_kw)


def fingerprint(net):
    return hashlib.sha256(np.ascontiguousarray(net.params).tobytes()).hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--fail-rank", type=int, default=None,
                    help="this rank raises inside its 3rd gradient_sum call (failure test)")
    ap.add_argument("--no-abort", action="store_true", help="abort_on_error=False: rely on python -m mpi4py")
    ap.add_argument("--cli", action="store_true", help="also run `loopnet train --distributed` (CLI_ARGS)")
    args = ap.parse_args(argv)

    from mpi4py import MPI
    import loopnet
    from loopnet import distributed

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

    if args.fail_rank is not None:
        net = loopnet.Net(SIZES, seed=SEED)
        if rank == args.fail_rank:
            calls = {"n": 0}

            def failing(inner):
                def call(*args):
                    calls["n"] += 1
                    if calls["n"] == 3:
                        raise RuntimeError(f"deliberate failure on rank {rank}")
                    return inner(*args)
                return call

            # the step's gradient (with the training-pass monitor, the default) and without
            net._gradient_sum_and_pass = failing(net._gradient_sum_and_pass)
            net.gradient_sum = failing(net.gradient_sum)
        X, y, _ = load_data("labels")
        distributed.fit(net, X, y, comm=comm, epochs=50, batch_size=10, eta=3.0,
                        abort_on_error=not args.no_abort)
        with open(os.path.join(args.outdir, f"finished-{rank}"), "w") as f:  # must never happen
            f.write("finished\n")
        return 0

    params, meta = {}, {}
    for name in args.cases.split(","):
        net = run_case(name, comm=comm, idx_dir=args.outdir, rank=rank)
        prints = comm.gather(fingerprint(net), root=0)
        if rank == 0:
            params[name] = net.params.copy()
            meta[name] = {"fingerprints": prints, "history": net.history, "epoch": net.epoch,
                          "rng_state": net.rng.bit_generator.state}
    if args.cli:
        from loopnet import cli

        rc = cli.main(["train", "--distributed", "--deterministic", *CLI_ARGS,
                       "--save", os.path.join(args.outdir, "cli.npz")])
        if rc != 0:
            raise SystemExit(f"loopnet train --distributed exited {rc} on rank {rank}")
    if rank == 0:
        np.savez(os.path.join(args.outdir, "result.npz"), **params)
        with open(os.path.join(args.outdir, "result.json"), "w") as f:
            json.dump({"size": comm.Get_size(), "cases": meta}, f, default=float)
    comm.Barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
