"""Train a DCGAN from minigan's own layers: ``python -m minigan.train``.

The command line: flags (a PyTorch user can guess them; on ``--resume`` the model and
data settings come from the checkpoint), their checks (one line per problem), and the
exit statuses. The step itself is ``gan.GANTrainer``; the run folder and loop around
it, ``run.Run``.
"""

from __future__ import annotations

if __name__ == "__main__":  # minigan owns this process: choose BLAS kernels before NumPy loads
    from minigan import cpu

    cpu.choose_openblas_kernels()

import argparse
import math
import os
import signal
import sys
from pathlib import Path

from . import __version__, backend, checkpoint, data, score
from .gan import (  # noqa: F401  (GANTrainer and the rest, where they used to be)
    EMA_DECAY,
    LOSS_BOUND,
    PINNED,
    PINNED_STEPS,
    CollapseWatch,
    GANTrainer,
)
from .images import plot_losses as plot_metrics  # noqa: F401  (its old name and place)
from .models.dcgan import RECIPES, SUPPORTED_SIZES
from .run import (  # noqa: F401
    SCORE_STEPS,
    STOP_SIGNALS,
    Diverged,
    Run,
    UsageError,
    fault_line,
    stop_signals_ask,
)

# Flags that shape the model or the data; on --resume they come from the checkpoint.
MODEL_KEYS = (
    "recipe",
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
    recipe="minigan",
    backend="auto",
    dataset="mnist5k",
    data_dir=None,
    image_size=None,
    epochs=None,  # the recipe's (RECIPE_EPOCHS)
    batch_size=128,
    nz=100,
    ngf=None,
    ndf=None,
    lr=2e-4,
    beta1=0.5,
    label_smoothing=0.0,
    ema_decay=EMA_DECAY,
    seed=1,
    out=None,
    sample_every=1,
    score_every=None,
    checkpoint_every=0,
    checkpoint_minutes=10.0,
    max_steps=None,
    stop_on_collapse=False,
)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minigan.train",
        description="Train a DCGAN (Radford et al. 2016) from minigan's hand-written layers. "
        "With no flags: minigan's recipe, 40 epochs (1,560 steps) on the 5,000 bundled MNIST "
        "digits.",
    )
    d = DEFAULTS
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="minigan: the paper's DCGAN with one more layer in G and in D (legible digits "
        "sooner); paper: the paper's layout, as the PyTorch DCGAN example builds it "
        "(default: minigan; docs/quality.md measures both)",
    )
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
    p.add_argument(
        "--epochs",
        type=int,
        help="passes over the data (default: "
        + ", ".join(f"{n} with --recipe {r}" for r, n in RECIPE_EPOCHS.items())
        + ")",
    )
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
        "--ema-decay",
        type=float,
        help="sample from an exponential moving average of G's weights with this decay "
        f"(grids, checkpoints, minigan.sample, the score); 0: off (default: {d['ema_decay']:g})",
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
        "--score-every",
        type=int,
        help="add the quality score (minigan.score) to metrics.csv and quality.png every N "
        "epochs, and after the last; 0: never (default: MNIST and Fashion-MNIST at 28x28: "
        f"every {SCORE_STEPS} steps or so, in whole epochs; others: never)",
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


# --epochs' default per recipe. minigan's recipe's step takes twice the paper's: its 40
# epochs took 11-12 minutes on the project's 2-core machine, the paper's 50 about 7
# (docs/quality.md, legibility against wall time); since the CPU step got faster
# (issue 19), 9 min 40 s (benchmarks/RESULTS.md).
RECIPE_EPOCHS = {"minigan": 40, "paper": 50}
# What a checkpoint written before a setting existed was trained with.
LEGACY = dict(recipe="paper")
INT_KEYS = ("epochs", "batch_size", "nz", "ngf", "ndf", "max_steps", "seed", "image_size",
            "sample_every", "score_every", "checkpoint_every")  # fmt: skip
