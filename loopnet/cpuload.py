"""How much of this process's CPUs other processes are using: what a busy machine leaves free.

A parallel step of the engine waits at its barriers for the slowest of its threads.  When
another process keeps one of the CPUs busy, the thread that shares that CPU runs only in
the scheduler's turns, and every barrier waits for it: on a 2-core machine beside one
compute-bound process, two threads ran W3 three times slower than alone, one thread
about 1.8 times (profiles/results/busy-*.md).  :class:`CpuWatch` measures what the
others took, so that the thread chooser (:mod:`loopnet.training`) asks for no more
threads than there are CPUs left.

It reads Linux's ``/proc/stat``: the busy time of each CPU this process may run on
(user, system, interrupts; not ``nice``, which a low-priority process yields, nor
``steal``), minus this process's own CPU time from ``/proc/self/stat``, over the time since
the last look.  Both count in the kernel's clock ticks (``SC_CLK_TCK``, 100 per second), so
a window shorter than :data:`MIN_WINDOW` is not judged.  Elsewhere (no ``/proc``) nothing is
known and nothing is limited.  Imports only the standard library.
"""

import os
import time

#: Windows shorter than this (seconds) hold too few clock ticks to judge; the last verdict stands.
MIN_WINDOW = 0.05

#: Columns of a ``cpuN`` line of /proc/stat counted as busy: user, system, irq, softirq.
_BUSY_COLUMNS = (0, 2, 5, 6)


def allowed_cpus():
    """The CPUs this process may run on (its affinity), as a set of numbers; None if unknown."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def busy_ticks(cpus, stat_text):
    """Σ over ``cpus`` of their busy clock ticks in a /proc/stat text."""
    total = 0
    for line in stat_text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if int(name[3:]) in cpus:
            total += sum(int(fields[c]) for c in _BUSY_COLUMNS if c < len(fields))
    return total


def own_ticks(self_stat_text):
    """This process's user + system clock ticks, all threads, from a /proc/self/stat text."""
    after_name = self_stat_text.rsplit(")", 1)[1].split()   # the name may hold spaces
    return int(after_name[11]) + int(after_name[12])        # fields 14 and 15 (utime, stime)


class CpuWatch:
    """Cores' worth of CPU time that other processes used lately on this process's CPUs."""

    def __init__(self, stat_path="/proc/stat", self_stat_path="/proc/self/stat", clock=None):
        self.stat_path, self.self_stat_path = stat_path, self_stat_path
        self.clock = clock or time.monotonic
        self.cpus = allowed_cpus()
        try:
            self.ticks_per_second = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            self.ticks_per_second = 100
        self.last = self._sample()
        self.verdict = 0.0

    def _sample(self):
        """(time, busy ticks of our CPUs, own ticks), or None where /proc cannot be read."""
        if not self.cpus:
            return None
        try:
            with open(self.stat_path) as f:
                stat = f.read()
            with open(self.self_stat_path) as f:
                mine = f.read()
            return self.clock(), busy_ticks(self.cpus, stat), own_ticks(mine)
        except (OSError, ValueError, IndexError):
            return None

    def others(self):
        """Cores other processes kept busy since the last call that judged (≥ MIN_WINDOW
        seconds ago; within a shorter window, the last verdict); 0.0 where unknown."""
        if self.last is None:
            return 0.0
        now = self._sample()
        if now is None:
            return 0.0
        seconds = now[0] - self.last[0]
        if seconds < MIN_WINDOW:
            return self.verdict
        ticks = (now[1] - self.last[1]) - (now[2] - self.last[2])
        self.last = now
        self.verdict = max(0.0, ticks / (seconds * self.ticks_per_second))
        return self.verdict

    def free_cpus(self):
        """This process's CPUs minus those the others kept busy (rounded), at least 1;
        None where unknown."""
        if self.last is None:       # no CPUs known, or no /proc to read
            return None
        return max(1, len(self.cpus) - round(self.others()))
