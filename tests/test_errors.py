"""Bad input gets a clear error that names the layer, what it expected and what it got."""

import numpy as np
import pytest

from minigan import nn, optim


def _x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


BAD_INPUTS = [
    (lambda: nn.Conv2d(3, 8, 3), _x(2, 4, 8, 8), r"Conv2d\(3, 8.*\(N, C=3, H, W\).*\(2, 4, 8, 8\)"),
    (lambda: nn.Conv2d(3, 8, 3), _x(3, 8, 8), r"Conv2d\(3, 8.*\(N, C=3, H, W\).*\(3, 8, 8\)"),
    (
        lambda: nn.Conv2d(1, 1, 5),
        _x(1, 1, 2, 9),
        r"Conv2d.*\(1, 1, 2, 9\) is smaller than the kernel \(5, 5\), even padded \(2, 9\)",
    ),
    (
        lambda: nn.ConvTranspose2d(4, 2, 3),
        _x(2, 3, 4, 4),
        r"ConvTranspose2d\(4, 2.*C=4.*\(2, 3, 4, 4\)",
    ),
    (
        lambda: nn.ConvTranspose2d(1, 1, 1, padding=2),
        _x(1, 1, 2, 2),
        r"ConvTranspose2d.*empty output",
    ),
    (lambda: nn.Linear(5, 2), _x(3, 4), r"Linear\(in_features=5.*\(N, \*, 5\).*\(3, 4\)"),
    (lambda: nn.BatchNorm2d(3), _x(2, 3, 4), r"BatchNorm2d\(3.*\(N, C=3, H, W\).*\(2, 3, 4\)"),
    (
        lambda: nn.BatchNorm2d(3),
        _x(2, 5, 4, 4),
        r"BatchNorm2d\(3.*\(N, C=3, H, W\).*\(2, 5, 4, 4\)",
    ),
    (lambda: nn.BatchNorm1d(3), _x(2, 4), r"BatchNorm1d\(3.*\(N, C=3\) or \(N, C=3, L\).*\(2, 4\)"),
    (lambda: nn.BatchNorm1d(3), _x(1, 3), r"BatchNorm1d.*more than 1 value per channel.*\(1, 3\)"),
    (lambda: nn.Upsample(scale_factor=2), _x(2, 3, 4), r"Upsample.*\(N, C, H, W\).*\(2, 3, 4\)"),
    (lambda: nn.Reshape(3, 5), _x(2, 14), r"Reshape\(3, 5\).*\(2, 14\).*\(N, 3, 5\)"),
    (lambda: nn.Reshape(-1, 4), _x(2, 14), r"Reshape\(-1, 4\).*\(2, 14\).*\(N, -1, 4\)"),
]


@pytest.mark.parametrize("make, x, message", BAD_INPUTS)
def test_wrong_shape_names_layer_expected_and_received(make, x, message):
    with pytest.raises(ValueError, match=message):
        make()(x)


@pytest.mark.parametrize(
    "layer",
    [nn.Conv2d(2, 2, 1), nn.ConvTranspose2d(2, 2, 1), nn.Linear(2, 2), nn.BatchNorm2d(2)],
    ids=repr,
)
def test_dtype_mismatch_is_refused_not_upcast(layer):
    shape = (2, 2) if isinstance(layer, nn.Linear) else (2, 2, 3, 3)
    with pytest.raises(
        TypeError, match="input dtype float64 does not match parameter dtype float32"
    ):
        layer(_x(*shape, dtype=np.float64))


@pytest.mark.parametrize(
    "layer",
    [
        nn.Conv2d(1, 1, 1),
        nn.ConvTranspose2d(1, 1, 1),
        nn.Linear(1, 1),
        nn.BatchNorm2d(1),
        nn.BatchNorm1d(1),
        nn.ReLU(),
        nn.LeakyReLU(),
        nn.Tanh(),
        nn.Sigmoid(),
        nn.Dropout(),
        nn.Flatten(),
        nn.Reshape(1),
        nn.Upsample(scale_factor=2),
        nn.Sequential(nn.Tanh()),
    ],  # fmt: skip
    ids=lambda layer: type(layer).__name__,
)
def test_backward_before_forward(layer):
    # A Sequential reports its last layer, the first whose backward runs.
    name = type(layer[-1] if isinstance(layer, nn.Sequential) else layer).__name__
    with pytest.raises(RuntimeError, match=rf"{name}.backward\(\) was called before forward"):
        layer.backward(_x(1, 1, 1, 1))


