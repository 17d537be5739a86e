"""The Numba backend: the NumPy backend with its hot kernels compiled for the CPU.

Matrix products stay in BLAS (NumPy's ``@``), and im2col stays NumPy's strided copy
(measured faster than a compiled loop), except for its first step on images 14 or
more pixels wide: the copy to channels-last, one channel's plane at a time
(``_to_channels_last``). What is compiled here: col2im (a channels-last scatter whose
inner loop runs over the channels, padding handled inline, then copied back to NCHW
plane by plane on the same images), batch norm forward and backward (one pass over
each channel's values instead of NumPy's several temporaries), LeakyReLU and the Adam
update (fused element-wise loops).
Each kernel has a twin in ``NumpyBackend`` that the tests compare it with.

Threads. Two kinds of work, two ways of using the cores:

- Convolutions go through ``for_each_batch`` (in ``NumpyBackend``): Python threads,
  each on its own samples, with BLAS held to one thread. So ``_col2im`` is serial
  and releases the GIL (``nogil``); it must not be ``parallel``, because the
  workqueue layer refuses parallel kernels launched from two threads at once.
- Batch norm, LeakyReLU and Adam run on the main thread as ``parallel`` kernels.
  Their threading layer is ``workqueue`` unless the user set
  ``NUMBA_THREADING_LAYER``: its workers sleep when idle, where OpenMP's spin and
  take cores from BLAS (benchmarks/RESULTS.md has the measurement). The thread
  count is Numba's default, every core the process may use (``NUMBA_NUM_THREADS``).

Compiled kernels are cached on disk (``cache=True``), so only the first run on a
machine pays the compile time (``warm_up`` reports it).
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

# Set in numba.config, not the environment: numba reads its environment when it is
# first imported, which may have happened before this module (the user's own code).
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from .backend_numpy import NumpyBackend, conv_arguments

# ---- convolution ------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _valid(size, k, stride, pad, out_size):
    """The output positions i whose input row i*stride + k - pad lies inside [0, size)."""
    lo = max(0, (pad - k + stride - 1) // stride)
    hi = min(out_size, (size - 1 + pad - k) // stride + 1)
    return lo, max(lo, hi)


@njit(nogil=True, cache=True)
def _col2im(patches, sh, sw, top, left, x):
    """x[n, i*sh + u - top, j*sw + v - left, c] += patches[n, i, j, u, v, c].

    x is channels-last, (N, H, W, C), like the patches, so the innermost loop runs
    over C consecutive numbers on both sides (SIMD). Serial and without the GIL (one
    call per thread, see the module docstring). The output positions that land
    inside the image are worked out before the loops (``_valid``): no bounds tests."""
    n, ho, wo, kh, kw, c = patches.shape
    h, w = x.shape[1], x.shape[2]
    for ni in range(n):
        for u in range(kh):
            i_lo, i_hi = _valid(h, u, sh, top, ho)
            for i in range(i_lo, i_hi):
                row = i * sh + u - top
                for v in range(kw):
                    j_lo, j_hi = _valid(w, v, sw, left, wo)
                    for j in range(j_lo, j_hi):
                        col = j * sw + v - left
                        for k in range(c):
                            x[ni, row, col, k] += patches[ni, i, j, u, v, k]


@njit(nogil=True, cache=True)
def _to_channels_last(x, top, left, out):
    """out[n, i + top, j + left, c] = x[n, c, i, j], one channel's plane at a time.

    The reads run through x in memory order, one stream the prefetcher follows; the
    writes land C numbers apart in ``out``, one sample of which stays in cache. NumPy's
    strided copy (``NumpyBackend._pad_channels_last``) reads one value from each
    channel in turn, C streams H*W numbers apart (4 KB at 32x32 in float32, where
    addresses share a cache set). Measured from memory: NumPy's copy 2.5x slower at
    32x32 and 1.1-1.2x at 14x14 and 16x16, a row-by-row copy 2x and 1.3-1.8x."""
    n, c, h, w = x.shape
    for ni in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    out[ni, i + top, j + left, k] = x[ni, k, i, j]


@njit(nogil=True, cache=True)
def _to_channels_first(x, out):
    """out[n, c, i, j] = x[n, i, j, c], one channel's plane at a time (the copy back to
    NCHW after col2im): the writes run through ``out`` in memory order."""
    n, h, w, c = x.shape
    for ni in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    out[ni, k, i, j] = x[ni, i, j, k]


# ---- batch normalisation ------------------------------------------------------------------------

# Let LLVM reorder the additions of a sum: it then keeps several partial sums in one
# SIMD register instead of waiting for each add in turn. Only reassociation, none of
# fastmath's other licences (NaN and inf keep their meaning).
_REORDER_SUMS = {"reassoc"}


@njit(parallel=True, cache=True, fastmath=_REORDER_SUMS)
def _batchnorm_forward(x, gamma, beta, eps, out, x_hat, mean, var, inv_std):
    """x: (N, C, M) viewed as channels; per channel: mean, biased variance, then
    x_hat = (x - mean) * inv_std and out = gamma * x_hat + beta. Sums in float64."""
    n, c, m = x.shape
    count = n * m
    for ci in prange(c):
        total = 0.0
        for ni in range(n):
            for k in range(m):
                total += x[ni, ci, k]
        mu = total / count
        squares = 0.0
        for ni in range(n):
            for k in range(m):
                d = x[ni, ci, k] - mu
                squares += d * d
        sigma2 = squares / count
        istd = 1.0 / np.sqrt(sigma2 + eps)
        g, b = gamma[ci], beta[ci]
        for ni in range(n):
            for k in range(m):
                xh = (x[ni, ci, k] - mu) * istd
                x_hat[ni, ci, k] = xh
                out[ni, ci, k] = xh * g + b
        mean[ci], var[ci], inv_std[ci] = mu, sigma2, istd


@njit(parallel=True, cache=True, fastmath=_REORDER_SUMS)
def _batchnorm_backward(grad_out, x_hat, gamma, inv_std, dx, dgamma, dbeta):
    """dx = gamma * inv_std / M * (M * g - sum(g) - x_hat * sum(g * x_hat)), per channel."""
    n, c, m = grad_out.shape
    count = n * m
    for ci in prange(c):
        sum_g, sum_gx = 0.0, 0.0
        for ni in range(n):
            for k in range(m):
                g = grad_out[ni, ci, k]
                sum_g += g
                sum_gx += g * x_hat[ni, ci, k]
        scale = gamma[ci] * inv_std[ci] / count
        for ni in range(n):
            for k in range(m):
                dx[ni, ci, k] = scale * (
                    count * grad_out[ni, ci, k] - sum_g - x_hat[ni, ci, k] * sum_gx
                )
        dgamma[ci], dbeta[ci] = sum_gx, sum_g


# ---- element-wise -----------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def _leaky_relu(x, slope, out):
    for k in prange(x.size):
        if x[k] > 0:
            out[k] = x[k]
        else:
            out[k] = x[k] * slope if slope != 0 else 0  # ReLU(-inf) is 0, not -inf * 0


@njit(parallel=True, cache=True)
def _leaky_relu_backward(grad_out, x, slope, dx):
    for k in prange(x.size):
        dx[k] = grad_out[k] if x[k] > 0 else grad_out[k] * slope


@njit(parallel=True, cache=True)
def _adam_update(param, grad, m, v, lr, beta1, beta2, eps, bias_correction1, bias_correction2_sqrt):
    step_size = lr / bias_correction1
    for k in prange(param.size):
        g = grad[k]
        m[k] = beta1 * m[k] + (1 - beta1) * g
        v[k] = beta2 * v[k] + (1 - beta2) * g * g
        param[k] -= step_size * m[k] / (np.sqrt(v[k]) / bias_correction2_sqrt + eps)


def _flat(a):
    """A contiguous 1-D view (a copy only if ``a`` is not contiguous)."""
    return np.ascontiguousarray(a).reshape(-1)


def _channels(a):
    """(N, C, *spatial) as a contiguous (N, C, M) array."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], -1)