FLOAT_KEYS = ("lr", "beta1", "label_smoothing", "ema_decay", "checkpoint_minutes")
MAX_WIDTH = 4096  # --nz, --ngf, --ndf
OPTIONAL_KEYS = ("data_dir", "image_size", "epochs", "ngf", "ndf", "max_steps", "out",
                 "score_every")  # fmt: skip


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
        if key in ("recipe", "dataset", "data_dir", "out", "backend") and not isinstance(
            value, str
        ):
            return f"{flag} must be a string, got {value!r}"
    for key in ("epochs", "batch_size", "nz", "ngf", "ndf", "max_steps"):
        if config.get(key) is not None and config[key] < 1:
            return f"--{key.replace('_', '-')} must be positive, got {config[key]}"
    if config.get("seed") is not None and config["seed"] < 0:
        return f"--seed must be 0 or more, got {config['seed']}"
    for key in ("sample_every", "score_every", "checkpoint_every", "checkpoint_minutes"):
        if config.get(key) is not None and config[key] < 0:
            return f"--{key.replace('_', '-')} must be 0 (never) or more, got {config[key]}"
    if (config.get("batch_size") or 2) < 2:
        return "--batch-size must be at least 2 (batch norm needs 2 images)"
    if not config.get("lr", 1) > 0 or not 0 <= config.get("beta1", 0) < 1:
        return "--lr must be positive and --beta1 in [0, 1)"
    if not 0 <= config.get("label_smoothing", 0) < 1:
        return "--label-smoothing must be in [0, 1)"
    if not 0 <= config.get("ema_decay", 0) < 1:
        return f"--ema-decay must be in [0, 1) (0: off), got {config['ema_decay']}"
    for key in ("nz", "ngf", "ndf"):  # a hand-edited checkpoint must not allocate terabytes
        if (config.get(key) or 0) > MAX_WIDTH:
            return f"--{key} must be at most {MAX_WIDTH}, got {config[key]}"
    if config.get("image_size") is not None and config["image_size"] not in SUPPORTED_SIZES:
        sizes = ", ".join(map(str, SUPPORTED_SIZES))
        return f"--image-size must be one of {sizes}, got {config['image_size']}"
    if "recipe" in config and config["recipe"] not in RECIPES:
        return f"--recipe must be one of {', '.join(RECIPES)}, got {config['recipe']!r}"
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
        config["epochs"] = config["epochs"] or RECIPE_EPOCHS[config["recipe"]]
        _check_score_every(config)
        return config, None, None
    arrays, meta = checkpoint.load(args.resume)
    meta["path"] = str(args.resume)
    if meta.get("format") != "minigan-dcgan":
        raise UsageError(f"{args.resume}: not a DCGAN training checkpoint")
    config = {**DEFAULTS, **LEGACY, **meta["config"]}
    config["epochs"] = config["epochs"] or RECIPE_EPOCHS.get(config["recipe"], 50)
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
    _check_score_every(config)
    return config, arrays, meta


def _check_score_every(config):
    """--score-every needs a judge for the run's data (before any data is read)."""
    if config["score_every"] and not score.has_judge(config["dataset"], config["image_size"]):
        raise UsageError(
            f"--score-every: the quality score has judges for 28x28 {', '.join(score.JUDGES)} "
            f"only, not {config['dataset']} at {config['image_size'] or 'its own size'}; "
            "pass --score-every 0"
        )


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
            f"recipe {config['recipe']}, backend {name}, G {run.G.num_parameters():,} / "
            f"D {run.D.num_parameters():,} parameters, run folder {run.out}"
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
    except (OSError, MemoryError) as e:  # the machine's: a full disk, no permission, no memory
        print(f"error: {fault_line(e, run, args.resume)}", file=sys.stderr)
        return 2
    except Diverged as e:
        step, m = e.args
        kept = "no checkpoint was written yet"
        if run.saved is not None:  # the learning rate is the checkpoint's on --resume
            kept = f"the last good checkpoint is {run.saved[0]} (step {run.saved[1]})"
        print(
            f"error: training diverged at step {step} "
            f"(loss_d={m['loss_d']}, loss_g={m['loss_g']}); "
            f"stopped, {kept}. Start again with a lower --lr or with --label-smoothing 0.1.",
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
        print(f"stopped by {name}; continue with: python -m minigan.train --resume {run.saved[0]}")
        return 128 + run.interrupted
    if stop == "collapsed":
        print(f"error: stopped (--stop-on-collapse): {run.collapse.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
