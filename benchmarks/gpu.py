"""minigan's CuPy backend against PyTorch on one CUDA GPU: a whole DCGAN training step.

    python benchmarks/gpu.py            # the full run (1-3 minutes); writes benchmarks/results/
    python benchmarks/gpu.py --quick    # 3 steps of one config, no profile: proves it still runs

The step is benchmarks/run.py's (the DCGAN issue's): D on a real batch and on G(z),
one Adam step (lr 2e-4, betas (0.5, 0.999)), then G through the updated D with D's
weights frozen, one Adam step; the same architecture, batch, initialisation (DCGAN's
N(0, 0.02), and as minigan draws its random numbers on the host, the very same
weights) and algorithm for both. PyTorch runs ``torch.nn`` copies of minigan's layers
(``minigan.torch_twin``) with cuDNN in benchmark mode. In both, the real batch
already lies on the GPU, and the step ends by reading its losses back as Python
floats: the step's one synchronisation. PyTorch draws the noise on the GPU; minigan
draws it on the host and copies it over, as its trainer does.

Precision: "fp32" has TF32 off in both (CUPY_TF32=0; torch's matmul and cuDNN
``allow_tf32 = False``), "tf32" has it on in both. CuPy reads CUPY_TF32 from the
environment, so every (framework, precision) runs in a fresh worker process: this
script again, with --worker, reporting JSON lines on stdout. A worker that fails or
outlives its time limit is recorded in the table, and the run goes on; --budget caps
the whole run, and the results are rewritten after every worker.

Per config and precision: the host wall time of a step between two device
synchronisations (median and min of --repeats steps after --warmup), the same steps
timed with CUDA events, the GPU memory high-water marks, and a CUPTI profile of a few
steps (torch.profiler, which records every kernel of the process, CuPy's included):
kernels launched and GPU time per step. Wall time minus GPU-busy time is what Python
and kernel launches cost. Exits with status 2, and one line saying why, where CuPy
or a GPU is missing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# run.py first: it puts minigan on the path and chooses the BLAS kernels before NumPy loads.
from run import CONFIGS as CPU_CONFIGS  # noqa: E402

from minigan import backend  # noqa: E402
from minigan.gan import GANTrainer  # noqa: E402
from minigan.models.dcgan import Discriminator, Generator  # noqa: E402

import numpy as np  # noqa: E402  # isort: skip

CONFIGS = [  # name, image size, channels, ngf = ndf, batch: run.py's, and a GPU-sized batch
    *CPU_CONFIGS,
    ("64x64x3 ngf=ndf=64 batch 256", 64, 3, 64, 256),
]
FRAMEWORKS = ("minigan-cupy", "torch")
PRECISIONS = ("fp32", "tf32")
METRICS = ("loss_d", "loss_g", "d_real", "d_fake")
NZ = 100
MB = 2**20
RESULT = "RESULT "  # how a worker's JSON lines start on its stdout
RESERVE_S = 30  # of the budget, kept for each worker still to come
# Kernels that do matrix products or convolutions, by name (cuBLAS, CUTLASS, cuDNN).
MATMUL_NAMES = ("gemm", "nvjet", "xmma", "cutlass", "cublas", "conv", "cudnn", "fprop", "dgrad")
GPU_WORK = {"kernel", "gpu_memcpy", "gpu_memset"}  # the trace's categories of device work


def real_batch(batch, channels, size):
    return np.random.default_rng(0).uniform(-1, 1, (batch, channels, size, size)).astype(np.float32)


def one_line(error) -> str:
    text = str(error).strip()
    return type(error).__name__ + (f": {text.splitlines()[0]}" if text else "")


# ---- one config of one framework, in a worker -------------------------------------------------


class MiniganCase:
    """minigan on its CuPy backend: models, trainer and a real batch on the GPU.
    TF32 is whatever CUPY_TF32 said when this process started."""

    @staticmethod
    def setup(tf32):
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        return {
            "cupy": cupy.__version__,
            "gpu": _text(props["name"]),
            "cuda_runtime": _cuda_version(cupy.cuda.runtime.runtimeGetVersion()),
            "cuda_driver": _cuda_version(cupy.cuda.runtime.driverGetVersion()),
            "CUPY_TF32": os.environ.get("CUPY_TF32"),
            "float32_matmul": _cupy_float32_compute_type(),
        }

    def __init__(self, size, channels, width, batch):
        import cupy

        self.cupy = cupy
        bk = backend.use("cupy", seed=0)
        G, D = Generator(NZ, width, channels, size), Discriminator(width, channels, size)
        self.trainer = GANTrainer(G, D)
        self.real = bk.from_numpy(real_batch(batch, channels, size))  # once, never timed
        self.pool = cupy.get_default_memory_pool()
        self.high = {"pool": 0, "used": 0}

    def step(self):
        return self.trainer.step(self.real)

    def synchronize(self):
        self.cupy.cuda.Device().synchronize()

    def event(self):
        return self.cupy.cuda.Event()

    def elapsed_ms(self, start, end):
        return self.cupy.cuda.get_elapsed_time(start, end)

    def sample_memory(self):
        """After each step: the pool's size (what CuPy holds) and the bytes in arrays."""
        self.high["pool"] = max(self.high["pool"], self.pool.total_bytes())
        self.high["used"] = max(self.high["used"], self.pool.used_bytes())

    def memory_mb(self, steps):
        """High-water marks of the timed run, then of ``steps`` steps from an emptied pool:
        "peak", exact, is the most bytes in live arrays at any moment (followed with a CuPy
        memory hook, like torch's max_memory_allocated); "pool", the most the pool held."""
        out = {
            "pool_timed": self.high["pool"] / MB,
            "used_after_step_timed": self.high["used"] / MB,
        }
        gc.collect()
        self.pool.free_all_blocks()
        pool, hook = 0, None
        try:
            hook = _live_bytes_hook(self.cupy, self.pool.used_bytes())
        except Exception as e:  # the hook is a measurement aid: report it, run on
            out["peak_error"] = one_line(e)
        with hook or contextlib.nullcontext():
            for _ in range(steps):
                self.step()
                pool = max(pool, self.pool.total_bytes())
        if hook is not None:
            out["peak"] = hook.peak / MB
        out["pool"] = pool / MB
        return out

    def close(self):
        del self.trainer, self.real
        gc.collect()
        self.pool.free_all_blocks()


