"""minigan: a DCGAN built by hand on NumPy, every forward and backward pass written out.

minigan.backend     the array backend (NumPy reference; faster ones plug in)
minigan.functional  the math: forward/backward function pairs
minigan.naive       the convolutions as plain loops, the reference
minigan.nn          layers (PyTorch's names), Sequential, BCEWithLogitsLoss
minigan.optim       Adam, SGD
minigan.init        initialisation, including the DCGAN one
minigan.gradcheck   finite-difference gradient checks
minigan.cpu         OpenBLAS's kernels for this CPU, chosen before NumPy loads
"""

from . import cpu

cpu.choose_openblas_kernels()  # before anything below loads NumPy

from . import backend, functional, init, nn, optim  # noqa: E402

__version__ = "0.1.0"


def manual_seed(seed: int) -> None:
    """Seed the current backend's random stream (initialisation, dropout, noise)."""
    backend.current().seed(seed)


__all__ = ["backend", "functional", "init", "nn", "optim", "manual_seed"]
