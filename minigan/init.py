"""Weight initialisation, in place, from the current backend's random stream.

``dcgan_init`` is the paper's: "All weights were initialized from a zero-centered
Normal distribution with standard deviation 0.02"; batch-norm scales start at
N(1, 0.02) and shifts at 0, as in the PyTorch DCGAN example.
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
    for weight and bias (its kaiming_uniform_ with a = sqrt(5) reduces to this)."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    uniform_(weight, -bound, bound)
    if bias is not None:
        uniform_(bias, -bound, bound)


def dcgan_init(model):
    """The DCGAN initialisation over every sub-layer of ``model``:
    conv and conv-transpose weights N(0, 0.02); batch-norm weight N(1, 0.02), bias 0.
    Returns ``model``."""
    from . import nn  # nn imports this module for its defaults

    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm):
            normal_(layer.weight, 1.0, 0.02)
            zeros_(layer.bias)
    return model
