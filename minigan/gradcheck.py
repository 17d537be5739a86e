"""Finite-difference gradient checks: proof that a hand-written backward is right.

The numerical gradient of a scalar loss L with respect to one entry is the central
difference (L(x + h) - L(x - h)) / 2h. Run it in float64 on small shapes.

To check a layer, the loss is L = sum(layer(x) * g) with a *random* upstream
gradient g, so that backward(g) is exactly dL/dx. A plain sum (g = 1) proves
little: the input gradient of training-mode batch norm is then identically zero.

Each entry's relative error is ``|analytic - numeric| / (|analytic| + |numeric|)``,
with the denominator floored so that entries near zero are judged against the
round-off of the central difference instead of dividing two round-off errors.
Losses are summed exactly (``math.fsum``) so that the outputs an entry does not
touch cancel to the last bit.

>>> report = check_layer(nn.Conv2d(2, 3, 3, dtype=np.float64), x)
>>> print(report)          # one line per tensor: largest error and where
>>> assert report.ok

``python -m minigan.gradcheck`` checks every layer and prints the table.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from . import backend

DEFAULT_TOLERANCE = 1e-6


@dataclass
class TensorCheck:
    """The comparison for one tensor: its largest relative error and where it is."""

    name: str
    max_error: float
    index: tuple
    analytic: float
    numeric: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.max_error <= self.tolerance)

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return (
            f"{mark} {self.name:<14} max relative error {self.max_error:.2e} at {self.index} "
            f"(analytic {self.analytic:+.6e}, numeric {self.numeric:+.6e})"
        )


class Report(list):
    """A list of TensorCheck, one per checked tensor."""

    def __init__(self, title, checks):
        super().__init__(checks)
        self.title = title

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self)

    @property
    def max_error(self) -> float:
        return max(c.max_error for c in self)

    def __str__(self) -> str:
        return "\n".join([self.title] + ["  " + str(c) for c in self])


def _host_float64(a):
    return np.asarray(backend.current().to_numpy(a), dtype=np.float64)


def numerical_gradient(loss_terms, array, eps=1e-6):
    """d loss / d array by central differences, perturbing ``array`` in place (and
    restoring it). ``loss_terms()`` returns the terms whose sum is the loss (or the
    loss itself); L(x + h) - L(x - h) is summed exactly over the terms of both, so
    the terms one entry does not touch cancel to the last bit."""
    grad = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(*array.shape):
        original = array[index].item()
        # The step grows with the entry (h = eps * |x| for |x| > 1): x + h then keeps
        # as many digits of h for x = 11 as for x = 0.1.
        step = eps * max(1.0, abs(original))
        array[index] = original + step
        plus = _host_float64(loss_terms()).ravel()
        array[index] = original - step
        minus = _host_float64(loss_terms()).ravel()
        array[index] = original
        grad[index] = math.fsum(np.concatenate([plus, -minus])) / (2 * step)
    return grad


def compare(name, analytic, numeric, noise, tolerance=DEFAULT_TOLERANCE) -> TensorCheck:
    """Relative errors of ``analytic`` against ``numeric``.

    The denominator is floored at noise / tolerance: an entry smaller than that
    passes when it is within ``noise`` (the round-off of the central difference)
    in absolute terms, instead of failing on a ratio of two round-off errors.
    """
    analytic = np.asarray(backend.current().to_numpy(analytic), dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient of {name} has shape {analytic.shape}, expected {numeric.shape}")
    if analytic.size == 0:
        return TensorCheck(name, 0.0, (), 0.0, 0.0, tolerance)
    denominator = np.maximum(np.abs(analytic) + np.abs(numeric), noise / tolerance)
    errors = np.abs(analytic - numeric) / denominator
    errors[np.isnan(errors)] = np.inf
    index = np.unravel_index(int(np.argmax(errors)), errors.shape)
    return TensorCheck(
        name, float(errors[index]), tuple(int(i) for i in index),
        float(analytic[index]), float(numeric[index]), tolerance,
    )  # fmt: skip


def _noise_level(loss_terms, eps):
    """How far off a central difference may be from round-off alone: each loss term
    is known to ~1e-16 of its magnitude, and the difference is divided by 2h."""
    magnitude = math.fsum(np.abs(_host_float64(loss_terms)).ravel())
    return max(10 * np.finfo(np.float64).eps * magnitude / eps, 1e-15)


def _require_float64(named_arrays):
    """Central differences with h = 1e-6 need float64: in float32, x + h rounds
    away most of h and the check measures round-off, not the backward."""
    for name, array in named_arrays:
        dtype = getattr(array, "dtype", None)
        if dtype != np.float64:
            raise TypeError(
                f"gradient checks need float64 arrays; {name} is "
                f"{dtype or type(array).__name__} (layers: build them with dtype=np.float64)"
            )


def _random_like(array, seed):
    """A fixed random upstream gradient, on the backend, in the array's dtype."""
    g = np.random.default_rng(seed).standard_normal(array.shape).astype(array.dtype)
    return backend.current().from_numpy(g)


