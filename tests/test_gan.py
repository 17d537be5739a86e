"""The averaged generator: what it averages, the batch-norm statistics it uses, and
where it shows up (checkpoints, grids, sampling, the quality score in metrics.csv)."""

import copy

import numpy as np
import pytest
from files import TINY, tiny_run_args

import minigan
from minigan import backend, checkpoint, data, gan, run, sample, score, train
from minigan.models.dcgan import Discriminator, Generator


def _host(a):
    return backend.current().to_numpy(a)


def test_the_average_follows_g_at_the_warm_up_then_the_set_decay(backend_name):
    backend.current().seed(0)
    G = Generator(8, 4, 1, 28)
    average = gan.AveragedGenerator(G, decay=0.5)
    expected = [_host(p.data).astype(np.float64) for p in G.parameters()]
    rng = np.random.default_rng(1)
    for t in range(1, 31):
        for p, e in zip(G.parameters(), expected):  # G moves somewhere new each step
            new = rng.standard_normal(p.shape).astype(np.float32)
            p.data[...] = backend.current().from_numpy(new)
            rate = 1 - min(0.5, (1 + t) / (10 + t))  # warm-up: 2/11 ... then 0.5 from t = 8
            e += rate * (new - e)
        average.update()
    for avg, e in zip(average.model.parameters(), expected):
        np.testing.assert_allclose(_host(avg.data), e, rtol=1e-4, atol=1e-5)
    assert average.updates == 30


def test_the_average_uses_batch_norm_statistics_of_its_own_weights(backend_name):
    """G's running statistics describe G's activations; after ready(), the average's
    describe its own: eval mode then matches training mode on a large batch."""
    backend.current().seed(0)
    G = Generator(8, 4, 1, 28)
    average = gan.AveragedGenerator(G, decay=0.5)
    for p in G.parameters():  # the average's weights now differ from G's
        p.data *= 1.5
    average.update()
    noise = np.random.default_rng(4).standard_normal((256, 8, 1, 1)).astype(np.float32)
    for _ in range(20):  # G's running statistics: of G's own activations
        G(backend.current().from_numpy(noise))
    model = average.ready()
    assert model.training is False
    z = np.random.default_rng(5).standard_normal((512, 8, 1, 1)).astype(np.float32)
    z = backend.current().from_numpy(z)
    eval_out = _host(model(z))
    train_twin = copy.deepcopy(model).train()
    train_out = _host(train_twin(z))  # this batch's own statistics
    assert np.abs(eval_out - train_out).mean() < 0.02
    stale = copy.deepcopy(model)
    for mine, theirs in zip(stale.modules(), G.modules()):  # G's statistics instead
        if hasattr(mine, "running_mean"):
            mine.running_mean[...], mine.running_var[...] = theirs.running_mean, theirs.running_var
    assert (
        np.abs(_host(stale.eval()(z)) - train_out).mean() > 5 * np.abs(eval_out - train_out).mean()
    )


def test_recomputing_the_statistics_leaves_the_training_stream_alone():
    with backend.using("numpy", seed=3):
        G = Generator(8, 4, 1, 28)
        state = backend.current().get_rng_state()
        gan.AveragedGenerator(G, 0.99).ready()
        assert backend.current().get_rng_state() == state


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 2.0])
def test_a_decay_outside_0_1_is_refused(decay):
    with backend.using("numpy", seed=0), pytest.raises(ValueError, match="ema_decay"):
        gan.AveragedGenerator(Generator(8, 4, 1, 28), decay)


@pytest.fixture
def tiny_idx(tmp_path):
    return [*tiny_run_args(tmp_path / "tiny"), "--backend", "numpy"]


