"""What this CPU needs before NumPy loads: the choice of OpenBLAS's matrix kernels.

NumPy's wheels ship OpenBLAS with kernels for many CPUs and pick one when NumPy is
first imported (``OPENBLAS_CORETYPE`` overrides the pick; it is read then, never
again). On AMD Zen 4 (family 0x19 with AVX-512) OpenBLAS picks its AVX-512 "SkylakeX"
kernels, but Zen 4 executes AVX-512 as two 256-bit halves, and its AVX2 "Haswell"
kernels measured faster on minigan's matrix products (benchmarks/RESULTS.md). So on
Zen 4 minigan asks for them where it owns the process: the ``python -m minigan.train``
and ``python -m minigan.sample`` entry points and the benchmark call
``choose_openblas_kernels()`` before NumPy loads, unless the user has set
``OPENBLAS_CORETYPE`` themselves. ``import minigan`` changes nothing; in your own
script, call it first (or set ``OPENBLAS_CORETYPE=Haswell`` in the shell).

No other CPU is changed: without a measurement there is no reason to second-guess
OpenBLAS. This module imports nothing that loads NumPy.
"""

from __future__ import annotations

import importlib
import os
import sys


def preferred_openblas_core(cpuinfo: str) -> str | None:
    """The OpenBLAS core type to ask for on the CPU that ``cpuinfo`` (the text of
    /proc/cpuinfo) describes, or None to keep OpenBLAS's own pick."""
    fields = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:  # the first processor's entry
            fields[key.strip()] = value.strip()
    zen4 = (
        fields.get("vendor_id") == "AuthenticAMD"
        and fields.get("cpu family") == "25"
        and "avx512f" in fields.get("flags", "").split()
    )
    return "Haswell" if zen4 else None


def preferred_openblas_core_here() -> str | None:
    """``preferred_openblas_core`` for the CPU this process runs on (None off Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return preferred_openblas_core(f.read())
    except OSError:
        return None


def choose_openblas_kernels() -> str | None:
    """Set ``OPENBLAS_CORETYPE`` for this process when this CPU has a measured better
    choice, NumPy is not loaded yet, and the user has not chosen. Returns what it set."""
    if "OPENBLAS_CORETYPE" in os.environ or "numpy" in sys.modules:
        return None
    core = preferred_openblas_core_here()
    if core is not None:
        os.environ["OPENBLAS_CORETYPE"] = core
    return core


# The console scripts (pyproject's [project.scripts]: minigan-train, ...) start here
# rather than in their modules, so that they, like ``python -m minigan.train``, choose
# the kernels before NumPy loads.


def _run(module) -> int:
    choose_openblas_kernels()
    return importlib.import_module(f"minigan.{module}").main()


def train() -> int:
    return _run("train")


def sample() -> int:
    return _run("sample")


def score() -> int:
    return _run("score")


def export() -> int:
    return _run("export")
