"""The offline quality score: the Fréchet distance against closed forms, the shipped
judges, the sanity of the score on real, noisy, untrained and trained images, the
same score on every backend, and the command line's answers to bad input."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigan import backend, checkpoint, data, score
from minigan.models.dcgan import Discriminator, Generator

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)


# ---- the Fréchet distance -----------------------------------------------------------------


def random_rotation(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def closed_form(mu1, a, mu2, b):
    """N(mu1, Q diag(a) Q^T) to N(mu2, Q diag(b) Q^T): commuting covariances, whose
    product's square root is Q diag(sqrt(a b)) Q^T."""
    return float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())


@pytest.mark.parametrize("rotated", [False, True], ids=["diagonal", "commuting"])
def test_frechet_distance_closed_form(rotated):
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    a, b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    a[:3] = 0  # rank-deficient: rounding's negative eigenvalues must not make NaN
    # (the square root amplifies rounding near 0: 1e-16 becomes 1e-8, hence rel=1e-7)
    q = random_rotation(d, rng) if rotated else np.eye(d)
    sigma1, sigma2 = (q * a) @ q.T, (q * b) @ q.T
    expected = closed_form(mu1, a, mu2, b)
    assert score.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-7)
    assert score.frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_of_a_gaussian_to_itself_is_zero_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 8))
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert 0 <= score.frechet_distance(mu, sigma, mu, sigma) < 1e-9
    assert score.frechet_distance(mu + 3, sigma, mu, sigma) == pytest.approx(9 * 8)


def general_covariances(d, rng):
    m1, m2 = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    return m1 @ m1.T / d, m2 @ m2.T / d


def test_frechet_distance_of_non_commuting_covariances_by_another_route():
    """tr sqrt(S1 S2) is the sum of the square roots of S1 S2's eigenvalues, which are
    real and non-negative: computed here with the general (non-symmetric) eigensolver."""
    rng = np.random.default_rng(2)
    sigma1, sigma2 = general_covariances(12, rng)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    trace_sqrt = np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).real.clip(0)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    assert score.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_against_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg", reason="SciPy is not installed")
    rng = np.random.default_rng(3)
    sigma1, sigma2 = general_covariances(20, rng)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    trace_sqrt = np.trace(linalg.sqrtm(sigma1 @ sigma2)).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    assert score.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="means must be"):
        score.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):  # one covariance of the wrong size
        score.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):
        score.frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))


# ---- the shipped judges ------------------------------------------------------------------


@pytest.mark.parametrize("name, least", [("mnist", 0.98), ("fashion-mnist", 0.89)])
def test_shipped_judges_are_small_accurate_and_documented(name, least):
    path = score.ASSETS / f"judge_{name}.npz"
    assert path.stat().st_size < 1_000_000
    arrays, meta = checkpoint.load(path)
    assert meta["format"] == "minigan-judge" and meta["dataset"] == name
    assert meta["accuracy"] >= least and meta["held_out"] == (1000 if name == "mnist" else 10000)
    for key in ("seed", "epochs", "date", "minigan_version", "fd_real", "classes"):
        assert key in meta, key
    model = score.judge(name)
    assert model.mu.shape == (score.FEATURES,) and model.sigma.shape == (score.FEATURES,) * 2
    np.testing.assert_allclose(model.sigma, model.sigma.T)
    assert not model.training


def test_bundled_digits_and_mnist_share_the_digit_judge():
    assert score.judge_path("mnist5k") == score.judge_path("mnist")


@pytest.mark.parametrize("dataset", ["cifar10", "folder", "imagenet"])
def test_a_dataset_without_a_judge_is_one_clear_line(dataset):
    with pytest.raises(ValueError, match=f"no judge for dataset '{dataset}'") as raised:
        score.judge(dataset)
    assert "\n" not in str(raised.value)


def test_loading_a_judge_leaves_the_random_stream_alone(backend_name):
    bk = backend.current()
    bk.seed(5)
    before = bk.randn((3,))
    bk.seed(5)
    score.judge("mnist")
    score.evaluate(data.load_bundled()[::100], "mnist5k")
    np.testing.assert_array_equal(bk.to_numpy(bk.randn((3,))), bk.to_numpy(before))


