"""Hypothesis strategies that build one layer and an input for it.

``CASES[name](dtype)`` is a strategy drawing ``(layer, x)`` on the current backend:
a random configuration (kernel 1-5, stride 1-3, padding 0-2, output_padding <
stride, non-square sizes, batch 1 and more, with and without bias, train and eval
mode) and random values. Every test body that runs "for every layer" draws from here.
"""

import math

import numpy as np
from hypothesis import strategies as st

import minigan
from minigan import backend, gradcheck, nn

sizes = st.integers(1, 3)
kernels = st.tuples(st.integers(1, 5), st.integers(1, 5))
strides = st.tuples(st.integers(1, 3), st.integers(1, 3))
paddings = st.tuples(st.integers(0, 2), st.integers(0, 2))


def _array(draw, shape, dtype, scale=1.0):
    """Random normal values on the current backend, from a drawn seed."""
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    return backend.current().from_numpy(values.astype(dtype))


def _seed_weights(draw):
    minigan.manual_seed(draw(st.integers(0, 2**32 - 1)))


@st.composite
def conv2d(draw, dtype):
    (kh, kw), (sh, sw), (ph, pw) = draw(kernels), draw(strides), draw(paddings)
    h = draw(st.integers(max(1, kh - 2 * ph), max(1, kh - 2 * ph) + 4))
    w = draw(st.integers(max(1, kw - 2 * pw), max(1, kw - 2 * pw) + 4))
    cin, cout, n = draw(sizes), draw(sizes), draw(sizes)
    _seed_weights(draw)
    layer = nn.Conv2d(
        cin, cout, (kh, kw), (sh, sw), (ph, pw), bias=draw(st.booleans()), dtype=dtype
    )
    return layer, _array(draw, (n, cin, h, w), dtype)


def _smallest_transpose_input(k, s, p, op):
    """The smallest H with (H - 1)*s - 2p + k + op >= 1."""
    return max(1, math.ceil((2 * p - k - op + 1) / s) + 1)


@st.composite
def conv_transpose2d(draw, dtype):
    (kh, kw), (sh, sw), (ph, pw) = draw(kernels), draw(strides), draw(paddings)
    oph, opw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    h0 = _smallest_transpose_input(kh, sh, ph, oph)
    w0 = _smallest_transpose_input(kw, sw, pw, opw)
    h, w = draw(st.integers(h0, h0 + 3)), draw(st.integers(w0, w0 + 3))
    cin, cout, n = draw(sizes), draw(sizes), draw(sizes)
    _seed_weights(draw)
    layer = nn.ConvTranspose2d(
        cin, cout, (kh, kw), (sh, sw), (ph, pw), (oph, opw), bias=draw(st.booleans()), dtype=dtype
    )
    return layer, _array(draw, (n, cin, h, w), dtype)


@st.composite
def linear(draw, dtype):
    fin, fout = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    shape = draw(st.sampled_from([(draw(sizes), fin), (draw(sizes), draw(sizes), fin)]))
    _seed_weights(draw)
    return nn.Linear(fin, fout, bias=draw(st.booleans()), dtype=dtype), _array(draw, shape, dtype)


def _batchnorm(draw, layer_class, shape, dtype):
    c = shape[1]
    layer = layer_class(c, momentum=draw(st.sampled_from([0.1, 0.5, None])), dtype=dtype)
    layer.weight.data[...] = _array(draw, (c,), dtype, 0.5) + 1
    layer.bias.data[...] = _array(draw, (c,), dtype)
    training = draw(st.booleans()) and math.prod(shape) // c >= 2
    if not training:
        layer.eval()
        layer.running_mean[...] = _array(draw, (c,), dtype)
        layer.running_var[...] = abs(_array(draw, (c,), dtype)) + 0.5
    return layer, _array(draw, shape, dtype, scale=draw(st.sampled_from([0.1, 1.0, 10.0])))


