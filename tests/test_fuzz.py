"""Property-based fuzzing of every input minigan reads: IDX files (raw and gzipped),
CIFAR-10 binary batches, image folders, the bundled digits, downloads, checkpoints
(through what ``--resume`` and ``minigan.sample`` do with them) and the training flags.

Every generated input must end in exactly one of two ways: loaded correctly (the
right shape, dtype and values), or refused with minigan's own error (``DataError``,
``CheckpointError``, ``UsageError``) in one line that names the file. Never another
exception, never a hang (each example runs under an alarm) and never an allocation
that the bytes on disk do not back (tracemalloc's peak stays near the input's size).

The default run tries a few dozen examples per format. The long run, thousands:

    MINIGAN_FUZZ=slow python -m pytest -m slow tests/test_fuzz.py

(``MINIGAN_FUZZ_EXAMPLES=N`` sets its examples per format; default 2000.)
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import os
import signal
import socket
import struct
import tempfile
import threading
import tracemalloc
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from files import write_idx
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image  # imported up front: no example pays for (or counts) the import

from minigan import backend, checkpoint, data, sample, train

QUICK = 30  # examples per format in the default run
LONG = int(os.environ.get("MINIGAN_FUZZ_EXAMPLES", "2000"))  # ... and in the long one
SECONDS = 30  # per example: far beyond what any of these inputs needs


def long_run(test=None, **extra):
    """The long version of a fuzz test: marked ``slow``, run only with MINIGAN_FUZZ=slow
    (``extra``: more hypothesis settings)."""
    if test is None:
        return lambda test: long_run(test, **extra)
    skip = pytest.mark.skipif(
        os.environ.get("MINIGAN_FUZZ") != "slow",
        reason="the long fuzz run: MINIGAN_FUZZ=slow python -m pytest -m slow tests/test_fuzz.py",
    )
    return pytest.mark.slow(skip(settings(max_examples=LONG, **extra)(test)))


quick = settings(max_examples=QUICK)


# ---- the contract ---------------------------------------------------------------------------


class Hang(BaseException):
    """An example that ran past its alarm (a BaseException, so no ``except`` hides it)."""


@contextlib.contextmanager
def time_limit(seconds=SECONDS):
    def alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_bound(limit):
    """Fail if Python and NumPy allocate more than ``limit`` bytes at once inside."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if started:
            tracemalloc.stop()
    assert peak <= limit, f"allocated {peak:,} bytes at once for an input that backs {limit:,}"


def outcome(call, errors, names):
    """("loaded", value) or ("refused", message); any other exception fails the test.
    A refusal must be one line naming one of ``names`` (files, as paths or strings)."""
    try:
        with time_limit():
            return "loaded", call()
    except errors as e:
        message = str(e)
        assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
        assert any(str(n) in message for n in names), f"names none of {names}: {message}"
        return "refused", message


def flip_bits(blob: bytes, positions) -> bytes:
    out = bytearray(blob)
    for p in positions if out else ():
        bit = p % (8 * len(out))
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


bit_positions = st.lists(st.integers(0, 2**31), min_size=1, max_size=8)


def cut_points(length):
    """Where to truncate a file: empty, inside the magic, inside the header, inside the
    data, one byte short."""
    short = max(length - 1, 0)
    return st.one_of(
        st.just(0),
        st.integers(0, min(3, short)),
        st.integers(min(4, short), min(15, short)),
        st.integers(min(16, short), short),
        st.just(short),
    )


# ---- IDX image files ------------------------------------------------------------------------

IDX_NAMES = ["train-images-idx3-ubyte", "train-images.idx3-ubyte"]
IDX_MAGIC = 0x00000803


@dataclass
class IdxCase:
    blob: bytes  # the file's bytes, as written
    name: str
    raw_size: int  # bytes before gzip
    image_size: int | None


@st.composite
def idx_cases(draw):
    side = st.integers(1, 6) | st.sampled_from([16, 28])
    n, h, w = draw(st.integers(0, 4)), draw(side), draw(side)
    pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(n * h * w)
    header = [IDX_MAGIC, n, h, w]
    kind = draw(st.sampled_from(["valid", "magic", "dims", "huge", "cut", "extra", "flip"]))
    if kind == "magic":  # labels (0x801), float pixels (0x80D), 2-d, anything
        header[0] = draw(
            st.sampled_from([0x801, 0x80D, 0x802, 0x08030000]) | st.integers(0, 2**32 - 1)
        )
    elif kind == "dims":
        header[1:] = draw(st.lists(st.integers(0, 12), min_size=3, max_size=3))
    elif kind == "huge":  # e.g. 2**31 images of 2**16 x 2**16: refused from the header
        big = st.sampled_from([2**16, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1)
        header[1:] = [draw(big), draw(big), draw(big)]
    raw = b"".join(v.to_bytes(4, "big") for v in header) + pixels
    if kind == "cut":
        raw = raw[: draw(cut_points(len(raw)))]
    elif kind == "extra":
        raw += draw(st.binary(min_size=1, max_size=32))
    elif kind == "flip":
        raw = flip_bits(raw, draw(bit_positions))
    blob, name = raw, draw(st.sampled_from(IDX_NAMES))
    if draw(st.booleans()):
        blob, name = gzip.compress(raw, mtime=0), name + ".gz"
        damage = draw(st.sampled_from(["none", "flip", "cut", "garbage"]))
        if damage == "flip":
            blob = flip_bits(blob, draw(bit_positions))
        elif damage == "cut":
            blob = blob[: draw(cut_points(len(blob)))]
        elif damage == "garbage":
            blob += draw(st.binary(min_size=1, max_size=16))
    if draw(st.integers(0, 3)) == 0:  # the content decides, not the name
        name = name.removesuffix(".gz") if name.endswith(".gz") else name + ".gz"
    return IdxCase(blob, name, len(raw), draw(st.sampled_from([None, 16, 28])))


def idx_bytes(n, h, w, pixels=b"", magic=IDX_MAGIC) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in (magic, n, h, w)) + pixels


