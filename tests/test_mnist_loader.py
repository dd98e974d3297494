"""loopnet.mnist_loader: IDX and mnist.pkl.gz reading, file discovery, safe unpickling."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from loopnet import mnist_loader


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(struct.pack(">I", s) for s in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def make_idx_dir(directory, n_train=12, n_test=5, gz=True):
    rs = np.random.RandomState(0)
    tr = rs.randint(0, 256, size=(n_train, 28, 28)).astype(np.uint8)
    te = rs.randint(0, 256, size=(n_test, 28, 28)).astype(np.uint8)
    tl = (np.arange(n_train) % 10).astype(np.uint8)
    el = (np.arange(n_test) % 10).astype(np.uint8)
    ext = ".gz" if gz else ""
    write_idx(os.path.join(directory, "train-images-idx3-ubyte" + ext), tr)
    write_idx(os.path.join(directory, "train-labels-idx1-ubyte" + ext), tl)
    write_idx(os.path.join(directory, "t10k-images-idx3-ubyte" + ext), te)
    write_idx(os.path.join(directory, "t10k-labels-idx1-ubyte" + ext), el)
    return tr, tl, te, el


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_argument(tmp_path, gz):
    tr, tl, te, el = make_idx_dir(str(tmp_path), gz=gz)
    (trx, try_), (vax, vay), (tex, tey) = mnist_loader.load_data(str(tmp_path))
    # Last sixth of the training images (2 of 12; 10,000 of 60,000) is validation.
    assert trx.shape == (10, 784) and vax.shape == (2, 784) and tex.shape == (5, 784)
    assert trx.dtype == np.float32 and try_.dtype == np.int64
    assert np.array_equal(trx[3], tr[3].reshape(-1).astype(np.float32) / 255)
    assert np.array_equal(vay, tl[10:]) and np.array_equal(tey, el)
    assert 0.0 <= trx.min() and trx.max() <= 1.0


def test_wrapper_has_nielsens_shapes(tmp_path, monkeypatch):
    make_idx_dir(str(tmp_path))
    monkeypatch.setenv("LOOPNET_DATA", str(tmp_path))
    training, validation, test = mnist_loader.load_data_wrapper()
    assert isinstance(training, list) and len(training) == 10
    x, y = training[0]
    assert x.shape == (784, 1) and y.shape == (10, 1) and y.sum() == 1.0
    x, label = validation[0]
    assert x.shape == (784, 1) and isinstance(label, (int, np.integer))
    assert len(test) == 5 and int(test[3][1]) == 3


def test_missing_and_corrupt_files_say_which_and_how(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*dataset-fashion-mnist"):
        mnist_loader.load_data(str(tmp_path / "nope"))
    make_idx_dir(str(tmp_path))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setenv("LOOPNET_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"LOOPNET_DATA.*missing: t10k-labels"):
        mnist_loader.load_data()
    make_idx_dir(str(tmp_path))
    with open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x1f\x8b garbage")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz"):
        mnist_loader.load_data(str(tmp_path))


def test_finds_debian_package_by_default(tmp_path, monkeypatch):
    if not os.path.isdir(mnist_loader.DEBIAN_DIR):
        pytest.skip("dataset-fashion-mnist is not installed")
    monkeypatch.delenv("LOOPNET_DATA", raising=False)
    monkeypatch.chdir(tmp_path)       # no ../data/mnist.pkl.gz here
    assert mnist_loader.find_data() == ("idx", mnist_loader.DEBIAN_DIR)


# --------------------------------------------------------------------------
# Nielsen's mnist.pkl.gz: a Python 2 pickle.  We write one opcode by opcode,
# as Python 2's cPickle (protocol 2) and NumPy 1.x wrote it: GLOBAL
# numpy.core.multiarray._reconstruct, the array data as a Python 2 ``str``.

def _py2_array(a):
    a = np.ascontiguousarray(a)
    code = a.dtype.str[1:].encode()               # 'f4', 'i8'
    shape = b"(" + b"".join(b"J" + struct.pack("<i", s) for s in a.shape) + b"t"
    dtype = (b"cnumpy\ndtype\nU" + bytes([len(code)]) + code + b"K\x00K\x01\x87R"
             b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    data = a.tobytes()
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
            b"(K\x01" + shape + dtype + b"\x89T" + struct.pack("<I", len(data)) + data + b"tb")


def py2_pickle(splits):
    body = b"".join(_py2_array(x) + _py2_array(y) + b"\x86" for x, y in splits)
    return b"\x80\x02" + body + b"\x87."


def small_splits():
    rs = np.random.RandomState(1)
    return [(rs.rand(n, 784).astype(np.float32), (np.arange(n) % 10).astype(np.int64))
            for n in (6, 3, 4)]


def test_reads_python2_pickle(tmp_path):
    splits = small_splits()
    raw = py2_pickle(splits)
    with pytest.raises(UnicodeDecodeError):     # why Nielsen's loader fails on Python 3
        pickle.loads(raw)
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        f.write(raw)
    for where in (str(path), str(tmp_path)):
        got = mnist_loader.load_data(where)
        for (gx, gy), (x, y) in zip(got, splits):
            assert gx.dtype == np.float32 and np.array_equal(gx, x) and np.array_equal(gy, y)
    training, validation, test = mnist_loader.load_data_wrapper(str(path))
    assert len(training) == 6 and training[0][0].shape == (784, 1)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_python3_pickles(tmp_path, protocol):
    splits = tuple((x, y) for x, y in small_splits())
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(splits, f, protocol=protocol)
    got = mnist_loader.load_data(str(path))
    assert all(np.array_equal(a, b) for g, s in zip(got, splits) for a, b in zip(g, s))


def test_refuses_malicious_pickle(tmp_path):
    target = tmp_path / "pwned"
    # GLOBAL os.mkdir, then REDUCE: pickle.load would create the directory.
    raw = (b"\x80\x02cos\nmkdir\nX" + struct.pack("<I", len(str(target)))
           + str(target).encode() + b"\x85R.")
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        f.write(raw)
    with pytest.raises(ValueError, match=r"refusing to load os.mkdir"):
        mnist_loader.load_data(str(path))
    assert not target.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        import io
        mnist_loader.restricted_load(io.BytesIO(b"\x80\x02cbuiltins\neval\n."))


def test_refuses_object_arrays_and_other_structures(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(np.array([1, "x"], dtype=object), f, protocol=2)
    with pytest.raises(ValueError, match="object dtype"):
        mnist_loader.load_data(str(path))
    with gzip.open(path, "wb") as f:
        pickle.dump((np.zeros(3), np.zeros(3)), f, protocol=2)
    with pytest.raises(ValueError, match="does not hold Nielsen's"):
        mnist_loader.load_data(str(path))
