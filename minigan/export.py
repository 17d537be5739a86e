"""Weights that travel: minigan's DCGAN to and from PyTorch, without pickle.

From the shell::

    python -m minigan.export --checkpoint RUN --out G.safetensors [--discriminator D.safetensors]
    python -m minigan.export --from-pytorch netG.pth --out G.npz [--discriminator netD.pth]

minigan's Generator and Discriminator keep their layers in ``.main``, as the
pytorch/examples DCGAN does, so their state dicts have the same keys
(``main.0.weight``, ``main.1.running_mean``, ...) and the same weight layouts.
Moving weights across is therefore only a change of file format:

- out: the generator's state dict (by default the averaged ``G_ema`` when a training
  checkpoint holds one, else ``G``) in the safetensors format, which a PyTorch user
  loads with ``G.load_state_dict(safetensors.torch.load_file("G.safetensors"))``;
- in: a PyTorch state dict (``.safetensors``, or ``.pt`` / ``.pth`` read with
  ``torch.load(weights_only=True)`` when PyTorch is installed) becomes a minigan
  weights file (format ``minigan-weights``: G's and optionally D's arrays, no
  optimiser state) that ``python -m minigan.sample`` draws from.

The architecture (nz, ngf, channels, image size) is read from the weight shapes,
then every key and shape is checked against the minigan model it implies, so a
state dict that does not fit fails in one line naming the layer and both shapes.
"""

from __future__ import annotations

import argparse
import pickle
import reprlib
import sys
from pathlib import Path

import numpy as np

from . import __version__, backend, checkpoint, resources
from .models import dcgan
from .models.dcgan import Discriminator, Generator

WEIGHTS_FORMAT = "minigan-weights"  # a checkpoint.save file of G.* (and D.*) arrays only
TORCH_SUFFIXES = (".pt", ".pth")
# Wrappers that prefix every key: DataParallel / DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Settings that metadata written before they existed does not record: what those files hold.
RECORDED_DEFAULTS = {"batch_norm": True, "extra_layer": False}


class WeightsError(checkpoint.CheckpointError):
    """Weights that cannot be read, or that do not fit minigan's DCGAN; one line."""


# ---- which weights a checkpoint holds ------------------------------------------------------


def generator_prefix(arrays, raw=False) -> str:
    """The key prefix of the generator to use: "G_ema." when a training checkpoint holds
    an averaged generator (unless ``raw``), else "G."; the averaged weights are the
    ones to sample from and to share."""
    if not raw and any(key.startswith("G_ema.") for key in arrays):
        return "G_ema."
    return "G."


def strip_prefix(arrays, prefix) -> dict:
    """The arrays whose key starts with ``prefix``, under the rest of their key."""
    return {key[len(prefix) :]: a for key, a in arrays.items() if key.startswith(prefix)}


def load_checked(model, state, source="state dict"):
    """Copy ``state`` into ``model`` after checking every key, shape and dtype against
    it (a missing ``num_batches_tracked`` keeps its value, as PyTorch allows)."""
    expected = model.state_dict()
    described = f"minigan's {type(model).__name__}({model.extra_repr()})"

    def layer(key):
        index = key.split(".")[1]
        return f"main.{index}, {type(model.main[int(index)]).__name__}"

    for key, want in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                continue
            raise WeightsError(
                f"{source}: {key} is missing (layer {layer(key)}, shape {want.shape}); "
                f"{described} needs it"
            )
        got = state[key]
        if np.shape(got) != want.shape:
            raise WeightsError(
                f"{source}: {key} (layer {layer(key)}) has shape {np.shape(got)}; "
                f"{described} expects {want.shape}"
            )
        kinds = "iu" if want.dtype.kind in "iu" else "f"
        if np.asarray(got).dtype.kind not in kinds:
            raise WeightsError(
                f"{source}: {key} (layer {layer(key)}) holds {np.asarray(got).dtype} values; "
                f"{described} expects {'integers' if kinds == 'iu' else 'floating-point numbers'}"
            )
    if unexpected := [key for key in state if key not in expected]:
        raise WeightsError(
            f"{source}: unexpected key {unexpected[0]} (shape {np.shape(state[unexpected[0]])})"
            f"{f' and {len(unexpected) - 1} more' if len(unexpected) > 1 else ''}; "
            f"{described} has no such weight"
        )
    model.load_state_dict(state)
    return model


