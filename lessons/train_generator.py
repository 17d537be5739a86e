"""Train the generator that lesson 11 uses, with minigan's default recipe, and ship it.

    python lessons/train_generator.py              # the default run (what is committed)
    python lessons/train_generator.py --epochs 5   # a shorter one, while trying things out

It runs ``python -m minigan.train`` with its default flags (the 5,000 bundled MNIST
digits, the default recipe and seed) into a temporary run folder, takes the generator
that ``minigan.sample.load_generator`` returns for that run (the averaged G when the
recipe keeps one, else G), scores it with ``minigan.score`` (10,000 samples, seed 0:
the same measurement as ``python -m minigan.score --checkpoint RUN``) and writes its
weights alone, about 3 MB, to ``lessons/assets/generator_mnist5k.npz`` with
``minigan.sample.save_generator``. The file's metadata records how it was made (the
training configuration, steps, wall time, this command) and its score, so the lesson
can say which generator it draws from. When minigan's default recipe changes, run this
again, then re-execute the lesson (``python lessons/run.py 11``).
"""

from __future__ import annotations

if __name__ == "__main__":  # this script owns the process: choose BLAS kernels before NumPy
    from minigan import cpu

    cpu.choose_openblas_kernels()

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minigan import __version__, backend, checkpoint, export, sample, score, train

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "assets" / "generator_mnist5k.npz"
DATASET = "mnist5k"  # the bundled digits: minigan.train's default
SCORE_SAMPLES, SCORE_SEED = 10_000, 0  # as python -m minigan.score draws them


def git_commit() -> str | None:
    """The repository's commit (with '+changes' when the tree differs), or None."""
    try:
        run = dict(cwd=HERE.parent, capture_output=True, text=True, timeout=10, check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "minigan"], **run).stdout
        return commit + ("+changes" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python lessons/train_generator.py",
        description="Train a generator with minigan's default recipe, score it and save "
        "its weights (with the score and the recipe in the metadata) for lesson 11.",
    )
    parser.add_argument(
        "--epochs", type=int, help="passes over the data (default: minigan.train's own)"
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help=f"weights file (default: {OUTPUT})"
    )
    args = parser.parse_args(argv)
    if args.output.suffix != ".npz":
        parser.error("--output must end in .npz")

    with tempfile.TemporaryDirectory(prefix="minigan-lesson11-") as folder:
        flags = ["--out", folder]
        if args.epochs is not None:
            flags += ["--epochs", str(args.epochs)]
        command = " ".join(["python -m minigan.train", *flags]).replace(folder, "RUN")
        print(f"training: {command}", flush=True)
        began = time.perf_counter()
        status = train.main(flags)
        seconds = time.perf_counter() - began
        if status != 0:
            print(f"error: training stopped with status {status}", file=sys.stderr)
            return status
        arrays, run = checkpoint.load(folder)  # the run's arrays, its configuration and step
        G = sample.load_generator(folder)  # the averaged G if the run kept one, else G
        which = export.generator_prefix(arrays).rstrip(".")  # which one that is: G_ema or G

    print(f"scoring {SCORE_SAMPLES} samples (seed {SCORE_SEED}) ...", flush=True)
    result = score.evaluate(sample.generate(G, SCORE_SAMPLES, SCORE_SEED), DATASET)
    result.update(seed=SCORE_SEED, real_legible=score.real_legible(DATASET))
    config = {k: v for k, v in run["config"].items() if k not in ("out", "data_dir")}
    meta = {
        "made_by": "lessons/train_generator.py",
        "command": command,
        "generator": which,
        "training": config,
        "steps": run["step"],
        "epochs_done": run["epoch"],
        "train_seconds": round(seconds, 1),
        "backend": backend.current().name,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "minigan_version": __version__,
        "git_commit": git_commit(),
        "dataset": DATASET,
        "score": result,
    }
    path = sample.save_generator(G, args.output, meta)
    shares = " ".join(f"{d}:{s:.1%}" for d, s in enumerate(result["class_share"]))
    print(
        f"{which} after {run['step']} steps ({seconds / 60:.1f} min): Fréchet distance "
        f"{result['fd']:.2f}, legible {result['legible']:.1%} (real digits "
        f"{result['real_legible']:.1%})\nclass shares {shares}\n"
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
