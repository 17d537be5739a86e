"""minigan: a DCGAN built by hand on NumPy, every forward and backward pass written out.

The layers, from the bottom up (each imports only the ones above it):

==================  =================================================================
module              what it holds
==================  =================================================================
minigan.backend     which array library runs the math (backend_numpy, _numba, _cupy)
minigan.functional  the math: forward/backward function pairs
minigan.naive       the convolutions as plain loops, the reference
minigan.module      Parameter, Module, Sequential: what every layer shares
minigan.nn          the layers (PyTorch's names) and BCEWithLogitsLoss
minigan.init        initialisation: ``normal_``, ``uniform_``, PyTorch's default
minigan.optim       Adam, SGD
minigan.models      the DCGAN's Generator and Discriminator, dcgan_init
minigan.gan         the GAN algorithm: GANTrainer (one step), the averaged generator
minigan.train       the training command line (run.py: a run's folder and loop)
minigan.sample,     using a trained generator: samples, a quality score, weights to
score, export       and from PyTorch
==================  =================================================================

Importing minigan changes nothing in the process (``minigan.cpu`` explains the one
setting its command-line entry points make before NumPy loads).
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {  # everything `minigan.<name>` may mean, as before the imports turned lazy
    "backend", "backend_numpy", "checkpoint", "cpu", "data", "export", "functional", "gan",
    "gradcheck", "images", "init", "models", "module", "naive", "nn", "optim", "run",
    "sample", "score", "torch_twin", "train",
}  # fmt: skip


def __getattr__(name):
    """``minigan.nn`` and friends, imported on first use: nothing loads NumPy at
    ``import minigan``, so ``python -m minigan.train`` can set up BLAS first."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minigan' has no attribute {name!r}")


def manual_seed(seed: int) -> None:
    """Seed the current backend's random stream (initialisation, dropout, noise)."""
    from . import backend

    backend.current().seed(seed)


__all__ = ["backend", "functional", "init", "nn", "optim", "manual_seed"]
