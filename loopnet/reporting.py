"""What a training run shows while it runs: bars per phase, epoch lines, ETAs.

:class:`Reporter` is a :class:`loopnet.training.Progress`: one bar per phase
(training, then evaluation) with rate, ETA, the running mean of the training
cost and accuracy (from the training forward pass) and the ETA of the whole
run; after each epoch a line whose time includes everything done in it.
The bar is tqdm's when tqdm is installed, else a plain line rewritten at most
every :data:`PLAIN_INTERVAL` seconds (and at least twice a second, since the
training loop reports after each compiled run of at most
:data:`loopnet.training.SEGMENT_SECONDS`).  ``Net.fit(verbose=...)`` and
``loopnet train`` both use it.
"""

import sys
import time

from .training import Progress

#: The plain bar is rewritten at most this often (seconds).
PLAIN_INTERVAL = 0.1
BAR_WIDTH = 20


def plural(n, word, many=None):
    """'1 epoch', '2 epochs'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def duration(seconds):
    """A short human duration: '0.42 s', '12 s', '3m05s', '1h02m'."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def percent(x):
    return f"{100 * x:.2f}%"


def epoch_line(r, total=None, val_label="val"):
    """One history record as a line: epoch, cost, accuracies, time (training and evaluation
    apart, then their sum), speed."""
    width = len(str(total)) if total else 3
    parts = [f"epoch {r.get('epoch', '?'):>{width}}" + (f"/{total}" if total else "")]
    if "cost" in r:
        parts.append(f"cost {r['cost']:.5f}")
    if "accuracy" in r:
        parts.append(f"train {percent(r['accuracy'])}")
    if "val_accuracy" in r:
        parts.append(f"{val_label} {percent(r['val_accuracy'])}")
    elif "val_cost" in r:
        parts.append(f"{val_label} cost {r['val_cost']:.5f}")
    if "seconds" in r:
        train = r["seconds"]
        ev = r.get("eval_seconds", 0.0)
        parts.append(f"{train + ev:6.2f} s (train {train:.2f} + eval {ev:.2f})")
    if "examples_per_s" in r:
        parts.append(f"{r['examples_per_s']:>9,.0f} ex/s")
    if r.get("interrupted"):
        parts.append("(evaluation interrupted)")
    return "  ".join(parts)


