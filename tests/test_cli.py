"""The ``loopnet`` command driven in subprocesses, as a user would run it.

Each subprocess pays interpreter start-up and the Numba cache load (~1 s), so the checks
are grouped: one training run feeds several assertions.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import loopnet
from loopnet import io
from loopnet.cli import COMMANDS, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _env(threads="1"):
    """One Numba thread unless told otherwise: results do not depend on the thread count
    (the core guarantees it), and on a shared, busy machine per-mini-batch thread hand-offs
    can make a 2-thread epoch many times slower than a 1-thread one."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("LOOPNET_DEBUG", None)
    if threads is None:
        env.pop("NUMBA_NUM_THREADS", None)
    else:
        env["NUMBA_NUM_THREADS"] = threads
    return env


def loopnet_cmd(*argv, cwd, code=0, timeout=240, threads="1"):
    p = subprocess.run([sys.executable, "-m", "loopnet", *map(str, argv)], cwd=cwd,
                       env=_env(threads), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == code, f"rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr
    return p


def _held_out(stdout):
    return float(re.search(r"held-out accuracy ([\d.]+)%", stdout).group(1))


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k not in ("meta", "digest")}


def _same_weights_and_state(a_path, b_path):
    a, b = _arrays(a_path), _arrays(b_path)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    na, nb = io.load(a_path), io.load(b_path)
    assert na.rng.bit_generator.state == nb.rng.bit_generator.state
    assert na.epoch == nb.epoch


def test_train_without_arguments_reaches_95_percent(tmp_path):
    p = loopnet_cmd("train", cwd=tmp_path, threads=None)      # exactly as a user runs it
    epochs = [l for l in p.stdout.splitlines() if l.startswith("epoch")]
    assert len(epochs) == 30
    assert all(re.search(r"cost [\d.]+ +train +[\d.]+% +held-out +[\d.]+% .* s .* ex/s", l)
               for l in epochs)
    assert _held_out(p.stdout) >= 95.0
    assert os.listdir(tmp_path) == []          # nothing written unless asked


def test_save_load_eval_predict_info_and_resume(tmp_path):
    plot = ["--plot", "c.png"] if HAVE_MPL else []
    loopnet_cmd("train", "--epochs", 3, "--momentum", 0.5, "--eta", 1.0, "--seed", 7,
                "--save", "m.npz", "--checkpoint-every", 1, *plot, cwd=tmp_path)
    if HAVE_MPL:                                                  # --plot: a real PNG
        assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        os.remove(tmp_path / "c.png")
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt.npz", "m.npz"]
    net = io.load(tmp_path / "m.npz")
    assert net.epoch == 3 and len(net.history) == 3
    assert io.load(tmp_path / "m.ckpt.npz").epoch == 2     # last checkpoint before the end

    # eval in a new process == the loaded network evaluated here, to the last bit
    (_, _), (Xt, yt) = loopnet.data.digits_split()
    r = json.loads(loopnet_cmd("eval", "m.npz", "--json", cwd=tmp_path).stdout)
    out = net.predict(Xt)
    assert r["cost"] == net.cost(Xt, yt)
    assert r["accuracy"] == net.accuracy(Xt, yt)
    assert r["correct"] == int((out.argmax(1) == yt).sum()) and r["n"] == 360
    assert np.array(r["confusion"]).sum() == 360

    np.save(tmp_path / "x.npy", Xt[:25])
    loopnet_cmd("predict", "m.npz", "x.npy", "--outputs", "-o", "p.npy", cwd=tmp_path)
    assert np.load(tmp_path / "p.npy").tobytes() == out[:25].tobytes()

    info = json.loads(loopnet_cmd("info", "m.npz", "--json", cwd=tmp_path).stdout)
    assert info["sizes"] == [64, 30, 10] and info["epoch"] == 3
    assert info["parameters"] == 64 * 30 + 30 + 30 * 10 + 10
    assert info["train"]["momentum"] == 0.5 and len(info["history"]) == 3

    # resume the epoch-2 checkpoint with no other option: same final model, byte for byte
    p = loopnet_cmd("train", "--resume", "m.ckpt.npz", "--save", "r.npz", cwd=tmp_path)
    assert "resuming after epoch 2" in p.stdout
    _same_weights_and_state(tmp_path / "m.npz", tmp_path / "r.npz")


