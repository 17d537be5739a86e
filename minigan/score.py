"""Sample quality offline: a Fréchet distance in the features of a small judge CNN.

From the shell::

    python -m minigan.score --samples samples.npy --dataset mnist5k
    python -m minigan.score --checkpoint runs/mnist5k          # samples 10,000 for you

What this module holds:

- ``Judge``: the classifier, from minigan's own layers: 28x28 grey images in
  [-1, 1] -> 64 features (its penultimate layer) -> 10 class logits;
- ``frechet_distance``: between two Gaussians, in NumPy (no SciPy);
- ``judge(dataset)``: the shipped judge of a dataset, with the mean and covariance of
  its held-out real images' features (``minigan/assets/judge_*.npz``, written by
  ``benchmarks/train_judge.py``);
- ``evaluate``: the score of a batch of images: the Fréchet distance, the legible
  share (images the judge classifies with probability >= 0.9), the share of images
  the judge puts in each class, that share's entropy and the judge's mean confidence;
- ``real_legible``: the legible share of the judge's held-out real images, the mark
  that samples are measured against;
- ``main``: the command line.

This is FID's recipe (Heusel et al. 2017) with a judge trained on the dataset itself
instead of Inception-v3 trained on ImageNet, as papers on MNIST-like data do. Its
numbers compare runs scored with the same judge and the same number of samples (the
distance of a finite sample is biased upwards, more so for fewer samples); they are
NOT comparable with the Inception-FID numbers in papers.
"""

from __future__ import annotations

if __name__ == "__main__":  # minigan owns this process: choose BLAS kernels before NumPy loads
    from minigan import cpu

    cpu.choose_openblas_kernels()

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from . import backend, checkpoint, nn, resources

ASSETS = Path(__file__).parent / "assets"
# Which judge scores which dataset: the bundled digits are MNIST digits.
JUDGES = {"mnist5k": "mnist", "mnist": "mnist", "fashion-mnist": "fashion-mnist"}
FEATURES, CLASSES, IMAGE_SHAPE = 64, 10, (1, 28, 28)
# An image is "legible" when the judge is this sure of its class: a digit that a reader
# names at a glance. Blobs and half-drawn strokes fall below it.
LEGIBLE = 0.9


class Judge(nn.Module):
    """x: (N, 1, 28, 28) in [-1, 1] -> logits (N, 10).

    ``features``: four strided-down convolutions (28 -> 28 -> 14 -> 7 -> 4), each with
    batch norm and LeakyReLU, then a 1024 -> 64 linear layer: the (N, 64) feature
    vectors the distance is measured in. ``classifier``: 64 -> 10 logits. About 153k
    parameters (0.6 MB in float32).
    """

    def __init__(self, width=32, features=FEATURES, classes=CLASSES, dtype=np.float32):
        def block(cin, cout, kernel, stride):
            return [
                nn.Conv2d(cin, cout, kernel, stride, padding=1, bias=False, dtype=dtype),
                nn.BatchNorm2d(cout, dtype=dtype),
                nn.LeakyReLU(0.2),
            ]

        w = width
        self.features = nn.Sequential(
            *block(1, w, 3, 1),  # 28x28
            *block(w, w, 4, 2),  # 14x14
            *block(w, 2 * w, 4, 2),  # 7x7
            *block(2 * w, 2 * w, 3, 2),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * w * 16, features, bias=False, dtype=dtype),
            nn.BatchNorm1d(features, dtype=dtype),
            nn.LeakyReLU(0.2),
        )
        self.classifier = nn.Linear(features, classes, dtype=dtype)

    def forward(self, x):
        return self.classifier(self.features(x))

    def backward(self, grad_output, input_grad=True):
        return self.features.backward(self.classifier.backward(grad_output), input_grad)


