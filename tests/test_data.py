"""Dataset files: IDX (gz or plain), CSV, .npz, the locator, and checks naming file and row."""

import gzip
import os
import struct

import numpy as np
import pytest

from loopnet import datafiles as df
from loopnet.commands import _common as common

FASHION = "/usr/share/datasets/fashion-mnist"


def write_idx(path, arr, gz=False, magic=None):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = magic if magic is not None else bytes([0, 0, 0x08, arr.ndim])
    raw = header + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
    if gz:
        raw = gzip.compress(raw)
    with open(path, "wb") as f:
        f.write(raw)
    return path


def make_idx_dir(d, n_train=30, n_test=10, gz=True, spelling="-"):
    rng = np.random.default_rng(0)
    os.makedirs(d, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(os.path.join(d, f"{split}-images{spelling}idx3-ubyte{ext}"),
                  rng.integers(0, 256, (n, 4, 5)), gz)
        write_idx(os.path.join(d, f"{split}-labels{spelling}idx1-ubyte{ext}"),
                  rng.integers(0, 10, n), gz)
    return d


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gz(tmp_path, gz):
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    p = write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), arr, gz)
    assert np.array_equal(df.read_idx(p), arr)


def test_read_idx_errors_name_the_file(tmp_path):
    arr = np.zeros((3, 4, 5), np.uint8)
    p = write_idx(tmp_path / "x-idx3-ubyte", arr)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(df.DataError, match="x-idx3-ubyte.*truncated"):
        df.read_idx(p)
    p = write_idx(tmp_path / "m-idx3-ubyte", arr, magic=b"\x08\x03\x00\x00")
    with pytest.raises(df.DataError, match="m-idx3-ubyte.*magic"):
        df.read_idx(p)
    g = write_idx(tmp_path / "t.gz", arr, gz=True)
    g.write_bytes(g.read_bytes()[:20])
    with pytest.raises(df.DataError, match="t.gz"):
        df.read_idx(g)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(df.DataError, match="empty"):
        df.read_idx(tmp_path / "empty")
    with pytest.raises(df.DataError, match="no such file"):
        df.read_idx(tmp_path / "missing")


@pytest.mark.parametrize("gz,spelling", [(True, "-"), (False, "."), (False, "-")])
def test_idx_directory_loads_scaled(tmp_path, gz, spelling):
    d = make_idx_dir(str(tmp_path / "ds"), gz=gz, spelling=spelling)
    ds = common.load_data({"data": d})
    assert ds.X_train.shape == (30, 20) and ds.X_test.shape == (10, 20)
    assert ds.X_train.dtype == np.float64 and 0 <= ds.X_train.min() and ds.X_train.max() <= 1
    raw = df.read_idx(df.find_idx_files(d, "train")[0]).reshape(30, -1)
    assert np.array_equal(ds.X_train, raw / 255.0)
    assert ds.y_train.dtype == np.int64


def test_idx_label_count_mismatch(tmp_path):
    d = make_idx_dir(str(tmp_path / "ds"), gz=False)
    write_idx(os.path.join(d, "train-labels-idx1-ubyte"), np.zeros(29))
    with pytest.raises(df.DataError, match="29 labels for 30 images"):
        common.load_data({"data": d})


