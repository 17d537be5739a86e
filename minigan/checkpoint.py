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
    """(arrays, meta) from a checkpoint written by ``save``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except KeyError:
        raise CheckpointError(f"{path}: not a minigan checkpoint (it has no metadata)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    return arrays, meta