def _interrupt_after_first_epoch(tmp_path, sig, *args):
    """Start a long training run, send ``sig`` once its first epoch line is out."""
    def default_sigint():      # a parent that ignores SIGINT (a background job) would pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)     # that on; Python then never sees it
    proc = subprocess.Popen([sys.executable, "-m", "loopnet", "train", "--epochs", "100000",
                             "--save", "i.npz", *args], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        for line in proc.stdout:
            if line.startswith("epoch"):      # training is under way
                break
        proc.send_signal(sig)                 # at once: k stays small, so reruns are short
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err
    assert "resume with: loopnet train --resume i.ckpt.npz" in err
    assert not os.path.exists(tmp_path / "i.npz")              # only the checkpoint
    ck = io.load(tmp_path / "i.ckpt.npz")
    assert ck.epoch >= 1 and len(ck.history) == ck.epoch
    return proc.returncode, ck.epoch


def test_sigint_leaves_a_loadable_checkpoint_and_resume_is_bit_identical(tmp_path):
    args = ["--momentum", "0.3", "--batch-size", "5", "--seed", "11"]
    rc, k = _interrupt_after_first_epoch(tmp_path, signal.SIGINT, *args)
    assert rc == 130
    # finish at k + 2 epochs from the checkpoint, and compare with an uninterrupted run
    # output paths come only from the command line (issue 14), as the printed command says
    loopnet_cmd("train", "--resume", "i.ckpt.npz", "--save", "i.npz", "--epochs", k + 2,
                cwd=tmp_path)
    loopnet_cmd("train", "--epochs", k + 2, "--save", "u.npz", *args, cwd=tmp_path)
    _same_weights_and_state(tmp_path / "u.npz", tmp_path / "i.npz")


def test_sigterm_also_checkpoints(tmp_path):
    rc, _ = _interrupt_after_first_epoch(tmp_path, signal.SIGTERM)
    assert rc == 143


def test_divergence_is_reported_and_last_good_parameters_saved(tmp_path):
    p = loopnet_cmd("train", "--activation", "identity", "--output-activation", "identity",
                    "--cost", "mse", "--eta", 50, "--epochs", 5, "--save", "d.npz", cwd=tmp_path, code=1)
    err = p.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("loopnet: error: training diverged in epoch")
    assert "smaller --eta" in err and "d.npz" in err
    net = io.load(tmp_path / "d.npz")
    assert np.isfinite(net.params).all()
    assert net.epoch == int(re.search(r"diverged in epoch (\d+)", err).group(1)) - 1


def test_csv_training_records_its_scaling_for_eval_and_predict(tmp_path):
    (X, y), _ = loopnet.data.digits_split()
    raw = np.round(X[:400] * 16)                      # the raw 0..16 digits
    np.savetxt(tmp_path / "d.csv", np.column_stack([y[:400], raw]), fmt="%d", delimiter=",",
               header="label," + ",".join(f"p{i}" for i in range(64)), comments="")
    p = loopnet_cmd("train", "--data", "d.csv", "--scale", "max", "--epochs", 8,
                    "--save", "c.npz", cwd=tmp_path)
    assert "inputs divided by 16" in p.stdout and "320 training, 80 held-out" in p.stdout
    assert _held_out(p.stdout) > 60.0
    np.savetxt(tmp_path / "rows.csv", raw[:10], delimiter=",")
    out = loopnet_cmd("predict", "c.npz", "rows.csv", cwd=tmp_path).stdout.split()
    net = io.load(tmp_path / "c.npz")
    assert [int(v) for v in out] == net.predict(raw[:10] / 16.0).argmax(1).tolist()


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed")
def test_fashion_mnist_from_the_system_path(tmp_path):
    env_data = os.environ.pop("LOOPNET_DATA", None)
    try:
        p = loopnet_cmd("train", "--dataset", "fashion-mnist", "--limit", 3000, "--epochs", 1,
                        "--sizes", "784,20,10", "--eta", 1.0, "--save", "f.npz", cwd=tmp_path)
    finally:
        if env_data is not None:
            os.environ["LOOPNET_DATA"] = env_data
    assert "3000 training, 10000 held-out" in p.stdout
    assert _held_out(p.stdout) > 40.0
    assert io.load(tmp_path / "f.npz").sizes == [784, 20, 10]


# ----------------------------------------------------------------- in-process: help, registry

def test_help_everywhere_with_examples(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for name in ("train", "eval", "predict", "info"):
        assert name in top
    assert "examples:" in top
    for name in ("train", "eval", "predict", "info"):
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"loopnet {name}" in text
    train_help = main(["train", "--help"]) == 0 and capsys.readouterr().out
    for opt in ("--sizes", "--activation", "--output", "--cost", "--optimizer", "--epochs",
                "--batch-size", "--eta", "--lmbda", "--momentum", "--seed", "--threads",
                "--dtype", "--data", "--dataset", "--save", "--resume", "--checkpoint-every",
                "--plot"):
        assert opt in train_help
    assert main([]) == 2


def test_missing_registered_module_is_skipped(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "ghost", "loopnet.commands.ghost_not_installed")
    assert main(["--help"]) == 0
    assert "ghost" not in capsys.readouterr().out
    assert main(["info", "--help"]) == 0


def test_command_with_failing_imports_does_not_break_help(monkeypatch, capsys, tmp_path):
    (tmp_path / "broken_cmd.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "broken", "broken_cmd")
    assert main(["--help"]) == 0
    assert "not available here" in capsys.readouterr().out
    assert main(["broken"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("loopnet: error: command 'broken' cannot be loaded") and \
        "no_such_dependency_xyz" in err and err.count("\n") == 1


def test_progress_bar_plain_fallback_without_tqdm(monkeypatch, capsys):
    from loopnet.commands import train
    monkeypatch.setitem(sys.modules, "tqdm", None)          # as if tqdm were not installed
    bar = train._progress_reporter(True, total_epochs=3, first_epoch=1)
    bar.begin("train", 2, 40)
    bar(20, 40, {"cost": 0.5, "accuracy": 0.25})
    bar(40, 40, {"cost": 0.4, "accuracy": 0.5})
    bar.end("train", 0.1)
    err = capsys.readouterr().err
    assert "epoch 2/3" in err and "40/40 batches" in err and "batches/s" in err
    assert "ETA" in err and "cost 0.4000" in err and "acc 50.00%" in err
    assert err.endswith("\r")                                 # the line is wiped afterwards
    quiet = train._progress_reporter(False, total_epochs=3, first_epoch=0)
    quiet.begin("train", 1, 40)
    quiet(40, 40)
    quiet.end("train", 0.1)
    assert capsys.readouterr().err == ""


def test_validation_split_sizes_and_seeding():
    from loopnet.commands.train import validation_split
    tr, va = validation_split(1000, 0.2, seed=3)
    assert len(tr) == 800 and len(va) == 200 and not set(tr) & set(va)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(1000))
    again, other = validation_split(1000, 0.2, seed=3), validation_split(1000, 0.2, seed=4)
    assert np.array_equal(again[1], va) and not np.array_equal(other[1], va)
    tr, va = validation_split(60000, None, seed=0, dataset="fashion-mnist")   # Nielsen's
    assert np.array_equal(tr, np.arange(50000)) and np.array_equal(va, np.arange(50000, 60000))
    assert len(validation_split(3000, None, 0, "fashion-mnist")[1]) == 0    # --limit: none
    assert len(validation_split(1437, None, 0, "digits")[1]) == 0


def test_patience_save_best_and_log(tmp_path):
    p = loopnet_cmd("train", "--validation", 0.25, "--patience", 1, "--save-best", "--epochs",
                    40, "--eta", 8.0, "--save", "b.npz", "--log", "run.jsonl", cwd=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    epochs, summary = rows[:-1], rows[-1]
    assert [r["type"] for r in epochs] == ["epoch"] * len(epochs) and summary["type"] == "summary"
    assert len(epochs) < 40                                          # stopped early
    vals = [r["val_cost"] for r in epochs]
    best = int(np.argmin(vals)) + 1
    assert len(epochs) == best + 1                                   # patience 1
    assert all({"cost", "accuracy", "val_cost", "val_accuracy", "seconds", "eval_seconds"}
               <= set(r) for r in epochs)
    assert io.load(tmp_path / "b.npz").epoch == best == summary["saved_epoch"]
    assert "1078 training, 359 validation (from the training data), 360 test" in p.stdout
    assert "test (reported once, not used for selection)" in p.stdout
    assert f"epoch {best}, the best by val_cost" in p.stdout or len(epochs) == best


def test_one_epoch_singular_and_old_output_spelling(tmp_path):
    p = loopnet_cmd("train", "--epochs", 1, "--output", "softmax", "--cost", "log_likelihood",
                    "--eta", 0.5, cwd=tmp_path)
    assert "loopnet: 1 epoch;" in p.stdout and "done: 1 epoch in" in p.stdout
    assert "1 epochs" not in p.stdout
    assert "--output-activation" in p.stderr                        # the deprecation note
    loopnet_cmd("train", "--epochs", 1, "--patience", 2, cwd=tmp_path, code=2)  # no validation


def test_saturation_is_reported_in_one_line(tmp_path):
    p = loopnet_cmd("train", "--epochs", 4, "--eta", 500, cwd=tmp_path)
    warn = [l for l in p.stderr.splitlines() if "warning" in l]
    assert len(warn) == 1 and warn[0].startswith("loopnet: warning: training is not learning")
    assert "smaller learning rate" in warn[0]


@pytest.mark.parametrize("name", ["bp_equations", "chain", "hand_worked", "matrix_form"])
def test_examples_end_quietly_when_the_pipe_closes(name):
    p = subprocess.run(f"{sys.executable} -m loopnet.examples.{name} | head -1", shell=True,
                       env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "" and p.stdout.count("\n") == 1


def test_cache_message_follows_numba_cache_index():
    from loopnet.commands.train import kernels_cached
    loopnet.warmup("float64")            # compiles or loads: either way the index has it now
    assert kernels_cached("float64") is True
    assert kernels_cached("float16") is False       # never compiled for it
    loopnet.warmup("float64", rules=True, moments=True)   # per-example code and moments
    assert kernels_cached("float64", rules=True, moments=True) is True
    assert kernels_cached("float16", rules=True, moments=True) is False
