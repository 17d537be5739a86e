"""Weights that travel: minigan's DCGAN to and from PyTorch (``python -m minigan.export``).

Where PyTorch is installed, the pytorch/examples DCGAN (its ``Generator`` and
``Discriminator``, unchanged in structure) loads minigan's exported safetensors with
``load_state_dict(strict=True)``, and its state dicts (``torch.save`` and safetensors)
import into minigan; both sides then draw the same images from the same noise.
The round trip through minigan alone, the checkpoint formats and the one-line
errors run without PyTorch.
"""

import contextlib
import io
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from minigan import backend, checkpoint, export, sample, train
from minigan.models.dcgan import SUPPORTED_SIZES, Discriminator, Generator

NZ, NGF, NDF, NC = 16, 8, 8, 1  # the exported training run's settings (bundled digits)


@pytest.fixture(autouse=True)
def numpy_backend():
    with backend.using("numpy"):
        yield


def train_run(out, recipe):
    """A real two-step training run at 64x64 on the bundled digits, in folder ``out``."""
    argv = ["--max-steps", 2, "--image-size", 64, "--nz", NZ, "--ngf", NGF, "--ndf", NDF,
            "--batch-size", 4, "--sample-every", 0, "--out", out, "--backend", "numpy",
            "--recipe", recipe]  # fmt: skip
    with backend.using("numpy"), contextlib.redirect_stdout(io.StringIO()):
        with contextlib.redirect_stderr(io.StringIO()):
            assert train.main([str(a) for a in argv]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The paper's recipe: the layout the pytorch/examples DCGAN has."""
    return train_run(tmp_path_factory.mktemp("export") / "run", "paper")


def cli(argv, capsys):
    """(exit status, stdout, stderr) of ``python -m minigan.export``."""
    code = export.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *words):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def noise(n, nz, seed=0):
    return np.random.default_rng(seed).standard_normal((n, nz, 1, 1)).astype(np.float32)


def images(G, z):
    return backend.current().to_numpy(G(backend.current().from_numpy(z)))


# ---- the pytorch/examples DCGAN ------------------------------------------------------------


