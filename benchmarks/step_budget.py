"""One DCGAN training step as a time budget: per layer and per phase, beside the floor.

    python benchmarks/step_budget.py    # run.py's three configs and the default run, both backends
    python benchmarks/step_budget.py --configs 0 --backends numba --steps 3

The step is ``run.py``'s (``GANTrainer.step`` on the paper's DCGAN, on run.py's three
configs), and the default run's (minigan's recipe, 28x28, ngf = ndf = 32, batch 128). Each layer's
``forward`` and ``backward`` and each backend kernel are wrapped in a timer, so a step
reads as a budget:

- on one thread, where every phase runs in turn and the times add up: im2col, the
  matrix products, col2im, "copies" (what else a convolution does: the NCHW <->
  channels-last copies around the products, the bias, the gradient accumulation and
  the Python between them), batch norm, activations, loss, optimiser, and the rest of
  the step (noise, the real batch, the step's four numbers);
- on every core, each layer's wall time; "idle" is what the second core did not save,
  wall - (one-thread time) / cores.

The matrix products are timed by replaying, alone, the products each convolution ran
(the same shapes, slices and orientations as ``minigan.functional``), because a
product inside ``functional`` cannot be timed from outside; "copies" is the rest of
the convolution's time.

The floor: the step's convolution FLOPs (counted from the calls, input and weight
gradients only where the trainer asks for them) over the cores times one core's
SGEMM rate on convolution-shaped products (``run.openblas_kernel_rates``, minigan's
pick). Writes ``benchmarks/results/step_budget.json`` and ``step_budget.md``.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (chooses OpenBLAS's kernels before NumPy loads)
from threadpoolctl import threadpool_limits  # noqa: E402

from minigan import backend, nn  # noqa: E402
from minigan import functional as F  # noqa: E402
from minigan.backend_numpy import kernel_covers_image  # noqa: E402
from minigan.gan import GANTrainer  # noqa: E402
from minigan.models.dcgan import Discriminator, Generator  # noqa: E402

# run.py's configs, and the default `python -m minigan.train` (minigan's recipe: one
# more layer in each network, models/dcgan.py) on run.py's first config.
CONFIGS = [*run.CONFIGS, ("28x28x1 ngf=ndf=32 batch 128, --recipe minigan (the default run)",
                          28, 1, 32, 128, {"extra_layer": True})]  # fmt: skip

import numpy as np  # noqa: E402  # isort: skip

KERNELS = {  # backend method -> phase
    "im2col": "im2col", "col2im": "col2im",
    "batchnorm_forward": "batch norm", "batchnorm_backward": "batch norm",
    "update_running_stats": "batch norm",
    "leaky_relu": "activation", "leaky_relu_backward": "activation",
    "sigmoid": "loss", "bce_with_logits": "loss", "bce_with_logits_backward": "loss",
    "adam_update": "optimiser",
}  # fmt: skip
PHASES = ["im2col", "GEMM", "col2im", "copies", "batch norm", "activation", "loss",
          "optimiser", "rest of the step"]  # fmt: skip


class Budget:
    """Seconds by (layer, phase), and the convolution products to replay."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.products = collections.Counter()  # (layer, m, k, n, kind) -> count
        self.flops = 0.0
        self.layer = "step"

    def timed(self, function, phase):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[(self.layer, phase)] += time.perf_counter() - start

        return wrapper