# ---- the score's sanity --------------------------------------------------------------------


def digits_split():
    """The bundled digits the digit judge was trained on, and those it held out."""
    arrays, _ = checkpoint.load(score.judge_path("mnist"))
    held = arrays["held_out_index"]
    images = data.load_bundled()
    return np.delete(images, held, axis=0), images[held]


@pytest.fixture(scope="module")
def real_digits():
    """1,000 of the judge's training digits (a stratified spread) and their score."""
    training, _ = digits_split()
    pick = np.random.default_rng(0).choice(len(training), 1000, replace=False)
    with backend.using("numpy"):
        return training[pick], score.evaluate(training[pick], "mnist5k")


@pytest.fixture(scope="module")
def fresh_generator_score():
    with backend.using("numpy", seed=0):
        G = Generator(100, 32, 1, 28).eval()  # DCGAN's N(0, 0.02) initialisation
        from minigan import sample

        return score.evaluate(sample.generate(G, 1000, seed=0), "mnist5k")


def test_real_images_score_near_zero_and_noise_far_higher(real_digits):
    _, real = real_digits
    _, meta = checkpoint.load(score.judge_path("mnist"))
    noise = np.random.default_rng(1).uniform(-1, 1, (1000, 1, 28, 28)).astype(np.float32)
    with backend.using("numpy"):
        noisy = score.evaluate(noise, "mnist5k")
    assert real["fd"] < 2 * meta["fd_real"] + 0.5  # the recorded real-vs-real distance
    assert noisy["fd"] > 50 * real["fd"]
    # Real digits: every class about a tenth, and a confident judge.
    assert all(0.07 < s < 0.13 for s in real["class_share"])
    assert real["class_entropy"] > 0.99 * math.log(10) and real["confidence"] > 0.95
    assert real["n"] == 1000 and sum(real["class_share"]) == pytest.approx(1)


@needs_fashion
def test_real_fashion_images_score_near_zero_and_noise_far_higher(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "empty-cache"))
    images, _ = data.load_labeled("fashion-mnist", "train", download=False)
    pick = np.random.default_rng(0).choice(len(images), 2000, replace=False)
    noise = np.random.default_rng(1).uniform(-1, 1, (2000, 1, 28, 28)).astype(np.float32)
    with backend.using("numpy"):
        real, noisy = (score.evaluate(x, "fashion-mnist") for x in (images[pick], noise))
    assert real["fd"] < 2 and noisy["fd"] > 50 * real["fd"]
    assert real["class_entropy"] > 0.99 * math.log(10)


def test_the_legible_share_counts_images_the_judge_is_sure_of(real_digits):
    images, real = real_digits
    with backend.using("numpy"):
        _, logits = score.features_and_logits(score.judge("mnist5k"), score.as_judge_input(images))
    top = score.softmax(logits).max(axis=1)
    assert real["legible"] == pytest.approx(np.mean(top >= score.LEGIBLE))
    # Blurring the digits (a 3x3 box, four times) leaves the judge unsure of many.
    blurred = images.astype(np.float32) / 127.5 - 1
    for _ in range(4):
        padded = np.pad(blurred, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-1)
        blurred = sum(padded[..., i : i + 28, j : j + 28] for i in range(3) for j in range(3)) / 9
    with backend.using("numpy"):
        blurry = score.evaluate(blurred.astype(np.float32), "mnist5k")
    assert blurry["legible"] < real["legible"] - 0.2, (blurry["legible"], real["legible"])


def test_real_held_out_digits_set_the_mark_for_legibility():
    with backend.using("numpy"):
        mark = score.real_legible("mnist5k")
        arrays, _ = checkpoint.load(score.judge_path("mnist"))
        held_out = data.load_bundled()[arrays["held_out_index"]]
        assert mark == score.evaluate(held_out, "mnist")["legible"]
    assert 0.9 < mark < 1.0  # the judge is sure of most real digits, not all
    assert score.real_legible("fashion-mnist") is None  # its held-out images are not shipped


