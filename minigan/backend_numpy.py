"""The reference backend: the math written once, with ``self.xp`` only.

- ``Backend``: the reference math on the array module ``xp``, the batch in one
  piece (a GPU runs each convolution as one big matrix product). Every kernel a
  faster backend overrides is here in its plain form: ``im2col`` / ``col2im``,
  ``batchnorm_forward`` / ``batchnorm_backward`` / ``update_running_stats``,
  ``leaky_relu`` / ``leaky_relu_backward``, ``sigmoid``, ``bce_with_logits`` /
  ``bce_with_logits_backward`` and ``adam_update``;
- ``CpuThreads``: a convolution split over the cores, a few samples per thread,
  with BLAS held to one thread meanwhile;
- ``NumpyBackend = CpuThreads + Backend`` on NumPy: the reference every other
  backend is tested against. ``NumbaBackend`` (``backend_numba.py``) is it with
  compiled kernels; ``CupyBackend`` (``backend_cupy.py``) is ``Backend`` on CuPy.

Which backend runs, and the table of them all, is ``backend.py``'s business.
"""

from __future__ import annotations

import concurrent.futures
import numbers
import os

import numpy as np


class Backend:
    """The reference math on the array module ``xp``; the batch in one piece."""

    name = "reference"
    xp = np

    def __init__(self, seed: int | None = None):
        self.seed(seed)

    def __repr__(self) -> str:
        return f"<minigan backend {self.name!r}>"

    @classmethod
    def unusable_reason(cls) -> str | None:
        """None if this backend can run here, else one line saying why not and what to do."""
        return None

    @classmethod
    def usable(cls) -> bool:
        """Whether this backend can run on this machine (a GPU backend needs a GPU)."""
        return cls.unusable_reason() is None

    # ---- transfers -------------------------------------------------------------
    def from_numpy(self, a):
        """A host (NumPy) array as this backend's array; no copy when none is needed."""
        return self.xp.asarray(a)

    def to_numpy(self, a) -> np.ndarray:
        """This backend's array as a host NumPy array."""
        return np.asarray(a)

    def is_array(self, a) -> bool:
        """Whether ``a`` is an array of this backend (not a host or foreign array)."""
        return isinstance(a, self.xp.ndarray)

    def check_array(self, a, where) -> None:
        """A one-line TypeError, naming ``where`` (a string, or a function that makes
        it, called only then), if ``a`` is not this backend's array: arrays are never
        moved between host and GPU behind the user's back."""
        if not self.is_array(a):
            where = where() if callable(where) else where
            raise TypeError(wrong_array_message(a, self.name, where))

    # ---- random numbers (host NumPy generator, moved to the backend) -------------------
    def seed(self, seed: int | None) -> None:
        """Restart this backend's random stream (``None``: fresh entropy)."""
        self.rng = np.random.default_rng(seed)

    def randn(self, shape, dtype=np.float32):
        """Standard normal samples, generated directly in ``dtype`` (no float64 detour)."""
        return self.from_numpy(self.rng.standard_normal(shape, dtype=dtype))

    def rand(self, shape, dtype=np.float32):
        """Uniform samples in [0, 1)."""
        return self.from_numpy(self.rng.random(shape, dtype=dtype))

    def get_rng_state(self) -> dict:
        """The random stream's state, as plain data (JSON-serialisable; the same
        format on every backend, so a run can resume on another one)."""
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    # ---- how a convolution covers the batch --------------------------------------------
    def for_each_batch(self, work, n: int, columns_per_sample: int, *, values_per_column: int = 1):
        """Call ``work(batch)`` on slices that cover ``range(n)``; returns the sum of what
        the calls return. Here: one call on the whole batch (one big matrix product per
        convolution, which is what a GPU wants). ``CpuThreads`` splits it over cores.

        columns_per_sample: the matrix-product columns (output pixels) one sample makes;
        values_per_column, a keyword: the numbers in each column (kh*kw*C for im2col).
        Both only say how big a slice may be; a backend that does not split ignores them.
        """
        return work(slice(0, n))

    # ---- convolution kernels -----------------------------------------------------
    def im2col(self, x, kernel_size, stride, padding):
        """Unfold every receptive field of ``x`` into one row of a matrix.

        x: (N, C, H, W); kernel_size, stride: an int or an (h, w) pair; padding (zeros)
        as ``F.conv2d_forward`` takes it, an int p or a pair (ph, pw) for the same
        amount on both sides, or ((top, bottom), (left, right)) (``conv_arguments``).
        Returns cols: (N*Ho*Wo, kh*kw*C), one row per output position (n, i, j), its
        entries ordered (u, v, c), where Ho = (H + top + bottom - kh) // sh + 1 (and
        likewise Wo). A convolution is then ``cols @ W.T``: one small linear layer
        applied to every patch.

        The image is first copied channels-last, (N, Hp, Wp, C), padding included:
        a patch's row of kw pixels is then kw*C consecutive numbers. One strided *view*
        exposes every patch without copying; the reshape at the end makes the copy
        the matrix product wants, in long contiguous runs.
        """
        (kh, kw), (sh, sw), padding = conv_arguments(kernel_size, stride, padding)
        x = self._pad_channels_last(x, padding)
        n, hp, wp, c = x.shape
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        s_n, s_h, s_w, s_c = x.strides
        patches = self.xp.lib.stride_tricks.as_strided(
            x,
            shape=(n, ho, wo, kh, kw, c),
            strides=(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c),
        )
        return patches.reshape(n * ho * wo, kh * kw * c)

    def col2im(self, cols, x_shape, kernel_size, stride, padding):
        """The adjoint of ``im2col``: add every row back where its patch came from.

        cols: (N*Ho*Wo, kh*kw*C); x_shape (N, C, H, W) of the unpadded image;
        kernel_size, stride and padding as ``im2col`` takes them.
        Returns x: (N, C, H, W), the sum of all patch entries that fall on each pixel
        (padding positions are cropped away).

        Overlapping patches make this a scatter-add. Instead of ``np.add.at`` (slow,
        one element at a time) it loops over the kh*kw kernel offsets and adds one
        strided slice per offset: each slice touches every pixel at most once. The
        sum is built channels-last, like im2col's copy, so every run is C long.
        """
        xp = self.xp
        kernel_size, (sh, sw), padding = conv_arguments(kernel_size, stride, padding)
        (kh, kw), ((top, bottom), (left, right)) = kernel_size, padding
        n, c, h, w = x_shape
        hp, wp = h + top + bottom, w + left + right
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        patches = cols.reshape(n, ho, wo, kh, kw, c)
        if kernel_covers_image(x_shape, kernel_size, padding):
            x_padded = patches.reshape(n, kh, kw, c)  # one patch per sample: no overlap
        else:
            x_padded = xp.zeros((n, hp, wp, c), dtype=cols.dtype)
            for u in range(kh):
                for v in range(kw):
                    x_padded[:, u : u + sh * ho : sh, v : v + sw * wo : sw] += patches[..., u, v, :]
        x_cropped = x_padded[:, top : top + h, left : left + w]
        return xp.ascontiguousarray(x_cropped.transpose(0, 3, 1, 2))

    def _pad_channels_last(self, x, padding):
        """(N, C, H, W) -> (N, H + top + bottom, W + left + right, C), zeros around."""
        (top, bottom), (left, right) = padding
        n, c, h, w = x.shape
        out = self.xp.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
        out[:, top : top + h, left : left + w] = x.transpose(0, 2, 3, 1)
        return out

    # ---- batch normalisation (training mode) -----------------------------------
    def batchnorm_forward(self, x, gamma, beta, eps):
        """Normalise each channel by its batch statistics, then scale and shift.

        x: ``(N, C, *spatial)``; gamma, beta: (C,).
        Returns out (like x), mean (C,), var (C,) biased, x_hat (like x), inv_std (C,).
        """
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = x.mean(axis=axes)
        x_hat = x - mean.reshape(shape)  # centred now, normalised in place below
        rows = x_hat.reshape(x.shape[0], x.shape[1], -1)
        var = self.xp.einsum("ncm,ncm->c", rows, rows) / rows[:, 0].size  # no x_hat**2 copy
        inv_std = 1.0 / self.xp.sqrt(var + eps)
        x_hat *= inv_std.reshape(shape)
        out = x_hat * gamma.reshape(shape)
        out += beta.reshape(shape)
        return out, mean, var, x_hat, inv_std

    def batchnorm_backward(self, grad_out, x_hat, gamma, inv_std):
        """Gradients of ``batchnorm_forward`` (training mode), in the compact form::

            dx = inv_std / M * (M * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat))

        with dx_hat = grad_out * gamma and M the number of values per channel.
        Returns dx (like x), dgamma (C,), dbeta (C,).
        """
        shape = (1, -1) + (1,) * (x_hat.ndim - 2)
        rows = grad_out.reshape(grad_out.shape[0], grad_out.shape[1], -1)  # (N, C, M')
        m = rows[:, 0].size
        dbeta = rows.sum(axis=(0, 2))
        dgamma = self.xp.einsum("ncm,ncm->c", rows, x_hat.reshape(rows.shape))
        # sum(dx_hat) = gamma * dbeta and sum(dx_hat * x_hat) = gamma * dgamma.
        scale = gamma * inv_std / m
        dx = x_hat * (-scale * dgamma).reshape(shape)
        dx += grad_out * (scale * m).reshape(shape)
        dx -= (scale * dbeta).reshape(shape)
        return dx, dgamma, dbeta

    def update_running_stats(self, running_mean, running_var, mean, var, momentum, count):
        """running <- (1 - momentum) * running + momentum * batch, in place, for the mean
        and for the *unbiased* variance var * count / (count - 1), as PyTorch does."""
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * (var * (count / (count - 1)))

    # ---- activations -------------------------------------------------------------
    def leaky_relu(self, x, negative_slope):
        """max(x, 0) + negative_slope * min(x, 0); ReLU is negative_slope = 0.

        For slopes <= 1 that is max(x, slope * x) (min for steeper slopes): two
        plain passes, with no boolean mask, unlike ``where(x > 0, x, slope * x)``.
        """
        if negative_slope == 0:
            return self.xp.maximum(x, 0)  # not x * 0, which is nan for x = -inf
        out = x * negative_slope
        pick = self.xp.maximum if negative_slope <= 1 else self.xp.minimum
        return pick(out, x, out=out)

    def leaky_relu_backward(self, grad_out, x, negative_slope):
        """grad_out * (1 where x > 0, else negative_slope): the derivative at the kink
        (x = 0) is taken as negative_slope, as PyTorch does."""
        slope = (x > 0).astype(grad_out.dtype)
        slope *= 1 - negative_slope
        slope += negative_slope
        slope *= grad_out
        return slope

    def sigmoid(self, x):
        """``1 / (1 + exp(-x))`` without overflow: exp is only ever taken of ``-|x|``."""
        xp = self.xp
        e = xp.exp(-abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    # ---- loss ------------------------------------------------------------------------
    def bce_with_logits(self, logits, targets, reduction):
        """mean (or sum) of ``max(z, 0) - z t + log(1 + exp(-|z|))``: a 0-d array."""
        xp = self.xp
        losses = xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-abs(logits)))
        return losses.mean() if reduction == "mean" else losses.sum()

    def bce_with_logits_backward(self, logits, targets, reduction, dloss):
        """dloss * (sigmoid(z) - t), divided by the count for the mean."""
        grad = self.sigmoid(logits) - targets
        if reduction == "mean":
            grad = grad / logits.size
        return grad * grad.dtype.type(dloss) if dloss != 1.0 else grad

    # ---- optimiser -----------------------------------------------------------------
    def adam_update(self, param, grad, m, v, *, lr, beta1, beta2, eps, step):
        """One Adam step, in place on param, m and v (PyTorch's formula).

        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        param <- param - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        """
        xp = self.xp
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = xp.sqrt(v) / bias_correction2_sqrt + eps
        param -= (lr / bias_correction1) * m / denom


