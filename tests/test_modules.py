"""Layer bookkeeping: parameters, state dicts, modes, dtypes, initialisation, loss edge cases."""

import copy

import numpy as np
import pytest
from cases import CASES
from hypothesis import given
from hypothesis import strategies as st

import minigan
from minigan import backend, init, nn, optim
from minigan.models.dcgan import dcgan_init


def _host(a):
    return backend.current().to_numpy(a)


@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_float32_stays_float32_and_agrees_with_float64(case, backend_name, data):
    """The dtype axis: float32 in, float32 out (forward, input and parameter
    gradients), and the same numbers as a float64 copy of the layer to float32 precision."""
    layer32, x32 = data.draw(CASES[case](np.float32), label="layer, x")
    layer64 = _float64_copy(layer32)
    x64 = backend.current().from_numpy(_host(x32).astype(np.float64))
    seed = data.draw(st.integers(0, 2**32 - 1))
    g = np.random.default_rng(seed).standard_normal(layer32(x32).shape)
    results = []
    for layer, x in ((layer32, x32), (layer64, x64)):
        backend.current().seed(seed)  # the same dropout mask in both
        out = layer(x)
        layer.zero_grad()
        results.append((out, layer.backward(backend.current().from_numpy(g.astype(out.dtype)))))
    (out32, dx32), (out64, dx64) = results
    assert out32.dtype == np.float32 and dx32.dtype == np.float32
    tol = dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(_host(out32), _host(out64), **tol)
    np.testing.assert_allclose(_host(dx32), _host(dx64), **tol)
    for (name, p32), (_, p64) in zip(layer32.named_parameters(), layer64.named_parameters()):
        assert p32.grad.dtype == np.float32, name
        np.testing.assert_allclose(_host(p32.grad), _host(p64.grad), **tol, err_msg=name)


def _float64_copy(layer):
    """Rebuild ``layer`` in float64 with the same configuration and weights."""
    twin = copy.deepcopy(layer)
    for m in twin.modules():
        for name, value in vars(m).items():
            if isinstance(value, nn.Parameter):
                setattr(m, name, nn.Parameter(value.data.astype(np.float64)))
        for name in m.buffers:
            value = getattr(m, name)
            if value.dtype == np.float32:
                setattr(m, name, value.astype(np.float64))
    return twin


def test_sequential_names_and_state_dict_keys():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.ReLU(), nn.Linear(2, 1)
    )
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight",
        "1.weight",
        "1.bias",
        "3.weight",
        "3.bias",
    ]
    assert list(model.state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked", "3.weight", "3.bias",
    ]  # fmt: skip
    assert model.num_parameters() == 18 + 2 + 2 + 2 + 1
    assert len(model) == 4 and isinstance(model[1], nn.BatchNorm2d)


