"""One training run: the models, the data, the run folder and the loop around the step.

``Run`` is everything around ``gan.GANTrainer`` that a person wants to look at and
keep: a progress bar, ``metrics.csv``, sample grids of G on one fixed noise batch (G
in eval mode, so the grids show the running batch-norm statistics, as at sampling
time; the averaged G when there is one), ``progress.gif``, ``losses.png``, the
quality score over time (``quality.png``) and checkpoints that resume exactly.
The command line that builds it is ``train.py``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, backend, checkpoint, data, images, resources
from .gan import CollapseWatch, GANTrainer
from .models.dcgan import RECIPES, SUPPORTED_SIZES, Discriminator, Generator, training_memory

FIXED_NOISE = 64  # samples in every grid
METRICS = ("loss_d", "loss_g", "d_real", "d_fake")
# The quality score (minigan.score) of G and, when there is one, of the average: the
# Fréchet distance and the legible share (new columns go last: older files still resume).
SCORES = ("fd", "fd_ema", "legible", "legible_ema")
SCORE_STEPS = 1000  # by default, score every this many steps or so (whole epochs), and the last
SCORE_SAMPLES = 10_000  # as many as `python -m minigan.score` draws: the same number

# The signals that stop a run the way Ctrl-C does: finish the step, save, say how to
# resume. SIGTERM is what `kill`, `timeout`, container stops and schedulers send;
# SIGHUP, a closed terminal. Exit status 128 + the signal's number, as a shell reports.
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + (
    [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
)


class UsageError(Exception):
    """A command line that cannot run; the message says what to do instead."""


class Diverged(Exception):
    pass


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
        c["extra_layer"] = RECIPES[c.get("recipe", "paper")]["extra_layer"]  # recorded for export
        if n < 2:
            raise UsageError(f"{c['dataset']}: found {n} image; training needs at least 2")
        if c["batch_size"] > n:
            print(f"note: only {n} images; using --batch-size {n}", file=sys.stderr)
            c["batch_size"] = n
        self.steps_per_epoch = n // c["batch_size"]
        self.score_every = self._score_every()
        averaged = bool(c["ema_decay"])
        needs = training_memory(c["nz"], c["ngf"], c["ndf"], channels, size, c["batch_size"],
                                averaged, c["extra_layer"])  # fmt: skip
        model = f"--ngf {c['ngf']} --ndf {c['ndf']} --nz {c['nz']} at {size}x{size}"
        bk = backend.current()  # the GPU's memory, for a GPU backend
        resources.check_memory(needs, f"training ({model}, --batch-size {c['batch_size']})", bk)

        bk.seed(c["seed"])
        self.G = Generator(c["nz"], c["ngf"], channels, size, extra_layer=c["extra_layer"])
        self.D = Discriminator(c["ndf"], channels, size, extra_layer=c["extra_layer"])
        self.trainer = GANTrainer(self.G, self.D, c["lr"], c["beta1"], c["nz"],
                                  c["label_smoothing"], c["ema_decay"] or None)  # fmt: skip
        noise = np.random.default_rng([c["seed"], 1]).standard_normal((FIXED_NOISE, c["nz"], 1, 1))
        self.fixed_noise = noise.astype(np.float32)
        self.step = 0
        self.saved = None  # (path, step) of the last checkpoint known to be whole on disk
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
                resumed = Path(meta["path"])  # a run folder stands for its last.npz
                resumed = resumed / "checkpoints" / "last.npz" if resumed.is_dir() else resumed
                self.saved = (resumed, self.step)
                bk.set_rng_state(meta["rng_state"])
                if self.trainer.G_ema is None and any(k.startswith("G_ema.") for k in arrays):
                    note = "--ema-decay 0: the checkpoint's averaged generator is dropped"
                    print(f"note: {note}; G is trained and sampled as it is", file=sys.stderr)
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
        self._warned = set()  # the kinds of optional file (grids, plots, ...) that failed
        self._optional("metrics", self.metrics_path, lambda: self._keep_metrics_up_to(self.step))
        self.interrupted = None  # the name of the signal that asked the run to stop
        self.collapse = CollapseWatch()

    # ---- what the run leaves behind --------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        """Write a checkpoint atomically. A disk without room for it is found before the
        write starts; any failure to write (a full disk, no permission) leaves the
        previous file whole and stops the run: the checkpoint must not be lost."""
        path = Path(path)
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
        # the arrays, plus each member's zip and .npy headers and the JSON metadata
        needs = sum(a.nbytes for a in arrays.values()) + 512 * len(arrays) + 16384
        resources.check_disk(path, needs, f"the checkpoint at step {self.step}")
        checkpoint.save(path, arrays, meta)
        if path.name == "last.npz":
            self.saved = (path, self.step)
        return path

    def _optional(self, kind, path, write):
        """``write()`` for a file that helps a person watch the run (a grid, a plot, the
        GIF, metrics.csv): if the machine refuses it (a full disk, no permission, no
        memory), one warning per kind of file, and training goes on. Returns what
        ``write`` returns, or None when it failed."""
        try:
            return write()
        except (OSError, MemoryError, ValueError, csv.Error) as e:  # a damaged CSV: those two
            if kind not in self._warned:
                self._warned.add(kind)
                print(
                    f"warning: cannot write {path} ({resources.describe(e)}); training goes on "
                    f"without it (further failures to write the {kind} are not reported)",
                    file=sys.stderr,
                )
            return None

    def safe_note(self) -> str:
        """What survives a run that stopped, and how to go on from it, for its error line."""
        if self.saved is None:
            return "no checkpoint was written yet"
        path, step = self.saved
        return (
            f"the last good checkpoint is {path} (step {step}); continue with: "
            f"python -m minigan.train --resume {path}"
        )

    def sample_grid(self, name, raw=False) -> Path | None:
        G = self.trainer.generator(raw).eval()
        fake = G(backend.current().from_numpy(self.fixed_noise))
        self.G.train()
        grid = images.make_grid(backend.current().to_numpy(fake), nrow=8)
        scale = 2 if self.config["image_size"] <= 32 else 1
        path = self.samples / name
        return self._optional("sample grids", path, lambda: images.save_png(path, grid, scale))

    def _score_every(self) -> int:
        """Epochs between quality scores: --score-every, or by default (None) the whole
        epochs nearest above SCORE_STEPS steps where the dataset has a judge, 0 (never)
        where it has none. The last epoch is scored too."""
        from . import score

        every = self.config["score_every"]
        if every is None and score.has_judge(self.config["dataset"], self.config["image_size"]):
            return math.ceil(SCORE_STEPS / self.steps_per_epoch)
        return every or 0

    def scores(self) -> dict:
        """The quality score (minigan.score: the Fréchet distance in the judge's features
        and the legible share) of G and, when there is one, of the averaged generator
        the grids show: {"fd": ..., "legible": ..., "fd_ema": ..., "legible_ema": ...}."""
        from . import sample, score

        result = {}
        for suffix, raw in (("", True), ("_ema", False)):
            if not raw and self.trainer.G_ema is None:
                continue
            fake = sample.generate(self.trainer.generator(raw).eval(), SCORE_SAMPLES, seed=0)
            self.G.train()
            scored = score.evaluate(fake, self.config["dataset"])
            result["fd" + suffix], result["legible" + suffix] = scored["fd"], scored["legible"]
        return result

    def describe_scores(self, scores) -> str:
        """One line for the console: 'fd 7.59, legible 49.5% (real digits: 96.4%)'."""
        from . import score

        said = []
        for suffix, who in (("", ""), ("_ema", "averaged G: ")):
            if "fd" + suffix in scores:
                fd, legible = scores["fd" + suffix], scores["legible" + suffix]
                said.append(f"{who}fd {fd:.2f} (lower is better), legible {legible:.1%}")
        real = score.real_legible(self.config["dataset"])
        return "; ".join(said) + ("" if real is None else f" (real images: {real:.1%})")

    def _keep_metrics_up_to(self, step):
        """Start metrics.csv, or (resuming) drop rows after the checkpoint's step."""
        header = ["step", "epoch", *METRICS, "seconds", *SCORES]
        rows = []
        if step and self.metrics_path.exists():
            with open(self.metrics_path, newline="") as f:
                rows = [r for r in csv.reader(f)][1:]
            rows = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]
            rows = [(r + [""] * len(header))[: len(header)] for r in rows]  # older, narrower
        text = io.StringIO(newline="")
        csv.writer(text).writerows([header, *rows])
        checkpoint.atomic_write(self.metrics_path, lambda f: f.write(text.getvalue().encode()))

    def log(self, metrics, seconds, scores):
        row = [self.step, f"{self.step / self.steps_per_epoch:.4f}"]
        row += [f"{metrics[k]:.6g}" for k in METRICS] + [f"{seconds:.4f}"]
        row += [f"{scores[k]:.6g}" if k in scores else "" for k in SCORES]

        line = io.StringIO(newline="")
        csv.writer(line).writerow(row)

        def append():  # whole rows only: a full disk leaves no half row behind
            checkpoint.append_whole(self.metrics_path, line.getvalue().encode())

        self._optional("metrics", self.metrics_path, append)

    def plot_metrics(self):
        losses, quality = self.out / "losses.png", self.out / "quality.png"
        self._optional("plots", losses, lambda: images.plot_losses(self.metrics_path, losses))
        if self.score_every:
            self._optional(
                "plots", quality, lambda: images.plot_quality(self.metrics_path, quality)
            )

    # ---- the loop ---------------------------------------------------------------------------
    def train(self) -> str:
        """Train to the last epoch or --max-steps (counted over the whole run) or a stop
        signal; returns which of "done", "max-steps", "interrupted", "collapsed" stopped it."""
        from tqdm import tqdm

        c, per_epoch = self.config, self.steps_per_epoch
        total = c["epochs"] * per_epoch
        end = min(total, c["max_steps"] or total)
        self._saved_at = time.monotonic()
        while self.step < end and not self.interrupted:
            epoch, start = divmod(self.step, per_epoch)
            with tqdm(  # closed however the epoch ends: an error line gets a line of its own
                total=per_epoch,
                initial=start,
                desc=f"epoch {epoch + 1}/{c['epochs']}",
                unit="step",
                dynamic_ncols=True,
            ) as bar:
                self._epoch(bar, epoch, start, end)
            if self.step % per_epoch == 0:
                self.end_of_epoch(self.step // per_epoch)
                self._saved_at = time.monotonic()
        if self.interrupted:
            return "collapsed" if self.interrupted == "collapse" else "interrupted"
        return "done" if self.step >= total else "max-steps"

    def _epoch(self, bar, epoch, start, end):
        """The steps of one epoch from its batch ``start``, to step ``end`` or a stop."""
        c, per_epoch = self.config, self.steps_per_epoch
        batches = data.batches(self.images, c["batch_size"], c["seed"], epoch, start, raw=True)
        for real in batches:  # uint8: scaled to [-1, 1] on the backend
            began = time.perf_counter()
            m = self.trainer.step(real)
            if not all(math.isfinite(v) for v in m.values()):
                raise Diverged(self.step + 1, m)
            self.step += 1
            seconds = time.perf_counter() - began
            epochs_done, within = divmod(self.step, per_epoch)
            scored = (
                self.score_every
                and not within
                and (epochs_done % self.score_every == 0 or epochs_done == c["epochs"])
            )
            scores = {}
            if scored:
                bar.set_description(f"epoch {epoch + 1}/{c['epochs']}, scoring")
                scores = self.scores()
                bar.write(f"epoch {epochs_done}: quality {self.describe_scores(scores)}")
            self.log(m, seconds, scores)
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
            if minutes and time.monotonic() - self._saved_at >= 60 * minutes:
                self.save_checkpoint(self.checkpoints / "last.npz")  # mid-epoch
                self._saved_at = time.monotonic()
            if self.step >= end or self.interrupted:
                break

    def end_of_epoch(self, epoch):
        c = self.config
        if c["sample_every"] and epoch % c["sample_every"] == 0:
            self.sample_grid(f"epoch_{epoch:03d}.png")
        self.save_checkpoint(self.checkpoints / "last.npz")
        if c["checkpoint_every"] and epoch % c["checkpoint_every"] == 0:
            self.save_checkpoint(self.checkpoints / f"epoch_{epoch:03d}.npz")
        self.plot_metrics()

    def finish(self) -> list[Path]:
        """The final grid (and the raw G's, with an average), last.npz, progress.gif and
        the plots: every run ends with these."""
        final = self.sample_grid("final.png")
        raw = [self.sample_grid("final_raw.png", raw=True)] if self.trainer.G_ema else []
        last = self.save_checkpoint(self.checkpoints / "last.npz")
        frames = sorted(self.samples.glob("epoch_*.png")) + ([final] if final else [])
        gif_path = self.out / "progress.gif"
        gif = self._optional("GIF", gif_path, lambda: images.save_gif(gif_path, frames))
        self.plot_metrics()
        plots = [p for p in (self.out / "losses.png", self.out / "quality.png") if p.exists()]
        return [p for p in (final, last, gif, *raw, *plots, self.metrics_path) if p]


def fault_line(error, run=None, resume=None) -> str:
    """The one line for a run stopped by the machine (an OSError: a full disk, a folder
    it may not write; or a MemoryError): what failed, where the run stopped, what is
    still safe on disk and the command that continues from it."""
    said = resources.describe(error)
    if run is not None:
        return f"{said}; the run stopped at step {run.step}, and {run.safe_note()}"
    if resume:
        return (
            f"{said}; nothing was trained, and {resume} is unchanged; continue with: "
            f"python -m minigan.train --resume {resume}"
        )
    return said


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
