"""Layers: thin stateful wrappers around the functions in ``minigan.functional``.

Names, arguments, NCHW layout, parameter layouts and ``state_dict`` keys are
PyTorch's, so a PyTorch user can guess them and weights copy across both ways.

Every layer has ``forward(x)`` (also ``layer(x)``), which keeps what the backward
needs, and ``backward(grad_output) -> grad_input``, which *adds* the parameter
gradients into each ``Parameter.grad`` (call ``zero_grad()`` between steps).
"""

from __future__ import annotations

import numpy as np

from . import backend, init
from . import functional as F

_NOT_RUN = object()  # the cache of a layer whose forward has not run yet


class Parameter:
    """A trainable array (``data``) and the gradient accumulated for it (``grad``)."""

    def __init__(self, data):
        self.data = data
        self.grad = backend.current().xp.zeros_like(data)
        self.requires_grad = True  # False: backward leaves .grad alone (and may skip it)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self) -> str:
        return f"Parameter(shape={tuple(self.shape)}, dtype={self.dtype})"


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _pair_at_least(value, name, low):
    pair = F.pair(value, name)
    if min(pair) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return pair


class Module:
    """Base class: parameters, sub-layers, train/eval mode and state dicts.

    Parameters and sub-layers are found by looking at the attributes, in the order
    they were set. ``buffers`` names the non-trainable arrays saved in the state dict.
    """

    training = True
    buffers: tuple[str, ...] = ()
    _cache = _NOT_RUN

    def __call__(self, x):
        if hasattr(x, "shape"):  # check_input speaks of anything else
            backend.current().check_array(x, self._one_line_name)
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_output, input_grad=True):
        """d loss / d input from d loss / d output; adds the parameter gradients into
        their ``.grad``. ``input_grad=False`` says the input gradient is not needed (the
        first layer of a model whose input is data): a layer may then skip it and return
        None (the convolutions and Linear do; cheap element-wise layers compute it anyway)."""
        raise NotImplementedError

    def add_grads(self, **grads):
        """Add each gradient into the parameter of that name, if it wants one."""
        for name, grad in grads.items():
            param = getattr(self, name)
            if param is not None and grad is not None and param.requires_grad:
                param.grad += grad

    def requires_grad_(self, requires_grad=True):
        """Switch gradient accumulation for every parameter (e.g. freeze D while G learns)."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def remember(self, out, cache):
        """Keep what the backward needs, and the output's shape and dtype (which the
        upstream gradient must have); returns ``out``."""
        self._cache, self._out_spec = cache, (tuple(out.shape), out.dtype)
        return out

    def saved(self, grad_output):
        """What the last forward kept for the backward, once ``grad_output`` is
        checked against that forward's output; an error if there was no forward."""
        if self._cache is _NOT_RUN:
            raise RuntimeError(
                f"{type(self).__name__}.backward() was called before forward(); "
                "run the forward pass first"
            )
        shape, dtype = self._out_spec
        if tuple(grad_output.shape) != shape:
            raise ValueError(
                f"{self!r}.backward: grad_output has shape {tuple(grad_output.shape)}, "
                f"expected the forward output's shape {shape}"
            )
        if grad_output.dtype != dtype:
            raise TypeError(
                f"{self!r}.backward: grad_output is {grad_output.dtype}, expected the "
                f"forward output's dtype {dtype}; convert it explicitly (g.astype(...))"
            )
        return self._cache

    # ---- structure ---------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return (child for _, child in self.named_children())

    def modules(self):
        """This module and every module inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def num_parameters(self) -> int:
        return sum(int(p.data.size) for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    # ---- state dicts ---------------------------------------------------------------
    def _named_state(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value.data
        for name in self.buffers:
            yield prefix + name, getattr(self, name)
        for name, child in self.named_children():
            yield from child._named_state(f"{prefix}{name}.")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer as a host NumPy copy, under PyTorch's keys."""
        to_numpy = backend.current().to_numpy
        return {key: to_numpy(value).copy() for key, value in self._named_state()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, or anything ``np.asarray`` takes) into this module in place.

        Shapes must match; values are cast to each parameter's own dtype. With
        ``strict`` (default) the keys must match exactly, except that a batch norm's
        ``num_batches_tracked`` may be missing (older and many exported PyTorch state
        dicts lack it; PyTorch accepts them too): it then keeps its value.
        """
        own = dict(self._named_state())
        if strict:
            optional = ("num_batches_tracked",)
            missing = [k for k in own if k not in state_dict and not k.endswith(optional)]
            unexpected = [k for k in state_dict if k not in own]
            if missing or unexpected:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                    f"unexpected keys {unexpected}"
                )
        bk = backend.current()
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            if value.shape != tuple(target.shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape "
                    f"{value.shape}, expected {tuple(target.shape)}"
                )
            target[...] = bk.from_numpy(value.astype(target.dtype, copy=False))

    # ---- input checks --------------------------------------------------------------
    def check_input(self, x, layout, channels=None):
        """Raise a ValueError naming this layer if x does not fit ``layout``.

        layout: the dimension names, e.g. "NCHW" or ("NC", "NCL"); channels: the
        size dimension 1 must have (None: any).
        """
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{self!r}: expected an array, got {type(x).__name__}")
        layouts = (layout,) if isinstance(layout, str) else layout
        fits = any(x.ndim == len(lay) for lay in layouts)
        if fits and channels is not None:
            fits = x.shape[1] == channels
        if not fits:
            expected = " or ".join(
                "(" + ", ".join(self._dim_name(d, channels) for d in lay) + ")" for lay in layouts
            )
            raise ValueError(f"{self!r}: expected input of shape {expected}, got {tuple(x.shape)}")

    @staticmethod
    def _dim_name(dim, channels):
        if dim == "C" and channels is not None:
            return f"C={channels}"
        return dim

    def check_dtype(self, x, param):
        if not isinstance(x, type(param.data)):  # e.g. a NumPy input, parameters on the GPU
            raise TypeError(backend.wrong_array_message(x, self._backend_of(param), repr(self)))
        if x.dtype != param.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} does not match parameter dtype "
                f"{param.dtype}; convert one of them explicitly (x.astype(...))"
            )

    def _one_line_name(self):
        """repr(self), or just the class name where the repr spans lines (a model)."""
        text = repr(self)
        return text if "\n" not in text else type(self).__name__

    @staticmethod
    def _backend_of(param):
        return next((name for name, bk in backend.created().items()
                     if bk.is_array(param.data)), "another")  # fmt: skip

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


# ---- layers with parameters ---------------------------------------------------------------


class Conv2d(Module):
    """2-D convolution (cross-correlation).  x: (N, in, H, W) -> (N, out, Ho, Wo),
    Ho = (H + 2*padding - kernel) // stride + 1.  weight: (out, in, kh, kw), bias: (out,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 *, bias=True, dtype=np.float32):  # fmt: skip
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = _pair_at_least(kernel_size, "kernel_size", 1)
        self.stride = _pair_at_least(stride, "stride", 1)
        self.padding = _pair_at_least(padding, "padding", 0)
        dtype, xp = _float_dtype(dtype), backend.current().xp
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Parameter(xp.empty(shape, dtype=dtype))
        self.bias = Parameter(xp.empty(self.out_channels, dtype=dtype)) if bias else None
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        init.default_uniform_(self.weight, self.bias, fan_in)

    def forward(self, x):
        self.check_input(x, "NCHW", self.in_channels)
        self.check_dtype(x, self.weight)
        for size, k, p, dim in zip(x.shape[2:], self.kernel_size, self.padding, "HW"):
            if size + 2 * p < k:
                raise ValueError(
                    f"{self!r}: input {dim}={size} (padded {size + 2 * p}) is smaller "
                    f"than the kernel ({k}); got input of shape {tuple(x.shape)}"
                )
        bias = self.bias.data if self.bias is not None else None
        return self.remember(
            *F.conv2d_forward(x, self.weight.data, bias, self.stride, self.padding)
        )

    def backward(self, grad_output, input_grad=True):
        cache = self.saved(grad_output)
        dx, dw, db = F.conv2d_backward(grad_output, cache, input_grad, self.weight.requires_grad)
        self.add_grads(weight=dw, bias=db)
        return dx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")  # fmt: skip
        return s + ("" if self.bias is not None else ", bias=False")


