"""The math of every layer as pure forward/backward function pairs (CS231n style).

Each ``*_forward`` returns ``(out, cache)``; the matching ``*_backward`` takes the
upstream gradient ``dout`` (shaped like ``out``) and that cache, and returns the
gradients of the forward's array inputs in the same order. Nothing here keeps
state: the stateful layers in ``minigan.nn`` are thin wrappers around these.

Arrays are NCHW. Kernels that a fast backend replaces (im2col, col2im, batch norm,
leaky ReLU) are called through ``backend.current()`` (named ``bk`` below);
everything else uses its array module ``xp``. The plain-loop versions of the convolutions live in
``minigan.naive`` and the tests hold these fast versions to them.
"""

from __future__ import annotations

import numbers

from . import backend
from .backend_numpy import kernel_covers_image


def pair(value, name="value") -> tuple[int, int]:
    """An int or an (h, w) pair, as an (h, w) pair of ints."""
    values = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        h, w = values
    except (TypeError, ValueError):
        h = w = None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (h, w)):
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    return (int(h), int(w))


# ---- convolution ------------------------------------------------------------------


def _channels_first(x):
    """(n, C, H, W) -> (C, n*H*W): one column per pixel (a view when n == 1).
    The matrix products below take its transpose, (n*H*W, C), as a free view: BLAS
    reads either orientation at full speed, where copying NCHW to (n*H*W, C) would
    be a slow element-by-element transpose."""
    n, c = x.shape[:2]
    return x.reshape(c, -1) if n == 1 else x.transpose(1, 0, 2, 3).reshape(c, -1)


def _samples_first(m, h, w):
    """(C, n*H*W) -> (n, C, H, W), the inverse of ``_channels_first`` (a view)."""
    return m.reshape(m.shape[0], -1, h, w).transpose(1, 0, 2, 3)