def pytorch_dcgan(nz, ngf, ndf, nc):
    """pytorch/examples dcgan/main.py's Generator and Discriminator, with its globals
    nz, ngf, ndf, nc given here (64x64 images)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Generator(nn.Module):
        def __init__(self, ngpu):
            super().__init__()
            self.ngpu = ngpu
            self.main = nn.Sequential(
                # input is Z, going into a convolution
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 8),
                nn.ReLU(True),
                # state size. (ngf*8) x 4 x 4
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 4),
                nn.ReLU(True),
                # state size. (ngf*4) x 8 x 8
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                # state size. (ngf*2) x 16 x 16
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf),
                nn.ReLU(True),
                # state size. (ngf) x 32 x 32
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                nn.Tanh(),
                # state size. (nc) x 64 x 64
            )

        def forward(self, input):
            if input.is_cuda and self.ngpu > 1:
                output = nn.parallel.data_parallel(self.main, input, range(self.ngpu))
            else:
                output = self.main(input)
            return output

    class Discriminator(nn.Module):
        def __init__(self, ngpu):
            super().__init__()
            self.ngpu = ngpu
            self.main = nn.Sequential(
                # input is (nc) x 64 x 64
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                nn.LeakyReLU(0.2, inplace=True),
                # state size. (ndf) x 32 x 32
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                # state size. (ndf*2) x 16 x 16
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 4),
                nn.LeakyReLU(0.2, inplace=True),
                # state size. (ndf*4) x 8 x 8
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 8),
                nn.LeakyReLU(0.2, inplace=True),
                # state size. (ndf*8) x 4 x 4
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, input):
            if input.is_cuda and self.ngpu > 1:
                output = nn.parallel.data_parallel(self.main, input, range(self.ngpu))
            else:
                output = self.main(input)
            return output.view(-1, 1).squeeze(1)

    return torch, Generator, Discriminator


def trained_torch_models(nz=NZ, ngf=NGF, ndf=NDF, nc=3, seed=0):
    """The pytorch/examples models with random weights and batch-norm statistics
    (as after training), in eval mode."""
    torch, TorchG, TorchD = pytorch_dcgan(nz, ngf, ndf, nc)
    torch.manual_seed(seed)
    models = TorchG(1), TorchD(1)
    with torch.no_grad():
        for model in models:
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.num_batches_tracked.fill_(7)
    return torch, models[0].eval(), models[1].eval()


def torch_images(torch, G, z):
    with torch.no_grad():
        return G(torch.from_numpy(z)).numpy()


# ---- minigan -> PyTorch --------------------------------------------------------------------


def test_exported_weights_load_into_the_pytorch_example_unchanged(run, tmp_path, capsys):
    torch, TorchG, TorchD = pytorch_dcgan(NZ, NGF, NDF, NC)
    from safetensors.torch import load_file

    g_path, d_path = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    code, out, err = cli(["--checkpoint", run, "--out", g_path, "--discriminator", d_path], capsys)
    assert code == 0, err
    assert f"wrote {g_path}" in out and f"wrote {d_path}" in out and "load_file" in out

    G, D = TorchG(1), TorchD(1)
    G.load_state_dict(load_file(g_path), strict=True)  # the three lines a PyTorch user types
    D.load_state_dict(load_file(d_path), strict=True)
    G.eval(), D.eval()
    ours = sample.load_generator(run)
    our_d = export.models_from_checkpoint(*checkpoint.load(run), run, discriminator=True)[1]
    z = noise(8, NZ)
    fake = images(ours, z)
    np.testing.assert_allclose(torch_images(torch, G, z), fake, atol=2e-5, rtol=0)
    with torch.no_grad():
        probability = D(torch.from_numpy(fake)).numpy()  # its D ends with a Sigmoid
    logits = images(our_d, fake)[:, 0]
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-logits)), atol=2e-6, rtol=0)
    # the batch-norm step counts travel too, as PyTorch's int64
    arrays, _ = checkpoint.load(run)
    steps = arrays[export.generator_prefix(arrays) + "main.1.num_batches_tracked"]
    assert G.main[1].num_batches_tracked.dtype == torch.int64
    assert int(G.main[1].num_batches_tracked) == int(steps) > 0


def test_the_default_recipe_exports_to_its_pytorch_twin(tmp_path, capsys):
    """--recipe minigan's extra layers: the export says the PyTorch example does not fit,
    and a torch Sequential with the same layers (torch_twin) loads it strictly."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from minigan.torch_twin import to_torch

    run = train_run(tmp_path / "run", "minigan")
    g_path, d_path = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    code, out, err = cli(["--checkpoint", run, "--out", g_path, "--discriminator", d_path], capsys)
    assert code == 0, err
    assert "extra_layer=True" in out and "lacks" in out and "pytorch/examples dcgan," not in out
    ours = sample.load_generator(run)
    assert ours.extra_layer and ours.main[-2].kernel_size == (3, 3)
    our_d = export.models_from_checkpoint(*checkpoint.load(run), run, discriminator=True)[1]
    assert our_d.extra_layer
    G = torch.nn.Module()
    G.main = to_torch(Generator(NZ, NGF, NC, 64, extra_layer=True).main)
    G.load_state_dict(load_file(g_path), strict=True)
    D = torch.nn.Module()
    D.main = to_torch(Discriminator(NDF, NC, 64, extra_layer=True).main)
    D.load_state_dict(load_file(d_path), strict=True)
    z = noise(8, NZ)
    fake = images(ours, z)
    np.testing.assert_allclose(torch_images(torch, G.eval().main, z), fake, atol=2e-5, rtol=0)
    logits = torch_images(torch, D.eval().main, fake)
    np.testing.assert_allclose(logits, images(our_d, fake), atol=2e-5, rtol=0)