# ---- the Fréchet distance ---------------------------------------------------------------


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""The Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

    .. math::

        \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr} \Sigma_1 + \operatorname{tr} \Sigma_2
        - 2 \operatorname{tr} \sqrt{\Sigma_1 \Sigma_2}

    mu: (D,), sigma: (D, D) symmetric positive semi-definite. sigma1 sigma2 is not
    symmetric, but it has the eigenvalues of sqrt(sigma1) sigma2 sqrt(sigma1), which
    is symmetric PSD: so the trace of the square root is the sum of the square roots
    of *its* eigenvalues, from ``eigh``, which is stable (rounding's tiny negative
    eigenvalues are clipped to 0) where a general matrix square root is not.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or (d, d) != sigma1.shape or (d, d) != sigma2.shape:
        raise ValueError(
            f"frechet_distance: means must be (D,) and covariances (D, D); got "
            f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(distance, 0.0))  # below 0 only by rounding


def _psd_sqrt(sigma):
    """The symmetric square root of a symmetric PSD matrix, from its eigenvectors."""
    eigenvalues, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


# ---- the shipped judges -----------------------------------------------------------------


def has_judge(dataset, image_size=None) -> bool:
    """Whether runs on ``dataset`` at ``image_size`` (None: its own, 28) can be scored."""
    return dataset in JUDGES and image_size in (None, 28)


def judge_path(dataset) -> Path:
    """The file holding the judge of ``dataset``; a one-line ValueError if it has none."""
    if dataset not in JUDGES:
        raise ValueError(
            f"no judge for dataset {dataset!r}: the score exists for "
            f"{', '.join(JUDGES)} (28x28 grey images with 10 classes)"
        )
    return ASSETS / f"judge_{JUDGES[dataset]}.npz"


