"""minigan against PyTorch on the CPU: a whole DCGAN training step, and layer by layer.

    python benchmarks/run.py              # the full run (a few minutes); writes benchmarks/results/
    python benchmarks/run.py --quick      # one step of everything: proves it still runs (CI)

The step is the DCGAN issue's: D on a real batch and on G(z), one Adam step, then G
through the updated D, one Adam step; the same architecture, batch, initialisation
(DCGAN's N(0, 0.02)) and algorithm for every framework. PyTorch runs the same
``torch.nn`` layers, copied from minigan's weights (skipped with a note when it is
not installed). Every (framework, thread count) series is timed round-robin, one
step of each per repetition, so machine noise hits all alike; tables report medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# As `python -m minigan.train` does: OpenBLAS's kernels for this CPU (minigan/cpu.py),
# chosen before NumPy loads, which is the only time they can be.
from minigan import cpu  # noqa: E402

cpu.choose_openblas_kernels()

from minigan import backend, nn  # noqa: E402
from minigan.gan import GANTrainer  # noqa: E402
from minigan.models.dcgan import Discriminator, Generator  # noqa: E402

import numpy as np  # noqa: E402  # isort: skip

CONFIGS = [  # name, image size, channels, ngf = ndf, batch
    ("28x28x1 ngf=ndf=32 batch 128", 28, 1, 32, 128),
    ("28x28x1 ngf=ndf=64 batch 128", 28, 1, 64, 128),
    ("64x64x3 ngf=ndf=64 batch 64", 64, 3, 64, 64),
]
CORES = len(os.sched_getaffinity(0))


# ---- threads ----


def set_threads(framework, n):
    """Thread count for the next step: BLAS for every framework, plus minigan's (and
    Numba's) threads or torch's."""
    from threadpoolctl import threadpool_limits

    framework = framework.split()[0]  # "minigan-numba fwd" -> "minigan-numba"
    threadpool_limits(n)
    if framework.startswith("minigan-"):
        backend.use(framework.split("-")[1]).set_threads(n)
    if framework == "minigan-numba":
        import numba

        numba.set_num_threads(n)
    elif framework == "torch":
        import torch

        torch.set_num_threads(n)


def frameworks():
    names = [f"minigan-{name}" for name in ("numpy", "numba") if name in backend.available()]
    try:
        import torch

        return names + ["torch"], f"PyTorch {torch.__version__}"
    except ImportError:
        return names, "PyTorch not installed: its columns are skipped (pip install -e '.[compare]')"


# ---- one training step per framework ----


def make_step(framework, size, channels, width, batch):
    """A function that runs one training step of ``framework`` on a fixed real batch."""
    backend.use("numpy" if framework == "torch" else framework.split("-")[1], seed=0)
    G, D = Generator(100, width, channels, size), Discriminator(width, channels, size)
    real = np.random.default_rng(0).uniform(-1, 1, (batch, channels, size, size)).astype(np.float32)
    if framework != "torch":
        trainer = GANTrainer(G, D)
        bk = backend.current()

        def step():
            backend.use(bk.name)  # the backend these models live on (kept, not reseeded)
            trainer.step(real)

        return step
    import torch

    from minigan.torch_twin import TorchGANStep, to_torch

    torch_step = TorchGANStep(to_torch(G.main), to_torch(D.main))
    real_t = torch.from_numpy(real)

    def step():
        torch_step.step(real_t)

    return step


def interleaved(series, repeats, warmup):
    """series: {(framework, threads): step}. Median seconds of each, timed round-robin."""
    times = {key: [] for key in series}
    for rep in range(warmup + repeats):
        for (framework, threads), step in series.items():
            set_threads(framework, threads)
            start = time.perf_counter()
            step()
            if rep >= warmup:
                times[(framework, threads)].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def training_steps(names, threads, repeats, warmup, configs):
    rows = []
    for name, size, channels, width, batch in configs:
        series = {
            (fw, n): make_step(fw, size, channels, width, batch) for fw in names for n in threads
        }
        medians = interleaved(series, repeats, warmup)
        row = {"config": name, "ms": {f"{fw}@{n}": medians[(fw, n)] * 1e3 for fw, n in medians}}
        best = {fw: min(medians[(fw, n)] for n in threads) * 1e3 for fw in names}
        row["best_ms"] = best
        if "torch" in best:
            row["ratio_vs_torch"] = {fw: best[fw] / best["torch"] for fw in names if fw != "torch"}
        rows.append(row)
        print(f"  {name}: " + ", ".join(f"{fw} {ms:.0f} ms" for fw, ms in best.items()), flush=True)
    return rows


# ---- layer by layer ----


def dcgan_layers(batch):
    """(name, factory, input shape) of every convolution of the 64x64 DCGAN (ngf = ndf = 64)
    and of its first batch norm and LeakyReLU, read off the models themselves."""
    import copy

    backend.use("numpy", seed=0)
    models = {
        "G": (Generator(100, 64, 3, 64), np.zeros((batch, 100, 1, 1), np.float32)),
        "D": (Discriminator(64, 3, 64), np.zeros((batch, 3, 64, 64), np.float32)),
    }
    found, seen = [], set()
    for side, (model, x) in models.items():
        for layer in model.main:
            kind = type(layer).__name__
            wanted = (
                kind in ("Conv2d", "ConvTranspose2d") or kind in {"BatchNorm2d", "LeakyReLU"} - seen
            )
            if wanted:
                seen.add(kind)
                name = f"{side} {kind} {x.shape[1]}ch {x.shape[2]}x{x.shape[3]}"
                found.append((name, lambda layer=layer: copy.deepcopy(layer), x.shape))
            x = layer(x)
    return found


def conv_flops(layer, x_shape, out_shape):
    """Floating-point operations of one forward: 2 x multiply-adds (the backward is 2 of these)."""
    if isinstance(layer, nn.Conv2d):
        pixels = out_shape[0] * out_shape[2] * out_shape[3]
    elif isinstance(layer, nn.ConvTranspose2d):
        pixels = x_shape[0] * x_shape[2] * x_shape[3]
    else:
        return None
    return (
        2
        * pixels
        * layer.in_channels
        * layer.out_channels
        * layer.kernel_size[0]
        * layer.kernel_size[1]
    )


def layer_pair(framework, make, shape):
    """(forward, backward) callables for one layer of one framework."""
    backend.use("numpy" if framework == "torch" else framework.split("-")[1], seed=0)
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if framework == "torch":
        import torch

        from minigan.torch_twin import to_torch

        twin = to_torch(layer)
        x_t = torch.from_numpy(x).requires_grad_(True)
        state = {}

        def forward():
            state["out"] = twin(x_t)

        def backward():
            state["out"].backward(torch.ones_like(state["out"]))

        return forward, backward, layer
    bk = backend.current()
    xb = bk.from_numpy(x)
    state = {}

    def forward():
        backend.use(bk.name)
        state["out"] = layer(xb)

    def backward():
        backend.use(bk.name)
        layer.backward(bk.xp.ones_like(state["out"]))

    return forward, backward, layer


def layers(names, threads, repeats, warmup, batch):
    rows = []
    for name, make, shape in dcgan_layers(batch):
        pairs = {(fw, threads): layer_pair(fw, make, shape) for fw in names}
        series = {}
        for key, (forward, backward, _) in pairs.items():
            series[(key[0] + " fwd", threads)] = forward
            series[(key[0] + " fwd+bwd", threads)] = lambda f=forward, b=backward: (f(), b())
        medians = interleaved(series, repeats, warmup)
        layer = next(iter(pairs.values()))[2]
        out_shape = layer(np.zeros(shape, np.float32)).shape
        flops = conv_flops(layer, shape, out_shape)
        row = {"layer": name, "flops_forward": flops}
        for fw in names:
            fwd = medians[(fw + " fwd", threads)]
            both = medians[(fw + " fwd+bwd", threads)]
            row[fw] = {"forward_ms": fwd * 1e3, "backward_ms": max(both - fwd, 0) * 1e3}
            if flops:
                row[fw]["gflops"] = 3 * flops / both / 1e9
        rows.append(row)
    return rows


# ---- the machine, compile time, memory ----


def sgemm_rate(threads, n=2048):
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    with threadpool_limits(threads):
        a @ a
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    if "numba" in backend.available():
        import minigan.backend_numba  # noqa: F401  (sets its threading layer default)
    return {
        "cpu": cpu, "cores": CORES, "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "blas": _blas(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "sgemm_gflops": {str(n): round(sgemm_rate(n), 1) for n in sorted({1, CORES})},
        "conv_sgemm_gflops_1_thread": openblas_kernel_rates(),
    }  # fmt: skip


def _blas():
    from threadpoolctl import threadpool_info

    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return "unknown"
    kernels = f", {info[0]['architecture']} kernels" if info[0].get("architecture") else ""
    return f"{info[0]['internal_api']} {info[0]['version']}{kernels}"


CONV_PRODUCTS = [(128, 1024, 294), (64, 1024, 256), (256, 2048, 54)]  # (F, K, columns)


def openblas_kernel_rates():
    """GFLOP/s (one thread, median over convolution-shaped products) of OpenBLAS's own
    kernel pick and of the one minigan.cpu asks for, each in a fresh NumPy process:
    the measurement behind minigan's choice, repeated on this machine."""
    code = f"""
import statistics, time, numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
rates = []
with threadpool_limits(1):
    for f, k, p in {CONV_PRODUCTS}:
        w, cols = np.ones((f, k), np.float32), np.ones((p, k), np.float32)
        times = []
        for _ in range(30):
            start = time.perf_counter(); w @ cols.T; times.append(time.perf_counter() - start)
        rates.append(2 * f * k * p / statistics.median(times) / 1e9)
print(threadpool_info()[0].get("architecture"), round(statistics.median(rates), 1))
"""
    from minigan import cpu

    chosen = cpu.preferred_openblas_core_here()
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    picks = {"OpenBLAS's pick": env}
    if chosen:
        picks["minigan's pick"] = {**env, "OPENBLAS_CORETYPE": chosen}
    rates = {}
    for who, run_env in picks.items():
        out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True,
                             text=True, check=True)  # fmt: skip
        kernels, rate = out.stdout.split()
        rates[f"{kernels} ({who})"] = float(rate)
    return rates