def _cupy_float32_compute_type():
    """What CuPy's float32 matrix products use, as CuPy names it (COMPUTE_TYPE_TF32 when
    CUPY_TF32=1 took effect); a private CuPy API, so None where it is not there."""
    try:
        from cupy._core import _routines_linalg as linalg

        return linalg.compute_type_to_str(linalg.get_compute_type(np.float32))
    except Exception:
        return None


def _live_bytes_hook(cupy, live):
    class LiveBytes(cupy.cuda.MemoryHook):
        name = "minigan-benchmark-live-bytes"

        def __init__(self):
            self.live = self.peak = live

        def malloc_postprocess(self, **kw):
            if kw.get("mem_ptr"):
                self.live += kw["mem_size"]
                self.peak = max(self.peak, self.live)

        def free_postprocess(self, **kw):
            self.live -= kw["mem_size"]

    return LiveBytes()


class TorchCase:
    """The same step in PyTorch on CUDA, on torch.nn copies of minigan's weights."""

    @staticmethod
    def setup(tf32):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"PyTorch {torch.__version__} sees no CUDA GPU")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        return {
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "gpu": torch.cuda.get_device_name(),
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        }

    def __init__(self, size, channels, width, batch):
        import torch

        from minigan.torch_twin import TorchGANStep, to_torch

        self.torch, cuda = torch, torch.device("cuda")
        backend.use("numpy", seed=0)
        G, D = Generator(NZ, width, channels, size), Discriminator(width, channels, size)
        self.gan = TorchGANStep(to_torch(G.main, device=cuda), to_torch(D.main, device=cuda), nz=NZ)
        self.real = torch.from_numpy(real_batch(batch, channels, size)).to(cuda)
        torch.cuda.reset_peak_memory_stats()

    def step(self):
        return self.gan.step(self.real)  # the same four numbers, in one transfer

    def synchronize(self):
        self.torch.cuda.synchronize()

    def event(self):
        return self.torch.cuda.Event(enable_timing=True)

    def elapsed_ms(self, start, end):
        return start.elapsed_time(end)

    def sample_memory(self):
        pass  # torch keeps its own high-water marks

    def memory_mb(self, steps):
        """As MiniganCase's; the timed run's marks include cuDNN's search for algorithms."""
        cuda = self.torch.cuda
        out = {
            "peak_timed": cuda.max_memory_allocated() / MB,
            "pool_timed": cuda.max_memory_reserved() / MB,
        }
        gc.collect()
        cuda.empty_cache()
        cuda.reset_peak_memory_stats()
        for _ in range(steps):
            self.step()
        return {
            "peak": cuda.max_memory_allocated() / MB,
            "pool": cuda.max_memory_reserved() / MB,
            **out,
        }

    def close(self):
        del self.gan, self.real
        gc.collect()
        self.torch.cuda.empty_cache()


