"""loopnet.io: pickle-free model files, atomic writes, and refusal of bad files."""

import json
import os
import pickle
import signal
import zipfile

import numpy as np
import pytest

import loopnet
from loopnet import io
from loopnet.io import ModelFormatError


@pytest.fixture(scope="module")
def trained():
    """A small net with a non-trivial optimizer state, RNG state, epoch and history."""
    (X, y), (Xt, yt) = loopnet.data.digits_split()
    net = loopnet.Net([64, 12, 10], seed=3)
    net.fit(X[:200], y[:200], epochs=2, batch_size=10, eta=0.01, optimizer="adam",
            validation_data=(Xt[:50], yt[:50]))
    return net, X[:200], y[:200]


def _same_state(a, b):
    assert a.config == b.config
    assert a.params.tobytes() == b.params.tobytes()
    sa, sb = a.optimizer_state, b.optimizer_state
    assert sa["name"] == sb["name"] and sa["t"] == sb["t"]
    for key in ("velocity", "m", "v"):
        assert sa[key].tobytes() == sb[key].tobytes()
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.epoch == b.epoch
    assert a.history == b.history


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_roundtrip_then_training_continues_identically(trained, tmp_path, suffix):
    net, X, y = trained
    path = tmp_path / ("m" + suffix)
    io.save(net, path, extra={"note": "hello"})
    back, meta = io.load_with_meta(path)
    _same_state(net, back)
    assert meta["extra"] == {"note": "hello"}
    a, b = net.copy(), back
    for n in (a, b):
        n.fit(X, y, epochs=1, batch_size=10, eta=0.01, optimizer="adam")
    assert a.params.tobytes() == b.params.tobytes()


def test_float32_roundtrip_json_and_npz(tmp_path):
    net = loopnet.Net([5, 4, 3], dtype="float32", output="softmax", cost="log_likelihood",
                      activation="tanh", seed=1)
    for name in ("f.npz", "f.json"):
        back = io.load(tmp_path / name) if io.save(net, tmp_path / name) else None
        _same_state(net, back)
        assert back.dtype == np.float32


def test_same_state_same_bytes(trained, tmp_path):
    net = trained[0]
    io.save(net, tmp_path / "a.npz")
    io.save(net, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:   # plain .npy members
        assert set(z.files) == {"meta", "digest", "params", "opt.velocity", "opt.m", "opt.v"}


def test_json_is_network2_shaped(trained, tmp_path):
    net = trained[0]
    io.save(net, tmp_path / "m.json")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["sizes"] == [64, 12, 10] and doc["cost"] == "QuadraticCost"
    assert [np.array(w).shape for w in doc["weights"]] == [(12, 64), (10, 12)]
    assert [np.array(b).shape for b in doc["biases"]] == [(12, 1), (10, 1)]


def test_plain_network2_file_loads(tmp_path):
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((3, 2)), rng.standard_normal((1, 3))]
    bs = [rng.standard_normal((3, 1)), rng.standard_normal((1, 1))]
    doc = {"sizes": [2, 3, 1], "weights": [w.tolist() for w in ws],
           "biases": [b.tolist() for b in bs], "cost": "CrossEntropyCost"}
    (tmp_path / "n2.json").write_text(json.dumps(doc))
    net = io.load(tmp_path / "n2.json")
    assert net.cost_name == "cross_entropy" and net.activation == "sigmoid"
    for w, w0 in zip(net.weights, ws):
        assert np.array_equal(w, w0)
    assert np.array_equal(net.biases[1], bs[1].ravel())


# ----------------------------------------------------------------- atomic writes

def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old content")

    def write(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, write)
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_ctrl_c_during_save_is_deferred_until_the_file_is_complete(trained, tmp_path):
    net = trained[0]
    target = tmp_path / "m.npz"

    def write(f):
        os.kill(os.getpid(), signal.SIGINT)   # arrives mid-write
        f.write(b"x" * 10)
        f.write(b"y" * 10)

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(target, write)
    assert target.read_bytes() == b"x" * 10 + b"y" * 10
    io.save(net, target)
    io.load(target)