def generator_from_state_dict(state, source="state dict") -> Generator:
    """A minigan Generator (eval mode, current backend) holding a DCGAN generator's
    state dict: its architecture read from the shapes, every key and shape checked.
    A discriminator's state dict, an easy slip, is named as such."""
    try:
        return build(Generator, _config(dcgan.generator_config, state, source), state, source)
    except WeightsError as e:
        try:
            load_checked(Discriminator(**dcgan.discriminator_config(state)), state)
        except (WeightsError, ValueError):
            raise e from None
        raise WeightsError(
            f"{e}; it looks like a discriminator (python -m minigan.export --from-pytorch "
            f"takes one with --discriminator)"
        ) from None


def discriminator_from_state_dict(state, source="state dict") -> Discriminator:
    """A minigan Discriminator (eval mode) holding a DCGAN discriminator's state dict.
    It returns logits: the pytorch/examples D ends with a Sigmoid, which has no weights."""
    return build(Discriminator, _config(dcgan.discriminator_config, state, source), state, source)


def build(model_class, config, state, source="state dict"):
    """``model_class(**config)`` holding ``state`` (checked by ``load_checked``), in eval mode."""
    try:
        return load_checked(model_class(**config), state, source).eval()
    except (ValueError, TypeError) as e:  # what the layers refuse that the checks let by
        raise WeightsError(f"{source}: {_one_line(e)}") from None


# ---- reading PyTorch files -----------------------------------------------------------------


