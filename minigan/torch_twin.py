"""PyTorch twins of minigan's layers and of its GAN step, for comparing with PyTorch.

``to_torch(layer)`` builds the ``torch.nn`` layer (or Sequential) that computes what a
minigan layer computes, with the same weights and buffers; ``TorchGANStep`` is
``gan.GANTrainer``'s step written in PyTorch. The tests use them as the independent
oracle, the benchmarks as the baseline they time. Nothing else in minigan imports
this module, and it is the only one that needs PyTorch: ``pip install -e '.[compare]'``.
"""

from __future__ import annotations

try:
    import torch
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "minigan.torch_twin compares with PyTorch, which is not installed: "
        "pip install -e '.[compare]'"
    ) from e

_MAKERS = {
    "Conv2d": lambda m: torch.nn.Conv2d(
        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
        bias=m.bias is not None,
    ),
    "ConvTranspose2d": lambda m: torch.nn.ConvTranspose2d(
        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.output_padding,
        bias=m.bias is not None,
    ),
    "Linear": lambda m: torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    "BatchNorm2d": lambda m: torch.nn.BatchNorm2d(m.num_features, m.eps, m.momentum),
    "BatchNorm1d": lambda m: torch.nn.BatchNorm1d(m.num_features, m.eps, m.momentum),
    "LeakyReLU": lambda m: torch.nn.LeakyReLU(m.negative_slope),
    "ReLU": lambda m: torch.nn.ReLU(),
    "Tanh": lambda m: torch.nn.Tanh(),
    "Sigmoid": lambda m: torch.nn.Sigmoid(),
    "Dropout": lambda m: torch.nn.Dropout(m.p),
    "Flatten": lambda m: torch.nn.Flatten(m.start_dim, m.end_dim),
    "Identity": lambda m: torch.nn.Identity(),
    "Reshape": lambda m: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Unflatten(1, m.shape)),
    "Upsample": lambda m: torch.nn.Upsample(scale_factor=m.scale_factor, mode="nearest"),
}  # fmt: skip


def to_torch(layer, dtype=torch.float32, device=None):
    """The ``torch.nn`` twin of a minigan layer or Sequential (a DCGAN model: its
    ``.main``), with the same weights and buffers, in the same train/eval mode."""
    from . import backend

    kind = type(layer).__name__
    if kind == "Sequential":
        twin = torch.nn.Sequential(*(to_torch(child, dtype) for child in layer))
    elif kind in _MAKERS:
        twin = _MAKERS[kind](layer).to(dtype)
        to_numpy = backend.current().to_numpy
        twin.load_state_dict(
            {k: torch.from_numpy(to_numpy(v)) for k, v in layer.state_dict().items()}
        )
    else:
        raise TypeError(f"to_torch: no PyTorch twin for {kind}")
    return twin.to(device).train(layer.training)


class TorchGANStep:
    """``gan.GANTrainer.step`` in PyTorch, on twins of G and D: D on real (target
    1 - label_smoothing) and fake (target 0), one Adam step; then G through the updated,
    frozen D (target 1), one Adam step. ``step(real, z=None)`` returns the same four
    numbers, fetched together: loss_d, loss_g, d_real, d_fake."""

    def __init__(self, G, D, lr=2e-4, beta1=0.5, nz=100, label_smoothing=0.0):
        self.G, self.D, self.nz = G, D, nz
        self.real_target = 1.0 - label_smoothing
        self.opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999))
        self.opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999))
        self.bce = torch.nn.BCEWithLogitsLoss()

    def step(self, real, z=None):
        G, D, bce = self.G, self.D, self.bce
        n = len(real)
        if z is None:
            z = torch.randn(n, self.nz, 1, 1, device=real.device, dtype=real.dtype)
        self.opt_d.zero_grad()
        logits_real = D(real)
        loss_real = bce(logits_real, torch.full_like(logits_real, self.real_target))
        loss_real.backward()
        fake = G(z)
        logits_fake = D(fake.detach())
        loss_fake = bce(logits_fake, torch.zeros_like(logits_fake))
        loss_fake.backward()
        self.opt_d.step()

        self.opt_g.zero_grad()
        D.requires_grad_(False)  # as minigan's trainer: D's weight gradients are not needed
        logits_g = D(fake)
        loss_g = bce(logits_g, torch.ones_like(logits_g))
        loss_g.backward()
        D.requires_grad_(True)
        self.opt_g.step()
        with torch.no_grad():
            numbers = torch.stack([loss_real + loss_fake, loss_g,
                                   torch.sigmoid(logits_real).mean(),
                                   torch.sigmoid(logits_fake).mean()])  # fmt: skip
        loss_d, loss_g, d_real, d_fake = numbers.tolist()
        return dict(loss_d=loss_d, loss_g=loss_g, d_real=d_real, d_fake=d_fake)