def _patch_major(w):
    """A (A, B, kh, kw) weight as the (A, kh*kw*B) matrix whose columns are ordered
    (u, v, b), like im2col's rows; ``_from_patch_major`` undoes it."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _from_patch_major(m, shape):
    a, b, kh, kw = shape
    return m.reshape(a, kh, kw, b).transpose(0, 3, 1, 2).copy()


def conv2d_forward(x, w, b, stride=1, padding=0):
    """Cross-correlation, as in every deep-learning library::

        out[n, f, i, j] = b[f] + sum_{c,u,v} w[f, c, u, v] * xpad[n, c, i*sh + u, j*sw + v]

    x: (N, C, H, W); w: (F, C, kh, kw); b: (F,) or None; stride, padding: int or pair
    (padding adds zeros on all four sides).
    out: (N, F, Ho, Wo) with Ho = (H + 2*ph - kh) // sh + 1, likewise Wo.

    im2col turns every receptive field into one row, so the convolution is a matrix
    product (n*Ho*Wo, kh*kw*C) @ (kh*kw*C, F): a linear layer applied to every patch.
    It is done a few samples at a time (``for_each_batch``, on every core), so the
    rows stay in cache. A kernel as large as the unpadded image has one patch per
    sample, the image itself: that convolution is a linear layer, with no im2col. With
    few filters (``_few_filters``) the channels are contracted first instead.
    """
    bk = backend.current()
    x = bk.xp.ascontiguousarray(x)
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    stride, (ph, pw) = pair(stride), pair(padding)
    pad = ((ph, ph), (pw, pw))
    if kernel_covers_image(x.shape, (kh, kw), pad):
        out = _as_linear_forward(x, w)  # (N, F)
        if b is not None:
            out += b
        return out.reshape(n, f, 1, 1), (x, w, stride, pad, b is not None)
    ho, wo = conv2d_output_size(h, kh, stride[0], ph), conv2d_output_size(wd, kw, stride[1], pw)
    if _few_filters(w):
        return _taps_forward(x, w, b, stride, pad, (ho, wo)), (x, w, stride, pad, b is not None)
    w_mat = _patch_major(w)  # (F, kh*kw*C)
    out = bk.xp.empty((n, f, ho, wo), dtype=x.dtype)

    def forward(batch):
        cols = bk.im2col(x[batch], (kh, kw), stride, pad)  # (n*Ho*Wo, kh*kw*C)
        out_mat = w_mat @ cols.T  # (F, n*Ho*Wo), the transpose of cols @ W^T
        if b is not None:
            out_mat += b.reshape(-1, 1)
        out[batch] = _samples_first(out_mat, ho, wo)

    bk.for_each_batch(forward, n, ho * wo, values_per_column=w_mat.shape[1])
    return out, (x, w, stride, pad, b is not None)


def conv2d_backward(dout, cache, input_grad=True, weight_grad=True):
    """dout: (N, F, Ho, Wo). Returns dx (N, C, H, W), dw (F, C, kh, kw), db (F,) or None.

    With out = cols @ W^T:  dW = dout^T @ cols,  dcols = dout @ W,
    and col2im adds each row of dcols back onto the pixels its patch came from.
    The rows are rebuilt from x rather than kept from the forward: that is cheap,
    and keeping them would take kh*kw times the memory of x.
    input_grad / weight_grad False skip dx / (dw, db), returned as None.
    """
    x, w, stride, pad, has_bias = cache
    bk = backend.current()
    kh, kw = w.shape[2:]
    n, _, ho, wo = dout.shape
    if kernel_covers_image(x.shape, (kh, kw), pad):
        return _as_linear_backward(dout, x, w, has_bias, input_grad, weight_grad)
    if _few_filters(w):
        return _taps_backward(dout, cache, input_grad, weight_grad)
    w_mat = _patch_major(w)  # (F, kh*kw*C)
    dx = bk.xp.empty_like(x) if input_grad else None

    def backward(batch):
        dout_t = _channels_first(dout[batch])  # (F, n*Ho*Wo): dout's rows, transposed
        if input_grad:
            dcols = dout_t.T @ w_mat  # (n*Ho*Wo, kh*kw*C)
            dx[batch] = bk.col2im(dcols, x[batch].shape, (kh, kw), stride, pad)
        if weight_grad:
            cols = bk.im2col(x[batch], (kh, kw), stride, pad)
            db = dout_t.sum(axis=1) if has_bias else None
            return dout_t @ cols, db

    sums = bk.for_each_batch(backward, n, ho * wo, values_per_column=w_mat.shape[1])
    dw, db = sums or (None, None)  # None: no weight gradient asked for
    return dx, None if dw is None else _from_patch_major(dw, w.shape), db


def _few_filters(w) -> bool:
    """Whether a convolution has no more taps (filters x kernel positions) than input
    channels, like the last 3x3 convolution of minigan's recipe (32 channels to 1).
    Then contracting the channels first (``_taps_forward``) makes F*kh*kw numbers per
    pixel where im2col makes kh*kw*C, and the product has more than one row."""
    f, c, kh, kw = w.shape
    return f * kh * kw <= c


def _tap_slices(size, k, stride, pad_before, out_size):
    """For kernel offset k along one side: the output positions i whose input
    i*stride + k - pad_before lies inside [0, size), and those inputs, as two slices."""
    lo = max(0, -(-(pad_before - k) // stride))
    hi = max(lo, min(out_size, (size - 1 + pad_before - k) // stride + 1))
    first = lo * stride + k - pad_before
    return slice(lo, hi), slice(max(first, 0), max(first, 0) + (hi - lo) * stride, stride)


def _taps_forward(x, w, b, stride, pad, out_size):
    """A convolution with few filters, channels first ("kn2row"): one product gives
    every tap's response at every pixel, planes[n, (f, u, v), y, x] = sum_c w[f, c, u, v]
    * x[n, c, y, x]; then out[n, f, i, j] = sum_{u,v} planes[n, (f, u, v), i*sh + u - top,
    j*sw + v - left], kh*kw strided slices added (the padding's zeros are left out)."""
    bk = backend.current()
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    (sh, sw), ((top, _), (left, _)) = stride, pad
    taps = _patch_major(w).reshape(f * kh * kw, c)  # rows (f, u, v)
    out = bk.xp.empty((n, f, *out_size), dtype=x.dtype)

    def forward(batch):
        xs = x[batch]
        planes = (taps @ xs.reshape(len(xs), c, h * wd)).reshape(len(xs), f, kh, kw, h, wd)
        ob = out[batch]
        ob[...] = 0 if b is None else b.reshape(1, -1, 1, 1)
        for u in range(kh):
            rows_out, rows_in = _tap_slices(h, u, sh, top, out_size[0])
            for v in range(kw):
                cols_out, cols_in = _tap_slices(wd, v, sw, left, out_size[1])
                ob[:, :, rows_out, cols_out] += planes[:, :, u, v, rows_in, cols_in]

    bk.for_each_batch(forward, n, h * wd, values_per_column=f * kh * kw)
    return out


def _taps_backward(dout, cache, input_grad, weight_grad):
    """The adjoint of ``_taps_forward``: each tap's slice of dout goes back where its
    planes were read (``spread``), then dx = taps^T @ spread and dtaps = spread @ x^T."""
    x, w, stride, pad, has_bias = cache
    bk = backend.current()
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    (sh, sw), ((top, _), (left, _)) = stride, pad
    taps = _patch_major(w).reshape(f * kh * kw, c)
    dx = bk.xp.empty_like(x) if input_grad else None

    def backward(batch):
        g = dout[batch]
        spread = bk.xp.zeros((len(g), f, kh, kw, h, wd), dtype=g.dtype)
        for u in range(kh):
            rows_out, rows_in = _tap_slices(h, u, sh, top, g.shape[2])
            for v in range(kw):
                cols_out, cols_in = _tap_slices(wd, v, sw, left, g.shape[3])
                spread[:, :, u, v, rows_in, cols_in] = g[:, :, rows_out, cols_out]
        spread = spread.reshape(len(g), f * kh * kw, h * wd)
        if input_grad:
            dx[batch] = (taps.T @ spread).reshape(len(g), c, h, wd)
        if weight_grad:
            x_rows = x[batch].reshape(len(g), c, h * wd)
            dtaps = (spread @ x_rows.transpose(0, 2, 1)).sum(axis=0)  # (F*kh*kw, C)
            return dtaps, g.sum(axis=(0, 2, 3)) if has_bias else None

    sums = bk.for_each_batch(backward, n, h * wd, values_per_column=f * kh * kw)
    dtaps, db = sums or (None, None)  # None: no weight gradient asked for
    dw = None if dtaps is None else _from_patch_major(dtaps.reshape(f, -1), w.shape)
    return dx, dw, db


def _as_linear_forward(x, w, transposed=False):
    """The forward of a convolution whose kernel covers the image (one patch per sample)
    as a linear layer: x (N, C*kh*kw) @ w (F, C*kh*kw)^T -> (N, F); transposed, x (N, Cin)
    @ w (Cin, Cout*kh*kw) -> (N, Cout*kh*kw). Split over the batch (``for_each_batch``)."""
    bk, n = backend.current(), x.shape[0]
    x_rows, w_rows = x.reshape(n, -1), w.reshape(w.shape[0], -1)
    if not transposed:
        w_rows = w_rows.T
    out = bk.xp.empty((n, w_rows.shape[1]), dtype=x.dtype)

    def linear(batch):
        out[batch] = x_rows[batch] @ w_rows

    bk.for_each_batch(linear, n, 1)
    return out


def _as_linear_backward(dout, x, w, has_bias, input_grad, weight_grad, transposed=False):
    """The backward of a convolution whose kernel covers the image (one patch per
    sample): the backward of a linear layer on the arrays as they lie, x (N, C*kh*kw)
    -> out (N, F). A transposed convolution is one the other way round: out
    (N, Cout*kh*kw) from x (N, Cin), its weight (Cin, Cout*kh*kw). Split over the
    batch like the other convolutions (``for_each_batch``)."""
    bk, n = backend.current(), x.shape[0]
    x_rows, g_rows = x.reshape(n, -1), bk.xp.ascontiguousarray(dout).reshape(n, -1)
    w_rows = w.reshape(w.shape[0], -1)
    if transposed:  # out = x_rows @ w_rows: a linear layer whose weight is w_rows.T
        w_rows = w_rows.T
    dx = bk.xp.empty_like(x) if input_grad else None
    dx_rows = dx.reshape(n, -1) if input_grad else None

    def backward(batch):
        if input_grad:  # one filter: an outer product, which BLAS is slow at
            g = g_rows[batch]
            dx_rows[batch] = g * w_rows if w_rows.shape[0] == 1 else g @ w_rows
        if weight_grad:
            return g_rows[batch].T @ x_rows[batch]

    dw = bk.for_each_batch(backward, n, 1)
    if dw is not None:
        dw = (dw.T if transposed else dw).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3)) if weight_grad and has_bias else None
    return dx, dw, db


