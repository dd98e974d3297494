"""Data: the embedded digits, the IDX format of (Fashion-)MNIST, label helpers."""

import gzip
import os
from importlib import resources

import numpy as np

DIGITS_FILE = "digits.npz"


def load_digits():
    """The UCI 8×8 handwritten digits shipped inside loopnet (no download).

    1,797 images of the digits 0–9, each 64 pixel intensities 0–16, from the
    UCI ML repository's "Optical Recognition of Handwritten Digits" test set
    (the copy scikit-learn bundles).  Returns ``X`` (1797, 64) float64 scaled
    to [0, 1] and ``y`` (1797,) int64 labels.
    """
    with resources.files("loopnet").joinpath("datasets", DIGITS_FILE).open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    return images.astype(np.float64) / 16.0, labels.astype(np.int64)


def digits_split(seed=0, test_size=360):
    """A fixed train/held-out split of :func:`load_digits`: 1,437 / 360 examples.

    The split is a seeded permutation, so it is the same on every machine.
    Returns ``(X_train, y_train), (X_test, y_test)``.
    """
    X, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:test_size], order[test_size:]
    return (X[train], y[train]), (X[test], y[test])


IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (MNIST's format), gzip-compressed or plain.

    Header: two zero bytes, a type byte, the number of dimensions d, then d
    big-endian uint32 sizes, then the data in C order.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX data has {len(raw) - header} bytes, header "
                         f"says {expected} for shape {shape}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def one_hot(labels, n_classes):
    """Rows e_{y}: a (len(labels), n_classes) float64 array with a 1 at each label."""
    labels = np.asarray(labels)
    Y = np.zeros((labels.shape[0], n_classes))
    Y[np.arange(labels.shape[0]), labels] = 1.0
    return Y


def load_dataset(name=None, data=None, **options):
    """Training and held-out sets by name or path, as ``loopnet train`` finds them.

    ``load_dataset()`` is the embedded digits; ``load_dataset("fashion-mnist")`` (or
    ``"mnist"``) finds the IDX files via ``data``, ``$LOOPNET_DATA`` or
    ``/usr/share/datasets/<name>``; ``load_dataset(data="train.csv")`` reads a CSV or .npz.
    Returns a :class:`loopnet.datafiles.Dataset` (``X_train``, ``y_train``, ``X_test``,
    ``y_test``, ``divisor``). Options and file layouts: :func:`loopnet.datafiles.load_dataset`.
    """
    from .datafiles import load_dataset as _load
    return _load(name, data, **options)