def test_locator_order_and_message(tmp_path, monkeypatch):
    a = make_idx_dir(str(tmp_path / "a" / "mnist"))
    b = make_idx_dir(str(tmp_path / "b"))
    monkeypatch.setenv("LOOPNET_DATA", b)
    assert df.locate_dataset("mnist", str(tmp_path / "a")) == a      # --data/<name>
    assert df.locate_dataset("mnist") == b                            # $LOOPNET_DATA
    monkeypatch.setenv("LOOPNET_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(df, "SYSTEM_DATA_DIR", str(tmp_path / "sys"))
    with pytest.raises(df.DataError) as e:
        df.locate_dataset("mnist")
    assert "nowhere" in str(e.value) and "LOOPNET_DATA" in str(e.value)
    with pytest.raises(df.DataError, match="does not exist"):
        df.locate_dataset("mnist", str(tmp_path / "missing"))


def test_csv_layout_header_and_scaling(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("label,p1,p2\n1,0,255\n0,128,3\n\n2,4,5\n")
    X, y = df.load_csv(p)
    assert y.tolist() == [1, 0, 2]
    assert np.allclose(X, np.array([[0, 255], [128, 3], [4, 5]]) / 255.0)
    p.write_text("1,0.5,0.25\n0,0.1,0.2\n")
    X, y = df.load_csv(p)
    assert np.array_equal(X, [[0.5, 0.25], [0.1, 0.2]])       # floats are used as given


@pytest.mark.parametrize("text,words", [
    ("1,0.5\n0,nan\n", ["line 2", "NaN"]),
    ("1,0.5\n0,0.1\n1,inf\n", ["line 3", "NaN/infinity"]),
    ("1,0.5,0.1\n0,0.1\n", ["line 2", "2 columns, expected 3"]),
    ("1,0.5\n0,abc\n", ["line 2", "'abc' is not a number"]),
    ("1.5,0.5\n", ["line 1", "not an integer"]),
    ("-1,0.5\n", ["line 1", "out of range"]),
    ("", ["empty"]),
    ("3\n4\n", ["label column and at least one input"]),
])
def test_csv_errors_name_file_and_line(tmp_path, text, words):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(df.DataError) as e:
        df.load_csv(p, n_classes=10)
    assert str(p) in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_csv_labels_checked_against_network_outputs(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("0,0.1\n1,0.2\n7,0.3\n")
    with pytest.raises(df.DataError, match="line 3: label 7 out of range \\(0..2\\)"):
        df.load_csv(p, n_classes=3)


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 3, 3)).astype(np.uint8)
    np.savez(tmp_path / "keras.npz", x_train=imgs, y_train=np.arange(12) % 10,
             x_test=imgs[:4], y_test=np.arange(4))
    sets = df.load_npz(tmp_path / "keras.npz")
    assert sets["train"][0].shape == (12, 9) and sets["test"][0].shape == (4, 9)
    assert np.array_equal(sets["train"][0], imgs.reshape(12, 9) / 255.0)
    np.savez(tmp_path / "one.npz", X=rng.random((5, 2)), y=np.array([0, 1, 0, 1, 1]))
    ds = common.load_data({"data": str(tmp_path / "one.npz"), "holdout": 0.4})
    assert len(ds.y_train) == 3 and len(ds.y_test) == 2
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    with pytest.raises(df.DataError, match="expected arrays 'X' and 'y'"):
        df.load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", X=np.array([[0.1], [np.nan]]), y=np.array([0, 1]))
    with pytest.raises(df.DataError, match="row 2"):
        df.load_npz(tmp_path / "nan.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([None, 1], dtype=object), y=np.zeros(2))
    with pytest.raises(df.DataError, match="pickle"):
        df.load_npz(tmp_path / "obj.npz")


def test_inputs_for_prediction(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.random((4, 6))
    np.save(tmp_path / "x.npy", X)
    assert np.array_equal(df.load_inputs(tmp_path / "x.npy", 6), X)
    np.save(tmp_path / "one.npy", X[0])
    assert df.load_inputs(tmp_path / "one.npy", 6).shape == (1, 6)
    labelled = np.column_stack([np.arange(4), X])
    np.savetxt(tmp_path / "x.csv", labelled, delimiter=",")
    assert np.allclose(df.load_inputs(tmp_path / "x.csv", 6), X)
    write_idx(tmp_path / "imgs-idx3-ubyte", np.full((2, 2, 3), 255))
    assert np.array_equal(df.load_inputs(tmp_path / "imgs-idx3-ubyte", 6), np.ones((2, 6)))
    with pytest.raises(df.DataError, match="6 inputs|expects 7"):
        df.load_inputs(tmp_path / "x.npy", 7)


def test_digits_default_split():
    ds = common.load_data({})
    assert (len(ds.y_train), len(ds.y_test), ds.n_inputs, ds.n_classes) == (1437, 360, 64, 10)


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist_from_the_system_path(monkeypatch):
    monkeypatch.delenv("LOOPNET_DATA", raising=False)
    ds = common.load_data({"dataset": "fashion-mnist", "limit": 1000})
    assert ds.X_train.shape == (1000, 784) and ds.X_test.shape == (10000, 784)
    assert ds.X_test.min() == 0.0 and ds.X_test.max() == 1.0
    assert sorted(set(ds.y_test.tolist())) == list(range(10))
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_scaling_rules(tmp_path):
    assert df.input_divisor(np.array([[0, 200]], np.uint8)) == 255.0
    assert df.input_divisor(np.array([[0.0, 255.0], [3.0, 4.0]])) == 255.0     # 8-bit pixels
    assert df.input_divisor(np.array([[0.0, 16.0]])) == 1.0        # e.g. raw 8x8 digits: as is
    assert df.input_divisor(np.array([[0.0, 0.5]])) == 1.0
    assert df.input_divisor(np.array([[0.0, -8.0, 4.0]]), "max") == 8.0
    assert df.input_divisor(np.zeros((2, 2)), "max") == 1.0
    assert df.input_divisor(np.zeros((2, 2)), 12.5) == 12.5
    with pytest.raises(df.DataError):
        df.input_divisor(np.zeros((2, 2)), "huge")
    p = tmp_path / "d.csv"
    rows = [[i % 3] + [i % 17, 16 - i % 17] for i in range(20)]
    p.write_text("\n".join(",".join(map(str, r)) for r in rows))
    ds = df.load_dataset(data=str(p), scale="max", holdout=0.25)
    assert ds.divisor == 16.0 and ds.X_train.max() <= 1.0 and len(ds.y_test) == 5
    assert df.load_dataset(data=str(p)).divisor == 1.0


def test_idx_directory_without_test_files_holds_out(tmp_path):
    d = make_idx_dir(str(tmp_path / "ds"), n_train=50)
    for f in os.listdir(d):
        if f.startswith("t10k"):
            os.remove(os.path.join(d, f))
    ds = df.load_dataset(data=d, holdout=0.2)
    assert (len(ds.y_train), len(ds.y_test)) == (40, 10)
    again = df.load_dataset(data=d, holdout=0.2)
    assert np.array_equal(ds.X_test, again.X_test)          # the same split every time


def test_csv_fast_and_line_by_line_parsers_agree(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("label,a,b\n\n1,0.5,1e-3\n0, 0.25 ,7\n\n2,3,4\n")
    A_fast, lines = df._read_csv_matrix(p)
    A_slow, numbers = df._slow_csv(str(p), p.read_text())
    assert np.array_equal(A_fast, A_slow) and A_fast.shape == (3, 3)
    assert [lines[i] for i in range(3)] == numbers.tolist() == [3, 4, 6]
    p.write_text("1,0.5\n\n0,0.1\n12,0.3\n")          # found after a fast parse
    with pytest.raises(df.DataError, match="line 4: label 12 out of range"):
        df.load_csv(p, n_classes=10)