def conv2d_output_size(size, kernel, stride, padding):
    """(H + 2p - k) // s + 1: how many kernel positions fit along a padded side."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose2d_output_size(size, kernel, stride, padding, output_padding):
    """(H - 1)*s - 2p + k + output_padding: the input size of the conv it inverts."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def _transpose_padding(padding, output_padding):
    """The im2col/col2im padding that makes a conv-transpose the adjoint of a conv.

    The scatter covers (H - 1)*s + k rows; ``padding`` crops p from the top, and the
    bottom crop is p - output_padding. When output_padding exceeds p the extra
    bottom rows receive no input at all (only the bias): output_padding only ever
    adds rows at the bottom/right, which is how it disambiguates the output size.
    """
    (ph, pw), (oph, opw) = padding, output_padding
    return ((ph, max(ph - oph, 0)), (pw, max(pw - opw, 0)))


def conv_transpose2d_forward(x, w, b, stride=1, padding=0, output_padding=0):
    """Transposed convolution: each input pixel adds a weighted copy of the kernel
    into the output, at stride s (the gradient of conv2d with respect to its input)::

        out[n, o, i*sh + u - ph, j*sw + v - pw] += x[n, c, i, j] * w[c, o, u, v]

    x: (N, Cin, H, W); w: (Cin, Cout, kh, kw) (PyTorch's layout); b: (Cout,) or None.
    out: (N, Cout, Ho, Wo), Ho = (H - 1)*sh - 2*ph + kh + output_padding_h.

    One matrix product gives every input pixel's kernel-sized contribution,
    (n*H*W, Cin) @ (Cin, kh*kw*Cout); col2im adds the overlapping contributions.
    A 1x1 input whose kernel is the whole output (no padding) has nothing to add up:
    the layer is a linear one, (N, Cin) @ (Cin, Cout*kh*kw).
    """
    bk = backend.current()
    x = bk.xp.ascontiguousarray(x)
    n, cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    stride, padding, output_padding = pair(stride), pair(padding), pair(output_padding)
    ho = conv_transpose2d_output_size(h, kh, stride[0], padding[0], output_padding[0])
    wo = conv_transpose2d_output_size(wd, kw, stride[1], padding[1], output_padding[1])
    pad = _transpose_padding(padding, output_padding)
    if kernel_covers_image((n, cout, ho, wo), (kh, kw), pad):
        out = _as_linear_forward(x, w, transposed=True).reshape(n, cout, kh, kw)
        if b is not None:
            out += b.reshape(1, -1, 1, 1)
        return out, (x, w, stride, pad, b is not None)
    w_mat = _patch_major(w)  # (Cin, kh*kw*Cout)
    out = bk.xp.empty((n, cout, ho, wo), dtype=x.dtype)

    def forward(batch):
        cols = _channels_first(x[batch]).T @ w_mat  # (n*H*W, kh*kw*Cout)
        out[batch] = bk.col2im(cols, out[batch].shape, (kh, kw), stride, pad)
        if b is not None:
            out[batch] += b.reshape(1, -1, 1, 1)

    bk.for_each_batch(forward, n, h * wd, values_per_column=w_mat.shape[1])
    return out, (x, w, stride, pad, b is not None)