def test_file_mode_follows_umask(trained, tmp_path):
    io.save(trained[0], tmp_path / "m.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(tmp_path / "m.npz").st_mode & 0o777) == (0o666 & ~umask)


# ----------------------------------------------------------------- refusing bad files

@pytest.fixture
def saved(trained, tmp_path):
    path = tmp_path / "good.npz"
    io.save(trained[0], path)
    return path


def _expect(path, *words):
    before = open(path, "rb").read() if os.path.isfile(path) else None
    with pytest.raises(ModelFormatError) as e:
        io.load(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    for w in words:
        assert w in msg, msg
    if before is not None:
        assert open(path, "rb").read() == before    # loading changes nothing
    return msg


def test_truncations_are_refused(saved):
    data = saved.read_bytes()
    for cut in sorted({1, 10, 100, len(data) // 4, len(data) // 2, len(data) - 22,
                       len(data) - 1}):
        saved.write_bytes(data[:cut])
        _expect(saved)


def test_byte_flips_never_load_silently(saved, trained):
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(data), 40, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        saved.write_bytes(bytes(flipped))
        try:
            back = io.load(saved)
        except ModelFormatError:
            continue
        _same_state(trained[0], back)   # e.g. a flip in an unused zip field


def _rewrite(path, mutate_meta=None, mutate_params=None, fix_digest=True):
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(members["meta"].tobytes())
    if mutate_meta:
        mutate_meta(meta)
    if mutate_params:
        members["params"] = mutate_params(members["params"].copy())
    raw = json.dumps(meta).encode()
    members["meta"] = np.frombuffer(raw, np.uint8)
    if fix_digest:
        import hashlib
        members["digest"] = np.frombuffer(hashlib.sha256(raw).hexdigest().encode(), np.uint8)
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in members.items():
            with zf.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, v, allow_pickle=False)


def test_newer_version_is_refused(saved):
    _rewrite(saved, mutate_meta=lambda m: m.update(format_version=99))
    _expect(saved, "newer", "version 99")


def test_tampered_weights_are_refused(saved):
    def bump(p):
        p[0] += 1.0
        return p
    _rewrite(saved, mutate_params=bump)
    _expect(saved, "checksum")


def test_tampered_metadata_is_refused(saved):
    _rewrite(saved, mutate_meta=lambda m: m["config"].update(sizes=[64, 13, 10]),
             fix_digest=False)
    _expect(saved, "checksum")


def test_wrong_shapes_in_consistent_metadata_are_refused(saved):
    _rewrite(saved, mutate_meta=lambda m: m["config"].update(sizes=[64, 13, 10]))
    _expect(saved, "shape")


def test_pickle_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _expect(path, "pickle")


def test_object_array_npz_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, meta=np.array([{"a": 1}], dtype=object),
             digest=np.zeros(3, np.uint8))
    _expect(path, "pickle")


@pytest.mark.parametrize("content,word", [
    (b"", "empty"), (b"hello world", "not a loopnet model"), (b"{\"sizes\": [2, 3", "JSON"),
    (b"{\"a\": 1}", "not a model"), (b"\x93NUMPY\x01\x00", ".npy"),
])
def test_other_junk_is_refused(tmp_path, content, word):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    _expect(path, word)


def test_json_wrong_shapes_and_tampering(trained, tmp_path):
    path = tmp_path / "m.json"
    io.save(trained[0], path)
    good = json.loads(path.read_text())
    doc = json.loads(path.read_text())
    doc["weights"][0] = doc["weights"][0][:-1]          # drop a row
    path.write_text(json.dumps(doc))
    _expect(path, "shape")
    doc = json.loads(json.dumps(good))
    doc["weights"][1][0][0] += 0.5                       # tamper a weight
    path.write_text(json.dumps(doc))
    _expect(path, "checksum")
    doc = json.loads(json.dumps(good))
    doc["loopnet"]["epoch"] = 77                         # tamper the metadata
    path.write_text(json.dumps(doc))
    _expect(path, "checksum")
    plain = {"sizes": [2, 2], "weights": [[[1, 2], [3, 4]]], "biases": [[[0], [0]]],
             "cost": "FancyCost"}
    path.write_text(json.dumps(plain))
    _expect(path, "FancyCost")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "nope.npz")
    _expect(tmp_path, "directory")