CASES = {"minigan-cupy": MiniganCase, "torch": TorchCase}


def measure(case, repeats, warmup, memory_steps):
    """Time ``repeats`` steps after ``warmup`` (the first step compiles CuPy's kernels and
    runs cuDNN's search), each between two device synchronisations; then memory."""
    start, end = case.event(), case.event()
    wall, event_ms, first = [], [], None
    for i in range(warmup + repeats):
        case.synchronize()
        began = time.perf_counter()
        start.record()
        case.step()
        end.record()
        case.synchronize()
        seconds = time.perf_counter() - began
        case.sample_memory()
        if i == 0:
            first = seconds
        if i >= warmup:
            wall.append(seconds * 1e3)
            event_ms.append(case.elapsed_ms(start, end))
    return {
        "ms": {"median": statistics.median(wall), "min": min(wall), "mean": statistics.mean(wall)},
        "event_ms": {"median": statistics.median(event_ms), "min": min(event_ms)},
        "first_step_s": first,
        "steps": len(wall),
        "memory_mb": case.memory_mb(memory_steps),
    }


def kernel_profile(case, steps):
    """Kernels per step and their GPU time, recorded by CUPTI through torch.profiler."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return {"note": "PyTorch is not installed: no kernel profile"}
    if not torch.cuda.is_available():
        return {"note": "PyTorch has no CUDA: no kernel profile"}
    torch.cuda.init()  # in the minigan worker: torch joins the context CuPy made
    case.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                case.step()
            case.synchronize()
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text()).get("traceEvents", [])
    return kernel_summary(events, steps)


def kernel_summary(events, steps):
    """Per step: kernels, their summed durations, copies and memsets, and the time the
    GPU was busy with any of them (the union of their intervals), from a Chrome trace."""
    work = [e for e in events if e.get("ph") == "X" and e.get("cat") in GPU_WORK]
    kernels = [e for e in work if e["cat"] == "kernel"]
    if not kernels:
        return {"note": "the profile recorded no kernels (is CUPTI available?)"}
    per_name, calls = collections.Counter(), collections.Counter()
    for e in kernels:
        per_name[e["name"]] += e["dur"]
        calls[e["name"]] += 1
    busy, busy_until = 0.0, float("-inf")
    for began, ended in sorted((e["ts"], e["ts"] + e["dur"]) for e in work):
        busy += max(0.0, ended - max(began, busy_until))
        busy_until = max(busy_until, ended)
    matmul = sum(d for name, d in per_name.items() if any(k in name.lower() for k in MATMUL_NAMES))
    return {
        "steps": steps,
        "kernels_per_step": len(kernels) / steps,
        "kernel_ms_per_step": sum(per_name.values()) / steps / 1e3,
        "matmul_conv_ms_per_step": matmul / steps / 1e3,
        "copies_per_step": (len(work) - len(kernels)) / steps,
        "busy_ms_per_step": busy / steps / 1e3,
        "top_kernels": [
            {
                "name": name[:120],
                "ms_per_step": d / steps / 1e3,
                "calls_per_step": calls[name] / steps,
            }
            for name, d in per_name.most_common(15)
        ],
    }


def worker(framework, precision, configs, repeats, warmup, profile_steps):
    """One framework at one precision, config after config, one JSON line each on stdout;
    then the kernel profiles, after all the timing (CUPTI may slow what runs after it)."""
    make = CASES[framework]
    try:
        emit({"env": make.setup(precision == "tf32")})
    except Exception as e:
        traceback.print_exc()
        for index in configs:
            emit({"config": CONFIGS[index][0], "error": one_line(e)})
        return
    timed = []
    for index in configs:
        try:
            with open_case(make, index) as case:
                result = measure(case, repeats, warmup, memory_steps=2 if profile_steps else 1)
            timed.append(index)
        except Exception as e:
            traceback.print_exc()
            result = {"error": one_line(e)}
        emit({"config": CONFIGS[index][0], **result})
    for index in timed if profile_steps else []:
        try:
            with open_case(make, index) as case:
                for _ in range(2):  # warm again: a fresh case, fresh allocations
                    case.step()
                profile = kernel_profile(case, profile_steps)
        except Exception as e:
            traceback.print_exc()
            profile = {"note": f"profile failed: {one_line(e)}"}
        emit({"profile_of": CONFIGS[index][0], "profile": profile})


@contextlib.contextmanager
def open_case(make, index):
    _, size, channels, width, batch = CONFIGS[index]
    case = make(size, channels, width, batch)
    try:
        yield case
    finally:
        case.close()


def emit(record):
    print(RESULT + json.dumps(record, default=float), flush=True)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _cuda_version(number):
    return f"{number // 1000}.{number % 1000 // 10}"


# ---- the parent: workers, budget, report -----------------------------------------------------


def gpu_or_exit():
    """What CuPy sees (versions, GPU), or exit with status 2 and one line saying why."""

    def no_gpu(why):
        print(f"benchmarks/gpu.py: no GPU benchmark here: {why}", file=sys.stderr)
        raise SystemExit(2)

    if importlib.util.find_spec("cupy") is None:
        no_gpu("CuPy is not installed (pip install cupy-cuda12x, or cupy-cuda13x)")
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        if count:
            props = cupy.cuda.runtime.getDeviceProperties(0)
            runtime = cupy.cuda.runtime.runtimeGetVersion()
            driver = cupy.cuda.runtime.driverGetVersion()
    except Exception as e:
        no_gpu(f"CuPy cannot reach a GPU ({one_line(e)})")
    if not count:
        no_gpu("CuPy finds no GPU")
    return {
        "gpu": _text(props["name"]),
        "gpus": count,
        "gpu_memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "cuda_runtime": _cuda_version(runtime),
        "cuda_driver": _cuda_version(driver),
        "cupy": cupy.__version__,
    }


def machine(cupy_info):
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = None
    return {
        **cupy_info,
        "torch": torch,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE"),
    }


def run_worker(framework, precision, configs, args, timeout, result):
    """Run one worker on the configs (indices into CONFIGS), recording and printing what it
    reports as it comes. Returns the configs to try again in a fresh worker: those after
    the one it died on."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", framework,
               "--precision", precision, "--configs", ",".join(map(str, configs)),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup),
               "--profile-steps", str(args.profile_steps)]  # fmt: skip
    env = {**os.environ, "CUPY_TF32": "1" if precision == "tf32" else "0", "PYTHONUNBUFFERED": "1"}
    env.pop("NVIDIA_TF32_OVERRIDE", None)  # it would overrule both frameworks' TF32 switches
    print(f"{framework} {precision}: {len(configs)} config(s), at most {timeout:.0f} s", flush=True)
    began, timed = time.monotonic(), []

    def record(line):
        if "env" in line:
            result["env"][f"{framework} {precision}"] = line["env"]
        elif "profile_of" in line:
            run = find(result, framework, precision, line["profile_of"])
            run["profile"] = line["profile"]
            print("  " + progress(run, profile=True), flush=True)
        else:
            timed.append(add_run(result, framework, precision, line.pop("config"), line))
            print("  " + progress(timed[-1]), flush=True)

    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, cwd=HERE.parent)  # fmt: skip

        def read():
            for line in process.stdout:
                if line.startswith(RESULT):
                    try:
                        record(json.loads(line[len(RESULT) :]))
                    except Exception as e:  # keep reading: a bad line loses only itself
                        print(f"  unreadable worker line ({one_line(e)}): {line[:200]}")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            status = process.wait(timeout=timeout)
            failure = None
            if status:
                failure = f"worker exited with status {status}"
                if status < 0:
                    failure = f"worker killed by {signal.Signals(-status).name}"
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status, failure = None, f"worker timed out after {timeout:.0f} s"
        reader.join(timeout=10)
        stderr.seek(0)
        tail = stderr.read().strip().splitlines()[-15:]
    if failure and tail and status:
        failure += f": {tail[-1].strip()[:200]}"
    seconds = round(time.monotonic() - began, 1)
    names = [CONFIGS[i][0] for i in configs]
    result["workers"].append({"framework": framework, "precision": precision, "configs": names,
                              "seconds": seconds, "failure": failure})  # fmt: skip
    if tail and (failure or any("error" in run for run in timed)):
        print("  its stderr ends:\n    " + "\n    ".join(tail), file=sys.stderr, flush=True)
    done = {run["config"] for run in timed}
    left = [i for i in configs if CONFIGS[i][0] not in done]
    if not left:
        if failure:  # every config timed; it died in the profiles
            print(f"  {failure}", flush=True)
        return []
    if not failure:  # exited cleanly without them: no reason to expect better next time
        return fail(result, framework, precision, left, "the worker reported nothing on it")
    fail(result, framework, precision, left[:1], failure)  # the config it died on
    return left[1:]


