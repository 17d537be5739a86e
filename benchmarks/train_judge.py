"""Train the judges of ``minigan.score``, reproducibly from a seed, with minigan itself.

    python benchmarks/train_judge.py                  # both judges (about 10 minutes on 2 cores)
    python benchmarks/train_judge.py --judge mnist    # just the digits

Each judge is ``minigan.score.Judge``, trained with minigan's layers, a softmax
cross-entropy written out below and ``optim.Adam`` (learning rate decayed linearly to 0),
on the Numba backend. It is written to ``minigan/assets/judge_<name>.npz``
(``minigan.checkpoint.save``: pickle-free, atomic) with the mean and covariance of the
held-out real images' features, and metadata: held-out accuracy, seed, epochs,
held-out images, the distance of real training images to the held-out statistics
(what "as good as real" scores), date and minigan version.

  mnist          the 5,000 bundled digits: 400 of each class train, 100 of each are
                 held out (accuracy and statistics); training images shift by up to
                 2 pixels (few images: the judge must not learn them by heart).
  fashion-mnist  the 60,000 training images train; the 10,000 test images are held out
                 (Debian's dataset-fashion-mnist, or the usual download).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from minigan import cpu  # noqa: E402

cpu.choose_openblas_kernels()  # before NumPy loads (minigan/cpu.py says why)

import minigan  # noqa: E402
from minigan import backend, checkpoint, data, optim, score  # noqa: E402

import numpy as np  # noqa: E402  # isort: skip

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
# name: epochs, batch size, peak learning rate, largest random shift in pixels
SETTINGS = {"mnist": (30, 100, 2e-3, 2), "fashion-mnist": (4, 128, 2e-3, 0)}


def cross_entropy(logits, labels):
    """Softmax cross-entropy, averaged over the batch, and its gradient.

    logits: (N, K) on the backend; labels: (N,) ints on the backend.
    loss = mean_i [logsumexp(logits_i) - logits_i[label_i]]
    d loss / d logits = (softmax(logits) - onehot(labels)) / N
    """
    xp = backend.current().xp
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
    log_sum = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(len(labels))
    loss = (log_sum[:, 0] - shifted[rows, labels]).mean()
    grad = xp.exp(shifted - log_sum)
    grad[rows, labels] -= 1
    return float(loss), grad / len(labels)


def shift(images, most, rng):
    """Each uint8 image (N, C, H, W) moved by up to ``most`` pixels each way, zero-filled."""
    if not most:
        return images
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (most, most), (most, most)))
    dy, dx = rng.integers(0, 2 * most + 1, (2, n))
    return np.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))])


def held_out_digits(seed) -> np.ndarray:
    """Which of the bundled digits are held out: 100 of each class, chosen from the seed
    (indices into ``data.load_bundled()``, sorted)."""
    labels = data.load_bundled_labels()
    rng = np.random.default_rng(seed)
    return np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(labels == k))[:100] for k in range(10)])
    )


def accuracy(model, images, labels) -> float:
    _, logits = score.features_and_logits(model.eval(), data.to_float(images))
    return float((logits.argmax(axis=1) == labels).mean())


def train(name, seed, epochs=None, log=print):
    """Train one judge; returns (model, meta) with model.mu and model.sigma set."""
    default_epochs, batch_size, peak_lr, most_shift = SETTINGS[name]
    epochs = default_epochs if epochs is None else epochs
    if name == "mnist":
        images, labels, held = (
            data.load_bundled(),
            data.load_bundled_labels(),
            held_out_digits(seed),
        )
        train = np.setdiff1d(np.arange(len(labels)), held)
        train_x, train_y, held_x, held_y = images[train], labels[train], images[held], labels[held]
    else:
        (train_x, train_y), (held_x, held_y) = (
            data.load_labeled(name, s) for s in ("train", "test")
        )
    bk = backend.current()
    bk.seed(seed)
    model = score.Judge()
    opt = optim.Adam(model.parameters(), lr=peak_lr)
    rng = np.random.default_rng(seed)
    steps = epochs * (len(train_x) // batch_size)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        losses = []
        for i, batch in enumerate(
            data.batches(np.arange(len(train_x)), batch_size, seed, epoch, raw=True)
        ):
            opt.lr = peak_lr * (1 - (epoch * (len(train_x) // batch_size) + i) / steps)
            x = bk.from_numpy(data.to_float(shift(train_x[batch], most_shift, rng)))
            opt.zero_grad()
            loss, grad = cross_entropy(model(x), bk.from_numpy(train_y[batch]))
            model.backward(grad, input_grad=False)
            opt.step()
            losses.append(loss)
        log(
            f"{name} epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}, held-out accuracy "
            f"{accuracy(model, held_x, held_y):.2%} ({time.perf_counter() - start:.0f} s)"
        )
    seconds = time.perf_counter() - start
    model.eval()
    held_features, logits = score.features_and_logits(model, data.to_float(held_x))
    model.mu, model.sigma = score.statistics(held_features)
    # What real images score: as many training images as are held out, against them.
    reference = np.random.default_rng(seed).choice(len(train_x), len(held_x), replace=False)
    train_features, _ = score.features_and_logits(model, data.to_float(train_x[reference]))
    fd_real = score.frechet_distance(*score.statistics(train_features), model.mu, model.sigma)
    meta = {
        "format": "minigan-judge",
        "dataset": name,
        "accuracy": float((logits.argmax(axis=1) == held_y).mean()),
        "held_out": len(held_x),
        "trained_on": len(train_x),
        "fd_real": fd_real,
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": peak_lr,
        "shift": most_shift,
        "width": 32,
        "features": score.FEATURES,
        "classes": FASHION_CLASSES if name == "fashion-mnist" else [str(k) for k in range(10)],
        "backend": type(bk).__name__,
        "train_seconds": round(seconds, 1),
        "date": datetime.date.today().isoformat(),
        "minigan_version": minigan.__version__,
    }
    return model, meta


def save(model, meta, out_dir) -> Path:
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update(mu=model.mu, sigma=model.sigma)
    if meta["dataset"] == "mnist":  # which bundled digits the statistics come from
        arrays["held_out_index"] = held_out_digits(meta["seed"])
    return checkpoint.save(Path(out_dir) / f"judge_{meta['dataset']}.npz", arrays, meta)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge", choices=["all", *SETTINGS], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="override each judge's epochs")
    parser.add_argument("--backend", default="numba", choices=backend.names())
    parser.add_argument("--out", default=str(score.ASSETS), help="folder for judge_<name>.npz")
    args = parser.parse_args(argv)
    backend.use(args.backend)
    for name in SETTINGS if args.judge == "all" else [args.judge]:
        model, meta = train(name, args.seed, args.epochs)
        path = save(model, meta, args.out)
        print(
            f"wrote {path}: held-out accuracy {meta['accuracy']:.2%} on {meta['held_out']} "
            f"images, real-vs-real distance {meta['fd_real']:.3f}, {meta['train_seconds']:.0f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
