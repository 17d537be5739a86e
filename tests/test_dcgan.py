"""The DCGAN: models, one training step, checkpoints, exact resume, the train and sample CLIs."""

import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from files import TINY, tiny_run_args

import minigan
from minigan import backend, checkpoint, sample, train
from minigan.gan import GANTrainer
from minigan.models.dcgan import SUPPORTED_SIZES, Discriminator, Generator


@pytest.mark.parametrize("extra_layer", [False, True], ids=["paper", "extra_layer"])
@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_shapes_for_every_supported_size(size, extra_layer, backend_name):
    G = Generator(nz=8, ngf=4, channels=3, image_size=size, extra_layer=extra_layer)
    D = Discriminator(4, 3, size, extra_layer=extra_layer)
    z = backend.current().randn((2, 8, 1, 1))
    fake = G(z)
    assert fake.shape == (2, 3, size, size) and fake.dtype == np.float32
    assert float(abs(fake).max()) <= 1
    assert D(fake).shape == (2, 1)
    assert G.backward(D.backward(backend.current().xp.ones((2, 1), np.float32))).shape == z.shape


@pytest.mark.parametrize(
    "size, width, channels, extra, g_count, d_count",
    [
        (64, 64, 3, False, 3_576_704, 2_765_568),
        (28, 32, 1, False, 759_680, 138_624),
        # the extra layers: G's 64 -> 32 ConvTranspose2d (4x4) + BatchNorm2d + 3x3 Conv2d to 1
        # channel, instead of 64 -> 1 (4x4); D's 128 -> 128 3x3 Conv2d + BatchNorm2d
        (28, 32, 1, True, 759_680 - 64 * 16 + 64 * 32 * 16 + 2 * 32 + 32 * 9,
         138_624 + 128 * 128 * 9 + 2 * 128),
    ],
)  # fmt: skip
def test_parameter_counts(size, width, channels, extra, g_count, d_count):
    assert Generator(100, width, channels, size, extra_layer=extra).num_parameters() == g_count
    assert Discriminator(width, channels, size, extra_layer=extra).num_parameters() == d_count


def test_paper_generator_projects_to_4x4x1024():
    G = Generator(100, 128, 3, 64)
    assert G.main[0].weight.shape == (100, 1024, 4, 4)
    assert G(backend.current().randn((1, 100, 1, 1))).shape == (1, 3, 64, 64)


def test_state_dict_keys_match_the_pytorch_example():
    keys = list(Discriminator(64, 3, 64).state_dict())
    assert keys[:2] == ["main.0.weight", "main.2.weight"] and "main.3.running_var" in keys


def test_unsupported_size_lists_the_supported_ones():
    with pytest.raises(
        ValueError, match="image size 48 is not supported; choose one of 16, 28, 32, 64, 128"
    ):
        Generator(image_size=48)


@pytest.mark.parametrize("size", [28, 32])
def test_without_batch_norm_identity_holds_its_places_and_convolutions_get_a_bias(size):
    """batch_norm=False: every BatchNorm2d becomes an Identity (the main.<i> indices
    and every other key stay), the convolution each followed gets a bias, and the
    convolutions no batch norm followed (G's last, D's first and last) still have none."""
    for make in (lambda bn: Generator(8, 4, 3, size, batch_norm=bn),
                 lambda bn: Discriminator(4, 3, size, batch_norm=bn)):  # fmt: skip
        with_bn, without = make(True), make(False)
        assert len(with_bn.main) == len(without.main)
        normalised = []
        for i, (a, b) in enumerate(zip(with_bn.main, without.main)):
            if isinstance(a, minigan.nn.BatchNorm2d):
                assert isinstance(b, minigan.nn.Identity), (i, b)
                normalised.append(i - 1)
            else:
                assert type(a) is type(b), (i, a, b)
        assert normalised, "the DCGAN has batch norm to leave out"
        convs = [i for i, a in enumerate(with_bn.main) if hasattr(a, "kernel_size")]
        assert all(with_bn.main[i].bias is None for i in convs)
        assert [i for i in convs if without.main[i].bias is not None] == normalised
        keys = {k for k in with_bn.state_dict() if int(k.split(".")[1]) - 1 not in normalised}
        assert set(without.state_dict()) == keys | {f"main.{i}.bias" for i in normalised}
        assert "batch_norm=False" in repr(without) and "batch_norm" not in repr(with_bn)
    G, D = Generator(8, 4, 3, size, batch_norm=False), Discriminator(4, 3, size, batch_norm=False)
    assert "1: Identity" in G.summary(file=io.StringIO())
    std = float(np.std(backend.current().to_numpy(G.main[0].weight.data)))
    assert 0.015 < std < 0.025  # dcgan_init reached the biased convolutions' weights
    fake = G(backend.current().randn((2, 8, 1, 1)))
    assert fake.shape == (2, 3, size, size) and D(fake).shape == (2, 1)