def products_of(layer, x_shape, out_shape):
    """{part: [(m, k, n, kind)]} of one convolution, "S" for a slice's samples and "P"
    for its columns, and the columns per sample and values per column of its slices.
    kind names the operands' memory orders (see ``replay_seconds``).

    The path is picked as ``functional`` picks it, with its own tests in its order: a
    kernel that covers the image first (a linear layer), then few filters (kn2row),
    else im2col."""
    kh, kw = layer.kernel_size
    if isinstance(layer, nn.Conv2d):
        f, c, k = layer.out_channels, layer.in_channels, kh * kw * layer.in_channels
        ph, pw = layer.padding
        if kernel_covers_image(x_shape, (kh, kw), ((ph, ph), (pw, pw))):  # a linear layer
            plan = {"forward": [("S", k, f, "x@W.T")], "input": [("S", f, k, "dout@W")],
                    "weight": [(f, "S", k, "dout.T@x")]}  # fmt: skip
            return plan, 1, 1  # functional._as_linear_forward: for_each_batch(work, n, 1)
        if F._few_filters(layer.weight.data):  # kn2row, one product per sample (_taps_forward)
            taps, hw = f * kh * kw, int(np.prod(x_shape[2:]))
            plan = {"forward": [(taps, c, hw, "each:T@x")], "input": [(c, taps, hw, "each:T.T@s")],
                    "weight": [(taps, hw, c, "each:s@x.T")]}  # fmt: skip
            return plan, hw, taps
        plan = {"forward": [(f, k, "P", "W@cols.T")], "input": [("P", f, k, "dout.T@W")],
                "weight": [(f, "P", k, "dout@cols")]}  # fmt: skip
        return plan, int(np.prod(out_shape[2:])), k
    cin, k = layer.in_channels, kh * kw * layer.out_channels
    pad = F._transpose_padding(layer.padding, layer.output_padding)
    if kernel_covers_image(out_shape, (kh, kw), pad):  # a linear layer
        plan = {"forward": [("S", cin, k, "x@W")], "input": [("S", k, cin, "dout@W.T")],
                "weight": [(k, "S", cin, "dout.T@x")]}  # fmt: skip
        return plan, 1, 1
    plan = {"forward": [("P", cin, k, "x.T@W")], "input": [(cin, k, "P", "W@dcols.T")],
            "weight": [(cin, "P", k, "x@dcols")]}  # fmt: skip
    return plan, int(np.prod(x_shape[2:])), k


def record_products(budget, name, layer, shapes, phase, grads):
    """Add the matrix products ``functional``'s convolution runs to ``budget.products``:
    shapes = (x_shape, out_shape), grads = (input_grad, weight_grad). The slices are the
    backend's own (``CpuThreads.slices``), on the thread count it has now."""
    plan, per_sample, per_column = products_of(layer, *shapes)
    parts = ["forward"] if phase == "forward" else []
    parts += ["input"] * (phase == "backward" and grads[0])
    parts += ["weight"] * (phase == "backward" and grads[1])
    bk = backend.current()
    for part in parts:
        for batch in bk.slices(shapes[0][0], per_sample, per_column):
            samples = batch.stop - batch.start
            sizes = {"S": samples, "P": samples * per_sample}
            for *dims, kind in plan[part]:
                shape = tuple(int(sizes.get(d, d)) for d in dims)
                count = samples if kind.startswith("each:") else 1
                budget.products[(name, *shape, kind)] += count
                budget.flops += 2.0 * shape[0] * shape[1] * shape[2] * count


def replay_seconds(m, k, n, kind, repeats=7):
    """Median seconds of one product of that shape and operand order, on one thread."""
    rng = np.random.default_rng(0)

    def array(rows, cols, transposed=False):
        a = rng.standard_normal((cols, rows) if transposed else (rows, cols), dtype=np.float32)
        return a.T if transposed else a

    # Which operand is a transposed view: W@cols.T (cols is P x K), dout.T@W (dout_t is
    # F x P), W@dcols.T, x.T@W (x channels-first, Cin x P), and the linear layers' own
    # transposes. The rest are plain C arrays.
    a = array(m, k, transposed=kind in ("dout.T@W", "x.T@W", "dout.T@x", "each:T.T@s"))
    b = array(k, n, transposed=kind in ("W@cols.T", "W@dcols.T", "x@W.T", "dout@W.T", "each:s@x.T"))

    def product():  # one filter's input gradient is an outer product (no BLAS call)
        return a * b if kind == "dout@W" and k == 1 else a @ b

    times = []
    with threadpool_limits(1):
        product()
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def instrument(budget, bk, trainer, phases=True):
    """Wrap the backend's kernels, every layer of G and D, and the optimisers."""
    if phases:
        for method, phase in KERNELS.items():
            setattr(bk, method, budget.timed(getattr(bk, method), phase))
    for side, model in (("G", trainer.G), ("D", trainer.D)):
        for i, layer in enumerate(model.main):
            name = f"{side}{i} {type(layer).__name__}"
            wrap_layer(budget, layer, name)
    for opt in (trainer.opt_g, trainer.opt_d):
        for method in ("step", "zero_grad"):
            inner = getattr(opt, method)

            def optimiser(inner=inner):
                budget.layer = "optimiser"
                try:
                    return budget.timed(inner, "total")()
                finally:
                    budget.layer = "step"

            setattr(opt, method, optimiser)