def test_exported_file_says_what_it_holds(run, tmp_path, capsys):
    path = tmp_path / "G.safetensors"
    assert cli(["--checkpoint", run, "--out", path], capsys)[0] == 0
    with safe_open(path, "np") as f:
        meta, keys = f.metadata(), set(f.keys())
        assert f.get_tensor("main.1.num_batches_tracked").dtype == np.int64
        assert f.get_tensor("main.1.num_batches_tracked").shape == ()  # a 0-d tensor, as in torch
    averaged = any(key.startswith("G_ema.") for key in checkpoint.load(run)[0])
    assert meta["weights"] == ("G_ema" if averaged else "G")
    assert meta["model"] == "Generator" and meta["step"] == "2"
    assert (meta["nz"], meta["ngf"], meta["nc"], meta["image_size"]) == ("16", "8", "1", "64")
    assert meta["minigan_version"] and meta["format"] == "pt"
    assert keys == set(Generator(NZ, NGF, NC, 64).state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["G.safetensors"]  # no temporary file left


def test_export_writes_atomically(run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "G.safetensors"
    assert cli(["--checkpoint", run, "--out", path], capsys)[0] == 0
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # cut off between writing and renaming

    monkeypatch.setattr(checkpoint.os, "replace", crash)  # the one atomic writer
    with pytest.raises(KeyboardInterrupt):
        export.main(["--checkpoint", str(run), "--out", str(path), "--raw"])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


# ---- PyTorch -> minigan --------------------------------------------------------------------


def save_state_dict(torch, state, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file as save_torch

        save_torch(state, path)
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_pytorch_weights_import_and_sample_the_same_images(suffix, tmp_path, capsys):
    torch, G, D = trained_torch_models()
    g_path = save_state_dict(torch, G.state_dict(), tmp_path / f"netG{suffix}")
    d_path = save_state_dict(torch, D.state_dict(), tmp_path / f"netD{suffix}")
    out = tmp_path / "imported.npz"
    code, printed, err = cli(
        ["--from-pytorch", g_path, "--out", out, "--discriminator", d_path], capsys
    )
    assert code == 0, err
    assert f"sample with: python -m minigan.sample --checkpoint {out}" in printed

    ours = sample.load_generator(out)
    assert (ours.nz, ours.ngf, ours.channels, ours.image_size) == (NZ, NGF, 3, 64)
    z = noise(6, NZ, seed=1)
    expected = torch_images(torch, G, z)
    np.testing.assert_allclose(images(ours, z), expected, atol=2e-5, rtol=0)
    # the sampling command reads it; its --seed draws z from NumPy's generator
    assert sample.main(["--checkpoint", str(out), "--n", "3", "--seed", "5",
                        "--out", str(tmp_path / "s.npy"), "--backend", "numpy"]) == 0  # fmt: skip
    z = np.random.default_rng(5).standard_normal((3, NZ)).astype(np.float32)[..., None, None]
    np.testing.assert_allclose(
        np.load(tmp_path / "s.npy"), torch_images(torch, G, z), atol=2e-5, rtol=0
    )

    arrays, meta = checkpoint.load(out)
    assert meta["format"] == "minigan-weights" and meta["ndf"] == NDF
    assert not [k for k in arrays if not k.startswith(("G.", "D."))]  # no optimiser state
    our_d = export.models_from_checkpoint(arrays, meta, out, discriminator=True)[1]
    x = np.tanh(noise(4, 3 * 64 * 64, seed=2).reshape(4, 3, 64, 64))
    with torch.no_grad():
        probability = D(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(
        probability, 1 / (1 + np.exp(-images(our_d, x)[:, 0])), atol=2e-6, rtol=0
    )


def assert_draws_like(path, torch, G):
    """minigan.sample's generator from ``path`` draws what torch's G draws from the same z."""
    z = noise(2, NZ)
    images_ours = images(sample.load_generator(path), z)
    np.testing.assert_allclose(images_ours, torch_images(torch, G, z), atol=2e-5, rtol=0)


def test_a_state_dict_without_num_batches_tracked_imports(tmp_path, capsys):
    torch, G, _ = trained_torch_models()
    state = {k: v for k, v in G.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = save_state_dict(torch, state, tmp_path / "old.pth")
    assert cli(["--from-pytorch", path, "--out", tmp_path / "G.npz"], capsys)[0] == 0
    assert_draws_like(tmp_path / "G.npz", torch, G)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_bfloat16_weights_import_widened(suffix, tmp_path, capsys):
    torch, G, _ = trained_torch_models()
    state = {k: v.bfloat16() if v.is_floating_point() else v for k, v in G.state_dict().items()}
    path = save_state_dict(torch, state, tmp_path / f"half{suffix}")
    assert cli(["--from-pytorch", path, "--out", tmp_path / "G.npz"], capsys)[0] == 0
    G.load_state_dict(state)  # the same rounding on PyTorch's side
    assert_draws_like(tmp_path / "G.npz", torch, G)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_dataparallel_state_dict_imports(suffix, tmp_path, capsys):
    torch, G, _ = trained_torch_models()
    state = torch.nn.DataParallel(G).state_dict()
    assert next(iter(state)).startswith("module.")
    path = save_state_dict(torch, state, tmp_path / f"parallel{suffix}")
    assert cli(["--from-pytorch", path, "--out", tmp_path / "G.npz"], capsys)[0] == 0
    assert_draws_like(tmp_path / "G.npz", torch, G)


def altered(state, key, value=None):
    state = dict(state)
    if value is None:
        del state[key]
    else:
        state[key] = value
    return state


def test_state_dicts_that_do_not_fit_are_named_in_one_line(tmp_path, capsys):
    torch, G, D = trained_torch_models()
    good = G.state_dict()
    cases = [
        (altered(good, "main.3.weight", torch.zeros(64, 16, 4, 4)),
         ["main.3.weight", "(64, 16, 4, 4)", "(64, 32, 4, 4)"]),
        (altered(good, "main.4.weight", torch.ones(5)), ["main.4.weight", "BatchNorm2d", "(5,)",
                                                          "(32,)"]),
        (altered(good, "main.4.running_var"), ["main.4.running_var is missing", "(32,)"]),
        (altered(good, "main.13.bias", torch.zeros(3)), ["unexpected key main.13.bias"]),
        (altered(good, "main.0.weight"), ["no main.0.weight"]),
        (altered(good, "main.1.weight", torch.ones(64, dtype=torch.int32)), ["main.1.weight",
                                                                             "int32"]),
        (D.state_dict(), ["looks like a discriminator", "--discriminator"]),
    ]  # fmt: skip
    for i, (state, words) in enumerate(cases):
        path = save_state_dict(torch, state, tmp_path / f"case{i}.pth")
        code, _, err = cli(["--from-pytorch", path, "--out", tmp_path / "G.npz"], capsys)
        one_line_error(code, err, str(path), *words)
    assert not (tmp_path / "G.npz").exists()

    g_path = save_state_dict(torch, good, tmp_path / "netG.pth")  # D of another size
    _, _, small_d = trained_torch_models(nc=1)
    d_path = save_state_dict(torch, small_d.state_dict(), tmp_path / "netD.pth")
    code, _, err = cli(
        ["--from-pytorch", g_path, "--discriminator", d_path, "--out", tmp_path / "G.npz"], capsys
    )
    one_line_error(code, err, "netD.pth", "1-channel", "3-channel")


def test_files_that_are_not_state_dicts_are_refused_in_one_line(tmp_path, capsys):
    torch, G, _ = trained_torch_models()
    whole = tmp_path / "whole_model.pth"
    torch.save(G.main, whole)  # a pickled module: weights_only=True refuses it
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    nested = tmp_path / "training.pth"
    torch.save({"netG": G.state_dict(), "epoch": 3}, nested)
    numbers = tmp_path / "numbers.pth"
    torch.save({**G.state_dict(), "epoch": 3}, numbers)
    good = save_state_dict(torch, G.state_dict(), tmp_path / "netG.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    cut_pth = tmp_path / "cut.pth"
    torch.save(G.state_dict(), cut_pth)
    cut_pth.write_bytes(cut_pth.read_bytes()[:300])
    other = tmp_path / "netG.ckpt"
    other.write_bytes(b"anything")
    cases = [
        (whole, ["Python objects", "state_dict()"]),
        (listed, ["holds a list, not a state dict"]),
        (nested, ["inside a dict (under 'netG')", "torch.save(checkpoint['netG'], 'netG.pth')"]),
        (numbers, ["'epoch' holds a int"]),
        (truncated, ["not a readable safetensors file"]),
        (garbage, ["not a readable safetensors file"]),
        (cut_pth, ["not a readable PyTorch file"]),
        (other, [".safetensors, .pt or .pth"]),
        (tmp_path / "missing.pth", ["no such file"]),
    ]
    for path, words in cases:
        code, _, err = cli(["--from-pytorch", path, "--out", tmp_path / "G.npz"], capsys)
        one_line_error(code, err, str(path), *words)


# ---- without PyTorch -----------------------------------------------------------------------


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_round_trip_through_safetensors_at_every_size(size, tmp_path, capsys):
    """minigan's own layouts (28x28 included) out to safetensors and back in."""
    G, D = Generator(8, 4, 3, size), Discriminator(4, 3, size)
    for model in (G, D):  # batch-norm statistics that are not the defaults
        for key, value in model.state_dict().items():
            if key.endswith(("running_mean", "running_var")):
                model.load_state_dict({**model.state_dict(), key: value + 0.5})
    g_path, d_path = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    export.save_safetensors(g_path, G.state_dict(), {})
    export.save_safetensors(d_path, D.state_dict(), {})
    out = tmp_path / "G.npz"
    assert cli(["--from-pytorch", g_path, "--out", out, "--discriminator", d_path], capsys)[0] == 0
    G.eval(), D.eval()
    ours = sample.load_generator(out)
    z = noise(3, 8)
    np.testing.assert_array_equal(images(ours, z), images(G, z))
    our_d = export.models_from_checkpoint(*checkpoint.load(out), out, discriminator=True)[1]
    np.testing.assert_array_equal(images(our_d, images(G, z)), images(D, images(G, z)))


@pytest.mark.parametrize("batch_norm", [True, False])
def test_without_batch_norm_through_safetensors_and_back(batch_norm, tmp_path, capsys):
    """A DCGAN without batch norm travels like one with it: its state dict (biased
    convolutions, no statistics) says so, and it comes back as it was."""
    G, D = (
        Generator(8, 4, 3, 32, batch_norm=batch_norm),
        Discriminator(4, 3, 32, batch_norm=batch_norm),
    )
    g_path, d_path = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    export.save_safetensors(g_path, G.state_dict(), {})
    export.save_safetensors(d_path, D.state_dict(), {})
    ours = sample.load_generator(g_path)  # a state dict, read directly
    assert ours.batch_norm is batch_norm and ours.extra_repr() == G.extra_repr()
    z = noise(3, 8)
    G.eval()
    np.testing.assert_array_equal(images(ours, z), images(G, z))
    out = tmp_path / "G.npz"
    assert cli(["--from-pytorch", g_path, "--out", out, "--discriminator", d_path], capsys)[0] == 0
    assert checkpoint.load(out)[1]["batch_norm"] is batch_norm
    np.testing.assert_array_equal(images(sample.load_generator(out), z), images(G, z))
    our_d = export.models_from_checkpoint(*checkpoint.load(out), out, discriminator=True)[1]
    assert our_d.batch_norm is batch_norm


def test_a_weights_file_pairs_generator_and_discriminator_of_one_kind(tmp_path, capsys):
    g_path, d_path = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    export.save_safetensors(g_path, Generator(8, 4, 3, 32).state_dict(), {})
    export.save_safetensors(d_path, Discriminator(4, 3, 32, batch_norm=False).state_dict(), {})
    code, _, err = cli(["--from-pytorch", g_path, "--out", tmp_path / "G.npz",
                        "--discriminator", d_path], capsys)  # fmt: skip
    one_line_error(code, err, "D.safetensors: a discriminator without batch norm")


@pytest.mark.parametrize("batch_norm", [True, False])
def test_save_generator_writes_what_load_generator_reads(batch_norm, tmp_path):
    G = Generator(8, 4, 1, 28, batch_norm=batch_norm)
    G.load_state_dict(
        {k: v + 0.25 if v.dtype.kind == "f" else v for k, v in G.state_dict().items()}
    )
    path = sample.save_generator(
        G, tmp_path / "weights" / "G.npz", meta={"dataset": "mnist", "nz": 3}
    )
    assert path == tmp_path / "weights" / "G.npz"
    arrays, meta = checkpoint.load(path)
    assert set(arrays) == {f"G.{k}" for k in G.state_dict()}  # the weights alone
    assert meta["format"] == "minigan-weights" and meta["dataset"] == "mnist"
    assert (meta["nz"], meta["batch_norm"]) == (8, batch_norm)  # the model's own settings win
    loaded = sample.load_generator(path)
    assert not loaded.training and loaded.extra_repr() == G.extra_repr()
    z = noise(3, 8)
    np.testing.assert_array_equal(sample.decode(loaded, z), sample.decode(G, z))
    assert [p.name for p in path.parent.iterdir()] == ["G.npz"]  # no temporary file left


def test_save_generator_refuses_what_load_generator_could_not_read(tmp_path):
    with pytest.raises(
        ValueError, match=r"^save_generator: G\.pt: a weights file's name ends in \.npz$"
    ):
        sample.save_generator(Generator(8, 4, 1, 28), tmp_path / "G.pt")
    with pytest.raises(
        TypeError, match="^save_generator: G must be a minigan Generator, got Discriminator$"
    ):
        sample.save_generator(Discriminator(4, 1, 28), tmp_path / "G.npz")


def test_load_generator_reads_an_exported_safetensors_file(run, tmp_path, capsys):
    path = tmp_path / "G.safetensors"
    assert cli(["--checkpoint", run, "--out", path], capsys)[0] == 0
    z = noise(4, NZ)
    np.testing.assert_array_equal(
        images(sample.load_generator(path), z), images(sample.load_generator(run), z)
    )


def test_load_generator_refuses_other_files_in_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    npz = tmp_path / "arrays.npz"
    np.savez(npz, x=np.zeros(3))
    discriminator = tmp_path / "D.safetensors"
    export.save_safetensors(discriminator, Discriminator(4, 1, 28).state_dict(), {})
    for path, words in [(text, "not a minigan checkpoint"), (npz, "not a minigan checkpoint"),
                        (tmp_path / "missing.safetensors", "no such file"),
                        (discriminator, "looks like a discriminator")]:  # fmt: skip
        with pytest.raises(checkpoint.CheckpointError) as error:
            sample.load_generator(path)
        message = str(error.value)
        assert message.startswith(str(path)) and "\n" not in message and words in message, message


def test_export_then_import_gives_the_same_generator(run, tmp_path, capsys):
    g_path, d_path = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    assert cli(["--checkpoint", run, "--out", g_path, "--discriminator", d_path], capsys)[0] == 0
    out = tmp_path / "back.npz"
    assert cli(["--from-pytorch", g_path, "--discriminator", d_path, "--out", out], capsys)[0] == 0
    z = noise(4, NZ)
    np.testing.assert_array_equal(
        images(sample.load_generator(out), z), images(sample.load_generator(run), z)
    )
    arrays, _ = checkpoint.load(run)
    back, _ = checkpoint.load(out)
    exported = {"G": export.generator_prefix(arrays)[:-1], "D": "D"}  # G_ema when there is one
    originals = {f"{part}.{key}": arrays[f"{name}.{key}"] for part, name in exported.items()
                 for key in export.strip_prefix(back, f"{part}.")}  # fmt: skip
    assert set(back) == set(originals)
    for key, value in back.items():
        np.testing.assert_array_equal(value, originals[key])
        assert value.dtype == originals[key].dtype, key
    n_weights = len(export.strip_prefix(arrays, "D.")) + len(export.strip_prefix(arrays, "G."))
    assert len(back) == n_weights
    # and a weights file exports again, to the same tensors
    again = tmp_path / "again.safetensors"
    assert cli(["--checkpoint", out, "--out", again], capsys)[0] == 0
    with safe_open(g_path, "np") as first, safe_open(again, "np") as second:
        for key in first.keys():
            np.testing.assert_array_equal(first.get_tensor(key), second.get_tensor(key))


def with_ema(run, path):
    """The run's checkpoint with an averaged generator G_ema.* beside G.*, as the
    trainer writes them (with its update count): here G with every weight halved."""
    arrays, meta = checkpoint.load(run)
    ema = {f"G_ema.{k[2:]}": v / 2 if v.dtype.kind == "f" else v
           for k, v in arrays.items() if k.startswith("G.")}  # fmt: skip
    checkpoint.save(path, {**arrays, **ema, "ema_updates": np.array(2)}, meta)
    return path


def test_the_averaged_generator_is_used_unless_raw(run, tmp_path, capsys):
    ckpt = with_ema(run, tmp_path / "ema.npz")
    z = noise(2, NZ)
    raw, averaged = sample.load_generator(ckpt, raw=True), sample.load_generator(ckpt)
    np.testing.assert_array_equal(images(raw, z), images(sample.load_generator(run, raw=True), z))
    np.testing.assert_array_equal(
        averaged.state_dict()["main.0.weight"], checkpoint.load(ckpt)[0]["G_ema.main.0.weight"]
    )
    for flags, weights in (([], "G_ema"), (["--raw"], "G")):
        path = tmp_path / f"{weights}.safetensors"
        assert cli(["--checkpoint", ckpt, "--out", path, *flags], capsys)[0] == 0
        with safe_open(path, "np") as f:
            assert f.metadata()["weights"] == weights
            expected = (averaged if weights == "G_ema" else raw).state_dict()["main.0.weight"]
            np.testing.assert_array_equal(f.get_tensor("main.0.weight"), expected)
    for flags, model in (([], averaged), (["--raw"], raw)):
        out = tmp_path / f"s{len(flags)}.npy"
        argv = ["--checkpoint", str(ckpt), "--n", "2", "--seed", "0", "--out", str(out), *flags]
        assert sample.main([*argv, "--backend", "numpy"]) == 0
        np.testing.assert_array_equal(np.load(out), sample.generate(model, 2, seed=0))


def test_command_line_mistakes_are_one_line(run, tmp_path, capsys):
    st = tmp_path / "G.safetensors"
    save_file({"main.0.weight": np.zeros((8, 3, 4, 4), np.float32)}, st)
    weights = tmp_path / "weights.npz"
    state = {f"G.{k}": v for k, v in Generator(8, 4, 1, 16).state_dict().items()}
    settings = dict(format="minigan-weights", nz=8, ngf=4, channels=1, image_size=16)
    checkpoint.save(weights, state, settings)
    damaged = tmp_path / "damaged.npz"
    checkpoint.save(damaged, state, {**settings, "nz": 9})
    cases = [
        (["--checkpoint", run, "--out", tmp_path / "G.pt"], ["--out must end in .safetensors"]),
        (["--checkpoint", run, "--out", st, "--discriminator", tmp_path / "D.npz"],
         ["--discriminator must end in .safetensors"]),
        (["--checkpoint", tmp_path / "nothing", "--out", st], ["no such checkpoint file"]),
        (["--checkpoint", st, "--out", tmp_path / "x.safetensors"], ["not a minigan checkpoint"]),
        (["--checkpoint", weights, "--out", st, "--discriminator", tmp_path / "D.safetensors"],
         ["holds no discriminator"]),
        (["--checkpoint", damaged, "--out", st], ["damaged checkpoint", "nz is 9", "give 8"]),
        (["--from-pytorch", st, "--out", tmp_path / "G.safetensors"], ["--out must end in .npz"]),
        (["--from-pytorch", st, "--out", tmp_path / "G.npz", "--raw"], ["--raw applies"]),
    ]  # fmt: skip
    for argv, words in cases:
        code, _, err = cli(argv, capsys)
        one_line_error(code, err, *words)
    with pytest.raises(SystemExit) as exit_:  # neither --checkpoint nor --from-pytorch
        export.main(["--out", str(st)])
    assert exit_.value.code == 2 and "one of the arguments" in capsys.readouterr().err
    assert sample.main(["--checkpoint", str(damaged), "--out", str(tmp_path / "s.png")]) == 2
    one_line_error(2, capsys.readouterr().err, "damaged.npz", "damaged checkpoint")


def test_pth_without_pytorch_names_the_fix(tmp_path, capsys, monkeypatch):
    path = tmp_path / "netG.pth"
    path.write_bytes(b"PK\x03\x04 whatever torch.save wrote")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    code, _, err = cli(["--from-pytorch", path, "--out", tmp_path / "G.npz"], capsys)
    one_line_error(code, err, "netG.pth", "pip install torch", ".safetensors")


def test_an_unusable_backend_is_named_as_such(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backend, "_current", None)  # as in a fresh process
    monkeypatch.setenv("MINIGAN_BACKEND", "nonsense")
    code, out, err = cli(["--checkpoint", run, "--out", tmp_path / "G.safetensors"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: MINIGAN_BACKEND: unknown backend 'nonsense'")