@st.composite
def batchnorm2d(draw, dtype):
    shape = (draw(sizes), draw(sizes), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return _batchnorm(draw, nn.BatchNorm2d, shape, dtype)


@st.composite
def batchnorm1d(draw, dtype):
    n, c = draw(st.integers(2, 5)), draw(sizes)
    shape = draw(st.sampled_from([(n, c), (draw(sizes), c, draw(st.integers(1, 5)))]))
    return _batchnorm(draw, nn.BatchNorm1d, shape, dtype)


_any_shape = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@st.composite
def leaky_relu(draw, dtype):
    layer = nn.LeakyReLU(draw(st.sampled_from([0.01, 0.2, 0.5])))
    return layer, gradcheck.away_from_kink(_array(draw, draw(_any_shape), dtype))


@st.composite
def relu(draw, dtype):
    return nn.ReLU(), gradcheck.away_from_kink(_array(draw, draw(_any_shape), dtype))


@st.composite
def tanh(draw, dtype):
    return nn.Tanh(), _array(draw, draw(_any_shape), dtype, scale=2.0)


@st.composite
def sigmoid(draw, dtype):
    return nn.Sigmoid(), _array(draw, draw(_any_shape), dtype, scale=4.0)


@st.composite
def dropout(draw, dtype):
    layer = nn.Dropout(draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])))
    if draw(st.booleans()):
        layer.eval()
    return layer, _array(draw, draw(_any_shape), dtype)


@st.composite
def flatten(draw, dtype):
    return nn.Flatten(), _array(draw, (draw(sizes),) + draw(_any_shape), dtype)


@st.composite
def identity(draw, dtype):
    return nn.Identity(), _array(draw, draw(_any_shape), dtype)


@st.composite
def reshape(draw, dtype):
    n, a, b, c = draw(sizes), draw(sizes), draw(sizes), draw(sizes)
    return nn.Reshape(a * b, c), _array(draw, (n, a, b * c), dtype)


@st.composite
def upsample(draw, dtype):
    factor = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    shape = (draw(sizes), draw(sizes), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return nn.Upsample(scale_factor=factor), _array(draw, shape, dtype)


@st.composite
def sequential(draw, dtype):
    """A small DCGAN-like stack: strided conv, batch norm, tanh, transposed conv."""
    cin, mid, n = draw(sizes), draw(st.integers(2, 3)), 2  # 2: batch norm needs 2 values
    _seed_weights(draw)
    layer = nn.Sequential(
        nn.Conv2d(cin, mid, 3, stride=2, padding=1, bias=False, dtype=dtype),
        nn.BatchNorm2d(mid, dtype=dtype),
        nn.Tanh(),
        nn.ConvTranspose2d(mid, cin, 4, stride=2, padding=1, dtype=dtype),
    )
    return layer, _array(draw, (n, cin, draw(st.integers(2, 6)), draw(st.integers(2, 6))), dtype)


CASES = {
    "Conv2d": conv2d,
    "ConvTranspose2d": conv_transpose2d,
    "Linear": linear,
    "BatchNorm2d": batchnorm2d,
    "BatchNorm1d": batchnorm1d,
    "LeakyReLU": leaky_relu,
    "ReLU": relu,
    "Tanh": tanh,
    "Sigmoid": sigmoid,
    "Dropout": dropout,
    "Flatten": flatten,
    "Identity": identity,
    "Reshape": reshape,
    "Upsample": upsample,
    "Sequential": sequential,
}


@st.composite
def bce_with_logits(draw, dtype):
    """(loss_fn, logits, targets): targets an array of probabilities or one number."""
    shape = draw(_any_shape)
    logits = _array(draw, shape, dtype, scale=draw(st.sampled_from([1.0, 5.0, 30.0])))
    if draw(st.booleans()):
        targets = float(draw(st.sampled_from([0.0, 0.9, 1.0])))
    else:
        targets = abs(_array(draw, shape, dtype)) % 1.0
    loss_fn = nn.BCEWithLogitsLoss(reduction=draw(st.sampled_from(["mean", "sum"])))
    return loss_fn, logits, targets
