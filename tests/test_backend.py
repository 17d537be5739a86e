"""Choosing a backend, and what every backend must offer."""

import os
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
    assert "17 of 17 passed" in out and "FAIL" not in out


def _conv_results(dtype=np.float64):
    """Forward and all gradients, on a batch of 5, of each path a convolution can take:
    im2col (a conv and a conv-transpose), a kernel that covers the image (a conv with
    one filter, whose input gradient is an outer product, and a conv-transpose from a
    1x1 input), and few filters (kn2row: 2 filters x 2x2 taps <= 9 channels)."""
    from minigan import functional as F

    bk, rng = backend.current(), np.random.default_rng(1)
    x, x_small = rng.standard_normal((5, 3, 9, 8)), rng.standard_normal((5, 4, 3, 4))
    w_conv, w_trans = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal((4, 2, 4, 3))
    x_1x1, x_wide = rng.standard_normal((5, 4, 1, 1)), rng.standard_normal((5, 9, 7, 6))
    conv = (F.conv2d_forward, F.conv2d_backward)
    transposed = (F.conv_transpose2d_forward, F.conv_transpose2d_backward)
    results = []
    for (forward, backward), args in [
        (conv, (x, w_conv, rng.standard_normal(4), 2, 1)),
        (transposed, (x_small, w_trans, rng.standard_normal(2), (2, 1), (1, 0), (1, 0))),
        (conv, (x, rng.standard_normal((1, 3, 9, 8)), rng.standard_normal(1), 1, 0)),
        (transposed, (x_1x1, w_trans, rng.standard_normal(2), 2, 0, 0)),
        (conv, (x_wide, rng.standard_normal((2, 9, 2, 2)), rng.standard_normal(2), 2, 1)),
    ]:  # fmt: skip
        args = [bk.from_numpy(a.astype(dtype)) if isinstance(a, np.ndarray) else a for a in args]
        out, cache = forward(*args)
        grads = backward(bk.from_numpy(rng.standard_normal(out.shape).astype(dtype)), cache)
        results += [bk.to_numpy(a) for a in (out, *grads)]
    return results


