"""Issue 14 through the model files: corrupt, tampered or oversized .npz/.json models give one
line naming the file (never a traceback, a crash or a 2 GiB allocation); metadata is validated."""

import io as _io
import json
import os
import zipfile

import numpy as np
import pytest

from loopnet import Net, io

RNG = np.random.default_rng(1414)


@pytest.fixture(scope="module")
def trained():
    net = Net([4, 5, 3], seed=2)
    X, y = RNG.random((12, 4)), RNG.integers(0, 3, 12)
    net.fit(X, y, epochs=2, batch_size=4, eta=0.5, optimizer="adam")
    return net


def refused(path, *fragments):
    with pytest.raises(io.ModelFormatError) as info:
        io.load(path)
    msg = str(info.value)
    assert "\n" not in msg and os.path.basename(str(path)) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def same(a, b):
    return (a.config == b.config and a.params.tobytes() == b.params.tobytes()
            and a.epoch == b.epoch and a.history == b.history)


def tampered_npz(net, path, edit):
    """A model whose metadata was edited and re-digested (checksums valid, content wrong)."""
    meta, arrays = io._state_of(net)
    meta["extra"] = {}
    meta["arrays"] = {k: {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": io._sha256(a)}
                      for k, a in arrays.items()}
    edit(meta)
    io._save_npz(str(path), meta, arrays)
    return path


def tampered_json(net, path, edit):
    io.save(net, path)
    doc = json.loads(path.read_text())
    edit(doc["loopnet"])
    doc["loopnet"]["digest"] = io._digest_meta(doc["loopnet"])
    path.write_text(json.dumps(doc))
    return path


EDITS = {
    "negative epoch": lambda m: m.update(epoch=-5),
    "bool epoch": lambda m: m.update(epoch=True),
    "history not dicts": lambda m: m.update(history=["x", 3]),
    "history bad epoch": lambda m: m.update(history=[{"epoch": "one"}]),
    "config a list": lambda m: m.update(config=[1, 2]),
    "sizes strings": lambda m: m["config"].update(sizes=["4", "5", "3"]),
    "activation number": lambda m: m["config"].update(activation=5),
    "optimizer scalars list": lambda m: m["optimizer"].update(scalars=[1]),
    "optimizer t negative": lambda m: m["optimizer"]["scalars"].update(t=-1),
    "optimizer name number": lambda m: m["optimizer"]["scalars"].update(name=7),
    "rng state junk": lambda m: m.update(rng_state={"bit_generator": "PCG64", "state": 5}),
    "extra a list": lambda m: m.update(extra=[1]),
    "arrays table junk": lambda m: m.update(arrays={"params": 5}),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("ext", ["npz", "json"])
def test_wrong_inner_types_with_valid_checksums(tmp_path, trained, edit, ext):
    maker = tampered_npz if ext == "npz" else tampered_json
    path = maker(trained, tmp_path / f"m.{ext}", EDITS[edit])
    refused(path)


def test_deep_json_one_line(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    refused(p)
    p.write_text('{"sizes": [2, 2], "weights": ' + "[" * 100_000 + "]" * 100_000 + ', "biases": []}')
    refused(p)


def test_member_declaring_huge_array_refused_before_inflating(tmp_path, trained):
    """params.npy re-written with a header announcing 2**31 float64: refused from the header."""
    good = tmp_path / "good.npz"
    io.save(trained, good)
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "params.npy":
                header = np.lib.format.header_data_from_array_1_0(np.zeros(2**31))
                b = _io.BytesIO()
                np.lib.format.write_array_header_2_0(b, header)
                data = b.getvalue() + bytes(1 << 20)
            dst.writestr(info.filename, data)
    refused(bad)


def test_random_corruptions_of_npz_and_json(tmp_path, trained):
    for ext in ("npz", "json"):
        good = tmp_path / f"good.{ext}"
        io.save(trained, good)
        data = good.read_bytes()
        for i in range(30):
            bad = bytearray(data[:int(RNG.integers(0, len(data)))] if i % 2 else data)
            if not i % 2:
                for pos in RNG.integers(0, len(bad), size=int(RNG.integers(1, 4))):
                    bad[pos] ^= int(RNG.integers(1, 256))
            p = tmp_path / f"{i}.{ext}"
            p.write_bytes(bytes(bad))
            try:
                net = io.load(p)
            except io.ModelFormatError as exc:
                assert "\n" not in str(exc) and p.name in str(exc), str(exc)
            else:      # a flip the checksums cannot see (zip padding, JSON whitespace)
                assert same(net, trained), (ext, i)


def test_device_refused():
    with pytest.raises(io.ModelFormatError, match="not a regular file"):
        io.load("/dev/zero")


def test_epoch_minus_five_does_not_load(tmp_path, trained):
    p = tampered_npz(trained, tmp_path / "m.npz", EDITS["negative epoch"])
    refused(p, "epoch")
