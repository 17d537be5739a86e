"""A run loses at most minutes: stop signals save, time-based checkpoints resume exactly
mid-epoch, and a run that explodes while staying finite is called out in one line.
The signal tests send real signals to a real `python -m minigan.train` child process."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from files import write_idx

from minigan import checkpoint, train

TINY = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--backend", "numpy"]


@pytest.fixture
def digits(tmp_path):
    """40 random 28x28 images as an IDX dataset: --batch-size 4 gives 10 steps an epoch."""
    folder = tmp_path / "tiny"
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28), np.uint8))
    return ["--dataset", "mnist", "--data-dir", str(folder), "--batch-size", "4", *TINY]


def _start(argv, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "minigan.train", *argv], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_steps(process, metrics, steps, timeout=120):
    """Wait until the child has logged ``steps`` steps (rows of metrics.csv)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) > steps:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended early:\n{process.communicate()[1]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no {steps} steps within {timeout} s")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_signal_saves_and_says_how_to_resume(sig, digits, tmp_path):
    """kill, a closed terminal, Ctrl-C: finish the step, save, exit 128 + the signal."""
    if not hasattr(signal, sig):
        pytest.skip(f"no {sig} on this platform")
    number = getattr(signal, sig)
    out = tmp_path / "run"
    child = _start([*digits, "--epochs", "1000", "--out", str(out)], tmp_path)
    _wait_for_steps(child, out / "metrics.csv", 3)
    child.send_signal(number)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 128 + number, stderr
    assert f"stopped by {sig}" in stdout and "--resume" in stdout and "Traceback" not in stderr
    _, meta = checkpoint.load(out / "checkpoints" / "last.npz")
    steps = len((out / "metrics.csv").read_text().splitlines()) - 1
    assert meta["step"] == steps >= 3  # every step that was logged is in the checkpoint
    assert (out / "samples" / "final.png").is_file()


def test_kill_9_loses_at_most_the_time_since_the_last_timed_checkpoint(digits, tmp_path):
    """With a checkpoint every step (--checkpoint-minutes tiny), SIGKILL mid-epoch
    loses at most one step, and resuming ends exactly where a straight run ends."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert train.main([*digits, "--max-steps", "14", "--out", str(straight)]) == 0
    child = _start([*digits, "--epochs", "1000", "--out", str(killed),
                    "--checkpoint-minutes", "1e-9"], tmp_path)  # fmt: skip
    _wait_for_steps(child, killed / "metrics.csv", 5)  # so step 4's save has finished
    child.kill()  # SIGKILL: no handler runs
    child.communicate(timeout=60)
    last = killed / "checkpoints" / "last.npz"
    _, meta = checkpoint.load(last)  # whole: written atomically
    logged = len((killed / "metrics.csv").read_text().splitlines()) - 1
    assert 4 <= meta["step"] and logged - meta["step"] <= 1
    if meta["step"] >= 14:
        pytest.skip("the child outran the kill; nothing mid-run to resume")
    assert train.main(["--resume", str(last), "--max-steps", "14"]) == 0
    a, meta_a = checkpoint.load(straight / "checkpoints" / "last.npz")
    b, meta_b = checkpoint.load(last)
    assert meta_a["step"] == meta_b["step"] == 14 and meta_a["rng_state"] == meta_b["rng_state"]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_timed_checkpoints_land_mid_epoch(digits, tmp_path, monkeypatch):
    saved = []
    real_save = train.Run.save_checkpoint

    def spy(self, path):
        saved.append(self.step)
        return real_save(self, path)

    monkeypatch.setattr(train.Run, "save_checkpoint", spy)
    out = tmp_path / "run"
    argv = [*digits, "--max-steps", "12", "--out", str(out), "--checkpoint-minutes", "1e-9"]
    assert train.main(argv) == 0
    assert [s for s in saved if s % 10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 12]
    saved.clear()
    argv = [*digits, "--max-steps", "12", "--out", str(tmp_path / "b"), "--checkpoint-minutes", "0"]
    assert train.main(argv) == 0
    assert saved == [10, 12]  # only the epoch end and the final one


def test_an_exploded_run_is_called_out_once_and_goes_on(digits, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([*digits, "--max-steps", "8", "--lr", "1e9", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "exploded or collapsed" in warnings[0], err
    assert "--lr 2e-4" in warnings[0]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # it kept training


def test_stop_on_collapse_saves_and_exits_1(digits, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*digits, "--max-steps", "8", "--lr", "1e9", "--out", str(out), "--stop-on-collapse"]
    assert train.main(argv) == 1
    captured = capsys.readouterr()
    assert "error: stopped (--stop-on-collapse)" in captured.err
    _, meta = checkpoint.load(out / "checkpoints" / "last.npz")
    assert meta["step"] < 8 and "collapsed at step" in captured.out


def test_collapse_watch_needs_a_long_pinned_stretch():
    watch = train.CollapseWatch()
    healthy = dict(loss_d=1.2, loss_g=0.9, d_real=0.6, d_fake=0.4)
    pinned = dict(loss_d=0.001, loss_g=9.0, d_real=1.0, d_fake=1e-5)
    steps = [healthy] * 5 + [pinned] * (train.PINNED_STEPS - 1) + [healthy] + [pinned] * 3
    assert not any(watch.update(i + 1, m) for i, m in enumerate(steps))  # broken stretch
    fired = [watch.update(len(steps) + 1 + i, pinned) for i in range(train.PINNED_STEPS + 10)]
    assert fired.count(True) == 1 and fired.index(True) == train.PINNED_STEPS - 4  # 3 before
    assert "D(G(z))=0.000" in watch.message