class CpuThreads:
    """A convolution split over the CPU's cores (mixed into the NumPy and Numba backends).

    A convolution is a few matrix products per sample. Handing each core its own
    samples, with a single-threaded BLAS, keeps every sample's im2col rows in that
    core's cache and never leaves a BLAS thread pool spinning while other code runs.
    The measured gain over one multi-threaded product on the whole batch is in
    benchmarks/RESULTS.md.

    Batch norm and LeakyReLU are split the same way, by channels and by values: each
    piece is ``Backend``'s own formula on a slice (NumPy releases the GIL in its loops),
    so the reference math runs on every core unchanged. The Numba backend replaces
    them with its own parallel kernels.
    """

    MIN_COLUMNS = 256  # matrix-product columns per slice; fewer makes BLAS inefficient
    MIN_VALUES = 2**18  # and numbers per slice (1 MB of float32): im2col's for a
    # convolution, the array's for batch norm and LeakyReLU. Fewer, and the per-call
    # cost (Python, thread hand-offs) outweighs the work (benchmarks/RESULTS.md).

    def __init__(self, seed: int | None = None):
        super().__init__(seed)
        self.set_threads(None)

    def set_threads(self, threads: int | None) -> None:
        """How many threads ``for_each_batch`` uses. None: ``MINIGAN_NUM_THREADS``,
        else ``OMP_NUM_THREADS``, else every core this process may run on."""
        if threads is None:
            threads = _threads_from_environment()
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if getattr(self, "_pool", None) is not None and int(threads) != self.threads:
            self._pool.shutdown()
            self._pool = None
        self.threads = int(threads)
        self._pool = getattr(self, "_pool", None)

    def slices(self, n: int, columns_per_sample: int, values_per_column: int = 1) -> list:
        """The slices that ``for_each_batch`` cuts ``range(n)`` into: as small as the
        matrix products allow (at least ``MIN_COLUMNS`` columns and ``MIN_VALUES``
        numbers, a column being ``values_per_column`` numbers), so their data stays in
        cache, and no larger than an even share, ceil(n / threads) samples, so that
        every thread gets work when the batch is big enough to split at all."""
        per_sample = max(columns_per_sample, 1)
        per_slice = max(
            -(-self.MIN_COLUMNS // per_sample),
            -(-self.MIN_VALUES // (per_sample * max(values_per_column, 1))),
        )
        per_slice = min(per_slice, -(-n // self.threads))
        return [slice(lo, min(lo + per_slice, n)) for lo in range(0, n, per_slice)]

    def for_each_batch(self, work, n: int, columns_per_sample: int, *, values_per_column: int = 1):
        """Call ``work(batch)`` on slices ``batch`` that cover ``range(n)`` (``slices``),
        in parallel; returns the sum of what the calls return (None if they return None).

        ``work`` writes its slice of the output in place and returns its share of
        anything summed over the batch (a weight gradient). Each thread adds up its
        own slices' results, then the threads' sums are added.
        """
        slices = self.slices(n, columns_per_sample, values_per_column)
        threads = min(self.threads, len(slices))

        def run(first):  # the slices first, first + threads, ...
            total = None
            for batch in slices[first::threads]:
                total = _add(total, work(batch))
            return total

        if threads == 1:
            return run(0)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.threads - 1)
        with _single_threaded_blas():
            others = [self._pool.submit(run, first) for first in range(1, threads)]
            total = run(0)
            for future in others:
                total = _add(total, future.result())
        return total

    # ---- batch norm and LeakyReLU: the reference formulas, on slices ----------------
    def _one_piece(self, x) -> bool:
        """Too little work to split: one thread, or fewer than ``2 * MIN_VALUES`` values
        (fewer than two slices' worth), where ``Backend``'s formula runs as it is."""
        return self.threads == 1 or x.size < 2 * self.MIN_VALUES

    def batchnorm_forward(self, x, gamma, beta, eps):
        if self._one_piece(x):
            return super().batchnorm_forward(x, gamma, beta, eps)
        reference, c, xp = super().batchnorm_forward, x.shape[1], self.xp
        # The dtypes the one-piece formula gives: out = x_hat * gamma + beta, in place.
        out, x_hat = xp.empty(x.shape, dtype=xp.result_type(x, gamma)), xp.empty_like(x)
        mean, var, inv_std = (xp.empty(c, dtype=x.dtype) for _ in range(3))

        def channels(part):
            pieces = reference(x[:, part], gamma[part], beta[part], eps)
            out[:, part], mean[part], var[part], x_hat[:, part], inv_std[part] = pieces

        self.for_each_batch(channels, c, x.size // c)
        return out, mean, var, x_hat, inv_std

    def batchnorm_backward(self, grad_out, x_hat, gamma, inv_std):
        if self._one_piece(grad_out):
            return super().batchnorm_backward(grad_out, x_hat, gamma, inv_std)
        reference, c, xp = super().batchnorm_backward, grad_out.shape[1], self.xp
        # The dtypes the one-piece formula gives (dx mixes all four inputs).
        dx = xp.empty(grad_out.shape, dtype=xp.result_type(grad_out, x_hat, gamma, inv_std))
        dgamma = xp.empty(c, dtype=xp.result_type(grad_out, x_hat))
        dbeta = xp.empty(c, dtype=grad_out.dtype)

        def channels(part):
            pieces = reference(grad_out[:, part], x_hat[:, part], gamma[part], inv_std[part])
            dx[:, part], dgamma[part], dbeta[part] = pieces

        self.for_each_batch(channels, c, grad_out.size // c)
        return dx, dgamma, dbeta

    def leaky_relu(self, x, negative_slope):
        if self._one_piece(x):
            return super().leaky_relu(x, negative_slope)
        reference, flat = super().leaky_relu, self.xp.ascontiguousarray(x).reshape(-1)
        return self._by_values(lambda part: reference(flat[part], negative_slope), x)

    def leaky_relu_backward(self, grad_out, x, negative_slope):
        if self._one_piece(x):
            return super().leaky_relu_backward(grad_out, x, negative_slope)
        reference, xp = super().leaky_relu_backward, self.xp
        g, flat = xp.ascontiguousarray(grad_out).reshape(-1), xp.ascontiguousarray(x).reshape(-1)
        return self._by_values(
            lambda part: reference(g[part], flat[part], negative_slope), grad_out
        )

    def _by_values(self, piece, like):
        """A new array shaped like ``like``, its flat slices ``part`` filled with
        ``piece(part)`` on every core."""
        out = self.xp.empty(like.shape, dtype=like.dtype)
        out_flat = out.reshape(-1)

        def values(part):
            out_flat[part] = piece(part)

        self.for_each_batch(values, like.size, 1)
        return out


class NumpyBackend(CpuThreads, Backend):
    """The reference backend: plain NumPy, BLAS for the matrix products, every core."""

    name = "numpy"
    xp = np


def wrong_array_message(a, backend_name, where) -> str:
    """What to say when an array of one library meets a layer that lives on another."""
    kind = f"{type(a).__module__.split('.')[0]}.{type(a).__name__}"
    if isinstance(a, np.ndarray):
        fix = "move it there first with minigan.backend.current().from_numpy(x)"
    else:
        fix = "bring it to the host first with to_numpy() of the backend it came from"
    return f"{where}: got a {kind}, but this layer is on the {backend_name!r} backend; {fix}"


def conv_arguments(kernel_size, stride, padding):
    """The geometry arguments of ``im2col`` / ``col2im`` in the one form kernels use:
    ((kh, kw), (sh, sw), ((top, bottom), (left, right))).

    kernel_size and stride: an int or an (h, w) pair. padding: an int p (p on all
    four sides), a pair (ph, pw) (ph above and below, pw left and right, as
    ``F.conv2d_forward`` takes it), or ((top, bottom), (left, right)) for uneven
    sides (a transposed convolution's output_padding crops less at the bottom).
    Anything else is a one-line ValueError.
    """
    kernel_size = _int_pair(kernel_size, "kernel_size", minimum=1)
    stride = _int_pair(stride, "stride", minimum=1)
    try:
        if _is_int(padding) or all(map(_is_int, _as_tuple(padding))):
            ph, pw = _int_pair(padding, "padding")
            return kernel_size, stride, ((ph, ph), (pw, pw))
        vertical, horizontal = _as_tuple(padding)
        if not len(_as_tuple(vertical)) == len(_as_tuple(horizontal)) == 2:
            raise ValueError("not two (before, after) pairs")
        return kernel_size, stride, (_int_pair(vertical, ""), _int_pair(horizontal, ""))
    except ValueError:
        raise ValueError(
            "padding must be an int, an (h, w) pair or ((top, bottom), (left, right)) "
            f"of ints >= 0, got {padding!r}"
        ) from None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_tuple(value) -> tuple:
    """``value`` as a tuple if it is a sequence (list, tuple, array), else ()."""
    try:
        return tuple(value)
    except TypeError:
        return ()


def _int_pair(value, name, minimum=0) -> tuple[int, int]:
    """An int or an (h, w) pair of ints >= minimum, as a pair of ints."""
    values = (value, value) if _is_int(value) else _as_tuple(value)
    if len(values) != 2 or not all(_is_int(v) and v >= minimum for v in values):
        raise ValueError(
            f"{name} must be an int or an (h, w) pair of ints >= {minimum}, got {value!r}"
        )
    return int(values[0]), int(values[1])


def kernel_covers_image(x_shape, kernel_size, padding) -> bool:
    """True when the kernel is exactly the (unpadded) image: one patch per sample,
    so the convolution is a plain matrix product (the DCGAN's first and last layers)."""
    kernel_size, _, padding = conv_arguments(kernel_size, 1, padding)
    return tuple(x_shape[2:]) == kernel_size and not any(sum(padding, ()))


def _threads_from_environment() -> int:
    for variable in ("MINIGAN_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").strip()
        if value:
            try:
                return max(1, int(value.split(",")[0]))
            except ValueError:
                raise ValueError(f"{variable} must be a whole number, got {value!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _add(total, part):
    """total + part for None, arrays and tuples of arrays (None entries stay None)."""
    if total is None:
        return part
    if isinstance(total, tuple):
        return tuple(_add(t, p) for t, p in zip(total, part))
    if part is not None:
        total += part  # in place: the first part is a fresh result that work() gave away
    return total


_blas_controller = None


def _single_threaded_blas():
    """A context in which BLAS runs on the calling thread only (threadpoolctl)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")
