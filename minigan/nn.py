"""Layers: thin stateful wrappers around the functions in ``minigan.functional``.

Names, arguments, NCHW layout, parameter layouts and ``state_dict`` keys are
PyTorch's, so a PyTorch user can guess them and weights copy across both ways.

Every layer has ``forward(x)`` (also ``layer(x)``), which keeps what the backward
needs, and ``backward(grad_output) -> grad_input``, which *adds* the parameter
gradients into each ``Parameter.grad`` (call ``zero_grad()`` between steps). What all
layers share (``Module``, ``Parameter``, ``Sequential``) is in ``module.py``; here
each layer is its formula, its arguments and its names.
"""

from __future__ import annotations

import numpy as np

from . import backend, init
from . import functional as F
from .module import Module, Parameter, Sequential, float_dtype, pair_at_least, positive_int

__all__ = [
    "Module", "Parameter", "Sequential", "Conv2d", "ConvTranspose2d", "Linear",
    "BatchNorm1d", "BatchNorm2d", "LeakyReLU", "ReLU", "Tanh", "Sigmoid", "Dropout",
    "Flatten", "Reshape", "Upsample", "Identity", "BCEWithLogitsLoss",
]  # fmt: skip


# ---- layers with parameters ---------------------------------------------------------------


class Convolution(Module):
    """What Conv2d and ConvTranspose2d share: their arguments and checks, a weight
    of shape (channels, channels, kh, kw) and a bias, PyTorch's default initialisation
    (fan_in from the weight's dimension 1, as PyTorch computes it for both), the
    backward and the repr. A subclass says which way its weight holds the channels
    (``transposed``) and gives ``output_size``, ``too_small`` (the words for an input
    too small for it), and ``convolve`` / ``convolve_backward``: its pair of
    ``functional`` functions with its own arguments bound."""

    transposed = False  # weight (out, in, kh, kw); transposed: (in, out, kh, kw)

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding,
                 output_padding, bias, dtype):  # fmt: skip
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = pair_at_least(kernel_size, "kernel_size", 1)
        self.stride = pair_at_least(stride, "stride", 1)
        self.padding = pair_at_least(padding, "padding", 0)
        self.output_padding = pair_at_least(output_padding, "output_padding", 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(
                f"output_padding {self.output_padding} must be smaller than stride {self.stride}"
            )
        channels = (self.in_channels, self.out_channels)
        channels = channels if self.transposed else channels[::-1]
        dtype, xp = float_dtype(dtype), backend.current().xp
        self.weight = Parameter(xp.empty((*channels, *self.kernel_size), dtype=dtype))
        self.bias = Parameter(xp.empty(self.out_channels, dtype=dtype)) if bias else None
        init.default_uniform_(self.weight, self.bias, channels[1] * int(np.prod(self.kernel_size)))

    def output_size(self, height, width) -> tuple[int, int]:
        """(Ho, Wo) for an input of height x width."""
        raise NotImplementedError

    def too_small(self, x) -> str:
        """What to tell the user whose input gives an empty output."""
        raise NotImplementedError

    def convolve(self, x, weight, bias):
        """(out, cache) of this convolution's forward."""
        raise NotImplementedError

    def convolve_backward(self, grad_output, cache, input_grad, weight_grad):
        """(dx, dw, db) of this convolution's backward."""
        raise NotImplementedError

    def forward(self, x):
        self.check_input(x, "NCHW", self.in_channels)
        self.check_dtype(x, self.weight)
        if min(self.output_size(*x.shape[2:])) < 1:
            raise ValueError(f"{self!r}: input of shape {tuple(x.shape)} {self.too_small(x)}")
        bias = self.bias.data if self.bias is not None else None
        return self.remember(*self.convolve(x, self.weight.data, bias))

    def backward(self, grad_output, input_grad=True):
        cache = self.saved(grad_output)
        dx, dw, db = self.convolve_backward(
            grad_output, cache, input_grad, self.weight.requires_grad
        )
        self.add_grads(weight=dw, bias=db)
        return dx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")  # fmt: skip
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        return s + ("" if self.bias is not None else ", bias=False")


class Conv2d(Convolution):
    """2-D convolution (cross-correlation).  x: (N, in, H, W) -> (N, out, Ho, Wo),
    Ho = (H + 2*padding - kernel) // stride + 1.  weight: (out, in, kh, kw), bias: (out,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 *, bias=True, dtype=np.float32):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, 0, bias, dtype)

    def output_size(self, height, width):
        return tuple(
            F.conv2d_output_size(size, k, s, p)
            for size, k, s, p in zip((height, width), self.kernel_size, self.stride, self.padding)
        )

    def too_small(self, x):
        padded = tuple(size + 2 * p for size, p in zip(x.shape[2:], self.padding))
        return f"is smaller than the kernel {self.kernel_size}, even padded {padded}"

    def convolve(self, x, weight, bias):
        return F.conv2d_forward(x, weight, bias, self.stride, self.padding)

    def convolve_backward(self, grad_output, cache, input_grad, weight_grad):
        return F.conv2d_backward(grad_output, cache, input_grad, weight_grad)


class ConvTranspose2d(Convolution):
    """Transposed convolution (the adjoint of Conv2d).  x: (N, in, H, W) -> (N, out, Ho, Wo),
    Ho = (H - 1)*stride - 2*padding + kernel + output_padding.
    weight: (in, out, kh, kw) as in PyTorch, bias: (out,).

    output_padding (< stride) only adds rows/columns at the bottom/right: several
    input sizes of a strided Conv2d give the same output size, and it picks one.
    """

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, *, bias=True, dtype=np.float32):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, bias, dtype)  # fmt: skip

    def output_size(self, height, width):
        return tuple(
            F.conv_transpose2d_output_size(size, k, s, p, op)
            for size, k, s, p, op in zip(
                (height, width), self.kernel_size, self.stride, self.padding, self.output_padding
            )
        )

    def too_small(self, x):
        return f"gives an empty output {self.output_size(*x.shape[2:])}; reduce the padding"

    def convolve(self, x, weight, bias):
        return F.conv_transpose2d_forward(
            x, weight, bias, self.stride, self.padding, self.output_padding
        )

    def convolve_backward(self, grad_output, cache, input_grad, weight_grad):
        return F.conv_transpose2d_backward(grad_output, cache, input_grad, weight_grad)


class Linear(Module):
    """``y = x @ weight^T + bias``.

    x: ``(N, *, in) -> (N, *, out)``; weight: (out, in), bias: (out,).
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        dtype, xp = float_dtype(dtype), backend.current().xp
        self.weight = Parameter(xp.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(xp.empty(self.out_features, dtype=dtype)) if bias else None
        init.default_uniform_(self.weight, self.bias, self.in_features)

    def forward(self, x):
        if getattr(x, "ndim", 0) < 2 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input of shape (N, *, {self.in_features}), "
                f"got {tuple(getattr(x, 'shape', ()))}"
            )
        self.check_dtype(x, self.weight)
        bias = self.bias.data if self.bias is not None else None
        return self.remember(*F.linear_forward(x, self.weight.data, bias))

    def backward(self, grad_output, input_grad=True):
        cache = self.saved(grad_output)
        dx, dw, db = F.linear_backward(grad_output, cache, input_grad, self.weight.requires_grad)
        self.add_grads(weight=dw, bias=db)
        return dx

    def extra_repr(self):
        bias = "" if self.bias is not None else ", bias=False"
        return f"in_features={self.in_features}, out_features={self.out_features}{bias}"


class BatchNorm(Module):
    """Batch normalisation over axis 1; BatchNorm1d and BatchNorm2d fix the layout.

    Training mode normalises with this batch's mean and *biased* variance (that is
    the variance of the values actually normalised) and moves the running
    statistics towards it: running = (1 - momentum) * running + momentum * batch,
    with the *unbiased* variance, as PyTorch does (momentum=None: a plain average
    over all batches seen). Eval mode normalises with the running statistics.
    weight (gamma) and bias (beta): (C,).
    """

    layouts: tuple[str, ...] = ()
    buffers = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        self.num_features = positive_int(num_features, "num_features")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        dtype, xp = float_dtype(dtype), backend.current().xp
        self.weight = Parameter(xp.ones(self.num_features, dtype=dtype))
        self.bias = Parameter(xp.zeros(self.num_features, dtype=dtype))
        self.running_mean = xp.zeros(self.num_features, dtype=dtype)
        self.running_var = xp.ones(self.num_features, dtype=dtype)
        self.num_batches_tracked = xp.zeros((), dtype=np.int64)

    def forward(self, x):
        self.check_input(x, self.layouts, self.num_features)
        self.check_dtype(x, self.weight)
        gamma, beta = self.weight.data, self.bias.data
        if not self.training:
            return self.remember(
                *F.batchnorm_forward(x, gamma, beta, self.eps, self.running_mean, self.running_var)
            )
        count = x.size // self.num_features  # values per channel
        if count < 2:
            raise ValueError(
                f"{self!r}: expected more than 1 value per channel when training, "
                f"got input of shape {tuple(x.shape)}"
            )
        out, cache = F.batchnorm_forward(x, gamma, beta, self.eps)
        self.num_batches_tracked += 1
        if self.momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked)
        else:
            momentum = self.momentum
        backend.current().update_running_stats(
            self.running_mean, self.running_var, cache["mean"], cache["var"], momentum, count
        )
        return self.remember(out, cache)

    def backward(self, grad_output, input_grad=True):
        dx, dgamma, dbeta = F.batchnorm_backward(grad_output, self.saved(grad_output))
        self.add_grads(weight=dgamma, bias=dbeta)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(BatchNorm):
    """x: (N, C) or (N, C, L); statistics per channel over N (and L)."""

    layouts = ("NC", "NCL")


