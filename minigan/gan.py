"""The GAN algorithm: one training step, the averaged generator and a watch for collapse.

``GANTrainer.step(real)`` is Goodfellow et al.'s step with the non-saturating G loss,
on any ``Generator`` / ``Discriminator`` pair; ``AveragedGenerator`` keeps an
exponential moving average of G's weights (Yazici et al. 2019; ProGAN, StyleGAN);
``CollapseWatch`` notices a run that has blown up while its losses stay finite;
``train_steps`` runs a trainer for a number of steps across epochs (what a notebook
needs). The command line around them (data, run folder, pictures, checkpoints) is
``train.py`` and ``run.py``.
"""

from __future__ import annotations

import copy

import numpy as np

from . import backend, data, nn, optim
from .functional import sigmoid

# --ema-decay's default: off. In docs/quality.md's measurement (Fashion-MNIST, 5 epochs,
# 3 seeds) no average scored better than G, and longer averages scored worse.
EMA_DECAY = 0.0


class GANTrainer:
    """The standard GAN step (Goodfellow et al. 2014, with the non-saturating G loss).

    ``step(real)``: real is an (N, C, H, W) batch: uint8 pixels (moved to the backend
    as they are and scaled to [-1, 1] there, a quarter of the bytes of float32), or
    floats in [-1, 1], on the host or already on the backend.

    1. D on the real batch, target 1 (1 - label_smoothing: one-sided smoothing),
       and on a fake batch G(z), z ~ N(0, 1), target 0; one Adam step for D.
    2. G: the same fake batch through the freshly updated D, target 1 (maximise
       log D(G(z)) instead of minimising log(1 - D(G(z))), whose gradient vanishes
       while D wins); the gradient flows back through D into G; one Adam step for G.
    3. With ``ema_decay`` (e.g. 0.999; None or 0, the default, keeps no average),
       the averaged generator ``G_ema`` moves towards G.

    Returns floats: loss_d, loss_g, d_real = mean D(x), d_fake = mean D(G(z)),
    with D's outputs as probabilities. On a GPU these four numbers are the step's
    one wait for the device: everything else is queued without looking at results.
    """

    def __init__(self, G, D, lr=2e-4, beta1=0.5, nz=100, label_smoothing=0.0, ema_decay=None):
        self.G, self.D, self.nz = G, D, nz
        self.real_target = 1.0 - label_smoothing
        self.opt_g = optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999))
        self.opt_d = optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999))
        self.loss = nn.BCEWithLogitsLoss()
        self.dtype = next(G.parameters()).dtype
        self.G_ema = AveragedGenerator(G, ema_decay) if ema_decay else None

    def noise(self, n):
        return backend.current().randn((n, self.nz, 1, 1), dtype=self.dtype)

    def to_backend(self, real):
        """The real batch on the backend, as floats in [-1, 1] (see ``step``)."""
        bk = backend.current()
        real = real if bk.is_array(real) else bk.from_numpy(np.asarray(real))
        if real.dtype == np.uint8:
            return real.astype(self.dtype) / 127.5 - 1  # as data.to_float, on the device
        return real.astype(self.dtype, copy=False)

    def step(self, real):
        G, D, loss = self.G, self.D, self.loss
        real = self.to_backend(real)

        # 1. Discriminator: real -> 1, fake -> 0. D's input gradient is not needed
        #    here (real images are data; G does not learn in this half).
        self.opt_d.zero_grad()
        logits_real = D(real)
        loss_real = loss(logits_real, self.real_target)
        D.backward(loss.backward(), input_grad=False)
        fake = G(self.noise(real.shape[0]))
        logits_fake = D(fake)
        loss_fake = loss(logits_fake, 0.0)
        D.backward(loss.backward(), input_grad=False)
        self.opt_d.step()

        # 2. Generator: make the updated D call the same fakes real. The gradient flows
        #    through D, whose own weight gradients are not needed (D is frozen here).
        self.opt_g.zero_grad()
        loss_g = loss(D(fake), 1.0)
        D.requires_grad_(False)
        try:
            G.backward(D.backward(loss.backward()))
        finally:
            D.requires_grad_(True)
        self.opt_g.step()
        if self.G_ema is not None:
            self.G_ema.update()

        # The step's numbers, fetched from the backend together (one wait on a GPU).
        xp = backend.current().xp
        numbers = xp.stack([loss_real + loss_fake, loss_g,
                            sigmoid(logits_real).mean(), sigmoid(logits_fake).mean()])  # fmt: skip
        loss_d, loss_g, d_real, d_fake = backend.current().to_numpy(numbers).tolist()
        return dict(loss_d=loss_d, loss_g=loss_g, d_real=d_real, d_fake=d_fake)

    def generator(self, raw=False):
        """The generator to sample from: the averaged one when there is one (and not
        ``raw``), ready for eval mode; else G itself."""
        return self.G if raw or self.G_ema is None else self.G_ema.ready()

    def parts(self) -> dict:
        parts = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}
        return parts if self.G_ema is None else {**parts, "G_ema": self.G_ema}

    def state_dict(self) -> dict:
        """G, D, both Adam states (and G_ema with its update count) as one flat dict of
        NumPy arrays; G_ema.* is a generator's state dict, as G.* is."""
        state = {
            f"{name}.{k}": v for name, part in self.parts().items()
            for k, v in part.state_dict().items()
        }  # fmt: skip
        if self.G_ema is not None:
            state["ema_updates"] = np.array(self.G_ema.updates, dtype=np.int64)
        return state

    def load_state_dict(self, state) -> None:
        """The inverse of ``state_dict``. A checkpoint without G_ema, loaded by a trainer
        with one, starts the average at its G."""
        for name, part in self.parts().items():
            prefix = name + "."
            part_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if name == "G_ema" and not part_state:
                part.restart()
                continue
            part.load_state_dict(part_state)
            if name == "G_ema":
                part.set_updates(state.get("ema_updates", np.array(0)))