def test_a_dcgan_without_batch_norm_trains(backend_name):
    minigan.manual_seed(0)
    G, D = Generator(8, 4, 1, 28, batch_norm=False), Discriminator(4, 1, 28, batch_norm=False)
    trainer = GANTrainer(G, D, nz=8)
    bias = backend.current().to_numpy(G.main[0].bias.data).copy()
    real = np.random.default_rng(0).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    metrics = [trainer.step(real) for _ in range(2)]
    assert all(np.isfinite(list(m.values())).all() for m in metrics)
    assert not np.array_equal(backend.current().to_numpy(G.main[0].bias.data), bias)


def test_decode_runs_g_in_eval_mode_in_batches_and_restores_the_modes(backend_name):
    """decode(G, z) is G(z) in eval mode: each image depends on its own code only, so
    any batch size gives the same images; (N, nz) and (N, nz, 1, 1), host or backend
    codes agree; every layer's train/eval flag is as it was afterwards."""
    bk = backend.current()
    minigan.manual_seed(1)
    G = Generator(8, 4, 1, 28)
    G.main[1].running_mean[...] = 0.5  # eval mode differs from train mode
    G.main[4].eval()  # a mix of modes, to be restored as it was
    modes = [m.training for m in G.modules()]
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    out = sample.decode(G, z)
    assert out.shape == (5, 1, 28, 28) and out.dtype == np.float32 and isinstance(out, np.ndarray)
    assert np.abs(out).max() <= 1
    assert [m.training for m in G.modules()] == modes
    G.eval()
    expected = bk.to_numpy(G(bk.from_numpy(z.reshape(5, 8, 1, 1))))
    G.train()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sample.decode(G, z, batch_size=2), out, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(sample.decode(G, bk.from_numpy(z.reshape(5, 8, 1, 1))), out)
    np.testing.assert_array_equal(sample.decode(G, z.astype(np.float64)), out)
    assert sample.decode(G, z[:0]).shape == (0, 1, 28, 28)
    np.testing.assert_array_equal(
        sample.generate(G, 3, seed=4),
        sample.decode(G, np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)),
    )


@pytest.mark.parametrize("shape", [(5,), (5, 7), (5, 8, 2, 2), (5, 8, 1)])
def test_decode_refuses_codes_of_the_wrong_shape_in_one_line(shape):
    G = Generator(8, 4, 1, 28)
    with pytest.raises(ValueError) as error:
        sample.decode(G, np.zeros(shape, np.float32))
    assert str(error.value) == (
        f"decode: z has shape {shape}; this generator takes codes of shape (N, 8) or (N, 8, 1, 1)"
    )


def test_summary_table(capsys):
    table = Generator(100, 32, 1, 28).summary()
    assert "ConvTranspose2d" in table and "(None, 1, 28, 28)" in table
    assert table.splitlines()[-1].endswith("759,680")
    assert capsys.readouterr().out.strip() == table


