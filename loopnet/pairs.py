"""Lists of (x, y) pairs whose arrays are rows of matrices, found again by identity.

Nielsen's code takes its data as a list of (x, y) pairs of small arrays; the compiled
core takes matrices.  The drop-ins (loopnet.network, network2) convert a list once and
remember here which matrices its pairs are rows of, so that a later call with the same
pairs, in any order (SGD shuffles the list in place), from any Network, costs a lookup
instead of a conversion.  ``mnist_loader.load_data_wrapper()`` remembers its own lists
the same way: their x's are views of its image matrices, so they need no conversion at
all.

A set of pairs is recognised by the identity of each pair's x and y:

* the y's are held (small arrays or labels), so no other object can take their ids;
* the x's are referenced weakly, and the set is dropped as soon as any of them is
  collected (a later array could then reuse its id); this also frees the matrices once
  the caller's data is gone.

So a set holds on to nothing the caller still needs to keep.  What identity cannot see:
writing into a pair's arrays between calls, which changes a converted copy nowhere
(the loader's matrices ARE the x's memory, so there it is seen).  To change the data,
put new pairs in the list.
"""

import operator
import weakref

import numpy as np

#: Sets remembered at once (the oldest is forgotten first).
SETS = 8

_sets = []


class _Set(object):
    """One list of pairs: pair i is (row i of X, targets[i]) at the time it was remembered."""

    __slots__ = ("X", "targets", "x_ids", "row_of", "y_ids", "ys", "x_refs", "__weakref__")

    def arrays(self, data, x_ids):
        """((X, targets), rows) if every pair of ``data`` (whose x's have the ids ``x_ids``) is
        one of this set's, else None."""
        if self.X is None:
            return None
        pos = np.searchsorted(self.x_ids, x_ids)
        pos[pos == len(self.x_ids)] = 0
        if not np.array_equal(self.x_ids[pos], x_ids):
            return None
        rows = self.row_of[pos]
        y_ids = _ids(data, 1)
        if y_ids is None or not np.array_equal(self.y_ids[rows], y_ids) or self.X is None:
            return None
        return (self.X, self.targets), rows

    def forget(self, _ref=None):
        """Drop the matrices and the held y's (an x was collected, or the set is evicted)."""
        self.X = self.targets = self.ys = None


def _ids(data, k):
    """id(pair[k]) of every pair, or None if some pair has no item k."""
    try:
        return np.fromiter(map(id, map(operator.itemgetter(k), data)), np.uint64, len(data))
    except (TypeError, IndexError, KeyError):
        return None


def remember(data, X, targets):
    """Note that pair i of ``data`` (a list) is (x_i, y_i) with x_i's values in row i of
    ``X`` and y_i's in ``targets[i]`` (a row of one-hot targets, or a label).  Returns
    False, remembering nothing, when an x cannot be referenced weakly (not an array)."""
    xs = [pair[0] for pair in data]
    entry = _Set()
    forget = entry.forget
    try:
        entry.x_refs = [weakref.ref(x, forget) for x in xs]
    except TypeError:
        return False
    entry.X, entry.targets = X, targets
    entry.ys = [pair[1] for pair in data]       # held, so that their ids stay theirs
    ids = np.fromiter(map(id, xs), np.uint64, len(xs))
    entry.row_of = np.argsort(ids, kind="stable")
    entry.x_ids = ids[entry.row_of]
    entry.y_ids = np.fromiter(map(id, entry.ys), np.uint64, len(xs))
    live = [s for s in _sets if s.X is not None]
    for old in live[:max(0, len(live) - (SETS - 1))]:
        old.forget()
    _sets[:] = live[-(SETS - 1):] + [entry]
    return True


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
