"""One config's training step, median ms, for before/after comparisons of two checkouts.

    git worktree add /tmp/before <commit>
    for i in 1 2 3 4 5; do
        PYTHONPATH=/tmp/before python benchmarks/paired_step.py 0   # the old minigan
        python benchmarks/paired_step.py 0                          # this checkout's
    done

Run the two checkouts in turn, several times, and compare them pair by pair (new /
old): the machine's speed drifts between pairs more than within one. The config is an
index into ``step_budget.CONFIGS`` (run.py's three, then the default run's); the step
is ``GANTrainer.step`` on Numba (``--backend`` to change), on every core, after two
warm-up steps. Prints which minigan ran, the config and the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import step_budget  # noqa: E402  (imports run.py, which picks OpenBLAS's kernels first)

import minigan  # noqa: E402
from minigan import backend  # noqa: E402
from minigan.gan import GANTrainer  # noqa: E402
from minigan.models.dcgan import Discriminator, Generator  # noqa: E402

import numpy as np  # noqa: E402  # isort: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=int, help="index into step_budget.CONFIGS")
    parser.add_argument("--steps", type=int, default=15, help="timed steps (median)")
    parser.add_argument("--backend", default="numba")
    args = parser.parse_args(argv)
    name, size, channels, width, batch, *layout = step_budget.CONFIGS[args.config]
    layout = layout[0] if layout else {}
    bk = backend.use(args.backend, seed=0)
    if hasattr(bk, "warm_up"):
        bk.warm_up()
    G, D = (
        Generator(100, width, channels, size, **layout),
        Discriminator(width, channels, size, **layout),
    )
    real = np.random.default_rng(0).uniform(-1, 1, (batch, channels, size, size)).astype(np.float32)
    trainer = GANTrainer(G, D)
    trainer.step(real), trainer.step(real)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        trainer.step(real)
        times.append(time.perf_counter() - start)
    print(
        f"{Path(minigan.__file__).parent.parent} | {name} | {statistics.median(times) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