def fail(result, framework, precision, configs, why):
    for i in configs:
        print(f"  {framework} {precision} {CONFIGS[i][0]}: {why}", flush=True)
        add_run(result, framework, precision, CONFIGS[i][0], {"error": why})
    return []


def run_all(args, result, write):
    """Every (precision, framework) worker in turn, within the time budget, keeping
    RESERVE_S of it for each worker still to come; results are written after each."""
    deadline = time.monotonic() + args.budget
    jobs = [(p, f) for p in args.precisions for f in args.frameworks]
    for n, (precision, framework) in enumerate(jobs):
        pending = list(args.configs)
        if framework == "torch" and importlib.util.find_spec("torch") is None:
            pending = fail(result, framework, precision, pending, "PyTorch is not installed")
        while pending:
            left = deadline - time.monotonic()
            timeout = min(args.timeout, left - RESERVE_S * (len(jobs) - n - 1))
            if timeout < 15:
                why = "not run: out of the time budget (--budget)"
                pending = fail(result, framework, precision, pending, why)
            else:
                pending = run_worker(framework, precision, pending, args, timeout, result)
            write()


def add_run(result, framework, precision, config, record):
    run = {"framework": framework, "precision": precision, "config": config, **record}
    result["runs"].append(run)
    return run


def find(result, framework, precision, config):
    for run in result["runs"]:
        if (run["framework"], run["precision"], run["config"]) == (framework, precision, config):
            return run
    return None


