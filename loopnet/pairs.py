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
dropped the next time another set is remembered, or by :func:`release`; at most
:data:`SETS` sets are kept.
What identity cannot see: writing into a pair's arrays between calls, which changes a
converted copy nowhere (the loaders' matrices ARE the x's memory, so there it is seen).
To change the data, put new pairs in the list.

The ids, and what the drop-ins need to know of 50,000 small arrays, are read from the
objects' memory all at once where that is safe (:mod:`loopnet.layout`).
"""

import collections
import operator
import sys

import numpy as np

from loopnet import layout

#: Sets remembered at once (the oldest is forgotten first).
SETS = 8
#: Pairs of a set looked at to tell whether the caller still holds it.
SAMPLE = 64

_sets = []


class _Set(object):
    """One list of pairs: pair i is (row r_i of X, targets[r_i]) at the time it was remembered."""

    __slots__ = ("X", "targets", "held", "x_ids", "row_of", "y_ids")

    def arrays(self, ids):
        """((X, targets), rows) if every pair whose x's and y's have the ``ids`` is one of
        this set's, else None."""
        x_ids, y_ids = ids.x, ids.y
        first = np.searchsorted(self.x_ids, x_ids[0])       # most sets fail here, at once
        if first == len(self.x_ids) or self.x_ids[first] != x_ids[0]:
            return None
        pos = np.searchsorted(self.x_ids, x_ids)
        pos[pos == len(self.x_ids)] = 0
        if not np.array_equal(self.x_ids[pos], x_ids):
            return None
        rows = self.row_of[pos]
        if not np.array_equal(self.y_ids[rows], y_ids):
            return None
        return (self.X, self.targets), rows

    def in_use(self):
        """Whether anything but this set still refers to one of :data:`SAMPLE` evenly spaced
        items it holds (the caller's pairs, or their x's): sys.getrefcount counts this set's
        own reference and its argument, 2.  (Sampled: a check of every pair of every set cost
        more than the conversion it saves.  A set dropped while some of its pairs are still
        held costs those pairs a new conversion, if they are used again, nothing else.)"""
        held = self.held
        step = max(1, len(held) // SAMPLE)
        return any(sys.getrefcount(held[i]) > 2 or (type(held[i]) is tuple
                                                     and sys.getrefcount(held[i][0]) > 2)
                   for i in range(0, len(held), step))


_first, _second = operator.itemgetter(0), operator.itemgetter(1)


#: item_ids' answer: id(x) and id(y) of every pair (int64 arrays), whether every pair is a
#: tuple of two (which cannot change: holding the pairs then holds their x's and y's), and
#: ``held``, a copy of the list that held every pair while their ids were read.
Ids = collections.namedtuple("Ids", "x y tuples held")


def item_ids(data):
    """:data:`Ids` of the list ``data``, or None if some item is not a pair.  Read from the
    list's and tuples' memory (:mod:`loopnet.layout`) when every pair is a tuple; else asked
    pair by pair.  The reading is done on a copy of the list, so that no other thread can
    change or free a pair while its memory is read."""
    held = list(data)
    ids = layout.list_items(held)
    items = None if ids is None else layout.pair_items(ids)
    if items is not None:
        return Ids(items[0], items[1], True, held)
    try:
        return Ids(*(np.fromiter(map(id, map(item, held)), np.int64, len(held))
                     for item in (_first, _second)), tuples=False, held=held)
    except (TypeError, IndexError, KeyError):
        return None


def remember(data, X, targets, rows=None, ids=None):
    """Note that pair i of ``data`` (a list) is (x_i, y_i) with x_i's values in row r_i of
    ``X`` and y_i's in ``targets[r_i]`` (a row of one-hot targets, or a label), where
    r_i = ``rows[i]`` (distinct), or i when ``rows`` is None.  ``ids``: item_ids(data), if
    known.  Pairs that unpack but cannot be indexed (generators, say) are not remembered."""
    ids = item_ids(data) if ids is None else ids
    if ids is None:
        return
    entry = _Set()
    entry.X, entry.targets = X, targets
    # What keeps the ids taken: the pairs themselves when they are tuples (one reference
    # each, not two, on 50,000 objects fewer), else every x and y.
    held = ids.held
    entry.held = held if ids.tuples else list(map(_first, held)) + list(map(_second, held))
    rows = np.arange(len(data)) if rows is None else rows
    by_id = np.argsort(ids.x, kind="stable")
    entry.x_ids, entry.row_of = ids.x[by_id], rows[by_id]
    entry.y_ids = np.zeros(len(X), np.int64)            # indexed by row of X
    entry.y_ids[rows] = ids.y
    release()
    _sets[:] = _sets[-(SETS - 1):] + [entry]


def release():
    """Forget now every set whose pairs the caller no longer holds (judged on a sample), and
    with it the matrices and the 100,000 small arrays it kept alive.  Done anyway when the
    next set is remembered; freeing them costs about 15-20 ms for 50,000 pairs, paid here
    by whoever calls this (a script that drops its data between timed calls, say)."""
    _sets[:] = [s for s in _sets if s.in_use()]


def find(data, ids=None):
    """((X, targets), rows) when every pair of ``data`` (a list) belongs to one remembered
    set, in any order: pair i is (row rows[i] of X, targets[rows[i]]).  None otherwise.
    ``ids``: item_ids(data), if known."""
    if not data or not _sets:
        return None
    ids = item_ids(data) if ids is None else ids
    if ids is None:
        return None
    for entry in reversed(_sets):
        found = entry.arrays(ids)
        if found is not None:
            return found
    return None
