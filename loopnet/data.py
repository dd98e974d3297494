"""Data: the embedded digits, the IDX format of (Fashion-)MNIST, label helpers.

The public face of :mod:`loopnet.datafiles` (file formats, data sets, the
digits) and :mod:`loopnet.idx` (the IDX parser); it defines nothing itself
but :func:`load_dataset`'s documented name.
"""

from .checks import one_hot
from .datafiles import DIGITS_FILE, digits_split, load_digits
from .datafiles import load_dataset as _load_dataset
from .idx import TYPES as IDX_TYPES
from .idx import read_idx

__all__ = ["DIGITS_FILE", "IDX_TYPES", "digits_split", "load_dataset", "load_digits", "one_hot",
           "read_idx"]


def load_dataset(name=None, data=None, **options):
    """Training and held-out sets by name or path, as ``loopnet train`` finds them.

    ``load_dataset()`` is the embedded digits; ``load_dataset("fashion-mnist")`` (or
    ``"mnist"``) finds the IDX files via ``data``, ``$LOOPNET_DATA`` or
    ``/usr/share/datasets/<name>``; ``load_dataset(data="train.csv")`` reads a CSV or .npz.
    Returns a :class:`loopnet.datafiles.Dataset` (``X_train``, ``y_train``, ``X_test``,
    ``y_test``, ``divisor``). Options and file layouts: :func:`loopnet.datafiles.load_dataset`.
    """
    return _load_dataset(name, data, **options)
