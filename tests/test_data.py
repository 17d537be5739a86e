"""Every loader on small files the tests write, the download path on a loopback server,
and a one-line error naming the file for everything broken."""

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from files import write_cifar_batch, write_idx

from minigan import data


@pytest.mark.parametrize(
    "name", ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"]
)
def test_idx_gzipped_and_raw(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), np.uint8)
    write_idx(tmp_path / name, images)
    loaded = data.load("mnist", tmp_path)
    assert loaded.shape == (5, 1, 28, 28) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded[:, 0], images)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00\x08\x01" + b"\x00" * 12, "not an IDX image file"),
        (b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100,
         "truncated or corrupted: its header promises 5 images of 28x28"),
        (gzip.compress(b"\x00" * 50)[:-8], "cannot read it"),
    ],
)  # fmt: skip
def test_broken_idx_files_are_named(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(data.DataError, match=f"{path}: {message}"):
        data.load("mnist", tmp_path)


def test_idx_resized(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.full((3, 28, 28), 200, np.uint8))
    loaded = data.load("mnist", tmp_path, image_size=32)
    assert loaded.shape == (3, 1, 32, 32) and abs(int(loaded.mean()) - 200) <= 1


def test_cifar10_binary(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 3, 32, 32), np.uint8)
    write_cifar_batch(
        tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin", images[:4], np.arange(4)
    )
    write_cifar_batch(
        tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin", images[4:], np.arange(3)
    )
    loaded = data.load("cifar10", tmp_path)
    np.testing.assert_array_equal(loaded, images)
    (tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin").write_bytes(b"\x01" * 3000)
    with pytest.raises(data.DataError, match="data_batch_2.bin: not a CIFAR-10 binary batch"):
        data.load("cifar10", tmp_path)


def test_image_folder_rgb_grayscale_crop_and_resize(tmp_path):
    from PIL import Image

    (tmp_path / "faces" / "sub").mkdir(parents=True)
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = [255, 0, 0]  # the centre square is red, the sides black
    Image.fromarray(wide).save(tmp_path / "faces" / "wide.png")
    Image.fromarray(np.full((50, 50, 3), 128, np.uint8)).save(tmp_path / "faces" / "sub" / "b.JPG")
    (tmp_path / "faces" / "notes.txt").write_text("not an image")
    loaded = data.load("folder", tmp_path / "faces", image_size=16)
    assert loaded.shape == (2, 3, 16, 16) and loaded.dtype == np.uint8
    red = loaded[
        [p.name for p in sorted((tmp_path / "faces").rglob("*.[pjPJ]*[gG]"))].index("wide.png")
    ]
    assert red[0].min() > 240 and red[1].max() < 15  # centre-cropped: all red

    gray = tmp_path / "gray"
    gray.mkdir()
    Image.fromarray(np.full((20, 30), 60, np.uint8)).save(gray / "g.png")
    assert data.load("folder", gray, image_size=16).shape == (1, 1, 16, 16)


def test_image_folder_errors(tmp_path):
    with pytest.raises(data.DataError, match="no .png, .jpg or .jpeg images"):
        data.load("folder", tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(data.DataError, match="broken.png: cannot read this image"):
        data.load("folder", tmp_path)
    with pytest.raises(data.DataError, match="no such folder"):
        data.load("folder", tmp_path / "missing")


def test_bundled_subset():
    images = data.load("mnist5k")
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.uint8
    assert 30 < images.mean() < 40  # MNIST's mean pixel is ~33


def test_batches_are_shuffled_reproducibly_and_scaled():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 25
    first = [b.ravel().tolist() for b in data.batches(images, 3, seed=5, epoch=0)]
    assert len(first) == 3 and first == [b.ravel().tolist() for b in data.batches(images, 3, 5, 0)]
    assert first != [b.ravel().tolist() for b in data.batches(images, 3, 5, 1)]
    assert [b.ravel().tolist() for b in data.batches(images, 3, 5, 0, start=2)] == first[2:]
    batch = next(data.batches(images, 10, 0, 0))
    assert (
        batch.dtype == np.float32
        and batch.min() == -1
        and abs(batch.max() - (225 / 127.5 - 1)) < 1e-6
    )


# ---- downloads, against a server on loopback ----------------------------------------------------


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()


def test_download_verifies_the_checksum(tmp_path, server, monkeypatch):
    url, root = server
    images = np.random.default_rng(2).integers(0, 256, (4, 28, 28), np.uint8)
    served = write_idx(root / "train-images-idx3-ubyte.gz", images)
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    monkeypatch.setitem(data.IDX_CHECKSUMS, "mnist", md5)
    target_dir = tmp_path / "cache"
    target_dir.mkdir()
    loaded = data.load(
        "mnist", target_dir, mirrors=["http://127.0.0.1:9/", url]
    )  # first one is down
    np.testing.assert_array_equal(loaded[:, 0], images)
    assert sorted(p.name for p in target_dir.iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path, server, monkeypatch):
    url, root = server
    write_idx(root / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    monkeypatch.setitem(data.IDX_CHECKSUMS, "mnist", "0" * 32)
    target_dir = tmp_path / "cache"
    target_dir.mkdir()
    with pytest.raises(data.DataError, match="checksum .* is not the expected 0000") as info:
        data.load("mnist", target_dir, mirrors=[url])
    assert f"put it at {target_dir / 'train-images-idx3-ubyte.gz'}" in str(info.value)
    assert list(target_dir.iterdir()) == []


def test_download_when_offline_says_which_file_to_put_where(tmp_path, server):
    url, _ = server  # serves nothing: 404
    (tmp_path / "fm").mkdir()
    with pytest.raises(data.DataError) as info:
        data.load("fashion-mnist", tmp_path / "fm", mirrors=[url])
    message = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "fm" / "train-images-idx3-ubyte.gz") in message and "\n" not in message


def test_search_order_prefers_the_cache_then_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    system = tmp_path / "usr-share"
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", [system])
    write_idx(system / "train-images-idx3-ubyte.gz", np.full((2, 28, 28), 1, np.uint8))
    assert data.load("fashion-mnist").max() == 1
    write_idx(
        tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte",
        np.full((3, 28, 28), 2, np.uint8),
    )
    assert data.load("fashion-mnist").shape[0] == 3


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "empty-cache"))
    images = data.load("fashion-mnist", download=False)
    assert images.shape == (60000, 1, 28, 28) and images.dtype == np.uint8


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    loaded = data.load("folder", tmp_path, image_size=64)
    assert loaded.shape == (1, 1, 64, 64) and 100 < loaded.mean() < 155


