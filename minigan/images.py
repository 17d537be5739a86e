"""Looking at what G makes: image grids as PNG files and an animated GIF of them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path


def save_gif(path, png_paths, seconds_per_frame=0.5) -> Path | None:
    """An animated GIF of the given PNG files, in order (None if there are none)."""
    from PIL import Image

    frames = [Image.open(p).convert("RGB") for p in png_paths]
    if not frames:
        return None
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=int(seconds_per_frame * 1000),
        loop=0,
    )  # fmt: skip
    return Path(path)