class BatchNorm2d(BatchNorm):
    """x: (N, C, H, W); statistics per channel over N, H and W."""

    layouts = ("NCHW",)


# ---- layers without parameters -------------------------------------------------------------


class Elementwise(Module):
    """A layer that applies one function value by value: any shape in, the same shape
    out. A subclass names its pair of ``functional`` functions and, if the forward
    takes more than x, what else to pass (``arguments``)."""

    functions: tuple  # (forward(x, *arguments) -> (out, cache), backward(dout, cache) -> dx)

    def arguments(self) -> tuple:
        return ()

    def forward(self, x):
        forward, _ = self.functions
        return self.remember(*forward(x, *self.arguments()))

    def backward(self, grad_output, input_grad=True):
        _, backward = self.functions
        return backward(grad_output, self.saved(grad_output))


class LeakyReLU(Elementwise):
    """y = x for x > 0, negative_slope * x otherwise."""

    functions = F.leaky_relu_forward, F.leaky_relu_backward

    def __init__(self, negative_slope=0.01, inplace=False):
        # inplace is accepted for PyTorch code and ignored: the output is always new.
        self.negative_slope = float(negative_slope)

    def arguments(self):
        return (self.negative_slope,)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ReLU(LeakyReLU):
    """y = max(x, 0): LeakyReLU with slope 0."""

    def __init__(self, inplace=False):
        super().__init__(0.0, inplace)

    def extra_repr(self):
        return ""


