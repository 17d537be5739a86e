"""The machine's own faults, provoked for real where this machine allows it: a full disk
(a small tmpfs), a folder that cannot be written (a read-only tmpfs, and a user without
permission), memory that runs out, and files that claim sizes no machine holds. Each
ends in one line naming the path and the reason; a stopped run names its last good
checkpoint (whole, with its step) and the command that continues it; a picture that
cannot be written costs a warning, never the run.

The tests that mount a tmpfs or switch to an unprivileged user need root (CI runs as
root); elsewhere they skip and say why.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.server
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from files import write_idx

from minigan import backend, checkpoint, data, images, resources, sample, score, train
from minigan.gan import GANTrainer
from minigan.models import dcgan

TINY = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--backend", "numpy", "--batch-size", "4",
        "--score-every", "0"]  # fmt: skip
NOBODY = 65534  # the unprivileged user of Debian and most Linux systems


@pytest.fixture
def digits(tmp_path):
    """40 random 28x28 images as an IDX dataset: --batch-size 4 gives 10 steps an epoch."""
    folder = tmp_path / "tiny"
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28), np.uint8))
    return ["--dataset", "mnist", "--data-dir", str(folder), *TINY]


@pytest.fixture
def mount():
    """mount(path, size, read_only=False): a tmpfs of ``size`` at ``path``, unmounted
    afterwards; skips (with the reason) where this machine cannot mount one."""
    mounted = []

    def mount(path, size="1m", read_only=False):
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root and mount(8); a full disk is not provoked")
        Path(path).mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(Path(path))
        return Path(path)

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path):
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def fill(folder) -> Path:
    """Fill the file system under ``folder`` to the last byte; returns the filler file."""
    filler = Path(folder) / "filler"
    with open(filler, "wb", buffering=0) as f:
        for block in (65536, 1):  # big writes, then the last few bytes one at a time
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


def error_lines(err) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob("*.tmp")) + sorted(
        p.name for p in Path(folder).rglob("*.part")
    )


# ---- a full disk ------------------------------------------------------------------------


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, mount):
    disk = mount(tmp_path / "disk", "256k")
    path = disk / "last.npz"
    small = {"w": np.arange(100, dtype=np.float32)}
    checkpoint.save(path, small, {"step": 1})
    with pytest.raises(OSError) as raised:  # 1 MB into what is left of 256 kB
        checkpoint.save(path, {"w": np.ones(250_000, np.float32)}, {"step": 2})
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    arrays, meta = checkpoint.load(path)  # the previous checkpoint, whole
    assert meta == {"step": 1} and np.array_equal(arrays["w"], small["w"])
    assert leftovers(disk) == []  # the temporary file is gone


@pytest.mark.parametrize("checked", [True, False], ids=["refused-before", "failed-during"])
def test_a_run_on_a_full_disk_stops_cleanly_and_says_how_to_resume(
    digits, tmp_path, mount, monkeypatch, capsys, checked
):
    """The disk fills up at step 3 of a run that saves every step. Refused before the
    write (the free space is checked) or failing in it (the check is skipped): one line,
    the checkpoint of step 2 whole, no temporary file, and the resume command works."""
    disk = mount(tmp_path / "disk", "4m")
    out = disk / "run"
    if not checked:
        monkeypatch.setattr(resources, "check_disk", lambda *args: None)
    real_step, calls, filler = GANTrainer.step, [], []

    def step_then_fill(self, real):
        calls.append(1)
        metrics = real_step(self, real)
        if len(calls) == 3:
            filler.append(fill(disk))
        return metrics

    monkeypatch.setattr(GANTrainer, "step", step_then_fill)
    argv = [*digits, "--max-steps", "6", "--out", str(out), "--checkpoint-minutes", "1e-9"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    [line] = error_lines(err)
    last = out / "checkpoints" / "last.npz"
    assert str(last) in line and "the run stopped at step 3" in line
    assert ("disk space" in line) if checked else ("No space left on device" in line)
    assert f"the last good checkpoint is {last} (step 2)" in line
    assert line.endswith(f"continue with: python -m minigan.train --resume {last}")
    assert "Traceback" not in err
    assert checkpoint.load(last)[1]["step"] == 2 and leftovers(disk) == []
    filler[0].unlink()  # space again: the command it gave continues the run
    monkeypatch.setattr(GANTrainer, "step", real_step)
    assert train.main(["--resume", str(last)]) == 0
    assert checkpoint.load(last)[1]["step"] == 6


def test_a_row_the_full_disk_cuts_short_is_taken_back(tmp_path, mount):
    """metrics.csv ends 10 bytes short of a page and the disk is full: the kernel writes
    10 bytes of the next row into that page, then refuses the rest. The half row is cut
    off again, so the file ends on a whole row and the next append starts a line."""
    disk = mount(tmp_path / "disk", "64k")
    path = disk / "metrics.csv"
    rows = b"step,loss_d\n" + b"".join(b"%d,0.5\n" % i for i in range(600))
    path.write_bytes(rows[: 4096 - 10 - 1] + b"\n")
    before = path.read_bytes()
    fill(disk)
    with pytest.raises(OSError) as e:
        checkpoint.append_whole(path, b"601,0.123456789,0.123456789,0.123456789\n")
    assert e.value.errno == errno.ENOSPC
    assert path.read_bytes() == before


def test_samples_on_a_full_disk_are_refused_before_drawing(tmp_path, mount, capsys, run):
    disk = mount(tmp_path / "disk", "256k")
    out = disk / "samples.npy"
    assert sample.main(["--checkpoint", str(run), "--n", "5000", "--out", str(out)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert str(out) in line and "15.7 MB of disk space" in line and "was not written" in line
    assert list(disk.iterdir()) == []


def test_samples_streamed_onto_a_disk_that_fills_leave_nothing(
    tmp_path, mount, capsys, run, monkeypatch
):
    """Without the free-space check, the space is reserved before the first image is
    drawn (so a write through the memory map never meets a full disk): that fails."""
    disk = mount(tmp_path / "disk", "256k")
    monkeypatch.setattr(resources, "check_disk", lambda *args: None)
    out = disk / "samples.npy"
    assert sample.main(["--checkpoint", str(run), "--n", "5000", "--out", str(out)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {out}: No space left on device")
    assert list(disk.iterdir()) == []


def test_a_download_onto_a_full_disk_stops_at_once(tmp_path, mount, big_server):
    disk = mount(tmp_path / "disk", "256k")
    with pytest.raises(data.DataError) as raised:  # the size is known: refused before
        data.download_file([big_server.url], disk / "f.gz", "0" * 32, size=2_000_000)
    assert "f.gz" in str(raised.value) and "disk space" in str(raised.value)
    big_server.body = b"x" * 2_000_000
    with pytest.raises(data.DataError) as raised:  # unknown size: the write fails, once
        data.download_file([big_server.url, big_server.url], disk / "f.gz", "0" * 32)
    message = str(raised.value)
    assert "\n" not in message and "f.gz.part: No space left on device" in message
    assert big_server.requests == 1 and list(disk.iterdir()) == []  # no second mirror tried


# ---- folders that cannot be written -------------------------------------------------------


def test_pictures_that_cannot_be_written_warn_once_each_and_training_goes_on(
    digits, tmp_path, mount, capsys
):
    """samples/ is a read-only file system (holding one older grid), and folders stand
    where losses.png and progress.gif go: every grid, plot and the GIF fail, one warning
    for each kind of file, and the run goes on to its end and its checkpoint."""
    out = tmp_path / "run"
    samples = mount(out / "samples", "1m")
    images.save_png(samples / "epoch_000.png", np.zeros((8, 8), np.uint8))
    remount_read_only(samples)
    (out / "losses.png").mkdir()
    (out / "progress.gif").mkdir()
    assert train.main([*digits, "--epochs", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, warnings
    for kind, name, reason in [
        ("sample grids", "samples/epoch_001.png", "Read-only file system"),
        ("plots", "losses.png", "Is a directory"),
        ("GIF", "progress.gif", "Is a directory"),
    ]:
        [line] = [w for w in warnings if f"write the {kind} are" in w]
        assert f"cannot write {out / name}" in line and reason in line, line
    assert checkpoint.load(out / "checkpoints" / "last.npz")[1]["step"] == 20
    assert "done at step 20" in captured.out and error_lines(captured.err) == []


def test_a_checkpoint_folder_that_turns_read_only_stops_the_run(digits, tmp_path, mount, capsys):
    out = tmp_path / "run"
    checkpoints = mount(out / "checkpoints", "4m")
    real_step = GANTrainer.step
    steps = []

    def step(self, real):
        steps.append(1)
        if len(steps) == 13:  # epoch 1 was saved at step 10
            remount_read_only(checkpoints)
        return real_step(self, real)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GANTrainer, "step", step)
        assert train.main([*digits, "--epochs", "3", "--out", str(out)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    last = checkpoints / "last.npz"
    assert f"{last}: Read-only file system" in line and "the run stopped at step 20" in line
    assert f"the last good checkpoint is {last} (step 10)" in line
    assert checkpoint.load(last)[1]["step"] == 10


NOBODY_SCRIPT = """
import json, sys
from minigan import export, sample, train
root, run = sys.argv[1], sys.argv[2]
results = {}
def call(name, main, argv):
    import contextlib, io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    results[name] = [code, [l for l in err.getvalue().splitlines() if l.startswith("error:")]]
