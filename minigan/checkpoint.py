"""Checkpoints: named arrays plus JSON metadata in one ``.npz`` file.

Written atomically (a temporary file in the same folder, flushed to disk, then
renamed over the old one), so an interrupted write never destroys the previous
checkpoint. Read with ``allow_pickle=False``: a checkpoint holds numbers and text,
never code, and loading one cannot run anything.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

META_KEY = "__meta__"


class CheckpointError(Exception):
    """A file that is not a readable minigan checkpoint; the message names it."""


def save(path, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` (name -> NumPy array) and ``meta`` (JSON-serialisable) to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[META_KEY] = np.array(json.dumps(meta))  # a unicode string, not an object
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make it unlike every other file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path) -> tuple[dict, dict]:
    """(arrays, meta) from a checkpoint written by ``save``. A run folder stands for
    its ``checkpoints/last.npz``."""
    path = Path(path)
    if path.is_dir() and (path / "checkpoints" / "last.npz").is_file():
        path = path / "checkpoints" / "last.npz"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a minigan checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except KeyError:
        raise CheckpointError(f"{path}: not a minigan checkpoint (it has no metadata)") from None
    except ValueError as e:
        if "pickle" in str(e):
            reason = "it holds Python objects, and minigan never unpickles anything"
        else:
            reason = str(e)
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    return arrays, meta