def read_state_dict(path) -> dict[str, np.ndarray]:
    """A state dict from ``.safetensors`` or (with PyTorch installed) ``.pt`` / ``.pth``,
    as NumPy arrays, with DataParallel's ``module.`` (and torch.compile's) prefixes
    dropped. Nothing is unpickled except by ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        state = _read_torch(path)
    else:
        raise WeightsError(
            f"{path}: expected a .safetensors, .pt or .pth file of a PyTorch state dict"
        )
    if not state:
        raise WeightsError(f"{path}: holds no tensors")
    for prefix in WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = strip_prefix(state, prefix)
    return state


def _read_safetensors(path) -> dict:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except TypeError as e:  # a dtype NumPy lacks (bfloat16): PyTorch can widen it
        if "bfloat16" not in str(e):
            raise WeightsError(
                f"{path}: not a readable safetensors file ({_one_line(e)})"
            ) from None
        torch = _import_torch(
            path, "holds bfloat16 tensors, which NumPy cannot hold; to widen them"
        )
        from safetensors.torch import load_file as load_torch

        return {key: _to_numpy(t, torch, path, key) for key, t in load_torch(path).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({_one_line(e)})") from None


def _read_torch(path) -> dict:
    torch = _import_torch(path, "is a PyTorch pickle file; to read it")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(
            f"{path}: holds Python objects besides tensors, which minigan will not unpickle "
            f"(a whole model saved with torch.save(model)?); save model.state_dict() instead"
        ) from None
    except Exception as e:  # a damaged zip or pickle fails in many ways
        raise WeightsError(
            f"{path}: not a readable PyTorch file ({type(e).__name__}: {_one_line(e)})"
        ) from None
    if not isinstance(loaded, dict):
        raise WeightsError(
            f"{path}: holds a {type(loaded).__name__}, not a state dict; save "
            f"model.state_dict(), e.g. torch.save(netG.state_dict(), 'netG.pth')"
        )
    if nested := [key for key, value in loaded.items() if isinstance(value, dict)]:
        raise WeightsError(
            f"{path}: holds state dicts inside a dict (under {', '.join(map(repr, nested[:4]))}), "
            f"as a training checkpoint does; save the generator's alone, e.g. "
            f"torch.save(checkpoint[{nested[0]!r}], 'netG.pth')"
        )
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{path}: not a state dict of tensors ({key!r} holds a {type(value).__name__}); "
                f"save model.state_dict(), e.g. torch.save(netG.state_dict(), 'netG.pth')"
            )
    return {key: _to_numpy(t, torch, path, key) for key, t in loaded.items()}


def _import_torch(path, why):
    try:
        import torch
    except ImportError:
        raise WeightsError(
            f"{path}: {why} minigan needs PyTorch (pip install torch), or save the state dict "
            f"as .safetensors (safetensors.torch.save_file) on the machine that has it"
        ) from None
    return torch


def _to_numpy(tensor, torch, path, key) -> np.ndarray:
    try:
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float64):
            tensor = tensor.float()  # bfloat16 and the float8s have no NumPy dtype
        return tensor.numpy()
    except Exception as e:  # sparse, quantised, meta tensors: not plain arrays
        raise WeightsError(f"{path}: {key} is not a plain tensor ({_one_line(e)})") from None


# ---- writing -------------------------------------------------------------------------------


def save_safetensors(path, state, metadata) -> Path:
    """Write a state dict of NumPy arrays as safetensors, atomically (a temporary file in
    the same folder, flushed to disk, then renamed over ``path``)."""
    from safetensors.numpy import save

    # (np.require, not np.ascontiguousarray, which turns num_batches_tracked's () into (1,))
    blob = save({key: np.require(a, requirements="C") for key, a in state.items()}, metadata)
    return checkpoint.atomic_write(path, lambda f: f.write(blob))


def models_from_checkpoint(arrays, meta, path, raw=False, discriminator=False):
    """(G, D or None, G's key prefix) from the (arrays, meta) that ``checkpoint.load``
    read from ``path``: a training checkpoint ("minigan-dcgan"; its averaged G_ema
    unless ``raw``) or a weights file. Eval mode, on the current backend. The shapes
    give each model's settings; those the metadata records must agree with them."""
    if meta.get("format") not in ("minigan-dcgan", WEIGHTS_FORMAT):
        raise WeightsError(f"{path}: not a minigan DCGAN checkpoint (training or weights-only)")
    prefix = generator_prefix(arrays, raw)
    g_state = strip_prefix(arrays, prefix)
    G = _from_checkpoint(Generator, dcgan.generator_config, g_state, meta, path)
    D = None
    if discriminator:
        if not (d_state := strip_prefix(arrays, "D.")):
            raise WeightsError(f"{path}: holds no discriminator (no D.* weights)")
        D = _from_checkpoint(Discriminator, dcgan.discriminator_config, d_state, meta, path)
    return G, D, prefix


def _config(read_config, state, source) -> dict:
    """A model's settings from its weight shapes (``models.dcgan``), or a WeightsError."""
    try:
        return read_config(state, source)
    except ValueError as e:
        raise WeightsError(str(e)) from None


def _from_checkpoint(model, read_config, state, meta, path):
    config = _config(read_config, state, path)
    recorded = meta.get("config", {}) if meta.get("format") == "minigan-dcgan" else meta
    recorded = {**RECORDED_DEFAULTS, **recorded}
    recorded = {**recorded, "channels": meta.get("channels"), "image_size": meta.get("image_size")}
    for key, value in config.items():
        if recorded.get(key) != value:
            raise WeightsError(
                f"{path}: damaged checkpoint (its metadata's {key} is "
                f"{_one_line(reprlib.repr(recorded.get(key)))}, while the shapes of its "
                f"{model.__name__} weights give {value})"
            )
    return build(model, config, state, path)


def export_checkpoint(path, out, discriminator_out=None, raw=False) -> dict:
    """A minigan checkpoint (a run folder stands for its last.npz) -> the generator's
    state dict as safetensors at ``out`` (and the discriminator's at
    ``discriminator_out``), with PyTorch's keys and the settings as safetensors
    metadata. Returns {"G": (path, G), "D": (path, D)}."""
    arrays, meta = checkpoint.load(path)
    G, D, prefix = models_from_checkpoint(arrays, meta, path, raw, discriminator_out is not None)
    common = dict(format="pt", minigan_version=__version__, source=str(path))
    if isinstance(meta.get("step"), int):
        common["step"] = meta["step"]
    g_meta = dict(common, model="Generator", weights=prefix[:-1], nz=G.nz, ngf=G.ngf)
    g_meta.update(nc=G.channels, image_size=G.image_size, batch_norm=G.batch_norm)
    g_meta.update(extra_layer=G.extra_layer)
    written = {"G": (save_safetensors(out, G.state_dict(), _strings(g_meta)), G)}
    if D is not None:
        d_meta = dict(common, model="Discriminator", ndf=D.ndf, nc=D.channels)
        d_meta.update(image_size=D.image_size, batch_norm=D.batch_norm, output="logits")
        d_meta.update(extra_layer=D.extra_layer)
        written["D"] = (save_safetensors(discriminator_out, D.state_dict(), _strings(d_meta)), D)
    return written


def import_pytorch(generator_path, out, discriminator_path=None) -> tuple[Generator, object]:
    """PyTorch DCGAN state dicts -> a minigan weights file at ``out`` that
    ``minigan.sample.load_generator`` reads. Returns (G, D or None)."""
    G = generator_from_state_dict(read_state_dict(generator_path), generator_path)
    arrays = {f"G.{key}": a for key, a in G.state_dict().items()}
    meta = dict(format=WEIGHTS_FORMAT, minigan_version=__version__, nz=G.nz, ngf=G.ngf)
    meta.update(channels=G.channels, image_size=G.image_size, batch_norm=G.batch_norm)
    meta.update(extra_layer=G.extra_layer, source=Path(generator_path).name)
    D = None
    if discriminator_path is not None:
        D = discriminator_from_state_dict(read_state_dict(discriminator_path), discriminator_path)
        if (D.channels, D.image_size) != (G.channels, G.image_size):
            raise WeightsError(
                f"{discriminator_path}: a discriminator for {D.channels}-channel "
                f"{D.image_size}x{D.image_size} images, while the generator makes "
                f"{G.channels}-channel {G.image_size}x{G.image_size} ones"
            )
        arrays.update({f"D.{key}": a for key, a in D.state_dict().items()})
        if D.batch_norm != G.batch_norm:
            raise WeightsError(
                f"{discriminator_path}: a discriminator {'with' if D.batch_norm else 'without'} "
                f"batch norm, while the generator has {'it' if G.batch_norm else 'none'}; "
                f"a weights file records one batch_norm setting for both"
            )
        meta.update(ndf=D.ndf, discriminator_source=Path(discriminator_path).name)
    checkpoint.save(out, arrays, meta)
    return G, D


def _strings(meta) -> dict[str, str]:
    return {key: str(value) for key, value in meta.items()}


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ---- the command line ----------------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minigan.export",
        description="Move DCGAN weights between minigan and PyTorch (safetensors, no pickle).",
        epilog="In PyTorch, with the pytorch/examples dcgan Generator: "
        'G.load_state_dict(safetensors.torch.load_file("G.safetensors")).',
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        metavar="RUN",
        help="export: a minigan checkpoint (.npz) or run folder -> --out G.safetensors",
    )
    source.add_argument(
        "--from-pytorch",
        metavar="FILE",
        help="import: a PyTorch generator state dict (.safetensors, .pt, .pth) -> --out G.npz",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="G.safetensors (export) or a minigan weights file .npz (import)",
    )
    parser.add_argument(
        "--discriminator",
        metavar="FILE",
        help="also the discriminator: where to write it (export, .safetensors) or the PyTorch "
        "state dict to read (import)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="export G even when the checkpoint holds an averaged generator G_ema "
        "(the default exports G_ema when present)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        backend.current()  # MINIGAN_BACKEND's backend, or its one-line reason it cannot run
    except ValueError as e:  # an unknown name, or BackendUnavailable
        print(f"error: MINIGAN_BACKEND: {e}", file=sys.stderr)
        return 2
    try:
        if args.checkpoint is not None:
            for name, target in (("--out", out), ("--discriminator", args.discriminator)):
                if target is not None and Path(target).suffix.lower() != ".safetensors":
                    raise WeightsError(f"{name} must end in .safetensors, got {Path(target).name}")
            written = export_checkpoint(args.checkpoint, out, args.discriminator, args.raw)
            for path, model in written.values():
                print(f"wrote {path} ({type(model).__name__}({model.extra_repr()}))")
            G = written["G"][1]
            model = (
                f"a Sequential .main with the layers of {type(G).__name__}(...).main, as "
                "minigan prints them (--recipe minigan adds a layer the pytorch/examples "
                "dcgan lacks)"
                if G.extra_layer
                else f"pytorch/examples dcgan, nz={G.nz}, ngf={G.ngf}, nc={G.channels}"
            )
            print(f'in PyTorch ({model}): G.load_state_dict(safetensors.torch.load_file("{out}"))')
        else:
            if args.raw:
                raise WeightsError("--raw applies to --checkpoint (export) only")
            if out.suffix.lower() != ".npz":
                raise WeightsError(f"--out must end in .npz, got {out.name}")
            G, D = import_pytorch(args.from_pytorch, out, args.discriminator)
            models = f"Generator({G.extra_repr()})" + (
                f", Discriminator({D.extra_repr()})" if D else ""
            )
            print(f"wrote {out} ({models})")
            print(f"sample with: python -m minigan.sample --checkpoint {out} --out samples.png")
    except checkpoint.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:  # the machine's: a full disk, no permission, no memory
        print(f"error: {resources.describe(e, out)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