class NumbaBackend(NumpyBackend):
    """NumPy arrays, BLAS matrix products, Numba-compiled kernels."""

    name = "numba"

    def col2im(self, cols, x_shape, kernel_size, stride, padding):
        (kh, kw), (sh, sw), padding = conv_arguments(kernel_size, stride, padding)
        (top, bottom), (left, right) = padding
        n, c, h, w = x_shape
        ho, wo = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
        patches = np.ascontiguousarray(cols).reshape(n, ho, wo, kh, kw, c)
        x = np.zeros((n, h, w, c), dtype=cols.dtype)
        _col2im(patches, sh, sw, top, left, x)
        if w < self.PLANE_COPY_WIDTH:  # short rows: NumPy's strided copy is faster
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = np.empty(x_shape, dtype=cols.dtype)
        _to_channels_first(x, out)
        return out

    # Images at least this wide change layout plane by plane (``_to_channels_last``);
    # on narrower ones (8x8, 4x4) NumPy's strided copy measured faster.
    PLANE_COPY_WIDTH = 14

    def _pad_channels_last(self, x, padding):
        (top, bottom), (left, right) = padding
        n, c, h, w = x.shape
        if w < self.PLANE_COPY_WIDTH:  # short rows: NumPy's strided copy is faster
            return super()._pad_channels_last(x, padding)
        out = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
        _to_channels_last(x, top, left, out)
        return out

    def batchnorm_forward(self, x, gamma, beta, eps):
        x3 = _channels(x)
        out, x_hat = np.empty_like(x3), np.empty_like(x3)
        c = x3.shape[1]
        mean, var, inv_std = (np.empty(c, dtype=x.dtype) for _ in range(3))
        _batchnorm_forward(x3, gamma, beta, eps, out, x_hat, mean, var, inv_std)
        return out.reshape(x.shape), mean, var, x_hat.reshape(x.shape), inv_std

    def batchnorm_backward(self, grad_out, x_hat, gamma, inv_std):
        g3 = _channels(grad_out)
        dx = np.empty_like(g3)
        c = g3.shape[1]
        dgamma, dbeta = np.empty(c, dtype=g3.dtype), np.empty(c, dtype=g3.dtype)
        _batchnorm_backward(g3, _channels(x_hat), gamma, inv_std, dx, dgamma, dbeta)
        return dx.reshape(grad_out.shape), dgamma, dbeta

    def leaky_relu(self, x, negative_slope):
        out = np.empty(x.shape, dtype=x.dtype)
        _leaky_relu(_flat(x), x.dtype.type(negative_slope), out.reshape(-1))
        return out

    def leaky_relu_backward(self, grad_out, x, negative_slope):
        dx = np.empty(x.shape, dtype=grad_out.dtype)
        _leaky_relu_backward(
            _flat(grad_out), _flat(x), grad_out.dtype.type(negative_slope), dx.reshape(-1)
        )
        return dx

    def adam_update(self, param, grad, m, v, *, lr, beta1, beta2, eps, step):
        assert param.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous
        t = param.dtype.type
        _adam_update(
            param.reshape(-1), _flat(grad), m.reshape(-1), v.reshape(-1), t(lr), t(beta1), t(beta2),
            t(eps), t(1 - beta1**step), t((1 - beta2**step) ** 0.5),
        )  # fmt: skip

    def warm_up(self) -> float:
        """Compile (or load from the disk cache) every kernel for float32 and float64;
        returns the seconds it took."""
        import time

        start = time.perf_counter()
        for dtype in (np.float32, np.float64):
            x = np.ones((2, 2, 3, 3), dtype=dtype)
            wide = np.ones((1, 2, 2, self.PLANE_COPY_WIDTH), dtype=dtype)
            self.col2im(self.im2col(wide, 2, 1, 0), wide.shape, 2, 1, 0)
            strided = np.ones((1, 2, self.PLANE_COPY_WIDTH, 2), dtype=dtype).transpose(0, 1, 3, 2)
            self.im2col(strided, 2, 1, 0)  # a view, not contiguous: numba's other layout
            cols = self.im2col(x, (2, 2), (1, 1), ((1, 0), (0, 1)))
            self.col2im(cols, x.shape, (2, 2), (1, 1), ((1, 0), (0, 1)))
            out, _, _, x_hat, inv_std = self.batchnorm_forward(
                x, x[0, :, 0, 0], x[0, :, 0, 0], 1e-5
            )
            self.batchnorm_backward(out, x_hat, x[0, :, 0, 0], inv_std)
            self.leaky_relu_backward(x, self.leaky_relu(x, 0.2), 0.2)
            p, m, v = x.copy(), x.copy(), x.copy()
            self.adam_update(p, x, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
        return time.perf_counter() - start