def test_missing_data_dir_is_not_created(tmp_path):
    with pytest.raises(data.DataError, match="no such folder"):
        data.load("mnist", tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_bundled_digits_come_with_their_labels():
    images, labels = data.load_bundled(), data.load_bundled_labels()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [500] * 10


def write_idx_labels(path, labels) -> Path:
    raw = (0x00000801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + bytes(labels)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


@pytest.mark.parametrize("split, stem", [("train", "train"), ("test", "t10k")])
def test_labelled_splits(tmp_path, split, stem):
    images = np.random.default_rng(2).integers(0, 256, (6, 28, 28), np.uint8)
    write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", images)
    write_idx_labels(tmp_path / f"{stem}-labels-idx1-ubyte", [3, 1, 4, 1, 5, 9])
    loaded, labels = data.load_labeled("mnist", split, tmp_path)
    np.testing.assert_array_equal(loaded[:, 0], images)
    assert labels.tolist() == [3, 1, 4, 1, 5, 9] and labels.dtype == np.int64


@pytest.mark.parametrize(
    "labels, message",
    [
        (b"\x00\x00\x08\x03" + (6).to_bytes(4, "big") + bytes(6), "not an IDX label file"),
        (b"\x00\x00\x08\x01" + (6).to_bytes(4, "big") + bytes(4), "header promises 6 labels"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5), "5 labels for the 6 images"),
        (b"\x00\x00\x08\x01" + (6).to_bytes(4, "big") + bytes([0, 1, 2, 3, 4, 10]), "label 10"),
    ],
)
def test_broken_label_files_are_named(tmp_path, labels, message):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((6, 28, 28), np.uint8))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    with pytest.raises(data.DataError, match=message) as raised:
        data.load_labeled("mnist", "test", tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_test_split_from_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "empty-cache"))
    images, labels = data.load_labeled("fashion-mnist", "test", download=False)
    assert images.shape == (10000, 1, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