def test_a_fresh_generator_scores_far_worse_than_real_images(real_digits, fresh_generator_score):
    _, real = real_digits
    assert fresh_generator_score["fd"] > 20 * real["fd"]


def test_a_trained_generator_scores_better_than_a_fresh_one():
    """A real, short GAN training on the bundled digits: a small DCGAN (ngf = ndf = 16,
    batch 32, the paper's Adam). An untrained G draws grey blurs; after 500-800 steps its
    samples become digits (about 35 s on the Numba backend on two cores). Scored after
    every epoch (156 steps); up to 7 epochs, in case this machine's rounding takes
    another path."""
    from minigan import sample
    from minigan.gan import GANTrainer

    with backend.using("numba" if "numba" in backend.available() else "numpy", seed=0):
        G, D = Generator(100, 16, 1, 28), Discriminator(16, 1, 28)
        fresh = score.evaluate(sample.generate(G.eval(), 1000, seed=0), "mnist5k")
        trainer, images, history = GANTrainer(G.train(), D, nz=100), data.load_bundled(), []
        for epoch in range(7):
            for batch in data.batches(images, 32, seed=0, epoch=epoch, raw=True):
                trainer.step(batch)
            trained = score.evaluate(sample.generate(G.eval(), 1000, seed=0), "mnist5k")
            G.train()
            history.append(round(trained["fd"], 1))
            if trained["fd"] < fresh["fd"] / 4:
                break
    assert trained["fd"] < fresh["fd"] / 4, f"fresh {fresh['fd']:.1f}, by epoch {history}"
    assert trained["class_entropy"] > fresh["class_entropy"] + 1  # several digits, not one


def test_uint8_and_float_images_score_the_same(real_digits):
    images, real = real_digits
    with backend.using("numpy"):
        as_float = score.evaluate(data.to_float(images), "mnist5k")
    assert as_float == real


def test_the_same_samples_score_the_same_on_every_backend(backend_name, real_digits):
    images, reference = real_digits  # scored on the NumPy backend
    result = score.evaluate(images, "mnist")
    assert result["fd"] == pytest.approx(reference["fd"], rel=1e-3, abs=1e-4)
    assert result["confidence"] == pytest.approx(reference["confidence"], abs=1e-5)
    np.testing.assert_allclose(result["class_share"], reference["class_share"], atol=2e-3)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((10, 1, 32, 32), np.float32), r"must be an array \(N, 1, 28, 28\)"),
        (np.zeros((10, 3, 28, 28), np.float32), r"got shape \(10, 3, 28, 28\)"),
        (np.zeros((1, 1, 28, 28), np.float32), "N >= 2"),
        (np.zeros((10, 28, 28), np.float32), "got shape"),
        (np.full((10, 1, 28, 28), 255.0, np.float32), r"range over \[255, 255\]"),
        (np.full((10, 1, 28, 28), np.nan, np.float32), "range over"),
        (np.zeros((10, 1, 28, 28), np.int64), "got int64"),
    ],
)
def test_evaluate_refuses_bad_images_in_one_line(images, message):
    with pytest.raises(ValueError, match=message) as raised:
        score.evaluate(images, "mnist5k")
    assert "\n" not in str(raised.value)


# ---- the command line ----------------------------------------------------------------------


@pytest.fixture
def digits_npy(tmp_path, real_digits):
    path = tmp_path / "digits.npy"
    np.save(path, data.to_float(real_digits[0][:200]))
    return path


def test_cli_scores_an_npy_file(digits_npy, capsys):
    assert (
        score.main(["--samples", str(digits_npy), "--dataset", "mnist5k", "--backend", "numpy"])
        == 0
    )
    out = capsys.readouterr().out
    assert "200 images scored by the mnist judge" in out and "Fréchet distance" in out
    assert "class entropy" in out and "confidence" in out