def test_a_run_keeps_the_average_in_its_checkpoint_and_samples_from_it(tmp_path, tiny_idx):
    out = tmp_path / "run"
    assert (
        train.main([*tiny_idx, "--max-steps", "4", "--ema-decay", "0.99", "--out", str(out)]) == 0
    )
    arrays, meta = checkpoint.load(out / "checkpoints" / "last.npz")
    assert meta["config"]["ema_decay"] == 0.99 and int(arrays["ema_updates"]) == 4
    ema = {k[6:] for k in arrays if k.startswith("G_ema.")}
    assert ema == {k[2:] for k in arrays if k.startswith("G.")}
    assert (out / "samples" / "final_raw.png").is_file()
    with backend.using("numpy"):
        averaged = sample.load_generator(out)
        raw = sample.load_generator(out, raw=True)
        np.testing.assert_array_equal(
            averaged.state_dict()["main.0.weight"], arrays["G_ema.main.0.weight"]
        )
        np.testing.assert_array_equal(raw.state_dict()["main.0.weight"], arrays["G.main.0.weight"])
        assert not np.array_equal(sample.generate(averaged, 4, 0), sample.generate(raw, 4, 0))

    plain = tmp_path / "plain"  # the default: no average
    assert gan.EMA_DECAY == 0
    assert train.main([*tiny_idx, "--max-steps", "4", "--out", str(plain)]) == 0
    arrays, _ = checkpoint.load(plain / "checkpoints" / "last.npz")
    assert not any(k.startswith("G_ema.") or k == "ema_updates" for k in arrays)
    assert not (plain / "samples" / "final_raw.png").exists()


def test_the_average_does_not_change_the_training_itself(tmp_path, tiny_idx):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main([*tiny_idx, "--max-steps", "3", "--ema-decay", "0.99", "--out", str(a)]) == 0
    assert train.main([*tiny_idx, "--max-steps", "3", "--out", str(b)]) == 0
    with_ema, meta_a = checkpoint.load(a / "checkpoints" / "last.npz")
    without, meta_b = checkpoint.load(b / "checkpoints" / "last.npz")
    assert meta_a["rng_state"] == meta_b["rng_state"]
    for key, value in without.items():
        np.testing.assert_array_equal(with_ema[key], value, err_msg=key)


