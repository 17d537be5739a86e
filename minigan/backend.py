"""Which backend runs the math: the table of backends and the switch between them.

A backend object (``backend_numpy.Backend`` and its subclasses) offers

- ``xp``: the array module (``numpy``, or ``cupy`` on the GPU backend),
- random numbers (``seed``, ``randn``, ``rand``, ``get_rng_state``, ``set_rng_state``),
  always drawn on the host by one NumPy generator and then moved to the backend, so
  one seed gives the same weights and noise on every backend,
- transfers (``from_numpy``, ``to_numpy``) and ``check_array``,
- the hot kernels that a faster backend overrides (im2col, col2im, batch norm,
  LeakyReLU, sigmoid, the BCE loss, Adam) and ``for_each_batch``, how a
  convolution's work is split over the batch.

=======  ================  ============  ==================================
name     module            class         what it is
=======  ================  ============  ==================================
numpy    backend_numpy.py  NumpyBackend  the reference
numba    backend_numba.py  NumbaBackend  NumpyBackend with compiled kernels
cupy     backend_cupy.py   CupyBackend   Backend on an NVIDIA GPU
=======  ================  ============  ==================================

The registry ``BACKENDS`` names them all; the modules behind it are imported on first
use (importing numba or cupy takes a while). Pick one with ``use("numpy")`` or the
environment variable ``MINIGAN_BACKEND``. Layers and functions never ask which
backend is running; they call ``current()`` and use what it offers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from typing import NamedTuple

from .backend_numpy import (  # noqa: F401  (the classes, where they have always been found)
    Backend,
    CpuThreads,
    NumpyBackend,
    conv_arguments,
    kernel_covers_image,
    wrong_array_message,
)


class BackendUnavailable(ValueError):
    """A backend that cannot run here (its package is missing, or it has no GPU)."""


class Entry(NamedTuple):
    """One row of the backend table."""

    module: str  # imported the first time the backend is asked for
    cls: str
    package: str  # what it needs installed, checked without importing it
    install: str  # how to install that package
    gpu: bool = False  # needs a GPU (its tests are marked ``gpu``)


# The one table of backends. ``use``, ``available``, ``names`` and ``auto`` all read it.
BACKENDS = {
    "numpy": Entry("minigan.backend_numpy", "NumpyBackend", "numpy", "pip install numpy"),
    "numba": Entry("minigan.backend_numba", "NumbaBackend", "numba", "pip install numba"),
    "cupy": Entry(
        "minigan.backend_cupy", "CupyBackend", "cupy",
        "pip install 'minigan[gpu]' (CuPy for CUDA 12; on CUDA 13 drivers: "
        "pip install cupy-cuda13x)", gpu=True,
    ),
}  # fmt: skip
_classes: dict[str, type] = {}
_instances: dict[str, Backend] = {}
_current: Backend | None = None


def names() -> list[str]:
    """Every backend minigan knows, installed or not (the choices of ``--backend``)."""
    return list(BACKENDS)


def installed(name: str) -> bool:
    """Whether the package backend ``name`` needs is installed (nothing is imported)."""
    return name in _classes or importlib.util.find_spec(BACKENDS[name].package) is not None


def backend_class(name: str) -> type:
    """The class of backend ``name``, importing its module on first use."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(available())}")
    if name not in _classes:
        if not installed(name):
            entry = BACKENDS[name]
            raise BackendUnavailable(
                f"backend {name!r} needs {entry.package}, which is not installed: {entry.install}"
            )
        entry = BACKENDS[name]
        _classes[name] = getattr(importlib.import_module(entry.module), entry.cls)
    return _classes[name]


def unusable_reason(name: str) -> str | None:
    """None if backend ``name`` can run here, else one line saying why not."""
    try:
        return backend_class(name).unusable_reason()
    except BackendUnavailable as e:
        return str(e)


def available() -> list[str]:
    """The backends that can run here: installed, and (for a GPU one) with a GPU."""
    return [name for name in BACKENDS if unusable_reason(name) is None]


def use(name: str, seed: int | None = None) -> Backend:
    """Switch every layer and function to the backend called ``name``; returns it.

    Each backend is created once and kept, so switching back and forth keeps its
    random stream; ``seed`` restarts that stream. Parameters are created on the
    backend that is current when a layer is built: choose the backend first.
    A backend that cannot run here raises ``BackendUnavailable`` (one line: why, and
    how to install what is missing).
    """
    global _current
    if name not in _instances:
        reason = unusable_reason(name) if name in BACKENDS else None
        if reason:
            raise BackendUnavailable(reason)
        _instances[name] = backend_class(name)(seed)
    elif seed is not None:
        _instances[name].seed(seed)
    _current = _instances[name]
    return _current


def auto() -> str:
    """The fastest backend that works here: the GPU one if a GPU works, else Numba
    (compiled kernels; measured faster than plain NumPy on every DCGAN config in
    benchmarks/RESULTS.md), else NumPy."""
    for name in ("cupy", "numba", "numpy"):
        if unusable_reason(name) is None:
            return name
    return "numpy"


def created() -> dict[str, Backend]:
    """The backends created so far in this process, by name."""
    return dict(_instances)


def current() -> Backend:
    """The backend in use (from ``MINIGAN_BACKEND`` on first call, else NumPy)."""
    if _current is None:
        use(os.environ.get("MINIGAN_BACKEND", "numpy"))
    return _current


@contextlib.contextmanager
def using(name: str, seed: int | None = None):
    """``with backend.using("numpy"):`` run a block on a backend, then switch back."""
    global _current
    previous = _current
    try:
        yield use(name, seed)
    finally:
        _current = previous


def register(name: str, cls: type, package: str = "numpy", gpu: bool = False) -> None:
    """Add a backend class to the table (how a backend outside minigan plugs in)."""
    BACKENDS[name] = Entry(cls.__module__, cls.__name__, package, f"pip install {package}", gpu)
    _classes[name] = cls
    _instances.pop(name, None)
