"""Use a trained generator: ``python -m minigan.sample --checkpoint PATH --n N --out FILE``.

In Python: ``load_generator(path)`` reads a generator from any file minigan writes
(a training checkpoint, a weights file, a generator state dict), ``decode(G, z)``
turns latent codes into images, ``generate(G, n, seed)`` draws the codes too, and
``save_generator(G, path)`` writes a generator's weights alone.

``.png`` writes a grid; ``.npy`` an (N, C, H, W) float32 array in [-1, 1], streamed to
disk a batch at a time (``save_npy``), so its size is bounded by the disk, not memory.
Sizes are checked before anything is drawn: a request that cannot fit in memory (a
grid) or on the disk (an array) is refused in one line that gives the size it needs.
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
import errno
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import __version__, backend, checkpoint, export, images, resources
from .models.dcgan import Generator

STATE_DICT_SUFFIXES = (".safetensors", *export.TORCH_SUFFIXES)


def load_generator(path, raw=False) -> Generator:
    """The generator a file holds, in eval mode, on the current backend.

    - a training checkpoint (``.npz``; a run folder stands for its last.npz): its
      averaged generator ``G_ema`` when it holds one, else ``G``; ``raw=True``
      always gives ``G``;
    - a weights file (``.npz``: ``save_generator``'s, or ``python -m minigan.export
      --from-pytorch``'s): its ``G``;
    - a generator state dict: ``.safetensors`` (as ``python -m minigan.export``
      writes it), or ``.pt`` / ``.pth`` with PyTorch installed.

    The architecture is read from the weight shapes. Anything else is a one-line
    ``checkpoint.CheckpointError`` naming the file.
    """
    if Path(path).suffix.lower() in STATE_DICT_SUFFIXES:
        return export.generator_from_state_dict(export.read_state_dict(path), path)
    arrays, meta = checkpoint.load(path)
    return export.models_from_checkpoint(arrays, meta, path, raw)[0]


def save_generator(G, path, meta=None) -> Path:
    """Write G's weights alone (no optimiser, no discriminator) to ``path``, an ``.npz``
    weights file that ``load_generator`` reads: ``G.*`` arrays plus JSON metadata
    (``checkpoint.save``: written atomically, never pickled). ``meta``: more JSON
    fields to record (e.g. {"dataset": "mnist", "epochs": 5}); the model's own
    settings (nz, ngf, channels, image_size, batch_norm, extra_layer) are recorded over them.
    Returns the path."""
    if not isinstance(G, Generator):
        raise TypeError(f"save_generator: G must be a minigan Generator, got {type(G).__name__}")
    if Path(path).suffix.lower() != ".npz":
        raise ValueError(f"save_generator: {Path(path).name}: a weights file's name ends in .npz")
    arrays = {f"G.{key}": value for key, value in G.state_dict().items()}
    settings = dict(nz=G.nz, ngf=G.ngf, channels=G.channels, image_size=G.image_size)
    settings.update(batch_norm=G.batch_norm, extra_layer=G.extra_layer)
    recorded = {**(meta or {}), "format": export.WEIGHTS_FORMAT, "minigan_version": __version__}
    return checkpoint.save(path, arrays, {**recorded, **settings})


def _latents(G, n, rng):
    return rng.standard_normal((n, G.nz)).astype(np.float32)


def decode(G, z, batch_size=500) -> np.ndarray:
    """G(z): the images of latent codes z, in eval mode, ``batch_size`` codes at a time.

    G: a generator of (n, nz, 1, 1) codes, with ``G.nz``; z: (N, nz) or (N, nz, 1, 1),
    a host NumPy array or one on the current backend. Returns (N, C, H, W) float32 on
    the host, in [-1, 1]. Eval mode makes each image depend on its own code only
    (batch norm uses its running statistics); every sub-layer's train/eval flag is
    restored afterwards. Batches bound the memory (10,000 codes at once would hold
    gigabytes of activations).
    """
    bk = backend.current()
    z = z if bk.is_array(z) else np.asarray(z)
    nz = G.nz
    if z.ndim not in (2, 4) or z.shape[1] != nz or z.shape[2:] not in ((), (1, 1)):
        raise ValueError(
            f"decode: z has shape {tuple(z.shape)}; this generator takes codes of shape "
            f"(N, {nz}) or (N, {nz}, 1, 1)"
        )
    if batch_size < 1:
        raise ValueError(f"decode: batch_size must be at least 1, got {batch_size!r}")
    dtype = next(G.parameters()).dtype
    z = z.reshape(len(z), nz, 1, 1)
    modes = [(layer, layer.training) for layer in G.modules()]
    G.eval()
    try:
        if not len(z):  # no codes: no images, of the shape one code would give
            return bk.to_numpy(G(bk.xp.zeros((1, nz, 1, 1), dtype=dtype)))[:0].astype(np.float32)
        first = bk.to_numpy(G(bk.from_numpy(z[:batch_size]).astype(dtype)))
        shape = (len(z), *first.shape[1:])
        resources.check_memory(
            math.prod(shape) * 4, f"{len(z)} images of {'x'.join(map(str, shape[1:]))}"
        )
        out = np.empty(shape, np.float32)  # filled batch by batch: never two copies
        out[: len(first)] = first
        for i in range(batch_size, len(z), batch_size):
            out[i : i + batch_size] = bk.to_numpy(
                G(bk.from_numpy(z[i : i + batch_size]).astype(dtype))
            )
    finally:
        for layer, training in modes:
            layer.training = training
    return out


def generate(G, n, seed=None) -> np.ndarray:
    """n images from G, from codes z ~ N(0, 1) drawn with ``seed``: (n, C, H, W)
    float32 in [-1, 1] (``decode``: G in eval mode). A request too large for the
    memory available is a one-line ``resources.NotEnoughMemory`` before anything is drawn."""
    resources.check_memory(n * 4 * (G.nz + _pixels(G)), f"{n} samples of {_shape_text(G)}")
    return decode(G, _latents(G, n, np.random.default_rng(seed)))


def generate_batches(G, n, seed=None, batch_size=500):
    """``generate(G, n, seed)`` a batch at a time: (start, images) pairs, the same
    images (the codes are drawn from one stream in the same order)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch_size):
        yield start, decode(G, _latents(G, min(batch_size, n - start), rng))


