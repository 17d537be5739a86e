"""Train a DCGAN from minigan's own layers: ``python -m minigan.train``.

``GANTrainer`` is one step of the algorithm; ``Run`` is everything around it that a
person wants to look at and keep: a progress bar, ``metrics.csv``, sample grids of G
on one fixed noise batch (G in eval mode, so the grids show the running batch-norm
statistics, as at sampling time), ``progress.gif``, ``losses.png`` and checkpoints
that resume exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, backend, checkpoint, data, images, nn, optim
from .functional import sigmoid
from .models.dcgan import SUPPORTED_SIZES, Discriminator, Generator


class GANTrainer:
    """The standard GAN step (Goodfellow et al. 2014, with the non-saturating G loss).

    ``step(real)``: real is an (N, C, H, W) batch: uint8 pixels (moved to the backend
    as they are and scaled to [-1, 1] there, a quarter of the bytes of float32), or
    floats in [-1, 1], on the host or already on the backend.
      1. D on the real batch, target 1 (1 - label_smoothing: one-sided smoothing),
         and on a fake batch G(z), z ~ N(0, 1), target 0; one Adam step for D.
      2. G: the same fake batch through the freshly updated D, target 1 (maximise
         log D(G(z)) instead of minimising log(1 - D(G(z))), whose gradient vanishes
         while D wins); the gradient flows back through D into G; one Adam step for G.
    Returns floats: loss_d, loss_g, d_real = mean D(x), d_fake = mean D(G(z)),
    with D's outputs as probabilities. On a GPU these four numbers are the step's
    one wait for the device: everything else is queued without looking at results.
    """

    def __init__(self, G, D, lr=2e-4, beta1=0.5, nz=100, label_smoothing=0.0):
        self.G, self.D, self.nz = G, D, nz
        self.real_target = 1.0 - label_smoothing
        self.opt_g = optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999))
        self.opt_d = optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999))
        self.loss = nn.BCEWithLogitsLoss()
        self.dtype = next(G.parameters()).dtype

    def noise(self, n):
        return backend.current().randn((n, self.nz, 1, 1), dtype=self.dtype)

    def to_backend(self, real):
        """The real batch on the backend, as floats in [-1, 1] (see ``step``)."""
        bk = backend.current()
        real = real if bk.is_array(real) else bk.from_numpy(np.asarray(real))
        if real.dtype == np.uint8:
            return real.astype(self.dtype) / 127.5 - 1  # as data.to_float, on the device
        return real.astype(self.dtype, copy=False)

    def step(self, real):
        G, D, loss = self.G, self.D, self.loss
        real = self.to_backend(real)

        # 1. Discriminator: real -> 1, fake -> 0. D's input gradient is not needed
        #    here (real images are data; G does not learn in this half).
        self.opt_d.zero_grad()
        logits_real = D(real)
        loss_real = loss(logits_real, self.real_target)
        D.backward(loss.backward(), input_grad=False)
        fake = G(self.noise(real.shape[0]))
        logits_fake = D(fake)
        loss_fake = loss(logits_fake, 0.0)
        D.backward(loss.backward(), input_grad=False)
        self.opt_d.step()

        # 2. Generator: make the updated D call the same fakes real. The gradient flows
        #    through D, whose own weight gradients are not needed (D is frozen here).
        self.opt_g.zero_grad()
        loss_g = loss(D(fake), 1.0)
        D.requires_grad_(False)
        try:
            G.backward(D.backward(loss.backward()))
        finally:
            D.requires_grad_(True)
        self.opt_g.step()

        # The step's numbers, fetched from the backend together (one wait on a GPU).
        xp = backend.current().xp
        numbers = xp.stack([loss_real + loss_fake, loss_g,
                            sigmoid(logits_real).mean(), sigmoid(logits_fake).mean()])  # fmt: skip
        loss_d, loss_g, d_real, d_fake = backend.current().to_numpy(numbers).tolist()
        return dict(loss_d=loss_d, loss_g=loss_g, d_real=d_real, d_fake=d_fake)

    def state_dict(self) -> dict:
        """G, D and both Adam states as one flat dict of NumPy arrays."""
        parts = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}
        return {
            f"{name}.{k}": v for name, part in parts.items() for k, v in part.state_dict().items()
        }

    def load_state_dict(self, state) -> None:
        parts = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}
        for name, part in parts.items():
            prefix = name + "."
            part.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )


# ---- the command line -------------------------------------------------------------------------

# Flags that shape the model or the data; on --resume they come from the checkpoint.
MODEL_KEYS = (
    "dataset",
    "data_dir",
    "image_size",
    "batch_size",
    "nz",
    "ngf",
    "ndf",
    "lr",
    "beta1",
    "label_smoothing",
    "seed",
)
DEFAULTS = dict(
    backend="auto",
    dataset="mnist5k",
    data_dir=None,
    image_size=None,
    epochs=50,
    batch_size=128,
    nz=100,
    ngf=None,
    ndf=None,
    lr=2e-4,
    beta1=0.5,
    label_smoothing=0.0,
    seed=1,
    out=None,
    sample_every=1,
    checkpoint_every=0,
    checkpoint_minutes=10.0,
    max_steps=None,
    stop_on_collapse=False,
)
FIXED_NOISE = 64  # samples in every grid


class UsageError(Exception):
    """A command line that cannot run; the message says what to do instead."""


class Diverged(Exception):
    pass


# The signals that stop a run the way Ctrl-C does: finish the step, save, say how to
# resume. SIGTERM is what `kill`, `timeout`, container stops and schedulers send;
# SIGHUP, a closed terminal. Exit status 128 + the signal's number, as a shell reports.
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + (
    [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
)

# A run that has blown up while staying finite: a loss this large means logits of the
# same size on the wrong side (healthy DCGAN losses stay within ~0.01-10), and D(G(z))
# pinned within PINNED of 0 or 1 for PINNED_STEPS steps in a row means one player wins
# outright and the other gets no useful gradient.
LOSS_BOUND = 50.0
PINNED, PINNED_STEPS = 1e-3, 100


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minigan.train",
        description="Train a DCGAN (Radford et al. 2016) from minigan's hand-written layers. "
        "With no flags: 50 epochs (1,950 steps) on the 5,000 bundled MNIST digits.",
    )
    d = DEFAULTS
    p.add_argument(
        "--backend",
        choices=["auto", *backend.names()],
        help="array backend; auto: cupy if a CUDA GPU works, else numba, else numpy "
        "(default: $MINIGAN_BACKEND, else auto)",
    )
    p.add_argument(
        "--dataset", choices=data.DATASETS, help=f"training images (default: {d['dataset']})"
    )
    p.add_argument(
        "--data-dir",
        help="folder holding the dataset's files (default: ~/.cache/minigan/<dataset>)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        choices=SUPPORTED_SIZES,
        help="side of the square images (default: the dataset's own: 28 for MNIST, "
        "32 for CIFAR-10, 64 for a folder)",
    )
    p.add_argument("--epochs", type=int, help=f"passes over the data (default: {d['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"images per step (default: {d['batch_size']})")
    p.add_argument("--nz", type=int, help=f"length of the noise vector z (default: {d['nz']})")
    p.add_argument(
        "--ngf",
        type=int,
        help="G's width: channels of its last hidden layer (default: 64; 32 for 28x28)",
    )
    p.add_argument(
        "--ndf", type=int, help="D's width: channels of its first layer (default: 64; 32 for 28x28)"
    )
    p.add_argument("--lr", type=float, help=f"Adam learning rate for G and D (default: {d['lr']})")
    p.add_argument("--beta1", type=float, help=f"Adam beta1 (default: {d['beta1']})")
    p.add_argument(
        "--label-smoothing",
        type=float,
        help="one-sided: D's target for real images is 1 - this (default: 0)",
    )
    p.add_argument(
        "--seed", type=int, help=f"seed for weights, noise and shuffling (default: {d['seed']})"
    )
    p.add_argument(
        "--out", help="run folder (default: runs/<dataset>, or runs/<dataset>-2, ... if taken)"
    )
    p.add_argument(
        "--resume",
        metavar="PATH",
        help="continue the run saved in this checkpoint (e.g. runs/mnist5k/checkpoints/last.npz)",
    )
    p.add_argument(
        "--sample-every",
        type=int,
        help="write a sample grid every N epochs; 0: only the final one (default: 1)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        help="also keep checkpoints/epoch_NNN.npz every N epochs (default: 0, only last.npz)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        help="also save checkpoints/last.npz when this many minutes have passed since the "
        "last save, mid-epoch too (default: 10; 0: only at epoch ends)",
    )
    p.add_argument(
        "--max-steps", type=int, help="stop after this many steps in all (for quick runs)"
    )
    p.add_argument(
        "--stop-on-collapse",
        action="store_true",
        default=None,
        help="stop (saving, exit status 1) when the run collapses or explodes; by default "
        "it only warns once and keeps training",
    )
    return p


INT_KEYS = ("epochs", "batch_size", "nz", "ngf", "ndf", "max_steps", "seed", "image_size",
            "sample_every", "checkpoint_every")  # fmt: skip
FLOAT_KEYS = ("lr", "beta1", "label_smoothing", "checkpoint_minutes")
MAX_WIDTH = 4096  # --nz, --ngf, --ndf
OPTIONAL_KEYS = ("data_dir", "image_size", "ngf", "ndf", "max_steps", "out")  # None: default


def config_problem(config) -> str | None:
    """What is wrong with these settings (flags, or a checkpoint's), in one line; or None."""
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if value is None and key in OPTIONAL_KEYS:
            continue
        if value is None:
            return f"{flag} is missing"
        if key in INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{flag} must be a whole number, got {value!r}"
        if key in FLOAT_KEYS and not (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ):
            return f"{flag} must be a finite number, got {value!r}"
        if key in ("dataset", "data_dir", "out", "backend") and not isinstance(value, str):
            return f"{flag} must be a string, got {value!r}"
    for key in ("epochs", "batch_size", "nz", "ngf", "ndf", "max_steps"):
        if config.get(key) is not None and config[key] < 1:
            return f"--{key.replace('_', '-')} must be positive, got {config[key]}"
    if config.get("seed") is not None and config["seed"] < 0:
        return f"--seed must be 0 or more, got {config['seed']}"
    for key in ("sample_every", "checkpoint_every", "checkpoint_minutes"):
        if config.get(key) is not None and config[key] < 0:
            return f"--{key.replace('_', '-')} must be 0 (never) or more, got {config[key]}"
    if (config.get("batch_size") or 2) < 2:
        return "--batch-size must be at least 2 (batch norm needs 2 images)"
    if not config.get("lr", 1) > 0 or not 0 <= config.get("beta1", 0) < 1:
        return "--lr must be positive and --beta1 in [0, 1)"
    if not 0 <= config.get("label_smoothing", 0) < 1:
        return "--label-smoothing must be in [0, 1)"
    for key in ("nz", "ngf", "ndf"):  # a hand-edited checkpoint must not allocate terabytes
        if (config.get(key) or 0) > MAX_WIDTH:
            return f"--{key} must be at most {MAX_WIDTH}, got {config[key]}"
    if config.get("image_size") is not None and config["image_size"] not in SUPPORTED_SIZES:
        sizes = ", ".join(map(str, SUPPORTED_SIZES))
        return f"--image-size must be one of {sizes}, got {config['image_size']}"
    if "dataset" in config and config["dataset"] not in data.DATASETS:
        return f"--dataset must be one of {', '.join(data.DATASETS)}, got {config['dataset']!r}"
    return None


def resolve_config(args) -> tuple[dict, dict | None, dict | None]:
    """The run's configuration from the flags (and the checkpoint, on --resume)."""
    given = {k: v for k, v in vars(args).items() if v is not None and k != "resume"}
    if "backend" not in given and os.environ.get("MINIGAN_BACKEND"):
        given["backend"] = os.environ["MINIGAN_BACKEND"]
    problem = config_problem(given)
    if problem:
        raise UsageError(problem)
    if not args.resume:
        config = {**DEFAULTS, **given}
        return config, None, None
    arrays, meta = checkpoint.load(args.resume)
    meta["path"] = str(args.resume)
    if meta.get("format") != "minigan-dcgan":
        raise UsageError(f"{args.resume}: not a DCGAN training checkpoint")
    config = {**DEFAULTS, **meta["config"]}
    problem = config_problem({k: v for k, v in config.items() if k in DEFAULTS})
    if problem:
        raise checkpoint.CheckpointError(f"{args.resume}: damaged checkpoint settings: {problem}")
    for key, value in given.items():
        if key in MODEL_KEYS and value != config[key]:
            raise UsageError(
                f"--{key.replace('_', '-')} {value} differs from the checkpoint's {config[key]}; "
                "a resumed run keeps its model and data settings"
            )
        config[key] = value
    return config, arrays, meta


def choose_out(config, resume) -> Path:
    if config["out"]:
        out = Path(config["out"])
        if not resume and (out / "checkpoints" / "last.npz").exists():
            raise UsageError(
                f"{out} already holds a run; continue it with --resume "
                f"{out / 'checkpoints' / 'last.npz'} or choose another --out"
            )
        return out
    if resume:
        ckpt = Path(resume).resolve()
        return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    base = Path("runs") / config["dataset"]
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


class Run:
    """One training run: the models, the data, the run folder and the loop."""

    def __init__(self, config, arrays=None, meta=None):
        self.config = c = config
        self.images = data.load(c["dataset"], c["data_dir"], c["image_size"])
        n, channels, size = len(self.images), self.images.shape[1], self.images.shape[-1]
        if size not in SUPPORTED_SIZES:
            raise UsageError(
                f"{c['dataset']} images are {size}x{size}; pass --image-size, one of "
                f"{', '.join(map(str, SUPPORTED_SIZES))}"
            )
        c["image_size"] = size
        c["ngf"] = c["ngf"] or (32 if size == 28 else 64)
        c["ndf"] = c["ndf"] or (32 if size == 28 else 64)
        if n < 2:
            raise UsageError(f"{c['dataset']}: found {n} image; training needs at least 2")
        if c["batch_size"] > n:
            print(f"note: only {n} images; using --batch-size {n}", file=sys.stderr)
            c["batch_size"] = n
        self.steps_per_epoch = n // c["batch_size"]

        bk = backend.current()
        bk.seed(c["seed"])
        self.G = Generator(c["nz"], c["ngf"], channels, size)
        self.D = Discriminator(c["ndf"], channels, size)
        self.trainer = GANTrainer(
            self.G, self.D, c["lr"], c["beta1"], c["nz"], c["label_smoothing"]
        )
        noise = np.random.default_rng([c["seed"], 1]).standard_normal((FIXED_NOISE, c["nz"], 1, 1))
        self.fixed_noise = noise.astype(np.float32)
        self.step = 0
        if arrays is not None:
            try:
                self.trainer.load_state_dict(arrays)
                self.fixed_noise = arrays["fixed_noise"]
                if self.fixed_noise.dtype != np.float32 or self.fixed_noise.shape[1:] != (
                    c["nz"], 1, 1,
                ) or len(self.fixed_noise) < 1:  # fmt: skip
                    raise ValueError(
                        f"fixed_noise is {self.fixed_noise.dtype} {self.fixed_noise.shape}, "
                        f"expected float32 (n, {c['nz']}, 1, 1)"
                    )
                self.step = meta["step"]
                bk.set_rng_state(meta["rng_state"])
            except (KeyError, ValueError, TypeError) as e:
                raise checkpoint.CheckpointError(
                    f"{meta['path']}: damaged checkpoint ({e})"
                ) from None

        self.out = Path(c["out"])
        self.samples = self.out / "samples"
        self.checkpoints = self.out / "checkpoints"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out / "metrics.csv"
        self._keep_metrics_up_to(self.step)
        self.interrupted = None  # the name of the signal that asked the run to stop
        self.collapse = CollapseWatch()

    # ---- what the run leaves behind --------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        arrays = {**self.trainer.state_dict(), "fixed_noise": self.fixed_noise}
        meta = dict(
            format="minigan-dcgan",
            minigan_version=__version__,
            config=self.config,
            step=self.step,
            epoch=self.step / self.steps_per_epoch,
            backend=backend.current().name,
            rng_state=backend.current().get_rng_state(),
            channels=int(self.images.shape[1]),
            image_size=int(self.images.shape[-1]),
        )
        return checkpoint.save(path, arrays, meta)

    def sample_grid(self, name) -> Path:
        self.G.eval()
        fake = self.G(backend.current().from_numpy(self.fixed_noise))
        self.G.train()
        grid = images.make_grid(backend.current().to_numpy(fake), nrow=8)
        scale = 2 if self.config["image_size"] <= 32 else 1
        return images.save_png(self.samples / name, grid, scale=scale)

    def _keep_metrics_up_to(self, step):
        """Start metrics.csv, or (resuming) drop rows after the checkpoint's step."""
        header = ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "seconds"]
        rows = []
        if step and self.metrics_path.exists():
            with open(self.metrics_path, newline="") as f:
                rows = [r for r in csv.reader(f)][1:]
            rows = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]
        with open(self.metrics_path, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])

    def log(self, metrics, seconds):
        row = [self.step, f"{self.step / self.steps_per_epoch:.4f}"]
        row += [f"{metrics[k]:.6g}" for k in ("loss_d", "loss_g", "d_real", "d_fake")]
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f).writerow([*row, f"{seconds:.4f}"])

    def plot_losses(self):
        plot_metrics(self.metrics_path, self.out / "losses.png")

    # ---- the loop ---------------------------------------------------------------------------
    def train(self) -> str:
        """Train to the last epoch or --max-steps (counted over the whole run) or a stop
        signal; returns which of "done", "max-steps", "interrupted", "collapsed" stopped it."""
        from tqdm import tqdm

        c, per_epoch = self.config, self.steps_per_epoch
        total = c["epochs"] * per_epoch
        end = min(total, c["max_steps"] or total)
        saved_at = time.monotonic()
        while self.step < end and not self.interrupted:
            epoch, start = divmod(self.step, per_epoch)
            bar = tqdm(
                total=per_epoch,
                initial=start,
                desc=f"epoch {epoch + 1}/{c['epochs']}",
                unit="step",
                dynamic_ncols=True,
            )
            batches = data.batches(self.images, c["batch_size"], c["seed"], epoch, start, raw=True)
            for real in batches:  # uint8: scaled to [-1, 1] on the backend
                began = time.perf_counter()
                m = self.trainer.step(real)
                if not all(math.isfinite(v) for v in m.values()):
                    bar.close()
                    raise Diverged(self.step + 1, m)
                self.step += 1
                self.log(m, time.perf_counter() - began)
                bar.set_postfix(
                    {"loss_d": f"{m['loss_d']:.3f}", "loss_g": f"{m['loss_g']:.3f}",
                     "D(x)": f"{m['d_real']:.2f}", "D(G(z))": f"{m['d_fake']:.2f}"},
                    refresh=False,
                )  # fmt: skip
                bar.update()
                if self.collapse.update(self.step, m):
                    bar.write(f"warning: {self.collapse.message}", file=sys.stderr)
                    if c["stop_on_collapse"]:
                        self.interrupted = "collapse"
                minutes = c["checkpoint_minutes"]
                if minutes and time.monotonic() - saved_at >= 60 * minutes:
                    self.save_checkpoint(self.checkpoints / "last.npz")  # mid-epoch
                    saved_at = time.monotonic()
                if self.step >= end or self.interrupted:
                    break
            bar.close()
            if self.step % per_epoch == 0:
                self.end_of_epoch(self.step // per_epoch)
                saved_at = time.monotonic()
        if self.interrupted:
            return "collapsed" if self.interrupted == "collapse" else "interrupted"
        return "done" if self.step >= total else "max-steps"

    def end_of_epoch(self, epoch):
        c = self.config
        if c["sample_every"] and epoch % c["sample_every"] == 0:
            self.sample_grid(f"epoch_{epoch:03d}.png")
        self.save_checkpoint(self.checkpoints / "last.npz")
        if c["checkpoint_every"] and epoch % c["checkpoint_every"] == 0:
            self.save_checkpoint(self.checkpoints / f"epoch_{epoch:03d}.npz")
        self.plot_losses()

    def finish(self) -> list[Path]:
        """The final grid, last.npz, progress.gif and losses.png: every run ends with these."""
        final = self.sample_grid("final.png")
        last = self.save_checkpoint(self.checkpoints / "last.npz")
        frames = sorted(self.samples.glob("epoch_*.png")) + [final]
        gif = images.save_gif(self.out / "progress.gif", frames)
        self.plot_losses()
        return [final, last, gif, self.out / "losses.png", self.metrics_path]


class CollapseWatch:
    """Notices, once, a run that has exploded or collapsed while its losses stay finite:
    a loss beyond LOSS_BOUND, or D(G(z)) pinned at 0 or 1 for PINNED_STEPS steps."""

    def __init__(self):
        self.pinned_since = None  # the first step of the current pinned stretch
        self.message = None

    def update(self, step, m) -> bool:
        """True the first time the run looks collapsed (self.message says how)."""
        if self.message:
            return False
        pinned = m["d_fake"] < PINNED or m["d_fake"] > 1 - PINNED
        self.pinned_since = (self.pinned_since or step) if pinned else None
        if max(m["loss_d"], m["loss_g"]) > LOSS_BOUND:
            what = f"loss_d={m['loss_d']:.3g}, loss_g={m['loss_g']:.3g} (healthy: ~0.1-5)"
        elif self.pinned_since is not None and step - self.pinned_since + 1 >= PINNED_STEPS:
            what = (f"D(x)={m['d_real']:.3f} and D(G(z))={m['d_fake']:.3f} for "
                    f"{PINNED_STEPS} steps")  # fmt: skip
        else:
            return False
        self.message = (
            f"step {step}: {what}: the run has likely exploded or collapsed (one network "
            "wins outright, the other learns nothing); usually a learning rate too high: "
            "try --lr 2e-4 --beta1 0.5, or --label-smoothing 0.1; training goes on "
            "(--stop-on-collapse stops it)"
        )
        return True


def plot_metrics(metrics_path, png_path):
    """losses.png: both losses, and D's mean outputs on real and fake images, per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = np.genfromtxt(metrics_path, delimiter=",", names=True, ndmin=1)
    if table.size == 0:
        return
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key, label in (("loss_d", "loss D"), ("loss_g", "loss G")):
        top.plot(table["step"], table[key], label=label, linewidth=0.8)
    top.set_ylabel("BCE loss")
    top.legend()
    for key, label in (("d_real", "D(x), real"), ("d_fake", "D(G(z)), fake")):
        bottom.plot(table["step"], table[key], label=label, linewidth=0.8)
    bottom.set_ylabel("mean D output")
    bottom.set_xlabel("step")
    bottom.set_ylim(0, 1)
    bottom.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


@contextlib.contextmanager
def stop_signals_ask(run):
    """While training, SIGINT, SIGTERM and SIGHUP ask ``run`` to stop after its step
    (``Run.train`` then saves); the previous handlers come back afterwards."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda number, _: setattr(run, "interrupted", number))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run = None
    try:
        config, arrays, meta = resolve_config(args)
        name = backend.auto() if config["backend"] == "auto" else config["backend"]
        try:
            backend.use(name)
        except ValueError as e:
            raise UsageError(str(e)) from None
        config["out"] = str(choose_out(config, args.resume))
        run = Run(config, arrays, meta)
        print(
            f"minigan {__version__}: DCGAN on {config['dataset']} ({len(run.images)} images, "
            f"{config['image_size']}x{config['image_size']}x{run.images.shape[1]}), "
            f"backend {name}, G {run.G.num_parameters():,} / D {run.D.num_parameters():,} "
            f"parameters, run folder {run.out}"
        )
        if run.step >= min(config["epochs"] * run.steps_per_epoch, config["max_steps"] or math.inf):
            print(f"note: the checkpoint is already at step {run.step}; nothing to train "
                  "(raise --max-steps or --epochs)", file=sys.stderr)  # fmt: skip
        with stop_signals_ask(run):
            stop = run.train()
        files = run.finish()
    except (UsageError, data.DataError, checkpoint.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a run folder that cannot be written
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except Diverged as e:
        step, m = e.args
        last = run.checkpoints / "last.npz"
        kept = (
            f"the last good checkpoint is {last}"
            if last.exists()
            else "no checkpoint was written yet"
        )
        print(
            f"error: training diverged at step {step} "
            f"(loss_d={m['loss_d']}, loss_g={m['loss_g']}); "
            f"stopped, {kept}. Try a lower --lr or --label-smoothing 0.1.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; nothing more was written", file=sys.stderr)
        return 130
    print(f"{stop} at step {run.step} (epoch {run.step / run.steps_per_epoch:.2f}); wrote:")
    for path in files:
        print(f"  {path}")
    if stop == "interrupted":
        name = signal.Signals(run.interrupted).name
        print(f"stopped by {name}; continue with: python -m minigan.train --resume {files[1]}")
        return 128 + run.interrupted
    if stop == "collapsed":
        print(f"error: stopped (--stop-on-collapse): {run.collapse.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
