"""Use a trained generator: ``python -m minigan.sample --checkpoint PATH --n N --out FILE``.

``.png`` writes a grid; ``.npy`` an (N, C, H, W) float32 array in [-1, 1].
``--interpolate K`` walks between pairs of random latent points in K steps, as in
the paper's latent-space walks: each walk is drawn twice, once along the straight
line and once along the great circle (spherical interpolation, which keeps the
walk at the typical norm of Gaussian noise instead of cutting through the middle).
"""

from __future__ import annotations

if __name__ == "__main__":  # minigan owns this process: choose BLAS kernels before NumPy loads
    from minigan import cpu

    cpu.choose_openblas_kernels()

import argparse
import sys
from pathlib import Path

import numpy as np

from . import backend, checkpoint, export, images
from .models.dcgan import Generator


def load_generator(path, raw=False) -> Generator:
    """The generator saved in a minigan checkpoint, in eval mode, on the current backend.

    A training checkpoint (a run folder stands for its last.npz) gives its averaged
    generator ``G_ema`` when it holds one, else ``G``; ``raw=True`` always gives ``G``.
    A weights file from ``python -m minigan.export --from-pytorch`` gives its ``G``.
    """
    arrays, meta = checkpoint.load(path)
    return export.models_from_checkpoint(arrays, meta, path, raw)[0]


def _latents(G, n, rng):
    return rng.standard_normal((n, G.nz)).astype(np.float32)


def _generate_from(G, z, batch_size=500) -> np.ndarray:
    """G(z) for rows of z, ``batch_size`` at a time (10,000 at once would hold
    gigabytes of activations); G in eval mode gives each image on its own."""
    bk = backend.current()
    z = z.reshape(len(z), G.nz, 1, 1).astype(np.float32)
    pieces = [bk.to_numpy(G(bk.from_numpy(z[i : i + batch_size])))
              for i in range(0, len(z), batch_size)]  # fmt: skip
    if not pieces:
        return np.zeros((0, G.channels, G.image_size, G.image_size), np.float32)
    return np.concatenate(pieces).astype(np.float32)


def generate(G, n, seed=None) -> np.ndarray:
    """n images from G: (n, C, H, W) float32 in [-1, 1]."""
    return _generate_from(G, _latents(G, n, np.random.default_rng(seed)))


def slerp(z0, z1, t):
    """Spherical interpolation: along the great circle from z0 to z1 (rows of vectors)."""
    unit0 = z0 / np.linalg.norm(z0, axis=-1, keepdims=True)
    unit1 = z1 / np.linalg.norm(z1, axis=-1, keepdims=True)
    omega = np.arccos(np.clip((unit0 * unit1).sum(-1, keepdims=True), -1, 1))
    so = np.sin(omega)
    parallel = so < 1e-6  # (anti)parallel pairs: no circle is defined; they take the line
    so = np.where(parallel, 1.0, so)
    spherical = np.sin((1 - t) * omega) / so * z0 + np.sin(t * omega) / so * z1
    return np.where(parallel, (1 - t) * z0 + t * z1, spherical)


def interpolate(G, walks, steps, seed=None) -> np.ndarray:
    """(2 * walks, steps, C, H, W): for each pair of random latent points, a row along
    the straight line, then a row along the great circle."""
    rng = np.random.default_rng(seed)
    z0, z1 = _latents(G, walks, rng), _latents(G, walks, rng)
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    linear = (1 - t) * z0[:, None] + t * z1[:, None]
    spherical = slerp(z0[:, None], z1[:, None], t)
    z = np.stack([linear, spherical], axis=1).reshape(-1, G.nz)  # rows alternate
    out = _generate_from(G, z)
    return out.reshape(2 * walks, steps, *out.shape[1:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minigan.sample", description="Draw images from a trained DCGAN generator."
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training checkpoint (.npz) or its run folder, or a weights file from "
        "python -m minigan.export --from-pytorch",
    )
    parser.add_argument(
        "--out", required=True, help="output file: .png (a grid) or .npy (an array)"
    )
    parser.add_argument(
        "--n", type=int, help="images to draw (default 64), or walks with --interpolate (default 4)"
    )
    parser.add_argument("--seed", type=int, help="seed for the noise (default: fresh randomness)")
    parser.add_argument(
        "--interpolate",
        type=int,
        metavar="K",
        help="walk between --n pairs of latent points in K steps, each walk twice (a row along "
        "the straight line, then one along the great circle); .npy: (2n, K, C, H, W)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="draw from the trained generator G even when the checkpoint holds an averaged "
        "one (G_ema, used by default)",
    )
    parser.add_argument(
        "--backend",
        choices=["auto", *backend.names()],
        default="auto",
        help="array backend (default: auto: cupy if a CUDA GPU works, else numba, else numpy)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        print(f"error: --out must end in .png or .npy, got {out.name}", file=sys.stderr)
        return 2
    n = args.n if args.n is not None else (4 if args.interpolate else 64)
    if n < 1 or (args.interpolate is not None and args.interpolate < 2):
        print("error: --n must be at least 1 and --interpolate at least 2", file=sys.stderr)
        return 2
    try:
        backend.use(backend.auto() if args.backend == "auto" else args.backend)
    except ValueError as e:  # e.g. --backend cupy without a GPU
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        G = load_generator(args.checkpoint, args.raw)
    except checkpoint.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.interpolate:
        pictures = interpolate(G, n, args.interpolate, args.seed)
        flat, nrow = pictures.reshape(-1, *pictures.shape[2:]), args.interpolate
    else:
        pictures = flat = generate(G, n, args.seed)
        nrow = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".npy":
            np.save(out, pictures)
        else:
            grid = images.make_grid(flat, nrow=nrow)
            images.save_png(out, grid, scale=2 if G.image_size <= 32 else 1)
    except OSError as e:
        print(f"error: {e.filename or out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(flat)} image{'s' if len(flat) != 1 else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
