"""The IDX file format of (Fashion-)MNIST: one parser for whole files and memory-mapped rows.

Header: two zero bytes, a type byte, the number of dimensions d, then d
big-endian uint32 sizes; then the data in C order.  :func:`read_idx` reads a
whole file (gzip-compressed or plain); :class:`IdxRows` memory-maps an
uncompressed one and reads only the rows indexed (what
:func:`loopnet.distributed.open_idx` hands out).  Imports only NumPy.
"""

import copy
import math
import gzip
import os
import zlib

import numpy as np

from .limits import DEFLATE_RATIO, check_bytes, declared_bytes, read_capped, regular_file

#: IDX type byte -> element type (big-endian where it matters).
TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
         0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_header(raw, path):
    """(dtype, shape, offset of the data) from the first bytes of an IDX file.

    Refuses a bad magic number, a truncated header, no dimensions or a dimension of 0.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {bytes(raw[:4]).hex() or 'empty'})")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if ndim == 0 or 0 in shape:
        raise ValueError(f"{path}: IDX header declares an empty array (shape {shape})")
    return TYPES[raw[2]], shape, offset


def data_bytes(dtype, shape):
    """Bytes of data the header announces: itemsize × Π shape (Python integers: no overflow)."""
    return declared_bytes(shape, dtype)


def _read_header(f, path):
    head = f.read(4)
    if len(head) == 4:
        head += f.read(4 * head[3])
    return parse_header(head, path)


def read_idx(path):
    """The whole array of an IDX file, gzip-compressed (``.gz``) or plain.

    The header is read first; its declared size is checked against the file (plain), the
    deflate ratio (gzip) and :func:`loopnet.limits.max_bytes` before anything is allocated,
    and a .gz is inflated in chunks up to the declared size, never further.
    """
    path = os.fspath(path)
    size = regular_file(path, "IDX file")
    gz = path.endswith(".gz")
    try:
        with (gzip.open if gz else open)(path, "rb") as f:
            dtype, shape, offset = _read_header(f, path)
            expected = data_bytes(dtype, shape)
            if not gz and size - offset != expected:
                raise ValueError(f"{path}: IDX data has {size - offset} bytes, header says "
                                 f"{expected} for shape {shape}; the file is truncated or corrupt")
            if gz and expected > DEFLATE_RATIO * size + 4096:
                raise ValueError(f"{path}: IDX header declares {expected:,} bytes (shape "
                                 f"{shape}), more than a {size:,}-byte .gz can hold; corrupt")
            check_bytes(expected, path, f"IDX data of shape {shape}")
            raw = read_capped(f, expected, path)
    except (OSError, EOFError, zlib.error) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: cannot read IDX file: corrupt or truncated "
                         f"{'gzip ' if gz else ''}data ({text})") from None
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


class IdxRows:
    """Row-addressable, memory-mapped view of an uncompressed IDX file.

    ``rows[idx]`` (an int, slice or integer array) reads only those rows from disk and returns
    them as ``dtype``: images flattened to ``(len(idx), prod(shape[1:]))`` when ``flatten``, and
    divided by ``divide_by`` in float64 when it is given (``divide_by=255`` gives exactly the
    numbers ``loopnet.datafiles.load_idx_split`` gives: ``x / 255.0``, then cast to ``dtype``).
    ``len(rows)``, ``rows.shape`` (after flattening), ``rows.ndim``, ``rows.dtype`` and
    ``rows.astype(dtype)`` (another lazy view) let it stand in for the array.
    """

    def __init__(self, path, *, divide_by=None, dtype=None, flatten=True):
        self.path = os.fspath(path)
        regular_file(self.path, "IDX file")
        with open(self.path, "rb") as f:
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
        if head[:2] != b"\0\0" or len(head) < 4 or head[2] not in TYPES:
            raise ValueError(f"{self.path}: not an uncompressed IDX file (magic {head[:4]!r})")
        raw, dims, self.offset = parse_header(head, self.path)
        expected = self.offset + data_bytes(raw, dims)
        if os.path.getsize(self.path) < expected:
            raise ValueError(f"{self.path}: truncated IDX file ({os.path.getsize(self.path)} bytes, "
                             f"header says {expected})")
        self.raw_shape = dims
        self._mm = np.memmap(self.path, dtype=raw, mode="r", offset=self.offset, shape=dims)
        self.divide_by = divide_by
        self.flatten = bool(flatten) and len(dims) > 2
        if dtype is None:
            dtype = np.float64 if divide_by is not None else (np.int64 if len(dims) == 1 else raw.newbyteorder("="))
        self.dtype = np.dtype(dtype)
        self.shape = (dims[0], math.prod(dims[1:])) if self.flatten else dims
        self.ndim = len(self.shape)

    def __len__(self):
        return self.raw_shape[0]

    def __getitem__(self, idx):
        a = np.asarray(self._mm[idx])
        if self.flatten:
            a = a.reshape(a.shape[0], -1) if a.ndim == len(self.raw_shape) else a.reshape(-1)
        if self.divide_by is not None:
            a = a.astype(np.float64) / self.divide_by
        return a.astype(self.dtype)

    def astype(self, dtype):
        """The same rows converted to ``dtype`` when read (nothing is read now)."""
        other = copy.copy(self)
        other.dtype = np.dtype(dtype)
        return other

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        return f"IdxRows({self.path!r}, shape={self.shape}, dtype={self.dtype})"
