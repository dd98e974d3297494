"""Lists of (x, y) pairs whose arrays are rows of matrices, found again by identity.

Nielsen's code takes its data as a list of (x, y) pairs of small arrays; the compiled
core takes matrices.  The drop-ins (loopnet.network, network2) convert a list once and
remember here which matrices its pairs are rows of, so that a later call with the same
pairs, in any order (SGD shuffles the list in place), from any Network, costs a lookup
instead of a conversion.  ``mnist_loader.load_data_wrapper()`` remembers its own lists
the same way: their x's are views of its image matrices, so they need no conversion at
all.

A set of pairs is recognised by the identity of each pair's x and y, which it holds (so
that no other object can take their ids while it exists).  Once the caller has let go of
the pairs of a set (judged on a sample of them), the set (its matrices with it) is
dropped the next time another set is remembered; at most :data:`SETS` sets are kept.
What identity cannot see: writing into a pair's arrays between calls, which changes a
converted copy nowhere (the loaders' matrices ARE the x's memory, so there it is seen).
To change the data, put new pairs in the list.

:func:`data_addresses` lets the drop-ins see that the x's of a list made by Nielsen's own
loader are rows of one image matrix, and train on it in place as on ours.
"""

import ctypes
import operator
import sys

import numpy as np

#: Sets remembered at once (the oldest is forgotten first).
SETS = 8
#: Pairs of a set looked at to tell whether the caller still holds it.
SAMPLE = 64

_sets = []


class _Set(object):
    """One list of pairs: pair i is (row r_i of X, targets[r_i]) at the time it was remembered."""

    __slots__ = ("X", "targets", "xs", "ys", "x_ids", "row_of", "y_ids")

    def arrays(self, data, x_ids):
        """((X, targets), rows) if every pair of ``data`` (whose x's have the ids ``x_ids``) is
        one of this set's, else None."""
        first = np.searchsorted(self.x_ids, x_ids[0])       # most sets fail here, at once
        if first == len(self.x_ids) or self.x_ids[first] != x_ids[0]:
            return None
        pos = np.searchsorted(self.x_ids, x_ids)
        pos[pos == len(self.x_ids)] = 0
        if not np.array_equal(self.x_ids[pos], x_ids):
            return None
        rows = self.row_of[pos]
        y_ids = _ids(data, 1)
        if y_ids is None or not np.array_equal(self.y_ids[rows], y_ids):
            return None
        return (self.X, self.targets), rows

    def in_use(self):
        """Whether anything but this set still refers to one of :data:`SAMPLE` evenly spaced
        x's of it (e.g. the caller's pairs): sys.getrefcount counts this set's list and its
        own argument, 2.  (Sampled: a check of every x of every set cost more than the
        conversion it saves.  A set dropped while some of its pairs are still held costs
        those pairs a new conversion, if they are used again, nothing else.)"""
        step = max(1, len(self.xs) // SAMPLE)
        return any(sys.getrefcount(self.xs[i]) > 2 for i in range(0, len(self.xs), step))


_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def _ids(data, k):
    """id(pair[k]) of every pair, or None if some pair has no item k."""
    try:
        return np.fromiter(map(id, map((_first, _second)[k], data)), np.uint64, len(data))
    except (TypeError, IndexError, KeyError):
        return None


def remember(data, X, targets, rows=None):
    """Note that pair i of ``data`` (a list) is (x_i, y_i) with x_i's values in row r_i of
    ``X`` and y_i's in ``targets[r_i]`` (a row of one-hot targets, or a label), where
    r_i = ``rows[i]`` (distinct), or i when ``rows`` is None."""
    entry = _Set()
    entry.X, entry.targets = X, targets
    entry.xs, entry.ys = list(map(_first, data)), list(map(_second, data))
    rows = np.arange(len(data)) if rows is None else rows
    ids = np.fromiter(map(id, entry.xs), np.uint64, len(entry.xs))
    by_id = np.argsort(ids, kind="stable")
    entry.x_ids, entry.row_of = ids[by_id], rows[by_id]
    entry.y_ids = np.zeros(len(X), np.uint64)           # indexed by row of X
    entry.y_ids[rows] = np.fromiter(map(id, entry.ys), np.uint64, len(entry.ys))
    _sets[:] = [s for s in _sets if s.in_use()][-(SETS - 1):] + [entry]


def find(data):
    """((X, targets), rows) when every pair of ``data`` (a list) belongs to one remembered
    set, in any order: pair i is (row rows[i] of X, targets[rows[i]]).  None otherwise."""
    if not data or not _sets:
        return None
    x_ids = _ids(data, 0)
    if x_ids is None:
        return None
    for entry in reversed(_sets):
        found = entry.arrays(data, x_ids)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------
# Where many arrays' data start, at once
# ---------------------------------------------------------------------------

#: Offset of ``data`` in NumPy's array object (PyArrayObject_fields: PyObject_HEAD, then the
#: data pointer): the size of a bare object's header.
_DATA_OFFSET = object.__basicsize__


def data_addresses(arrays):
    """The address of the first element of each ndarray in ``arrays`` (int64), or None.

    ``x.__array_interface__["data"][0]`` says it through a new dict per array, 4 us each:
    for the 50,000 views of Nielsen's loader, as long as copying them.  Here the pointer
    is read where NumPy keeps it, in each array object's C struct (CPython's ``id`` is the
    object's address), all at once through one NumPy view of the memory the objects span;
    only those words are read.  The reading is checked against ``__array_interface__`` on
    a few of the arrays; if NumPy or the interpreter lays the object out otherwise, the
    answer is None and the caller copies the arrays as usual.
    """
    ids = np.fromiter(map(id, arrays), np.int64, len(arrays))
    if len(ids) == 0 or (ids % 8).any() or _DATA_OFFSET % 8:     # whole words only
        return None
    lo = int(ids.min())
    words = (int(ids.max()) - lo + _DATA_OFFSET) // 8 + 1
    try:
        memory = np.frombuffer((ctypes.c_int64 * words).from_address(lo), np.int64)
    except (ValueError, TypeError, OverflowError, MemoryError):
        return None
    found = memory[(ids - lo + _DATA_OFFSET) // 8]
    for i in {0, len(arrays) // 2, len(arrays) - 1}:
        if found[i] != arrays[i].__array_interface__["data"][0]:
            return None
    return found