def train_steps(trainer, images, steps, batch_size=128, seed=0, on_step=None) -> np.ndarray:
    """Run ``trainer.step`` ``steps`` times over ``images``, epoch after epoch.

    images: (N, C, H, W) uint8 pixels (as ``data.load`` gives them; the trainer scales
    them on the backend), or floats in [-1, 1]. Each epoch is a fresh shuffle, made
    reproducibly from (seed, epoch) by ``data.batches``, in whole batches of
    ``batch_size`` (the remainder sits the epoch out); after N // batch_size steps the
    next epoch begins. The noise comes from the backend's random stream (seed it with
    ``minigan.manual_seed`` for a repeatable run).
    on_step(step, metrics), if given, is called after every step, with step counting
    from 1 (``if step % 100 == 0: ...`` after every 100th) and metrics the step's dict.

    Returns the per-step metrics as a NumPy structured array of ``steps`` rows:
    ``history["loss_d"]`` is the discriminator's loss at every step (likewise
    ``loss_g``, ``d_real``, ``d_fake``), ``history[i]`` step i + 1's record.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    whole = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
    per_epoch = len(images) // batch_size if whole and batch_size >= 1 else 0
    if per_epoch == 0:
        raise ValueError(
            f"batch_size {batch_size!r} does not fit the {len(images)} images: it must be "
            f"between 1 and {len(images)}"
        )
    history, epoch = [], 0
    while len(history) < steps:
        for real in data.batches(images, batch_size, seed, epoch, raw=True):
            history.append(trainer.step(real))
            if on_step is not None:
                on_step(len(history), history[-1])
            if len(history) == steps:
                break
        epoch += 1
    names = list(history[0]) if history else ["loss_d", "loss_g", "d_real", "d_fake"]
    rows = [tuple(metrics[name] for name in names) for metrics in history]
    return np.array(rows, dtype=[(name, np.float64) for name in names])


class AveragedGenerator:
    """An exponential moving average of a generator's weights, for sampling.

    After every G step, each averaged weight moves a little towards G's:
    ``avg += (1 - decay_t) * (w - avg)``, with decay_t = min(decay, (1 + t) / (10 + t))
    at update t, so the average is not held near the initial weights early in a run
    (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``). G's batch-norm
    layers keep running statistics of *G's* activations, which do not match the
    averaged weights; so before the average is used (``ready``), its statistics are
    recomputed from its own weights: ``STAT_BATCHES`` batches of noise through it in
    training mode with a cumulative average (momentum None), the way "precise BN"
    (Wu & Johnson 2021) recomputes them. The noise comes from a fixed generator of its
    own, so the training run's random stream never depends on when this happens.
    """

    STAT_BATCHES, STAT_BATCH_SIZE = 16, 128

    def __init__(self, G, decay):
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay!r}")
        self.G, self.decay = G, float(decay)
        self.restart()

    def restart(self):
        """Start the average over at G's current weights."""
        self.model = copy.deepcopy(self.G)
        for layer in self.model.modules():  # G's last activations: not needed, not kept
            layer.__dict__.pop("_cache", None)
        self.updates = 0
        self.stale = True  # the batch-norm statistics are not the average's own

    def update(self):
        self.updates += 1
        rate = 1 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, p in zip(self.model.parameters(), self.G.parameters()):
            avg.data += rate * (p.data - avg.data)
        self.stale = True

    def ready(self):
        """The averaged generator in eval mode, with batch-norm statistics of its own."""
        if self.stale:
            recompute_batchnorm_statistics(self.model, self.STAT_BATCHES, self.STAT_BATCH_SIZE)
            self.stale = False
        return self.model.eval()

    def state_dict(self) -> dict:
        return self.ready().state_dict()

    def load_state_dict(self, state):
        self.model.load_state_dict(state)
        self.stale = False

    def set_updates(self, updates):
        if np.ndim(updates) != 0 or np.asarray(updates).dtype.kind not in "iu" or updates < 0:
            raise ValueError(f"ema_updates must be a count, got {updates!r}")
        self.updates = int(updates)


