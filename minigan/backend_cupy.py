"""The CuPy backend: the reference math on an NVIDIA GPU (``--backend cupy``).

The only module that imports ``cupy``. ``CupyBackend`` inherits the reference
kernels of ``Backend`` (written with ``self.xp``, here ``cupy``) and the batch in one
piece: every convolution is one big cuBLAS matrix product over the whole batch.
What it replaces, each with a twin that the tests hold to the NumPy reference:

- im2col and col2im as *gather* kernels, one GPU thread per output value: im2col reads
  each patch entry straight from the NCHW image (no padded copy), col2im adds up, for
  one pixel, every patch entry that landed on it. No atomics, so results are the same
  on every run. Their index arithmetic is written out twice, in CUDA below and in
  plain Python (``im2col_twin``, ``col2im_twin``), and the Python twin is tested on the CPU;
- LeakyReLU, its backward, the sigmoid, the loss's gradient and the Adam update as one
  fused element-wise kernel each, and the loss as one reduction (the reference makes
  2 to 10 passes over memory for each, and launches as many kernels);
- batch norm's statistics as row-wise reductions (then a small one over the batch),
  its normalisation, backward and running statistics as one fused pass each.

Random numbers come from the host (``Backend``): the same seed gives the same weights
and noise as on the CPU backends. Float32 matrix products are strict float32 unless
CuPy's ``CUPY_TF32=1`` is set (TF32: the user guide's page on the backends).
"""

from __future__ import annotations

import functools

import cupy
import numpy as np

from .backend_numpy import Backend, conv_arguments

# ---- convolution: gather kernels ------------------------------------------------------------

# Index arithmetic in 32-bit ints (64-bit division is several times slower on a GPU);
# the wrappers fall back to the reference for arrays of 2**31 values or more.
_IM2COL = cupy.ElementwiseKernel(
    "raw T x, int32 c, int32 h, int32 w, int32 ho, int32 wo, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 top, int32 left",
    "T col",
    """
    // col is cols[row, k] with row = (n, oi, oj) and k = (u, v, ch), as in im2col.
    const int k = (int)i % (kh * kw * c), row = (int)i / (kh * kw * c);
    const int ch = k % c, v = (k / c) % kw, u = k / (c * kw);
    const int oj = row % wo, oi = (row / wo) % ho, n = row / (wo * ho);
    const int y = oi * sh + u - top, xx = oj * sw + v - left;  // where it sits in x
    col = (y >= 0 && y < h && xx >= 0 && xx < w) ? x[((n * c + ch) * h + y) * w + xx] : (T)0;
    """,
    "minigan_im2col",
)

_COL2IM = cupy.ElementwiseKernel(
    "raw T cols, int32 c, int32 h, int32 w, int32 ho, int32 wo, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 top, int32 left",
    "T x",
    """
    // x is the NCHW image x[n, ch, y, xx]; sum every patch entry that landed on it.
    const int xx = (int)i % w, y = ((int)i / w) % h, ch = ((int)i / (w * h)) % c;
    const int n = (int)i / (w * h * c);
    const int yp = y + top, xp = xx + left;  // the pixel in padded coordinates
    T total = 0;
    for (int u = yp % sh; u < kh && u <= yp; u += sh) {  // offsets with (yp - u) % sh == 0
        const int oi = (yp - u) / sh;
        if (oi >= ho) continue;
        for (int v = xp % sw; v < kw && v <= xp; v += sw) {
            const int oj = (xp - v) / sw;
            if (oj >= wo) continue;
            total += cols[((n * ho + oi) * wo + oj) * (kh * kw * c) + (u * kw + v) * c + ch];
        }
    }
    x = total;
    """,
    "minigan_col2im",
)
_INT32_VALUES = 2**31 - 1  # the most values a kernel's 32-bit indices can address


def _geometry(x_shape, kernel_size, stride, padding):
    """The int arguments both gather kernels take, in their order."""
    (kh, kw), (sh, sw), padding = conv_arguments(kernel_size, stride, padding)
    (top, bottom), (left, right) = padding
    _, c, h, w = x_shape
    ho, wo = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    return c, h, w, ho, wo, kh, kw, sh, sw, top, left