def judge(dataset) -> Judge:
    """The trained judge of ``dataset``, in eval mode, on the current backend. It
    carries the held-out real images' feature statistics and its metadata as host
    arrays: ``.mu`` (64,), ``.sigma`` (64, 64) float64, ``.meta`` (a dict: accuracy,
    seed, epochs, held-out images, ...). Building it leaves the backend's random
    stream as it was (a training run's noise does not change when it is scored)."""
    arrays, meta = checkpoint.load(judge_path(dataset))
    bk = backend.current()
    state = bk.get_rng_state()
    try:
        model = Judge(width=meta.get("width", 32), features=meta.get("features", FEATURES))
    finally:
        bk.set_rng_state(state)
    try:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        model.mu, model.sigma = arrays["mu"], arrays["sigma"]
    except (KeyError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{judge_path(dataset)}: damaged judge ({e})") from None
    model.meta = meta
    return model.eval()


def features_and_logits(model, images, batch_size=500) -> tuple[np.ndarray, np.ndarray]:
    """images: (N, 1, 28, 28) float32 in [-1, 1] on the host -> features (N, 64) and
    logits (N, 10) on the host, float64, computed on the current backend in batches."""
    bk = backend.current()
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        f = model.features(bk.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
        features.append(bk.to_numpy(f).astype(np.float64))
        logits.append(bk.to_numpy(model.classifier(f)).astype(np.float64))
    return np.concatenate(features), np.concatenate(logits)


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> their mean (D,) and covariance (D, D) (divided by N - 1)."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


def softmax(logits) -> np.ndarray:
    """(N, K) logits -> (N, K) probabilities; the largest logit is subtracted first."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def as_judge_input(images) -> np.ndarray:
    """Images as the judge takes them: (N, 1, 28, 28) float32 in [-1, 1], from floats
    in [-1, 1] (``sample.generate``'s output) or uint8 pixels 0-255, on the host or on
    the current backend. Anything else is a one-line ValueError."""
    bk = backend.current()
    images = bk.to_numpy(images) if bk.is_array(images) else np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) < 2:
        raise ValueError(
            f"images must be an array (N, 1, 28, 28) with N >= 2, got shape {images.shape}"
        )
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1
    if images.dtype.kind != "f":
        raise ValueError(f"images must be floats in [-1, 1] or uint8 0-255, got {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if not (low >= -1.001 and high <= 1.001):  # also refuses NaN; allows float rounding
        raise ValueError(
            f"images must be floats in [-1, 1] (as sample.generate returns) or uint8 0-255; "
            f"these range over [{low:.4g}, {high:.4g}]"
        )
    return images.astype(np.float32, copy=False)


def evaluate(images, dataset, batch_size=500) -> dict:
    """Score images against ``dataset``'s judge, on the current backend.

    images: (N, 1, 28, 28), floats in [-1, 1] or uint8 0-255. Returns a dict of plain
    floats (JSON-ready):

    - ``fd``: the Fréchet distance between the Gaussians fitted to the images'
      features and to the held-out real images' (lower is better);
    - ``legible``: the share of images whose top class probability is at least
      ``LEGIBLE`` (0.9): how many read as one clear class (compare with
      ``real_legible(dataset)``; read it beside fd and class_share, since
      a generator that draws one crisp digit 10,000 times scores 1.0);
    - ``class_share``: [10], the share of images the judge puts in each class;
    - ``class_entropy``: that share's entropy in nats (ln 10 = 2.303 for an even
      spread; mode collapse lowers it);
    - ``confidence``: the judge's mean top-class probability (an Inception-Score-like
      number: crisp images make it confident);
    - ``n``: the number of images. Compare fd only between equal n.
    """
    resources.check_memory(  # a float32 copy of the images, their features and logits
        len(images) * (4 * math.prod(IMAGE_SHAPE) + 8 * (2 * FEATURES + 3 * CLASSES)),
        f"scoring {len(images)} images",
    )
    model = judge(dataset)
    x = as_judge_input(images)
    features, logits = features_and_logits(model, x, batch_size)
    probabilities = softmax(logits)
    share = np.bincount(probabilities.argmax(axis=1), minlength=CLASSES) / len(x)
    nonzero = share[share > 0]
    return {
        "fd": frechet_distance(*statistics(features), model.mu, model.sigma),
        "legible": float((probabilities.max(axis=1) >= LEGIBLE).mean()),
        "class_share": [float(s) for s in share],
        "class_entropy": float(0.0 - (nonzero * np.log(nonzero)).sum()),  # 0.0, not -0.0
        "confidence": float(probabilities.max(axis=1).mean()),
        "n": len(x),
    }


_REAL_LEGIBLE = {}


def real_legible(dataset) -> float | None:
    """The legible share of real images that the judge did not learn from, what a
    perfect generator would reach: the 1,000 bundled digits the digit judge held out.
    None for a judge whose held-out images do not ship with minigan (Fashion-MNIST's
    are its test set)."""
    path = judge_path(dataset)
    if path not in _REAL_LEGIBLE:
        from . import data

        arrays, _ = checkpoint.load(path)
        index = arrays.get("held_out_index")
        if JUDGES[dataset] == "mnist" and index is not None:
            held_out = data.load_bundled()[np.asarray(index)]
            _REAL_LEGIBLE[path] = evaluate(held_out, dataset)["legible"]
        else:
            _REAL_LEGIBLE[path] = None
    return _REAL_LEGIBLE[path]


# ---- the command line -------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other bad input
        self.exit(2, f"error: {message} (see python -m minigan.score --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m minigan.score",
        description="Score generated images offline: the Fréchet distance in the features "
        "of a judge CNN trained on the dataset, class coverage and confidence.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--samples", help=".npy array (N, 1, 28, 28): floats in [-1, 1] or uint8")
    source.add_argument(
        "--checkpoint", help="a training checkpoint (or its run folder) to sample from"
    )
    parser.add_argument(
        "--dataset",
        help=f"which judge: {', '.join(JUDGES)} (default with --checkpoint: its training data)",
    )
    parser.add_argument("--n", type=int, help="samples to draw (default 10000)")
    parser.add_argument(
        "--raw", action="store_true", help="sample the raw generator, not its average (G_ema)"
    )
    parser.add_argument("--seed", type=int, help="seed for the noise (default 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--backend",
        choices=["auto", *backend.names()],
        default="auto",
        help="array backend (default: auto: cupy if a CUDA GPU works, else numba, else numpy)",
    )
    return parser


def _load_samples(path) -> np.ndarray:
    """The .npy array at ``path``, memory-mapped: its header is checked against the
    file's size before anything is read, and the images are read a batch at a time."""
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except ValueError as e:
        objects = "pickle" in str(e) or "Python objects" in str(e)
        reason = "it holds Python objects, which are never unpickled" if objects else e
        raise ValueError(f"{path}: not a readable .npy array ({reason})") from None
    except (OSError, MemoryError):  # the machine's (no permission, no memory): said as such
        raise
    except Exception as e:  # a damaged file fails in many ways
        raise ValueError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise ValueError(f"{path}: an .npz archive; give one .npy array (N, 1, 28, 28)")
    return loaded


def _trained_on(path) -> str:
    """The dataset a training checkpoint's configuration names."""
    config = checkpoint.load(path)[1].get("config")
    if not isinstance(config, dict) or not isinstance(config.get("dataset"), str):
        raise ValueError(f"{path} does not say which dataset it learned; pass --dataset NAME")
    return config["dataset"]


def _real_legible_note(dataset) -> str:
    real = real_legible(dataset)
    return "" if real is None else f"; real held-out images: {real:.1%}"


def _report(result, dataset, meta) -> str:
    classes = meta.get("classes") or [str(k) for k in range(CLASSES)]
    shares = [f"{c} {s:.1%}" for c, s in zip(classes, result["class_share"])]
    held = meta["held_out"]
    lines = [
        f"{result['n']} images scored by the {JUDGES[dataset]} judge "
        f"(held-out accuracy {meta['accuracy']:.2%})",
        f"  Fréchet distance  {result['fd']:.3f}  (lower is better; real images score "
        f"{meta['fd_real']:.3f}: {held} training images against the {held} held out)",
        f"  legible share     {result['legible']:.1%}  (images the judge classifies with "
        f"probability >= {LEGIBLE}{_real_legible_note(dataset)})",
        f"  class share       {'  '.join(shares[:5])}",
        f"                    {'  '.join(shares[5:])}",
        f"  class entropy     {result['class_entropy']:.3f} nats "
        f"(an even spread: {math.log(CLASSES):.3f})",
        f"  confidence        {result['confidence']:.3f}  (the judge's mean top-class probability)",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.samples is not None and (args.n, args.seed, args.raw) != (None, None, False):
            raise ValueError("--n, --seed and --raw say how --checkpoint samples; "
                             "--samples scores the file's images as they are")  # fmt: skip
        args.n = 10000 if args.n is None else args.n
        args.seed = 0 if args.seed is None else args.seed
        if args.n < 2:
            raise ValueError("--n must be at least 2")
        if args.dataset is not None:
            judge_path(args.dataset)  # an unknown dataset fails before any work
        backend.use(backend.auto() if args.backend == "auto" else args.backend)
        if args.samples is not None:
            if args.dataset is None:
                raise ValueError("--samples needs --dataset NAME (which judge to ask)")
            images, dataset = _load_samples(args.samples), args.dataset
        else:
            from . import sample

            G = sample.load_generator(args.checkpoint, raw=args.raw)
            if (G.channels, G.image_size) != (1, 28):  # before drawing thousands of samples
                raise ValueError(
                    f"{args.checkpoint}: its generator makes {G.channels}x{G.image_size}x"
                    f"{G.image_size} images; the judges score 1x28x28 (grey 28x28) ones"
                )
            dataset = args.dataset or _trained_on(args.checkpoint)
            judge_path(dataset)
            images = sample.generate(G, args.n, args.seed)
        result = evaluate(images, dataset)
        meta = judge(dataset).meta
    except (ValueError, checkpoint.CheckpointError) as e:  # BackendUnavailable is a ValueError
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:  # the machine's: an unreadable file, no memory
        print(f"error: {resources.describe(e, args.samples or args.checkpoint)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"dataset": dataset, **result}))
    else:
        print(_report(result, dataset, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