def recompute_batchnorm_statistics(G, batches, batch_size, seed=0):
    """Set every batch norm's running statistics in G to the average over ``batches``
    batches of G(z), z ~ N(0, 1) from a NumPy generator seeded with ``seed``."""
    layers = [m for m in G.modules() if isinstance(m, nn.BatchNorm)]
    momenta = [m.momentum for m in layers]
    bk = backend.current()
    for m in layers:
        m.running_mean[...], m.running_var[...] = 0, 1
        m.num_batches_tracked[...] = 0
        m.momentum = None  # a plain average over the batches below
    rng = np.random.default_rng(seed)
    G.train()
    try:
        for _ in range(batches):
            z = rng.standard_normal((batch_size, G.nz, 1, 1)).astype(np.float32)
            G(bk.from_numpy(z).astype(next(G.parameters()).dtype))
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        G.eval()
    return G


# A run that has blown up while staying finite: a loss this large means logits of the
# same size on the wrong side (healthy DCGAN losses stay within ~0.01-10), and D(G(z))
# pinned within PINNED of 0 or 1 for PINNED_STEPS steps in a row means one player wins
# outright and the other gets no useful gradient.
LOSS_BOUND = 50.0
PINNED, PINNED_STEPS = 1e-3, 100


class CollapseWatch:
    """Notices, once, a run that has exploded or collapsed while its losses stay finite:
    a loss beyond LOSS_BOUND, or D(G(z)) pinned at 0 or 1 for PINNED_STEPS steps."""

    def __init__(self):
        self.pinned_since = None  # the first step of the current pinned stretch
        self.message = None

    def update(self, step, m) -> bool:
        """True the first time the run looks collapsed (self.message says how)."""
        if self.message:
            return False
        pinned = m["d_fake"] < PINNED or m["d_fake"] > 1 - PINNED
        self.pinned_since = (self.pinned_since or step) if pinned else None
        if max(m["loss_d"], m["loss_g"]) > LOSS_BOUND:
            what = f"loss_d={m['loss_d']:.3g}, loss_g={m['loss_g']:.3g} (healthy: ~0.1-5)"
        elif self.pinned_since is not None and step - self.pinned_since + 1 >= PINNED_STEPS:
            what = (f"D(x)={m['d_real']:.3f} and D(G(z))={m['d_fake']:.3f} for "
                    f"{PINNED_STEPS} steps")  # fmt: skip
        else:
            return False
        self.message = (
            f"step {step}: {what}: the run has likely exploded or collapsed (one network "
            "wins outright, the other learns nothing); usually a learning rate too high: "
            "try --lr 2e-4 --beta1 0.5, or --label-smoothing 0.1; training goes on "
            "(--stop-on-collapse stops it)"
        )
        return True