def gzip_with_bad_deflate() -> bytes:
    """A gzip file whose deflate stream is broken (zlib.error, not a CRC mismatch)."""
    blob = bytearray(gzip.compress(idx_bytes(2, 3, 3, bytes(range(18))), mtime=0))
    blob[10] ^= 0xFF  # the first byte of the deflate stream
    return bytes(blob)


def idx_oracle(blob):
    """The images an IDX file holds by the format's definition, or None when it is not
    a well-formed IDX image file (gzip when it starts with gzip's magic)."""
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except Exception:
            return None
    if len(blob) < 16 or int.from_bytes(blob[:4], "big") != IDX_MAGIC:
        return None
    n, h, w = (int.from_bytes(blob[i : i + 4], "big") for i in (4, 8, 12))
    if h == 0 or w == 0 or len(blob) != 16 + n * h * w:
        return None
    return np.frombuffer(blob, np.uint8, offset=16).reshape(n, 1, h, w)


def check_idx(case):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / case.name
        path.write_bytes(case.blob)
        expected = idx_oracle(case.blob)
        with memory_bound((4 << 20) + 8 * (len(case.blob) + case.raw_size)):
            result, value = outcome(
                lambda: data.load("mnist", tmp, case.image_size, download=False),
                data.DataError,
                [path],
            )
    if expected is None:
        assert result == "refused", "a malformed IDX file was loaded"
        return
    assert result == "loaded", value
    assert value.dtype == np.uint8
    if case.image_size is None:
        np.testing.assert_array_equal(value, expected)
    else:
        assert value.shape == (len(expected), 1, case.image_size, case.image_size)


@quick
@given(case=idx_cases())
@example(IdxCase(gzip_with_bad_deflate(), "train-images-idx3-ubyte.gz", 34, None))
@example(IdxCase(idx_bytes(2, 0, 28), "train-images-idx3-ubyte", 16, 28))
@example(IdxCase(idx_bytes(1, 1, 28, bytes(28)), "train-images-idx3-ubyte", 44, 28))
def test_idx_files(case):
    check_idx(case)


@long_run
@given(case=idx_cases())
def test_idx_files_long(case):
    check_idx(case)


@pytest.mark.parametrize("zipped", [False, True], ids=["raw", "gz"])
def test_idx_header_declaring_2_to_the_31_images_of_65536_squared_is_refused_unread(
    tmp_path, zipped
):
    header = idx_bytes(2**31, 2**16, 2**16)
    path = tmp_path / "train-images-idx3-ubyte"
    if zipped:
        path.with_suffix(".gz").write_bytes(gzip.compress(header + b"\0" * 64))
    else:
        path.write_bytes(header + b"\0" * 64)
    with memory_bound(4 << 20), pytest.raises(data.DataError, match="header promises 2147483648"):
        data.load("mnist", tmp_path, download=False)


# ---- CIFAR-10 binary batches ----------------------------------------------------------------

RECORD = 1 + 3 * 32 * 32


@dataclass
class CifarCase:
    files: dict  # relative path -> bytes, or None for a folder of that name
    image_size: int | None