def wrap_layer(budget, layer, name):
    forward, backward = layer.forward, layer.backward
    conv = isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))

    def timed_forward(x):
        budget.layer = name
        start = time.perf_counter()
        out = forward(x)
        budget.seconds[(name, "forward")] += time.perf_counter() - start
        budget.layer = "step"
        if conv:
            layer._profile_shapes = (x.shape, out.shape)
            record_products(budget, name, layer, layer._profile_shapes, "forward", ())
        return out

    def timed_backward(grad_output, input_grad=True):
        budget.layer = name
        start = time.perf_counter()
        dx = backward(grad_output, input_grad)
        budget.seconds[(name, "backward")] += time.perf_counter() - start
        budget.layer = "step"
        if conv:
            grads = (input_grad, layer.weight.requires_grad)
            record_products(budget, name, layer, layer._profile_shapes, "backward", grads)
        return dx

    layer.forward, layer.backward = timed_forward, timed_backward


def profile(backend_name, config, threads, steps, phases):
    """Seconds per step by (layer, phase), the step's wall time, its products and FLOPs."""
    name, size, channels, width, batch, *layout = config
    layout = layout[0] if layout else {}
    bk = backend.use(backend_name, seed=0)
    G = Generator(100, width, channels, size, **layout)
    D = Discriminator(width, channels, size, **layout)
    real = np.random.default_rng(0).uniform(-1, 1, (batch, channels, size, size))
    trainer, real = GANTrainer(G, D), real.astype(np.float32)

    def step():
        trainer.step(real)

    run.set_threads(f"minigan-{backend_name}", threads)
    step(), step()  # warm-up: compiled kernels, pools, first-touch memory
    budget = Budget()
    instrument(budget, bk, trainer, phases)
    walls = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        walls.append(time.perf_counter() - start)
    for method in KERNELS:  # the backend object is shared: unwrap it
        bk.__dict__.pop(method, None)
    per_step = {key: s / steps for key, s in budget.seconds.items()}
    products = {key: count / steps for key, count in budget.products.items()}
    return per_step, statistics.median(walls), products, budget.flops / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="0,1,2,3", help="indices into CONFIGS")
    parser.add_argument("--backends", default="numba,numpy")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (mean)")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    configs = [CONFIGS[int(i)] for i in args.configs.split(",")]
    cores = run.CORES
    rate = max(run.openblas_kernel_rates().values())  # GFLOP/s, one core, conv shapes
    result = {"sgemm_1core_gflops": rate, "cores": cores, "configs": []}
    for config in configs:
        entry = {"config": config[0], "backends": {}}
        for name in args.backends.split(","):
            one, wall_1, products, flops = profile(name, config, 1, args.steps, phases=True)
            many, wall_n, _, _ = profile(name, config, cores, args.steps, phases=False)
            replay = {key[1:]: replay_seconds(*key[1:]) for key in products}
            entry["backends"][name] = summarise(
                one, wall_1, many, wall_n, products, replay, flops, rate, cores
            )
            print(config[0], name, json.dumps(entry["backends"][name]["phases_ms"]), flush=True)
        result["configs"].append(entry)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_budget.json").write_text(json.dumps(result, indent=1))
    (out / "step_budget.md").write_text(markdown(result))
    print(markdown(result))


