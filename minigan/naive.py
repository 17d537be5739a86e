"""The convolutions written as the plain loops of their definitions.

Slow and obviously right: the reference that the im2col versions in
``minigan.functional`` are tested against, and the place to start reading.
NumPy only (they index element by element).
"""

import numpy as np

from .functional import conv_transpose2d_output_size, pair


def conv2d(x, w, b=None, stride=1, padding=0):
    """x: (N, C, H, W), w: (F, C, kh, kw), b: (F,) or None -> (N, F, Ho, Wo)."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xpad = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype)
    xpad[:, :, ph : ph + h, pw : pw + wd] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, f, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xpad[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]  # (N, C, kh, kw)
            for k in range(f):
                out[:, k, i, j] = (patch * w[k]).sum(axis=(1, 2, 3))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0):
    """x: (N, Cin, H, W), w: (Cin, Cout, kh, kw), b: (Cout,) or None -> (N, Cout, Ho, Wo).

    Every input pixel (i, j) adds x[n, c, i, j] * w[c] into the output window that
    starts at (i*sh - ph, j*sw - pw); parts of the window outside the output are dropped.
    """
    (sh, sw), (ph, pw), (oph, opw) = pair(stride), pair(padding), pair(output_padding)
    n, cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    ho = conv_transpose2d_output_size(h, kh, sh, ph, oph)
    wo = conv_transpose2d_output_size(wd, kw, sw, pw, opw)
    out = np.zeros((n, cout, ho, wo), dtype=x.dtype)
    for i in range(h):
        for j in range(wd):
            for u in range(kh):
                for v in range(kw):
                    oi, oj = i * sh + u - ph, j * sw + v - pw
                    if 0 <= oi < ho and 0 <= oj < wo:
                        out[:, :, oi, oj] += x[:, :, i, j] @ w[:, :, u, v]
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out
