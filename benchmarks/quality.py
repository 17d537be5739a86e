"""Does sampling from an averaged generator help? Measured with minigan.score.

The issue's protocol: Fashion-MNIST, 28x28, ngf = ndf = 32, batch 128, 5 epochs,
Adam(2e-4, beta1 0.5), three seeds. One training run per seed; beside its G, several
exponential moving averages of G's weights (one per decay) follow the same run, so
they are compared on exactly the same trajectory. After every epoch each generator
(raw, and each average with its batch-norm statistics recomputed) draws 10,000
samples, scored by the Fashion-MNIST judge. Writes docs/quality.md's measurements as
JSON and the last epoch's grids side by side as PNGs.

    python benchmarks/quality.py [--seeds 1 2 3] [--epochs 5] [--out docs/quality]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigan import cpu  # noqa: E402

cpu.choose_openblas_kernels()  # as python -m minigan.train does, before NumPy loads

import numpy as np  # noqa: E402

from minigan import backend, data, images, sample, score  # noqa: E402
from minigan.gan import AveragedGenerator, GANTrainer  # noqa: E402
from minigan.models.dcgan import Discriminator, Generator  # noqa: E402

# With the warm-up (gan.AveragedGenerator), decay d is reached after 9 / (1 - d) - 10
# updates: 0.9 after 80, 0.99 after 890 and 0.999 after 8,990, beyond these 2,340 steps
# (0.999 is then the warm-up alone: a half-life of about 8% of the steps so far).
DECAYS = (0.9, 0.99, 0.999)
SAMPLES = 10_000


def run_seed(images_u8, seed, epochs, decays, out):
    bk = backend.current()
    bk.seed(seed)
    G, D = Generator(100, 32, 1, 28), Discriminator(32, 1, 28)
    trainer = GANTrainer(G, D, lr=2e-4, beta1=0.5, nz=100)
    averages = {decay: AveragedGenerator(G, decay) for decay in decays}
    fixed = np.random.default_rng([seed, 1]).standard_normal((64, 100, 1, 1)).astype(np.float32)
    per_epoch = len(images_u8) // 128
    rows, seconds = [], {"steps": 0.0, "averages": 0.0, "scores": 0.0}
    for epoch in range(epochs):
        for real in data.batches(images_u8, 128, seed, epoch, raw=True):
            began = time.perf_counter()
            trainer.step(real)
            middle = time.perf_counter()
            for average in averages.values():
                average.update()
            seconds["steps"] += middle - began
            seconds["averages"] += time.perf_counter() - middle
        began = time.perf_counter()
        generators = {"raw": G.eval()} | {f"ema {d}": a.ready() for d, a in averages.items()}
        row = {"epoch": epoch + 1, "step": (epoch + 1) * per_epoch}
        for name, generator in generators.items():
            fake = sample.generate(generator, SAMPLES, seed=0)
            result = score.evaluate(fake, "fashion-mnist")
            row[name] = {k: result[k] for k in ("fd", "class_entropy", "confidence")}
        G.train()
        seconds["scores"] += time.perf_counter() - began
        rows.append(row)
        print(f"seed {seed} epoch {epoch + 1}: "
              + ", ".join(f"{k} {v['fd']:.2f}" for k, v in row.items() if isinstance(v, dict)),
              flush=True)  # fmt: skip
    for name, generator in generators.items():
        picture = generator.eval()(bk.from_numpy(fixed))
        grid = images.make_grid(bk.to_numpy(picture), nrow=8)
        images.save_png(out / f"seed{seed}_{name.replace(' ', '_')}.png", grid, scale=2)
    G.train()
    return {"seed": seed, "epochs": rows, "seconds": seconds, "steps": epochs * per_epoch}


def report(out):
    """The markdown table of results.json (mean and spread over seeds per epoch) and one
    picture of the last epoch's grids side by side (rows: seeds; columns: generators)."""
    result = json.loads((out / "results.json").read_text())
    runs = result["runs"]
    names = [k for k, v in runs[0]["epochs"][0].items() if isinstance(v, dict)]
    lines = ["| epoch | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for e in range(len(runs[0]["epochs"])):
        cells = []
        for name in names:
            fds = np.array([run["epochs"][e][name]["fd"] for run in runs])
            cells.append(f"{fds.mean():.2f} ({', '.join(f'{v:.2f}' for v in fds)})")
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    seconds = {k: sum(run["seconds"][k] for run in runs) for k in runs[0]["seconds"]}
    steps = sum(run["steps"] for run in runs)
    lines.append("")
    per_step = {k: 1e3 * v / steps for k, v in seconds.items()}
    lines.append(f"per step: training {per_step['steps']:.1f} ms, updating "
                 f"{len(result['decays'])} averages {per_step['averages']:.2f} ms")  # fmt: skip
    print("\n".join(lines))

    from PIL import Image

    tiles = [[Image.open(out / f"seed{run['seed']}_{n.replace(' ', '_')}.png") for n in names]
             for run in runs]  # fmt: skip
    w, h = tiles[0][0].size
    sheet = Image.new("L", (len(names) * (w + 8), len(runs) * (h + 8)), 255)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            sheet.paste(tile.convert("L"), (j * (w + 8), i * (h + 8)))
    sheet.save(out / "grids.png")
    print(f"wrote {out / 'grids.png'} (columns: {', '.join(names)}; rows: seeds)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--backend", default="numba")
    p.add_argument("--out", default="docs/quality")
    p.add_argument("--report", action="store_true", help="only print the table of results.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.report:
        return report(out)
    out.mkdir(parents=True, exist_ok=True)
    backend.use(args.backend)
    images_u8 = data.load("fashion-mnist")
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(images_u8, seed, args.epochs, DECAYS, out))
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "backend": args.backend,
            "protocol": "fashion-mnist 28x28, ngf=ndf=32, batch 128, Adam(2e-4, 0.5), "
            f"{args.epochs} epochs, {SAMPLES} samples per score",
            "decays": DECAYS,
            "runs": runs,
        }
        (out / "results.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