class Reporter(Progress):
    """Bars per phase and epoch lines for ``epochs`` epochs starting after ``first_epoch``.

    ``bars``: show progress bars; ``lines``: print a line per epoch; ``stream``:
    where (default stderr); ``use_tqdm``: None = when installed; ``inner``: a
    progress hook to forward every call to (the user's).
    """

    def __init__(self, epochs, first_epoch=0, *, bars=True, lines=True, stream=None,
                 use_tqdm=None, inner=None, total_epochs=None):
        self.epochs, self.first_epoch = epochs, first_epoch
        self.total_epochs = total_epochs or first_epoch + epochs
        self.bars, self.lines = bars, lines
        self.stream = stream if stream is not None else sys.stderr
        self.inner = inner
        self.tqdm = None
        if bars and use_tqdm is not False:
            try:
                from tqdm import tqdm
                self.tqdm = tqdm
            except ImportError:
                if use_tqdm:
                    raise
        self.bar = None
        self.phase = None
        self.epoch = None
        self.total = None
        self.began = None
        self.last_write = 0.0
        self.epoch_seconds = []        # train + eval of each finished epoch
        self.phase_seconds = {"train": [], "eval": []}
        self.run_start = time.perf_counter()
        self.epoch_start = None

    # -------------------------------------------------------------- Progress
    def begin(self, phase, epoch, total):
        self._close_bar()
        self.phase, self.epoch, self.total = phase, epoch, total
        self.began = self.last_write = time.perf_counter()
        if phase == "train":
            self.epoch_start = self.began
        if isinstance(self.inner, Progress):
            self.inner.begin(phase, epoch, total)
        if self.bars and self.tqdm is not None:
            self.bar = self.tqdm(total=total, desc=self._desc(), leave=False, file=self.stream,
                                 unit="batch" if phase == "train" else "ex",
                                 dynamic_ncols=True)

    def __call__(self, done, total, running=None):
        if total is not None:
            self.total = total
        if self.inner is not None:
            if isinstance(self.inner, Progress):
                self.inner(done, total, running)
            elif self.phase == "train":
                self.inner(done, total)
        if not self.bars or self.phase is None:
            return
        if self.bar is not None:
            if self.total is not None and self.bar.total != self.total:
                self.bar.total = self.total
                self.bar.refresh()
            self.bar.update(done - self.bar.n)
            post = self._postfix(running)
            if post:
                self.bar.set_postfix_str(post, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_write < PLAIN_INTERVAL and done != self.total:
            return
        self.last_write = now
        self._plain(done, running, now)

    def end(self, phase, seconds):
        self.phase_seconds[phase].append(seconds)
        if isinstance(self.inner, Progress):
            self.inner.end(phase, seconds)
        self._close_bar()
        self.phase = None

    # -------------------------------------------------------------- epochs
    def epoch_done(self, record):
        """After an epoch's evaluation: the epoch line."""
        self._close_bar()
        self.epoch_seconds.append(record.get("seconds", 0.0) + record.get("eval_seconds", 0.0))
        if self.lines:
            self.stream.write(epoch_line(record, self.total_epochs) + "\n")
            self.stream.flush()

    def close(self):
        self._close_bar()

    # -------------------------------------------------------------- drawing
    def _desc(self):
        return f"epoch {self.epoch}/{self.total_epochs} {'train' if self.phase == 'train' else 'eval '}"

    def _postfix(self, running):
        parts = []
        if running:
            if "cost" in running:
                parts.append(f"cost {running['cost']:.4f}")
            if "accuracy" in running:
                parts.append(f"acc {percent(running['accuracy'])}")
        eta = self.run_eta()
        if eta is not None:
            parts.append(f"run ETA {duration(eta)}")
        return ", ".join(parts)

    def run_eta(self):
        """Seconds left in the whole run: the epochs left at the mean epoch time so far,
        plus what is left of this one."""
        if self.epoch is None:
            return None
        left = self.first_epoch + self.epochs - self.epoch     # whole epochs after this one
        if self.epoch_seconds:
            per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        else:
            per_epoch = self._epoch_guess()
            if per_epoch is None:
                return None
        in_epoch = time.perf_counter() - (self.epoch_start or time.perf_counter())
        return max(0.0, per_epoch - in_epoch) + left * per_epoch

    def _epoch_guess(self):
        """Before an epoch has finished: the training phase's time extrapolated."""
        if self.phase != "train" or self.bar is None and not self.total:
            return None
        done = self.bar.n if self.bar is not None else getattr(self, "_done", 0)
        if not done or not self.total:
            return None
        return (time.perf_counter() - self.began) * self.total / done

    def _plain(self, done, running, now):
        self._done = done
        elapsed = now - self.began
        unit = "batches" if self.phase == "train" else "ex"
        parts = [f"\r  {self._desc()}"]
        if self.total:
            filled = BAR_WIDTH * min(done, self.total) // self.total
            parts.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{self.total} {unit}")
            if done and elapsed > 0:
                parts.append(f"{done / elapsed:,.0f} {unit}/s  ETA {duration((self.total - done) * elapsed / done)}")
        else:
            parts.append(f"{done} {unit}")
        post = self._postfix(running)
        if post:
            parts.append(post)
        text = "  ".join(parts)
        self.stream.write(text + " " * max(0, getattr(self, "_width", 0) - len(text)))
        self._width = len(text)
        self.stream.flush()

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif getattr(self, "_width", 0):
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def attach(verbose, epochs, progress, callback, first_epoch=0):
    """(progress, callback) for ``Net.fit(verbose=...)``: at verbose ≥ 1 a :class:`Reporter`
    (bars at 2) wraps the user's hooks; at 0 they are returned as given."""
    if not verbose:
        return progress, callback
    reporter = Reporter(epochs, first_epoch, bars=verbose >= 2, lines=True, inner=progress)

    def on_epoch(net, record):
        reporter.epoch_done(record)
        return callback(net, record) if callback is not None else False

    return reporter, on_epoch


def close(progress):
    """Close a :class:`Reporter`'s bar (after an interrupt or the last epoch)."""
    if isinstance(progress, Reporter):
        progress.close()