def progress(run, profile=False):
    head = f"{run['framework']} {run['precision']} {run['config']}: "
    if "error" in run:
        return head + run["error"]
    if not profile:
        return head + f"{run['ms']['median']:.2f} ms (min {run['ms']['min']:.2f})"
    prof = run["profile"]
    if "note" in prof:
        return head + prof["note"]
    return head + (
        f"{prof['kernels_per_step']:.0f} kernels/step, kernels "
        f"{prof['kernel_ms_per_step']:.2f} ms/step, GPU busy "
        f"{prof['busy_ms_per_step']:.2f} ms/step"
    )


# ---- report ----------------------------------------------------------------------------------


def ms(value) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def cell(run, read) -> str:
    """read(run) as text: "failed" for a run with an error, "-" where it was not measured."""
    if run is None:
        return "-"
    if "error" in run:
        return "failed"
    try:
        value = read(run)
    except (KeyError, TypeError):
        return "-"
    return value if isinstance(value, str) else ms(value)


def memory(run) -> str:
    def read(r):
        mem = r["memory_mb"]
        return (
            f"{mem['peak']:.0f} / {mem['pool']:.0f}" if "peak" in mem else f"- / {mem['pool']:.0f}"
        )

    return cell(run, read)


def header(result) -> str:
    m = result["machine"]
    torch_env = next((e for k, e in result["env"].items() if k.startswith("torch")), {})
    torch_text = f"PyTorch {m['torch']}" if m["torch"] else "PyTorch not installed"
    if torch_env.get("torch_cuda"):
        torch_text += f" (CUDA {torch_env['torch_cuda']}, cuDNN {torch_env['cudnn']})"
    profiled = "not profiled"
    if result["profile_steps"]:
        profiled = f"CUPTI (torch.profiler), {result['profile_steps']} steps"
    return (
        f"GPU: {m['gpu']} ({m['gpu_memory_gb']} GiB, compute capability "
        f"{m['compute_capability']}); CUDA runtime {m['cuda_runtime']} (CuPy's), driver "
        f"{m['cuda_driver']}; CuPy {m['cupy']}, {torch_text}, NumPy {m['numpy']}, "
        f"Python {m['python']}. TF32 as the workers found it: {applied_tf32(result['env'])}.\n\n"
        f"**DCGAN training step on the GPU**: median host wall time of {result['repeats']} steps "
        f"after {result['warmup']} warm-up, each between two device synchronisations; the real "
        "batch already on the GPU. fp32: TF32 off in both; tf32: TF32 on in both. Ratio = "
        "minigan / PyTorch (<= 1.0: minigan is as fast or faster). Memory: peak = most bytes in "
        "live arrays (a CuPy memory hook; torch.cuda.max_memory_allocated), pool = most held by "
        "the caching allocator (CuPy's pool total_bytes; max_memory_reserved), over steps from "
        f"an emptied cache. Kernels and GPU-busy time: {profiled}."
    )


