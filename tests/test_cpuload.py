"""What other processes use of this process's CPUs (loopnet.cpuload), and the thread chooser
asking for no more threads than they leave free."""

import subprocess
import sys
import time

import pytest

from loopnet import cpuload, training

STAT = """cpu  500 7 300 9000 10 4 6 50 0 0
cpu0 100 5 100 4000 5 1 2 30 0 0
cpu1 200 1 100 3000 3 2 3 10 0 0
cpu2 200 1 100 2000 2 1 1 10 0 0
intr 1 2 3
procs_running 2
"""
# cpu0: user 100 + system 100 + irq 1 + softirq 2 = 203 (nice 5, idle, iowait, steal 30 left out)
# cpu1: 200 + 100 + 2 + 3 = 305; cpu2: 200 + 100 + 1 + 1 = 302
SELF = "4242 (a name (with) spaces) S 1 2 3 4 5 6 7 8 9 10 77 23 0 0 20 0 3 0 100"
# after the name: state S is field 3, utime field 14 = 77, stime field 15 = 23


def test_busy_ticks_count_user_system_and_interrupts_of_the_given_cpus():
    assert cpuload.busy_ticks({0}, STAT) == 203
    assert cpuload.busy_ticks({1, 2}, STAT) == 305 + 302
    assert cpuload.busy_ticks({5}, STAT) == 0


def test_own_ticks_are_utime_plus_stime_whatever_the_name():
    assert cpuload.own_ticks(SELF) == 100


class Files:
    """/proc/stat and /proc/self/stat as files whose counts a test moves."""

    def __init__(self, tmp_path):
        self.stat, self.mine = tmp_path / "stat", tmp_path / "self_stat"
        self.now = 0.0

    def set(self, busy0, busy1, own, now):
        self.stat.write_text(f"cpu  0 0 0 0\ncpu0 {busy0} 0 0 0 0 0 0 0\ncpu1 {busy1} 0 0 0 0 0 0 0\n")
        self.mine.write_text(f"1 (py) R 1 1 1 1 1 1 1 1 1 1 {own} 0 0 0")
        self.now = now

    def watch(self):
        w = cpuload.CpuWatch(str(self.stat), str(self.mine), clock=lambda: self.now)
        w.cpus, w.ticks_per_second = {0, 1}, 100
        w.last = w._sample()
        return w


def test_the_watch_counts_what_is_not_this_process(tmp_path):
    f = Files(tmp_path)
    f.set(0, 0, 0, 10.0)
    w = f.watch()
    f.set(30, 50, 60, 10.5)       # 80 busy ticks in 0.5 s, 60 of them ours: 20 = 0.4 core
    assert w.others() == pytest.approx(0.4)
    assert w.free_cpus() == 2     # judged on the same window: 0.4 core rounds to none
    f.set(30 + 50, 50 + 40, 60 + 10, 11.0)   # 90 ticks in 0.5 s, 10 ours: 1.6 cores
    assert w.free_cpus() == 1     # 2 - round(1.6), at least 1
    f.set(80, 90, 70, 11.01)      # 10 ms later: too short to judge, the verdict stands
    assert w.others() == pytest.approx(1.6)
    f.set(80, 90, 70, 12.0)       # quiet for a second
    assert w.others() == 0.0 and w.free_cpus() == 2


def test_without_proc_nothing_is_known_and_nothing_limited(tmp_path):
    w = cpuload.CpuWatch(str(tmp_path / "absent"), str(tmp_path / "absent2"))
    assert w.others() == 0.0 and w.free_cpus() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_a_competing_process_is_seen_and_this_ones_own_work_is_not():
    w = cpuload.CpuWatch()
    began = time.monotonic()
    while time.monotonic() - began < 0.3:     # this process busy: not a competitor
        pass
    assert w.others() < 0.5
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)                        # another process busy for 0.5 s
        assert w.others() > 0.5
    finally:
        spin.kill()
        spin.wait()


class Busy:
    """A watch that says how many CPUs are free."""

    def __init__(self, free):
        self.free = free

    def free_cpus(self):
        return self.free


def test_the_chooser_asks_for_no_more_threads_than_are_free():
    chooser = training._ThreadChooser(None, 13_131_313_131)
    chooser.candidates, chooser.watch = [2, 1], Busy(1)     # as on a 2-core machine
    assert chooser.next() == (1, False)           # all threads preferred, one CPU free
    chooser.record(1, 0.002)
    chooser.watch.free = 2                        # the other process has gone
    assert chooser.next() == (2, True)            # all threads, never timed yet
    chooser.record(2, 0.001)
    assert chooser.next() == (2, False)
    chooser.watch.free = None                     # unknown: as asked
    assert chooser.within_free(2) == 2
    many = training._ThreadChooser(None, 13_131_313_132)
    many.candidates, many.watch = [16, 1], Busy(15)
    assert many.next() == (15, False)
    many.record(15, 0.001)                        # a count cut short is not a choice's rate
    assert 15 not in many.rates


def test_an_explicit_thread_count_is_never_cut():
    chooser = training._ThreadChooser(2, 13_131_313_133)
    assert chooser.watch is None and chooser.within_free(2) == 2
