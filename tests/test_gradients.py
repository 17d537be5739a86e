"""The specification of every backward pass: finite differences in float64.

One test body for every layer (tests/cases.py) on every backend; a failure prints
the layer, the tensor, the largest relative error and where it is.
"""

import numpy as np
import pytest
from cases import CASES, bce_with_logits
from hypothesis import given
from hypothesis import strategies as st

from minigan import backend, gradcheck, nn
from minigan import functional as F


@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_layer_gradients(case, backend_name, data):
    layer, x = data.draw(CASES[case](np.float64), label="layer, x")
    report = gradcheck.check_layer(layer, x)
    assert report.ok, f"on backend {backend_name}:\n{report}"


@given(data=st.data())
def test_loss_gradient(backend_name, data):
    loss_fn, logits, targets = data.draw(bce_with_logits(np.float64))
    report = gradcheck.check_loss(loss_fn, logits, targets)
    assert report.ok, f"on backend {backend_name}:\n{report}"


def test_functional_pair_gradients(backend_name):
    """The functions lessons teach from pass the same check as the layers."""
    rng, on_backend = np.random.default_rng(0), backend.current().from_numpy
    x, w, b = (
        on_backend(rng.standard_normal((2, 3, 6, 5))),
        on_backend(rng.standard_normal((4, 3, 3, 2))),
        on_backend(rng.standard_normal(4)),
    )
    report = gradcheck.check_function(
        lambda x, w, b: F.conv2d_forward(x, w, b, stride=(2, 1), padding=1),
        F.conv2d_backward,
        [x, w, b],
        names=["x", "w", "b"],
    )
    assert report.ok and len(report) == 3, str(report)


class _WrongBackward(nn.Tanh):
    """Tanh whose backward forgets the chain rule's (1 - y^2) factor on one entry."""

    def backward(self, grad_output):
        dx = super().backward(grad_output)
        dx.flat[0] = grad_output.flat[0]
        return dx


def test_gradcheck_catches_a_wrong_backward():
    x = np.linspace(-1.5, 1.5, 12).reshape(3, 4)
    report = gradcheck.check_layer(_WrongBackward(), x)
    assert not report.ok
    assert report[0].index == (0, 0)
    assert "FAIL" in str(report)


def test_gradcheck_catches_a_batchnorm_backward_that_a_plain_sum_passes():
    """A backward that treats the batch's standard deviation as a constant,
    dx = gamma / sigma * (g - mean(g)), is exact for g = 1 (both are 0 there), so a
    plain-sum loss passes it; the random upstream gradient catches it."""

    class SigmaAsConstant(nn.BatchNorm1d):
        def backward(self, grad_output, input_grad=True):
            cache = self.saved(grad_output)
            super().backward(grad_output, input_grad)  # the parameter gradients
            return cache["gamma"] * cache["inv_std"] * (grad_output - grad_output.mean(axis=0))

    x = np.random.default_rng(1).standard_normal((5, 3))
    layer = SigmaAsConstant(3, dtype=np.float64)
    ones = np.ones((5, 3))
    layer(x)
    plain_sum_analytic = layer.backward(ones)
    plain_sum_numeric = gradcheck.numerical_gradient(lambda: layer(x).sum(), x)
    np.testing.assert_allclose(plain_sum_analytic, plain_sum_numeric, atol=1e-8)  # fooled
    report = gradcheck.check_layer(layer, x)
    assert not report.ok and not report[0].ok, str(report)  # the input gradient fails


def test_gradcheck_restores_the_layer():
    layer = nn.BatchNorm2d(2, dtype=np.float64)
    before = layer.state_dict()
    gradcheck.check_layer(layer, np.random.default_rng(2).standard_normal((2, 2, 3, 3)))
    after = layer.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_check_function_single_gradient_and_mismatched_names():
    x = np.random.default_rng(4).standard_normal((2, 3))
    report = gradcheck.check_function(F.tanh_forward, F.tanh_backward, [x], names=["x"])
    assert report.ok and len(report) == 1
    w, b = np.ones((2, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="3 inputs, 1 names and 3 gradients"):
        gradcheck.check_function(F.linear_forward, F.linear_backward, [x, w, b], names=["x"])


def test_reports_are_titled_by_name_or_readably():
    """``name=`` titles the report; without it the title is never ``<lambda>`` or an
    object address: a lambda is named after its backward, an object by its class."""
    x = np.random.default_rng(5).standard_normal((2, 3))

    def through_lambda(**kwargs):
        forward = lambda x: F.tanh_forward(x)  # noqa: E731
        return gradcheck.check_function(forward, F.tanh_backward, [x], **kwargs).title

    assert through_lambda() == "tanh"
    assert through_lambda(name="tanh, by hand") == "tanh, by hand"
    assert gradcheck.check_function(F.tanh_forward, F.tanh_backward, [x]).title == "tanh_forward"
    assert gradcheck.check_layer(nn.Tanh(), x, name="my tanh").title == "my tanh"

    class PlainLoss:  # no __repr__ of its own: Python's default names an address
        def __init__(self):
            self.loss = nn.BCEWithLogitsLoss()

        def __call__(self, logits, targets):
            return self.loss(logits, targets)

        def backward(self):
            return self.loss.backward()

    report = gradcheck.check_loss(PlainLoss(), x, 1.0)
    assert report.ok and report.title == "PlainLoss"
    assert gradcheck.check_loss(PlainLoss(), x, 1.0, name="bce").title == "bce"
    assert gradcheck.check_loss(nn.BCEWithLogitsLoss(), x, 1.0).title.startswith("BCEWithLogits")


def test_upstream_ones_is_the_plain_sum_that_a_wrong_batchnorm_backward_passes():
    """The trap the random upstream gradient exists for, shown through ``upstream=``:
    a batch-norm backward that treats sigma as a constant is exact for g = 1, so
    ``upstream=1`` passes it and the random default catches it."""

    def sigma_as_constant(dout, cache):
        _, dgamma, dbeta = F.batchnorm_backward(dout, cache)
        dx = cache["gamma"] * cache["inv_std"] * (dout - dout.mean(axis=0))
        return dx, dgamma, dbeta

    x = np.random.default_rng(6).standard_normal((5, 3))
    inputs, names = [x, np.full(3, 1.5), np.zeros(3)], ["x", "gamma", "beta"]

    def check(**kwargs):
        return gradcheck.check_function(
            F.batchnorm_forward, sigma_as_constant, inputs, names, **kwargs
        )

    assert check(upstream=1).ok, str(check(upstream=1))
    assert check(upstream=np.ones((5, 3))).ok
    random_upstream = check()
    assert not random_upstream.ok and not random_upstream[0].ok, str(random_upstream)
    assert check(upstream=np.random.default_rng(0).standard_normal((5, 3)))[0].ok is False


def test_an_upstream_of_the_wrong_shape_is_one_line():
    x = np.random.default_rng(7).standard_normal((2, 3))
    with pytest.raises(ValueError) as error:
        gradcheck.check_function(F.tanh_forward, F.tanh_backward, [x], upstream=np.ones((3, 2)))
    assert str(error.value) == (
        "tanh_forward: upstream has shape (3, 2), but the output it multiplies has shape (2, 3)"
    )
    with pytest.raises(ValueError, match=r"^my tanh: upstream has shape \(6,\)"):
        gradcheck.check_layer(nn.Tanh(), x, upstream=np.ones(6), name="my tanh")
