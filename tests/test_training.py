"""The epoch loop as users see it: training cost from the training pass (the default),
the exact pass on request, evaluation after the commit (Ctrl-C keeps the epoch), early
stopping and restore_best, the learning-rate schedule, the saturation warning, verbose."""

import warnings

import numba
import numpy as np
import pytest

import loopnet
from loopnet import reference as R
from loopnet import reporting, training


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """The chooser's tests script their rates; what other processes do to this machine's
    CPUs meanwhile (loopnet.cpuload) must not cut their thread counts."""
    monkeypatch.setattr(training, "_WATCH", None)


def problem(seed=0, m=23, sizes=(4, 5, 3)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, sizes[0]))
    y = rng.integers(0, sizes[-1], m)
    return X, y


def test_default_cost_is_the_mean_over_the_training_pass():
    """Independent oracle: the reference's C_x of each mini-batch with the weights before
    that mini-batch's update (network2's SGD in matrix form), meaned over the epoch's
    examples, plus (λ/2n) Σ w² of the weights after the epoch."""
    X, y = problem(m=23)
    Y = np.eye(3)[y]
    order = np.random.default_rng(5).permutation(23)
    net = loopnet.Net([4, 5, 3], activation="tanh", seed=3)
    ws, bs = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    net.fit(X, y, epochs=1, batch_size=5, eta=0.4, lmbda=0.3, order=order)
    costs, correct = [], 0
    for lo in range(0, 23, 5):
        rows = order[lo:lo + 5]
        _, A = R.forward(ws, bs, X[rows], "tanh", "sigmoid")
        costs.extend(R.cost_per_example("quadratic", A[-1], Y[rows]))
        correct += int((A[-1].argmax(1) == y[rows]).sum())
        nw, nb = R.gradient(ws, bs, X[rows], Y[rows], "tanh", "sigmoid", "quadratic")
        ws, bs = R.sgd_step(ws, bs, nw, nb, 0.4, 0.3, 23)
    l2 = 0.5 * 0.3 / 23 * sum((w ** 2).sum() for w in ws)
    rec = net.history[-1]
    assert rec["cost"] == pytest.approx(np.mean(costs) + l2, rel=1e-10)
    assert rec["accuracy"] == correct / 23
    # ... and it is not what the exact pass after the epoch gives
    assert rec["cost"] != pytest.approx(net.cost(X, y, lmbda=0.3), rel=1e-6)


def test_exact_monitor_is_a_pass_after_the_epoch():
    X, y = problem(m=30)
    net = loopnet.Net([4, 5, 3], seed=3)
    net.fit(X, y, epochs=2, batch_size=4, eta=0.5, lmbda=0.1, monitor="exact",
            validation_data=(X[:10], y[:10]))
    rec = net.history[-1]
    assert rec["cost"] == pytest.approx(net.cost(X, y, lmbda=0.1), rel=1e-12)
    assert rec["accuracy"] == net.accuracy(X, y)
    assert rec["val_cost"] == pytest.approx(net.cost(X[:10], y[:10]), rel=1e-12)
    assert rec["eval_seconds"] >= 0


def test_monitor_modes_train_the_same_parameters():
    X, y = problem(m=30)
    nets = [loopnet.Net([4, 5, 3], seed=4) for _ in range(3)]
    for net, monitor in zip(nets, (True, "exact", False)):
        net.fit(X, y, epochs=2, batch_size=4, eta=0.5, monitor=monitor)
    assert nets[0].params.tobytes() == nets[1].params.tobytes() == nets[2].params.tobytes()
    assert "cost" not in nets[2].history[-1]


@pytest.mark.parametrize("bad", ["fast", 2, None, "Exact"])
def test_bad_monitor_is_one_clear_error(bad):
    X, y = problem()
    with pytest.raises(ValueError, match="monitor must be True"):
        loopnet.Net([4, 5, 3]).fit(X, y, epochs=1, monitor=bad)


