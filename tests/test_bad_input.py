"""Bad input to the command line: one clear line, exit code 1 or 2, no traceback, no damage.

Each case runs ``loopnet.cli.main(argv)`` in a scratch directory holding a valid model
(``keep.npz``, also the ``--save`` target of the training cases) and one bad input; the test
asserts the exit code, a single ``loopnet: error: ...`` line on stderr that says what is wrong,
no traceback, and that every file in the directory is byte-for-byte unchanged (and none
appeared). A few cases also run in a real subprocess at the end.
"""

import gzip
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

import loopnet
from loopnet import io
from loopnet.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _idx(path, arr, magic=None, cut=0, gz=False):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    raw = (magic or bytes([0, 0, 8, arr.ndim])) + \
        b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
    raw = raw[:len(raw) - cut]
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)


def _idx_dir(d, **bad):
    os.makedirs(d)
    rng = np.random.default_rng(0)
    n = {"train": 20, "t10k": 10}
    for split in ("train", "t10k"):
        imgs = rng.integers(0, 256, (n[split], 8, 8))
        labels = rng.integers(0, 10, n[split] - (1 if bad.get("count") and split == "train"
                                                 else 0))
        _idx(f"{d}/{split}-images-idx3-ubyte.gz", imgs, gz=True,
             magic=bad.get("magic") if split == "train" else None,
             cut=bad.get("cut", 0) if split == "train" else 0)
        _idx(f"{d}/{split}-labels-idx1-ubyte.gz", labels, gz=True)


