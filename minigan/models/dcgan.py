"""The DCGAN of Radford, Metz & Chintala (2016), from minigan's own layers.

The paper's guidelines, as the PyTorch DCGAN example implements them:

- no pooling: strided convolutions down in D, transposed convolutions up in G;
- batch norm everywhere except G's output layer and D's input layer;
- ReLU in G with a Tanh output (images live in [-1, 1]); LeakyReLU(0.2) in D;
- no hidden fully connected layers; conv layers without bias (batch norm's
  shift makes a bias redundant);
- weights from N(0, 0.02) (``dcgan_init``, here with the models it belongs to).

``batch_norm=False`` builds the same models without batch norm, for the experiment
that shows what it does: each BatchNorm2d becomes an ``nn.Identity`` (so every
layer keeps its ``main.<i>`` index and state-dict key) and the convolution before
it gets the bias that batch norm's shift had made redundant.
D returns *logits*: sigmoid + binary cross-entropy is computed together, stably,
by ``nn.BCEWithLogitsLoss``.

Layouts, so results and weights compare with the PyTorch DCGAN example (the layers
sit in ``.main``, giving the same ``main.0.weight`` state-dict keys):

- image_size = 4 * 2^L (16, 32, 64, 128): G grows 4x4 -> image by doubling, halving
  the channels down to ngf; D mirrors it.
- image_size = 28 (MNIST): G 7x7 -> 14x14 -> 28x28; D 28 -> 14 -> 7 -> 1.
"""

from __future__ import annotations

import re

import numpy as np

from .. import init, nn

SUPPORTED_SIZES = (16, 28, 32, 64, 128)

# The model layouts of ``python -m minigan.train --recipe``: minigan's default adds one
# layer to each network (``extra_layer``), the paper's is the PyTorch example's.
# docs/quality.md measures both.
RECIPES = {"minigan": dict(extra_layer=True), "paper": dict(extra_layer=False)}


