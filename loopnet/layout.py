"""Fields of many Python objects read at once, from the memory where the interpreter keeps them.

The drop-ins take Nielsen's data as a list of 50,000 (x, y) tuples of small arrays.  Asking
each object for its attributes from Python costs 0.1-0.3 us per attribute and object (an
``x.shape`` builds a tuple, ``x.flags`` an object): 30-80 ms per list, as much as a third of
the epoch the list is for.  The same facts are words in each object's C struct: the items of
a list and of a tuple, an object's type, an ndarray's data pointer, ndim, dimensions, base,
dtype and flags.  Here they are read for all objects at once, by one NumPy gather per field
over a view of the memory the objects span (CPython's ``id`` is the object's address; only
the words asked for are read, and every one of them lies inside an object the caller holds:
NumPy may let other threads run during a gather, so the callers read a private copy of a
list, whose tuples cannot change; what no caller can guard is another thread assigning a new
``shape`` to one of the arrays during the call, which is not supported).

The layouts are CPython's (PyObject_HEAD, PyVarObject, PyTupleObject, PyListObject) and
NumPy's (PyArrayObject_fields), which are part of their C ABIs.  They are not assumed: every
offset is checked once against the attributes of probe objects built for the purpose
(:func:`trusted`), and the callers check a few of their own objects the same way.  Where the
check fails (another interpreter or layout, a big-endian machine), the functions here answer
None and their callers ask each object from Python as before: slower, never wrong.
"""

import sys

import numpy as np

#: Size of a bare object's header (ob_refcnt, ob_type); ob_type is its last word.
_HEAD = object.__basicsize__
_TYPE = _HEAD - 8
#: PyVarObject's ob_size follows the header; a tuple's items start at its basic size; a
#: list's item array pointer follows its ob_size.
_SIZE = _HEAD
_TUPLE_ITEMS = tuple.__basicsize__
_LIST_ITEMS = _HEAD + 8
#: PyArrayObject_fields after the header: data, nd (int), dimensions, strides, base, descr,
#: flags (int), each in a word of its own.
_DATA, _NDIM, _DIMS, _STRIDES, _BASE, _DESCR, _FLAGS = (_HEAD + 8 * k for k in range(7))
#: NPY_ARRAY_C_CONTIGUOUS
_C_CONTIGUOUS = 0x1


class _Memory(object):
    """``np.asarray`` of it is an int64 view of the memory from address ``lo``, ``n`` words."""

    def __init__(self, lo, n):
        self.__array_interface__ = {"data": (lo, True), "shape": (n,), "typestr": "<i8",
                                    "version": 3}


def words_at(addresses, offsets=(0,)):
    """(len(addresses), len(offsets)) int64: the 8-byte word at each address + offset (all
    8-aligned, each inside a live object)."""
    addresses = np.asarray(addresses, np.int64)
    offsets = np.asarray(offsets, np.int64)
    if len(addresses) == 0:
        return np.zeros((0, len(offsets)), np.int64)
    lo = int(addresses.min()) + int(offsets.min())
    n = (int(addresses.max()) + int(offsets.max()) - lo) // 8 + 1
    memory = np.asarray(_Memory(lo, n))
    return memory[((addresses - lo) >> 3)[:, None] + (offsets >> 3)]


def word_at(addresses):
    """The 8-byte word at each of ``addresses`` (int64, 8-aligned, inside live objects)."""
    return words_at(addresses)[:, 0]


def _int32(words):
    """An int field (the low 4 bytes of its word on a little-endian machine)."""
    return (words & 0xFFFFFFFF).astype(np.int32, copy=False).astype(np.int64)


def _aligned(ids):
    return len(ids) == 0 or not (ids & 7).any()