def _rewrite_meta(src, dst, mutate):
    with np.load(src, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(members["meta"].tobytes())
    mutate(meta)
    raw = json.dumps(meta).encode()
    members["meta"] = np.frombuffer(raw, np.uint8)
    members["digest"] = np.frombuffer(hashlib.sha256(raw).hexdigest().encode(), np.uint8)
    np.savez(dst, **members)


def _tamper_params(src, dst):
    with np.load(src, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    members["params"] = members["params"].copy()
    members["params"][5] *= 1.0001
    np.savez(dst, **members)


def _setup(kind):
    """Create the bad input ``kind`` in the current directory."""
    rows = "\n".join(f"{i % 3}," + ",".join(["0.5"] * 4) for i in range(10))
    if kind == "nan.csv":
        open(kind, "w").write("0,0.1,0.2,0.3,0.4\n1,0.1,nan,0.3,0.4\n" + rows)
    elif kind == "inf.csv":
        open(kind, "w").write("0.1,0.2,inf,0.4\n")
    elif kind == "labels.csv":
        open(kind, "w").write(rows + "\n9,0.1,0.2,0.3,0.4\n")
    elif kind == "ragged.csv":
        open(kind, "w").write("0,0.1,0.2,0.3,0.4\n1,0.1,0.2\n")
    elif kind == "text.csv":
        open(kind, "w").write("0,0.1,0.2,0.3,0.4\n1,0.1,0.2,zero,0.4\n")
    elif kind == "empty.csv":
        open(kind, "w").close()
    elif kind == "wide.npy":
        np.save(kind, np.zeros((3, 10)))
    elif kind == "trunc":
        _idx_dir(kind, cut=7)
    elif kind == "magic":
        _idx_dir(kind, magic=b"\x12\x34\x08\x03")
    elif kind == "count":
        _idx_dir(kind, count=True)
    elif kind == "keys.npz":
        np.savez(kind, a=np.zeros(3), b=np.ones(3))
    elif kind == "objects.npz":
        np.savez(kind, X=np.array([[None]], dtype=object), y=np.zeros(1))
    elif kind == "half.npz":
        data = open("keep.npz", "rb").read()
        open(kind, "wb").write(data[:len(data) // 2])
    elif kind == "shapes.json":
        io.save(loopnet.Net([3, 2, 2], seed=0), kind)
        doc = json.load(open(kind))
        doc["weights"][0] = [[1.0, 2.0], [3.0, 4.0]]
        json.dump(doc, open(kind, "w"))
    elif kind == "model.pkl":
        pickle.dump({"sizes": [64, 30, 10]}, open(kind, "wb"))
    elif kind == "newer.npz":
        _rewrite_meta("keep.npz", kind, lambda m: m.update(format_version=2))
    elif kind == "tampered.npz":
        _tamper_params("keep.npz", kind)
    elif kind == "noise.npz":
        open(kind, "wb").write(np.random.default_rng(0).bytes(300))
    elif kind == "empty.npz":
        open(kind, "wb").close()
    elif kind == "bare.npy":
        np.save(kind, np.zeros(3))
    elif kind == "dir":
        os.mkdir(kind)


S = ["--save", "keep.npz"]
T = ["train", "--epochs", "1"]

# (id, files to create, argv, exit code, words the message must contain)
CASES = [
    ("nan-in-data", "nan.csv", T + ["--data", "nan.csv"] + S, 1, ["nan.csv", "line 2", "NaN"]),
    ("inf-in-predict-input", "inf.csv", ["predict", "keep.npz", "inf.csv"], 1,
     ["inf.csv", "line 1", "infinity"]),
    ("wrong-input-width", "wide.npy", ["predict", "keep.npz", "wide.npy"], 1,
     ["wide.npy", "10 inputs", "64"]),
    ("label-out-of-range", "labels.csv", T + ["--data", "labels.csv", "--sizes", "4,5,3"] + S,
     1, ["labels.csv", "line 11", "label 9 out of range (0..2)"]),
    ("ragged-csv", "ragged.csv", T + ["--data", "ragged.csv"] + S, 1, ["line 2", "columns"]),
    ("non-numeric-csv", "text.csv", T + ["--data", "text.csv"] + S, 1,
     ["text.csv", "line 2", "'zero'"]),
    ("empty-data-file", "empty.csv", T + ["--data", "empty.csv"] + S, 1, ["empty.csv", "empty"]),
    ("truncated-idx", "trunc", T + ["--data", "trunc"] + S, 1,
     ["train-images-idx3-ubyte.gz", "truncated"]),
    ("wrong-idx-magic", "magic", T + ["--data", "magic"] + S, 1,
     ["train-images-idx3-ubyte.gz", "magic"]),
    ("idx-label-count", "count", T + ["--data", "count"] + S, 1, ["19 labels for 20 images"]),
    ("npz-missing-arrays", "keys.npz", T + ["--data", "keys.npz"] + S, 1,
     ["keys.npz", "expected arrays"]),
    ("npz-object-arrays", "objects.npz", T + ["--data", "objects.npz"] + S, 1,
     ["objects.npz", "pickle"]),
    ("model-cut-in-half", "half.npz", ["eval", "half.npz"], 1, ["half.npz", "truncated"]),
    ("json-wrong-shapes", "shapes.json", ["info", "shapes.json"], 1,
     ["shapes.json", "shape (2, 2)", "(2, 3)"]),
    ("pickle-as-model", "model.pkl", ["info", "model.pkl"], 1, ["model.pkl", "pickle"]),
    ("newer-format-version", "newer.npz", ["eval", "newer.npz"], 1,
     ["newer.npz", "format version 2"]),
    ("tampered-weights", "tampered.npz", ["predict", "tampered.npz", "keep.npz"], 1,
     ["tampered.npz", "checksum"]),
    ("random-bytes-resume", "noise.npz", T + ["--resume", "noise.npz"] + S, 1,
     ["noise.npz", "not a loopnet model"]),
    ("empty-model", "empty.npz", ["info", "empty.npz"], 1, ["empty.npz", "empty"]),
    ("bare-npy-model", "bare.npy", ["eval", "bare.npy"], 1, ["bare.npy", ".npy"]),
    ("missing-model", None, ["eval", "nope.npz"], 1, ["nope.npz", "no such file"]),
    ("directory-as-model", "dir", ["info", "dir"], 1, ["dir", "directory"]),
    ("negative-eta", None, T + ["--eta", "-1"] + S, 2, ["--eta", "> 0"]),
    ("zero-eta", None, T + ["--eta", "0"] + S, 2, ["--eta"]),
    ("nan-eta", None, T + ["--eta", "nan"] + S, 2, ["--eta"]),
    ("batch-size-zero", None, T + ["--batch-size", "0"] + S, 2, ["--batch-size", "positive"]),
    ("epochs-zero", None, ["train", "--epochs", "0"] + S, 2, ["--epochs"]),
    ("negative-lmbda", None, T + ["--lmbda", "-0.1"] + S, 2, ["--lmbda"]),
    ("momentum-above-one", None, T + ["--momentum", "1.5"] + S, 2, ["--momentum", "[0, 1)"]),
    ("unknown-activation", None, T + ["--activation", "swish"] + S, 2,
     ["--activation", "swish"]),
    ("softmax-hidden", None, T + ["--activation", "softmax"] + S, 2, ["--activation"]),
    ("unknown-cost", None, T + ["--cost", "hinge"] + S, 2, ["--cost", "hinge"]),
    ("bad-output-cost-pair", None, T + ["--output-activation", "identity", "--cost",
                                        "log_likelihood"] + S, 2, ["log_likelihood", "identity"]),
    ("unknown-dtype", None, T + ["--dtype", "float16"] + S, 2, ["--dtype"]),
    ("malformed-sizes", None, T + ["--sizes", "64,x,10"] + S, 2, ["--sizes", "64,x,10"]),
    ("sizes-vs-data-width", None, T + ["--sizes", "100,10"] + S, 2, ["100 inputs", "64"]),
    ("resume-other-sizes", None, T + ["--resume", "keep.npz", "--sizes", "64,20,10"], 2,
     ["--sizes", "differs"]),
    ("threads-zero", None, T + ["--threads", "0"] + S, 2, ["--threads"]),
    ("unknown-dataset", None, T + ["--dataset", "cifar"] + S, 2, ["--dataset", "cifar"]),
    ("data-dir-missing", None, T + ["--dataset", "mnist", "--data", "nowhere"] + S, 1,
     ["nowhere", "does not exist"]),
    ("save-dir-missing", None, T + ["--save", "no/such/dir/m.npz"], 1,
     ["no/such/dir", "does not exist"]),
    ("save-equals-checkpoint", None, T + ["--checkpoint", "keep.npz"] + S, 2,
     ["--save and --checkpoint"]),
    ("unknown-command", None, ["tarin"], 2, ["tarin"]),
    ("unknown-option", None, T + ["--learning-rate", "3"], 2, ["--learning-rate"]),
    ("predict-output-suffix", None, ["predict", "keep.npz", "keep.npz", "-o", "out.txt"], 2,
     ["--output", ".npy or .csv"]),
]
CASES.append(("plot-without-matplotlib", "no-matplotlib", T + ["--plot", "p.png"] + S, 1,
              ["matplotlib", "loopnet[plot]"]))


@pytest.fixture(scope="module")
def model_bytes():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "keep.npz")
        io.save(loopnet.Net([64, 30, 10], seed=0), path)
        with open(path, "rb") as f:
            return f.read()


def _snapshot(root):
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames + files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = (None if os.path.isdir(p)
                                             else hashlib.sha256(open(p, "rb").read()).digest())
    return out


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys, model_bytes):
    name, files, argv, code, words = case
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPNET_DEBUG", raising=False)
    (tmp_path / "keep.npz").write_bytes(model_bytes)
    if files == "no-matplotlib":          # as if the 'plot' extra were not installed
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    elif files:
        _setup(files)
    before = _snapshot(tmp_path)
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == code, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("loopnet: error: "), err
    assert "Traceback" not in err + out
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert _snapshot(tmp_path) == before, "a file was created or modified"


def test_real_processes_print_one_line_and_no_traceback(tmp_path, model_bytes):
    """The same guarantees end to end, in a fresh interpreter (three cases, one process each)."""
    (tmp_path / "keep.npz").write_bytes(model_bytes)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        _setup("model.pkl")
        _setup("half.npz")
    finally:
        os.chdir(old)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("LOOPNET_DEBUG", None)
    before = _snapshot(tmp_path)
    for argv, code in ((["info", "model.pkl"], 1), (["eval", "half.npz"], 1),
                       (["train", "--eta", "-3", "--save", "keep.npz"], 2)):
        p = subprocess.run([sys.executable, "-m", "loopnet"] + argv, cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == code, p.stderr
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("loopnet: error: "), p.stderr
        assert "Traceback" not in p.stderr + p.stdout
    assert _snapshot(tmp_path) == before
