"""Checkpoints: named arrays plus JSON metadata in one ``.npz`` file.

Written atomically (a temporary file in the same folder, flushed to disk, then
renamed over the old one), so an interrupted write never destroys the previous
checkpoint. Read with ``allow_pickle=False``: a checkpoint holds numbers and text,
never code, and loading one cannot run anything.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import resources

META_KEY = "__meta__"
PICKLE = "it holds Python objects, and minigan never unpickles anything"
# What the training and sampling commands read from the metadata of the checkpoints
# they write (format "minigan-dcgan") before they look at its arrays: each field's
# JSON type (ints non-negative).
DCGAN_FIELDS = {"config": dict, "step": int, "channels": int, "image_size": int, "rng_state": dict}


class CheckpointError(Exception):
    """A file that is not a readable minigan checkpoint; the message names it."""


def save(path, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` (name -> NumPy array) and ``meta`` (JSON-serialisable) to path."""
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[META_KEY] = np.array(json.dumps(meta))  # a unicode string, not an object
    return atomic_write(path, lambda f: np.savez(f, **payload))


def atomic_write(path, write) -> Path:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, flush it to disk, then
    rename it over ``path``: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError as e:  # name the file the caller asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make it unlike every other file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename in (None, tmp):  # e.g. a full disk
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
    return path


def append_whole(path, data: bytes) -> None:
    """Append ``data`` to the file at ``path`` (created if missing) whole or not at all:
    when the disk fills part-way through, the part that was written is cut off again, so
    the file never ends in half a line that the next append would continue."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def load(path) -> tuple[dict, dict]:
    """(arrays, meta) from a checkpoint written by ``save``. A run folder stands for
    its ``checkpoints/last.npz``. Anything else is a one-line CheckpointError naming
    the file: nothing is unpickled, and no array is allocated before its .npy header
    is checked against the bytes that back it."""
    path = Path(path)
    try:
        if path.is_dir() and (path / "checkpoints" / "last.npz").is_file():
            path = path / "checkpoints" / "last.npz"
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        with open(path, "rb"):  # a file this user may not read is said so, not "no archive"
            pass
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a minigan checkpoint (not an .npz archive)")
    try:
        check_members(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
        if META_KEY not in arrays:
            raise CheckpointError(f"{path}: not a minigan checkpoint (it has no metadata)")
        meta = json.loads(str(arrays.pop(META_KEY)))
    except (CheckpointError, MemoryError):  # out of memory is the machine's, not the file's
        raise
    except ValueError as e:
        reason = PICKLE if "pickle" in str(e) else str(e)
        raise CheckpointError(f"{path}: not a readable checkpoint ({_one_line(reason)})") from None
    except Exception as e:  # zipfile's and numpy's parsers fail on damage in many ways
        # (BadZipFile, zlib.error, EOFError, a SyntaxError from a mangled .npy header, ...)
        reason = f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{path}: not a readable checkpoint ({_one_line(reason)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{path}: not a minigan checkpoint (its metadata is not a JSON object)"
        )
    if odd := [name for name, a in arrays.items() if not isinstance(a, np.ndarray)]:
        raise CheckpointError(f"{path}: not a minigan checkpoint ({odd[0]} is not a NumPy array)")
    if meta.get("format") == "minigan-dcgan":
        _check_dcgan_fields(path, meta)
    return arrays, meta


def check_members(path) -> None:
    """The archive's decompressed size, then every .npy member's header against the bytes
    the member holds, before NumPy reads it (NumPy allocates the array a header declares,
    then reads into it).

    The zip-bomb defence: the sizes the zip's central directory declares for its members
    are what reading them can decompress at most (``zipfile`` stops there, and then checks
    the CRC). Their sum must fit in the memory available, or the file is refused before
    any member is expanded: a few kilobytes of compressed zeros cannot claim gigabytes."""
    with zipfile.ZipFile(path) as z:
        expanded = sum(info.file_size for info in z.infolist())
        try:
            resources.check_memory(expanded, f"its {len(z.infolist())} members, decompressed,")
        except resources.NotEnoughMemory as e:
            raise CheckpointError(f"{path}: refused before reading: {e}") from None
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue  # NumPy hands such members over as bytes: refused above
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise CheckpointError(
                        f"{path}: not a readable checkpoint ({info.filename} is in .npy format "
                        f"version {version[0]}.{version[1]}, which minigan does not read)"
                    )
                read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
                shape, _, dtype = read_header(f)
                if dtype.hasobject:
                    raise CheckpointError(f"{path}: not a readable checkpoint ({PICKLE})")
                declared, held = math.prod(shape) * dtype.itemsize, info.file_size - f.tell()
                if declared != held:
                    raise CheckpointError(
                        f"{path}: damaged checkpoint ({info.filename} declares {shape} "
                        f"{dtype}, {declared} bytes, and holds {held})"
                    )


def _check_dcgan_fields(path, meta) -> None:
    for key, kind in DCGAN_FIELDS.items():
        value = meta.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            if kind is not int or value >= 0:
                continue
        wanted = "a non-negative integer" if kind is int else "a JSON object"
        raise CheckpointError(
            f"{path}: damaged checkpoint (its metadata's {key} is "
            f"{_one_line(reprlib.repr(value))}, not {wanted})"
        )


def _one_line(text) -> str:
    return " ".join(str(text).split())