def im2col_twin(x, kernel_size, stride, padding):
    """The im2col kernel's arithmetic in plain Python, one output value at a time
    (the CPU twin the tests compare with the NumPy reference; tiny inputs only)."""
    c, h, w, ho, wo, kh, kw, sh, sw, top, left = _geometry(x.shape, kernel_size, stride, padding)
    flat, cols = x.reshape(-1), np.empty((x.shape[0] * ho * wo, kh * kw * c), dtype=x.dtype)
    out = cols.reshape(-1)
    for i in range(out.size):
        k, row = i % (kh * kw * c), i // (kh * kw * c)
        ch, v, u = k % c, (k // c) % kw, k // (c * kw)
        oj, oi, n = row % wo, (row // wo) % ho, row // (wo * ho)
        y, xx = oi * sh + u - top, oj * sw + v - left
        inside = 0 <= y < h and 0 <= xx < w
        out[i] = flat[((n * c + ch) * h + y) * w + xx] if inside else 0
    return cols


def col2im_twin(cols, x_shape, kernel_size, stride, padding):
    """The col2im kernel's arithmetic in plain Python, one pixel at a time (CPU twin)."""
    c, h, w, ho, wo, kh, kw, sh, sw, top, left = _geometry(x_shape, kernel_size, stride, padding)
    flat, x = cols.reshape(-1), np.empty(x_shape, dtype=cols.dtype)
    out = x.reshape(-1)
    for i in range(out.size):
        xx, y, ch, n = i % w, (i // w) % h, (i // (w * h)) % c, i // (w * h * c)
        yp, xp = y + top, xx + left
        total = 0.0
        for u in range(yp % sh, min(kh, yp + 1), sh):
            oi = (yp - u) // sh
            if oi >= ho:
                continue
            for v in range(xp % sw, min(kw, xp + 1), sw):
                oj = (xp - v) // sw
                if oj >= wo:
                    continue
                total += flat[((n * ho + oi) * wo + oj) * (kh * kw * c) + (u * kw + v) * c + ch]
        out[i] = total
    return x


# ---- element-wise and batch-norm kernels ---------------------------------------------------

_LEAKY_RELU = cupy.ElementwiseKernel(
    "T x, T slope",
    "T y",
    "y = (x > 0 || isnan(x)) ? x : (slope == 0 ? (T)0 : x * slope)",  # ReLU(-inf) is 0
    "minigan_leaky_relu",
)
_LEAKY_RELU_BACKWARD = cupy.ElementwiseKernel(
    "T grad, T x, T slope", "T dx", "dx = x > 0 ? grad : grad * slope", "minigan_leaky_relu_bwd"
)
_SIGMOID = cupy.ElementwiseKernel(
    "T x", "T y", "const T e = exp(-fabs(x)); y = x >= 0 ? 1 / (1 + e) : e / (1 + e)",
    "minigan_sigmoid",
)  # fmt: skip
_BCE_TERMS = "(z > 0 ? z : (T)0) - z * t + log1p(exp(-fabs(z)))"  # max(z, 0) - z t + ...
_BCE_WITH_LOGITS = {
    "sum": cupy.ReductionKernel("T z, T t", "T loss", _BCE_TERMS, "a + b", "loss = a", "0",
                                "minigan_bce_sum"),
    "mean": cupy.ReductionKernel("T z, T t", "T loss", _BCE_TERMS, "a + b",
                                 "loss = a / (_in_ind.size() / _out_ind.size())", "0",
                                 "minigan_bce_mean"),
}  # fmt: skip
_BCE_WITH_LOGITS_BACKWARD = cupy.ElementwiseKernel(
    "T z, T t, T count, T dloss", "T grad",
    "const T e = exp(-fabs(z)); grad = ((z >= 0 ? 1 / (1 + e) : e / (1 + e)) - t) / count * dloss",
    "minigan_bce_with_logits_backward",
)  # fmt: skip
_ADAM = cupy.ElementwiseKernel(
    "T grad, T step_size, T beta1, T beta2, T eps, T bias_correction2_sqrt",
    "T param, T m, T v",
    """
    m = beta1 * m + (1 - beta1) * grad;
    v = beta2 * v + (1 - beta2) * grad * grad;
    param -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps);
    """,
    "minigan_adam",
)
# Batch-norm statistics in two stages: first along each (sample, channel) row of H*W
# contiguous numbers (many rows, so every SM has work), then over the samples (small).
# One stage over (N, H, W) at once is a strided reduction with only C outputs: too few
# blocks to fill the GPU (benchmarks/RESULTS.md has what it cost).
_MEAN_SQUARE_ABOUT = cupy.ReductionKernel(
    "T x, T mean", "T out", "(x - mean) * (x - mean)", "a + b",
    "out = a / (_in_ind.size() / _out_ind.size())", "0", "minigan_mean_square",
)  # fmt: skip
_SUM_OF_PRODUCTS = cupy.ReductionKernel(
    "T a, T b", "T total", "a * b", "a + b", "total = a", "0", "minigan_sum_prod"
)
_INV_STD = cupy.ElementwiseKernel("T var, T eps", "T inv_std", "inv_std = rsqrt(var + eps)",
                                  "minigan_inv_std")  # fmt: skip
_BATCHNORM_APPLY = cupy.ElementwiseKernel(
    "T x, T mean, T inv_std, T gamma, T beta",
    "T x_hat, T out",
    "x_hat = (x - mean) * inv_std; out = x_hat * gamma + beta",
    "minigan_batchnorm",
)
_BATCHNORM_BACKWARD = cupy.ElementwiseKernel(
    "T grad, T x_hat, T gamma, T inv_std, T dgamma, T dbeta, T m",
    "T dx",
    "dx = gamma * inv_std / m * (m * grad - dbeta - x_hat * dgamma)",  # the reference's formula
    "minigan_batchnorm_backward",
)
_RUNNING_STATS = cupy.ElementwiseKernel(
    "T mean, T var, T momentum, T unbias",
    "T running_mean, T running_var",
    """
    running_mean = (1 - momentum) * running_mean + momentum * mean;
    running_var = (1 - momentum) * running_var + momentum * (var * unbias);
    """,
    "minigan_running_stats",
)


class CupyBackend(Backend):
    """CuPy arrays on the current CUDA device; cuBLAS products; fused kernels."""

    name = "cupy"
    xp = cupy

    @classmethod
    @functools.cache
    def unusable_reason(cls) -> str | None:
        """None when a CUDA GPU answers; else one line saying what is missing.
        (``import cupy`` works without a driver; the first CUDA call tells.)"""
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "backend 'cupy': no CUDA GPU was found"
            cupy.empty(1, dtype=np.float32)  # the driver, the runtime and memory all answer
        except Exception as e:  # CUDARuntimeError, a missing libcuda, ...
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return (
                f"backend 'cupy': no usable CUDA GPU or driver was found ({detail}); "
                "on a machine with an NVIDIA GPU install its driver and "
                "pip install 'minigan[gpu]' (or cupy-cuda13x on CUDA 13 drivers)"
            )
        return None

    # ---- transfers ------------------------------------------------------------------
    def from_numpy(self, a):
        return cupy.asarray(a)  # host -> device (no copy for an array already there)

    def to_numpy(self, a) -> np.ndarray:
        return cupy.asnumpy(a)  # device -> host (waits for the GPU)

    # ---- convolution --------------------------------------------------------------------
    def im2col(self, x, kernel_size, stride, padding):
        geometry = _geometry(x.shape, kernel_size, stride, padding)
        c, _, _, ho, wo, kh, kw = geometry[:7]
        shape = (x.shape[0] * ho * wo, kh * kw * c)
        if max(shape[0] * shape[1], x.size) > _INT32_VALUES:
            return super().im2col(x, kernel_size, stride, padding)
        cols = cupy.empty(shape, dtype=x.dtype)
        return _IM2COL(cupy.ascontiguousarray(x), *geometry, cols)

    def col2im(self, cols, x_shape, kernel_size, stride, padding):
        if max(cols.size, int(np.prod(x_shape))) > _INT32_VALUES:
            return super().col2im(cols, x_shape, kernel_size, stride, padding)
        x = cupy.empty(x_shape, dtype=cols.dtype)
        geometry = _geometry(x_shape, kernel_size, stride, padding)
        return _COL2IM(cupy.ascontiguousarray(cols), *geometry, x)

    # ---- batch normalisation -----------------------------------------------------------
    def batchnorm_forward(self, x, gamma, beta, eps):
        rows = _rows(x)  # (N, C, M)
        mean = rows.mean(axis=2).mean(axis=0)  # every row has M values: the mean of means
        var = _MEAN_SQUARE_ABOUT(rows, mean.reshape(1, -1, 1), axis=2).mean(axis=0)
        inv_std = _INV_STD(var, var.dtype.type(eps))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        x_hat, out = _BATCHNORM_APPLY(
            x, mean.reshape(shape), inv_std.reshape(shape), gamma.reshape(shape),
            beta.reshape(shape),
        )  # fmt: skip
        return out, mean, var, x_hat, inv_std

    def batchnorm_backward(self, grad_out, x_hat, gamma, inv_std):
        rows, shape = _rows(grad_out), (1, -1) + (1,) * (grad_out.ndim - 2)
        dbeta = rows.sum(axis=2).sum(axis=0)
        dgamma = _SUM_OF_PRODUCTS(rows, _rows(x_hat), axis=2).sum(axis=0)
        m = grad_out.dtype.type(rows.shape[0] * rows.shape[2])
        dx = _BATCHNORM_BACKWARD(
            grad_out, x_hat, gamma.reshape(shape), inv_std.reshape(shape),
            dgamma.reshape(shape), dbeta.reshape(shape), m,
        )  # fmt: skip
        return dx, dgamma, dbeta

    def update_running_stats(self, running_mean, running_var, mean, var, momentum, count):
        t = running_mean.dtype.type
        _RUNNING_STATS(mean, var, t(momentum), t(count / (count - 1)), running_mean, running_var)

    # ---- element-wise -----------------------------------------------------------------
    def leaky_relu(self, x, negative_slope):
        return _LEAKY_RELU(x, x.dtype.type(negative_slope))

    def leaky_relu_backward(self, grad_out, x, negative_slope):
        return _LEAKY_RELU_BACKWARD(grad_out, x, grad_out.dtype.type(negative_slope))

    def sigmoid(self, x):
        return _SIGMOID(x)

    # ---- loss (one reduction forward, one element-wise pass backward) ------------------
    def bce_with_logits(self, logits, targets, reduction):
        targets = _scalar_or_array(targets, logits.dtype.type)
        return _BCE_WITH_LOGITS[reduction](logits, targets)

    def bce_with_logits_backward(self, logits, targets, reduction, dloss):
        t = logits.dtype.type
        count = t(logits.size if reduction == "mean" else 1)
        return _BCE_WITH_LOGITS_BACKWARD(logits, _scalar_or_array(targets, t), count, t(dloss))

    # ---- optimiser -----------------------------------------------------------------------
    def adam_update(self, param, grad, m, v, *, lr, beta1, beta2, eps, step):
        t = param.dtype.type
        _ADAM(
            grad, t(lr / (1 - beta1**step)), t(beta1), t(beta2), t(eps),
            t((1 - beta2**step) ** 0.5), param, m, v,
        )  # fmt: skip


def _scalar_or_array(targets, t):
    """A Python number as a scalar of the logits' dtype (the kernels broadcast it)."""
    return targets if hasattr(targets, "shape") else t(targets)


def _rows(x):
    """(N, C, *spatial) as (N, C, M): each sample's channel one contiguous row."""
    return cupy.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