def test_loss_backward_before_forward():
    with pytest.raises(RuntimeError, match="before computing the loss"):
        nn.BCEWithLogitsLoss().backward()


def test_loss_target_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"targets of shape \(3,\) do not match logits of shape \(3, 1\)"
    ):
        nn.BCEWithLogitsLoss()(_x(3, 1), _x(3))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.Conv2d(0, 1, 3), "in_channels must be a positive int, got 0"),
        (lambda: nn.Conv2d(1, 1, 0), "kernel_size must be >= 1"),
        (lambda: nn.Conv2d(1, 1, 3, stride=(1, 0)), "stride must be >= 1"),
        (lambda: nn.Conv2d(1, 1, 3, padding=-1), "padding must be >= 0"),
        (lambda: nn.Conv2d(1, 1, (3, 3, 3)), r"kernel_size must be an int or an \(h, w\) pair"),
        (lambda: nn.Conv2d(1, 1, (2.5, 3)), r"kernel_size must be .* pair of ints, got \(2.5, 3\)"),
        (lambda: nn.BatchNorm2d(2, momentum=2), r"momentum must be in \[0, 1\] or None"),
        (lambda: nn.Upsample(2), "Upsample needs scale_factor="),
        (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2), "smaller than stride"),
        (lambda: nn.Linear(2, 2, dtype=np.int32), "dtype must be float32 or float64, got int32"),
        (lambda: nn.Dropout(1.5), r"dropout probability must be in \[0, 1\]"),
        (lambda: nn.Upsample(scale_factor=1.5), "scale_factor must be a positive whole number"),
        (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), "mode='nearest' only"),
        (lambda: nn.BCEWithLogitsLoss(reduction="none"), "reduction must be 'mean' or 'sum'"),
        (lambda: nn.Reshape(-1, -1), "at most one -1"),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sequential_refuses_non_layers():
    with pytest.raises(TypeError, match="Sequential: item 1 is a function, not a layer"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_load_state_dict_names_the_bad_key():
    layer = nn.Sequential(nn.Linear(3, 2))
    state = layer.state_dict()
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 2\), expected \(2, 3\)"):
        layer.load_state_dict({**state, "0.weight": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\], unexpected keys \['0.b'\]"):
        layer.load_state_dict({"0.weight": state["0.weight"], "0.b": state["0.bias"]})


def test_integer_like_sizes_are_accepted():
    layer = nn.Conv2d(np.int64(2), 3, kernel_size=np.int64(3), stride=(np.int64(2), 1))
    assert layer.kernel_size == (3, 3) and layer.stride == (2, 1)
    assert nn.Reshape(-1, 7)(_x(2, 14)).shape == (2, 2, 7)


def test_gradcheck_refuses_float32():
    from minigan import gradcheck

    with pytest.raises(TypeError, match="gradient checks need float64 arrays; input is float32"):
        gradcheck.check_layer(nn.Tanh(), _x(2, 3))
    with pytest.raises(TypeError, match="weight is float32"):
        gradcheck.check_layer(nn.Linear(3, 2), _x(2, 3, dtype=np.float64))


@pytest.mark.parametrize(
    "layer, x",
    [(nn.Tanh(), _x(4)), (nn.BatchNorm1d(3), _x(4, 3) + np.arange(4, dtype=np.float32)[:, None]),
     (nn.Upsample(scale_factor=2), _x(1, 1, 2, 2)), (nn.Linear(3, 2), _x(4, 3))],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)  # fmt: skip
def test_backward_checks_grad_output_against_the_forward_output(layer, x):
    out = layer(x)
    with pytest.raises(ValueError, match=rf"grad_output has shape .*expected .*{tuple(out.shape)}"):
        layer.backward(np.ones(out.shape + (1,), dtype=out.dtype))
    with pytest.raises(
        TypeError, match="grad_output is float64, expected the forward output's dtype float32"
    ):
        layer.backward(np.ones(out.shape, dtype=np.float64))


def test_optimizer_arguments():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"takes model.parameters\(\), not the model"):
        optim.Adam(layer)
    with pytest.raises(TypeError, match="takes Parameters, got a ndarray"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match=r"betas must be in \[0, 1\)"):
        optim.Adam(layer.parameters(), betas=(1.5, 0.9))