def _upstream_gradient(out, upstream, seed, title):
    """The upstream gradient g of the loss sum(out * g): random from ``seed`` when
    ``upstream`` is None, else ``upstream`` itself (a number fills out's shape; an
    array, host or backend, must have out's shape), on the backend in out's dtype."""
    if upstream is None:
        return _random_like(out, seed)
    bk = backend.current()
    if np.ndim(upstream) == 0:
        return bk.xp.full(out.shape, float(upstream), dtype=out.dtype)
    g = upstream if bk.is_array(upstream) else bk.from_numpy(np.asarray(upstream))
    if tuple(g.shape) != tuple(out.shape):
        raise ValueError(
            f"{title}: upstream has shape {tuple(g.shape)}, but the output it multiplies "
            f"has shape {tuple(out.shape)}"
        )
    return g.astype(out.dtype, copy=False)


def _describe(thing) -> str | None:
    """A readable name for a function or object in a report's title.

    A named function gives its name (``conv2d_forward``), a ``functools.partial``
    the name of the function it wraps, a lambda None (the caller picks another
    name); an object its repr, unless that is Python's default
    ``<... object at 0x...>``, where the class name reads better."""
    if isinstance(thing, functools.partial):
        return _describe(thing.func)
    name = getattr(thing, "__name__", None)
    if name is not None:
        return None if name == "<lambda>" else name
    text = repr(thing)
    return type(thing).__name__ if " object at 0x" in text else text


def _function_title(forward, backward) -> str:
    """forward's name; for a lambda, the name of the backward without ``_backward``
    (a lambda around ``F.conv2d_forward`` paired with ``F.conv2d_backward`` reads
    ``conv2d``); else ``function``."""
    forward_name = _describe(forward)
    if forward_name:
        return forward_name
    backward_name = _describe(backward)
    if backward_name:
        return backward_name.removesuffix("_backward")
    return "function"


def check_layer(layer, x, seed=1234, eps=1e-6, tolerance=DEFAULT_TOLERANCE, name=None,
                upstream=None) -> Report:  # fmt: skip
    """Check ``layer.backward`` (input gradient and every parameter's gradient).

    x must be float64, like the layer's parameters. The analytic gradients are
    left in the parameters' ``.grad`` (zeroed first). Randomness in the forward
    (dropout) is frozen by restarting the backend's random stream before every
    forward; the layer's parameters and buffers are restored afterwards.
    name: the report's title (default: the layer's repr). upstream: the upstream
    gradient g in the loss sum(layer(x) * g), a number or an array shaped like the
    output (default: random normal from ``seed``; ``upstream=1`` is the plain sum).
    """
    _require_float64([("input", x)] + list(layer.named_parameters()))
    bk = backend.current()
    saved_state, rng_state = layer.state_dict(), bk.get_rng_state()

    def forward():
        bk.set_rng_state(rng_state)
        return layer.forward(x)

    title = name or _describe(layer) or "layer"
    out = forward()
    g = _upstream_gradient(out, upstream, seed, title)
    layer.zero_grad()
    grads = {"input": layer.backward(g)}
    grads.update((name, p.grad.copy()) for name, p in layer.named_parameters())

    def loss_terms():
        return forward() * g

    noise = _noise_level(out * g, eps)
    targets = [("input", x)] + [(name, p.data) for name, p in layer.named_parameters()]
    checks = [
        compare(name, grads[name], numerical_gradient(loss_terms, array, eps), noise, tolerance)
        for name, array in targets
    ]
    layer.load_state_dict(saved_state)
    bk.set_rng_state(rng_state)
    return Report(title, checks)