@st.composite
def cifar_cases(draw):
    folder = draw(st.sampled_from(["", "cifar-10-batches-bin/"]))
    numbers = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))
    files = {}
    for k in numbers:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        records = draw(st.integers(0, 3))
        labels = rng.integers(0, 10, records, dtype=np.uint8)
        pixels = rng.integers(0, 256, (records, 3072), dtype=np.uint8)
        blob = np.concatenate([labels[:, None], pixels], axis=1).tobytes()
        kind = draw(st.sampled_from(["valid", "valid", "cut", "extra", "label", "flip", "dir"]))
        if kind == "cut":
            blob = blob[: draw(cut_points(len(blob)))]
        elif kind == "extra":
            blob += draw(st.binary(min_size=1, max_size=40)) * draw(st.sampled_from([1, RECORD]))
        elif kind == "label" and records:
            blob = bytearray(blob)
            blob[RECORD * draw(st.integers(0, records - 1))] = draw(st.integers(10, 255))
            blob = bytes(blob)
        elif kind == "flip":
            blob = flip_bits(blob, draw(bit_positions))
        files[f"{folder}data_batch_{k}.bin"] = None if kind == "dir" else blob
    if draw(st.booleans()):  # files the loader must leave alone
        files[f"{folder}test_batch.bin"] = b"\xff" * 5
        files[f"{folder}batches.meta.txt"] = b"airplane\n"
        files[f"{folder}data_batch_1.txt"] = b"not a batch"
    return CifarCase(files, draw(st.sampled_from([None, 32, 16])))


def cifar_oracle(root):
    """(images, None) from the batches as the format defines them, or (None, the first
    bad file's path)."""
    for folder in (root, root / "cifar-10-batches-bin"):
        paths = sorted(folder.glob("data_batch_*.bin"))
        if paths:
            break
    batches = []
    for path in paths:
        blob = b"" if path.is_dir() else path.read_bytes()
        if not blob or len(blob) % RECORD:
            return None, path
        records = np.frombuffer(blob, np.uint8).reshape(-1, RECORD)
        if records[:, 0].max() > 9:  # CIFAR-10 has ten classes
            return None, path
        batches.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return (np.concatenate(batches), None) if batches else (None, root)


def check_cifar(case):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, blob in case.files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            if blob is None:
                (root / name).mkdir()
            else:
                (root / name).write_bytes(blob)
        expected, bad = cifar_oracle(root)
        size = sum(len(b or b"") for b in case.files.values())
        with memory_bound((4 << 20) + 8 * size):
            result, value = outcome(
                lambda: data.load("cifar10", root, case.image_size),
                data.DataError,
                [bad] if bad else [root],
            )
    if expected is None:
        assert result == "refused", "a malformed CIFAR-10 batch was loaded"
        return
    assert result == "loaded", value
    assert value.dtype == np.uint8
    if case.image_size in (None, 32):
        np.testing.assert_array_equal(value, expected)
    else:
        assert value.shape == (len(expected), 3, case.image_size, case.image_size)


@quick
@given(case=cifar_cases())
@example(CifarCase({"data_batch_1.bin": None}, None))
@example(CifarCase({"data_batch_1.bin": bytes([10]) + bytes(3072)}, None))
def test_cifar10_batches(case):
    check_cifar(case)


@long_run
@given(case=cifar_cases())
def test_cifar10_batches_long(case):
    check_cifar(case)


# ---- image folders --------------------------------------------------------------------------

