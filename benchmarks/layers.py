"""Per-layer forward + backward time at the DCGAN's shapes: minigan vs PyTorch CPU.

    python benchmarks/layers.py                 # every backend, plus PyTorch if installed
    python benchmarks/layers.py --quick         # one repetition: checks that it runs
    python benchmarks/layers.py --json out.json

Frameworks are interleaved (each repetition times every framework once) so that
machine noise hits all alike; the table reports medians. Speed is measured here,
never asserted in the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from minigan import backend, nn

# (name, layer factory, input shape) at 64x64, ngf = ndf = 64; batch is filled in.
LAYERS = [
    ("D Conv2d 3->64, 64x64", lambda: nn.Conv2d(3, 64, 4, 2, 1, bias=False), (3, 64, 64)),
    ("D Conv2d 64->128, 32x32", lambda: nn.Conv2d(64, 128, 4, 2, 1, bias=False), (64, 32, 32)),
    ("D Conv2d 128->256, 16x16", lambda: nn.Conv2d(128, 256, 4, 2, 1, bias=False), (128, 16, 16)),
    ("D Conv2d 256->512, 8x8", lambda: nn.Conv2d(256, 512, 4, 2, 1, bias=False), (256, 8, 8)),
    (
        "G ConvT 100->512, 1x1",
        lambda: nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False),
        (100, 1, 1),
    ),
    (
        "G ConvT 512->256, 4x4",
        lambda: nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False),
        (512, 4, 4),
    ),
    (
        "G ConvT 256->128, 8x8",
        lambda: nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False),
        (256, 8, 8),
    ),
    (
        "G ConvT 128->64, 16x16",
        lambda: nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False),
        (128, 16, 16),
    ),
    ("G ConvT 64->3, 32x32", lambda: nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), (64, 32, 32)),
    ("BatchNorm2d 128, 16x16", lambda: nn.BatchNorm2d(128), (128, 16, 16)),
    ("LeakyReLU(0.2) 128x16x16", lambda: nn.LeakyReLU(0.2), (128, 16, 16)),
]


def minigan_step(backend_name, make, shape):
    backend.use(backend_name, seed=0)
    layer = make()
    x = backend.current().from_numpy(
        np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    )
    g = None

    def step():
        nonlocal g
        out = layer(x)
        if g is None:
            g = backend.current().xp.ones_like(out)
        layer.backward(g)

    return step


def torch_twin(layer):
    import torch

    kind = type(layer).__name__
    if kind == "Conv2d":
        return torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                               layer.stride, layer.padding, bias=False)  # fmt: skip
    if kind == "ConvTranspose2d":
        return torch.nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                        layer.stride, layer.padding, bias=False)  # fmt: skip
    if kind == "BatchNorm2d":
        return torch.nn.BatchNorm2d(layer.num_features)
    return torch.nn.LeakyReLU(layer.negative_slope)


def make_torch_step(make, shape):
    import torch

    module = torch_twin(make())
    x = torch.randn(*shape, requires_grad=True)
    g = None

    def step():
        nonlocal g
        out = module(x)
        if g is None:
            g = torch.ones_like(out)
        out.backward(g)

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions (median)")
    parser.add_argument("--quick", action="store_true", help="one repetition, no warm-up")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    repeats, warmup = (1, 0) if args.quick else (args.repeats, 2)

    frameworks = {f"minigan-{name}": name for name in backend.available()}
    try:
        import torch

        frameworks["torch"] = None
        torch_note = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_note = "PyTorch not installed: its column is skipped (pip install -e '.[compare]')"

    rows = []
    for name, make, chw in LAYERS:
        shape = (args.batch, *chw)
        steps = {
            fw: make_torch_step(make, shape) if bk is None else minigan_step(bk, make, shape)
            for fw, bk in frameworks.items()
        }
        times = {fw: [] for fw in steps}
        for rep in range(warmup + repeats):
            for fw, step in steps.items():  # interleaved
                if frameworks[fw] is not None:
                    backend.use(frameworks[fw])  # the one the layer was built on
                start = time.perf_counter()
                step()
                if rep >= warmup:
                    times[fw].append(time.perf_counter() - start)
        rows.append({"layer": name, **{fw: statistics.median(t) * 1e3 for fw, t in times.items()}})

    header = [f"layer (batch {args.batch}), forward+backward ms", *frameworks]
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}; {torch_note}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join([row["layer"]] + [f"{row[fw]:.2f}" for fw in frameworks]) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "repeats": repeats, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