def list_items(lst):
    """id() of every item of the list ``lst`` (int64), or None."""
    if type(lst) is not list or not _state["trusted"]:
        return None
    n = len(lst)
    if n == 0:
        return np.zeros(0, np.int64)
    items = int(word_at([id(lst) + _LIST_ITEMS])[0])
    if items % 8:
        return None
    ids = words_at([items], np.arange(n, dtype=np.int64) * 8)[0]
    if not all(ids[i] == id(lst[i]) for i in {0, n // 2, n - 1}):
        return None
    return ids


def pair_items(pair_ids):
    """(ids of the first items, ids of the second items) of the objects with ``pair_ids``,
    when every one of them is a tuple of two items; else None."""
    pair_ids = np.asarray(pair_ids, np.int64)
    if not _state["trusted"] or not _aligned(pair_ids):
        return None
    if len(pair_ids) and ((word_at(pair_ids + _TYPE) != id(tuple)).any()
                          or (word_at(pair_ids + _SIZE) != 2).any()):
        return None
    items = words_at(pair_ids + _TUPLE_ITEMS, (0, 8))
    return items[:, 0], items[:, 1]


class ArrayFields(object):
    """What NumPy keeps in each of many ndarray objects, as int64 arrays: ``data`` (address of
    the first element), ``ndim``, ``dim0`` and ``dim1`` (0 where there is no such dimension),
    ``base`` and ``descr`` (id() of the base array, 0 if none, and of the dtype) and
    ``c_contiguous`` (bool)."""

    __slots__ = ("data", "ndim", "dim0", "dim1", "base", "descr", "c_contiguous")


def array_fields(ids, dims=2):
    """:class:`ArrayFields` of the objects with ``ids``, when every one is exactly an
    ndarray (not a subclass) with at most ``dims`` dimensions (1 or 2); else None."""
    ids = np.asarray(ids, np.int64)
    if not _state["trusted"] or not _aligned(ids) or dims not in (1, 2):
        return None
    if len(ids) and (word_at(ids + _TYPE) != id(np.ndarray)).any():
        return None
    w = words_at(ids, (_DATA, _NDIM, _DIMS, _BASE, _DESCR, _FLAGS))
    f = ArrayFields()
    f.ndim = _int32(w[:, 1])
    if ((f.ndim < 1) | (f.ndim > dims)).any() or not _aligned(w[:, 2]):
        return None
    f.dim0 = word_at(w[:, 2])
    f.dim1 = np.zeros(len(ids), np.int64)
    two = f.ndim == 2                       # (a 1-d array's dimensions hold one word)
    f.dim1[two] = word_at(w[two, 2] + 8)
    f.data, f.base, f.descr = w[:, 0], w[:, 3], w[:, 4]
    f.c_contiguous = (_int32(w[:, 5]) & _C_CONTIGUOUS) != 0
    return f


def agrees(fields, arrays, i):
    """Whether :class:`ArrayFields` entry ``i`` says what ``arrays[i]`` says of itself."""
    a = arrays[i]
    base = a.base
    return (fields.data[i] == a.__array_interface__["data"][0] and fields.ndim[i] == a.ndim
            and (fields.dim0[i], fields.dim1[i])[:a.ndim] == a.shape
            and fields.base[i] == (0 if base is None else id(base))
            and fields.descr[i] == id(a.dtype)
            and bool(fields.c_contiguous[i]) == a.flags.c_contiguous)


def gather(data, n, dtype):
    """(len(data), n) array of ``dtype`` whose row i is the n elements from address data[i]
    (each the start of a live C-contiguous array of ``dtype`` with n elements); 8-byte
    dtypes only."""
    dtype = np.dtype(dtype)
    if dtype.itemsize != 8:
        raise ValueError("gather reads 8-byte elements")
    return words_at(data, 8 * np.arange(n)).view(dtype)


_state = {"trusted": False}


class _Subclass(np.ndarray):
    """(an ndarray subclass, which array_fields must refuse)"""


def _probe():
    """Whether every offset above reads, on objects made here, what Python says of them.

    Words inside the objects are compared first; a pointer (a list's item array, an array's
    dimensions) is followed only once the words beside it have matched, so that another
    layout is refused before anything outside the objects is read."""
    if sys.implementation.name != "cpython" or sys.byteorder != "little" \
            or np.dtype(np.intp).itemsize != 8 or list.__basicsize__ < _LIST_ITEMS + 8 \
            or np.ndarray.__basicsize__ < _FLAGS + 8:
        return False
    M = np.arange(30.0).reshape(5, 6)
    arrays = [M[1], M[2:4], M.T, np.zeros((3, 1), np.float32), M[:, 1]]
    pairs = [(a, i) for i, a in enumerate(arrays)]
    not_pairs = [(1,), (1, 2, 3), [1, 2]]          # (held while their ids are read)
    not_arrays = [M.reshape(5, 3, 2), [], M.view(_Subclass), np.float64(1.0)]
    inside = (words_at([id(pairs)], (_TYPE, _SIZE))[0].tolist()
              + words_at([id(pairs[1])], (_TYPE, _SIZE, _TUPLE_ITEMS, _TUPLE_ITEMS + 8))[0].tolist()
              + words_at([id(arrays[1])], (_TYPE, _DATA, _BASE, _DESCR))[0].tolist())
    if inside != [id(list), len(pairs), id(tuple), 2, id(arrays[1]), id(1),
                  id(np.ndarray), arrays[1].__array_interface__["data"][0], id(arrays[1].base),
                  id(arrays[1].dtype)]:
        return False
    ids = list_items(pairs)
    if ids is None or list(ids) != [id(p) for p in pairs]:
        return False
    items = pair_items(ids)
    if items is None or list(items[0]) != [id(a) for a in arrays] \
            or list(items[1]) != [id(i) for i in range(len(arrays))] \
            or any(pair_items([id(p)]) is not None for p in not_pairs):
        return False
    fields = array_fields(items[0])
    return fields is not None and all(agrees(fields, arrays, i) for i in range(len(arrays))) \
        and all(array_fields([id(a)]) is None for a in not_arrays) \
        and np.array_equal(gather(fields.data[:2], 6, np.float64), M[1:3])


def trusted():
    """Whether this interpreter's and NumPy's layouts are the ones read here (probed once)."""
    return _state["trusted"]


_state["trusted"] = True                    # (let the probe use the functions)
try:
    _state["trusted"] = bool(_probe())
except Exception:                           # any surprise means: do not read memory here
    _state["trusted"] = False