def test_state_dict_round_trip_and_copies():
    a, b = (
        nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)),
        nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)),
    )
    a(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    state = a.state_dict()
    b.load_state_dict(state)
    assert all(np.array_equal(v, b.state_dict()[k]) for k, v in state.items())
    state["0.weight"][...] = 99  # a state dict is a copy, not a view into the layer
    assert not np.any(_host(a[0].weight.data) == 99)


def test_train_and_eval_reach_every_layer():
    model = nn.Sequential(nn.Sequential(nn.BatchNorm1d(2), nn.Dropout()), nn.ReLU())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_batchnorm_eval_uses_running_statistics():
    layer = nn.BatchNorm1d(2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((8, 2)) * 3 + 5
    for _ in range(200):
        layer(x)
    layer.eval()
    np.testing.assert_allclose(
        layer(x[:1]), (x[:1] - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-5), rtol=1e-6
    )
    assert int(layer.num_batches_tracked) == 200


def test_zero_grad_and_accumulation():
    layer = nn.Linear(3, 2, dtype=np.float64)
    x = np.ones((4, 3))
    for _ in range(2):
        layer(x)
        layer.backward(np.ones((4, 2)))
    np.testing.assert_allclose(layer.bias.grad, [8.0, 8.0])  # two backward passes add up
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("logit", [1000.0, -1000.0, 88.0, -104.0])
def test_bce_with_logits_is_finite_for_any_logit(dtype, logit):
    loss_fn = nn.BCEWithLogitsLoss()
    logits = np.full((4, 1), logit, dtype=dtype)
    for target in (0.0, 1.0):
        loss = loss_fn(logits, target)
        grad = loss_fn.backward()
        assert np.isfinite(loss) and np.all(np.isfinite(grad)) and grad.dtype == dtype
        wrong_side = (logit > 0) != (target == 1.0)
        np.testing.assert_allclose(loss, abs(logit) if wrong_side else 0.0, atol=1e-6)
        expected = ((1.0 if logit > 0 else 0.0) - target) / logits.size if wrong_side else 0.0
        np.testing.assert_allclose(grad, expected, atol=1e-7)


def test_dropout_mask_scales_survivors_and_is_identity_in_eval(backend_name):
    backend.current().seed(0)
    x = backend.current().from_numpy(np.ones((200, 100), dtype=np.float32))
    layer = nn.Dropout(0.3)
    out = _host(layer(x))
    assert set(np.unique(out)) <= {np.float32(0), np.float32(1 / 0.7)}
    assert abs((out == 0).mean() - 0.3) < 0.01
    np.testing.assert_array_equal(_host(layer.backward(x)), out)  # same mask in the backward
    assert layer.eval()(x) is x


def test_default_initialisation_matches_torch_bounds():
    minigan.manual_seed(0)
    conv, convt, lin = nn.Conv2d(4, 8, 3), nn.ConvTranspose2d(4, 8, 3), nn.Linear(50, 10)
    for layer, fan_in in ((conv, 4 * 9), (convt, 8 * 9), (lin, 50)):
        bound = 1 / np.sqrt(fan_in)
        for p in (layer.weight, layer.bias):
            assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound
    bn = nn.BatchNorm2d(3)
    assert np.all(bn.weight.data == 1) and np.all(bn.bias.data == 0)


def test_dcgan_initialisation(backend_name):
    minigan.manual_seed(1)
    model = nn.Sequential(
        nn.ConvTranspose2d(100, 64, 4, bias=False), nn.BatchNorm2d(64), nn.Conv2d(64, 64, 4)
    )
    dcgan_init(model)
    w = _host(model[0].weight.data)
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    assert (
        abs(_host(model[1].weight.data).mean() - 1) < 0.01
        and abs(_host(model[1].weight.data).std() - 0.02) < 0.01
    )
    assert np.all(_host(model[1].bias.data) == 0)
    assert abs(_host(model[2].weight.data).std() - 0.02) < 1e-3
    assert model[0].weight.data.dtype == np.float32


def test_dcgan_init_at_its_old_address_says_where_it_went():
    with pytest.raises(AttributeError, match="from minigan.models.dcgan import dcgan_init"):
        getattr(init, "dcgan_init")  # noqa: B009


@pytest.mark.parametrize("optimizer", [optim.Adam, lambda p: optim.SGD(p, lr=0.1, momentum=0.9)])
def test_optimizers_keep_float32(optimizer, backend_name):
    layer = nn.Linear(3, 2)
    opt = optimizer(layer.parameters())
    on_backend = backend.current().from_numpy
    layer(on_backend(np.ones((2, 3), dtype=np.float32)))
    layer.backward(on_backend(np.ones((2, 2), dtype=np.float32)))
    before = _host(layer.weight.data).copy()
    opt.step()
    assert layer.weight.data.dtype == np.float32 and not np.array_equal(
        before, _host(layer.weight.data)
    )


def test_optimizer_refuses_empty_parameters():
    with pytest.raises(ValueError, match="Adam got an empty parameter list"):
        optim.Adam(nn.ReLU().parameters())


def test_sequential_slices_are_sequential():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    head = model[:2]
    assert isinstance(head, nn.Sequential) and head[0] is model[0]
    assert head(np.ones((2, 3), dtype=np.float32)).shape == (2, 4)


def test_pytorch_style_arguments():
    """What the PyTorch DCGAN example writes works here too."""
    assert nn.ReLU(True)(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
    assert nn.LeakyReLU(0.2, inplace=True).negative_slope == 0.2
    x = np.zeros((2, 3, 4, 5), dtype=np.float32)
    assert nn.Flatten()(x).shape == (2, 60) and nn.Flatten(0)(x).shape == (120,)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Reshape((4, 15))(x).shape == (2, 4, 15)


def test_identity_passes_values_and_gradients_through(backend_name):
    """nn.Identity keeps a layer's place: no parameters, no state-dict keys, y = x and
    dx = dy; the upstream gradient is still checked against the forward's output."""
    bk = backend.current()
    x = bk.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    layer = nn.Identity(54, unused_argument=0.1)  # like PyTorch's: arguments are ignored
    assert repr(layer) == "Identity()" and layer.state_dict() == {}
    assert layer.num_parameters() == 0
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(x)
    assert layer(x) is x
    g = bk.from_numpy(np.full((2, 3), -2.0, dtype=np.float32))
    assert layer.backward(g) is g
    with pytest.raises(
        ValueError, match=r"^Identity\(\)\.backward: grad_output has shape \(3, 2\)"
    ):
        layer.backward(g.reshape(3, 2))
    model = nn.Sequential(nn.Linear(3, 2), nn.Identity(), nn.Tanh())
    assert list(model.state_dict()) == ["0.weight", "0.bias"]


def test_relu_of_infinities():
    out = nn.ReLU()(np.array([-np.inf, np.inf, -1.0], dtype=np.float32))
    assert out.tolist() == [0.0, np.inf, 0.0] and not np.signbit(out).any()


def test_numpy_scalar_hyperparameters_do_not_upcast():
    layer = nn.Linear(2, 2)
    opts = [
        optim.SGD(layer.parameters(), lr=np.float64(0.1), momentum=np.float64(0.9),
                  weight_decay=np.float64(1e-4)),
        optim.Adam(layer.parameters(), lr=np.float64(1e-3), betas=np.array([0.5, 0.999])),
    ]  # fmt: skip
    loss_fn = nn.BCEWithLogitsLoss()
    for opt in opts:
        loss_fn(layer(np.ones((3, 2), dtype=np.float32)), 1.0)
        grad = loss_fn.backward(np.float64(0.5))
        assert grad.dtype == np.float32
        layer.backward(grad)
        opt.step()
        assert all(p.data.dtype == np.float32 for p in layer.parameters())
    assert all(b.dtype == np.float32 for b in opts[0].momentum_buffers)


@pytest.mark.parametrize(
    "make, shape",
    [(lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 4)),
     (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), (2, 2, 3, 3)),
     (lambda: nn.Linear(4, 3), (5, 4)), (lambda: nn.BatchNorm1d(4), (5, 4))],
    ids=["Conv2d", "ConvTranspose2d", "Linear", "BatchNorm1d"],
)  # fmt: skip
def test_frozen_parameters_and_skipped_input_gradients(make, shape, backend_name):
    layer = make()
    x = backend.current().from_numpy(
        np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    )
    g = backend.current().from_numpy(
        np.random.default_rng(1).standard_normal(layer(x).shape).astype(np.float32)
    )
    dx = _host(layer.backward(g))
    grads = [_host(p.grad).copy() for p in layer.parameters()]
    layer.requires_grad_(False)
    np.testing.assert_allclose(_host(layer.backward(g)), dx, rtol=1e-6)  # dx is unchanged
    assert all(
        np.array_equal(_host(p.grad), before) for p, before in zip(layer.parameters(), grads)
    )
    layer.requires_grad_(True)
    layer.backward(g, input_grad=False)  # the parameter gradients still come
    assert all(
        np.allclose(_host(p.grad), 2 * before) for p, before in zip(layer.parameters(), grads)
    )


def test_sequential_skips_only_the_first_input_gradient():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Conv2d(2, 1, 3))
    out = model(np.ones((1, 1, 5, 5), dtype=np.float32))
    assert model.backward(np.ones_like(out), input_grad=False) is None
    assert model[0].weight.grad.any()  # the first layer still learns


def test_a_pytorch_state_dict_without_num_batches_tracked_loads():
    """Older and many exported PyTorch checkpoints lack it; PyTorch loads them, so must we."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = {k: v + 1 for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    model[1].num_batches_tracked += 5
    model.load_state_dict(state)
    assert int(model[1].num_batches_tracked) == 5  # kept, as PyTorch keeps its own
    np.testing.assert_array_equal(_host(model[1].running_var), state["1.running_var"])
    with pytest.raises(ValueError, match=r"missing keys \['1.running_var'\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "1.running_var"})
