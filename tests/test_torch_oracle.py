"""PyTorch as an independent oracle: same inputs, same weights, same answers.

For every layer in tests/cases.py: forward output, input gradient, parameter
gradients and the state after the step (batch-norm running statistics) against
``torch.nn``, in float64 (tight) and float32 (loose). Weights cross over through
``state_dict`` in both directions, which also proves the keys and layouts match.
Adam and SGD are compared over several steps.
"""

import numpy as np
import pytest
from cases import CASES, bce_with_logits
from hypothesis import given
from hypothesis import strategies as st

from minigan import backend, nn, optim

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle here: pip install -e '.[compare]'"
)

from minigan import torch_twin  # noqa: E402  (needs torch, checked above)

TOLERANCES = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}


def to_torch(layer, dtype=torch.float64):
    return torch_twin.to_torch(layer, dtype)


def _torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _numpy(a):
    return backend.current().to_numpy(a)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_layer_matches_torch(case, dtype, backend_name, data):
    layer, x = data.draw(CASES[case](dtype), label="layer, x")
    if case == "Dropout" and layer.p not in (0.0, 1.0):
        layer.eval()  # the masks come from different random streams; see test_dropout_mask
    twin = to_torch(layer, _torch_dtype(dtype))
    tol = TOLERANCES[dtype]

    out = layer(x)
    x_t = torch.from_numpy(_numpy(x).copy()).requires_grad_(True)
    out_t = twin(x_t)
    assert out.dtype == dtype, f"{case} forward returned {out.dtype}"
    np.testing.assert_allclose(_numpy(out), out_t.detach().numpy(), **tol, err_msg="forward")

    g = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    layer.zero_grad()
    dx = layer.backward(backend.current().from_numpy(g))
    out_t.backward(torch.from_numpy(g))
    assert dx.dtype == dtype, f"{case} backward returned {dx.dtype}"
    np.testing.assert_allclose(_numpy(dx), x_t.grad.numpy(), **tol, err_msg="input gradient")

    theirs = dict(twin.named_parameters())
    for name, p in layer.named_parameters():
        assert p.grad.dtype == dtype, f"{case} {name}.grad is {p.grad.dtype}"
        np.testing.assert_allclose(
            _numpy(p.grad), theirs[name].grad.numpy(), **tol, err_msg=f"gradient of {name}"
        )
    theirs = twin.state_dict()
    for key, value in layer.state_dict().items():  # running statistics after the step
        np.testing.assert_allclose(value, theirs[key].numpy(), **tol, err_msg=key)


@given(data=st.data())
def test_bce_with_logits_matches_torch(backend_name, data):
    loss_fn, logits, targets = data.draw(bce_with_logits(np.float64))
    loss = loss_fn(logits, targets)
    z = torch.from_numpy(_numpy(logits).copy()).requires_grad_(True)
    t = torch.full_like(z, targets) if np.ndim(targets) == 0 else torch.from_numpy(_numpy(targets))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        z, t, reduction=loss_fn.reduction
    )
    expected.backward()
    np.testing.assert_allclose(float(loss), expected.item(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_numpy(loss_fn.backward()), z.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_state_dict_loads_from_torch(backend_name):
    """Weights trained in PyTorch load into minigan under the same keys."""
    theirs = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False),
        torch.nn.BatchNorm2d(3),
        torch.nn.Tanh(),
    )
    for _ in range(3):  # move the running statistics away from their start
        theirs(torch.randn(5, 4, 3, 3))
    ours = nn.Sequential(
        nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), nn.BatchNorm2d(3), nn.Tanh()
    )
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 4, 3, 3)
    theirs.eval(), ours.eval()
    np.testing.assert_allclose(
        _numpy(ours(backend.current().from_numpy(x.numpy()))),
        theirs(x).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


OPTIMIZERS = {
    "Adam": (optim.Adam, torch.optim.Adam, dict(lr=1e-2, betas=(0.5, 0.999))),
    "Adam+weight_decay": (optim.Adam, torch.optim.Adam, dict(lr=2e-3, weight_decay=0.1, eps=1e-6)),
    "SGD": (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    "SGD+momentum": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_trajectory_matches_torch(name, dtype, backend_name):
    ours_class, theirs_class, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    start = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    ours = [nn.Parameter(backend.current().from_numpy(a.copy())) for a in start]
    theirs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in start]
    opt, opt_t = ours_class(ours, **kwargs), theirs_class(theirs, **kwargs)
    for _ in range(6):
        opt.zero_grad(), opt_t.zero_grad()
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad += backend.current().from_numpy(g)
            t.grad = torch.from_numpy(g)
        opt.step(), opt_t.step()
    tol = TOLERANCES[dtype]
    for p, t in zip(ours, theirs):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(_numpy(p.data), t.detach().numpy(), **tol)


@pytest.mark.parametrize("extra_layer", [False, True], ids=["paper", "extra_layer"])
def test_gan_training_step_matches_torch(extra_layer, backend_name):
    """Three whole GANTrainer steps (D on real and fake, then G through the updated D)
    against the same algorithm written in PyTorch, from the same weights and noise; in
    the paper's layout and with minigan's recipe's extra layers. Every path of
    ``functional``'s convolutions runs: im2col, D's last Conv2d as a linear layer with
    one filter, G's first ConvTranspose2d as a linear layer, and with the recipe (ngf 9)
    G's last Conv2d, 9 channels -> 1 in 3x3, with few filters (kn2row)."""
    from minigan import data
    from minigan import functional as F
    from minigan.gan import GANTrainer
    from minigan.models.dcgan import Discriminator, Generator

    bk = backend.current()
    bk.seed(0)
    G = Generator(16, 9 if extra_layer else 8, 1, 28, dtype=np.float64, extra_layer=extra_layer)
    D = Discriminator(8, 1, 28, dtype=np.float64, extra_layer=extra_layer)
    if extra_layer:
        assert F._few_filters(G.main[-2].weight.data), G.main[-2]
    trainer = GANTrainer(G, D, lr=2e-4, beta1=0.5, nz=16, label_smoothing=0.1)
    G_t, D_t = to_torch(G.main), to_torch(D.main)
    theirs_step = torch_twin.TorchGANStep(G_t, D_t, lr=2e-4, beta1=0.5, nz=16, label_smoothing=0.1)
    real = data.to_float(data.load_bundled()[:32]).astype(np.float64)
    for _ in range(3):
        state = bk.get_rng_state()
        z = torch.from_numpy(bk.to_numpy(bk.randn((32, 16, 1, 1), dtype=np.float64)))
        bk.set_rng_state(state)  # the trainer draws the same z
        ours = trainer.step(real)
        theirs = theirs_step.step(torch.from_numpy(real), z)
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-10, err_msg=key)
    for ours, theirs in ((G, G_t), (D, D_t)):
        theirs_state = theirs.state_dict()
        for key, value in ours.state_dict().items():
            np.testing.assert_allclose(
                value, theirs_state[key.removeprefix("main.")].numpy(), rtol=1e-9, atol=1e-12
            )
