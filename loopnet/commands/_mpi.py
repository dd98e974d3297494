"""`loopnet train --distributed`: what the train command needs under MPI.

CLI glue over :func:`loopnet.distributed.fit`; it lives on the command floor so
that the library never imports the command line.
"""

from __future__ import annotations

import os
import sys

from .. import distributed, io
from . import _common as c


def cli_session(args):
    """A :class:`CliSession` for ``loopnet train --distributed``, else None."""
    if not getattr(args, "distributed", None):
        if getattr(args, "deterministic", None):
            raise c.UsageError("--deterministic needs --distributed (single-process training is "
                               "always bit-reproducible)")
        return None
    try:
        return CliSession(distributed.world(), deterministic=bool(getattr(args, "deterministic", None)))
    except distributed.DistributedError as exc:
        raise c.CommandError(str(exc)) from None


class CliSession:
    """What the train command needs under MPI: rank-0-only output and files, the fit.

    The command loads its data set on every rank as usual (its loader decides the input
    scaling and records it in the model); memory-mapped, sharded reading is the Python API's
    :func:`loopnet.distributed.open_idx`.

    * ``stdout``: the real one on rank 0, ``os.devnull`` elsewhere; ``save(...)`` writes on
      rank 0 only (every rank keeps the same network, so any could; one must).
    * ``fit(net)``: a drop-in for ``net.fit`` that trains with :func:`loopnet.distributed.fit`
      on the communicator.
    """

    def __init__(self, comm, deterministic=False):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.root = self.rank == 0
        self.deterministic = deterministic
        self.stdout = sys.stdout if self.root else open(os.devnull, "w")  # noqa: SIM115

    def save(self, *args, **kwargs):
        if self.root:
            io.save(*args, **kwargs)

    def fit(self, net):
        """``net.fit``'s signature, trained over the communicator."""

        def run(X, Y, **kwargs):
            how = "summed in rank order, deterministic" if self.deterministic else "Allreduce"
            print(f"loopnet: each mini-batch split across {self.size} MPI ranks ({how})",
                  file=self.stdout, flush=True)
            return distributed.fit(net, X, Y, comm=self.comm, deterministic=self.deterministic,
                                   **kwargs)

        return run