class Tanh(Elementwise):
    """y = tanh(x), in (-1, 1)."""

    functions = F.tanh_forward, F.tanh_backward


class Sigmoid(Elementwise):
    """y = 1 / (1 + exp(-x)), in (0, 1)."""

    functions = F.sigmoid_forward, F.sigmoid_backward


class Dropout(Elementwise):
    """Training: zero each value with probability p, scale the rest by 1/(1-p).
    Eval: the identity."""

    functions = F.dropout_forward, F.dropout_backward

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p!r}")
        self.p = float(p)

    def arguments(self):
        return self.p, self.training

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    """y = x: a placeholder that keeps a layer's place (and the ``main.<i>`` numbering
    of the layers after it) where a model leaves a layer out, e.g. a DCGAN without
    batch norm. Like PyTorch's, it takes and ignores any arguments. x: any shape."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return self.remember(x, None)

    def backward(self, grad_output, input_grad=True):
        """dy/dx = 1: the upstream gradient passes through unchanged."""
        self.saved(grad_output)  # checks its shape against the forward's output
        return grad_output


class Flatten(Module):
    """Flatten dimensions start_dim..end_dim into one: by default ``(N, *) -> (N, prod(*))``."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        start, end = (d % x.ndim for d in (self.start_dim, self.end_dim))
        shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
        return self.remember(x.reshape(shape), x.shape)

    def backward(self, grad_output, input_grad=True):
        return grad_output.reshape(self.saved(grad_output))

    def extra_repr(self):
        if (self.start_dim, self.end_dim) == (1, -1):
            return ""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Reshape(Module):
    """``(N, *) -> (N, *shape)``; e.g. ``Reshape(128, 7, 7)`` after a Linear layer.
    One entry of shape may be -1, inferred as in ``numpy.reshape``."""

    def __init__(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])  # Reshape((5, 5)) means Reshape(5, 5)
        self.shape = tuple(int(s) for s in shape)
        if self.shape.count(-1) > 1 or any(s < 1 and s != -1 for s in self.shape):
            raise ValueError(f"Reshape: sizes must be positive with at most one -1, got {shape}")

    def forward(self, x):
        per_sample = x.size // max(x.shape[0], 1)
        fixed = int(np.prod([s for s in self.shape if s != -1]))
        fits = per_sample % fixed == 0 if -1 in self.shape else per_sample == fixed
        if not fits:
            raise ValueError(
                f"{self!r}: cannot reshape input of shape {tuple(x.shape)} "
                f"to (N, {', '.join(map(str, self.shape))})"
            )
        return self.remember(x.reshape(x.shape[0], *self.shape), x.shape)

    def backward(self, grad_output, input_grad=True):
        return grad_output.reshape(self.saved(grad_output))

    def extra_repr(self):
        return ", ".join(map(str, self.shape))


