"""Small dataset files that the tests write themselves, in the real formats."""

import gzip
from pathlib import Path

import numpy as np


def write_idx(path, images) -> Path:
    """An IDX image file (magic 0x00000803) of uint8 (N, H, W); gzipped if path ends in .gz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    raw = b"".join(v.to_bytes(4, "big") for v in (0x00000803, n, h, w)) + images.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_cifar_batch(path, images, labels) -> Path:
    """A CIFAR-10 binary batch: per record 1 label byte, then the R, G and B planes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = np.concatenate([labels[:, None], images.reshape(len(images), -1)], axis=1)
    path.write_bytes(records.astype(np.uint8).tobytes())
    return path


TINY = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "16"]  # a DCGAN of seconds


def tiny_run_args(folder) -> list[str]:
    """Training flags for a tiny DCGAN on 40 random digits written as IDX into
    ``folder``: 2 steps per epoch at batch 16, so runs cross epochs."""
    rng = np.random.default_rng(0)
    write_idx(
        Path(folder) / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28), np.uint8)
    )
    return ["--dataset", "mnist", "--data-dir", str(folder), *TINY]
