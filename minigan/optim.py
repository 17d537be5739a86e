"""Optimisers with PyTorch's update rules: ``opt.zero_grad()``, backward, ``opt.step()``."""

from __future__ import annotations

import numpy as np

from . import backend
from .module import Module, Parameter


class Optimizer:
    """What SGD and Adam share: a list of ``Parameter`` objects and a learning rate,
    ``zero_grad()``, and ``state_dict()`` / ``load_state_dict()``: the step count and
    each parameter's buffers (``buffers()``) as a flat dict of NumPy arrays, which a
    checkpoint ``.npz`` holds. Subclasses write ``step()``."""

    lazy_buffers = False  # True: per-parameter state is created on the first step

    def __init__(self, params, lr):
        name = type(self).__name__
        if isinstance(params, Module):
            raise TypeError(f"{name} takes model.parameters(), not the model itself")
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{name} got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{name} takes Parameters, got a {type(p).__name__}")
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        # Plain Python floats: a NumPy float64 hyperparameter would upcast float32 math.
        self.lr = float(lr)

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        raise NotImplementedError

    # The state is a flat dict of NumPy arrays, so it can sit in an .npz checkpoint.
    def state_dict(self) -> dict:
        to_numpy = backend.current().to_numpy
        state = {"steps": np.asarray(self.steps)}
        for name, buffers in self.buffers().items():
            for i, b in enumerate(buffers):
                if b is not None:
                    state[f"{name}.{i}"] = to_numpy(b).copy()
        return state

    def load_state_dict(self, state) -> None:
        from_numpy = backend.current().from_numpy
        self.steps = int(state["steps"])
        for name, buffers in self.buffers().items():
            for i, p in enumerate(self.params):
                key = f"{name}.{i}"
                if key not in state and self.lazy_buffers:
                    buffers[i] = None  # not created yet when the state was saved
                    continue
                if key not in state:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {key} is missing")
                value = np.asarray(state[key])
                if value.shape != tuple(p.shape):
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: {key} has shape "
                        f"{value.shape}, expected {tuple(p.shape)}"
                    )
                buffers[i] = from_numpy(value.astype(p.dtype, copy=False).copy())

    def buffers(self) -> dict:
        """The per-parameter state, by name: lists parallel to ``self.params``."""
        return {}


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay (L2):

    g <- grad + weight_decay * p
    buf <- momentum * buf + g   (buf = g on the first step)
    p <- p - lr * buf
    """

    lazy_buffers = True

    def __init__(self, params, lr, momentum=0.0, *, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.momentum_buffers = [None] * len(self.params)
        self.steps = 0

    def buffers(self):
        return {"momentum_buffer": self.momentum_buffers}

    def step(self):
        self.steps += 1
        for i, p in enumerate(self.params):
            grad = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = self.momentum_buffers[i] = grad.copy()
                else:
                    buf *= self.momentum
                    buf += grad
                grad = buf
            p.data -= self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds L2 to the gradient.

    Per parameter: first and second moment estimates ``exp_avg`` (m) and
    ``exp_avg_sq`` (v); the update itself is the backend's ``adam_update`` kernel.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        xp = backend.current().xp
        self.exp_avg = [xp.zeros_like(p.data) for p in self.params]
        self.exp_avg_sq = [xp.zeros_like(p.data) for p in self.params]
        self.steps = 0

    def buffers(self):
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def step(self):
        self.steps += 1
        beta1, beta2 = self.betas
        update = backend.current().adam_update
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            grad = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            update(p.data, grad, m, v, lr=self.lr, beta1=beta1, beta2=beta2,
                   eps=self.eps, step=self.steps)  # fmt: skip