class InterruptIn(training.Progress):
    """Raises KeyboardInterrupt at the first report of ``phase`` in epoch ``epoch``."""

    def __init__(self, phase, epoch):
        self.want, self.epoch_wanted, self.phase, self.epoch = phase, epoch, None, None

    def begin(self, phase, epoch, total):
        self.phase, self.epoch = phase, epoch

    def __call__(self, done, total, running=None):
        if self.phase == self.want and self.epoch == self.epoch_wanted:
            raise KeyboardInterrupt


def test_ctrl_c_during_evaluation_keeps_the_epoch():
    X, y = problem(m=40)
    net = loopnet.Net([4, 5, 3], seed=1)
    twin = loopnet.Net([4, 5, 3], seed=1)
    twin.fit(X, y, epochs=2, batch_size=4, eta=0.5, monitor=False)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=3, batch_size=4, eta=0.5, validation_data=(X, y),
                progress=InterruptIn("eval", 2))
    assert net.epoch == 2 and len(net.history) == 2
    assert net.params.tobytes() == twin.params.tobytes()
    assert net.history[-1]["interrupted"] and "val_cost" not in net.history[-1]
    assert "val_cost" in net.history[0]


def test_ctrl_c_during_training_rolls_the_epoch_back():
    X, y = problem(m=40)
    net = loopnet.Net([4, 5, 3], seed=1)
    twin = loopnet.Net([4, 5, 3], seed=1)
    twin.fit(X, y, epochs=1, batch_size=4, eta=0.5)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=3, batch_size=4, eta=0.5, progress=InterruptIn("train", 2))
    assert net.epoch == 1 and net.params.tobytes() == twin.params.tobytes()
    assert net.rng.bit_generator.state == twin.rng.bit_generator.state


def test_patience_stops_and_restore_best_restores_the_best_epoch(tmp_path):
    X, y = problem(m=60)
    Xv, yv = X[:20] + 0.5, (y[:20] + 1) % 3      # a validation set training makes worse
    net = loopnet.Net([4, 8, 3], seed=2)
    params = {}
    net.fit(X, y, epochs=40, batch_size=5, eta=2.0, validation_data=(Xv, yv), patience=3,
            restore_best=True, callback=lambda n, r: params.update({r["epoch"]: n.params.copy()}))
    vals = [r["val_cost"] for r in net.history]
    best = int(np.argmin(vals)) + 1
    assert net.epoch == best + 3 < 40                      # stopped 3 epochs after the best
    assert net.best_epoch == best
    assert net.params.tobytes() == params[best].tobytes()
    path = tmp_path / "best.loopnet"
    from loopnet import io
    io.save(net, path)
    back = io.load(path)
    assert back.best_epoch == best and back.params.tobytes() == net.params.tobytes()
    assert loopnet.Net([4, 8, 3]).best_epoch is None


def test_patience_needs_what_it_watches():
    X, y = problem()
    with pytest.raises(ValueError, match="validation_data"):
        loopnet.Net([4, 5, 3]).fit(X, y, epochs=1, patience=2, monitor_key="val_accuracy")


def test_halve_eta_after_epochs_without_improvement():
    schedule = training.HalveEta(2, monitor="val_accuracy")
    etas, eta = [], 1.0
    for epoch, acc in enumerate([0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7], start=1):
        eta = schedule(eta, {"epoch": epoch, "val_accuracy": acc})
        etas.append(eta)
    assert etas == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_lr_schedule_changes_the_update():
    X, y = problem(m=20)
    a, b = loopnet.Net([4, 5, 3], seed=1), loopnet.Net([4, 5, 3], seed=1)
    a.fit(X, y, epochs=1, batch_size=5, eta=0.5)
    a.fit(X, y, epochs=1, batch_size=5, eta=0.25)
    b.fit(X, y, epochs=2, batch_size=5, eta=0.5, lr_schedule=lambda eta, rec: eta / 2)
    assert a.params.tobytes() == b.params.tobytes()