def compile_seconds():
    """First-call cost of the Numba kernels: compiling from scratch (an empty cache
    directory), and loading them from the on-disk cache as later runs do."""
    code = "from minigan.backend_numba import NumbaBackend as B; print(B().warm_up())"
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True, cwd=HERE.parent).stdout)  # fmt: skip
        warm = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True, cwd=HERE.parent).stdout)  # fmt: skip
    return {"compile_s": round(cold, 2), "from_cache_s": round(warm, 3)}


def peak_rss_mb(framework, config, steps):
    """Peak resident memory of a fresh process that builds the models and runs training steps."""
    name, size, channels, width, batch = config
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent.
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import run; "
        f"step = run.make_step({framework!r}, {size}, {channels}, {width}, {batch}); "
        f"[step() for _ in range({steps})]; "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=HERE.parent)  # fmt: skip
    return int(out.stdout.strip()) / 1024


# ---- report ----


def markdown(result) -> str:
    m, names = result["machine"], result["frameworks"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']} "
        f"({m['blas']}), Numba {m['numba']}; {result['torch']}.",
        "OpenBLAS kernels on convolution-shaped products, one thread: "
        + ", ".join(f"{k} {v} GFLOP/s" for k, v in m["conv_sgemm_gflops_1_thread"].items())
        + ".",
        "SGEMM 2048: "
        + ", ".join(f"{v} GFLOP/s on {k} thread(s)" for k, v in m["sgemm_gflops"].items())
        + f". Numba kernels: {result['numba_compile']['compile_s']} s to compile, "
        f"{result['numba_compile']['from_cache_s']} s from the disk cache.",
        "",
        f"**DCGAN training step**, median of {result['repeats']} steps after {result['warmup']} "
        "warm-up, each framework at its best thread count (1 or all cores; both in the JSON); "
        "ratio = minigan / PyTorch (<= 1.0: minigan is as fast or faster).",
        "",
    ]
    header = ["config", *(f"{fw} ms" for fw in names)]
    if "torch" in names:
        header += [f"{fw} / torch" for fw in names if fw != "torch"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["steps"]:
        cells = [row["config"], *(f"{row['best_ms'][fw]:.0f}" for fw in names)]
        cells += [
            f"{row['ratio_vs_torch'][fw]:.2f}"
            for fw in names
            if fw != "torch" and "ratio_vs_torch" in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Peak memory (RSS) of a process that builds the models and runs "
              f"{result['memory_steps']} training steps, MB:", ""]  # fmt: skip
    lines += ["| config | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for config, mem in result["memory"].items():
        lines.append(f"| {config} | " + " | ".join(f"{mem[fw]:.0f}" for fw in names) + " |")
    lines += ["", f"**Layers** at the 64x64 DCGAN's shapes, batch {result['layer_batch']}, "
              f"{result['layer_threads']} thread(s): forward / backward ms, and achieved GFLOP/s "
              "of forward+backward for the convolutions.", ""]  # fmt: skip
    lines += ["| layer | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for row in result["layers"]:
        cells = []
        for fw in names:
            r = row[fw]
            cell = f"{r['forward_ms']:.1f} / {r['backward_ms']:.1f}"
            if "gflops" in r:
                share = r["gflops"] / m["sgemm_gflops"][str(result["layer_threads"])]
                cell += f" ({r['gflops']:.0f} GF/s, {share:.0%} of SGEMM)"
            cells.append(cell)
        lines.append(f"| {row['layer']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one step of everything, small configs (CI)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per series (median)")
    parser.add_argument(
        "--out", default=str(HERE / "results"), help="folder for latest.json / latest.md"
    )
    args = parser.parse_args(argv)
    names, torch_note = frameworks()
    if args.quick:
        repeats, warmup, configs = 1, 0, [("16x16x1 ngf=ndf=4 batch 8", 16, 1, 4, 8)]
        layer_batch, threads = 2, [1]
    else:
        repeats, warmup, configs = args.repeats, 2, CONFIGS
        layer_batch, threads = 64, sorted({1, CORES})
    print(f"{', '.join(names)}; {torch_note}", flush=True)
    result = {"frameworks": names, "torch": torch_note, "repeats": repeats, "warmup": warmup,
              "layer_batch": layer_batch, "layer_threads": max(threads)}  # fmt: skip
    result["machine"] = machine()
    result["numba_compile"] = compile_seconds()
    print("training steps", flush=True)
    result["steps"] = training_steps(names, threads, repeats, warmup, configs)
    print("memory", flush=True)
    steps = result["memory_steps"] = 1 if args.quick else 3
    result["memory"] = {c[0]: {fw: peak_rss_mb(fw, c, steps) for fw in names} for c in configs}
    print("layers", flush=True)
    result["layers"] = layers(names, max(threads), repeats, warmup, layer_batch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=1))
    (out / "latest.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out / 'latest.json'} and {out / 'latest.md'}")


if __name__ == "__main__":
    main()