class ConvTranspose2d(Module):
    """Transposed convolution (the adjoint of Conv2d).  x: (N, in, H, W) -> (N, out, Ho, Wo),
    Ho = (H - 1)*stride - 2*padding + kernel + output_padding.
    weight: (in, out, kh, kw) as in PyTorch, bias: (out,).

    output_padding (< stride) only adds rows/columns at the bottom/right: several
    input sizes of a strided Conv2d give the same output size, and it picks one.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, *, bias=True, dtype=np.float32):  # fmt: skip
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = _pair_at_least(kernel_size, "kernel_size", 1)
        self.stride = _pair_at_least(stride, "stride", 1)
        self.padding = _pair_at_least(padding, "padding", 0)
        self.output_padding = _pair_at_least(output_padding, "output_padding", 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(
                f"output_padding {self.output_padding} must be smaller than stride {self.stride}"
            )
        dtype, xp = _float_dtype(dtype), backend.current().xp
        shape = (self.in_channels, self.out_channels, *self.kernel_size)
        self.weight = Parameter(xp.empty(shape, dtype=dtype))
        self.bias = Parameter(xp.empty(self.out_channels, dtype=dtype)) if bias else None
        # PyTorch computes fan_in from dimension 1 of the weight, here out_channels.
        fan_in = self.out_channels * self.kernel_size[0] * self.kernel_size[1]
        init.default_uniform_(self.weight, self.bias, fan_in)

    def output_size(self, height, width):
        return tuple(
            F.conv_transpose2d_output_size(size, k, s, p, op)
            for size, k, s, p, op in zip(
                (height, width), self.kernel_size, self.stride, self.padding, self.output_padding
            )
        )

    def forward(self, x):
        self.check_input(x, "NCHW", self.in_channels)
        self.check_dtype(x, self.weight)
        if min(self.output_size(*x.shape[2:])) < 1:
            raise ValueError(
                f"{self!r}: input of shape {tuple(x.shape)} gives an empty output "
                f"{self.output_size(*x.shape[2:])}; reduce the padding"
            )
        bias = self.bias.data if self.bias is not None else None
        return self.remember(
            *F.conv_transpose2d_forward(
                x, self.weight.data, bias, self.stride, self.padding, self.output_padding
            )
        )

    def backward(self, grad_output, input_grad=True):
        cache = self.saved(grad_output)
        dx, dw, db = F.conv_transpose2d_backward(
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


class Linear(Module):
    """y = x @ weight^T + bias.  x: (N, *, in) -> (N, *, out); weight: (out, in), bias: (out,)."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32):
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        dtype, xp = _float_dtype(dtype), backend.current().xp
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
        self.num_features = _positive_int(num_features, "num_features")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        dtype, xp = _float_dtype(dtype), backend.current().xp
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


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope * x otherwise. Any shape."""

    def __init__(self, negative_slope=0.01, inplace=False):
        # inplace is accepted for PyTorch code and ignored: the output is always new.
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return self.remember(*F.leaky_relu_forward(x, self.negative_slope))

    def backward(self, grad_output, input_grad=True):
        return F.leaky_relu_backward(grad_output, self.saved(grad_output))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ReLU(LeakyReLU):
    """y = max(x, 0). Any shape."""

    def __init__(self, inplace=False):
        super().__init__(0.0, inplace)

    def extra_repr(self):
        return ""


class Tanh(Module):
    """y = tanh(x), in (-1, 1). Any shape."""

    def forward(self, x):
        return self.remember(*F.tanh_forward(x))

    def backward(self, grad_output, input_grad=True):
        return F.tanh_backward(grad_output, self.saved(grad_output))


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), in (0, 1). Any shape."""

    def forward(self, x):
        return self.remember(*F.sigmoid_forward(x))

    def backward(self, grad_output, input_grad=True):
        return F.sigmoid_backward(grad_output, self.saved(grad_output))


class Dropout(Module):
    """Training: zero each value with probability p, scale the rest by 1/(1-p).
    Eval: the identity. Any shape."""

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x):
        return self.remember(*F.dropout_forward(x, self.p, self.training))

    def backward(self, grad_output, input_grad=True):
        return F.dropout_backward(grad_output, self.saved(grad_output))

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """Flatten dimensions start_dim..end_dim into one; by default (N, *) -> (N, product of *)."""

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
    """(N, *) -> (N, *shape); e.g. Reshape(128, 7, 7) after a Linear layer.
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


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse. Sub-layers are named
    0, 1, 2, ... so state dict keys read "0.weight", "1.running_mean", as in PyTorch."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a layer")
        self.layers = list(layers)

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_output, input_grad=True):
        for i in range(len(self.layers) - 1, -1, -1):
            grad_output = self.layers[i].backward(grad_output, input_grad or i > 0)
        return grad_output

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


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
        self._cache = _NOT_RUN

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
        if self._cache is _NOT_RUN:
            raise RuntimeError("BCEWithLogitsLoss.backward() was called before computing the loss")
        return F.bce_with_logits_backward(self._cache, dloss)

    def __repr__(self):
        return f"BCEWithLogitsLoss(reduction={self.reduction!r})"