class Upsample(Module):
    """Nearest-neighbour upsampling by whole factors: (N, C, H, W) -> (N, C, H*sh, W*sw)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest"):
        if size is not None or scale_factor is None:
            raise ValueError("Upsample needs scale_factor= (size= is not supported)")
        if mode != "nearest":
            raise ValueError(f"Upsample supports mode='nearest' only, got {mode!r}")
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
        if len(factors) != 2 or any(f != int(f) or f < 1 for f in factors):
            raise ValueError(
                f"scale_factor must be a positive whole number or a pair, got {scale_factor!r}"
            )
        self.scale_factor = (int(factors[0]), int(factors[1]))
        self.mode = mode

    def forward(self, x):
        self.check_input(x, "NCHW")
        return self.remember(*F.upsample_nearest_forward(x, self.scale_factor))

    def backward(self, grad_output, input_grad=True):
        return F.upsample_nearest_backward(grad_output, self.saved(grad_output))

    def extra_repr(self):
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"


# ---- loss ------------------------------------------------------------------------------------


class BCEWithLogitsLoss:
    """Sigmoid + binary cross-entropy in one numerically stable step.

    ``loss = fn(logits, targets)`` returns the loss (mean over all values by default,
    or reduction="sum") as a 0-d array on the backend, like PyTorch's 0-d tensor:
    ``float(loss)`` is the number (on a GPU that waits for it, so a training loop asks
    once per step). ``fn.backward()`` returns d loss / d logits.
    targets: an array shaped like logits, or one number for all (e.g. 1.0 for "real").
    """

    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._cache = None  # until the first loss

    def __call__(self, logits, targets):
        return self.forward(logits, targets)

    def forward(self, logits, targets):
        if not hasattr(logits, "dtype") or logits.dtype.kind != "f":
            raise TypeError(f"{self!r}: logits must be a float array")
        bk = backend.current()
        bk.check_array(logits, self.__repr__)
        if np.ndim(targets) == 0:
            targets = float(targets)
        elif isinstance(targets, (list, tuple)):
            targets = bk.from_numpy(np.asarray(targets, dtype=logits.dtype))
        else:
            bk.check_array(targets, lambda: f"{self!r} (targets)")
            targets = targets.astype(logits.dtype, copy=False)
            if targets.shape != logits.shape:
                raise ValueError(
                    f"{self!r}: targets of shape {tuple(targets.shape)} do not match "
                    f"logits of shape {tuple(logits.shape)}"
                )
        loss, self._cache = F.bce_with_logits_forward(logits, targets, self.reduction)
        return loss

    def backward(self, dloss=1.0):
        if self._cache is None:
            raise RuntimeError("BCEWithLogitsLoss.backward() was called before computing the loss")
        return F.bce_with_logits_backward(self._cache, dloss)

    def __repr__(self):
        return f"BCEWithLogitsLoss(reduction={self.reduction!r})"