def test_training_teaches_d_to_separate_and_changes_g(backend_name):
    minigan.manual_seed(0)
    real = minigan.data.to_float(minigan.data.load_bundled()[:64])
    G, D = Generator(16, 8, 1, 28), Discriminator(8, 1, 28)
    trainer = GANTrainer(G, D, lr=2e-3, nz=16)
    z = backend.current().randn((8, 16, 1, 1))
    before = backend.current().to_numpy(G(z)).copy()
    history = [trainer.step(real[i % 2 * 32 : i % 2 * 32 + 32]) for i in range(12)]
    after = backend.current().to_numpy(G(z))
    assert all(np.isfinite(list(m.values())).all() for m in history)
    first, last = history[0], history[-1]
    assert abs(first["d_real"] - first["d_fake"]) < 0.2, first  # an untrained D cannot tell
    assert last["d_real"] - last["d_fake"] > 0.3, last
    assert np.abs(after - before).mean() > 0.5 * np.abs(before).mean()  # G's samples moved


def test_checkpoint_round_trip_and_atomic_write(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7)}
    checkpoint.save(path, arrays, {"step": 3, "rng": {"state": 2**100}})
    loaded, meta = checkpoint.load(path)
    assert meta == {"step": 3, "rng": {"state": 2**100}}
    assert all(
        np.array_equal(arrays[k], loaded[k]) and arrays[k].dtype == loaded[k].dtype for k in arrays
    )

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the write is cut off half way

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"a": np.zeros(2)}, {"step": 4})
    monkeypatch.undo()
    assert checkpoint.load(path)[1]["step"] == 3  # the previous checkpoint is intact
    assert list(tmp_path.iterdir()) == [path]  # and no temporary file is left


def test_checkpoint_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array("{}"), payload=np.array([object()], dtype=object))
    with pytest.raises(checkpoint.CheckpointError, match="evil.npz: .*never unpickles"):
        checkpoint.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    np.save(tmp_path / "array.npy", np.zeros(3))
    for name in ("junk.npz", "array.npy"):
        with pytest.raises(checkpoint.CheckpointError, match=f"{name}: not a minigan checkpoint"):
            checkpoint.load(tmp_path / name)


# ---- the command line -----------------------------------------------------------------------


@pytest.fixture
def tiny_idx(tmp_path):
    return tiny_run_args(tmp_path / "tiny")


def test_the_old_places_still_answer():
    """GANTrainer and the rest moved out of train.py; code that imported them there works."""
    from minigan import gan, images, run

    assert train.GANTrainer is gan.GANTrainer and train.CollapseWatch is gan.CollapseWatch
    assert train.Run is run.Run and train.plot_metrics is images.plot_losses
    assert train.PINNED_STEPS == gan.PINNED_STEPS and train.STOP_SIGNALS is run.STOP_SIGNALS


def _weights(path):
    arrays, meta = checkpoint.load(path)
    return arrays, meta


