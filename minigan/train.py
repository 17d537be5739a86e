"""Train a DCGAN: ``GANTrainer`` (one step of the algorithm) and the command line."""

from __future__ import annotations

import numpy as np

from . import backend, nn, optim
from .functional import sigmoid


class GANTrainer:
    """The standard GAN step (Goodfellow et al. 2014, with the non-saturating G loss).

    ``step(real)``: real is a NumPy (N, C, H, W) float32 batch in [-1, 1].
      1. D on the real batch, target 1 (1 - label_smoothing: one-sided smoothing),
         and on a fake batch G(z), z ~ N(0, 1), target 0; one Adam step for D.
      2. G: the same fake batch through the freshly updated D, target 1 (maximise
         log D(G(z)) instead of minimising log(1 - D(G(z))), whose gradient vanishes
         while D wins); the gradient flows through D into G; one Adam step for G.
    Returns floats: loss_d, loss_g, d_real = mean D(x), d_fake = mean D(G(z)),
    with D's outputs as probabilities.
    """

    def __init__(self, G, D, lr=2e-4, beta1=0.5, nz=100, label_smoothing=0.0):
        self.G, self.D, self.nz = G, D, nz
        self.real_target = 1.0 - label_smoothing
        self.opt_g = optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999))
        self.opt_d = optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999))
        self.loss = nn.BCEWithLogitsLoss()
        self.dtype = next(G.parameters()).dtype

    def noise(self, n):
        return backend.current().randn((n, self.nz, 1, 1), dtype=self.dtype)

    def step(self, real):
        bk = backend.current()
        G, D, loss = self.G, self.D, self.loss
        real = bk.from_numpy(np.asarray(real, dtype=self.dtype))

        # 1. Discriminator: real -> 1, fake -> 0.
        self.opt_d.zero_grad()
        logits_real = D(real)
        loss_real = loss(logits_real, self.real_target)
        D.backward(loss.backward())
        fake = G(self.noise(real.shape[0]))
        logits_fake = D(fake)
        loss_fake = loss(logits_fake, 0.0)
        D.backward(loss.backward())
        self.opt_d.step()

        # 2. Generator: make the updated D call the same fakes real.
        self.opt_g.zero_grad()
        loss_g = loss(D(fake), 1.0)
        G.backward(D.backward(loss.backward()))
        self.opt_g.step()

        return dict(
            loss_d=loss_real + loss_fake,
            loss_g=loss_g,
            d_real=float(sigmoid(logits_real).mean()),
            d_fake=float(sigmoid(logits_fake).mean()),
        )