def test_an_old_checkpoint_without_an_average_resumes_with_one(tmp_path, tiny_idx):
    out = tmp_path / "run"
    assert train.main([*tiny_idx, "--max-steps", "2", "--ema-decay", "0", "--out", str(out)]) == 0
    last = out / "checkpoints" / "last.npz"
    arrays, meta = checkpoint.load(last)
    del meta["config"]["ema_decay"]  # written before the average existed
    checkpoint.save(last, arrays, meta)
    assert train.main(["--resume", str(last), "--max-steps", "4", "--ema-decay", "0.99"]) == 0
    arrays, _ = checkpoint.load(last)
    assert int(arrays["ema_updates"]) == 2  # started at the resumed G


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_bad_ema_decay_is_one_line(tiny_idx, capsys, value):
    assert train.main([*tiny_idx, "--ema-decay", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --ema-decay") and "\n" not in err


def test_the_score_goes_into_metrics_csv_and_quality_png(tmp_path, tiny_idx):
    out, unscored = tmp_path / "run", tmp_path / "unscored"
    argv = [
        *tiny_idx,
        "--epochs",
        "3",
        "--score-every",
        "2",
        "--ema-decay",
        "0.9",
        "--out",
        str(out),
    ]
    assert train.main(argv) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    scored = [dict(zip(header, r.split(","))) for r in rows[1:] if r.split(",")[-1]]
    assert [r["step"] for r in scored] == ["4", "6"]  # every 2nd epoch's last step, and the last
    assert (out / "quality.png").is_file()
    # the last row's numbers are the score of the checkpoint's generators, as minigan.score gives
    with backend.using("numpy"):
        for suffix, raw in (("", True), ("_ema", False)):
            G = sample.load_generator(out, raw=raw)
            fake = sample.generate(G, run.SCORE_SAMPLES, seed=0)
            expected = score.evaluate(fake, "mnist")
            for key in ("fd", "legible"):
                got = float(scored[-1][key + suffix])
                assert got == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key + suffix
    # scoring leaves the training alone: the same weights and random stream as unscored
    argv = [*tiny_idx, "--epochs", "3", "--score-every", "0", "--out", str(unscored)]
    assert train.main(argv) == 0
    a, meta_a = checkpoint.load(out / "checkpoints" / "last.npz")
    b, meta_b = checkpoint.load(unscored / "checkpoints" / "last.npz")
    assert meta_a["rng_state"] == meta_b["rng_state"]
    for key in b:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_score_every_on_a_dataset_without_a_judge_is_one_line(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    from PIL import Image

    for i in range(20):
        Image.fromarray(np.full((16, 16, 3), 10 * i, np.uint8)).save(folder / f"{i}.png")
    argv = ["--dataset", "folder", "--data-dir", str(folder), "--image-size", "16",
            "--score-every", "1", "--out", str(tmp_path / "run"), *TINY]  # fmt: skip
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --score-every") and "\n" not in err


def test_a_resume_keeps_the_average_and_dropping_it_is_said(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    assert train.main([*tiny_idx, "--max-steps", "2", "--ema-decay", "0.9", "--out", str(out)]) == 0
    last = out / "checkpoints" / "last.npz"
    assert train.main(["--resume", str(last), "--max-steps", "3"]) == 0  # the checkpoint's 0.9
    arrays, meta = checkpoint.load(last)
    assert meta["config"]["ema_decay"] == 0.9 and int(arrays["ema_updates"]) == 3
    capsys.readouterr()
    assert train.main(["--resume", str(last), "--max-steps", "4", "--ema-decay", "0"]) == 0
    assert "averaged generator is dropped" in capsys.readouterr().err
    arrays, _ = checkpoint.load(last)
    assert not any(k.startswith("G_ema.") for k in arrays)


class _RecordingTrainer:
    """A stand-in for GANTrainer that keeps every batch it is given."""

    def __init__(self):
        self.batches = []

    def step(self, real):
        self.batches.append(real)
        n = len(self.batches)
        return dict(loss_d=float(n), loss_g=-float(n), d_real=0.5, d_fake=real.mean() / 255)


def test_train_steps_runs_whole_shuffled_epochs_one_after_another():
    """10 images in batches of 4: two steps an epoch, each epoch data.batches' own
    reproducible shuffle of (seed, epoch); 5 steps are epochs 0 and 1 and the first
    step of epoch 2. on_step sees steps 1..5 with their metrics; the history is them."""
    images = np.random.default_rng(0).integers(0, 256, (10, 1, 3, 3), dtype=np.uint8)
    trainer, seen = _RecordingTrainer(), []
    history = gan.train_steps(trainer, images, 5, batch_size=4, seed=7,
                              on_step=lambda step, m: seen.append((step, m)))  # fmt: skip
    expected = [b for epoch in range(3) for b in data.batches(images, 4, 7, epoch, raw=True)][:5]
    assert len(trainer.batches) == 5
    for got, want in zip(trainer.batches, expected):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(trainer.batches[0], trainer.batches[2])  # a new shuffle
    assert [step for step, _ in seen] == [1, 2, 3, 4, 5]
    assert history.dtype.names == ("loss_d", "loss_g", "d_real", "d_fake")
    assert history["loss_d"].tolist() == [1, 2, 3, 4, 5] and len(history) == 5
    assert history[2]["loss_g"] == -3 and history["d_fake"][4] == seen[4][1]["d_fake"]
    again = _RecordingTrainer()
    gan.train_steps(again, images, 5, batch_size=4, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(again.batches, trainer.batches))
    other_seed = _RecordingTrainer()
    gan.train_steps(other_seed, images, 1, batch_size=4, seed=8)
    assert not np.array_equal(other_seed.batches[0], trainer.batches[0])
    assert len(gan.train_steps(_RecordingTrainer(), images, 0, batch_size=4)) == 0


def test_train_steps_trains_a_gan_repeatably(backend_name):
    images = np.random.default_rng(0).integers(0, 256, (12, 1, 28, 28), dtype=np.uint8)

    def history():
        minigan.manual_seed(3)
        G, D = Generator(8, 4, 1, 28), Discriminator(4, 1, 28)
        return gan.train_steps(gan.GANTrainer(G, D, nz=8), images, 4, batch_size=4, seed=1)

    first = history()
    assert len(first) == 4 and np.isfinite(first["loss_d"]).all()
    np.testing.assert_array_equal(history(), first)


@pytest.mark.parametrize(
    "steps, batch_size, message",
    [(-1, 4, r"^steps must be a whole number >= 0, got -1$"),
     (2.5, 4, r"^steps must be a whole number >= 0, got 2.5$"),
     (3, 11, r"^batch_size 11 does not fit the 10 images: it must be between 1 and 10$"),
     (3, 0, r"^batch_size 0 does not fit the 10 images"),
     (3, 2.0, r"^batch_size 2.0 does not fit the 10 images")],
)  # fmt: skip
def test_train_steps_refuses_what_cannot_run_in_one_line(steps, batch_size, message):
    images = np.zeros((10, 1, 3, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        gan.train_steps(_RecordingTrainer(), images, steps, batch_size=batch_size)