call("train", train.main, ["--ngf", "4", "--ndf", "4", "--nz", "8", "--backend", "numpy",
     "--max-steps", "1", "--out", root + "/locked/run"])
call("sample", sample.main, ["--checkpoint", run, "--n", "4", "--out", root + "/locked/s.png"])
call("sample-npy", sample.main, ["--checkpoint", run, "--n", "4", "--out", root + "/locked/s.npy"])
call("export", export.main, ["--checkpoint", run, "--out", root + "/locked/G.safetensors"])
call("read", sample.main, ["--checkpoint", root + "/secret.npz", "--out", root + "/open/s.png"])
call("resume", train.main, ["--resume", run, "--max-steps", "3"])
print(json.dumps(results))
"""


def test_a_user_without_permission_gets_one_line_naming_the_path():
    """As an unprivileged user (root's permission checks always pass): a run folder,
    samples and exports into a folder owned by root, a checkpoint only root may read,
    and a run whose checkpoints/ root owns (the resume: nothing trained is lost)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to run as an unprivileged user")
    root = Path(tempfile.mkdtemp(prefix="minigan-nobody-"))
    try:
        os.chmod(root, 0o755)
        (root / "locked").mkdir(mode=0o755)  # root's: nobody may write in it
        (root / "open").mkdir()
        os.chmod(root / "open", 0o777)
        images = np.random.default_rng(0).integers(0, 256, (40, 28, 28), np.uint8)
        write_idx(root / "tiny" / "train-images-idx3-ubyte", images)
        argv = ["--dataset", "mnist", "--data-dir", str(root / "tiny"), *TINY]
        assert train.main([*argv, "--max-steps", "2", "--out", str(root / "run")]) == 0
        secret = root / "secret.npz"
        shutil.copy(root / "run" / "checkpoints" / "last.npz", secret)
        os.chmod(secret, 0o600)
        for path in [root / "tiny", root / "run", *root.glob("[rt]*/**/*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)  # root's: read by all
        env = {**os.environ, "MPLCONFIGDIR": str(root / "open"), "HOME": str(root / "open"),
               "MINIGAN_CACHE": str(root / "open" / "cache")}  # fmt: skip
        done = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
             sys.executable, "-c", NOBODY_SCRIPT, str(root), str(root / "run")],
            capture_output=True, text=True, env=env, cwd=root / "open", timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout.splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for name, (code, lines) in results.items():
        assert code == 2 and len(lines) == 1, (name, code, lines)
        assert "Permission denied" in lines[0], (name, lines)
    assert f"{root}/locked/run" in results["train"][1][0]
    assert (
        f"{root}/locked/s.png: Permission denied; {root}/locked/s.png was not written"
        in (results["sample"][1][0])
    )
    assert f"{root}/locked/s.npy" in results["sample-npy"][1][0]
    assert f"{root}/locked/G.safetensors" in results["export"][1][0]
    assert f"{root}/secret.npz: cannot read it (Permission denied)" in results["read"][1][0]
    resume = results["resume"][1][0]
    assert f"{root}/run" in resume and "--resume" in resume and "(step 2)" in resume


# ---- memory -------------------------------------------------------------------------------


def test_running_out_of_memory_mid_run_is_one_line(digits, tmp_path, monkeypatch, capsys):
    real_step, calls = GANTrainer.step, []

    def step(self, real):
        calls.append(1)
        if len(calls) == 13:
            raise MemoryError("Unable to allocate 9.1 GiB for an array with shape (...)")
        return real_step(self, real)

    monkeypatch.setattr(GANTrainer, "step", step)
    out = tmp_path / "run"
    assert train.main([*digits, "--epochs", "3", "--out", str(out)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    last = out / "checkpoints" / "last.npz"
    assert line.startswith("error: out of memory: Unable to allocate 9.1 GiB")
    assert f"stopped at step 12, and the last good checkpoint is {last} (step 10)" in line
    assert line.endswith(f"--resume {last}")


def test_a_model_no_machine_holds_is_refused_before_it_is_built(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "tiny"
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((40, 28, 28), np.uint8))
    monkeypatch.setattr(resources, "available_memory", lambda: 2 * 10**9)
    flags = ["--ngf", "4096", "--ndf", "4096", "--image-size", "128"]  # 1.5 TB at least
    argv = ["--dataset", "mnist", "--data-dir", str(folder), "--backend", "numpy", *flags]
    tracemalloc.start()
    try:
        code = train.main([*argv, "--out", str(tmp_path / "run")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and peak < 50 * 2**20  # the images resized, nothing of the model
    [line] = error_lines(capsys.readouterr().err)
    assert "training (--ngf" in line and "would need" in line and "2.0 GB available" in line


def test_the_training_memory_bound_is_below_a_real_step_and_near_it():
    """dcgan.training_memory is a lower bound of what a step allocates (traced), and
    within a factor of two of it; parameter_count is exact."""
    for size, width, extra in itertools.product((16, 28, 32, 64, 128), (1, 4, 8), (False, True)):
        G = dcgan.Generator(10, width, 3, size, extra_layer=extra)
        D = dcgan.Discriminator(width, 3, size, extra_layer=extra)
        assert G.num_parameters() == dcgan.parameter_count("G", width, 3, size, 10, extra)
        assert D.num_parameters() == dcgan.parameter_count("D", width, 3, size, 10, extra)
    with backend.using("numpy", seed=0):
        for nz, width, channels, size, batch, extra in [
            (100, 32, 1, 28, 64, False), (100, 32, 1, 28, 64, True), (100, 16, 3, 64, 32, True),
        ]:  # fmt: skip
            tracemalloc.start()
            try:
                G, D = (
                    dcgan.Generator(nz, width, channels, size, extra_layer=extra),
                    dcgan.Discriminator(width, channels, size, extra_layer=extra),
                )
                trainer = GANTrainer(G, D, 2e-4, 0.5, nz)
                trainer.step(np.zeros((batch, channels, size, size), np.uint8))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            bound = dcgan.training_memory(nz, width, width, channels, size, batch, False, extra)
            assert bound <= peak < 2 * bound, (size, bound, peak)


def test_requests_too_large_for_memory_are_refused_in_one_line(tmp_path, run, capsys):
    cases = [
        (sample.main, ["--checkpoint", str(run), "--n", "10000000000", "--out",
                       str(tmp_path / "a.png")], "a grid of 10000000000 images"),
        (sample.main, ["--checkpoint", str(run), "--n", "100000000", "--interpolate", "1000",
                       "--out", str(tmp_path / "w.png")], "a grid of 200000000000 images"),
        (sample.main, ["--checkpoint", str(run), "--n", "100000000000", "--out",
                       str(tmp_path / "a.npy")], "of disk space"),
        (score.main, ["--checkpoint", str(run), "--n", "10000000000"],
         "10000000000 samples of 1x28x28 would need"),
    ]  # fmt: skip
    for main, argv, message in cases:
        tracemalloc.start()
        try:
            code = main([*argv, "--backend", "numpy"])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        [line] = error_lines(capsys.readouterr().err)
        assert code == 2 and message in line and peak < 50 * 2**20, (argv, line, peak)
    assert list(tmp_path.iterdir()) == []


def test_scoring_an_npy_whose_header_claims_a_terabyte_reads_nothing(tmp_path, capsys):
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (2**28, 1, 28, 28)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 4096)
    argv = ["--samples", str(path), "--dataset", "mnist", "--backend", "numpy"]
    assert score.main(argv) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "huge.npy: not a readable .npy array" in line


# ---- archives that claim more than they hold ------------------------------------------------


def npz_claiming(path, declared) -> Path:
    """A real compressed .npz whose zip directory says its member expands to ``declared``
    bytes (what reading it would decompress at most)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__meta__.npy", _npy(np.array("{}")))
        z.writestr("w.npy", _npy(np.zeros(1000, np.float32)))
        z.filelist[-1].file_size = declared
    return path


def _npy(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_an_npz_whose_directory_claims_terabytes_is_refused_unread(tmp_path, capsys):
    path = npz_claiming(tmp_path / "bomb.npz", 2**41)
    tracemalloc.start()
    try:
        with pytest.raises(checkpoint.CheckpointError) as raised:
            checkpoint.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20 and "\n" not in str(raised.value)
    assert str(path) in str(raised.value) and "2.2 TB of memory" in str(raised.value)
    assert sample.main(["--checkpoint", str(path), "--out", str(tmp_path / "s.png")]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "bomb.npz: refused before reading" in line


def test_a_real_zip_bomb_is_refused_before_it_expands(tmp_path, monkeypatch):
    """64 MB of zeros compress to 64 kB: with 16 MB of memory to spare, refused from the
    zip's directory, before one byte is decompressed."""
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, __meta__=np.array("{}"), w=np.zeros(16 * 2**20, np.float32))
    assert path.stat().st_size < 2**20
    monkeypatch.setattr(resources, "available_memory", lambda: 16 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(checkpoint.CheckpointError, match="67.1 MB of memory"):
            checkpoint.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


# ---- a damaged grid in the GIF --------------------------------------------------------------


def test_a_cut_short_grid_is_left_out_of_the_gif_of_a_resumed_run(digits, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([*digits, "--epochs", "2", "--out", str(out)]) == 0
    grid = out / "samples" / "epoch_001.png"
    grid.write_bytes(grid.read_bytes()[:200])  # as a kill -9 mid-write used to leave it
    capsys.readouterr()
    assert train.main(["--resume", str(out), "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert str(grid) in warning and "progress.gif leaves it out" in warning
    from PIL import Image

    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 2  # epoch 2, then epoch 3 = the final grid (Pillow merges them)


def test_pictures_are_written_atomically(tmp_path, monkeypatch):
    """A picture whose write fails leaves the previous one whole and no temporary file."""
    path = images.save_png(tmp_path / "grid.png", np.zeros((4, 4), np.uint8))
    before = path.read_bytes()
    from PIL import Image

    def broken_save(self, fp, format=None, **params):
        fp.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError) as raised:
        images.save_png(path, np.ones((4, 4), np.uint8))
    assert raised.value.filename == str(path) and path.read_bytes() == before
    assert leftovers(tmp_path) == []


# ---- downloads: a size cap and a time cap -------------------------------------------------


class Mirror:
    """An HTTP server on loopback that sends ``body`` (``chunks`` at a time, ``pause``
    seconds apart, with Content-Length ``announce`` if set), counting its requests;
    every send loop is bounded and stops when the client leaves."""

    def __init__(self):
        self.body, self.announce, self.chunk, self.pause, self.requests = b"", None, 65536, 0, 0
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests += 1
                self.send_response(200)
                if mirror.announce is not None:
                    self.send_header("Content-Length", str(mirror.announce))
                self.end_headers()
                try:
                    for i in range(0, len(mirror.body), mirror.chunk):
                        self.wfile.write(mirror.body[i : i + mirror.chunk])
                        self.wfile.flush()
                        time.sleep(mirror.pause)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/f.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def big_server():
    mirror = Mirror()
    yield mirror
    mirror.close()


def test_a_mirror_that_sends_too_much_is_cut_off(tmp_path, big_server):
    target = tmp_path / "f.gz"
    big_server.body = b"z" * 400_000  # no Content-Length: found while reading
    with pytest.raises(data.DataError) as raised:
        data.download_file([big_server.url], target, "0" * 32, size=1000)
    assert "sent more than 66536 bytes; the file has 1000" in str(raised.value)
    big_server.announce = 10**12  # announced: refused before a byte is read
    with pytest.raises(data.DataError, match="announces 1000000000000 bytes; the file has 1000"):
        data.download_file([big_server.url], target, "0" * 32, size=1000)
    assert list(tmp_path.iterdir()) == []


def test_a_trickling_mirror_is_stopped_by_the_total_time_cap(tmp_path, big_server):
    big_server.body, big_server.chunk, big_server.pause = b"t" * 200, 1, 0.02  # 4 s in all
    began = time.monotonic()
    with pytest.raises(data.DataError, match=r"not done after 0.5 s"):
        data.download_file([big_server.url], tmp_path / "f.gz", "0" * 32, seconds=0.5)
    assert time.monotonic() - began < 3.5 and list(tmp_path.iterdir()) == []


def test_the_official_download_sizes_bound_every_standard_file():
    for name, sizes in data.DOWNLOAD_SIZES.items():
        assert set(sizes) == set(data.STANDARD_COUNTS), name
        for stem, size in sizes.items():  # a .gz of an IDX file is smaller than the file
            items = data.STANDARD_COUNTS[stem]
            assert size < (16 + 784 * items if "images" in stem else 8 + items)


# ---- the standard files' checksums -----------------------------------------------------------


@pytest.fixture
def standard(monkeypatch, tmp_path):
    """A made-up 'standard' training file of 3 images, with its content's checksum."""
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    pixels = np.random.default_rng(5).integers(0, 256, (3, 28, 28), np.uint8)
    raw = b"".join(v.to_bytes(4, "big") for v in (0x803, 3, 28, 28)) + pixels.tobytes()
    monkeypatch.setitem(data.STANDARD_COUNTS, data.IDX_TRAIN_IMAGES, 3)
    known = {data.IDX_TRAIN_IMAGES: {"content": hashlib.sha256(raw).hexdigest()}}
    monkeypatch.setitem(data.STANDARD_SHA256, "mnist", known)
    return raw, pixels


@pytest.mark.parametrize("zipped", [False, True], ids=["raw", "gz"])
def test_a_standard_file_is_verified_once_and_then_remembered(
    tmp_path, standard, monkeypatch, zipped
):
    raw, pixels = standard
    path = tmp_path / "d" / ("train-images-idx3-ubyte" + (".gz" if zipped else ""))
    path.parent.mkdir()
    path.write_bytes(gzip.compress(raw) if zipped else raw)
    np.testing.assert_array_equal(data.load("mnist", path.parent)[:, 0], pixels)
    stamps = json.loads((tmp_path / "cache" / "verified.json").read_text())
    assert stamps[str(path.resolve())]["size"] == path.stat().st_size

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed again")

    monkeypatch.setattr(data, "_sha256", no_hashing)
    data.load("mnist", path.parent)  # remembered: not read twice


@pytest.mark.parametrize("zipped", [False, True], ids=["raw", "gz"])
def test_a_standard_file_with_one_byte_changed_is_refused(tmp_path, standard, zipped):
    raw, _ = standard
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if zipped else ""))
    flipped = raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]
    path.write_bytes(gzip.compress(flipped) if zipped else flipped)
    with pytest.raises(data.DataError) as raised:
        data.load("mnist", tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{path}: checksum mismatch") and "\n" not in message
    assert hashlib.sha256(flipped).hexdigest() in message
    assert hashlib.sha256(raw).hexdigest() in message
    assert not (tmp_path / "cache" / "verified.json").exists()


def test_a_file_changed_after_it_was_verified_is_checked_again(tmp_path, standard):
    raw, _ = standard
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw)
    data.load("mnist", tmp_path)
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))  # same size, a new mtime
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.load("mnist", tmp_path)


def test_a_dataset_of_your_own_is_not_checked(tmp_path, standard):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    assert data.load("mnist", tmp_path).shape == (5, 1, 28, 28)


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debians_fashion_mnist_matches_the_recorded_checksums(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    data.load_labeled("fashion-mnist", "test", download=False)
    stamps = json.loads((tmp_path / "cache" / "verified.json").read_text())
    assert sorted(Path(p).name for p in stamps) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # fmt: skip


# ---- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny run (2 steps) to sample, score, export and resume from."""
    folder = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    write_idx(folder / "tiny" / "train-images-idx3-ubyte.gz",
              rng.integers(0, 256, (40, 28, 28), np.uint8))  # fmt: skip
    argv = ["--dataset", "mnist", "--data-dir", str(folder / "tiny"), *TINY]
    assert train.main([*argv, "--max-steps", "2", "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_on_a_gpu_backend_the_gpu_memory_is_what_is_checked():
    """A GPU backend's xp (CuPy) says what its device has free; a CPU backend has none."""
    from types import SimpleNamespace

    pool = SimpleNamespace(free_bytes=lambda: 10**9)
    runtime = SimpleNamespace(memGetInfo=lambda: (3 * 10**9, 80 * 10**9))
    gpu = SimpleNamespace(xp=SimpleNamespace(cuda=SimpleNamespace(runtime=runtime),
                                             get_default_memory_pool=lambda: pool))  # fmt: skip
    assert resources.device_memory(gpu) == 4 * 10**9
    assert resources.device_memory(SimpleNamespace(xp=np)) is None
    with pytest.raises(resources.NotEnoughMemory, match="5.0 GB of memory; the GPU has 4.0 GB"):
        resources.check_memory(5 * 10**9, "training", gpu)
    resources.check_memory(10**6, "training", SimpleNamespace(xp=np))  # the host: 1 MB fits