def test_cli_run_leaves_everything_a_person_wants(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    assert (
        train.main([*tiny_idx, "--epochs", "2", "--out", str(out), "--checkpoint-every", "1"]) == 0
    )
    files = ["samples/epoch_001.png", "samples/epoch_002.png", "samples/final.png", "progress.gif",
             "losses.png", "checkpoints/last.npz", "checkpoints/epoch_001.npz"]  # fmt: skip
    for name in files:
        assert (out / name).is_file(), name
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,loss_d,loss_g,d_real,d_fake,seconds,fd,fd_ema,legible,legible_ema"
    assert len(rows) == 1 + 4
    _, meta = checkpoint.load(out / "checkpoints" / "last.npz")
    assert meta["step"] == 4 and meta["config"]["ngf"] == 4 and meta["channels"] == 1
    assert "done at step 4" in capsys.readouterr().out


def test_resume_continues_exactly(tmp_path, tiny_idx):
    """Interrupted at step 3 (mid-epoch) then resumed to 5 == straight to 5 (NumPy backend)."""
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    assert (
        train.main([*tiny_idx, "--max-steps", "5", "--out", str(straight), "--backend", "numpy"])
        == 0
    )
    assert (
        train.main([*tiny_idx, "--max-steps", "3", "--out", str(pieces), "--backend", "numpy"]) == 0
    )
    last = pieces / "checkpoints" / "last.npz"
    assert train.main(["--resume", str(last), "--max-steps", "5"]) == 0
    a, meta_a = checkpoint.load(straight / "checkpoints" / "last.npz")
    b, meta_b = checkpoint.load(last)
    assert meta_a["step"] == meta_b["step"] == 5
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert meta_a["rng_state"] == meta_b["rng_state"]
    steps = [line.split(",")[0] for line in (pieces / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5"]


def test_train_resume_and_sample_on_every_backend(tmp_path, tiny_idx, backend_name, capsys):
    """The CLIs on each backend; a run started on NumPy resumes there (one checkpoint
    format, one host random stream) and ends where a NumPy run straight through ends,
    within float32 rounding."""
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    numpy = ["--backend", "numpy"]
    assert train.main([*tiny_idx, "--max-steps", "4", "--out", str(straight), *numpy]) == 0
    assert train.main([*tiny_idx, "--max-steps", "2", "--out", str(pieces), *numpy]) == 0
    last = pieces / "checkpoints" / "last.npz"
    assert train.main(["--resume", str(last), "--max-steps", "4", "--backend", backend_name]) == 0
    assert f"backend {backend_name}" in capsys.readouterr().out
    a, meta_a = checkpoint.load(straight / "checkpoints" / "last.npz")
    b, meta_b = checkpoint.load(last)
    assert meta_b["step"] == 4 and meta_b["backend"] == backend_name
    assert meta_a["rng_state"] == meta_b["rng_state"]  # the same noise was drawn
    for key in a:  # Adam moves a weight by ~lr per step whatever the gradient's size
        np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-3, err_msg=key)
    png, npy = tmp_path / "s.png", tmp_path / "s.npy"
    for out in (png, npy):
        argv = ["--checkpoint", str(last), "--n", "4", "--seed", "1", "--out", str(out)]
        assert sample.main([*argv, "--backend", backend_name]) == 0
    reference = ["--checkpoint", str(last), "--n", "4", "--seed", "1", "--backend", "numpy"]
    with backend.using("numpy"):
        assert sample.main([*reference, "--out", str(tmp_path / "ref.npy")]) == 0
    np.testing.assert_allclose(np.load(npy), np.load(tmp_path / "ref.npy"), atol=1e-4)
    assert png.stat().st_size > 0


def test_resume_refuses_changed_model_flags(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    train.main([*tiny_idx, "--max-steps", "1", "--out", str(out)])
    code = train.main(["--resume", str(out / "checkpoints" / "last.npz"), "--ngf", "8"])
    assert code == 2
    assert "--ngf 8 differs from the checkpoint's 4" in capsys.readouterr().err


def test_recipe_picks_the_layout_and_a_checkpoint_keeps_it(tmp_path, tiny_idx, capsys):
    """--recipe minigan (the default) trains the models with the extra layer, --recipe
    paper the PyTorch example's; a checkpoint records which, a resume keeps it, and a
    checkpoint written before --recipe existed resumes as the paper's."""
    from minigan import checkpoint, export

    last = {}
    for recipe in ("minigan", "paper"):
        out = tmp_path / recipe
        assert (
            train.main([*tiny_idx, "--max-steps", "1", "--out", str(out), "--recipe", recipe]) == 0
        )
        assert f"recipe {recipe}," in capsys.readouterr().out
        last[recipe] = out / "checkpoints" / "last.npz"
        arrays, meta = checkpoint.load(last[recipe])
        G, D, _ = export.models_from_checkpoint(arrays, meta, last[recipe], discriminator=True)
        assert meta["config"]["recipe"] == recipe
        assert G.extra_layer == D.extra_layer == (recipe == "minigan")
    assert train.main(["--resume", str(last["minigan"]), "--recipe", "paper"]) == 2
    assert "--recipe paper differs from the checkpoint's minigan" in capsys.readouterr().err
    arrays, meta = checkpoint.load(last["paper"])  # as written before --recipe existed
    for key in ("recipe", "extra_layer"):
        del meta["config"][key]
    checkpoint.save(last["paper"], arrays, meta)
    assert train.main(["--resume", str(last["paper"]), "--max-steps", "2"]) == 0
    assert "recipe paper," in capsys.readouterr().out
    assert checkpoint.load(last["paper"])[1]["config"]["recipe"] == "paper"


def test_existing_run_folder_is_not_overwritten(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    train.main([*tiny_idx, "--max-steps", "1", "--out", str(out)])
    assert train.main([*tiny_idx, "--max-steps", "1", "--out", str(out)]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err


def test_default_run_folders_do_not_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train.main([*TINY, "--max-steps", "1"]) == 0
    assert train.main([*TINY, "--max-steps", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mnist5k", "mnist5k-2"]


def test_divergence_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, tiny_idx, monkeypatch, capsys
):
    out = tmp_path / "run"
    real_step = GANTrainer.step
    calls = []

    def step_then_nan(self, real):
        calls.append(1)
        m = real_step(self, real)
        return {**m, "loss_g": float("nan")} if len(calls) == 3 else m

    monkeypatch.setattr(GANTrainer, "step", step_then_nan)
    assert train.main([*tiny_idx, "--epochs", "3", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "training diverged at step 3" in err and "Traceback" not in err
    assert f"the last good checkpoint is {out / 'checkpoints' / 'last.npz'} (step 2)" in err
    assert checkpoint.load(out / "checkpoints" / "last.npz")[1]["step"] == 2  # end of epoch 1


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, tiny_idx, monkeypatch, capsys):
    out = tmp_path / "run"
    real_step = GANTrainer.step
    calls = []

    def step_then_ctrl_c(self, real):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, real)

    monkeypatch.setattr(GANTrainer, "step", step_then_ctrl_c)
    assert train.main([*tiny_idx, "--epochs", "5", "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert "interrupted at step 3" in captured.out and "--resume" in captured.out
    assert "Traceback" not in captured.err
    assert checkpoint.load(out / "checkpoints" / "last.npz")[1]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "mnist", "--data-dir", "{tmp}", "--max-steps", "1"], "could not download"),
        (["--dataset", "mnist", "--data-dir", "{tmp}/typo", "--max-steps", "1"], "no such folder"),
        (
            ["--dataset", "cifar10", "--data-dir", "{tmp}", "--max-steps", "1"],
            "no data_batch_*.bin files in",
        ),
        (["--dataset", "folder", "--max-steps", "1"], "--dataset folder needs --data-dir"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--resume", "{tmp}/missing.npz"], "missing.npz: no such checkpoint file"),
    ],
)
def test_cli_errors_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(minigan.data, "IDX_MIRRORS", {"mnist": ["http://127.0.0.1:9/"]})
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert train.main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_sample_cli(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    train.main([*tiny_idx, "--max-steps", "2", "--out", str(out)])
    ckpt = str(out / "checkpoints" / "last.npz")
    assert (
        sample.main(
            ["--checkpoint", ckpt, "--n", "10", "--out", str(tmp_path / "s.npy"), "--seed", "1"]
        )
        == 0
    )
    arr = np.load(tmp_path / "s.npy", allow_pickle=False)
    assert arr.shape == (10, 1, 28, 28) and arr.dtype == np.float32 and np.abs(arr).max() <= 1
    assert (
        sample.main(
            ["--checkpoint", ckpt, "--n", "10", "--out", str(tmp_path / "t.npy"), "--seed", "1"]
        )
        == 0
    )
    np.testing.assert_array_equal(arr, np.load(tmp_path / "t.npy"))  # the seed fixes the noise
    assert sample.main(["--checkpoint", ckpt, "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert (
        sample.main(
            [
                "--checkpoint",
                ckpt,
                "--n",
                "3",
                "--interpolate",
                "5",
                "--out",
                str(tmp_path / "w.npy"),
            ]
        )
        == 0
    )
    walks = np.load(tmp_path / "w.npy")
    assert walks.shape == (6, 5, 1, 28, 28)
    np.testing.assert_allclose(walks[0, 0], walks[1, 0], atol=1e-5)  # both walks start at z0
    np.testing.assert_allclose(walks[0, -1], walks[1, -1], atol=1e-5)  # and end at z1
    assert sample.main(["--checkpoint", ckpt, "--out", str(tmp_path / "x.jpg")]) == 2
    assert "--out must end in .png or .npy" in capsys.readouterr().err


def test_slerp_falls_back_to_the_line_only_for_parallel_pairs():
    z0 = np.array([[3.0, 0.0], [1.0, 1.0]])
    z1 = np.array([[0.0, 3.0], [2.0, 2.0]])  # the second pair is parallel
    path = sample.slerp(z0[:, None], z1[:, None], np.linspace(0, 1, 5)[None, :, None])
    np.testing.assert_allclose(np.linalg.norm(path[0], axis=-1), 3.0)  # still on the circle
    np.testing.assert_allclose(path[1], np.linspace([1.0, 1.0], [2.0, 2.0], 5))


def test_slerp_stays_on_the_sphere():
    z0, z1 = np.array([[3.0, 0.0]]), np.array([[0.0, 3.0]])
    t = np.linspace(0, 1, 7)[:, None]
    path = sample.slerp(z0, z1, t)
    np.testing.assert_allclose(np.linalg.norm(path, axis=-1), 3.0)
    np.testing.assert_allclose(path[0], z0[0]) and np.testing.assert_allclose(
        path[-1], z1[0], atol=1e-12
    )


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install it)",
)
def test_cli_trains_on_fashion_mnist_from_debian(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "run"
    assert (
        train.main(["--dataset", "fashion-mnist", *TINY, "--max-steps", "2", "--out", str(out)])
        == 0
    )
    assert "DCGAN on fashion-mnist (60000 images, 28x28x1)" in capsys.readouterr().out
    assert (out / "samples" / "final.png").is_file()


def test_unwritable_run_folder_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder should go")
    assert train.main([*TINY, "--max-steps", "1", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_cli_edge_cases(tmp_path, tiny_idx, capsys, monkeypatch):
    out = tmp_path / "run"
    assert train.main([*tiny_idx, "--max-steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    # a run folder stands for its last checkpoint; a finished step count trains nothing
    assert train.main(["--resume", str(out), "--max-steps", "2"]) == 0
    assert "nothing to train" in capsys.readouterr().err
    assert (
        sample.main(["--checkpoint", str(out), "--n", "0", "--out", str(tmp_path / "a.png")]) == 2
    )
    # a damaged checkpoint is a one-line error in both commands
    arrays, meta = checkpoint.load(out / "checkpoints" / "last.npz")
    arrays["G.main.0.weight"] = arrays["G.main.0.weight"][:1]
    checkpoint.save(tmp_path / "bad.npz", arrays, meta)
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "r2")]) == 2
    assert (
        sample.main(["--checkpoint", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "b.png")])
        == 2
    )
    for line in capsys.readouterr().err.strip().splitlines():
        assert line.startswith("error: ") and "damaged checkpoint" in line
    # the environment variable picks the backend, and a bad one is a one-line error
    monkeypatch.setenv("MINIGAN_BACKEND", "nope")
    assert train.main([*TINY, "--max-steps", "1", "--out", str(tmp_path / "r3")]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_a_folder_needs_two_images(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "one.png")
    assert (
        train.main(
            ["--dataset", "folder", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "found 1 image; training needs at least 2" in capsys.readouterr().err