def conv_transpose2d_backward(dout, cache, input_grad=True, weight_grad=True):
    """dout: (N, Cout, Ho, Wo). Returns dx (N, Cin, H, W), dw (Cin, Cout, kh, kw), db.

    The forward was a col2im of x @ W, so the backward is its adjoint: im2col of
    dout (an ordinary strided convolution), then two matrix products.
    input_grad / weight_grad False skip dx / (dw, db), returned as None.
    """
    x, w, stride, pad, has_bias = cache
    bk = backend.current()
    n, cin, h, wd = x.shape
    if kernel_covers_image(dout.shape, w.shape[2:], pad):
        return _as_linear_backward(dout, x, w, has_bias, input_grad, weight_grad, transposed=True)
    w_mat = _patch_major(w)  # (Cin, kh*kw*Cout)
    dx = bk.xp.empty_like(x) if input_grad else None

    def backward(batch):
        dcols = bk.im2col(dout[batch], w.shape[2:], stride, pad)  # (n*H*W, kh*kw*Cout)
        if input_grad:
            dx[batch] = _samples_first(w_mat @ dcols.T, h, wd)  # (Cin, n*H*W)
        if weight_grad:
            db = dout[batch].sum(axis=(0, 2, 3)) if has_bias else None
            return _channels_first(x[batch]) @ dcols, db

    sums = bk.for_each_batch(backward, n, h * wd, values_per_column=w_mat.shape[1])
    dw, db = sums or (None, None)  # None: no weight gradient asked for
    return dx, None if dw is None else _from_patch_major(dw, w.shape), db


