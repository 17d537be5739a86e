"""What every layer shares: ``Parameter``, the ``Module`` base class and ``Sequential``.

A ``Module`` finds its parameters and sub-layers by looking at its attributes (in the
order they were set), so a layer only assigns them. It offers PyTorch's structure
(``parameters``, ``named_parameters``, ``modules``, ``train`` / ``eval``,
``state_dict`` / ``load_state_dict`` with PyTorch's keys), and the bookkeeping a
hand-written backward needs: ``remember`` what the forward computed, get it back
with ``saved`` (which checks the upstream gradient against that forward's output),
and ``add_grads`` into the parameters. Also the checks of the arguments layers share
(``float_dtype``, ``positive_int``, ``pair_at_least``). The layers are in ``nn.py``.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .functional import pair

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


# ---- the argument checks layers share ----------------------------------------------------


def float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def pair_at_least(value, name, low):
    both = pair(value, name)
    if min(both) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return both


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