@pytest.mark.parametrize("threads, min_columns", [(2, 1), (3, 1), (2, 40), (4, 10**6)])
def test_any_thread_count_and_slice_size_give_the_same_convolutions(
    backend_name, threads, min_columns, monkeypatch
):
    """for_each_batch hands each thread its own samples (one per slice with
    min_columns=1, several with 40, all in one with 10**6); only the order in which
    the weight gradients are summed may differ from one thread and one slice."""
    bk = backend.current()
    if not isinstance(bk, backend.CpuThreads):
        pytest.skip(f"{backend_name} runs each convolution over the whole batch at once")
    monkeypatch.setattr(bk, "MIN_COLUMNS", 10**6)
    bk.set_threads(1)
    try:
        expected = _conv_results()
        monkeypatch.setattr(bk, "MIN_COLUMNS", min_columns)
        monkeypatch.setattr(bk, "MIN_VALUES", 1)  # slices by columns alone
        bk.set_threads(threads)
        for got, want in zip(_conv_results(), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    finally:
        bk.set_threads(None)


def test_for_each_batch_covers_the_batch_once_and_sums_what_work_returns():
    bk = backend.use("numpy")
    seen = []

    def work(batch):
        seen.extend(range(batch.start, batch.stop))
        return np.full(2, batch.stop - batch.start), None

    try:
        bk.set_threads(3)
        total, nothing = bk.for_each_batch(work, 10, columns_per_sample=100)
    finally:
        bk.set_threads(None)
    assert sorted(seen) == list(range(10)) and nothing is None
    np.testing.assert_array_equal(total, [10, 10])
    assert bk.for_each_batch(lambda batch: None, 4, 1) is None


def test_slices_hold_enough_columns_and_enough_values():
    """A slice holds at least MIN_COLUMNS matrix-product columns and MIN_VALUES im2col
    values: a layer with short columns (one input channel) gets fewer, larger slices."""
    bk = backend.use("numpy")
    sizes = []

    def work(batch):
        sizes.append(batch.stop - batch.start)

    try:
        bk.set_threads(1)
        bk.for_each_batch(work, 128, columns_per_sample=49, values_per_column=1024)
        assert sizes[0] == max(-(-bk.MIN_COLUMNS // 49), -(-bk.MIN_VALUES // (49 * 1024)))
        sizes.clear()
        bk.for_each_batch(work, 128, columns_per_sample=196, values_per_column=16)
        assert sizes[0] == min(128, -(-bk.MIN_VALUES // (196 * 16))) > -(-bk.MIN_COLUMNS // 196)
        sizes.clear()
        bk.set_threads(2)
        bk.for_each_batch(work, 128, columns_per_sample=196, values_per_column=16)
        assert sorted(sizes) == [64, 64]  # never fewer slices than threads
    finally:
        bk.set_threads(None)


def test_thread_count_comes_from_the_environment_and_is_checked(monkeypatch):
    monkeypatch.setenv("MINIGAN_NUM_THREADS", "3")
    assert backend.NumpyBackend().threads == 3
    monkeypatch.delenv("MINIGAN_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert backend.NumpyBackend().threads == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a whole number, got 'many'"):
        backend.NumpyBackend()
    with pytest.raises(ValueError, match="threads must be at least 1"):
        backend.use("numpy").set_threads(0)


@pytest.mark.skipif("numba" not in backend.available(), reason="numba is not installed")
def test_numba_backend_uses_the_workqueue_layer_even_when_numba_was_imported_first():
    """Numba reads NUMBA_THREADING_LAYER when it is imported; a user who imported
    numba before minigan must still get the sleeping workqueue threads (OpenMP's
    spinning made the DCGAN step 40% slower here)."""
    code = (
        "import numba, numpy as np; from minigan import backend; "
        "bk = backend.use('numba'); bk.leaky_relu(np.ones(4, np.float32), 0.2); "
        "print(numba.threading_layer())"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "workqueue", out.stderr


# ---- the registry, and backends that cannot run here ------------------------------------------


def test_the_registry_is_one_table():
    assert backend.names() == list(backend.BACKENDS) and "cupy" in backend.names()
    assert set(backend.available()) <= set(backend.names()) and "numpy" in backend.available()
    assert backend.auto() in backend.available()
    for name in backend.names():
        assert (backend.unusable_reason(name) is None) == (name in backend.available())


def test_a_missing_package_is_one_line_saying_how_to_install(monkeypatch):
    missing = backend.BACKENDS["cupy"]._replace(package="no_such_package_minigan")
    monkeypatch.setitem(backend.BACKENDS, "cupy", missing)
    monkeypatch.delitem(backend._classes, "cupy", raising=False)
    monkeypatch.delitem(backend._instances, "cupy", raising=False)
    reason = backend.unusable_reason("cupy")
    assert "not installed" in reason and "pip install" in reason and "\n" not in reason
    with pytest.raises(backend.BackendUnavailable, match="not installed"):
        backend.use("cupy")
    assert "cupy" not in backend.available() and backend.auto() != "cupy"


@pytest.mark.skipif(backend.unusable_reason("cupy") is None, reason="a CUDA GPU works here")
@pytest.mark.parametrize("command", ["minigan.train", "minigan.sample", "minigan.gradcheck"])
def test_cupy_without_a_gpu_exits_2_with_one_line(command, tmp_path):
    argv = [sys.executable, "-m", command, "--backend", "cupy"]
    if command == "minigan.sample":
        argv += ["--checkpoint", "x.npz", "--out", "x.png"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    err = out.stderr.strip()
    assert out.returncode == 2 and err.startswith("error: backend 'cupy'"), err
    assert "\n" not in err and ("GPU" in err or "not installed" in err), err
    assert not (tmp_path / "runs").exists()


def test_gpu_backend_uses_only_names_the_installed_cupy_has():
    """Every cupy.* / cupyx.* attribute chain in backend_cupy.py resolves in the
    installed CuPy, found by reading the module's source (not a hand-kept list)."""
    import ast
    import importlib
    import pathlib

    cupy = pytest.importorskip("cupy", reason="cupy is not installed")
    source = (pathlib.Path(minigan.__file__).parent / "backend_cupy.py").read_text()
    chains = set()
    for node in ast.walk(ast.parse(source)):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in ("cupy", "cupyx") and parts:
            chains.add((node.id, *reversed(parts)))
    assert len(chains) >= 8, chains  # the module does use cupy
    roots = {"cupy": cupy}
    for chain in sorted(chains):
        if chain[0] not in roots:
            roots[chain[0]] = importlib.import_module(chain[0])
        obj = roots[chain[0]]
        for i, attr in enumerate(chain[1:], 1):
            if not hasattr(obj, attr):  # a submodule not imported yet
                obj = importlib.import_module(".".join(chain[: i + 1]))
            else:
                obj = getattr(obj, attr)
    importlib.import_module("minigan.backend_cupy")  # and it imports without a GPU


class _ForeignArray:
    """Looks like an array of some other library (say, a torch tensor)."""

    shape, ndim, dtype = (2, 1, 4, 4), 4, np.dtype(np.float32)


def test_an_array_of_the_wrong_backend_is_refused_naming_the_layer(backend_name):
    bk = backend.current()
    conv, relu, loss = nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BCEWithLogitsLoss()
    host = np.zeros((2, 1, 4, 4), dtype=np.float32)
    wrong, fix = (_ForeignArray(), "to_numpy") if bk.xp is np else (host, "from_numpy")
    for layer in (conv, relu, nn.Sequential(conv)):
        with pytest.raises(TypeError, match=rf"^{type(layer).__name__}\b[^\n]*backend; .*{fix}"):
            layer(wrong)
    with pytest.raises(TypeError, match=rf"BCEWithLogitsLoss.*{fix}"):
        loss(wrong, 1.0)
    assert conv(bk.from_numpy(host)).shape == (2, 2, 2, 2)  # once moved, it runs


@pytest.mark.gpu
@pytest.mark.skipif(backend.unusable_reason("cupy") is not None, reason="no CUDA GPU here")
def test_parameters_on_the_gpu_refuse_a_host_input_even_on_another_current_backend():
    with backend.using("cupy"):
        conv = nn.Conv2d(1, 2, 3)
    with backend.using("numpy"), pytest.raises(TypeError, match="Conv2d.*'cupy' backend"):
        conv(np.zeros((2, 1, 4, 4), dtype=np.float32))


def test_same_seed_same_weights_and_noise_on_every_backend(backend_name):
    """Random numbers come from one host generator: a run can move between backends."""
    bk = backend.current()
    with backend.using("numpy", seed=11):
        weights = nn.Conv2d(2, 3, 3).state_dict()
        noise = backend.current().randn((4, 5))
    bk.seed(11)
    ours = nn.Conv2d(2, 3, 3).state_dict()
    for key in weights:
        np.testing.assert_array_equal(ours[key], weights[key])
    np.testing.assert_array_equal(bk.to_numpy(bk.randn((4, 5))), noise)


SPLIT_CASES = {  # id: (x's shape, the view of it the layer gets, MIN_VALUES, split or not)
    "uneven slices": ((3, 7, 5, 3), None, 50, True),
    "a transposed view": ((3, 7, 3, 5), lambda x: x.transpose(0, 1, 3, 2), 50, True),
    "a sliced view": ((3, 9, 5, 3), lambda x: x[:, 1:8, :, ::2], 20, True),
    "2 * MIN_VALUES values": ((3, 5, 14), None, 105, True),
    "2 * MIN_VALUES - 1 values": ((1, 11, 19), None, 105, False),
}


@pytest.fixture
def numpy_on_three_threads(monkeypatch):
    """The NumPy backend on three threads, with no floor on matrix-product columns (the
    test sets MIN_VALUES); its thread count is put back afterwards."""
    with backend.using("numpy") as bk:
        monkeypatch.setattr(bk, "MIN_COLUMNS", 1)
        bk.set_threads(3)
        try:
            yield bk
        finally:
            bk.set_threads(None)


@pytest.mark.parametrize(
    "dtype, gamma_dtype",
    [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64)],
    ids=["float64", "float32", "float32 x, float64 gamma"],
)
@pytest.mark.parametrize("case", SPLIT_CASES)
def test_batch_norm_and_leaky_relu_split_over_threads_are_the_reference_formulas(
    numpy_on_three_threads, case, dtype, gamma_dtype, monkeypatch
):
    """On several threads the NumPy backend runs Backend's own batch norm (by channels)
    and LeakyReLU (by values) on slices of an array of at least 2 * MIN_VALUES values:
    the same numbers, and the same dtypes, as Backend in one piece, however the slices
    fall and whether or not x is contiguous (sums over a slice may round differently)."""
    shape, view, min_values, split = SPLIT_CASES[case]
    bk, reference = numpy_on_three_threads, backend.Backend()
    monkeypatch.setattr(bk, "MIN_VALUES", min_values)
    rng = np.random.default_rng(0)
    x, grad = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    if view is not None:
        x, grad = view(x), view(grad)
        assert not x.flags.c_contiguous
    assert bk._one_piece(x) == (not split), f"{x.size} values, MIN_VALUES {min_values}"
    gamma, beta = (rng.standard_normal(x.shape[1]).astype(gamma_dtype) for _ in range(2))
    sums = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    exactly = dict(rtol=0, atol=0)  # LeakyReLU sums nothing

    def same(names, ours, theirs, tolerance):
        for name, a, b in zip(names.split(), ours, theirs, strict=True):
            assert a.dtype == b.dtype, f"{name}: {a.dtype}, in one piece {b.dtype}"
            np.testing.assert_allclose(a, b, **tolerance, err_msg=name)

    theirs = reference.batchnorm_forward(x, gamma, beta, 1e-5)
    same("out mean var x_hat inv_std", bk.batchnorm_forward(x, gamma, beta, 1e-5), theirs, sums)
    _, _, _, x_hat, inv_std = theirs
    same(
        "dx dgamma dbeta",
        bk.batchnorm_backward(grad, x_hat, gamma, inv_std),
        reference.batchnorm_backward(grad, x_hat, gamma, inv_std),
        sums,
    )
    for slope in (0.0, 0.2):
        same("leaky_relu", [bk.leaky_relu(x, slope)], [reference.leaky_relu(x, slope)], exactly)
        same(
            "leaky_relu_backward",
            [bk.leaky_relu_backward(grad, x, slope)],
            [reference.leaky_relu_backward(grad, x, slope)],
            exactly,
        )