# ---- linear ---------------------------------------------------------------------------


def linear_forward(x, w, b):
    """``out = x @ w^T + b``.

    x: ``(N, *, in)``; w: (out, in); b: (out,) or None -> out ``(N, *, out)``.
    """
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout, cache, input_grad=True, weight_grad=True):
    """Returns dx ``(N, *, in)``, dw (out, in), db (out,) or None (also when skipped)."""
    x, w, has_bias = cache
    dx = dout @ w if input_grad else None
    dw = db = None
    if weight_grad:
        dout_rows, x_rows = dout.reshape(-1, w.shape[0]), x.reshape(-1, w.shape[1])
        dw = dout_rows.T @ x_rows
        db = dout_rows.sum(axis=0) if has_bias else None
    return dx, dw, db


# ---- batch normalisation ----------------------------------------------------------------


def batchnorm_forward(x, gamma, beta, eps=1e-5, running_mean=None, running_var=None):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel (axis 1).

    x: (N, C) or (N, C, L) or (N, C, H, W); gamma, beta: (C,).
    Training mode (no running statistics given): mean and the *biased* variance of
    this batch, over every axis but the channel one; the cache keeps them
    (``cache["mean"]``, ``cache["var"]``) so the caller can update running statistics.
    Eval mode (running_mean and running_var given): those statistics instead, so the
    output of one sample no longer depends on the rest of the batch.
    """
    if running_mean is None:
        out, mean, var, x_hat, inv_std = backend.current().batchnorm_forward(x, gamma, beta, eps)
        cache = dict(training=True, x_hat=x_hat, gamma=gamma, inv_std=inv_std, mean=mean, var=var)
        return out, cache
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv_std = 1.0 / backend.current().xp.sqrt(running_var + eps)
    x_hat = (x - running_mean.reshape(shape)) * inv_std.reshape(shape)
    out = x_hat * gamma.reshape(shape) + beta.reshape(shape)
    return out, dict(training=False, x_hat=x_hat, gamma=gamma, inv_std=inv_std)


def batchnorm_backward(dout, cache):
    """Returns dx (like x), dgamma (C,), dbeta (C,).

    In training mode every x in a channel moved that channel's mean and variance,
    so dx has two extra terms (the backend kernel holds the formula). In eval mode
    the statistics are constants and dx = dout * gamma / sqrt(running_var + eps).
    """
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    if cache["training"]:
        return backend.current().batchnorm_backward(dout, x_hat, gamma, inv_std)
    axes = (0,) + tuple(range(2, dout.ndim))
    shape = (1, -1) + (1,) * (dout.ndim - 2)
    dx = dout * (gamma * inv_std).reshape(shape)
    return dx, (dout * x_hat).sum(axis=axes), dout.sum(axis=axes)


# ---- activations ------------------------------------------------------------------------


def leaky_relu_forward(x, negative_slope=0.01):
    """out = x where x > 0, else negative_slope * x (ReLU: negative_slope = 0)."""
    return backend.current().leaky_relu(x, negative_slope), (x, negative_slope)


def leaky_relu_backward(dout, cache):
    """The slope is 1 where x > 0 and negative_slope elsewhere (0 at the kink)."""
    x, negative_slope = cache
    return backend.current().leaky_relu_backward(dout, x, negative_slope)


def relu_forward(x):
    """out = max(x, 0). x: any shape."""
    return leaky_relu_forward(x, 0.0)


relu_backward = leaky_relu_backward


def tanh_forward(x):
    """out = tanh(x), in (-1, 1). x: any shape; the cache is the output."""
    out = backend.current().xp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """d tanh(x)/dx = 1 - tanh(x)^2, from the saved output."""
    out = cache
    return dout * (1 - out * out)


def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow: exp is only ever taken of ``-|x|``, then
    ``sigmoid(x) = 1 / (1 + e)`` for x >= 0 and ``e / (1 + e)`` below, with ``e = exp(-|x|)``."""
    return backend.current().sigmoid(x)