def _pixels(G) -> int:
    return G.channels * G.image_size**2


def _shape_text(G) -> str:
    return f"{G.channels}x{G.image_size}x{G.image_size}"


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
    count = 2 * walks * steps
    resources.check_memory(
        count * 4 * (3 * G.nz + _pixels(G)), f"{count} walk images of {_shape_text(G)}"
    )
    z0, z1 = _walk_ends(G, walks, seed)
    out = decode(G, _walk_codes(z0, z1, steps))
    return out.reshape(2 * walks, steps, *out.shape[1:])


def interpolate_batches(G, walks, steps, seed=None, batch_size=500):
    """``interpolate(G, walks, steps, seed)`` a few walks at a time: (start row, rows)
    pairs, the same images."""
    resources.check_memory(walks * 8 * G.nz, f"{walks} latent walks")
    z0, z1 = _walk_ends(G, walks, seed)
    per = max(1, batch_size // (2 * steps))  # walks per batch
    for i in range(0, walks, per):
        rows = decode(G, _walk_codes(z0[i : i + per], z1[i : i + per], steps), batch_size)
        yield 2 * i, rows.reshape(-1, steps, *rows.shape[1:])


def _walk_ends(G, walks, seed):
    rng = np.random.default_rng(seed)
    return _latents(G, walks, rng), _latents(G, walks, rng)


def _walk_codes(z0, z1, steps):
    """(2 * walks * steps, nz): per walk, the straight line's codes, then the circle's."""
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    linear = (1 - t) * z0[:, None] + t * z1[:, None]
    spherical = slerp(z0[:, None], z1[:, None], t)
    return np.stack([linear, spherical], axis=1).reshape(-1, z0.shape[-1])  # rows alternate


def save_npy(path, shape, batches) -> Path:
    """Write a float32 array of ``shape`` to the ``.npy`` file ``path`` from ``batches``,
    (start, block) pairs along its first axis, without ever holding it in memory.

    The free disk space is checked first, then the file's space is reserved
    (``posix_fallocate``, so writing through the memory map can never meet a full disk)
    in a temporary file beside ``path`` (``np.lib.format.open_memmap``), which takes the
    name ``path`` only when the last batch is on disk. Any failure removes it."""
    path = Path(path)
    nbytes = math.prod(shape) * 4
    resources.check_disk(path, nbytes + 4096, f"an array {shape} of float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError as e:  # name the file asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        with open(tmp, "r+b") as f:
            _reserve(f.fileno(), os.fstat(f.fileno()).st_size)
        for start, block in batches:
            array[start : start + len(block)] = block
        array.flush()
        del array
        with open(tmp, "r+b") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
    return path


def _reserve(fd, size):
    """Allocate the file's blocks now (a full disk fails here, as an OSError, and not as
    a SIGBUS later, inside a write through the memory map)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
                raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minigan.sample", description="Draw images from a trained DCGAN generator."
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training checkpoint (.npz) or its run folder, a weights file (.npz, from "
        "sample.save_generator or python -m minigan.export --from-pytorch), or a generator "
        "state dict (.safetensors, or .pt/.pth with PyTorch installed)",
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
        count = n * 2 * args.interpolate if args.interpolate else n
        if out.suffix.lower() == ".npy":
            write(G, out, n, args.interpolate, args.seed)
        else:
            scale = 2 if G.image_size <= 32 else 1
            grid = count * G.channels * (G.image_size + 2) ** 2 * scale**2
            what = f"a grid of {count} images of {_shape_text(G)} (an .npy is streamed instead)"
            resources.check_memory(count * 4 * _pixels(G) + grid, what)
            if args.interpolate:
                walks = interpolate(G, n, args.interpolate, args.seed)
                flat, nrow = walks.reshape(-1, *walks.shape[2:]), args.interpolate
            else:
                flat, nrow = generate(G, n, args.seed), None
            images.save_png(out, images.make_grid(flat, nrow=nrow), scale=scale)
    except checkpoint.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:  # the machine's: a full disk, no permission, no memory
        print(f"error: {resources.describe(e, out)}; {out} was not written", file=sys.stderr)
        return 2
    print(f"wrote {out} ({count} image{'s' if count != 1 else ''})")
    return 0


def write(G, out, n, interpolate_steps=None, seed=None) -> Path:
    """``python -m minigan.sample``'s .npy output: n samples (N, C, H, W), or n walks of
    ``interpolate_steps`` (2n, K, C, H, W), streamed to ``out`` by ``save_npy``."""
    image = (G.channels, G.image_size, G.image_size)
    if interpolate_steps:
        shape = (2 * n, interpolate_steps, *image)
        return save_npy(out, shape, interpolate_batches(G, n, interpolate_steps, seed))
    return save_npy(out, (n, *image), generate_batches(G, n, seed))


if __name__ == "__main__":
    raise SystemExit(main())
