"""Size limits and safe opening of input files: nothing is allocated before it is checked.

Every reader of loopnet (IDX, .npz data sets and models, CSV, JSON models, mnist.pkl.gz)
asks these before allocating:

* :func:`regular_file` refuses what is not a regular file (standard input, /dev/zero,
  a fifo, a directory): such a "file" can be endless;
* :func:`check_bytes` refuses a declared size above :func:`max_bytes` (default 4 GiB;
  raise it with the environment variable ``LOOPNET_MAX_BYTES``, e.g. ``16G``);
* :func:`npz_members` reads the directory of a ``.npz`` archive and the header of each
  ``.npy`` member (shape and dtype) without inflating any data, so a caller can compare
  the declared shapes with what it expects before reading them with :func:`read_member`.

Every error is a ``ValueError`` whose one-line message names the file.  Imports only
NumPy and the standard library: it sits on the lowest floor.
"""

import math
import os
import stat
import zipfile
import zlib

import numpy as np

#: The environment variable that raises (or lowers) :func:`max_bytes`.
ENV = "LOOPNET_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: deflate inflates at most about 1032:1; a declared size beyond that is a lie.
DEFLATE_RATIO = 1100


class FileLimitError(ValueError):
    """A file that declares more data than it holds or than loopnet is allowed to allocate."""


def max_bytes():
    """The most bytes any one array read from a file may take (``$LOOPNET_MAX_BYTES``)."""
    text = os.environ.get(ENV, "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return DEFAULT_MAX_BYTES
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        value = float(text[:len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected a size such as 8G or "
                         "8000000000") from None
    if not value > 0:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: must be positive")
    return int(value)


def check_bytes(n_bytes, path, what="data"):
    """FileLimitError when ``n_bytes`` (a declared size) is above :func:`max_bytes`."""
    limit = max_bytes()
    if n_bytes > limit:
        raise FileLimitError(
            f"{path}: {what} would take {n_bytes:,} bytes, more than the limit of {limit:,} "
            f"(set {ENV}, e.g. {ENV}=16G, to allow more)")
    return n_bytes


def declared_bytes(shape, dtype):
    """itemsize × Π shape in Python integers (no overflow)."""
    return math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize


def regular_file(path, what="file"):
    """``path`` as a string after checking it names an existing regular file; its size."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file (a device, fifo or socket); loopnet "
                         f"reads a {what} only from a regular file")
    return st.st_size


def read_capped(f, n_bytes, path, chunk=1 << 24):
    """Exactly ``n_bytes`` from the stream ``f``, read in chunks (never more); ValueError when
    it holds fewer (truncated) or more (trailing data)."""
    parts, left = [], n_bytes
    while left > 0:
        block = f.read(min(chunk, left))
        if not block:
            raise ValueError(f"{path}: truncated: {n_bytes - left:,} bytes of data where "
                             f"the header announces {n_bytes:,}")
        parts.append(block)
        left -= len(block)
    if f.read(1):
        raise ValueError(f"{path}: more data than the header announces ({n_bytes:,} bytes); "
                         "the file is corrupt")
    return b"".join(parts)


# --------------------------------------------------------------------------- .npz

def npz_members(path, max_members=64):
    """{member name without .npy: (shape, dtype, ZipInfo)} of a ``.npz``, inflating nothing.

    Refuses pickled (object) members, members whose zip size disagrees with their ``.npy``
    header, and arrays above :func:`max_bytes`.
    """
    path = os.fspath(path)
    size = regular_file(path, ".npz file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: truncated or corrupt .npz file ({_first_line(exc)})") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > max_members:
            raise ValueError(f"{path}: {len(infos)} members; a loopnet .npz holds at most "
                             f"{max_members}")
        out = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type == zipfile.ZIP_DEFLATED and \
                    info.file_size > DEFLATE_RATIO * max(info.compress_size, 1) + 4096:
                raise ValueError(f"{path}: member '{name}' claims {info.file_size:,} bytes "
                                 f"from {info.compress_size:,} compressed; corrupt")
            if info.compress_size > size:
                raise ValueError(f"{path}: member '{name}' is larger than the file; truncated "
                                 "or corrupt")
            shape, dtype, header_len = _npy_header(zf, info, path, name)
            nbytes = declared_bytes(shape, dtype)
            check_bytes(nbytes, path, f"array '{name}' {shape}")
            if header_len + nbytes != info.file_size:
                raise ValueError(f"{path}: member '{name}' holds {info.file_size - header_len:,}"
                                 f" bytes of data, its header announces {nbytes:,}; corrupt")
            out[name] = (shape, dtype, info)
    return out


def _npy_header(zf, info, path, name):
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            header_len = f.tell() if hasattr(f, "tell") else None
    except Exception as exc:   # BadZipFile, zlib.error, EOFError, ValueError from the header
        raise ValueError(f"{path}: member '{name}' is not a readable .npy array "
                         f"({_first_line(exc)})") from None
    if dtype.hasobject:
        raise ValueError(f"{path}: member '{name}' holds pickled objects; refused "
                         "(allow_pickle=False)")
    return tuple(shape), dtype, header_len


def read_member(path, info):
    """The array of one ``.npz`` member (checked by :func:`npz_members` first)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: member '{info.filename}' is truncated or corrupt "
                         f"({_first_line(exc)})") from None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