def sigmoid_forward(x):
    """out = sigmoid(x), in (0, 1). x: any shape; the cache is the output."""
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, cache):
    """d sigmoid(x)/dx = sigmoid(x) * (1 - sigmoid(x)), from the saved output."""
    out = cache
    return dout * out * (1 - out)


# ---- shape and regularisation ----------------------------------------------------------


def dropout_forward(x, p, training=True):
    """Inverted dropout: zero each value with probability p and scale the survivors
    by 1 / (1 - p), so eval mode (the identity) needs no rescaling."""
    if not training or p == 0:
        return x, None
    if p == 1:
        mask = backend.current().xp.zeros_like(x)
    else:
        keep = backend.current().rand(x.shape) >= p  # float32 draws: the same mask for any dtype
        mask = keep.astype(x.dtype) / (1 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    """The same mask (with its 1 / (1 - p) scale) multiplies the gradient."""
    mask = cache
    return dout if mask is None else dout * mask


def upsample_nearest_forward(x, scale_factor):
    """Repeat every pixel sh x sw times.  x: (N, C, H, W) -> (N, C, H*sh, W*sw)."""
    sh, sw = scale_factor
    return x.repeat(sh, axis=2).repeat(sw, axis=3), (sh, sw)


def upsample_nearest_backward(dout, cache):
    """Each input pixel fed an sh x sw block of the output: sum that block."""
    sh, sw = cache
    n, c, h, w = dout.shape
    return dout.reshape(n, c, h // sh, sh, w // sw, sw).sum(axis=(3, 5))


# ---- loss --------------------------------------------------------------------------------


def bce_with_logits_forward(logits, targets, reduction="mean"):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1]::

        loss_i = -[t log s(z) + (1 - t) log(1 - s(z))] = max(z, 0) - z t + log(1 + exp(-|z|))

    The right-hand form never exponentiates a positive number, so it is finite for
    any logit (in float32 the naive sigmoid-then-log is already inf for t = 0 at
    z ~ 17, where sigmoid(z) rounds to 1, and nan once exp overflows).
    logits: any shape; targets: same shape or a scalar. Returns (loss, cache), the loss
    a 0-d array on the backend (no wait for the GPU; ``float(loss)`` is the number).
    """
    loss = backend.current().bce_with_logits(logits, targets, reduction)
    return loss, (logits, targets, reduction)


def bce_with_logits_backward(cache, dloss=1.0):
    """d loss / d logits = (sigmoid(z) - t) / count (mean) or sigmoid(z) - t (sum)."""
    logits, targets, reduction = cache
    return backend.current().bce_with_logits_backward(logits, targets, reduction, dloss)