def summarise(one, wall_1, many, wall_n, products, replay, flops, rate, cores):
    """The budget of one (config, backend): phases, per-layer rows, the floor."""
    layers = collections.defaultdict(dict)
    for (layer, phase), s in one.items():
        layers[layer][phase] = layers[layer].get(phase, 0.0) + s * 1e3
    gemm = collections.defaultdict(float)
    for (layer, *key), count in products.items():
        gemm[layer] += count * replay[tuple(key)] * 1e3
    phases = dict.fromkeys(PHASES, 0.0)
    rows = {}
    for layer, times in layers.items():
        if layer in ("optimiser", "step"):
            continue
        total = times.get("forward", 0.0) + times.get("backward", 0.0)
        inner = {k: v for k, v in times.items() if k not in ("forward", "backward")}
        rows[layer] = {"total_ms": total, **inner}
        wall = sum(many.get((layer, p), 0.0) for p in ("forward", "backward")) * 1e3
        rows[layer]["wall_ms_all_cores"] = wall
        if "Conv" in layer:
            rows[layer]["GEMM"] = gemm[layer]
            rows[layer]["copies"] = total - sum(inner.values()) - gemm[layer]
            inner = {**inner, "GEMM": gemm[layer], "copies": rows[layer]["copies"]}
        for phase, ms in inner.items():
            phases[phase] += ms
        if "Conv" not in layer:
            kind = "batch norm" if "BatchNorm" in layer else "activation"
            phases[kind] += total - sum(inner.values())  # wrappers around the kernels
    phases["optimiser"] += layers["optimiser"].get("total", 0.0) - phases["optimiser"]
    accounted = sum(phases.values())
    phases["rest of the step"] = wall_1 * 1e3 - accounted
    floor_ms = flops / (rate * 1e9 * cores) * 1e3
    layer_wall_n = sum(r["wall_ms_all_cores"] for r in rows.values())
    layer_one = sum(r["total_ms"] for r in rows.values())
    return {
        "step_ms_1_thread": wall_1 * 1e3,
        f"step_ms_{cores}_threads": wall_n * 1e3,
        "phases_ms": {k: round(v, 2) for k, v in phases.items()},
        "layers": rows,
        "conv_gflop_per_step": flops / 1e9,
        "floor_ms": floor_ms,
        "floor_ms_1_thread": floor_ms * cores,
        "idle_ms": layer_wall_n - layer_one / cores,
        "products": [[*key, count, replay[key[1:]] * 1e3] for key, count in products.items()],
    }


def markdown(result) -> str:
    cores, rate = result["cores"], result["sgemm_1core_gflops"]
    lines = [
        f"One core's SGEMM on convolution-shaped products: {rate} GFLOP/s; floor = "
        f"convolution FLOPs / ({cores} x that).",
        "",
    ]
    for entry in result["configs"]:
        for name, b in entry["backends"].items():
            p = b["phases_ms"]
            lines += [
                f"**{entry['config']}, minigan-{name}**: step {b['step_ms_1_thread']:.0f} ms on 1 "
                f"thread, {b[f'step_ms_{cores}_threads']:.0f} ms on {cores}; "
                f"{b['conv_gflop_per_step']:.1f} GFLOP of convolutions, floor "
                f"{b['floor_ms_1_thread']:.0f} ms on 1 core / {b['floor_ms']:.0f} ms on "
                f"{cores}; idle {b['idle_ms']:.0f} ms.",
                "",
                "| " + " | ".join(PHASES) + " |",
                "|" + "---|" * len(PHASES),
                "| " + " | ".join(f"{p[k]:.1f}" for k in PHASES) + " |",
                "",
                "| layer | 1 thread ms | im2col | GEMM | col2im | copies | batch norm | activation "
                f"| {cores} threads ms |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for layer, r in b["layers"].items():
                cells = [f"{r.get(k, 0.0):.1f}" for k in ("im2col", "GEMM", "col2im", "copies",
                                                          "batch norm", "activation")]  # fmt: skip
                lines.append(
                    f"| {layer} | {r['total_ms']:.1f} | " + " | ".join(cells)
                    + f" | {r['wall_ms_all_cores']:.1f} |"
                )  # fmt: skip
            lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