def dcgan_init(model):
    """The DCGAN initialisation over every sub-layer of ``model``, in place, from the
    backend's random stream: "All weights were initialized from a zero-centered Normal
    distribution with standard deviation 0.02" (conv and conv-transpose weights); batch
    norm scales from N(1, 0.02) and shifts 0, as in the PyTorch DCGAN example's
    ``weights_init``, which leaves a convolution's bias (``batch_norm=False``) at its
    default initialisation, as this does. Returns ``model``."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm):
            init.normal_(layer.weight, 1.0, 0.02)
            init.zeros_(layer.bias)
    return model


def _doublings(image_size):
    """L with image_size = 4 * 2^L, or a clear error for a size this model cannot make."""
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"image size {image_size} is not supported; choose one of "
            f"{', '.join(map(str, SUPPORTED_SIZES))}"
        )
    return int(np.log2(image_size // 4))


def _normalised(conv, cin, cout, dtype, batch_norm, kernel, stride, padding):
    """[convolution, BatchNorm2d] or, without batch norm, [convolution with a bias,
    Identity]: the same two places either way."""
    if batch_norm:
        return [conv(cin, cout, kernel, stride, padding, bias=False, dtype=dtype),
                nn.BatchNorm2d(cout, dtype=dtype)]  # fmt: skip
    return [conv(cin, cout, kernel, stride, padding, bias=True, dtype=dtype), nn.Identity()]


def _up(cin, cout, dtype, batch_norm, kernel=4, stride=2, padding=1):
    up = _normalised(nn.ConvTranspose2d, cin, cout, dtype, batch_norm, kernel, stride, padding)
    return [*up, nn.ReLU()]


def _down(cin, cout, dtype, batch_norm, kernel=4, stride=2, padding=1):
    down = _normalised(nn.Conv2d, cin, cout, dtype, batch_norm, kernel, stride, padding)
    return [*down, nn.LeakyReLU(0.2)]


class _Stack(nn.Module):
    """A model whose layers sit in ``self.main``, as in the PyTorch DCGAN example."""

    def forward(self, x):
        return self.main(x)

    def backward(self, grad_output, input_grad=True):
        return self.main.backward(grad_output, input_grad)


class Generator(_Stack):
    """z: (N, nz, 1, 1) noise -> (N, channels, image_size, image_size) images in [-1, 1].

    batch_norm=False: no batch norm (Identity in its places, biased convolutions).
    extra_layer=True (minigan's default recipe, ``python -m minigan.train``): the last
    transposed convolution keeps half the width (ConvTranspose2d + BatchNorm2d + ReLU at
    full size), and a 3x3 stride-1 Conv2d makes the pixels; the paper's layout
    (``--recipe paper``) goes straight to the pixels. See docs/quality.md."""

    def __init__(self, nz=100, ngf=64, channels=3, image_size=64, dtype=np.float32,
                 batch_norm=True, extra_layer=False):  # fmt: skip
        self.nz, self.ngf, self.channels, self.image_size = nz, ngf, channels, image_size
        self.batch_norm = bn = bool(batch_norm)
        self.extra_layer = bool(extra_layer)
        if image_size == 28:
            layers = [
                *_up(nz, 4 * ngf, dtype, bn, kernel=7, stride=1, padding=0),  # 7x7
                *_up(4 * ngf, 2 * ngf, dtype, bn),  # 14x14
            ]
            width = 2 * ngf
        else:
            n = _doublings(image_size)
            width = ngf * 2 ** (n - 1)
            layers = _up(nz, width, dtype, bn, stride=1, padding=0)  # 4x4
            while width > ngf:
                layers += _up(width, width // 2, dtype, bn)
                width //= 2
        if extra_layer:  # up to full size at half the width, then a 3x3 conv to the pixels
            half = max(1, width // 2)
            layers += _up(width, half, dtype, bn)
            layers.append(nn.Conv2d(half, channels, 3, 1, 1, bias=False, dtype=dtype))
        else:
            layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False, dtype=dtype))
        self.main = nn.Sequential(*layers, nn.Tanh())
        dcgan_init(self)

    def extra_repr(self):
        return (
            f"nz={self.nz}, ngf={self.ngf}, channels={self.channels}, image_size={self.image_size}"
            + ("" if self.batch_norm else ", batch_norm=False")
            + (", extra_layer=True" if self.extra_layer else "")
        )

    def summary(self, file=None):
        return summary(self, (1, self.nz, 1, 1), file)


class Discriminator(_Stack):
    """x: (N, channels, image_size, image_size) images -> (N, 1) logits (real > 0 > fake).

    batch_norm=False: no batch norm (Identity in its places, biased convolutions).
    extra_layer=True (minigan's default recipe): one more Conv2d + BatchNorm2d +
    LeakyReLU, 3x3 at stride 1, on the smallest feature map, before the logit."""

    def __init__(self, ndf=64, channels=3, image_size=64, dtype=np.float32, batch_norm=True,
                 extra_layer=False):  # fmt: skip
        self.ndf, self.channels, self.image_size = ndf, channels, image_size
        self.batch_norm = bn = bool(batch_norm)
        self.extra_layer = bool(extra_layer)
        if image_size == 28:
            layers = [
                nn.Conv2d(channels, 2 * ndf, 4, 2, 1, bias=False, dtype=dtype),  # 14x14
                nn.LeakyReLU(0.2),
                *_down(2 * ndf, 4 * ndf, dtype, bn),  # 7x7
            ]
            width, last_kernel = 4 * ndf, 7
        else:
            n = _doublings(image_size)
            layers = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False, dtype=dtype), nn.LeakyReLU(0.2)]
            width, last_kernel = ndf, 4
            for _ in range(n - 1):
                layers += _down(width, width * 2, dtype, bn)
                width *= 2
        if extra_layer:  # one more look at the smallest feature map: a 3x3 conv, same size
            layers += _down(width, width, dtype, bn, kernel=3, stride=1, padding=1)
        layers.append(nn.Conv2d(width, 1, last_kernel, 1, 0, bias=False, dtype=dtype))  # 1x1
        self.main = nn.Sequential(*layers, nn.Flatten())
        dcgan_init(self)

    def extra_repr(self):
        return (
            f"ndf={self.ndf}, channels={self.channels}, image_size={self.image_size}"
            + ("" if self.batch_norm else ", batch_norm=False")
            + (", extra_layer=True" if self.extra_layer else "")
        )

    def summary(self, file=None):
        return summary(self, (1, self.channels, self.image_size, self.image_size), file)


def convolutions(model, width, channels=3, image_size=64, nz=100, extra_layer=False) -> list:
    """The convolutions of a Generator (``model="G"``, ``width`` = ngf) or Discriminator
    (``"D"``, ``width`` = ndf) as (in channels, out channels, kernel, output side), in
    order, without building anything: what a size check before allocation needs."""
    n = _doublings(image_size)
    if model == "G":
        if image_size == 28:
            widths, sides = [4 * width, 2 * width], [7, 14, 28]
        else:
            widths = [width * 2 ** (n - 1 - i) for i in range(n)]  # ngf * 2^(L-1) ... ngf
            sides = [4 * 2**i for i in range(n + 1)]
        if extra_layer:
            widths.append(max(1, widths[-1] // 2))
        chain = [nz, *widths] + ([] if extra_layer else [channels])
        convs = [(cin, cout, 4, side) for (cin, cout), side in zip(zip(chain, chain[1:]), sides)]
        convs[0] = (nz, widths[0], 7 if image_size == 28 else 4, sides[0])
        return convs + ([(widths[-1], channels, 3, image_size)] if extra_layer else [])
    if image_size == 28:
        widths, sides, last = [2 * width, 4 * width], [14, 7], 7
    else:
        widths = [width * 2**i for i in range(n)]  # ndf ... ndf * 2^(L-1)
        sides, last = [image_size // 2 ** (i + 1) for i in range(n)], 4
    chain = [channels, *widths]
    convs = [(cin, cout, 4, side) for (cin, cout), side in zip(zip(chain, chain[1:]), sides)]
    if extra_layer:
        convs.append((widths[-1], widths[-1], 3, sides[-1]))
    return convs + [(widths[-1], 1, last, 1)]


def parameter_count(model, width, channels=3, image_size=64, nz=100, extra_layer=False) -> int:
    """The parameters of that model (with batch norm), counted from ``convolutions``:
    each convolution's weights, and a scale and shift per channel of every batch norm
    (after each of G's convolutions but the last; after D's middle ones)."""
    convs = convolutions(model, width, channels, image_size, nz, extra_layer)
    normed = convs[:-1] if model == "G" else convs[1:-1]
    return sum(cin * cout * k * k for cin, cout, k, _ in convs) + sum(2 * c[1] for c in normed)


def training_memory(nz, ngf, ndf, channels, image_size, batch_size, averaged=False,
                    extra_layer=False) -> int:  # fmt: skip
    """A lower bound, in bytes, on the memory one GAN training step needs (float32):
    G's and D's weights four times over (the weights, their gradients and Adam's two
    moments; once more for an averaged G), and every convolution's output twice over
    (the layer after it keeps it for its backward, and its gradient passes through),
    for G's batch and D's two passes (real and fake). The real step needs more (im2col
    buffers, batch norm's caches): a request above this bound cannot run at all."""
    g = parameter_count("G", ngf, channels, image_size, nz, extra_layer)
    d = parameter_count("D", ndf, channels, image_size, extra_layer=extra_layer)
    weights = 4 * (4 * (g + d) + (g if averaged else 0))

    def outputs(model, width):
        layers = convolutions(model, width, channels, image_size, nz, extra_layer)
        return sum(cout * side * side for _, cout, _, side in layers)

    activations = 4 * batch_size * 2 * (outputs("G", ngf) + 2 * outputs("D", ndf))
    return weights + activations


def summary(model, input_shape, file=None) -> str:
    """A per-layer table (layer, output shape, parameters) with totals, like Keras's.

    Runs one sample through the model in eval mode (so no statistics change) and
    prints the table to ``file`` (stdout by default); also returns it.
    """
    from .. import backend

    was_training = [m.training for m in model.modules()]
    model.eval()
    x = backend.current().xp.zeros(input_shape, dtype=next(model.parameters()).dtype)
    rows = []
    for i, layer in enumerate(model.main):
        x = layer(x)
        rows.append(
            (f"{i}: {type(layer).__name__}", str((None, *x.shape[1:])), layer.num_parameters())
        )
    for m, mode in zip(model.modules(), was_training):
        m.training = mode
    width = max(len(r[0]) for r in rows) + 2
    line = "-" * (width + 36)
    text = [f"{type(model).__name__}({model.extra_repr()})", line]
    text.append(f"{'layer':<{width}}{'output shape':<22}{'parameters':>14}")
    text.append(line)
    text += [f"{name:<{width}}{shape:<22}{count:>14,}" for name, shape, count in rows]
    text.append(line)
    text.append(f"{'total parameters':<{width + 22}}{model.num_parameters():>14,}")
    table = "\n".join(text)
    print(table, file=file)
    return table


# ---- the settings a state dict implies, read back from its weight shapes --------------------


def _conv_shapes(state) -> list[tuple[str, tuple]]:
    """(key, shape) of every 4-D ``main.<i>.weight``, in layer order."""
    found = []
    for key, value in state.items():
        match = re.fullmatch(r"main\.(\d+)\.weight", key)
        if match and np.ndim(value) == 4:
            found.append((int(match.group(1)), key, np.shape(value)))
    return [(key, shape) for _, key, shape in sorted(found)]


def _has_batch_norm(state) -> bool:
    """Whether a state dict holds batch-norm layers (their running statistics): a
    DCGAN built with batch_norm=False has none, and biased convolutions instead."""
    return any(key.endswith(".running_mean") for key in state)


def _first_conv(state, source, model) -> tuple:
    weight = state.get("main.0.weight")
    if weight is None:
        keys = ", ".join(list(state)[:4]) or "none"
        raise ValueError(
            f"{source}: not a DCGAN {model} state dict: it has no main.0.weight "
            f"(its first keys: {keys})"
        )
    if np.ndim(weight) != 4 or np.shape(weight)[2] != np.shape(weight)[3]:
        raise ValueError(
            f"{source}: main.0.weight has shape {np.shape(weight)}; a DCGAN {model} starts "
            f"with a square 4-D convolution weight"
        )
    return np.shape(weight)


def _size_from_layers(count, source, model) -> int:
    """image_size = 4 * 2^(count - 1) for count convolutions of kernel 4."""
    size = 4 * 2 ** (count - 1)
    if size not in SUPPORTED_SIZES:
        raise ValueError(
            f"{source}: {count} convolution layers make a {model} for {size}x{size} images; "
            f"minigan's are {', '.join(map(str, SUPPORTED_SIZES))} pixels"
        )
    return size


def _base_width(width, parts, shape, source, model) -> int:
    if width % parts or width < parts:
        raise ValueError(
            f"{source}: main.0.weight has shape {shape}: {width} channels are not "
            f"{parts} x a base width, as a DCGAN {model} of this depth needs"
        )
    return width // parts


def _check_chain(convs, expected, source, model) -> None:
    """Every convolution weight's shape against the DCGAN's chain of widths, before a
    model is built (so a few small arrays cannot make minigan allocate a huge one)."""
    if len(convs) != len(expected):
        raise ValueError(
            f"{source}: {len(convs)} convolution weights; a DCGAN {model} whose main.0.weight "
            f"is {convs[0][1]} has {len(expected)}"
        )
    for (key, shape), want in zip(convs, expected):
        if min(shape) < 1 or shape != want:
            raise ValueError(
                f"{source}: {key} has shape {shape}; a DCGAN {model} whose main.0.weight is "
                f"{convs[0][1]} has {want} there"
            )


def generator_config(state, source="state dict") -> dict:
    """nz, ngf, channels, image_size, batch_norm, extra_layer of the minigan Generator
    these weights imply (batch_norm: whether they hold batch-norm statistics).

    ConvTranspose2d weights are (in, out, k, k). The first layer projects z to
    ngf * 2^(L-1) channels at 4x4 (kernel 4) and each of the L - 1 layers after it
    halves the channels and doubles the size, up to (ngf, channels) at 4 * 2^L pixels;
    the 28x28 layout starts at 7x7 with a kernel-7 layer to 4 * ngf channels. With the
    extra layer (a last Conv2d weight (channels, w, 3, 3)), the last transposed
    convolution ends at w = half its input's channels instead of at the pixels.
    """
    nz, width, kernel, _ = first = _first_conv(state, source, "generator")
    convs = _conv_shapes(state)
    extra = len(convs) > 2 and convs[-1][1][-1] == 3
    ups = len(convs) - extra  # the transposed convolutions
    channels = convs[-1][1][0] if extra else convs[-1][1][1]
    if kernel == 7:
        size, ngf = 28, _base_width(width, 4, first, source, "generator")
        widths = [4 * ngf, 2 * ngf]
    elif kernel == 4:
        size = _size_from_layers(ups, source, "generator")
        ngf = _base_width(width, 2 ** (ups - 2), first, source, "generator")
        widths = [width // 2**i for i in range(ups - 1)]
    else:
        raise ValueError(
            f"{source}: main.0.weight has a {kernel}x{kernel} kernel; a DCGAN generator's "
            f"first layer has 4x4 (7x7 for 28x28 images)"
        )
    if extra:
        widths.append(max(1, widths[-1] // 2))
    chain = [nz, *widths] + ([] if extra else [channels])
    expected = [(cin, cout, 4, 4) for cin, cout in zip(chain, chain[1:])]
    expected[0] = (nz, width, kernel, kernel)
    if extra:
        expected.append((channels, widths[-1], 3, 3))  # Conv2d: (out, in, k, k)
    _check_chain(convs, expected, source, "generator")
    return dict(nz=nz, ngf=ngf, channels=channels, image_size=size,
                batch_norm=_has_batch_norm(state), extra_layer=extra)  # fmt: skip


def discriminator_config(state, source="state dict") -> dict:
    """ndf, channels, image_size, batch_norm, extra_layer of the minigan Discriminator
    these weights imply.

    Conv2d weights are (out, in, k, k): the first layer takes the image's channels to
    ndf (2 * ndf at 28x28) and each later one doubles them, down to a 1-channel
    logit with a 4x4 kernel (7x7 at 28x28). The extra layer is a (w, w, 3, 3) weight
    just before the logit's.
    """
    width, channels, kernel, _ = first = _first_conv(state, source, "discriminator")
    convs = _conv_shapes(state)
    last_kernel = convs[-1][1][-1]
    extra = len(convs) > 2 and convs[-2][1][-1] == 3
    downs = len(convs) - extra  # the convolutions of the paper's layout
    if kernel != 4:
        raise ValueError(
            f"{source}: main.0.weight has a {kernel}x{kernel} kernel; a DCGAN "
            f"discriminator's first layer has 4x4"
        )
    if last_kernel == 7:
        size, ndf = 28, _base_width(width, 2, first, source, "discriminator")
        widths = [2 * ndf, 4 * ndf]
    else:
        size, ndf = _size_from_layers(downs, source, "discriminator"), width
        widths = [width * 2**i for i in range(downs - 1)]
    chain = [channels, *widths, 1]
    expected = [(cout, cin, 4, 4) for cin, cout in zip(chain, chain[1:])]
    expected[-1] = (1, widths[-1], last_kernel, last_kernel)
    if extra:
        expected.insert(-1, (widths[-1], widths[-1], 3, 3))
    _check_chain(convs, expected, source, "discriminator")
    return dict(ndf=ndf, channels=channels, image_size=size, batch_norm=_has_batch_norm(state),
                extra_layer=extra)  # fmt: skip
