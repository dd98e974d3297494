"""``loopnet train``: train a network, with progress, checkpoints, resume and plots."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from . import _common as c
from ..reporting import epoch_line, plural

HELP = "train a network (no options: [64,30,10] on the embedded digits)"

DESCRIPTION = """Train a network by mini-batch gradient descent and report, after each epoch,
the cost, training and held-out accuracy, time and examples/s.

With no options: sizes 64,30,10 (sigmoid, quadratic cost), 30 epochs, mini-batches of 10,
eta 3.0, seed 0, on the embedded 8x8 digits (1,437 training / 360 held-out images).

--epochs is the total number of epochs to reach, counting those a --resume'd model has
already done. On --resume, every option not given again is taken from the checkpoint
(data, hyper-parameters, --checkpoint-every...), so the resumed run ends with
exactly the weights the uninterrupted run would have had. Output paths (--save,
--checkpoint, --plot) come only from the command line, never from the checkpoint file.

Each epoch line shows the training cost and accuracy measured during the epoch's own
training pass (the mean over its mini-batches, as Keras reports it; --exact-cost for a
separate pass after the epoch), the validation accuracy, and the epoch's time: training and
evaluation apart, then their sum.

Model selection: --validation FRACTION keeps a seeded split of the TRAINING data apart
(for mnist and fashion-mnist, Nielsen's 50,000/10,000 split by default); --patience,
--save-best and --halve-eta-after watch it, and the test set is evaluated once, at the end,
never used for selection. Without a validation split the held-out set is shown each epoch
for information only, and selecting options are refused.

Ctrl-C stops at a safe point (an epoch whose training finished is kept, even when
interrupted during its evaluation; the epoch still training is rolled back), saves a
checkpoint and prints the command that resumes. If training diverges (NaN/inf), the last
good parameters are kept, saved if --save was given, and the exit code is 1."""

EXAMPLES = """  loopnet train
  loopnet train --epochs 10 --eta 0.5 --cost cross_entropy --save digits.npz
  loopnet train --dataset fashion-mnist --sizes 784,100,10 --epochs 5 --save fm.npz \\
      --checkpoint-every 1 --plot fm.png
  loopnet train --data train.csv --test test.csv --output-activation softmax \
      --cost log_likelihood
  loopnet train --dataset fashion-mnist --sizes 784,100,10 --epochs 60 --patience 5 \
      --save-best --save best.npz --log run.jsonl
  loopnet train --resume fm.ckpt.npz --epochs 10      # continue to 10 epochs in total
"""

#: Defaults of the options that are stored in a model and reused by --resume.
DEFAULTS = {"epochs": 30, "batch_size": 10, "eta": 3.0, "lmbda": 0.0, "momentum": 0.0,
            "optimizer": "sgd", "tol": None, "seed": 0, "activation": "sigmoid",
            "output": "sigmoid", "cost": "quadratic", "dtype": "float64", "hidden": 30,
            "checkpoint_every": None, "save": None, "checkpoint": None, "validation": None,
            "patience": None, "monitor": "val_cost", "save_best": False,
            "halve_eta_after": None,
            "clip_norm": None, "noise_multiplier": 0.0, "delta": None, "poisson": False,
            "dropout": 0.0}
#: Nielsen's split of the 60,000 MNIST training images: the last 10,000 for validation.
NIELSEN_VALIDATION = 10_000
MNIST_TRAIN = 60_000
ADAM_ETA = 0.001
ARCH = ("sizes", "activation", "output", "cost", "dtype")


def add_arguments(p):
    a = p.add_argument_group("network")
    a.add_argument("--sizes", type=c.sizes_list, metavar="N,...",
                   help="layer sizes, input first (default: inputs,30,classes, e.g. 64,30,10)")
    a.add_argument("--activation", choices=c.ACTIVATIONS,
                   help="hidden-layer activation (default sigmoid)")
    a.add_argument("--output-activation", choices=c.OUTPUTS, dest="output",
                   help="output activation (default sigmoid)")
    a.add_argument("--output", choices=c.OUTPUTS, dest="output_old", help=argparse.SUPPRESS)
    a.add_argument("--cost", choices=c.COSTS, help="cost function (default quadratic)")
    a.add_argument("--dtype", choices=c.DTYPES, help="float type (default float64)")
    a.add_argument("--seed", type=c.nonneg_int, metavar="N", help="seed of weights and shuffles (default 0)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=c.positive_int, metavar="N",
                   help="total epochs to reach (default 30; with --resume, counts those done)")
    t.add_argument("--batch-size", type=c.positive_int, dest="batch_size", metavar="M",
                   help="mini-batch size m (default 10)")
    t.add_argument("--eta", type=c.positive_float, metavar="ETA",
                   help="learning rate (default 3.0; 0.001 with --optimizer adam)")
    t.add_argument("--lmbda", type=c.nonneg_float, metavar="LAMBDA", help="L2 strength lambda (default 0)")
    t.add_argument("--momentum", type=c.unit_interval, metavar="MU", help="momentum in [0, 1) (default 0)")
    t.add_argument("--optimizer", choices=c.OPTIMIZERS, help="sgd (default) or adam")
    t.add_argument("--tol", type=c.positive_float, metavar="EPS",
                   help="stop when the full-batch gradient norm falls to this")
    t.add_argument("--exact-cost", action="store_true", dest="exact_cost",
                   help="measure the training cost and accuracy by a separate pass over the "
                        "training set after each epoch (default: from the training pass itself,"
                        " at no cost)")
    t.add_argument("--threads", type=c.positive_int, metavar="N",
                   help="train with N threads (default: one or all, whichever runs faster "
                        "here; results are identical either way)")
    c.add_data_arguments(p)
    v = p.add_argument_group("model selection (on a validation split of the training data)")
    v.add_argument("--validation", type=_fraction_or_zero, metavar="FRACTION",
                   help="keep this fraction of the training data apart for validation, drawn "
                        "with --seed (default: Nielsen's 50,000/10,000 split for mnist and "
                        "fashion-mnist, none otherwise; 0 for none)")
    v.add_argument("--patience", type=c.positive_int, metavar="N",
                   help="stop after N epochs without improvement of --monitor")
    v.add_argument("--monitor", choices=("val_cost", "val_accuracy"),
                   help="what --patience, --save-best and --halve-eta-after watch "
                        "(default val_cost)")
    v.add_argument("--save-best", action="store_true", default=None, dest="save_best",
                   help="--save the best epoch's network (by --monitor), not the last one")
    v.add_argument("--halve-eta-after", type=c.positive_int, metavar="N",
                   dest="halve_eta_after",
                   help="halve eta after N epochs without improvement (network2's schedule)")
    # ---- distributed training (MPI): implemented in loopnet/distributed.py ----
    e = p.add_argument_group("per example: clipping, DP-SGD, dropout")
    e.add_argument("--clip-norm", type=c.positive_float, dest="clip_norm", metavar="C",
                   help="scale each example's gradient by min(1, C/||grad C_x||) before the sum")
    e.add_argument("--dp", action="store_true", default=None,
                   help="DP-SGD (Abadi et al. 2016): needs --clip-norm and --noise-multiplier; "
                        "prints the privacy spent (epsilon at --delta) after each epoch")
    e.add_argument("--noise-multiplier", type=c.nonneg_float, dest="noise_multiplier",
                   metavar="SIGMA", help="DP-SGD: add N(0, SIGMA^2 C^2) to the clipped sum")
    e.add_argument("--delta", type=c.positive_float, metavar="D",
                   help="DP-SGD: the delta of (epsilon, delta) (default: 10^-k just below 1/n)")
    e.add_argument("--poisson", action="store_true", default=None,
                   help="DP-SGD: Poisson batches (each example with probability batch/n)")
    e.add_argument("--dropout", type=c.unit_interval, metavar="P",
                   help="inverted dropout of the hidden layers in training (default 0)")
    d = p.add_argument_group("distributed training (MPI; pip install 'loopnet[mpi]')")
    d.add_argument("--distributed", action="store_true", default=None,
                   help="split each mini-batch across the ranks of "
                        "'mpiexec -n K python -m mpi4py -m loopnet train --distributed ...'")
    d.add_argument("--deterministic", action="store_true", default=None,
                   help="with --distributed: add the ranks' gradients in rank order, not by "
                        "Allreduce (bit-reproducible for a given number of ranks)")
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="PATH",
                   help="write the trained model here (.npz, or .json for network2's format)")
    o.add_argument("--resume", metavar="PATH", help="continue from a saved model or checkpoint")
    o.add_argument("--checkpoint-every", type=c.positive_int, metavar="N",
                   dest="checkpoint_every", help="write a checkpoint every N epochs")
    o.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (default: "
                   "<save>.ckpt.npz, or loopnet-checkpoint.npz without --save)")
    o.add_argument("--plot", metavar="PNG", help="write a plot of cost and accuracy per epoch "
                   "(needs matplotlib: pip install 'loopnet[plot]')")
    o.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar during each epoch (default: when stderr is a terminal)")
    o.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    o.add_argument("--log", metavar="FILE",
                   help="write one JSON line per epoch, then a summary line, to FILE")


# --------------------------------------------------------------------------- settings

def _settings(args, saved):
    """Merge explicit options, the resumed model's options and the defaults."""
    s = {}
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is None and key in saved:
            value = saved[key]
        if value is None:
            value = DEFAULTS[key]
        s[key] = value
    if getattr(args, "eta", None) is None and "eta" not in saved and s["optimizer"] == "adam":
        s["eta"] = ADAM_ETA
    return s


def _default_checkpoint(save):
    if save:
        root, ext = os.path.splitext(save)
        return root + ".ckpt.npz"
    return "loopnet-checkpoint.npz"


def _check_plot_available():
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        raise c.CommandError("--plot needs matplotlib, which is not installed: "
                             "pip install 'loopnet[plot]' (or drop --plot)")


def _fraction_or_zero(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


# --------------------------------------------------------------------------- validation split

def validation_split(n, fraction, seed, dataset=None):
    """(train rows, validation rows) of n training examples.

    ``fraction`` None: Nielsen's split for the MNIST family's full 60,000 (the first 50,000
    train, the last 10,000 validate), else none.  A fraction: round(fraction·n) rows drawn
    with ``seed`` (a generator of its own: the network's stream is untouched).
    """
    from ..datafiles import IDX_DATASETS
    import numpy as np
    rows = np.arange(n)
    if fraction is None:
        if dataset in IDX_DATASETS and n == MNIST_TRAIN:
            return rows[:-NIELSEN_VALIDATION], rows[-NIELSEN_VALIDATION:]
        return rows, rows[:0]
    k = int(round(fraction * n))
    if fraction > 0 and not 1 <= k < n:
        raise c.UsageError(f"--validation {fraction:g} of {n} examples leaves "
                           f"{k} for validation and {n - k} for training; both need some")
    perm = np.random.default_rng([seed, 0x76616C]).permutation(n)
    return np.sort(perm[:n - k]), np.sort(perm[n - k:])


# --------------------------------------------------------------------------- first run

def kernels_cached(dtype, rules=False, moments=False):
    """True when Numba's cache index holds loopnet's engine for ``dtype`` (the next warm-up
    loads it), False when it does not (it compiles), None when that cannot be told.  The
    engine for the run: with the per-example code (``rules``: its signature holds the Rules
    type, see loopnet.optim.no_rules) or not, with the optimizer's moments (``moments``)
    or not (a State of None moments, see loopnet.optim.engine_state)."""
    try:
        from .. import engine
        index = engine.drive_batches._cache._cache_file._load_index()
        return any(("Rules(" in str(key[0])) == rules and
                   ("State(none" in str(key[0])) == (not moments)
                   for key in index if f"({dtype}," in str(key[0][0]))     # params' type
    except Exception:           # a Numba without these internals: say nothing definite
        return None


def warm_up(dtype, out, quiet, rules=False, moments=False):
    """loopnet.warmup with an honest message: compiling (with elapsed seconds, from a
    thread) or loading from the cache, as the cache index says."""
    import threading
    import loopnet
    cached = kernels_cached(dtype, rules, moments)
    done = threading.Event()
    ticker = None
    if not quiet and cached is not True:
        what = ("compiling loopnet's kernels for this CPU (first run only, about 10-60 s)"
                if cached is False else "compiling loopnet's kernels, or loading them from the "
                "cache (up to 40 s the first time)")
        live = getattr(out, "isatty", lambda: False)()

        def tick():
            start = time.perf_counter()
            while not done.wait(1.0):
                if live:
                    out.write(f"\rloopnet: {what}... {time.perf_counter() - start:.0f} s")
                    out.flush()

        out.write(f"loopnet: {what}..." + ("" if live else "\n"))
        out.flush()
        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
    try:
        seconds = loopnet.warmup(dtype, rules=rules, moments=moments)
    finally:
        done.set()
        if ticker is not None:
            ticker.join()
            if getattr(out, "isatty", lambda: False)():
                out.write("\n")
    if not quiet:
        if cached:
            print(f"loopnet: compiled kernels loaded from the cache in {seconds:.1f} s",
                  file=out, flush=True)
        else:
            print(f"loopnet: kernels ready in {seconds:.1f} s (kept in the cache for later "
                  f"runs)", file=out, flush=True)
    return seconds


# --------------------------------------------------------------------------- progress

def _progress_reporter(enabled, total_epochs, first_epoch, inner=None, stream=None):
    """One bar per phase (training, evaluation) on stderr, or nothing."""
    from ..reporting import Reporter
    return Reporter(total_epochs - first_epoch, first_epoch, bars=enabled, lines=False,
                    stream=stream or sys.stderr, total_epochs=total_epochs, inner=inner)


class _Log:
    """--log FILE: one JSON line per epoch, then one summary line."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, kind, record):
        if self.f is None:
            return
        import json
        row = {"type": kind}
        row.update({k: v for k, v in record.items() if v is not None})
        self.f.write(json.dumps(row, default=float) + "\n")
        self.f.flush()

    def close(self):
        if self.f is not None:
            self.f.close()


# --------------------------------------------------------------------------- the command

def run(args):
    import loopnet
    from .. import io

    if getattr(args, "output_old", None) is not None:
        sys.stderr.write("loopnet: note: train's --output is now --output-activation (--output "
                         "still works, but will go; in predict, --output is the output file)\n")
        if args.output is None:
            args.output = args.output_old
    saved_opts, saved_data, net = {}, {}, None
    if args.resume:
        net, meta = io.load_with_meta(args.resume)
        extra = meta.get("extra") or {}
        saved_opts = dict(extra.get("train") or {})
        saved_data = dict(extra.get("data") or {})
        for key in ARCH:
            given = getattr(args, key, None)
            have = net.config[key] if key != "sizes" else list(net.sizes)
            if given is not None and given != have:
                raise c.UsageError(f"--{key} {given if key != 'sizes' else ','.join(map(str, given))}"
                                   f" differs from the resumed model ({have}); leave it out")
    recorded = saved_opts.get("save")
    for key in ("save", "checkpoint", "checkpoint_path"):     # outputs: command line only
        saved_opts.pop(key, None)
    s = _settings(args, saved_opts)
    _per_example_kwargs(args, s)     # a wrong combination fails before any data is read
    spec = c.data_spec(args, saved_data)
    s["save"], checkpoint, args.plot = _outputs(args, spec)
    if recorded and args.save is None and not args.quiet:
        print(f"loopnet: note: the checkpoint was made with --save {recorded}; output paths "
              "are taken only from the command line, so add --save to keep the result",
              file=sys.stderr)
    c.set_threads(args.threads)
    # the per-example options used (they need the engine with the per-example code)
    per_example = [name for name, on in (("--dropout", s["dropout"]),
                                         ("--clip-norm", s["clip_norm"] is not None),
                                         ("--noise-multiplier", s["noise_multiplier"])) if on]
    if per_example and getattr(args, "distributed", None):
        raise c.UsageError(f"{' and '.join(per_example)} cannot be used with --distributed "
                           f"(yet): distributed training takes plain gradient sums")
    mpi = _mpi_session(args)        # None unless --distributed; then rank 0 alone prints/writes
    save = io.save if mpi is None else mpi.save
    if net is None:
        try:
            loopnet.costs.check_pair(s["output"], s["cost"])
        except ValueError as exc:
            raise c.UsageError(f"--output-activation {s['output']} with --cost "
                               f"{s['cost']}: {exc}") \
                from None

    n_out = net.sizes[-1] if net is not None else (args.sizes[-1] if args.sizes else None)
    ds = c.load_data(spec, n_classes=n_out)
    if net is None:
        sizes = args.sizes or [ds.n_inputs, s["hidden"], ds.n_classes]
        if sizes[0] != ds.n_inputs:
            raise c.UsageError(f"--sizes starts with {sizes[0]} inputs but {ds.source} has "
                               f"{ds.n_inputs} per example")
        net = loopnet.Net(sizes, activation=s["activation"], output=s["output"], cost=s["cost"],
                          dtype=s["dtype"], seed=s["seed"], dropout=s["dropout"])
    elif net.sizes[0] != ds.n_inputs:
        raise c.CommandError(f"{args.resume}: the model takes {net.sizes[0]} inputs but "
                             f"{ds.source} has {ds.n_inputs} per example")
    train_rows, val_rows = validation_split(len(ds.y_train), s["validation"], s["seed"],
                                            spec.get("dataset"))
    has_val = len(val_rows) > 0
    selecting = [f"--{k.replace('_', '-')}" for k in ("patience", "save_best", "halve_eta_after")
                 if s[k]]
    if selecting and not has_val:
        raise c.UsageError(f"{' and '.join(selecting)} select on a validation split of the "
                           f"training data: add --validation FRACTION (the test set is never "
                           f"used for selection)")
    X, y = ds.X_train[train_rows].astype(net.dtype), ds.y_train[train_rows]
    Xt, yt = ds.X_test.astype(net.dtype), ds.y_test
    if has_val:
        Xv, yv = ds.X_train[val_rows].astype(net.dtype), ds.y_train[val_rows]
    else:
        Xv, yv = Xt, yt     # shown each epoch for information; nothing selects on it

    train_opts = {k: s[k] for k in ("epochs", "batch_size", "eta", "lmbda", "momentum",
                                    "optimizer", "tol", "seed", "checkpoint_every", "save",
                                    "validation", "patience", "monitor", "save_best",
                                    "halve_eta_after",
                                    "clip_norm", "noise_multiplier", "delta", "poisson")}
    train_opts["checkpoint_path"] = checkpoint

    def extra(status):
        return {"train": train_opts, "data": dict(c.spec_to_save(spec), divisor=ds.divisor),
                "status": status}

    remaining = s["epochs"] - net.epoch
    out = sys.stdout if mpi is None else mpi.stdout
    if not args.quiet:
        sets = (f"{len(y)} training, {len(yv)} validation (from the training data), {len(yt)} "
                f"test" if has_val else f"{len(y)} training, {len(yv)} held-out")
        print(f"loopnet: {ds.name}: {sets} examples; network "
              f"{','.join(map(str, net.sizes))} {net.activation}/{net.output}, {net.cost_name},"
              f" {net.dtype.name}", file=out)
        hi = float(abs(X).max()) if X.size else 0.0
        scaled = f"inputs divided by {ds.divisor:g}" if ds.divisor != 1.0 else \
            "inputs used as given"
        hint = "; consider --scale max" if hi > 1.5 else ""
        print(f"loopnet: {scaled} (largest {hi:.4g}{hint})", file=out)
        how = f"optimizer {s['optimizer']}, eta {s['eta']:g}, batch {s['batch_size']}"
        if s["lmbda"]:
            how += f", lmbda {s['lmbda']:g}"
        if s["momentum"]:
            how += f", momentum {s['momentum']:g}"
        start_note = f" (resuming after epoch {net.epoch})" if net.epoch else ""
        print(f"loopnet: {plural(max(remaining, 0), 'epoch')}{start_note}; {how}",
              file=out, flush=True)
    if remaining <= 0:
        print(f"loopnet: the model has already trained {plural(net.epoch, 'epoch')} (>= --epochs "
              f"{s['epochs']}); nothing to do", file=out)
        if s["save"] and not (args.resume and os.path.abspath(s["save"]) ==
                              os.path.abspath(args.resume)):
            save(net, s["save"], extra=extra("complete"))
        return 0

    # Compile (first run) or load the cached kernels now, so no epoch time includes the JIT.
    warm_up(net.dtype.name, out, args.quiet or (mpi is not None and not mpi.root),
            rules=bool(per_example),
            moments=s["optimizer"] == "adam" or bool(s["momentum"]))

    show_bar = args.progress if args.progress is not None else (
        sys.stderr.isatty() and not args.quiet)
    show_bar = show_bar and (mpi is None or mpi.root)      # one bar, not one per MPI rank
    bar = _progress_reporter(show_bar, s["epochs"], net.epoch)
    log = _Log(args.log if (mpi is None or mpi.root) else None)
    first_epoch = net.epoch
    t0 = time.perf_counter()
    best = {}

    def on_epoch(n, record):
        bar.epoch_done(record)
        if not args.quiet:
            print(epoch_line(record, s["epochs"], val_label="val" if has_val else "held-out")
                  + _privacy_note(record),
                  file=out, flush=True)
        log.write("epoch", record)
        if s["save_best"] and record.get("best_epoch") == record["epoch"]:
            best["net"] = n.copy()
        every = s["checkpoint_every"]
        if every and n.epoch % every == 0 and n.epoch < s["epochs"]:
            save(n, checkpoint, extra=extra("checkpoint"))
        return False

    fit_kwargs = dict(epochs=remaining, batch_size=s["batch_size"], eta=s["eta"],
                      lmbda=s["lmbda"], momentum=s["momentum"], optimizer=s["optimizer"],
                      tol=s["tol"], validation_data=(Xv, yv), callback=on_epoch, progress=bar)
    if args.exact_cost:
        fit_kwargs["monitor"] = "exact"
    if has_val:             # (distributed.fit takes them too: every rank selects alike)
        from ..training import HalveEta
        fit_kwargs["monitor_key"] = s["monitor"]        # records carry best_epoch
        fit_kwargs["patience"] = s["patience"]
        if s["halve_eta_after"]:
            fit_kwargs["lr_schedule"] = HalveEta(s["halve_eta_after"], monitor=s["monitor"])
    if args.threads and mpi is None:
        fit_kwargs["threads"] = args.threads
    fit_kwargs.update(_per_example_kwargs(args, s))
    stopped = []
    try:
        with _sigterm_as_interrupt(stopped), _warnings_as_lines(bar):
            (net.fit if mpi is None else mpi.fit(net))(X, y, **fit_kwargs)
    except KeyboardInterrupt:
        bar.close()
        save(net, checkpoint, extra=extra("interrupted"))
        why = "terminated (SIGTERM)" if stopped else "interrupted"
        if mpi is not None and not mpi.root:
            return 143 if stopped else 130      # rank 0 reports it
        log.write("summary", {"status": "interrupted", "epochs": net.epoch})
        log.close()
        kept = net.history and net.history[-1].get("interrupted")
        how = ("its evaluation was cut short; its training is kept" if kept else
               "the epoch in progress was rolled back")
        sys.stderr.write(
            f"loopnet: {why}; {plural(net.epoch, 'epoch')} complete ({how}). "
            f"Checkpoint saved to {checkpoint}\n"
            f"loopnet: resume with: loopnet train --resume {_quote(c.shown(checkpoint))}"
            f"{_output_options(s['save'], checkpoint, args.plot)}\n")
        return 143 if stopped else 130
    except loopnet.DivergenceError as exc:
        bar.close()
        log.write("summary", {"status": "diverged", "epochs": net.epoch})
        log.close()
        if mpi is not None and not mpi.root:
            return 1                # every rank diverged together; rank 0 reports it
        msg = (f"training diverged in epoch {exc.epoch} (cost or a parameter became NaN/inf);"
               f" try a smaller --eta than {s['eta']:g} (e.g. {s['eta'] / 10:g})")
        if s["save"]:
            save(net, s["save"], extra=extra("diverged"))
            msg += f"; the last good parameters (after epoch {net.epoch}) were saved to " \
                   f"{s['save']}"
        else:
            msg += f"; the last good parameters were after epoch {net.epoch} (use --save to " \
                   "keep them)"
        raise c.CommandError(msg) from None
    bar.close()
    elapsed = time.perf_counter() - t0
    chosen = best.get("net", net) if s["save_best"] else net
    if s["save"]:
        save(chosen, s["save"], extra=extra("complete"))
    summary = _summary(net, chosen, first_epoch, elapsed, Xt, yt, s, out, has_val)
    log.write("summary", dict(summary, status="complete"))
    log.close()
    if args.plot and (mpi is None or mpi.root):
        _plot(net.history, args.plot)
        print(f"loopnet: plot written to {args.plot}", file=out)
    return 0


def _per_example_kwargs(args, s):
    """fit's clipping / DP-SGD keywords from --clip-norm, --dp, --noise-multiplier, --delta."""
    if args.dp and (s["clip_norm"] is None or not s["noise_multiplier"]):
        raise c.UsageError("--dp needs --clip-norm C and --noise-multiplier SIGMA > 0")
    if s["noise_multiplier"] and s["clip_norm"] is None:
        raise c.UsageError("--noise-multiplier needs --clip-norm")
    kw = {}
    if s["clip_norm"] is not None:
        kw["clip_norm"] = s["clip_norm"]
    if s["noise_multiplier"]:
        kw.update(noise_multiplier=s["noise_multiplier"], delta=s["delta"],
                  sampling="poisson" if s["poisson"] else "shuffle")
    return kw


def _privacy_note(record):
    """'  epsilon 1.23 (delta 1e-05)' for a DP-SGD epoch record, else ''."""
    if "epsilon" not in record:
        return ""
    return f"  epsilon {record['epsilon']:.3g} (delta {record['delta']:g})"


def _outputs(args, spec):
    """(save, checkpoint, plot) from the command line alone, as absolute paths, checked to be
    regular files distinct from each other and from the inputs (see c.resolve_outputs)."""
    checkpoint = args.checkpoint or _default_checkpoint(args.save)
    out = c.resolve_outputs({"--save": args.save, "--checkpoint": checkpoint,
                             "--plot": args.plot},
                            # (not --resume: continuing a checkpoint in place is intended)
                            {"--data": spec.get("data"), "--test": spec.get("test")})
    if args.plot:
        _check_plot_available()
    return out["--save"], out["--checkpoint"], out["--plot"]


def _output_options(save, checkpoint, plot):
    """The output options to type again on --resume (they are never read from a checkpoint)."""
    text = f" --save {_quote(c.shown(save))}" if save else ""
    if checkpoint != os.path.abspath(_default_checkpoint(save)):
        text += f" --checkpoint {_quote(c.shown(checkpoint))}"
    return text + (f" --plot {_quote(c.shown(plot))}" if plot else "")


def _mpi_session(args):
    """--distributed / --deterministic: see loopnet/distributed.py (imports mpi4py only then)."""
    if not (getattr(args, "distributed", None) or getattr(args, "deterministic", None)):
        return None
    from ._mpi import cli_session
    return cli_session(args)


@contextlib.contextmanager
def _sigterm_as_interrupt(stopped):
    """While training, SIGTERM (a scheduler's or `kill`'s stop) takes the Ctrl-C path:
    the epoch in progress is rolled back and a checkpoint is written."""
    def handler(signum, frame):
        stopped.append(signum)
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):       # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _warnings_as_lines(bar):
    """Warnings while training (e.g. loopnet.training.SaturationWarning) as one line
    'loopnet: warning: ...' on stderr, below the bar, instead of Python's two-line form."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        bar.close()
        sys.stderr.write(f"loopnet: warning: {message}\n")
        sys.stderr.flush()

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _quote(path):
    import shlex
    return shlex.quote(path)




def _summary(net, chosen, first_epoch, elapsed, Xt, yt, s, out, has_val):
    """The closing lines: time, and the test set evaluated once on the network kept."""
    hist = [h for h in net.history if h.get("epoch", 0) > first_epoch]
    rates = sorted(h["examples_per_s"] for h in hist if "examples_per_s" in h)
    rate = rates[len(rates) // 2] if rates else float("nan")
    train_s = sum(h.get("seconds", 0.0) for h in hist)
    eval_s = sum(h.get("eval_seconds", 0.0) for h in hist)
    acc = chosen.accuracy(Xt, yt)
    cost = chosen.cost(Xt, yt)
    line = (f"loopnet: done: {plural(len(hist), 'epoch')} in {elapsed:.1f} s (training "
            f"{train_s:.1f} s, evaluation {eval_s:.1f} s; {rate:,.0f} examples/s training, "
            f"median epoch)")
    print(line, file=out)
    if has_val:
        at = next((h.get("best_epoch") for h in reversed(net.history) if "best_epoch" in h),
                  None)
        if at is not None:
            r = next(h for h in net.history if h["epoch"] == at)
            value = r[s["monitor"]]
            shown = f"{100 * value:.2f}%" if s["monitor"].endswith("accuracy") else f"{value:.5f}"
            print(f"loopnet: best {s['monitor']} {shown} after epoch {at}", file=out)
        which = (f"epoch {chosen.epoch}, the best by {s['monitor']}"
                 if chosen.epoch != net.epoch else f"epoch {net.epoch}")
        print(f"loopnet: test (reported once, not used for selection), {which}: accuracy "
              f"{100 * acc:.2f}%, cost {cost:.5f}", file=out)
    else:
        print(f"loopnet: held-out accuracy {100 * acc:.2f}% (no validation split: shown for "
              f"information, nothing was selected on it)", file=out)
    if s["save"]:
        what = f"epoch {chosen.epoch}" + (", the best by " + s["monitor"]
                                          if s["save_best"] else "")
        print(f"loopnet: model saved to {s['save']} ({what})", file=out)
    out.flush()
    return {"epochs": len(hist), "seconds": elapsed, "train_seconds": train_s,
            "eval_seconds": eval_s, "test_accuracy": acc, "test_cost": cost,
            "saved_epoch": chosen.epoch}


def _plot(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise c.CommandError("--plot needs matplotlib: pip install 'loopnet[plot]'") from None
    from .. import io
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("cost", "training"), ("val_cost", "held-out")):
        if any(key in h for h in history):
            ax1.plot(epochs, [h.get(key, float("nan")) for h in history], marker=".",
                     label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cost")
    ax1.legend()
    for key, label in (("accuracy", "training"), ("val_accuracy", "held-out")):
        if any(key in h for h in history):
            ax2.plot(epochs, [100 * h.get(key, float("nan")) for h in history], marker=".",
                     label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    fig.tight_layout()
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