def test_cli_json_is_the_evaluate_result(digits_npy, capsys):
    argv = ["--samples", str(digits_npy), "--dataset", "mnist", "--json", "--backend", "numpy"]
    assert score.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    with backend.using("numpy"):
        expected = score.evaluate(np.load(digits_npy), "mnist")
    assert result == {"dataset": "mnist", **expected}


def test_cli_runs_as_a_module(digits_npy):
    done = subprocess.run(
        [sys.executable, "-m", "minigan.score", "--samples", str(digits_npy),
         "--dataset", "mnist5k", "--json", "--backend", "numpy"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 200


def test_cli_samples_a_checkpoint_and_reads_its_dataset(tmp_path, capsys):
    from minigan import train

    out = tmp_path / "run"
    tiny = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "16", "--max-steps", "1"]
    assert train.main([*tiny, "--out", str(out), "--backend", "numpy"]) == 0
    capsys.readouterr()
    assert score.main(["--checkpoint", str(out), "--n", "50", "--json", "--backend", "numpy"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "mnist5k" and result["n"] == 50 and result["fd"] > 0
    assert 0 <= result["legible"] <= 1
    assert score.main(["--checkpoint", str(out), "--n", "50", "--backend", "numpy"]) == 0
    report = capsys.readouterr().out
    assert f"legible share     {result['legible']:.1%}" in report
    assert f"real held-out images: {score.real_legible('mnist5k'):.1%}" in report


def pickled_npy(path):
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


@pytest.mark.parametrize(
    "make, argv, message",
    [
        (None, ["--samples", "{tmp}/gone.npy", "--dataset", "mnist"], "gone.npy: no such file"),
        (lambda p: np.save(p, np.zeros((4, 1, 32, 32), np.float32)), ["--dataset", "mnist"],
         "got shape (4, 1, 32, 32)"),
        (pickled_npy, ["--dataset", "mnist"], "holds Python objects"),
        (lambda p: p.write_bytes(b"not an array"), ["--dataset", "mnist"], "not a readable .npy"),
        (lambda p: np.save(p, np.zeros((4, 1, 28, 28))), ["--dataset", "nope"],
         "no judge for dataset 'nope'"),
        (lambda p: np.save(p, np.zeros((4, 1, 28, 28))), ["--dataset", "cifar10"],
         "no judge for dataset 'cifar10'"),
        (lambda p: np.save(p, np.zeros((4, 1, 28, 28))), [], "--samples needs --dataset"),
        (None, ["--checkpoint", "{tmp}/nothing.npz"], "no such checkpoint file"),
        (None, ["--dataset", "mnist"], "one of the arguments --samples --checkpoint is required"),
        (None, ["--checkpoint", "x", "--n", "1"], "--n must be at least 2"),
        (lambda p: np.save(p, np.zeros((4, 1, 28, 28))), ["--dataset", "mnist", "--n", "50"],
         "--samples scores the file's images as they are"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, argv, message):
    source = []
    if make is not None:
        make(tmp_path / "s.npy")
        source = ["--samples", str(tmp_path / "s.npy")]
    argv = [*source, *(a.replace("{tmp}", str(tmp_path)) for a in argv), "--backend", "numpy"]
    try:
        code = score.main(argv)
    except SystemExit as e:  # argparse's own complaints
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_cli_refuses_a_generator_the_judges_cannot_score_before_sampling(tmp_path, capsys):
    with backend.using("numpy", seed=0):
        G = Generator(8, 4, 3, 32)  # CIFAR-sized colour images
        meta = dict(format="minigan-weights", nz=8, ngf=4, channels=3, image_size=32)
        arrays = {f"G.{k}": v for k, v in G.state_dict().items()}
        checkpoint.save(tmp_path / "G.npz", arrays, meta)
    argv = ["--checkpoint", str(tmp_path / "G.npz"), "--n", "100000000", "--dataset", "mnist"]
    assert score.main([*argv, "--backend", "numpy"]) == 2  # at once: no 10^8 samples drawn
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3x32x32 images; the judges score 1x28x28" in err
