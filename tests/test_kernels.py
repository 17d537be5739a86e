"""Every fast backend's kernels against their NumPy reference twins.

The inputs are made on the host, moved to the backend under test (``on``), and its
results brought back (``_same``), so one body serves the CPU and the GPU backends.
"""

import numpy as np
import pytest
from conftest import backend_params
from hypothesis import given
from hypothesis import strategies as st

from minigan import backend
from minigan.backend_numpy import NumpyBackend

FAST = backend_params([name for name in backend.names() if name != "numpy"])
REFERENCE = NumpyBackend()
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture(params=FAST)
def fast(request):
    with backend.using(request.param) as bk:
        yield bk


def _random(data, shape, dtype):
    seed = data.draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def on(bk, *arrays):
    """Host arrays as arrays of backend ``bk`` (one array: not a tuple)."""
    moved = tuple(bk.from_numpy(a) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def _same(ours, reference, dtype, tol=None):
    ours, reference = backend.current().to_numpy(ours), np.asarray(reference)
    assert ours.shape == reference.shape and ours.dtype == reference.dtype == dtype
    np.testing.assert_allclose(ours, reference, **(tol or TOL[dtype]))


@st.composite
def conv_geometry(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (
        (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
    )
    h = draw(st.integers(max(1, kh - sum(pad[0])), 9))
    w = draw(st.integers(max(1, kw - sum(pad[1])), 9))
    return (n, c, h, w), (kh, kw), stride, pad


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_im2col_and_col2im(fast, dtype, data):
    shape, kernel, stride, pad = data.draw(conv_geometry())
    x = _random(data, shape, dtype)
    cols = REFERENCE.im2col(x, kernel, stride, pad)
    _same(fast.im2col(on(fast, x), kernel, stride, pad), cols, dtype)
    x_transposed = on(fast, x.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)
    _same(fast.im2col(x_transposed, kernel, stride, pad), cols, dtype)  # not contiguous
    other = _random(data, cols.shape, dtype)
    _same(
        fast.col2im(on(fast, other), shape, kernel, stride, pad),
        REFERENCE.col2im(other, shape, kernel, stride, pad),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [13, 14, 32])
def test_im2col_and_col2im_on_wide_images(fast, dtype, width):
    """Images 14 or more pixels wide (``PLANE_COPY_WIDTH``) take the Numba backend's
    plane-by-plane copies to channels-last and back (NumPy's strided copy misses the
    cache there), narrower ones NumPy's: the same columns, from contiguous and
    transposed images alike, and the same col2im, on both sides of the switch."""
    rng = np.random.default_rng(width)
    geometries = [((2, 5, 3, width), (4, 4), (2, 2), ((1, 1), (1, 1))),
                  ((1, 3, 2, width), (2, 3), (1, 2), ((0, 1), (2, 0)))]  # fmt: skip
    for shape, kernel, stride, pad in geometries:
        x = rng.standard_normal(shape).astype(dtype)
        cols = REFERENCE.im2col(x, kernel, stride, pad)
        _same(fast.im2col(on(fast, x), kernel, stride, pad), cols, dtype)
        x_view = on(fast, x[:, :, ::-1].copy())[:, :, ::-1]  # not contiguous
        _same(fast.im2col(x_view, kernel, stride, pad), cols, dtype)
        other = rng.standard_normal(cols.shape).astype(dtype)
        _same(
            fast.col2im(on(fast, other), shape, kernel, stride, pad),
            REFERENCE.col2im(other, shape, kernel, stride, pad),
            dtype,
        )


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_batchnorm(fast, dtype, data):
    shape = data.draw(st.sampled_from([(4, 3), (2, 3, 5), (2, 3, 4, 4), (1, 2, 3, 1)]))
    x = _random(data, shape, dtype) * data.draw(st.sampled_from([0.01, 1.0, 100.0])) + 3
    gamma, beta = _random(data, shape[1], dtype), _random(data, shape[1], dtype)
    ours, reference = (
        fast.batchnorm_forward(*on(fast, x, gamma, beta), 1e-5),
        REFERENCE.batchnorm_forward(x, gamma, beta, 1e-5),
    )
    # In float32, x = 3 + 0.01 z keeps only ~3 digits of z: the kernels may sum in
    # different precisions (Numba's sums are float64) and differ in the 4th digit.
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == np.float32 else None
    for a, b in zip(ours, reference):
        _same(a, b, dtype, tol)
    g = _random(data, shape, dtype)
    _, _, _, x_hat, inv_std = reference
    for a, b in zip(fast.batchnorm_backward(*on(fast, g, x_hat, gamma, inv_std)),
                    REFERENCE.batchnorm_backward(g, x_hat, gamma, inv_std)):  # fmt: skip
        _same(a, b, dtype, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.0, 0.2, 1.5])
def test_leaky_relu(fast, dtype, slope):
    x = np.array([[-np.inf, -2.0, -0.0, 0.0, 1e-30, 3.0, np.inf]], dtype=dtype)
    _same(fast.leaky_relu(on(fast, x), slope), REFERENCE.leaky_relu(x, slope), dtype)
    g = np.arange(7, dtype=dtype).reshape(1, 7)
    _same(
        fast.leaky_relu_backward(*on(fast, g, x), slope),
        REFERENCE.leaky_relu_backward(g, x, slope),
        dtype,
    )
    xt = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    _same(fast.leaky_relu(on(fast, xt).T, slope), REFERENCE.leaky_relu(xt.T, slope), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update(fast, dtype):
    rng = np.random.default_rng(1)
    states = [[abs(rng.standard_normal((3, 5))).astype(dtype) for _ in range(3)] for _ in range(2)]
    states[0] = [fast.from_numpy(a.copy()) for a in states[1]]
    for step in range(1, 4):
        grad = rng.standard_normal((3, 5)).astype(dtype)
        for bk, (p, m, v) in zip((fast, REFERENCE), states):
            bk.adam_update(p, bk.from_numpy(grad), m, v, lr=1e-2, beta1=0.5, beta2=0.999,
                           eps=1e-8, step=step)  # fmt: skip
    for a, b in zip(*states):
        _same(a, b, dtype)


# ---- the GPU kernels' index arithmetic, checked on the CPU -----------------------------------
# backend_cupy.py writes the gather kernels' index arithmetic out twice: in CUDA, and
# line for line in Python (the "twins"). The twins run here, without a GPU, against
# the NumPy reference; on a GPU the kernels themselves meet the same reference above.


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_gpu_gather_kernels_python_twins(dtype, data):
    twins = pytest.importorskip("minigan.backend_cupy", reason="cupy is not installed")
    shape, kernel, stride, pad = data.draw(conv_geometry())
    x = _random(data, shape, dtype)
    cols = REFERENCE.im2col(x, kernel, stride, pad)
    _same(twins.im2col_twin(x, kernel, stride, pad), cols, dtype)
    other = _random(data, cols.shape, dtype)
    _same(
        twins.col2im_twin(other, shape, kernel, stride, pad),
        REFERENCE.col2im(other, shape, kernel, stride, pad),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_the_loss(fast, dtype):
    z = np.array([[-1000.0, -30.0, -1.5, -0.0, 0.0, 0.7, 30.0, 1000.0]], dtype=dtype).T
    targets = np.linspace(0, 1, z.size, dtype=dtype).reshape(z.shape)
    _same(fast.sigmoid(on(fast, z)), REFERENCE.sigmoid(z), dtype)
    for reduction in ("mean", "sum"):
        for t in (0.9, targets):
            t_fast = on(fast, t) if isinstance(t, np.ndarray) else t
            loss = fast.bce_with_logits(on(fast, z), t_fast, reduction)
            _same(loss, np.asarray(REFERENCE.bce_with_logits(z, t, reduction), dtype=dtype), dtype)
            _same(
                fast.bce_with_logits_backward(on(fast, z), t_fast, reduction, 0.5),
                REFERENCE.bce_with_logits_backward(z, t, reduction, 0.5),
                dtype,
            )


@pytest.mark.parametrize("dtype", DTYPES)
def test_running_statistics(fast, dtype):
    rng = np.random.default_rng(2)
    running = [rng.standard_normal(5).astype(dtype), abs(rng.standard_normal(5)).astype(dtype)]
    batch = [rng.standard_normal(5).astype(dtype), abs(rng.standard_normal(5)).astype(dtype)]
    ours = [fast.from_numpy(a.copy()) for a in running]
    fast.update_running_stats(*ours, *on(fast, *batch), momentum=0.1, count=7)
    REFERENCE.update_running_stats(*running, *batch, momentum=0.1, count=7)
    for a, b in zip(ours, running):
        _same(a, b, dtype)
