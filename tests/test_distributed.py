"""Data-parallel training over MPI (loopnet.distributed).

The MPI tests launch ``mpiexec -n R python -m mpi4py tests/_mpi_cases.py OUTDIR`` in a
subprocess (own process group, timeout, then kill of the whole group), run several training
cases in that one launch, and compare rank 0's parameters with the same cases run in this
process with ``comm=None, ranks=R`` - the same R-piece decomposition, computed piece after
piece:

* ``deterministic=True``: byte-equal;
* ``deterministic=False`` (Allreduce): within 1e-12;
* every rank ends with the same parameters (SHA-256 of the flat buffer, gathered to rank 0).

Without mpi4py or mpiexec those tests are skipped, naming what to install; the one-process
tests of the decomposition and of the IDX memory map always run.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import loopnet
from loopnet import distributed

sys.path.insert(0, os.path.dirname(__file__))
import _mpi_cases as cases  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "_mpi_cases.py")
TIMEOUT = float(os.environ.get("LOOPNET_MPI_TIMEOUT", "600"))  # cold Numba compile on a busy 2-core box


def _mpiexec():
    """mpiexec next to this Python (the `mpi` extra's MPICH wheel) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def _skip_reason():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'loopnet[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec next to the Python executable or on PATH (pip install 'loopnet[mpi]' installs MPICH's)"
    return None


needs_mpi = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def launch(n, args, *, mpi4py_runner=True, timeout=TIMEOUT):
    """Run the worker on n ranks; returns (returncode, stdout, stderr, seconds).

    The launch gets its own process group: on timeout the whole group (mpiexec, its proxy and
    every rank) is killed and the test fails.  After it exits, the group must be empty.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("NUMBA_NUM_THREADS", "1")  # n ranks x threads on a small machine; results don't depend on it
    if n > (os.cpu_count() or 1):
        env.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")  # MPICH: yield instead of spinning when oversubscribed
    cmd = [_mpiexec(), "-n", str(n), sys.executable]
    if mpi4py_runner:
        cmd += ["-m", "mpi4py"]
    cmd += [WORKER, *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for {timeout:.0f} s and was killed\nstdout:\n{out}\nstderr:\n{err}")
    seconds = time.monotonic() - t0
    _assert_group_gone(proc.pid)
    return proc.returncode, out, err, seconds


def _assert_group_gone(pgid, wait=10.0):
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # pragma: no cover
            return
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            pytest.fail(f"processes of the launch (group {pgid}) were still alive {wait:.0f} s after mpiexec exited")
        time.sleep(0.05)


def _run_launch(tmp_path_factory, n, names, extra=()):
    out = tmp_path_factory.mktemp(f"mpi{n}")
    cases.write_idx_files(str(out))
    rc, so, se, sec = launch(n, [str(out), "--cases", ",".join(names), *extra])
    assert rc == 0, f"mpiexec -n {n} failed (rc={rc}) after {sec:.1f} s\nstdout:\n{so}\nstderr:\n{se}"
    with open(out / "result.json") as f:
        meta = json.load(f)
    params = dict(np.load(out / "result.npz"))
    return {"dir": str(out), "meta": meta, "params": params, "stdout": so, "stderr": se}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return _run_launch(tmp_path_factory, 2, list(cases.CASES), ["--cli"])


THREE_RANK_CASES = ["det_sgd", "allreduce_sgd", "det_data_partition", "det_idx_memmap_batch"]


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory):
    return _run_launch(tmp_path_factory, 3, THREE_RANK_CASES)


def _check_against_serial(result, name, n):
    meta = result["meta"]
    assert meta["size"] == n
    got = result["params"][name]
    case = meta["cases"][name]
    assert len(set(case["fingerprints"])) == 1, f"{name}: ranks ended with different parameters"
    want = cases.run_case(name, comm=None, ranks=n, idx_dir=result["dir"])
    deterministic = cases.CASES[name][1]["deterministic"]
    if deterministic:
        assert got.tobytes() == want.params.tobytes(), (
            f"{name}: {n} ranks differ from the one-process emulation by "
            f"{np.max(np.abs(got - want.params)):.3g}")
        assert case["rng_state"] == want.rng.bit_generator.state
    else:
        np.testing.assert_allclose(got, want.params, rtol=0, atol=1e-12)
    assert case["epoch"] == want.epoch
    if cases.CASES[name][1].get("partition", "batch") == "batch":
        # ... and to plain single-process Net.fit, to rounding (k partial sums instead of one)
        plain = cases.run_net_fit(name, idx_dir=result["dir"])
        np.testing.assert_allclose(got, plain.params, rtol=0, atol=1e-12)
    assert [h["epoch"] for h in case["history"]] == [h["epoch"] for h in want.history]
    for h_mpi, h_one in zip(case["history"], want.history):
        assert h_mpi["ranks"] == n
        for key in ("cost", "accuracy", "val_cost", "val_accuracy"):
            assert (key in h_mpi) == (key in h_one)
            if key in h_one:
                assert h_mpi[key] == pytest.approx(h_one[key], rel=1e-12, abs=1e-12)


@needs_mpi
@pytest.mark.parametrize("name", list(cases.CASES))
def test_two_ranks_match_one_process_decomposition(two_ranks, name):
    _check_against_serial(two_ranks, name, 2)


@needs_mpi
@pytest.mark.parametrize("name", THREE_RANK_CASES)
def test_three_ranks_match_one_process_decomposition(three_ranks, name):
    _check_against_serial(three_ranks, name, 3)


@needs_mpi
def test_only_rank_zero_writes(two_ranks):
    files = sorted(os.listdir(two_ranks["dir"]))
    assert files == ["cli.npz", "images-idx3-ubyte", "labels-idx1-ubyte", "result.json", "result.npz"]


@needs_mpi
def test_cli_train_distributed(two_ranks, tmp_path):
    """`loopnet train --distributed --deterministic` on 2 ranks: rank 0 alone prints; the model is Net.fit's."""
    from loopnet import cli, io

    out = two_ranks["stdout"]
    assert out.count("loopnet: done:") == 1 and out.count("epoch 2/2") == 1, out
    assert "split across 2 MPI ranks" in out
    assert cli.main(["train", *cases.CLI_ARGS, "--save", str(tmp_path / "one.npz"), "-q"]) == 0
    got, want = io.load(os.path.join(two_ranks["dir"], "cli.npz")), io.load(str(tmp_path / "one.npz"))
    assert got.epoch == want.epoch == 2
    np.testing.assert_allclose(got.params, want.params, rtol=0, atol=1e-12)


def test_cli_deterministic_needs_distributed(capsys):
    from loopnet import cli

    assert cli.main(["train", "--deterministic", "--epochs", "1"]) == 2
    assert "--deterministic needs --distributed" in capsys.readouterr().err


def test_cli_per_example_options_are_refused_with_distributed(capsys):
    from loopnet import cli

    assert cli.main(["train", "--distributed", "--dropout", "0.2", "--clip-norm", "1",
                     "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--dropout and --clip-norm cannot be used with --distributed" in err
    assert err.count("\n") == 1


@needs_mpi
@pytest.mark.parametrize("runner", ["python -m mpi4py", "abort_on_error"])
def test_one_failing_rank_stops_all_ranks(tmp_path, runner):
    """Rank 1 raises in its 3rd step while rank 0 waits in the collective: everything must exit non-zero, fast.

    'python -m mpi4py' relies on mpi4py's runner (abort_on_error=False); 'abort_on_error' runs
    the plain script and relies on loopnet.distributed calling MPI_Abort itself.
    """
    if runner == "python -m mpi4py":
        rc, so, se, sec = launch(2, [str(tmp_path), "--fail-rank", "1", "--no-abort"], mpi4py_runner=True, timeout=300)
    else:
        rc, so, se, sec = launch(2, [str(tmp_path), "--fail-rank", "1"], mpi4py_runner=False, timeout=300)
    assert rc != 0, f"mpiexec exited 0 although rank 1 raised\nstdout:\n{so}\nstderr:\n{se}"
    assert sec < 120, f"the launch took {sec:.0f} s to fail: something waited for the dead rank"
    assert "deliberate failure on rank 1" in se
    assert not any(p.startswith("finished") for p in os.listdir(tmp_path)), "a rank ran to completion"


# ------------------------------------------------------------------ one-process tests (always run)


def test_split_bounds():
    for m in range(0, 23):
        for size in range(1, 6):
            b = distributed.split_bounds(m, size)
            assert b.tolist() == [(m * r) // size for r in range(size + 1)]
            assert b[0] == 0 and b[-1] == m and np.ptp(np.diff(b)) <= 1
    assert distributed.split_bounds(10, 3).tolist() == [0, 3, 6, 10]


STEP_TAKES_M = "m" in __import__("inspect").signature(loopnet.Net([2, 1]).step).parameters


def _same(a, b, exact):
    if exact:
        assert a.tobytes() == b.tobytes()
    else:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


def test_one_rank_is_net_fit():
    """Same permutation, same in-order gradient sum, same update (bit for bit when Net.step takes m)."""
    X, y, (Xv, yv) = cases.load_data("labels")
    for kw in (dict(eta=3.0, lmbda=0.5, momentum=0.3), dict(eta=0.01, optimizer="adam", lmbda=1.0)):
        a = loopnet.Net(cases.SIZES, seed=7).fit(X, y, epochs=3, batch_size=10, validation_data=(Xv, yv),
                                                **kw)
        b = loopnet.Net(cases.SIZES, seed=7)
        distributed.fit(b, X, y, epochs=3, batch_size=10, validation_data=(Xv, yv), **kw)
        # the default monitor: cost and accuracy from the training pass, as Net.fit's
        _same(b.params, a.params, STEP_TAKES_M)
        assert b.rng.bit_generator.state == a.rng.bit_generator.state
        for key in ("velocity", "m", "v"):
            _same(b.optimizer_state[key], a.optimizer_state[key], STEP_TAKES_M)
        assert [h["epoch"] for h in b.history] == [1, 2, 3]
        for hb, ha in zip(b.history, a.history):
            assert set(ha) - {"seconds", "examples_per_s"} <= set(hb)
            for key in ("cost", "accuracy", "val_cost", "val_accuracy"):
                assert hb[key] == pytest.approx(ha[key], rel=1e-12)


def test_any_rank_count_matches_net_fit_to_rounding():
    """k partial sums instead of one: only the summation order differs."""
    X, y, _ = cases.load_data("labels")
    a = loopnet.Net(cases.SIZES, seed=7)
    a.fit(X, y, epochs=3, batch_size=10, eta=3.0, lmbda=0.5, momentum=0.3)
    for ranks in (2, 3, 4, 10, 11):  # 11 > batch_size: some ranks get empty pieces
        b = loopnet.Net(cases.SIZES, seed=7)
        distributed.fit(b, X, y, ranks=ranks, epochs=3, batch_size=10, eta=3.0, lmbda=0.5, momentum=0.3)
        np.testing.assert_allclose(b.params, a.params, rtol=0, atol=1e-12)
        assert b.rng.bit_generator.state == a.rng.bit_generator.state
        assert b.epoch == a.epoch == 3
        for hb, ha in zip(b.history, a.history):
            assert hb["cost"] == pytest.approx(ha["cost"], rel=1e-12)
            assert hb["accuracy"] == ha["accuracy"]


def test_fixed_order_like_net_fit():
    X, y, _ = cases.load_data("labels")
    order = np.random.default_rng(9).permutation(len(X))
    a = loopnet.Net(cases.SIZES, seed=2).fit(X, y, epochs=2, eta=3.0, order=order, monitor=False)
    b = loopnet.Net(cases.SIZES, seed=2)
    distributed.fit(b, X, y, epochs=2, eta=3.0, order=order, monitor=False)
    _same(b.params, a.params, STEP_TAKES_M)
    c = loopnet.Net(cases.SIZES, seed=2)
    distributed.fit(c, X, y, ranks=3, epochs=2, eta=3.0, order=order, monitor=False)
    np.testing.assert_allclose(c.params, a.params, rtol=0, atol=1e-12)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_tol_stops_like_net_fit():
    X, y, _ = cases.load_data("labels")
    a = loopnet.Net(cases.SIZES, seed=2).fit(X, y, epochs=6, eta=3.0, tol=1e9)
    b = loopnet.Net(cases.SIZES, seed=2)
    distributed.fit(b, X, y, ranks=2, deterministic=True, epochs=6, eta=3.0, tol=1e9)
    assert a.epoch == b.epoch == 1
    assert b.history[0]["grad_norm"] == pytest.approx(a.history[0]["grad_norm"], rel=1e-12)


def test_emulation_is_reproducible_and_rank_count_changes_only_rounding():
    X, y, _ = cases.load_data("labels")
    runs = {}
    for ranks in (2, 3, 2):
        net = loopnet.Net(cases.SIZES, seed=3)
        distributed.fit(net, X, y, ranks=ranks, deterministic=True, epochs=2, batch_size=8, eta=2.0, monitor=False)
        if ranks in runs:
            assert net.params.tobytes() == runs[ranks].tobytes()
        runs[ranks] = net.params.copy()
    np.testing.assert_allclose(runs[2], runs[3], rtol=0, atol=1e-12)


def test_training_pass_monitor_needs_no_extra_pass():
    """monitor=True (the default): the epoch's cost and accuracy are those of the forward
    passes that computed the gradients, the same as Net.fit's; the exact pass never runs."""
    X, y, (Xv, yv) = cases.load_data("labels")
    a = loopnet.Net(cases.SIZES, seed=5).fit(X, y, epochs=2, batch_size=10, eta=3.0, lmbda=1.0)
    b = loopnet.Net(cases.SIZES, seed=5)
    calls = []
    original = distributed._RankSteps.measure
    distributed._RankSteps.measure = lambda self, net, which: calls.append(which) or \
        original(self, net, which)
    try:
        distributed.fit(b, X, y, ranks=3, epochs=2, batch_size=10, eta=3.0, lmbda=1.0,
                        validation_data=(Xv, yv))
    finally:
        distributed._RankSteps.measure = original
    assert "train" not in calls and calls == ["val", "val"]
    for hb, ha in zip(b.history, a.history):
        assert hb["cost"] == pytest.approx(ha["cost"], rel=1e-12)
        assert hb["accuracy"] == ha["accuracy"]
    # and it is not the cost after the epoch (what monitor="exact" gives)
    assert b.history[-1]["cost"] != pytest.approx(b.cost(X, y, lmbda=1.0), rel=1e-6)


def test_model_selection_and_schedule_like_net_fit(capsys):
    """patience, restore_best, lr_schedule and verbose, as Net.fit takes them."""
    X, y, (Xv, yv) = cases.load_data("labels")
    Xv, yv = Xv + 0.5, (yv + 1) % 3           # held-out data that training makes worse
    kw = dict(epochs=12, batch_size=10, eta=3.0, validation_data=(Xv, yv), patience=2,
              restore_best=True, lr_schedule=lambda eta, record: eta * 0.5)
    a = loopnet.Net(cases.SIZES, seed=4).fit(X, y, **kw)
    b = loopnet.Net(cases.SIZES, seed=4)
    distributed.fit(b, X, y, verbose=1, **kw)
    printed = capsys.readouterr().err          # (lines on stderr, as Net.fit's)
    assert a.epoch == b.epoch < 12 and a.best_epoch == b.best_epoch is not None
    _same(b.params, a.params, STEP_TAKES_M)
    assert printed.count("\n") >= b.epoch and f"epoch {b.epoch:2d}/12" in printed
    c = loopnet.Net(cases.SIZES, seed=4)
    distributed.fit(c, X, y, ranks=3, **kw)
    assert c.epoch == a.epoch and c.best_epoch == a.best_epoch
    np.testing.assert_allclose(c.params, a.params, rtol=0, atol=1e-12)


def test_dropout_is_refused_not_ignored():
    X, y, _ = cases.load_data("labels")
    net = loopnet.Net(cases.SIZES, seed=4, dropout=0.2)
    before = net.params.copy()
    with pytest.raises(ValueError, match="dropout"):
        distributed.fit(net, X, y, ranks=2, epochs=1)
    assert net.params.tobytes() == before.tobytes() and net.epoch == 0


def test_history_monitor_matches_net_methods():
    X, y, (Xv, yv) = cases.load_data("labels")
    net = loopnet.Net(cases.SIZES, seed=5)
    distributed.fit(net, X, y, ranks=3, epochs=1, batch_size=10, eta=3.0, lmbda=1.0, validation_data=(Xv, yv),
                    monitor="exact")
    rec = net.history[-1]
    assert rec["cost"] == pytest.approx(net.cost(X, y, lmbda=1.0), rel=1e-12)
    assert rec["accuracy"] == pytest.approx(net.accuracy(X, y), rel=1e-12)
    assert rec["val_cost"] == pytest.approx(net.cost(Xv, yv), rel=1e-12)
    assert rec["val_accuracy"] == pytest.approx(net.accuracy(Xv, yv), rel=1e-12)
    assert rec["ranks"] == 3 and rec["epoch"] == 1


def test_callback_stops_early():
    X, y, _ = cases.load_data("labels")
    net = loopnet.Net(cases.SIZES, seed=5)
    seen = []
    distributed.fit(net, X, y, ranks=2, epochs=5, batch_size=10, eta=3.0,
                    callback=lambda n, r: seen.append(r["epoch"]) or r["epoch"] == 2)
    assert seen == [1, 2] and net.epoch == 2 and len(net.history) == 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point (pure-Python mode)
def test_divergence_rolls_back_the_epoch():
    X, y, _ = cases.load_data("labels")
    net = loopnet.Net(cases.SIZES, seed=5, activation="relu", output="identity", cost="mse")
    distributed.fit(net, X, y.astype(float)[:, None].repeat(10, axis=1), ranks=2, epochs=1, batch_size=10, eta=1e-4)
    before = net.params.copy()
    with pytest.raises(loopnet.DivergenceError) as info:
        distributed.fit(net, X, y.astype(float)[:, None].repeat(10, axis=1), ranks=2, epochs=3,
                        batch_size=10, eta=1e9)
    assert info.value.epoch == 2
    assert net.epoch == 1 and net.params.tobytes() == before.tobytes()


def test_idx_memmap_reads_the_same_rows(tmp_path):
    cases.write_idx_files(str(tmp_path))
    X, y, _ = cases.load_data("labels")
    Xi = distributed.open_idx(tmp_path / "images-idx3-ubyte", divide_by=16)
    yi = distributed.open_idx(tmp_path / "labels-idx1-ubyte")
    assert len(Xi) == cases.N_TRAIN and Xi.shape == (cases.N_TRAIN, 64) and Xi.dtype == np.float64
    idx = np.array([5, 0, 200, 5, 17])
    np.testing.assert_array_equal(Xi[idx], cases.idx_equivalent(X)[idx])
    np.testing.assert_array_equal(yi[idx], y[idx])
    assert yi[idx].dtype == np.int64
    # training from the memory map equals training from the same numbers in memory
    a, b = loopnet.Net(cases.SIZES, seed=1), loopnet.Net(cases.SIZES, seed=1)
    distributed.fit(a, Xi, yi, ranks=2, partition="data", deterministic=True, epochs=1, eta=3.0, monitor=False)
    distributed.fit(b, cases.idx_equivalent(X), y, ranks=2, partition="data", deterministic=True, epochs=1, eta=3.0,
                    monitor=False)
    assert a.params.tobytes() == b.params.tobytes()


def test_gz_idx_is_decompressed_once_into_the_cache(tmp_path):
    import gzip

    cases.write_idx_files(str(tmp_path))
    raw = (tmp_path / "labels-idx1-ubyte").read_bytes()
    (tmp_path / "labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    cache = tmp_path / "cache"
    path = distributed.uncompressed(tmp_path / "labels-idx1-ubyte.gz", cache_dir=str(cache))
    assert open(path, "rb").read() == raw
    mtime = os.path.getmtime(path)
    assert distributed.uncompressed(tmp_path / "labels-idx1-ubyte.gz", cache_dir=str(cache)) == path
    assert os.path.getmtime(path) == mtime


def test_bad_arguments():
    X, y, _ = cases.load_data("labels")
    net = loopnet.Net(cases.SIZES, seed=5)
    with pytest.raises(ValueError, match="partition"):
        distributed.fit(net, X, y, partition="rows")
    with pytest.raises(ValueError, match="ranks"):
        distributed.fit(net, X, y, ranks=0)
    with pytest.raises(ValueError, match="rows"):
        distributed.fit(net, X, y[:-1])
    with pytest.raises(ValueError, match="order"):
        distributed.fit(net, X, y, partition="data", order=np.arange(5))
    with pytest.raises(ValueError, match="IDX"):
        distributed.IdxRows(__file__)


def test_mpi4py_is_not_imported_by_the_package():
    code = "import loopnet, loopnet.distributed, sys; sys.exit('mpi4py' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