# The formats Pillow writes each mode in; a file's content, not its name, decides how
# Pillow reads it, so a TIFF called .png is as likely as a real PNG.
FORMATS = {
    "1": ["PNG", "TIFF", "BMP", "JPEG"],
    "L": ["PNG", "JPEG", "TIFF", "GIF", "BMP", "WEBP"],
    "P": ["PNG", "GIF", "TIFF", "BMP"],
    "RGB": ["PNG", "JPEG", "TIFF", "BMP", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "PA": ["TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "YCbCr": ["JPEG", "TIFF"],
    "LAB": ["TIFF"],
}
BYTES_PER_PIXEL = {"L": 1, "P": 1, "RGB": 3, "RGBA": 4, "LA": 2, "PA": 2, "I;16": 2, "I": 4,
                   "F": 4, "CMYK": 4, "YCbCr": 3, "LAB": 3}  # fmt: skip
GRAY = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SUFFIXES = [".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".Jpeg"]


def png_declaring(width, height) -> bytes:
    """A PNG whose header declares width x height gray pixels and which holds almost none."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def image_bytes(mode, fmt, size, seed) -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    n = (w + 7) // 8 * h if mode == "1" else BYTES_PER_PIXEL[mode] * w * h
    image = Image.frombytes(mode, size, rng.bytes(n))
    if mode in ("P", "PA"):
        image.putpalette(rng.bytes(768))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@st.composite
def folder_entries(draw):
    kind = draw(
        st.sampled_from(
            ["image"] * 6 + ["empty", "cut", "flip", "text", "bomb", "bomb-warning", "folder"]
        )
    )
    mode = draw(st.sampled_from(sorted(FORMATS)))
    fmt = draw(st.sampled_from(FORMATS[mode]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    blob = image_bytes(mode, fmt, size, draw(st.integers(0, 2**32 - 1)))
    if kind == "empty":
        blob = b""
    elif kind == "cut":
        blob = blob[: draw(cut_points(len(blob)))]
    elif kind == "flip":
        blob = flip_bits(blob, draw(bit_positions))
    elif kind == "text":
        blob = draw(st.sampled_from([b"not an image\n", b"<html></html>", b"\x89PNG\r\n"]))
    elif kind == "bomb":  # past twice Pillow's MAX_IMAGE_PIXELS: Pillow raises
        blob = png_declaring(30000, 30000)
    elif kind == "bomb-warning":  # between once and twice MAX_IMAGE_PIXELS: Pillow warns
        side = math.isqrt(int(Image.MAX_IMAGE_PIXELS * 1.5))
        blob = png_declaring(side, side)
    elif kind == "folder":
        blob = None
    name = f"{draw(st.sampled_from(['', 'sub/', 'a/b/']))}f{{}}{draw(st.sampled_from(SUFFIXES))}"
    return name, blob, kind != "image"


@st.composite
def folder_cases(draw):
    """({relative path: bytes, or None for a folder}, the damaged paths, image size)."""
    entries = draw(st.lists(folder_entries(), min_size=1, max_size=4))
    files = {name.format(i): blob for i, (name, blob, _) in enumerate(entries)}
    damaged = {name.format(i) for i, (name, _, bad) in enumerate(entries) if bad}
    if draw(st.booleans()):  # not images by their names: left alone
        files["notes.txt"] = b"hello"
        files["anim.gif"] = b"GIF89a garbage"
    return files, damaged, draw(st.sampled_from([16, 28, 32]))


def pillow_reads(path):
    """The mode Pillow gives the file's image, or None if it cannot read it (a
    decompression-bomb warning counts as cannot)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd TIFF tags and palettes
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.mode
    except Exception:
        return None


def check_folder(files, damaged, image_size):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, blob in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            if blob is None:
                (root / name).mkdir()
            else:
                (root / name).write_bytes(blob)
        images = [root / n for n in files if Path(n).suffix.lower() in (".png", ".jpg", ".jpeg")]
        modes = {path: pillow_reads(path) for path in images}
        unreadable = [p for p, m in modes.items() if m is None]
        # A damaged file that Pillow still opens may yet be refused (by name).
        suspects = unreadable or [root / n for n in damaged]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own notes on odd palettes
            result, value = outcome(
                lambda: data.load("folder", root, image_size), data.DataError, suspects
            )
    assert result == "refused" or not unreadable, f"loaded a folder holding {unreadable}"
    if result == "refused":
        return  # naming an unreadable file (or a damaged one), as ``outcome`` checked
    channels = 1 if all(m in GRAY for m in modes.values()) else 3
    assert value.shape == (len(images), channels, image_size, image_size)
    assert value.dtype == np.uint8


@quick
@given(case=folder_cases())
@example(({"f0.png": png_declaring(30000, 30000)}, {"f0.png"}, 16))
@example(
    ({"f.png": png_declaring(*[math.isqrt(int(Image.MAX_IMAGE_PIXELS * 1.5))] * 2)}, {"f.png"}, 16)
)
@example(({"a.png": image_bytes("LAB", "TIFF", (5, 3), 0), "b.JPG": b""}, {"b.JPG"}, 16))
@example(
    (
        {
            "a.png": image_bytes("I;16", "PNG", (9, 4), 0),
            "b.jpg": image_bytes("CMYK", "JPEG", (3, 7), 1),
        },
        set(),
        28,
    )
)
def test_image_folders(case):
    check_folder(*case)


@long_run
@given(case=folder_cases())
def test_image_folders_long(case):
    check_folder(*case)


# ---- the bundled digits ---------------------------------------------------------------------


def damage_ops(length):
    """Ways to damage a file of ``length`` bytes, as small descriptions (so a failing
    example prints short): see ``damaged``."""
    return st.one_of(
        st.tuples(st.just("flip"), bit_positions),
        st.tuples(st.just("cut"), cut_points(length)),
        st.tuples(
            st.just("overwrite"), st.integers(0, length - 1), st.binary(min_size=1, max_size=64)
        ),
        st.tuples(st.just("prefix"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("suffix"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("empty")),
    )


def damaged(blob, op):
    kind, *args = op
    if kind == "flip":
        return flip_bits(blob, args[0])
    if kind == "cut":
        return blob[: args[0]]
    if kind == "overwrite":
        start, junk = args
        return blob[:start] + junk + blob[start + len(junk) :]
    if kind == "prefix":
        return args[0] + blob
    if kind == "suffix":
        return blob + args[0]
    return b""


BUNDLED = data.BUNDLED.read_bytes()


def check_bundled(op):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist_5k.npz"
        path.write_bytes(damaged(BUNDLED, op))
        with mock.patch.object(data, "BUNDLED", path):
            result, images = outcome(data.load_bundled, data.DataError, [path])
            labels = outcome(data.load_bundled_labels, data.DataError, [path])[1]
    if result == "loaded":
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[1] == 1
    if not isinstance(labels, str):
        assert labels.dtype == np.int64 and labels.ndim == 1


@quick
@given(op=damage_ops(len(BUNDLED)))
@example(("flip", [1820]))  # inside the first .npy header: a tokenize.TokenError
def test_bundled_digits_damaged(op):
    check_bundled(op)


@long_run
@given(op=damage_ops(len(BUNDLED)))
def test_bundled_digits_damaged_long(op):
    check_bundled(op)


# ---- downloads ------------------------------------------------------------------------------


class Responder:
    """A TCP server on loopback that answers every connection with ``self.reply``, the
    bytes a broken (or fine) mirror might send, then closes it."""

    def __init__(self):
        self.reply = b""
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    conn.sendall(self.reply)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def responder():
    server = Responder()
    yield server
    server.close()


DIGITS = np.random.default_rng(3).integers(0, 256, (3, 28, 28), np.uint8)


def served_file():
    with tempfile.TemporaryDirectory() as tmp:
        return write_idx(Path(tmp) / "f.gz", DIGITS).read_bytes()


GOOD = served_file()


@st.composite
def http_replies(draw):
    body = GOOD
    damage = draw(st.sampled_from(["none", "none", "flip", "cut", "extra", "other"]))
    if damage == "flip":
        body = flip_bits(body, draw(bit_positions))
    elif damage == "cut":
        body = body[: draw(cut_points(len(body)))]
    elif damage == "extra":
        body += draw(st.binary(min_size=1, max_size=20))
    elif damage == "other":
        body = draw(st.binary(max_size=200))
    status = draw(
        st.sampled_from(
            [b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 404 Not Found",
             b"HTTP/1.1 500 Oops", b"HTTP/1.1 301 Moved", b"HTTP/1.1 abc", b"HTTP/9.9 200 OK",
             b"garbage", b"", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000]
        )
    )  # fmt: skip
    framing = draw(st.sampled_from(["length", "short", "long", "nonsense", "none", "chunked"]))
    headers = [b"Content-Type: application/gzip"]
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "short":
        headers.append(b"Content-Length: %d" % max(len(body) - 7, 0))
    elif framing == "long":
        headers.append(b"Content-Length: %d" % (len(body) + 100))
    elif framing == "nonsense":
        headers.append(draw(st.sampled_from([b"Content-Length: -5", b"Content-Length: 12abc"])))
    if status.endswith(b"301 Moved"):
        headers.append(
            draw(st.sampled_from([b"Location: http://127.0.0.1:9/x", b"Location: ::::", b""]))
        )
    if draw(st.integers(0, 7)) == 0:
        headers += [b"X-Many: 1"] * 120  # http.client refuses more than 100 headers
    if framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:50], body[50:]) if c)
        body = chunks + draw(st.sampled_from([b"0\r\n\r\n", b"", b"zz\r\n"]))
    if not status:
        return b""
    return status + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


def check_download(responder, reply):
    responder.reply = reply
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        target = root / "train-images-idx3-ubyte.gz"
        md5 = hashlib.md5(GOOD).hexdigest()
        with (
            mock.patch.dict(data.IDX_CHECKSUMS, {"mnist": md5}),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            result, value = outcome(
                lambda: data.load("mnist", root, mirrors=[responder.url]),
                data.DataError,
                [target.name],
            )
        left = sorted(p.name for p in root.iterdir())
    if result == "loaded":
        np.testing.assert_array_equal(value[:, 0], DIGITS)
        assert left == [target.name]
    else:
        assert left == [], f"a failed download left {left}"


@quick
@given(reply=http_replies())
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + GOOD[:50])
@example(b"garbage\r\n\r\n")
def test_downloads_from_a_broken_mirror(responder, reply):
    check_download(responder, reply)


@long_run
@given(reply=http_replies())
def test_downloads_from_a_broken_mirror_long(responder, reply):
    check_download(responder, reply)


# ---- checkpoints ----------------------------------------------------------------------------


class Base:
    """A checkpoint's bytes as written, and its (arrays, meta) as loaded."""

    def __init__(self, blob, arrays, meta, folder):
        self.blob, self.arrays, self.meta, self.folder = blob, arrays, meta, folder

    def __repr__(self):  # what a failing example prints (not 300 kB of arrays)
        return f"<last.npz of a one-step run in {self.folder}>"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A real checkpoint: one step of a tiny DCGAN on 8 random 28x28 images."""
    root = tmp_path_factory.mktemp("checkpoint")
    digits = np.random.default_rng(0).integers(0, 256, (8, 28, 28), np.uint8)
    write_idx(root / "digits" / "train-images-idx3-ubyte.gz", digits)
    argv = ["--dataset", "mnist", "--data-dir", str(root / "digits"), "--ngf", "2", "--ndf",
            "2", "--nz", "4", "--batch-size", "4", "--backend", "numpy", "--max-steps", "1",
            "--checkpoint-minutes", "0", "--out", str(root / "run")]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert train.main(argv) == 0
    path = root / "run" / "checkpoints" / "last.npz"
    arrays, meta = checkpoint.load(path)
    return Base(path.read_bytes(), arrays, meta, root)


NO_PLOTS = mock.patch.object(train, "plot_metrics", lambda *args: None)


def run_commands(path, out):
    """``python -m minigan.sample`` and ``python -m minigan.train --resume`` (one more
    step) on a checkpoint; each must succeed or print one line starting with "error:"."""
    step = None
    with contextlib.suppress(checkpoint.CheckpointError):
        step = checkpoint.load(path)[1].get("step")
    more = step + 1 if isinstance(step, int) and 0 <= step < 10**6 else 1
    commands = [
        (sample.main, ["--checkpoint", str(path), "--n", "2", "--out", str(out / "s.npy"),
                       "--backend", "numpy"]),
        (train.main, ["--resume", str(path), "--out", str(out / "run"), "--max-steps",
                      str(more), "--sample-every", "0"]),
    ]  # fmt: skip
    codes = []
    for main, argv in commands:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            # losses.png is output, not input: skipping matplotlib saves most of the time
            with time_limit(), warnings.catch_warnings(), NO_PLOTS:
                warnings.simplefilter("ignore")
                code = main(argv)
        errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
        assert "Traceback" not in err.getvalue()
        if code == 0:
            assert not errors, errors
        else:
            assert len(errors) == 1, err.getvalue()
        codes.append((code, errors[0] if errors else None))
    return codes


def check_checkpoint(blob, path, out, original, names_file=True):
    """checkpoint.load, then what both commands do. ``original``: the (arrays, meta)
    the bytes must load as if they load at all, or None for "anything consistent"."""
    path.write_bytes(blob)
    with memory_bound((4 << 20) + 8 * len(blob)):
        result, value = outcome(lambda: checkpoint.load(path), checkpoint.CheckpointError, [path])
    if result == "loaded" and original is not None:
        arrays, meta = value
        assert meta == original[1] and arrays.keys() == original[0].keys()
        for k, a in arrays.items():
            assert a.dtype == original[0][k].dtype
            np.testing.assert_array_equal(a, original[0][k])
    with backend.using("numpy"):
        codes = run_commands(path, out)
    for code, error in codes:
        if result == "refused":
            assert code == 2 and str(path) in error, error
        elif code == 2 and names_file and "damaged" in error:
            assert str(path) in error, error
    return result, codes


def check_checkpoint_bytes(base, data_):
    blob = damaged(base.blob, data_.draw(damage_ops(len(base.blob)), label="damage"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.npz"
        result, codes = check_checkpoint(blob, path, Path(tmp), (base.arrays, base.meta))
    if result == "loaded":  # the same arrays and metadata: both commands work
        assert [code for code, _ in codes] == [0, 0], codes


@quick
@given(data_=st.data())
def test_checkpoint_bytes_damaged(base, data_):
    check_checkpoint_bytes(base, data_)


@long_run
@given(data_=st.data())
def test_checkpoint_bytes_damaged_long(base, data_):
    check_checkpoint_bytes(base, data_)


def npy_member(header: dict, payload: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + payload


ODD_ARRAYS = {
    "float64": lambda a: a.astype(np.float64),
    "float16": lambda a: a.astype(np.float16),
    "int32": lambda a: a.astype(np.int32),
    "bool": lambda a: a.astype(bool),
    "complex": lambda a: a.astype(np.complex64),
    "str": lambda a: a.astype("U3"),
    "bytes": lambda a: a.astype("S3"),
    "datetime": lambda a: np.zeros(a.shape, "datetime64[s]"),
    "struct": lambda a: np.zeros(a.shape, [("x", "<f4"), ("y", "<i2")]),
    "object": lambda a: a.astype(object),
    "fortran": lambda a: np.asfortranarray(a),
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "nan": lambda a: np.full_like(a, np.nan) if a.dtype.kind == "f" else a,
    "sliced": lambda a: a[:1] if a.ndim else a,
    "extra-axis": lambda a: a[None],
    "scalar": lambda a: np.asarray(a.ravel()[0] if a.size else 0),
    "transposed": lambda a: a.T,
    "empty": lambda a: a[:0] if a.ndim else a,
}
META_VALUES = [None, "x", 1.5, -1, 0, 2**70, True, [], {}, [1, 2], {"a": 1}]
RAW_META = {  # __meta__ members that are not JSON text, or no __meta__ at all
    "not-json": np.array("{not json"),
    "number": np.array(3.5),
    "two-strings": np.array(["{}", "{}"]),
    "bytes": np.array(b"{}"),
    "matrix": np.zeros((2, 2)),
    "missing": None,
}
HUGE_SHAPES = [(2**40,), (2**31,), (2**31, 2**16), (2**20, 2**20), (10**6,)]


def array_damage(base):
    """Damage to a checkpoint's arrays and to the shape of its metadata, as small
    descriptions (op, key, how), applied by ``build_damaged``."""
    keys = st.sampled_from(sorted(base.arrays))
    weights = st.sampled_from(sorted(base.arrays))
    return st.one_of(
        st.tuples(st.just("drop"), keys),
        st.tuples(st.just("extra"), st.sampled_from(["G.extra", "D.main.0.bias", "opt_g.m.99",
                                                     "junk"]), st.integers(0, 3)),
        st.tuples(st.just("odd"), weights, st.sampled_from(sorted(ODD_ARRAYS))),
        st.tuples(st.just("huge"), keys, st.sampled_from(HUGE_SHAPES)),
        st.tuples(st.just("meta-not-object"), st.sampled_from([[1, 2], "text", 3, None, True])),
        st.tuples(st.just("meta-raw"), st.sampled_from(sorted(RAW_META))),
    )  # fmt: skip


def meta_damage(base):
    """Damage to the metadata's fields, and settings missing from its configuration."""
    fields = st.sampled_from(sorted(base.meta))
    return st.one_of(
        st.tuples(st.just("meta-drop"), fields),
        st.tuples(st.just("meta-type"), fields, st.sampled_from(META_VALUES)),
        st.tuples(st.just("config-drop"), st.sampled_from(sorted(base.meta["config"]))),
    )


def settings_damage(base):
    """Settings of another JSON type in the configuration, and a fixed noise batch of
    another shape or dtype: train.py checks them as it checks the flags."""
    return st.one_of(
        st.tuples(st.just("config-type"), st.sampled_from(sorted(base.meta["config"])),
                  st.sampled_from(META_VALUES)),
        st.tuples(st.just("odd"), st.just("fixed_noise"), st.sampled_from(sorted(ODD_ARRAYS))),
    )  # fmt: skip


def build_damaged(path, base, ops, compressed):
    """Write ``base`` with ``ops`` applied to ``path``; returns (sample_must_refuse,
    train_must_refuse): damage that each command cannot have loaded correctly."""
    arrays, meta, raw_meta, members = dict(base.arrays), json_copy(base.meta), None, {}
    for op, *args in ops:
        config = meta.get("config") if isinstance(meta, dict) else None
        if op == "drop":
            arrays.pop(args[0], None)
        elif op == "extra":
            arrays[args[0]] = np.zeros(args[1], np.float32)
        elif op == "odd" and args[0] in arrays:  # applied to the original array
            arrays[args[0]] = ODD_ARRAYS[args[1]](base.arrays[args[0]])
        elif op == "huge":
            header = {"descr": "<f4", "fortran_order": False, "shape": args[1]}
            members[args[0]] = npy_member(header, b"\0" * 64)
        elif op == "meta-not-object":
            meta = args[0]
        elif op == "meta-raw":
            raw_meta = args[0]
        elif op == "meta-drop" and isinstance(meta, dict):
            meta.pop(args[0], None)
        elif op == "meta-type" and isinstance(meta, dict):
            meta[args[0]] = args[1]
        elif op == "config-drop" and isinstance(config, dict):
            config.pop(args[0], None)
        elif op == "config-type" and isinstance(config, dict):
            config[args[0]] = args[1]
    payload = {k: a for k, a in arrays.items() if k not in members}
    if raw_meta is None:
        payload["__meta__"] = np.array(json.dumps(meta))
    elif RAW_META[raw_meta] is not None:
        payload["__meta__"] = RAW_META[raw_meta]
    (np.savez_compressed if compressed else np.savez)(path, **payload)
    with zipfile.ZipFile(path, "a") as z:
        for name, member in members.items():
            z.writestr(name + ".npy", member)

    # What must be refused: the whole file, or the weights a command needs (the models
    # are strict about their keys; an optimizer buffer may be missing).
    whole = bool(members) or raw_meta is not None or not isinstance(meta, dict)
    whole |= any(a.dtype.hasobject for a in payload.values())
    missing = {k for k in set(base.arrays) - set(arrays) if not k.endswith("num_batches_tracked")}
    extra = set(arrays) - set(base.arrays)
    # minigan.sample reads the averaged G when any of its keys is left, else G.
    sampled = "G_ema." if any(k.startswith("G_ema.") for k in arrays) else "G."
    sample_refuses = whole or any(k.startswith(sampled) for k in missing | extra)
    train_refuses = whole or any(k.startswith(("G.", "D.")) for k in missing | extra)
    train_refuses |= any(k.startswith("G_ema.") for k in extra)  # a full set, or none at all
    train_refuses |= sampled == "G_ema." and any(k.startswith("G_ema.") for k in missing)
    train_refuses |= any(k == "fixed_noise" or k.endswith(".steps") for k in missing)
    return sample_refuses, train_refuses


def json_copy(value):
    return json.loads(json.dumps(value))


def check_damaged_checkpoint(base, ops, compressed):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.npz"
        refuses = build_damaged(path, base, ops, compressed)
        _, codes = check_checkpoint(path.read_bytes(), path, Path(tmp), None)
    for must_refuse, (code, _) in zip(refuses, codes):
        assert code != 0 or not must_refuse, f"loaded a checkpoint with {ops}"


@quick
@given(data_=st.data())
def test_checkpoint_arrays_damaged(base, data_):
    ops = data_.draw(st.lists(array_damage(base), min_size=1, max_size=3), label="ops")
    check_damaged_checkpoint(base, ops, data_.draw(st.booleans(), label="compressed"))


@long_run
@given(data_=st.data())
def test_checkpoint_arrays_damaged_long(base, data_):
    ops = data_.draw(st.lists(array_damage(base), min_size=1, max_size=3), label="ops")
    check_damaged_checkpoint(base, ops, data_.draw(st.booleans(), label="compressed"))


@quick
@given(data_=st.data())
def test_checkpoint_metadata_damaged(base, data_):
    ops = data_.draw(st.lists(meta_damage(base), min_size=1, max_size=3), label="ops")
    check_damaged_checkpoint(base, ops, False)


@long_run
@given(data_=st.data())
def test_checkpoint_metadata_damaged_long(base, data_):
    ops = data_.draw(st.lists(meta_damage(base), min_size=1, max_size=3), label="ops")
    check_damaged_checkpoint(base, ops, False)


@settings(max_examples=QUICK)
@given(data_=st.data())
def test_checkpoint_settings_damaged(base, data_):
    ops = data_.draw(st.lists(settings_damage(base), min_size=1, max_size=2), label="ops")
    check_damaged_checkpoint(base, ops, False)


@long_run()
@given(data_=st.data())
def test_checkpoint_settings_damaged_long(base, data_):
    ops = data_.draw(st.lists(settings_damage(base), min_size=1, max_size=2), label="ops")
    check_damaged_checkpoint(base, ops, False)


@pytest.mark.parametrize(
    "ops",
    [
        [("meta-drop", "config")],  # was a KeyError in minigan.sample
        [("meta-type", "config", [])],  # was a TypeError in --resume
        [("meta-type", "step", -1)],  # was a ValueError one epoch into --resume
        [("meta-not-object", [1, 2])],  # was an AttributeError in both
        [("huge", "G.main.0.weight", (2**31,))],  # was 8 GiB allocated, then refused
        [("meta-raw", "missing")],
    ],
    ids=str,
)
def test_checkpoint_damage_found_by_fuzzing(base, ops):
    check_damaged_checkpoint(base, ops, False)


def test_an_npz_header_declaring_a_terabyte_is_refused_unread(tmp_path):
    path = tmp_path / "huge.npz"
    np.savez(path, __meta__=np.array("{}"))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("w.npy", npy_member({"descr": "<f8", "fortran_order": False,
                                        "shape": (2**40,)}, b"\0" * 80))  # fmt: skip
    with memory_bound(1 << 20), pytest.raises(checkpoint.CheckpointError, match="huge.npz"):
        checkpoint.load(path)


# ---- the training flags ---------------------------------------------------------------------

INT_FLAGS = ["--epochs", "--batch-size", "--nz", "--ngf", "--ndf", "--seed", "--sample-every",
             "--checkpoint-every", "--max-steps"]  # fmt: skip
FLOAT_FLAGS = ["--lr", "--beta1", "--label-smoothing", "--checkpoint-minutes"]
INTS = st.integers(-3, 300).map(str) | st.sampled_from(["0", "-0", "99999999999999", "1e3", "x"])
FLOATS = st.sampled_from(["0", "-0.0", "nan", "inf", "-inf", "1e-300", "1e300", "0.999999",
                          "1", "abc", "2e-4", "0.5"]) | st.floats(-2, 2).map(repr)  # fmt: skip


@st.composite
def flag_lines(draw):
    argv = []
    for flag in draw(st.lists(st.sampled_from(INT_FLAGS + FLOAT_FLAGS), max_size=5, unique=True)):
        argv += [flag, draw(INTS if flag in INT_FLAGS else FLOATS)]
    if draw(st.booleans()):
        argv += ["--image-size", draw(st.sampled_from(["16", "28", "30", "0", "-1"]))]
    return argv


def check_flags(argv):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = train.build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: usage, then one "error:" line
        assert e.code == 2 and err.getvalue().strip().splitlines()[-1].count("error:") == 1
        return
    result, value = outcome(lambda: train.resolve_config(args), train.UsageError, ["--"])
    if result == "refused":
        return
    config = value[0]
    for key in ("epochs", "nz", "ngf", "ndf", "max_steps"):
        assert config[key] is None or config[key] >= 1, (key, config[key])
    assert config["batch_size"] >= 2
    for key in ("sample_every", "checkpoint_every"):
        assert config[key] >= 0
    assert not config["lr"] <= 0 and 0 <= config["beta1"] < 1
    assert 0 <= config["label_smoothing"] < 1 and not config["checkpoint_minutes"] < 0


@quick
@given(argv=flag_lines())
def test_training_flags(argv):
    check_flags(argv)


@long_run
@given(argv=flag_lines())
def test_training_flags_long(argv):
    check_flags(argv)
