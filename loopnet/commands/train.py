"""``loopnet train``: train a network, with progress, checkpoints, resume and plots."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from . import _common as c

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

Ctrl-C stops at a safe point (the epoch in progress is rolled back), saves a checkpoint
and prints the command that resumes. If training diverges (NaN/inf), the last good
parameters are kept, saved if --save was given, and the exit code is 1."""

EXAMPLES = """  loopnet train
  loopnet train --epochs 10 --eta 0.5 --cost cross_entropy --save digits.npz
  loopnet train --dataset fashion-mnist --sizes 784,100,10 --epochs 5 --save fm.npz \\
      --checkpoint-every 1 --plot fm.png
  loopnet train --data train.csv --test test.csv --output softmax --cost log_likelihood
  loopnet train --resume fm.ckpt.npz --epochs 10      # continue to 10 epochs in total
"""

#: Defaults of the options that are stored in a model and reused by --resume.
DEFAULTS = {"epochs": 30, "batch_size": 10, "eta": 3.0, "lmbda": 0.0, "momentum": 0.0,
            "optimizer": "sgd", "tol": None, "seed": 0, "activation": "sigmoid",
            "output": "sigmoid", "cost": "quadratic", "dtype": "float64", "hidden": 30,
            "checkpoint_every": None, "save": None, "checkpoint": None}
ADAM_ETA = 0.001
ARCH = ("sizes", "activation", "output", "cost", "dtype")


def add_arguments(p):
    a = p.add_argument_group("network")
    a.add_argument("--sizes", type=c.sizes_list, metavar="N,...",
                   help="layer sizes, input first (default: inputs,30,classes, e.g. 64,30,10)")
    a.add_argument("--activation", choices=c.ACTIVATIONS,
                   help="hidden-layer activation (default sigmoid)")
    a.add_argument("--output", choices=c.OUTPUTS, help="output activation (default sigmoid)")
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
    t.add_argument("--threads", type=c.positive_int, metavar="N",
                   help="train with N threads (default: one or all, whichever runs faster "
                        "here; results are identical either way)")
    c.add_data_arguments(p)
    # ---- distributed training (MPI): implemented in loopnet/distributed.py ----
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


# --------------------------------------------------------------------------- progress

class _Progress:
    """A tqdm bar per epoch when tqdm is installed, else a plain one-line counter."""

    def __init__(self, enabled, total_epochs, n_batches):
        self.enabled = enabled
        self.total_epochs = total_epochs
        self.n_batches = n_batches
        self.bar = None
        self._tqdm = None
        if enabled:
            try:
                from tqdm import tqdm
                self._tqdm = tqdm
            except ImportError:
                self._tqdm = None

    def start(self, epoch):
        self.close()
        if not self.enabled or epoch > self.total_epochs:
            return
        if self._tqdm is not None:
            self.bar = self._tqdm(total=self.n_batches, desc=f"epoch {epoch}/{self.total_epochs}",
                                  unit="batch", leave=False, file=sys.stderr)
        else:
            self.bar = epoch
            self(0, self.n_batches)

    def __call__(self, done, total):
        if self.bar is None:
            return
        if self._tqdm is not None:
            self.bar.update(done - self.bar.n)
        else:
            width = 30
            filled = width * done // max(total, 1)
            sys.stderr.write(f"\r  epoch {self.bar}/{self.total_epochs} "
                             f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} batches")
            sys.stderr.flush()

    def close(self):
        if self.bar is None:
            return
        if self._tqdm is not None:
            self.bar.close()
        else:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()
        self.bar = None


# --------------------------------------------------------------------------- the command