def test_saturation_warns_once_with_a_suggestion():
    X, y = problem(m=60)
    net = loopnet.Net([4, 5, 3], seed=0)
    X = X * 1e3                                  # saturated sigmoids: nothing moves
    with pytest.warns(training.SaturationWarning, match="smaller learning rate") as got:
        net.fit(X, np.zeros(60, int) + (np.arange(60) % 3), epochs=5, batch_size=10,
                eta=1e-12)
    assert len([w for w in got if w.category is training.SaturationWarning]) == 1


def test_a_learning_run_does_not_warn():
    X, y = problem(m=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", training.SaturationWarning)
        loopnet.Net([4, 5, 3], seed=0).fit(X, y, epochs=5, batch_size=5, eta=1.0)


def test_saturated_rule():
    flat = [{"cost": 0.5, "accuracy": 0.1037}] * 3
    assert training.saturated(flat, 10)
    assert not training.saturated(flat[:2], 10)
    assert not training.saturated(flat, 2)                           # chance is 50 % there
    assert not training.saturated([{"cost": 0.5 + 2e-4 * i, "accuracy": 0.1} for i in range(3)], 10)


def test_verbose_one_prints_a_line_per_epoch(capsys):
    X, y = problem(m=20)
    loopnet.Net([4, 5, 3], seed=0).fit(X, y, epochs=2, batch_size=5, verbose=1)
    err = capsys.readouterr().err.splitlines()
    assert [line.split()[:2] for line in err] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "train" in err[0] and "eval" in err[0]


def test_verbose_zero_is_silent(capsys):
    X, y = problem(m=20)
    loopnet.Net([4, 5, 3], seed=0).fit(X, y, epochs=1, batch_size=5)
    assert capsys.readouterr() == ("", "")


def test_plain_bar_shows_rate_eta_running_cost(capsys):
    import io
    out = io.StringIO()
    rep = reporting.Reporter(2, bars=True, lines=False, stream=out, use_tqdm=False)
    rep.begin("train", 1, 10)
    rep(10, 10, {"cost": 0.25, "accuracy": 0.5})
    text = out.getvalue()
    assert "10/10 batches" in text and "batches/s" in text and "ETA" in text
    assert "cost 0.2500" in text and "acc 50.00%" in text and "run ETA" in text


def test_plural():
    assert reporting.plural(1, "epoch") == "1 epoch" and reporting.plural(2, "epoch") == "2 epochs"


def test_segments_shrink_to_keep_progress_moving():
    chooser = training._ThreadChooser(1, 1)
    assert chooser.batches_per_call(1, 10) == training.SEGMENT_EXAMPLES // 10
    chooser.record(1, training.SEGMENT_SECONDS / 4)        # 4 mini-batches per segment time
    assert chooser.batches_per_call(1, 10) == 4


def test_thread_chooser_uses_no_more_threads_than_a_phase_has_tasks():
    most = numba.get_num_threads()
    assert training._ThreadChooser(None, 12_345_678_901).candidates == ([most, 1] if most > 1
                                                                        else [1])
    assert training._ThreadChooser(None, 12_345_678_901, tasks=1).candidates == [1]
    if most > 2:
        assert training._ThreadChooser(None, 12_345_678_901, tasks=2).candidates == [2, 1]
    assert training._ThreadChooser(3, 12_345_678_901, tasks=2).candidates == [min(3, most)]  # as asked


def test_thread_chooser_starts_on_all_threads_and_needs_a_margin_to_leave_them():
    chooser = training._ThreadChooser(None, 12_345_678_901)    # its own entry in _MEASURED
    chooser.candidates = [2, 1]                                 # as on a 2-core machine
    assert chooser.next() == (2, False)
    chooser.record(2, 0.010)
    assert chooser.next() == (1, True)                          # the other one, as a probe
    usual = chooser.batches_per_call(2, 10)
    assert chooser.run_length(1, True, 10) == usual // training.PROBE_SHARE
    chooser.record(1, 0.0095)                                   # 5 % faster: a tie
    assert chooser.preferred() == 2
    chooser.record(1, 0.0080)                                   # 25 % faster: switch
    assert chooser.preferred() == 1
    # a probe of a choice measured slower lasts at most PROBE_SECONDS
    assert chooser.run_length(2, True, 10) <= max(1, training.PROBE_SECONDS / 0.010)
    probes = [chooser.next() for _ in range(4 * training.PROBE_EVERY)]
    assert (2, True) in probes and probes.count((1, False)) > probes.count((2, True))
    # a new fit starts from what this one measured (one thread), and re-times all threads at once
    again = training._ThreadChooser(None, 12_345_678_901)
    again.candidates = [2, 1]
    assert [again.next(), again.next()] == [(1, False), (2, True)]
    # ... but with all threads preferred it does not probe one thread before the usual cadence
    again.record(2, 0.005)
    third = training._ThreadChooser(None, 12_345_678_901)
    third.candidates = [2, 1]
    assert [third.next() for _ in range(training.PROBE_EVERY - 1)] == [(2, False)] * (
        training.PROBE_EVERY - 1)


def test_thread_chooser_starts_slowly_after_a_switch_and_sizes_probes_by_the_slowest_rate():
    chooser = training._ThreadChooser(None, 98_765_432_109)     # its own entries
    chooser.candidates = [2, 1]
    usual = chooser.batches_per_call(2, 10)                     # 4096 / 10 = 409
    assert chooser.next() == (2, False)
    assert chooser.run_length(2, False, 10) == usual // training.PROBE_SHARE   # first run: short
    chooser.record(2, 0.050)                                    # all threads: 50 ms per batch
    assert chooser.next() == (1, True)
    chooser.run_length(1, True, 10)
    chooser.record(1, 0.0003)                                   # one thread wins
    assert chooser.next() == (1, False)
    lengths = [chooser.run_length(1, False, 10) for _ in range(12)]
    assert lengths[:4] == [1, 2, 4, 8]                          # from its probe's length (0.2 s / 50 ms / 4)
    assert lengths[-1] == usual                                 # ramped up to the usual length
    # one lucky probe of all threads (0.25 ms) does not size the next probe: the slowest of
    # the recent rates (50 ms) does, so it stays at 1 mini-batch
    assert chooser.run_length(2, True, 10) == 1
    chooser.record(2, 0.00025)
    assert chooser.run_length(2, True, 10) == 1
    # a switch back to all threads (the lucky probe made them preferred) starts at the length
    # of their last probe and doubles, instead of a whole usual run at a rate seen once
    assert chooser.preferred() == 2
    assert [chooser.run_length(2, False, 10) for _ in range(3)] == [1, 2, 4]


def test_thread_chooser_needs_two_slow_runs_in_a_row_to_leave_all_threads():
    """One all-threads run slowed by something passing (another library's threads still
    spinning) does not send the fit to one thread; a load that stays (two slow runs in a
    row) does.  A first verdict resting on one all-threads run is re-timed at call 4."""
    chooser = training._ThreadChooser(None, 55_555_555_555)     # its own entry
    chooser.candidates = [2, 1]
    assert chooser.next() == (2, False)
    chooser.record(2, 0.029)                                    # disturbed: 29 ms per batch
    assert chooser.next() == (1, True)
    chooser.record(1, 0.0019)
    assert chooser.preferred() == 1 and chooser.next() == (1, False)
    assert chooser.next() == (2, True)                          # call 4: all threads again
    chooser.record(2, 0.0012)                                   # undisturbed
    assert chooser.preferred() == 2
    chooser.record(2, 0.0034)                                   # one slow run: stay
    assert chooser.preferred() == 2
    chooser.record(2, 0.0036)                                   # two in a row: leave
    assert chooser.preferred() == 1
