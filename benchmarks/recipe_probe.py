"""Issue 22's recipe probe, in PyTorch (CPU): the 28x28 DCGAN on the 5,000 bundled
digits, with levers (hinge loss, spectral norm, minibatch std, DiffAugment, widths,
learning rates, the paper's 5x5 kernels, a deeper G/D), scored by minigan's judge: the
legible share (top class probability >= 0.9), the Fréchet distance and the class shares,
of G and of two weight averages. A scratch tool for choosing what to build in minigan;
results go to /tmp/probe/out/<tag>.json.

    python benchmarks/recipe_probe.py --tag base --score_at 975
    python benchmarks/recipe_probe.py --tag hinge_sn --loss hinge --sn
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from minigan import data, score

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=1950)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--lr_g", type=float, default=2e-4)
p.add_argument("--lr_d", type=float, default=2e-4)
p.add_argument("--beta1", type=float, default=0.5)
p.add_argument("--beta2", type=float, default=0.999)
p.add_argument("--ngf", type=int, default=32)
p.add_argument("--ndf", type=int, default=32)
p.add_argument("--nz", type=int, default=100)
p.add_argument("--loss", default="bce")  # bce | hinge
p.add_argument("--sn", action="store_true")
p.add_argument("--d_bn", type=int, default=1)
p.add_argument("--mbstd", action="store_true")
p.add_argument("--aug", default="")  # "translation,cutout"
p.add_argument("--arch", default="pt")  # pt | k5 | deep (extra layers) | deepg | deepd
p.add_argument("--dropout", type=float, default=0.0)
p.add_argument("--smooth", type=float, default=0.0)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--score_at", default="")
p.add_argument("--tag", default="")
p.add_argument("--d14", type=int, default=0)  # extra 3x3 stride-1 conv layers in D at 14x14
p.add_argument("--d7", type=int, default=0)  # ... and at 7x7
p.add_argument("--info", type=int, default=0)  # InfoGAN: a K-way categorical code in z, Q head on D
p.add_argument("--info_lambda", type=float, default=1.0)
p.add_argument("--n_score", type=int, default=10000)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

imgs = torch.from_numpy(data.load_bundled().astype(np.float32) / 127.5 - 1)


def SN(m):
    return tnn.utils.spectral_norm(m) if args.sn else m


class MBStd(tnn.Module):
    def forward(self, x):
        s = x.std(0, unbiased=False).mean()
        return torch.cat([x, s.expand(x.shape[0], 1, *x.shape[2:])], 1)


def G_net():
    g = args.ngf
    if args.arch in ("pt", "deepd"):
        return tnn.Sequential(
            tnn.ConvTranspose2d(args.nz, 4 * g, 7, 1, 0, bias=False),
            tnn.BatchNorm2d(4 * g),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(4 * g, 2 * g, 4, 2, 1, bias=False),
            tnn.BatchNorm2d(2 * g),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(2 * g, 1, 4, 2, 1, bias=False),
            tnn.Tanh(),
        )
    if args.arch in ("deep", "deepg"):
        return tnn.Sequential(
            tnn.ConvTranspose2d(args.nz, 4 * g, 7, 1, 0, bias=False),
            tnn.BatchNorm2d(4 * g),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(4 * g, 2 * g, 4, 2, 1, bias=False),
            tnn.BatchNorm2d(2 * g),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(2 * g, g, 4, 2, 1, bias=False),
            tnn.BatchNorm2d(g),
            tnn.ReLU(True),
            tnn.Conv2d(g, 1, 3, 1, 1, bias=False),
            tnn.Tanh(),
        )
    if args.arch == "k5":  # the paper's code: 5x5 kernels at stride 2
        return tnn.Sequential(
            tnn.ConvTranspose2d(args.nz, 4 * g, 7, 1, 0, bias=False),
            tnn.BatchNorm2d(4 * g),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(4 * g, 2 * g, 5, 2, 2, output_padding=1, bias=False),
            tnn.BatchNorm2d(2 * g),
            tnn.ReLU(True),
            tnn.ConvTranspose2d(2 * g, 1, 5, 2, 2, output_padding=1, bias=False),
            tnn.Tanh(),
        )


def D_net():
    d = args.ndf
    bn = (lambda c: tnn.BatchNorm2d(c)) if args.d_bn else (lambda c: tnn.Identity())
    drop = (lambda: tnn.Dropout2d(args.dropout)) if args.dropout else (lambda: tnn.Identity())
    k, pad = (5, 2) if args.arch == "k5" else (4, 1)
    layers = [
        SN(tnn.Conv2d(1, 2 * d, k, 2, pad, bias=not args.d_bn or True)),
        tnn.LeakyReLU(0.2),
        drop(),
    ]
    for _ in range(args.d14):
        layers += [SN(tnn.Conv2d(2 * d, 2 * d, 3, 1, 1, bias=False)), bn(2 * d), tnn.LeakyReLU(0.2)]
    layers += [
        SN(tnn.Conv2d(2 * d, 4 * d, k, 2, pad, bias=False)),
        bn(4 * d),
        tnn.LeakyReLU(0.2),
        drop(),
    ]
    for _ in range(args.d7 + (args.arch in ("deep", "deepd"))):
        layers += [SN(tnn.Conv2d(4 * d, 4 * d, 3, 1, 1, bias=False)), bn(4 * d), tnn.LeakyReLU(0.2)]
    if args.mbstd:
        layers += [MBStd()]
    layers += [
        SN(tnn.Conv2d(4 * d + (1 if args.mbstd else 0), 1 + args.info, 7, 1, 0, bias=False)),
        tnn.Flatten(),
    ]
    return tnn.Sequential(*layers)


def init(m):
    if isinstance(m, (tnn.Conv2d, tnn.ConvTranspose2d)):
        w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
        tnn.init.normal_(w, 0, 0.02)
    elif isinstance(m, tnn.BatchNorm2d):
        tnn.init.normal_(m.weight, 1, 0.02)
        tnn.init.zeros_(m.bias)


G, D = G_net(), D_net()
G.apply(init)
D.apply(init)
oG = torch.optim.Adam(G.parameters(), args.lr_g, betas=(args.beta1, args.beta2))
oD = torch.optim.Adam(D.parameters(), args.lr_d, betas=(args.beta1, args.beta2))
emas = {d: copy.deepcopy(G) for d in (0.99, 0.999)}
for e in emas.values():
    e.requires_grad_(False)


def noise(n, generator=None):
    z = torch.randn(n, args.nz, 1, 1, generator=generator)
    if not args.info:
        return z, None
    c = torch.randint(0, args.info, (n,), generator=generator)
    z[:, -args.info :] = Fn.one_hot(c, args.info).float()[:, :, None, None]
    return z, c


def augment(x):
    if not args.aug:
        return x
    n = x.shape[0]
    if "translation" in args.aug:  # DiffAugment: shift up to 1/8 of the image, zero pad
        s = 4 if "t4" in args.aug else 3
        sx = torch.randint(-s, s + 1, (n,))
        sy = torch.randint(-s, s + 1, (n,))
        xp = Fn.pad(x + 1, (s, s, s, s)) - 1  # pad with background (-1)
        idx_y = torch.arange(28)[None, :] + s + sy[:, None]  # (n, 28)
        idx_x = torch.arange(28)[None, :] + s + sx[:, None]
        x = xp[torch.arange(n)[:, None, None], 0, idx_y[:, :, None], idx_x[:, None, :]][:, None]
    if "cutout" in args.aug:
        c = 14 if "c14" in args.aug else 8
        cy = torch.randint(0, 28 + (1 - c % 2), (n,))
        cx = torch.randint(0, 28 + (1 - c % 2), (n,))
        gy = torch.arange(28)[None, :, None] - cy[:, None, None] + c // 2
        gx = torch.arange(28)[None, None, :] - cx[:, None, None] + c // 2
        mask = ~((gy >= 0) & (gy < c) & (gx >= 0) & (gx < c))
        x = torch.where(mask[:, None], x, torch.full_like(x, -1.0))
    return x


def d_loss(lr, lf):
    if args.loss == "hinge":
        return Fn.relu(1 - lr).mean() + Fn.relu(1 + lf).mean()
    t = torch.full_like(lr, 1 - args.smooth)
    return Fn.binary_cross_entropy_with_logits(lr, t) + Fn.binary_cross_entropy_with_logits(
        lf, torch.zeros_like(lf)
    )


def g_loss(lf):
    if args.loss == "hinge":
        return -lf.mean()
    return Fn.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))


judge = score.judge("mnist5k")


def evaluate(gen, label):
    gen.eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z, _ = noise(args.n_score, g)
        x = torch.cat([gen(z[i : i + 1000]) for i in range(0, args.n_score, 1000)]).numpy()
    gen.train()
    feats, logits = score.features_and_logits(judge, x)
    pr = score.softmax(logits)
    legible = float((pr.max(1) >= 0.9).mean())
    share = np.bincount(pr.argmax(1), minlength=10) / len(x)
    fd = score.frechet_distance(*score.statistics(feats), judge.mu, judge.sigma)
    return dict(
        which=label,
        legible=round(legible, 4),
        fd=round(fd, 3),
        min_share=round(float(share.min()), 4),
        max_share=round(float(share.max()), 4),
    ), x[:64]


def recompute_bn(gen):  # EMA copies: recompute BN running stats from noise
    for m in gen.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    gen.train()
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _ in range(16):
            gen(noise(128, g)[0])


score_at = {int(s) for s in args.score_at.split(",") if s} | {args.steps}
rng = np.random.default_rng(args.seed)
step, t0, results = 0, time.time(), []
train_time = 0.0
while step < args.steps:
    perm = rng.permutation(len(imgs))
    for i in range(len(imgs) // args.batch):
        if step >= args.steps:
            break
        ts = time.time()
        real = imgs[perm[i * args.batch : (i + 1) * args.batch]]
        z, c = noise(args.batch)
        fake = G(z)
        oD.zero_grad()
        lr_ = D(augment(real))[:, :1]
        of = D(augment(fake.detach()))
        ld = d_loss(lr_, of[:, :1])
        if args.info:
            ld = ld + args.info_lambda * Fn.cross_entropy(of[:, 1:], c)
        ld.backward()
        oD.step()
        oG.zero_grad()
        og = D(augment(fake))
        lg = g_loss(og[:, :1])
        if args.info:
            lg = lg + args.info_lambda * Fn.cross_entropy(og[:, 1:], c)
        lg.backward()
        oG.step()
        with torch.no_grad():
            for d, e in emas.items():
                dt = min(d, (1 + step) / (10 + step))
                for pe, pg in zip(e.parameters(), G.parameters()):
                    pe.mul_(dt).add_(pg, alpha=1 - dt)
        step += 1
        train_time += time.time() - ts
        if step in score_at:
            r, grid = evaluate(G, "G")
            r["step"] = step
            results.append(r)
            for d, e in emas.items():
                recompute_bn(e)
                re, _ = evaluate(e, f"ema{d}")
                re["step"] = step
                results.append(re)
            print(
                json.dumps(
                    {
                        "tag": args.tag,
                        "step": step,
                        "train_s": round(train_time),
                        "res": results[-3:],
                    }
                ),
                flush=True,
            )
os.makedirs("/tmp/probe/out", exist_ok=True)
with open(f"/tmp/probe/out/{args.tag or 'run'}.json", "w") as f:
    json.dump(dict(args=vars(args), results=results, train_s=train_time), f)
np.save(f"/tmp/probe/out/{args.tag or 'run'}_grid.npy", grid)
