"""Issue 14 through the data readers: declared sizes are checked before anything is
allocated, corrupt files give one line naming the file, valid files are read right."""

import gzip
import os
import struct

import numpy as np
import pytest

from loopnet import datafiles as df
from loopnet import idx, limits

RNG = np.random.default_rng(14)


def idx_bytes(arr, type_byte=0x08):
    head = bytes([0, 0, type_byte, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(idx.TYPES[type_byte]).tobytes()


def write(path, data):
    path.write_bytes(data)
    return str(path)


def one_line_error(call, *names):
    """``call()`` raises a ValueError/OSError whose message is one line naming every name."""
    with pytest.raises((ValueError, OSError)) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and msg.strip(), msg
    for name in names:
        assert os.path.basename(str(name)) in msg, msg
    return msg


# ------------------------------------------------------------------ class 2: sizes
def test_gz_idx_declaring_huge_data_is_refused_before_inflating(tmp_path):
    head = bytes([0, 0, 8, 3]) + struct.pack(">III", 33_000_000, 28, 28)
    p = write(tmp_path / "x-idx3-ubyte.gz", gzip.compress(head + bytes(2_000_000)))
    msg = one_line_error(lambda: df.read_idx(p), p)
    assert "can hold" in msg or "LOOPNET_MAX_BYTES" in msg


def test_plain_idx_limit_and_env_var(tmp_path, monkeypatch):
    p = write(tmp_path / "x-idx3-ubyte", idx_bytes(np.zeros((10, 4, 4), np.uint8)))
    monkeypatch.setenv("LOOPNET_MAX_BYTES", "100")
    msg = one_line_error(lambda: df.read_idx(p), p)
    assert "LOOPNET_MAX_BYTES" in msg and "100" in msg
    monkeypatch.setenv("LOOPNET_MAX_BYTES", "1K")
    assert df.read_idx(p).shape == (10, 4, 4)


@pytest.mark.parametrize("shape", [(0, 28, 28), (5, 0), (2**32 - 1,) * 4])
def test_idx_zero_or_overflowing_dims_named(tmp_path, shape):
    head = bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    for name, data in (("a-idx3-ubyte", head + bytes(64)),
                       ("b-idx3-ubyte.gz", gzip.compress(head + bytes(64)))):
        p = write(tmp_path / name, data)
        one_line_error(lambda: df.read_idx(p), p)


def test_device_and_fifo_refused(tmp_path):
    one_line_error(lambda: df.load_inputs("/dev/zero", 4), "/dev/zero")
    one_line_error(lambda: df.read_idx("/dev/zero"), "/dev/zero")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    one_line_error(lambda: df.load_csv(str(fifo)), fifo)      # would block if opened


def test_npz_member_declaring_huge_array_refused_before_inflating(tmp_path, monkeypatch):
    p = str(tmp_path / "d.npz")
    np.savez_compressed(p, X=np.zeros((2000, 100)), y=np.zeros(2000, np.int64))
    monkeypatch.setenv("LOOPNET_MAX_BYTES", "100000")
    msg = one_line_error(lambda: df.load_npz(p), p)
    assert "LOOPNET_MAX_BYTES" in msg


def test_npy_header_larger_than_file_refused(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((3, 4)))
    raw = p.read_bytes()
    p.write_bytes(raw.replace(b"'shape': (3, 4), ", b"'shape': (999999, 4),"))   # same length
    msg = one_line_error(lambda: df.load_inputs(str(p), 4), p)
    assert "header announces" in msg


# --------------------------------------------------------- random corruptions (property)
def corruptions(data, n=25):
    """Truncations and byte flips of ``data`` (a fixed seed: the same cases every run)."""
    for _ in range(n):
        cut = int(RNG.integers(0, len(data)))
        yield data[:cut]
        flipped = bytearray(data)
        for pos in RNG.integers(0, len(data), size=int(RNG.integers(1, 4))):
            flipped[pos] ^= int(RNG.integers(1, 256))
        yield bytes(flipped)


def check_reader(tmp_path, name, data, read, good):
    """Each corruption gives a clear one-line error naming the file, or the right result."""
    for i, bad in enumerate(corruptions(data)):
        p = write(tmp_path / f"{i}-{name}", bad)
        try:
            got = read(p)
        except (ValueError, OSError) as exc:
            msg = str(exc)
            assert "\n" not in msg and os.path.basename(p) in msg, msg
        else:
            assert good(got), (i, name)


def test_idx_random_corruptions(tmp_path):
    arr = RNG.integers(0, 256, (20, 5, 5)).astype(np.uint8)
    for name, data in (("x-idx3-ubyte", idx_bytes(arr)), ("x-idx3-ubyte.gz", gzip.compress(idx_bytes(arr)))):
        # a flip inside the pixels gives other pixels of the right shape: not detectable
        check_reader(tmp_path, name, data, df.read_idx, lambda a: a.shape == arr.shape)


def test_npz_random_corruptions(tmp_path):
    X, y = RNG.random((30, 4)), RNG.integers(0, 3, 30)
    np.savez_compressed(tmp_path / "ok.npz", X=X, y=y)
    data = (tmp_path / "ok.npz").read_bytes()
    check_reader(tmp_path, "d.npz", data, df.load_npz,
                 lambda d: d["train"][0].shape == X.shape and np.array_equal(d["train"][1], y))


def test_csv_random_corruptions(tmp_path):
    text = "".join(f"{i % 3},{i / 10},{i / 7}\n" for i in range(30)).encode()
    check_reader(tmp_path, "d.csv", text, df.load_csv,
                 lambda xy: xy[0].shape[1] == 2 and len(xy[0]) == len(xy[1]))


# ------------------------------------------------------------- class 5 and 7: valid input
def test_csv_with_utf8_bom_keeps_its_first_row(tmp_path):
    p = write(tmp_path / "bom.csv", b"\xef\xbb\xbf1,0.5,0.25\n0,0.125,1\n")
    X, y = df.load_csv(p)
    assert y.tolist() == [1, 0] and X.tolist() == [[0.5, 0.25], [0.125, 1.0]]


def test_idx_with_twelve_classes_accepted(tmp_path):
    images = RNG.integers(0, 256, (24, 3, 3)).astype(np.uint8)
    labels = np.arange(24, dtype=np.uint8) % 12
    for split in ("train", "t10k"):
        write(tmp_path / f"{split}-images-idx3-ubyte", idx_bytes(images))
        write(tmp_path / f"{split}-labels-idx1-ubyte", idx_bytes(labels))
    ds = df.load_dataset(data=str(tmp_path))
    assert ds.n_classes == 12 and ds.y_train.tolist() == labels.tolist()
    assert np.array_equal(ds.X_train, images.reshape(24, 9) / 255.0)


def test_inputs_npz_without_labels(tmp_path):
    X = RNG.random((5, 4))
    np.savez(tmp_path / "onlyX.npz", X=X)
    assert np.array_equal(df.load_inputs(str(tmp_path / "onlyX.npz"), 4, scale="none"), X)


def test_max_bytes_parses_units(monkeypatch):
    for text, value in (("8G", 8 << 30), ("512M", 512 << 20), ("1000", 1000), ("2GiB", 2 << 30)):
        monkeypatch.setenv("LOOPNET_MAX_BYTES", text)
        assert limits.max_bytes() == value
    monkeypatch.setenv("LOOPNET_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="LOOPNET_MAX_BYTES"):
        limits.max_bytes()


# ------------------------------------------------------------------ class 4: caches by content
def test_idx_cache_is_keyed_by_content_not_name(tmp_path):
    from loopnet import distributed
    a = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    b = a[::-1].copy()
    for sub, arr in (("mnist", a), ("fashion", b)):
        (tmp_path / sub).mkdir()
        write(tmp_path / sub / "train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(arr)))
    cache = str(tmp_path / "cache")
    pa = distributed.uncompressed(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", cache_dir=cache)
    pb = distributed.uncompressed(tmp_path / "fashion" / "train-images-idx3-ubyte.gz", cache_dir=cache)
    assert pa != pb
    assert np.array_equal(distributed.open_idx(pa, flatten=False)[:], a)
    assert np.array_equal(distributed.open_idx(pb, flatten=False)[:], b)
    # the same name rewritten with other pixels (even with an older mtime) gets a fresh copy
    p = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    write(p, gzip.compress(idx_bytes(b)))
    os.utime(p, (0, 0))
    assert np.array_equal(distributed.open_idx(p, cache_dir=cache, flatten=False)[:], b)


def test_idx_cache_refuses_huge_declared_size(tmp_path, monkeypatch):
    from loopnet import distributed
    monkeypatch.setenv("LOOPNET_MAX_BYTES", "1000")
    p = write(tmp_path / "x-idx3-ubyte.gz", gzip.compress(idx_bytes(np.zeros((100, 4, 4), np.uint8))))
    one_line_error(lambda: distributed.uncompressed(p, cache_dir=str(tmp_path / "c")), p)
    assert not os.listdir(tmp_path / "c")


# ------------------------------------------------------------- mnist.pkl.gz: bounded unpickling
class _Huge:
    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (2**33,), np.dtype("f8")))


def test_small_pickle_asking_for_64_gib_is_refused(tmp_path):
    from loopnet import mnist_loader
    p = write(tmp_path / "mnist.pkl.gz", gzip.compress(__import__("pickle").dumps(
        ((_Huge(), np.zeros(1, np.int64)),) * 3, protocol=2)))
    assert os.path.getsize(p) < 400
    msg = one_line_error(lambda: mnist_loader._load_pickle(p), p)
    assert "limit" in msg


def test_pickle_stream_inflating_past_the_limit_is_refused(tmp_path, monkeypatch):
    from loopnet import mnist_loader
    X, y = np.zeros((50, 4), np.float32), np.zeros(50, np.int64)
    p = write(tmp_path / "mnist.pkl.gz", gzip.compress(__import__("pickle").dumps(
        ((X, y), (X, y), (X, y)), protocol=2)))
    assert mnist_loader._load_pickle(p)[0][0].shape == (50, 4)
    monkeypatch.setenv("LOOPNET_MAX_BYTES", "500")
    assert "limit" in one_line_error(lambda: mnist_loader._load_pickle(p), p)


def test_a_damaged_numba_cache_is_recompiled_with_a_message(tmp_path):
    """A truncated or overwritten cache file (full disk, killed process) is a cache miss
    that names its directory, never an UnpicklingError from the user's call."""
    import subprocess
    import sys
    mod = tmp_path / "tiny_kernel.py"
    mod.write_text("from loopnet._jit import jit\n\n@jit\ndef twice(x):\n    return 2 * x\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path)
               + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import warnings, tiny_kernel\nwarnings.simplefilter('always')\n"
            "print(tiny_kernel.twice(21))")

    def run():
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300)

    first = run()
    assert first.returncode == 0 and first.stdout.strip() == "42", first.stderr
    files = [p for p in (tmp_path / "cache").rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert files
    for p in files:
        p.write_bytes(b"\x80\x04garbage, not a pickle")
    second = run()
    assert second.returncode == 0 and second.stdout.strip() == "42", second.stderr
    assert "is damaged" in second.stderr and str(tmp_path / "cache") in second.stderr
    assert "Traceback" not in second.stderr
