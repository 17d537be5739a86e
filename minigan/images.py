"""Pictures of a run: image grids as PNG files, an animated GIF of them, and the
plots of ``metrics.csv`` (losses and D's outputs; the quality score over time).

Every picture is written atomically (``checkpoint.atomic_write``): a run killed while
writing one leaves the previous file or none, never half a PNG."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 0..255 (values outside are clipped)."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1) * 127.5), 0, 255).astype(
        np.uint8
    )


def make_grid(images, nrow=None, padding=2) -> np.ndarray:
    """(N, C, H, W) float images in [-1, 1] -> one uint8 picture (rows, cols) or
    (rows, cols, 3): ``nrow`` images per row (default: a near-square grid), with
    ``padding`` pixels of black between them, as torchvision's make_grid lays them out."""
    images = to_uint8(images)
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.zeros((c, padding + ncol * (h + padding), padding + nrow * (w + padding)), np.uint8)
    for i, image in enumerate(images):
        top = padding + (i // nrow) * (h + padding)
        left = padding + (i % nrow) * (w + padding)
        grid[:, top : top + h, left : left + w] = image
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_png(path, picture, scale=1) -> Path:
    """Write a uint8 (H, W) or (H, W, 3) picture; ``scale`` enlarges it (nearest)."""
    from PIL import Image

    picture = np.asarray(picture)
    if scale > 1:
        picture = picture.repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.fromarray(picture)
    return atomic_write(path, lambda f: image.save(f, format="PNG"))


def save_gif(path, png_paths, seconds_per_frame=0.5) -> Path | None:
    """An animated GIF of the given PNG files, in order (None if none can be read).

    A file that cannot be read as an image (e.g. a grid cut short when a run was killed
    while writing it) is left out, with one ``warning:`` line on stderr naming it."""
    from PIL import Image

    frames = []
    for p in png_paths:
        try:
            with Image.open(p) as image:
                frames.append(image.convert("RGB"))
        except Exception as e:  # a damaged PNG fails in many ways (OSError, SyntaxError, ...)
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            print(f"warning: {p}: cannot read this grid ({reason}); {Path(path).name} "
                  "leaves it out", file=sys.stderr)  # fmt: skip
    if not frames:
        return None
    return atomic_write(path, lambda f: frames[0].save(
        f, format="GIF", save_all=True, append_images=frames[1:],
        duration=int(seconds_per_frame * 1000), loop=0,
    ))  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _read_metrics(metrics_path):
    """metrics.csv as a structured array (blank cells are nan), or None if it has no rows."""
    table = np.genfromtxt(metrics_path, delimiter=",", names=True, ndmin=1)
    return table if table.size else None


def plot_losses(metrics_path, png_path):
    """losses.png: both losses, and D's mean outputs on real and fake images, per step."""
    table = _read_metrics(metrics_path)
    if table is None:
        return
    plt = _pyplot()
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
    try:
        atomic_write(png_path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def plot_quality(metrics_path, png_path):
    """quality.png: the quality score of G and, when there is one, of the averaged
    generator, per epoch: minigan.score's Fréchet distance (lower is better) and, where
    the metrics hold it, the legible share (higher is better) beside it."""
    table = _read_metrics(metrics_path)
    names = () if table is None else table.dtype.names
    keys = [k for k in ("fd", "fd_ema", "legible", "legible_ema") if k in names]
    scored = {k: np.isfinite(table[k]) for k in keys}
    scored = {k: rows for k, rows in scored.items() if rows.any()}
    if not any(k.startswith("fd") for k in scored):
        return
    panels = [("fd", "Fréchet distance (lower is better)")]
    if any(k.startswith("legible") for k in scored):
        panels.append(("legible", "legible share (higher is better)"))
    labels = {"": "G", "_ema": "averaged G"}
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 1, 4), squeeze=False)
    for ax, (metric, ylabel) in zip(axes[0], panels):
        drawn = [(metric + s, label) for s, label in labels.items() if metric + s in scored]
        for key, label in drawn:
            rows = scored[key]
            values = table[key][rows] * (100 if metric == "legible" else 1)
            ax.plot(table["epoch"][rows], values, "o-", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel.replace("share", "share (%)") if metric == "legible" else ylabel)
        if metric == "fd":
            values = np.concatenate([table[k][scored[k]] for k, _ in drawn])
            if values.min() > 0 and values.max() / values.min() > 10:  # early runs fall steeply
                ax.set_yscale("log")
        else:
            ax.set_ylim(0, 100)
        ax.legend()
    fig.suptitle("quality score: minigan.score, in the judge's features", fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(png_path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
