"""Choosing a backend, and what every backend must offer."""

import subprocess
import sys

import numpy as np
import pytest

import minigan
from minigan import backend, nn


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown backend 'tpu'.*available backends: .*numpy"):
        backend.use("tpu")


def test_use_and_current():
    with backend.using("numpy") as bk:
        assert backend.current() is bk
        assert bk.name == "numpy" and bk.xp is np


def test_environment_variable_picks_the_backend():
    code = "from minigan import backend; print(backend.current().name)"
    env = {"MINIGAN_BACKEND": "numpy", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy", out.stderr
    env["MINIGAN_BACKEND"] = "nope"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "unknown backend 'nope'" in out.stderr


def test_transfers_round_trip(backend_name):
    bk = backend.current()
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = bk.to_numpy(bk.from_numpy(a))
    assert isinstance(b, np.ndarray) and b.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_random_stream_is_reproducible_and_restorable(backend_name):
    bk = backend.current()
    bk.seed(7)
    first = bk.to_numpy(bk.randn((3, 2), dtype=np.float32))
    state = bk.get_rng_state()
    second = bk.to_numpy(bk.rand((4,), dtype=np.float64))
    bk.set_rng_state(state)
    np.testing.assert_array_equal(second, bk.to_numpy(bk.rand((4,), dtype=np.float64)))
    bk.seed(7)
    np.testing.assert_array_equal(first, bk.to_numpy(bk.randn((3, 2), dtype=np.float32)))
    assert first.dtype == np.float32 and second.dtype == np.float64


def test_manual_seed_makes_initialisation_reproducible(backend_name):
    minigan.manual_seed(3)
    a = nn.Conv2d(2, 3, 3).state_dict()
    minigan.manual_seed(3)
    b = nn.Conv2d(2, 3, 3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_layers_do_not_import_accelerator_libraries():
    """Backend knowledge stays in the backend module."""
    import pathlib

    package = pathlib.Path(minigan.__file__).parent
    for path in package.glob("*.py"):
        if path.name.startswith("backend"):
            continue
        text = path.read_text()
        assert "import cupy" not in text and "import numba" not in text, path.name


def test_gradcheck_command_passes(capsys, backend_name):
    from minigan import gradcheck

    assert gradcheck.main(["--backend", backend_name]) == 0
    out = capsys.readouterr().out
    assert "16 of 16 passed" in out and "FAIL" not in out