def applied_tf32(env) -> str:
    """CuPy's float32 compute type and torch's cuDNN switch, as each worker read them back."""
    parts = []
    for key, e in env.items():
        if "float32_matmul" in e:
            parts.append(f"{key} {e['float32_matmul']}")
        if "cudnn_allow_tf32" in e:
            parts.append(f"{key} allow_tf32={e['cudnn_allow_tf32']}")
    return ", ".join(parts) or "-"


def main_table(result) -> str:
    columns = [
        "config",
        "precision",
        "minigan ms",
        "torch ms",
        "minigan / torch",
        "minigan MB peak / pool",
        "torch MB peak / pool",
        "minigan kernels/step",
        "minigan GPU-busy ms/step",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for config in result["configs"]:
        for precision in result["precisions"]:
            mg = find(result, "minigan-cupy", precision, config)
            pt = find(result, "torch", precision, config)
            ratio = "-"
            if mg and pt and "ms" in mg and "ms" in pt:
                ratio = f"{mg['ms']['median'] / pt['ms']['median']:.2f}"
            cells = [
                config,
                precision,
                cell(mg, lambda r: r["ms"]["median"]),
                cell(pt, lambda r: r["ms"]["median"]),
                ratio,
                memory(mg),
                memory(pt),
                cell(mg, lambda r: f"{r['profile']['kernels_per_step']:.0f}"),
                cell(mg, lambda r: r["profile"]["busy_ms_per_step"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details(result) -> str:
    """Where the time goes, minigan's costliest kernels, and what failed."""
    lines = [
        "**Where the time goes**: wall = host wall time per step, median (min); event = "
        "the same steps timed with CUDA events; kernel ms = summed kernel durations, of "
        "which matmul/conv = cuBLAS, CUTLASS and cuDNN kernels (by name); busy = time the "
        "GPU ran any kernel or copy; wall minus busy is Python and launch overhead. First "
        "step: CuPy's kernel compiles (or cache loads) and cuDNN's search.",
        "",
    ]
    columns = [
        "config",
        "precision",
        "framework",
        "wall ms (min)",
        "event ms",
        "kernels/step",
        "kernel ms/step",
        "matmul/conv ms/step",
        "busy ms/step",
        "busy / wall",
        "first step s",
    ]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for config in result["configs"]:
        for precision in result["precisions"]:
            for framework in FRAMEWORKS:
                run = find(result, framework, precision, config)
                if run is None:
                    continue
                cells = [
                    config,
                    precision,
                    framework,
                    cell(run, lambda r: f"{ms(r['ms']['median'])} ({ms(r['ms']['min'])})"),
                    cell(run, lambda r: r["event_ms"]["median"]),
                    cell(run, lambda r: f"{r['profile']['kernels_per_step']:.0f}"),
                    cell(run, lambda r: r["profile"]["kernel_ms_per_step"]),
                    cell(run, lambda r: r["profile"]["matmul_conv_ms_per_step"]),
                    cell(run, lambda r: r["profile"]["busy_ms_per_step"]),
                    cell(
                        run, lambda r: f"{r['profile']['busy_ms_per_step'] / r['ms']['median']:.0%}"
                    ),
                    cell(run, lambda r: f"{r['first_step_s']:.1f}"),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    tops = [
        run
        for run in result["runs"]
        if run["framework"] == "minigan-cupy" and "top_kernels" in run.get("profile", {})
    ]
    if tops:
        lines += ["", "minigan's costliest kernels, ms per step (launches per step):", ""]
        for run in tops:
            names = "; ".join(
                f"`{k['name'][:60]}` {k['ms_per_step']:.2f} ({k['calls_per_step']:.0f})"
                for k in run["profile"]["top_kernels"][:8]
            )
            lines.append(f"- {run['config']}, {run['precision']}: {names}")
    notes = []
    for run in result["runs"]:
        where = f"- {run['framework']} {run['precision']} {run['config']}: "
        if "error" in run:
            notes.append(where + run["error"])
        if "note" in run.get("profile", {}):
            notes.append(where + run["profile"]["note"])
        if "peak_error" in run.get("memory_mb", {}):
            notes.append(where + "memory hook failed: " + run["memory_mb"]["peak_error"])
    shown = {run.get("error") for run in result["runs"]}
    notes += [  # a worker that died after timing every config (in the profiles)
        f"- {w['framework']} {w['precision']} worker: {w['failure']}"
        for w in result["workers"]
        if w["failure"] and w["failure"] not in shown
    ]
    if notes:
        lines += ["", "Failures and notes:", "", *notes]
    return "\n".join(lines)


def markdown(result) -> str:
    return f"{header(result)}\n\n{main_table(result)}\n\n{details(result)}\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 steps after 1 warm-up, one config, no profile (a smoke test)",
    )
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per series (median)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    parser.add_argument(
        "--profile-steps", type=int, default=5, help="steps in each kernel profile; 0: no profile"
    )
    parser.add_argument(
        "--precision",
        choices=[*PRECISIONS, "both"],
        default="both",
        help="fp32 (TF32 off), tf32 (TF32 on) or both (default)",
    )
    parser.add_argument(
        "--framework",
        choices=[*FRAMEWORKS, "both"],
        default="both",
        help="minigan-cupy, torch or both (default)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=100,
        help="seconds one worker (one framework at one precision) may run",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=200,
        help="seconds for the whole run; no worker runs past it (default 200)",
    )
    parser.add_argument(
        "--out", default=str(HERE / "results"), help="folder for gpu_latest.json / gpu_latest.md"
    )
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--configs", help=argparse.SUPPRESS)  # indices into CONFIGS
    args = parser.parse_args(argv)
    args.precisions = list(PRECISIONS) if args.precision == "both" else [args.precision]
    args.frameworks = list(FRAMEWORKS) if args.framework == "both" else [args.framework]
    if args.configs is not None:
        args.configs = [int(i) for i in args.configs.split(",")]
    else:
        args.configs = [0] if args.quick else list(range(len(CONFIGS)))
    if args.quick and not args.worker:
        args.repeats, args.warmup, args.profile_steps = 3, 1, 0
    if args.repeats < 1 or args.warmup < 0 or args.profile_steps < 0:
        parser.error("--repeats must be at least 1, --warmup and --profile-steps at least 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(
            args.worker, args.precision, args.configs, args.repeats, args.warmup, args.profile_steps
        )
        return
    result = {
        "machine": machine(gpu_or_exit()),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "profile_steps": args.profile_steps,
        "precisions": args.precisions,
        "configs": [CONFIGS[i][0] for i in args.configs],
        "env": {},
        "runs": [],
        "workers": [],
    }
    m = result["machine"]
    print(
        f"{m['gpu']}; CUDA {m['cuda_runtime']}, driver {m['cuda_driver']}; CuPy {m['cupy']}; "
        f"PyTorch {m['torch'] or 'not installed'}",
        flush=True,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def write():  # after every worker, so a run cut short still leaves what it measured
        (out / "gpu_latest.json").write_text(json.dumps(result, indent=1))
        (out / "gpu_latest.md").write_text(markdown(result))

    began = time.monotonic()
    run_all(args, result, write)
    result["seconds"] = round(time.monotonic() - began, 1)
    write()
    print(
        f"\n{details(result)}\n\nwrote {out / 'gpu_latest.json'} and {out / 'gpu_latest.md'} "
        f"({result['seconds']:.0f} s)\n\n{header(result)}\n\n{main_table(result)}"
    )


if __name__ == "__main__":
    main()
