"""Issue 14 class 3 and the "Also" line: outputs come from the command line only, never
replace inputs, each other or anything but a regular file; saves leave no stray files."""

import json
import os
import stat
import time

import numpy as np
import pytest

from loopnet import Net, io, network2
from loopnet.cli import main

FAST = ["--sizes", "64,5,10", "--epochs", "1", "--limit", "50", "-q"]


def err_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


def test_resume_does_not_take_output_paths_from_the_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    ckpt = tmp_path / "ck.npz"
    assert main(["train", *FAST, "--save", str(tmp_path / "m.npz")]) == 0
    net, meta = io.load_with_meta(tmp_path / "m.npz")
    extra = dict(meta["extra"])
    extra["train"] = dict(extra["train"], save=str(victim), checkpoint_path=str(victim))
    io.save(net, ckpt, extra=extra)          # a checkpoint "received from someone else"
    capsys.readouterr()
    assert main(["train", "--resume", str(ckpt), "--epochs", "2", "-q"]) == 0
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("args", [
    ["--save", "{d}/m.npz", "--plot", "{d}/m.npz"],
    ["--save", "{d}/m.npz", "--checkpoint", "{d}/./m.npz"],
    ["--data", "{d}/data.npz", "--save", "{d}/data.npz"],
    ["--data", "{d}/data.npz", "--checkpoint", "{d}/link.npz"],
])
def test_outputs_never_replace_inputs_or_each_other(tmp_path, capsys, args):
    X, y = np.random.default_rng(0).random((40, 64)), np.arange(40) % 10
    np.savez(tmp_path / "data.npz", X=X, y=y)
    os.symlink(tmp_path / "data.npz", tmp_path / "link.npz")
    before = (tmp_path / "data.npz").read_bytes()
    argv = ["train", "--sizes", "64,5,10", "--epochs", "1", "-q"] + \
        [a.format(d=tmp_path) for a in args]
    assert main(argv) == 2
    err = err_line(capsys)
    assert "same file" in err or "overwrite the input" in err, err
    assert (tmp_path / "data.npz").read_bytes() == before
    assert not (tmp_path / "m.npz").exists()


def test_save_onto_a_device_or_fifo_refused(tmp_path, capsys):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    for target in ("/dev/null", str(fifo)):
        assert main(["train", *FAST, "--save", target]) == 2
        assert "not a regular file" in err_line(capsys)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(OSError, match="not a regular file"):
        io.save(Net([2, 2]), "/dev/null")


def test_predict_output_never_overwrites_model_or_input(tmp_path, capsys):
    net = Net([4, 3], seed=0)
    io.save(net, tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    for target in ("m.npz", "x.npy"):
        before = (tmp_path / target).read_bytes()
        out = tmp_path / target
        assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "x.npy"),
                     "--output", str(out)]) == 2
        err_line(capsys)
        assert (tmp_path / target).read_bytes() == before


def test_predict_npz_without_labels_and_devices(tmp_path, capsys):
    net = Net([4, 3], seed=0)
    io.save(net, tmp_path / "m.npz")
    X = np.random.default_rng(1).random((3, 4))
    np.savez(tmp_path / "onlyX.npz", X=X)
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "onlyX.npz")]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(v) for v in np.argmax(net.predict(X), axis=1)]
    assert main(["predict", str(tmp_path / "m.npz"), "/dev/zero"]) == 1
    assert "not a regular file" in err_line(capsys)


def test_failed_save_removes_its_temporary_and_stale_ones_go(tmp_path):
    target = tmp_path / "m.npz"
    stale = tmp_path / ".m.npz.abcd1234.tmp"
    fresh = tmp_path / ".m.npz.efgh5678.tmp"      # maybe another process saving right now
    other = tmp_path / ".other.npz.abcd1234.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - 2 * io.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        io.atomic_write(target, boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [stale.name, fresh.name, other.name])
    io.save(Net([2, 2]), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, other.name, target.name])


def test_network2_save_uses_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        network2.Network([2, 3, 1]).save(tmp_path / "n2.json")
        io.save(Net([2, 2]), tmp_path / "n.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "n2.json").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "n.npz").st_mode) == 0o644
    assert json.loads((tmp_path / "n2.json").read_text())["sizes"] == [2, 3, 1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
