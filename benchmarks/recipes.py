"""Issue 22's measurement: how legible are the default run's digits, per recipe?

Runs the real command, ``python -m minigan.train --recipe R --seed S`` on the bundled
digits (50 epochs, 1,950 steps), for each recipe and seed, scoring every 5 epochs
(``--score-every 5``: the Fréchet distance and the legible share of 10,000 samples in
metrics.csv) and keeping a checkpoint every 10 epochs. Then, for each kept checkpoint,
the class shares (``minigan.score``), and for each recipe a grid of seed 1's samples
after its default epochs (``--grids`` draws them again).
Writes docs/quality/recipes.json and docs/quality/recipe_<R>.png; ``--report`` prints
docs/quality.md's tables from the JSON.

    python benchmarks/recipes.py [--recipes minigan paper] [--seeds 1 2 3] [--jobs 2]
    python benchmarks/recipes.py --report

``--jobs 2`` runs two trainings at once, one thread each (MINIGAN_NUM_THREADS=1), so
their wall times are one core's; the two-core step time is measured separately
(``--time-steps``: seconds per step of each recipe on both cores, from a run of 120
steps minus one of 20, so that start-up cancels).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "quality"
EPOCHS, SCORE_EVERY, KEEP_EVERY = (
    int(os.environ.get(f"RECIPES_{k}", v))
    for k, v in (("EPOCHS", 50), ("SCORE_EVERY", 5), ("KEEP_EVERY", 10))
)


def train(recipe, seed, runs, threads) -> dict:
    out = runs / f"{recipe}_seed{seed}"
    env = {**os.environ, "MINIGAN_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads)}  # fmt: skip
    argv = [sys.executable, "-m", "minigan.train", "--recipe", recipe, "--seed", str(seed),
            "--epochs", str(EPOCHS), "--score-every", str(SCORE_EVERY),
            "--checkpoint-every", str(KEEP_EVERY), "--sample-every", "0",
            "--backend", "numba", "--out", str(out)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("legible")]
    curve = {round(float(r["epoch"])): dict(fd=float(r["fd"]), legible=float(r["legible"]),
                                           seconds=float(r["seconds"])) for r in rows}  # fmt: skip
    return dict(recipe=recipe, seed=seed, wall_s=round(wall, 1), threads=threads, curve=curve,
                out=str(out))  # fmt: skip


def class_shares(result) -> dict:
    """The class shares (and score) of each kept checkpoint's G, 10,000 samples."""
    from minigan import sample, score

    shares = {}
    for ckpt in sorted(Path(result["out"], "checkpoints").glob("epoch_*.npz")):
        epoch = int(ckpt.stem.split("_")[1])
        G = sample.load_generator(ckpt, raw=True)
        scored = score.evaluate(sample.generate(G, 10_000, seed=0), "mnist5k")
        shares[epoch] = dict(fd=scored["fd"], legible=scored["legible"],
                             class_share=[round(s, 4) for s in scored["class_share"]])  # fmt: skip
    return shares


def grid(result, path) -> None:
    """100 samples (noise seed 0) of the run's G after its recipe's default epochs: what
    the default run of that recipe ends with."""
    from minigan import images, sample
    from minigan.train import RECIPE_EPOCHS

    epoch = min(EPOCHS, RECIPE_EPOCHS[result["recipe"]])
    checkpoint = Path(result["out"], "checkpoints", f"epoch_{epoch:03d}.npz")
    G = sample.load_generator(checkpoint, raw=True)
    images.save_png(path, images.make_grid(sample.generate(G, 100, seed=0), nrow=10), scale=2)


def time_steps(short=20, long=120) -> dict:
    """Seconds per step of each recipe on both cores: a run of `long` steps minus one of
    `short`, over the difference, so start-up (imports, Numba's compilation, the data)
    cancels out."""
    per_step = {}
    for recipe in ("paper", "minigan"):
        seconds = {}
        for steps in (short, long):
            out = f"/tmp/minigan-recipes-{recipe}-{steps}-{os.getpid()}"
            argv = [sys.executable, "-m", "minigan.train", "--recipe", recipe, "--max-steps",
                    str(steps), "--sample-every", "0", "--score-every", "0", "--backend",
                    "numba", "--out", out]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds[steps] = time.perf_counter() - start
        per_step[recipe] = round((seconds[long] - seconds[short]) / (long - short), 4)
    return per_step


def report(results) -> str:
    lines = []
    for recipe in results["recipes"]:
        runs = [r for r in results["runs"] if r["recipe"] == recipe]
        lines.append(f"\n{recipe}: legible share / Fréchet distance by epoch, mean (seeds)\n")
        lines.append("| epoch | legible | Fréchet distance | smallest / largest class |")
        lines.append("|---|---|---|---|")
        for epoch in sorted({int(e) for r in runs for e in r["curve"]}):
            got = [r["curve"][str(epoch)] for r in runs if str(epoch) in r["curve"]]
            leg = [g["legible"] for g in got]
            fd = [g["fd"] for g in got]
            shares = [r["shares"][str(epoch)]["class_share"] for r in runs
                      if str(epoch) in r.get("shares", {})]  # fmt: skip
            cls = (f"{min(min(s) for s in shares):.1%} / {max(max(s) for s in shares):.1%}"
                   if shares else "")  # fmt: skip
            lines.append(
                f"| {epoch} | {sum(leg) / len(leg):.1%} ({', '.join(f'{v:.1%}' for v in leg)}) "
                f"| {sum(fd) / len(fd):.2f} ({', '.join(f'{v:.2f}' for v in fd)}) | {cls} |"
            )
        walls = ", ".join(f"{r['wall_s'] / 60:.1f}" for r in runs)
        lines.append(f"\nwall minutes (one thread each, two runs at once): {walls}")
    if "seconds_per_step" in results:
        lines.append(f"\nseconds per step on both cores: {results['seconds_per_step']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["minigan", "paper"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", default="/tmp/minigan-recipes")
    p.add_argument("--report", action="store_true")
    p.add_argument("--time-steps", action="store_true")
    p.add_argument("--grids", action="store_true", help="draw the grids again, from the runs")
    args = p.parse_args()
    path = OUT / "recipes.json"
    if args.report:
        print(report(json.loads(path.read_text())))
        return 0
    if args.grids:  # again, from the runs' checkpoints (still where the JSON says they are)
        for recipe in json.loads(path.read_text())["recipes"]:
            run = next(r for r in json.loads(path.read_text())["runs"] if r["recipe"] == recipe)
            grid(run, OUT / f"recipe_{recipe}.png")
        return 0
    if args.time_steps:
        results = json.loads(path.read_text())
        results["seconds_per_step"] = time_steps()
        path.write_text(json.dumps(results, indent=1))
        print(results["seconds_per_step"])
        return 0
    jobs = [(r, s) for r in args.recipes for s in args.seeds]
    threads = 1 if args.jobs > 1 else 2
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda j: train(*j, Path(args.runs), threads), jobs))
    for r in runs:
        r["shares"] = class_shares(r)
    for recipe in args.recipes:
        grid(next(r for r in runs if r["recipe"] == recipe), OUT / f"recipe_{recipe}.png")
    results = dict(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                   recipes=args.recipes, runs=runs)  # fmt: skip
    path.write_text(json.dumps(results, indent=1))
    print(report(json.loads(path.read_text())))  # (JSON's keys are strings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
