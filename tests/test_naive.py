"""The fast im2col convolutions against the plain loops of their definitions."""

import numpy as np
import pytest
from cases import conv2d, conv_transpose2d
from hypothesis import given
from hypothesis import strategies as st

from minigan import backend, naive


def _host(a):
    return backend.current().to_numpy(a)


def _bias(layer):
    return None if layer.bias is None else _host(layer.bias.data)


@given(data=st.data())
def test_conv2d_matches_the_loops(backend_name, data):
    layer, x = data.draw(conv2d(np.float64))
    expected = naive.conv2d(
        _host(x), _host(layer.weight.data), _bias(layer), layer.stride, layer.padding
    )
    np.testing.assert_allclose(_host(layer(x)), expected, rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_conv_transpose2d_matches_the_loops(backend_name, data):
    layer, x = data.draw(conv_transpose2d(np.float64))
    expected = naive.conv_transpose2d(
        _host(x),
        _host(layer.weight.data),
        _bias(layer),
        layer.stride,
        layer.padding,
        layer.output_padding,
    )
    np.testing.assert_allclose(_host(layer(x)), expected, rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_col2im_is_the_adjoint_of_im2col(backend_name, data):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: the backward of a linear
    map is its transpose, and this is the identity that says so."""
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    pad = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(2))
    if h + sum(pad[0]) < kh or w + sum(pad[1]) < kw:
        return
    bk = backend.current()
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    x = bk.from_numpy(rng.standard_normal((n, c, h, w)))
    cols = bk.im2col(x, (kh, kw), stride, pad)
    other = bk.from_numpy(rng.standard_normal(cols.shape))
    back = bk.col2im(other, x.shape, (kh, kw), stride, pad)
    assert back.shape == x.shape
    np.testing.assert_allclose(float((cols * other).sum()), float((x * back).sum()), rtol=1e-10)


@given(data=st.data())
def test_im2col_rows_are_the_receptive_fields(backend_name, data):
    """Row (n, i, j) of im2col is the zero-padded patch under output (i, j) of sample
    n, its numbers ordered (u, v, c): the layout the convolutions' weights follow."""
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    pad = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(2))
    h = data.draw(st.integers(max(1, kh - sum(pad[0])), 6))
    w = data.draw(st.integers(max(1, kw - sum(pad[1])), 6))
    x = np.random.default_rng(data.draw(st.integers(0, 1000))).standard_normal((n, c, h, w))
    cols = _host(backend.current().im2col(backend.current().from_numpy(x), (kh, kw), stride, pad))
    padded = np.pad(x, ((0, 0), (0, 0), *pad))
    ho, wo = (padded.shape[2] - kh) // stride[0] + 1, (padded.shape[3] - kw) // stride[1] + 1
    assert cols.shape == (n * ho * wo, kh * kw * c)
    for row, (s, i, j) in enumerate(np.ndindex(n, ho, wo)):
        top, left = i * stride[0], j * stride[1]
        patch = padded[s, :, top : top + kh, left : left + kw]  # (c, kh, kw)
        np.testing.assert_array_equal(cols[row], patch.transpose(1, 2, 0).reshape(-1))


@given(data=st.data())
def test_im2col_and_col2im_take_padding_as_the_convolutions_do(backend_name, data):
    """An int p and a pair (ph, pw) mean what they mean to ``F.conv2d_forward``:
    the same as ((p, p), (p, p)) and ((ph, ph), (pw, pw)); ints for kernel and
    stride mean square ones."""
    bk = backend.current()
    k, s = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    ph, pw = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    h, w = (
        data.draw(st.integers(max(1, k - 2 * ph), 6)),
        data.draw(st.integers(max(1, k - 2 * pw), 6)),
    )
    x = bk.from_numpy(np.random.default_rng(0).standard_normal((2, 3, h, w)))
    sides = ((ph, ph), (pw, pw))
    cols = _host(bk.im2col(x, (k, k), (s, s), sides))
    padding_forms = [(ph, pw), [ph, pw], sides] + ([ph] if ph == pw else [])
    for padding in padding_forms:
        np.testing.assert_array_equal(
            _host(bk.im2col(x, k, s, padding)), cols, err_msg=f"{padding}"
        )
    other = bk.from_numpy(np.random.default_rng(1).standard_normal(cols.shape))
    back = _host(bk.col2im(other, x.shape, (k, k), (s, s), sides))
    for padding in padding_forms:
        np.testing.assert_array_equal(_host(bk.col2im(other, x.shape, k, s, padding)), back)


def test_im2col_padding_that_is_no_padding_is_one_line(backend_name):
    bk = backend.current()
    x = bk.from_numpy(np.zeros((1, 1, 4, 4)))
    for padding, shown in [((1, 2, 3), r"\(1, 2, 3\)"), (((1, 1), 2), r"\(\(1, 1\), 2\)"),
                           (-1, "-1"), (1.5, "1.5")]:  # fmt: skip
        with pytest.raises(ValueError, match=rf"^padding must be an int, .* got {shown}$"):
            bk.im2col(x, 3, 1, padding)
    with pytest.raises(ValueError, match=r"^stride must be an int or an \(h, w\) pair"):
        bk.col2im(bk.from_numpy(np.zeros((4, 9))), x.shape, 3, 0.5, 0)


COVERED_KERNEL_CASES = {  # id: (transposed, filters, stride, padding, output_padding, linear)
    "Conv2d": (False, 4, 2, 0, 0, True),
    "Conv2d one filter": (False, 1, 2, 0, 0, True),  # D's last layer: dx is an outer product
    "Conv2d padded": (False, 4, 2, 1, 0, False),  # padding: more than one patch per sample
    "ConvTranspose2d": (True, 4, 2, 0, 0, True),
    "ConvTranspose2d output_padding": (True, 4, 2, 0, 1, False),  # output 5x4, kernel 4x3
    "ConvTranspose2d padded": (True, 4, 2, 1, 0, False),  # output 2x1, kernel 4x3
    # output 4x3 like the kernel, but shifted: the kernel's first row and column are
    # cropped away and a row and column that no input reaches are added at the end
    "ConvTranspose2d padded and output_padding": (True, 4, 3, 1, 2, False),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", COVERED_KERNEL_CASES)
def test_a_kernel_that_covers_the_image_is_a_linear_layer(backend_name, case, bias, monkeypatch):
    """The DCGAN's first and last layers: a kernel as large as the image (D's last
    Conv2d), or a 1x1 input whose kernel is the whole output (G's first
    ConvTranspose2d), take a plain matrix product instead of im2col. Padding or
    output_padding on the same shapes means the kernel no longer covers the image, and
    the general path runs. Every case stays the loops' convolution, forward and backward
    (float64 finite differences)."""
    from minigan import functional as F
    from minigan import gradcheck, nn

    transposed, filters, stride, padding, output_padding, linear = COVERED_KERNEL_CASES[case]
    bk, rng = backend.current(), np.random.default_rng(5)
    took_linear, as_linear_forward = [], F._as_linear_forward

    def spy(*args, **kwargs):  # records that the linear path ran
        took_linear.append(True)
        return as_linear_forward(*args, **kwargs)

    monkeypatch.setattr(F, "_as_linear_forward", spy)
    options = dict(bias=bias, dtype=np.float64)
    if transposed:
        layer = nn.ConvTranspose2d(3, filters, (4, 3), stride, padding, output_padding, **options)
        x = rng.standard_normal((5, 3, 1, 1))
        w, b = _host(layer.weight.data), _bias(layer)
        expected = naive.conv_transpose2d(x, w, b, stride, padding, output_padding)
    else:
        layer = nn.Conv2d(3, filters, (4, 3), stride, padding, **options)
        x = rng.standard_normal((5, 3, 4, 3))
        expected = naive.conv2d(x, _host(layer.weight.data), _bias(layer), stride, padding)
    x = bk.from_numpy(x)
    out = layer(x)
    assert bool(took_linear) == linear, f"{case}: the linear path ran: {bool(took_linear)}"
    assert out.shape == expected.shape
    np.testing.assert_allclose(_host(out), expected, rtol=1e-12, atol=1e-12)
    report = gradcheck.check_layer(layer, x)
    assert report.ok and len(report) == (3 if bias else 2), str(report)


@pytest.mark.parametrize(
    "filters, kernel, stride, padding",
    [(1, (3, 3), (1, 1), (1, 1)), (2, (3, 2), (2, 1), (0, 2)), (1, (2, 3), (3, 2), (2, 1))],
)
def test_a_convolution_with_few_filters_contracts_the_channels_first(
    backend_name, filters, kernel, stride, padding
):
    """No more taps (filters x kernel positions) than input channels, like the last 3x3
    convolution of minigan's recipe: the channels are contracted first (kn2row) instead
    of im2col. Still the loops' convolution, forward and backward (float64)."""
    from minigan import functional as F
    from minigan import gradcheck, nn

    bk, rng = backend.current(), np.random.default_rng(7)
    layer = nn.Conv2d(12, filters, kernel, stride, padding, bias=True, dtype=np.float64)
    assert F._few_filters(layer.weight.data)
    x = bk.from_numpy(rng.standard_normal((3, 12, 7, 6)))
    expected = naive.conv2d(_host(x), _host(layer.weight.data), _bias(layer), stride, padding)
    np.testing.assert_allclose(_host(layer(x)), expected, rtol=1e-12, atol=1e-12)
    report = gradcheck.check_layer(layer, x)
    assert report.ok and len(report) == 3, str(report)


@pytest.mark.parametrize("batch", [1, 5])
def test_kn2row_at_the_recipes_shape_matches_im2col_in_float32_in_pieces(
    backend_name, batch, monkeypatch
):
    """The default recipe's last convolution (32 channels -> 1, 3x3, padding 1, 28x28) in
    float32, its batch split into one-sample pieces on two threads where the backend
    splits: kn2row's forward and all three gradients against the same convolution through
    im2col (``_few_filters`` turned off), which the float64 tests prove."""
    from minigan import functional as F

    bk, rng = backend.current(), np.random.default_rng(11)
    if hasattr(bk, "MIN_VALUES"):
        monkeypatch.setattr(bk, "MIN_VALUES", 1)
        monkeypatch.setattr(bk, "MIN_COLUMNS", 1)
        threads = bk.threads
        bk.set_threads(2)  # put back below
    try:
        x = bk.from_numpy(rng.standard_normal((batch, 32, 28, 28)).astype(np.float32))
        w = bk.from_numpy((0.1 * rng.standard_normal((1, 32, 3, 3))).astype(np.float32))
        b = bk.from_numpy(np.array([0.3], np.float32))
        dout = bk.from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
        assert F._few_filters(w)
        fast, cache = F.conv2d_forward(x, w, b, 1, 1)
        fast_grads = F.conv2d_backward(dout, cache)
        monkeypatch.setattr(F, "_few_filters", lambda w: False)
        slow, cache = F.conv2d_forward(x, w, b, 1, 1)
        slow_grads = F.conv2d_backward(dout, cache)
    finally:
        if hasattr(bk, "MIN_VALUES"):
            bk.set_threads(threads)
    assert _host(fast).dtype == np.float32
    np.testing.assert_allclose(_host(fast), _host(slow), rtol=1e-5, atol=1e-5)
    for got, want in zip(fast_grads, slow_grads):
        assert _host(got).dtype == np.float32
        np.testing.assert_allclose(_host(got), _host(want), rtol=1e-4, atol=1e-4)