def run(args):
    import loopnet
    from .. import io

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
    spec = c.data_spec(args, saved_data)
    s["save"], checkpoint, args.plot = _outputs(args, spec)
    if recorded and args.save is None and not args.quiet:
        print(f"loopnet: note: the checkpoint was made with --save {recorded}; output paths "
              "are taken only from the command line, so add --save to keep the result",
              file=sys.stderr)
    c.set_threads(args.threads)
    mpi = _mpi_session(args)        # None unless --distributed; then rank 0 alone prints/writes
    save = io.save if mpi is None else mpi.save
    if net is None:
        try:
            loopnet.costs.check_pair(s["output"], s["cost"])
        except ValueError as exc:
            raise c.UsageError(f"--output {s['output']} with --cost {s['cost']}: {exc}") \
                from None

    n_out = net.sizes[-1] if net is not None else (args.sizes[-1] if args.sizes else None)
    ds = c.load_data(spec, n_classes=n_out)
    if net is None:
        sizes = args.sizes or [ds.n_inputs, s["hidden"], ds.n_classes]
        if sizes[0] != ds.n_inputs:
            raise c.UsageError(f"--sizes starts with {sizes[0]} inputs but {ds.source} has "
                               f"{ds.n_inputs} per example")
        net = loopnet.Net(sizes, activation=s["activation"], output=s["output"], cost=s["cost"],
                          dtype=s["dtype"], seed=s["seed"])
    elif net.sizes[0] != ds.n_inputs:
        raise c.CommandError(f"{args.resume}: the model takes {net.sizes[0]} inputs but "
                             f"{ds.source} has {ds.n_inputs} per example")
    X, y = ds.X_train.astype(net.dtype), ds.y_train
    Xv, yv = ds.X_test.astype(net.dtype), ds.y_test

    train_opts = {k: s[k] for k in ("epochs", "batch_size", "eta", "lmbda", "momentum",
                                    "optimizer", "tol", "seed", "checkpoint_every", "save")}
    train_opts["checkpoint_path"] = checkpoint

    def extra(status):
        return {"train": train_opts, "data": dict(c.spec_to_save(spec), divisor=ds.divisor),
                "status": status}

    remaining = s["epochs"] - net.epoch
    out = sys.stdout if mpi is None else mpi.stdout
    if not args.quiet:
        print(f"loopnet: {ds.name}: {len(y)} training, {len(yv)} held-out examples; network "
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
        print(f"loopnet: {remaining if remaining > 0 else 0} epochs{start_note}; {how}",
              file=out, flush=True)
    if remaining <= 0:
        print(f"loopnet: the model has already trained {net.epoch} epochs (>= --epochs "
              f"{s['epochs']}); nothing to do", file=out)
        if s["save"] and not (args.resume and os.path.abspath(s["save"]) ==
                              os.path.abspath(args.resume)):
            save(net, s["save"], extra=extra("complete"))
        return 0

    # Compile (first run) or load the cached kernels now, so no epoch time includes the JIT.
    ready = loopnet.warmup(net.dtype.name)
    if not args.quiet:
        print(f"loopnet: compiled kernels ready in {ready:.1f} s (compiled once, then loaded "
              f"from the cache)", file=out, flush=True)

    show_bar = args.progress if args.progress is not None else (
        sys.stderr.isatty() and not args.quiet)
    show_bar = show_bar and (mpi is None or mpi.root)      # one bar, not one per MPI rank
    bar = _Progress(show_bar, s["epochs"], -(-len(y) // s["batch_size"]))
    bar.start(net.epoch + 1)
    first_epoch = net.epoch
    t0 = time.perf_counter()

    def on_epoch(n, record):
        bar.close()
        if not args.quiet:
            print(c.epoch_line(record, s["epochs"]),
                  file=out, flush=True)
        every = s["checkpoint_every"]
        if every and n.epoch % every == 0 and n.epoch < s["epochs"]:
            save(n, checkpoint, extra=extra("checkpoint"))
        bar.start(n.epoch + 1)
        return False

    fit_kwargs = dict(epochs=remaining, batch_size=s["batch_size"], eta=s["eta"],
                      lmbda=s["lmbda"], momentum=s["momentum"], optimizer=s["optimizer"],
                      tol=s["tol"], validation_data=(Xv, yv), callback=on_epoch, progress=bar)
    if args.threads and mpi is None:
        fit_kwargs["threads"] = args.threads
    stopped = []
    try:
        with _sigterm_as_interrupt(stopped):
            (net.fit if mpi is None else mpi.fit(net))(X, y, **fit_kwargs)
    except KeyboardInterrupt:
        bar.close()
        save(net, checkpoint, extra=extra("interrupted"))
        why = "terminated (SIGTERM)" if stopped else "interrupted"
        if mpi is not None and not mpi.root:
            return 143 if stopped else 130      # rank 0 reports it
        sys.stderr.write(
            f"loopnet: {why}; {net.epoch} epochs complete (the epoch in progress was "
            f"rolled back). Checkpoint saved to {checkpoint}\n"
            f"loopnet: resume with: loopnet train --resume {_quote(c.shown(checkpoint))}"
            f"{_output_options(s['save'], checkpoint, args.plot)}\n")
        return 143 if stopped else 130
    except loopnet.DivergenceError as exc:
        bar.close()
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
    if s["save"]:
        save(net, s["save"], extra=extra("complete"))
    _summary(net, first_epoch, elapsed, Xv, yv, s, out)
    if args.plot and (mpi is None or mpi.root):
        _plot(net.history, args.plot)
        print(f"loopnet: plot written to {args.plot}", file=out)
    return 0


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


def _quote(path):
    import shlex
    return shlex.quote(path)




def _summary(net, first_epoch, elapsed, Xv, yv, s, out):
    hist = [h for h in net.history if h.get("epoch", 0) > first_epoch]
    n_ep = len(hist)
    rates = sorted(h["examples_per_s"] for h in hist if "examples_per_s" in h)
    rate = rates[len(rates) // 2] if rates else float("nan")
    acc = net.accuracy(Xv, yv)
    line = (f"loopnet: done: {n_ep} epochs in {elapsed:.1f} s ({rate:,.0f} examples/s "
            f"training, median epoch); held-out accuracy {100 * acc:.2f}%")
    vals = [(h["val_accuracy"], h["epoch"]) for h in net.history if "val_accuracy" in h]
    if vals:
        best, at = max(vals, key=lambda t: (t[0], -t[1]))
        line += f" (best {100 * best:.2f}% after epoch {at})"
    print(line, file=out)
    if s["save"]:
        print(f"loopnet: model saved to {s['save']} (epoch {net.epoch})", file=out)
    out.flush()


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