def check_function(forward, backward, inputs, names=None, seed=1234, eps=1e-6,
                   tolerance=DEFAULT_TOLERANCE, name=None, upstream=None) -> Report:  # fmt: skip
    """Check a functional pair: ``forward(*inputs) -> (out, cache)`` and
    ``backward(dout, cache) -> gradients``, one per input (None for non-arrays)::

        check_function(lambda x, w, b: F.conv2d_forward(x, w, b, stride=2),
                       F.conv2d_backward, [x, w, b], names=["x", "w", "b"],
                       name="conv2d, stride 2")

    inputs: float64 arrays, perturbed in place one entry at a time (and restored).
    name: the report's title (default: forward's name or, for a lambda, backward's
    without ``_backward``). upstream: the upstream gradient g in the loss
    sum(out * g), a number or an array shaped like out (default: random normal from
    ``seed``; ``upstream=1`` is the plain sum, which can hide a wrong backward).
    """
    title = name or _function_title(forward, backward)
    names = names or [f"input {i}" for i in range(len(inputs))]
    _require_float64([(n, a) for n, a in zip(names, inputs) if hasattr(a, "dtype")])
    out, cache = forward(*inputs)
    g = _upstream_gradient(out, upstream, seed, title)
    grads = backward(g, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if not len(names) == len(inputs) == len(grads):
        raise ValueError(
            f"{title}: {len(inputs)} inputs, {len(names)} names and "
            f"{len(grads)} gradients; they must match one to one"
        )

    def loss_terms():
        return forward(*inputs)[0] * g

    noise = _noise_level(out * g, eps)
    checks = [
        compare(name, grad, numerical_gradient(loss_terms, array, eps), noise, tolerance)
        for name, array, grad in zip(names, inputs, grads)
        if grad is not None
    ]
    return Report(title, checks)


def check_loss(loss_fn, logits, targets, eps=1e-6, tolerance=DEFAULT_TOLERANCE,
               name=None) -> Report:  # fmt: skip
    """Check ``loss_fn.backward()`` (d loss / d logits) for a loss like BCEWithLogitsLoss:
    ``loss_fn(logits, targets)`` returns the scalar loss and ``loss_fn.backward()``
    its gradient, shaped like logits (float64). name: the report's title (default:
    the loss's repr, or its class name where the repr is Python's default)."""
    _require_float64([("logits", logits)])
    value = loss_fn(logits, targets)
    analytic = loss_fn.backward()
    numeric = numerical_gradient(lambda: loss_fn(logits, targets), logits, eps)
    noise = _noise_level(value, eps)
    title = name or _describe(loss_fn) or "loss"
    return Report(title, [compare("logits", analytic, numeric, noise, tolerance)])


def away_from_kink(x, margin=1e-3):
    """Shift values away from 0 by ``margin``, so that x +- h never crosses the kink
    of ReLU / LeakyReLU, where the derivative jumps and a central difference lies."""
    xp = backend.current().xp
    return xp.where(x >= 0, x + margin, x - margin)


def _demo_layers():
    """One representative float64 configuration per layer, with an input for it."""
    from . import nn

    f64 = "float64"
    rng, on_backend = np.random.default_rng(0), backend.current().from_numpy
    image = on_backend(rng.standard_normal((2, 3, 6, 5)))
    return [
        (nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=f64), image),
        (nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1, output_padding=1, dtype=f64), image),
        (nn.BatchNorm2d(3, dtype=f64), image),
        (nn.BatchNorm2d(3, dtype=f64).eval(), image),
        (nn.BatchNorm1d(5, dtype=f64), on_backend(rng.standard_normal((4, 5)))),
        (nn.Linear(5, 3, dtype=f64), on_backend(rng.standard_normal((4, 5)))),
        (nn.ReLU(), away_from_kink(image)),
        (nn.LeakyReLU(0.2), away_from_kink(image)),
        (nn.Tanh(), image),
        (nn.Sigmoid(), image),
        (nn.Dropout(0.5), image),
        (nn.Flatten(), image),
        (nn.Identity(), image),
        (nn.Reshape(5, 18), image),
        (nn.Upsample(scale_factor=2), image),
        (
            nn.Sequential(
                nn.ConvTranspose2d(3, 4, 4, 2, 1, bias=False, dtype=f64),
                nn.BatchNorm2d(4, dtype=f64),
                nn.Tanh(),
                nn.Conv2d(4, 1, 3, dtype=f64),
            ),
            image,
        ),
    ]


def main(argv=None) -> int:
    """Check every layer and the loss on one backend; print a table; exit 1 on failure."""
    import argparse
    import sys
    import time

    from . import nn

    parser = argparse.ArgumentParser(
        prog="python -m minigan.gradcheck",
        description="Prove every hand-written backward pass with central finite differences "
        "(float64, random upstream gradient).",
    )
    parser.add_argument(
        "--backend", choices=backend.names(), help="backend to check (default: current)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every tensor's check")
    args = parser.parse_args(argv)
    try:
        bk = backend.use(args.backend) if args.backend else backend.current()
    except ValueError as e:  # a bad MINIGAN_BACKEND
        print(f"error: {e}", file=sys.stderr)
        return 2
    bk.seed(0)
    print(f"gradient checks on the {bk.name} backend (tolerance {DEFAULT_TOLERANCE:.0e})")
    print(f"{'layer':<22} {'tensors':>7} {'max rel. error':>15}  result")
    start = time.perf_counter()
    reports = []
    for layer, x in _demo_layers():
        mode = "" if layer.training else " (eval)"
        reports.append((type(layer).__name__ + mode, check_layer(layer, x)))
    logits = bk.from_numpy(np.random.default_rng(1).standard_normal((8, 1)) * 4)
    loss_check = check_loss(nn.BCEWithLogitsLoss(), logits, (logits > 0.5).astype(np.float64))
    reports.append(("BCEWithLogitsLoss", loss_check))
    for name, report in reports:
        verdict = "ok" if report.ok else "FAIL"
        print(f"{name:<22} {len(report):>7} {report.max_error:>15.2e}  {verdict}")
        if args.verbose or not report.ok:
            print(report)
    failed = sum(not r.ok for _, r in reports)
    print(f"{len(reports) - failed} of {len(reports)} passed in {time.perf_counter() - start:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
