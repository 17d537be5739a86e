"""Weight initialisation, in place, from the current backend's random stream:
``normal_``, ``uniform_``, ``zeros_``, ``ones_`` and PyTorch's default for Linear and
the convolutions. The DCGAN's own is ``minigan.models.dcgan.dcgan_init``.
"""

from __future__ import annotations

import math

from . import backend


def normal_(param, mean=0.0, std=1.0):
    """Fill ``param.data`` with samples of N(mean, std^2)."""
    data = param.data
    data[...] = backend.current().randn(data.shape, dtype=data.dtype) * std + mean
    return param


def uniform_(param, low=0.0, high=1.0):
    """Fill ``param.data`` with samples of U(low, high)."""
    data = param.data
    data[...] = backend.current().rand(data.shape, dtype=data.dtype) * (high - low) + low
    return param


def zeros_(param):
    param.data[...] = 0
    return param


def ones_(param):
    param.data[...] = 1
    return param


def default_uniform_(weight, bias, fan_in):
    """PyTorch's default for Linear and convolutions: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weight and bias (its ``kaiming_uniform_`` with a = sqrt(5) reduces to this)."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    uniform_(weight, -bound, bound)
    if bias is not None:
        uniform_(bias, -bound, bound)


def __getattr__(name):
    if name == "dcgan_init":  # it knows the layers, and the layers import this module
        raise AttributeError(
            "minigan.init.dcgan_init moved to minigan.models.dcgan: "
            "from minigan.models.dcgan import dcgan_init"
        )
    raise AttributeError(f"module 'minigan.init' has no attribute {name!r}")
