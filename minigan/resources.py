"""What this machine can hold, checked before a large allocation or write, and the one
line that an operating-system fault gets.

A request whose size is knowable in advance (a batch of samples, a model's weights and
activations, a download, a decompressed archive member) is compared here with the memory
or disk space there is, and refused in one line that gives the size it would need:
``NotEnoughMemory`` (a ``MemoryError``) or ``NotEnoughDisk`` (an ``OSError`` with errno
``ENOSPC`` and the path). The commands print both, and every other ``OSError``, through
``describe``: ``path: reason``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class NotEnoughMemory(MemoryError):
    """A request refused before allocation: the message gives the size it needs."""


class NotEnoughDisk(OSError):
    """A write refused before it starts: ``filename`` is the path, ``strerror`` the sizes."""

    def __init__(self, path, strerror):
        super().__init__(errno.ENOSPC, strerror, str(path))


def size(nbytes) -> str:
    """Bytes for a person: '512 B', '3.2 MB', '1.4 GB', '31.4 TB' (powers of 1000)."""
    nbytes = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: the kernel's MemAvailable,
    lowered to what a cgroup (a container's memory limit) leaves; None where unknown."""
    known = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    known.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            known.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    if not known and hasattr(os, "sysconf"):
        try:
            known.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            pass
    return min(known) if known else None


def device_memory(bk) -> int | None:
    """Bytes free on the GPU of backend ``bk`` (CuPy's: the device's free memory and the
    blocks CuPy's pool holds for reuse), or None for a backend on the CPU."""
    cuda = getattr(bk.xp, "cuda", None)
    if cuda is None:
        return None
    try:
        pooled = bk.xp.get_default_memory_pool().free_bytes()
        return int(cuda.runtime.memGetInfo()[0]) + int(pooled)
    except Exception:  # a driver that cannot say: the allocation itself will tell
        return None


def check_memory(nbytes, what, bk=None) -> None:
    """Refuse ``what`` (e.g. '10000000 samples of 1x28x28') in one line if it needs more
    than the memory available now (on ``bk``'s GPU, for a GPU backend); nothing is
    allocated."""
    free, where = available_memory(), "this machine has"
    if bk is not None and (on_gpu := device_memory(bk)) is not None:
        free, where = on_gpu, "the GPU has"
    if free is not None and nbytes > free:
        raise NotEnoughMemory(
            f"{what} would need {size(nbytes)} of memory; {where} {size(free)} available"
        )


def free_disk(path) -> int | None:
    """Free bytes (for this user) on the filesystem that holds ``path`` or would hold it
    (its nearest existing folder); None where unknown."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def check_disk(path, nbytes, what) -> None:
    """Refuse to write ``nbytes`` to ``path`` if its filesystem has less free space."""
    free = free_disk(path)
    if free is not None and nbytes > free:
        raise NotEnoughDisk(
            path, f"{what} would need {size(nbytes)} of disk space; {size(free)} is free there"
        )


def describe(error, path=None) -> str:
    """One line for an OSError or MemoryError: 'path: reason' (the error's own path, else
    ``path``), e.g. 'runs/x/checkpoints/last.npz: No space left on device'."""
    if isinstance(error, NotEnoughMemory):  # refused before allocation: it says why
        return str(error)
    if isinstance(error, MemoryError):
        reason = " ".join(str(error).split()) or "the machine ran out of memory"
        return f"out of memory: {reason}"
    where = getattr(error, "filename", None) or path
    reason = getattr(error, "strerror", None) or " ".join(str(error).split())
    return f"{where}: {reason}" if where else str(reason)
