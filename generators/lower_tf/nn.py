"""TensorFlow lowerings of the nn group, computing torch's functions.

Where TF's op differs from torch (pad modes, resize coordinate rules, einsum broadcasting,
attention) the difference is emulated: shapes are static, so index and weight tables are
precomputed in numpy (vectorised, in torch's compute precision) and applied with TF ops.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from generators.lower_tf.table import lowers


def _compute_dtype(dt: tf.DType) -> tf.DType:
    return tf.float32 if dt == tf.float16 else dt


# -- Pad -----------------------------------------------------------------------------------------

def _gather_axis(x, idx: np.ndarray, axis: int):
    return tf.gather(x, tf.constant(idx, tf.int64), axis=axis)


@lowers("Pad")
def _pad(xs, a):
    x, k, mode = xs[0], a["k"], a["mode"]
    rank = len(x.shape)
    pads = {rank - 1 - i: (a[f"pad{2 * i}"], a[f"pad{2 * i + 1}"]) for i in range(k)}
    if mode == "constant":
        begin = [max(0, -pads.get(j, (0, 0))[0]) for j in range(rank)]
        size = [x.shape[j] - begin[j] - max(0, -pads.get(j, (0, 0))[1]) for j in range(rank)]
        x = tf.slice(x, begin, size)
        widths = [[max(0, p) for p in pads.get(j, (0, 0))] for j in range(rank)]
        return tf.pad(x, widths, mode="CONSTANT", constant_values=tf.cast(a["value"], x.dtype))
    if mode == "reflect":
        return tf.pad(x, [list(pads.get(j, (0, 0))) for j in range(rank)], mode="REFLECT")
    for j, (lo, hi) in pads.items():
        n = x.shape[j]
        idx = np.arange(-lo, n + hi)
        idx = np.clip(idx, 0, n - 1) if mode == "replicate" else np.mod(idx, n)
        x = _gather_axis(x, idx, j)
    return x


# -- Interpolate ---------------------------------------------------------------------------------

def _resize_table(mode: str, n_in: int, n_out: int, align, scale, opmath) -> np.ndarray:
    """Dense (n_out, n_in) table following torch's CPU kernels' index arithmetic."""
    dst = np.arange(n_out)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if mode in ("nearest", "nearest-exact"):
        f = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
        if mode == "nearest-exact":
            src = np.floor(((dst + 0.5) * np.float64(f)).astype(np.float32)).astype(np.int64)
        elif n_out == n_in:
            src = dst
        elif n_out == 2 * n_in:
            src = dst // 2
        else:
            src = np.floor(dst.astype(np.float32) * f).astype(np.int64)
        m[dst, np.minimum(src, n_in - 1)] = 1.0
        return m
    if mode == "area":
        lo = (dst * n_in) // n_out
        hi = ((dst + 1) * n_in + n_out - 1) // n_out
        cols = np.arange(n_in)
        inside = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
        return inside / (hi - lo)[:, None]
    t = opmath
    if align:
        r = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = r * dst.astype(t)
    else:
        r = t(1.0 / scale) if scale else t(n_in) / t(n_out)
        src = r * (dst.astype(t) + t(0.5)) - t(0.5)
    if mode == "bicubic":
        i0 = np.floor(src).astype(np.int64)
        x = (src - i0).astype(np.float64)
        a = -0.75
        w = [((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a,
             ((a + 2) * x - (a + 3)) * x * x + 1,
             ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1,
             ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a]
        for off in range(4):
            np.add.at(m, (dst, np.clip(i0 - 1 + off, 0, n_in - 1)), w[off])
        return m
    src = np.maximum(src, t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0, 0, 1).astype(np.float64)
    np.add.at(m, (dst, i0), 1 - lam)
    np.add.at(m, (dst, np.minimum(i0 + 1, n_in - 1)), lam)
    return m


def _aa_table(mode: str, n_in: int, n_out: int, align, scale) -> np.ndarray:
    """torch's antialias=True tables: a triangle (bilinear) or Keys A=-0.5 (bicubic) filter widened
    by the downscale factor, rows normalised to sum 1."""
    r = ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0) if align else (1.0 / scale if scale else n_in / n_out)
    half = (1.0 if mode == "bilinear" else 2.0) * max(r, 1.0)
    stretch = 1.0 / r if r >= 1.0 else 1.0
    center = r * (np.arange(n_out) + 0.5)
    lo = np.maximum((center - half + 0.5).astype(np.int64), 0)
    hi = np.minimum((center + half + 0.5).astype(np.int64), n_in)
    cols = np.arange(n_in)[None, :]
    x = np.abs((cols - center[:, None] + 0.5) * stretch)
    if mode == "bilinear":
        f = np.maximum(0.0, 1.0 - x)
    else:
        c = -0.5
        f = np.where(x < 1, ((c + 2) * x - (c + 3)) * x * x + 1,
                     np.where(x < 2, ((c * x - 5 * c) * x + 8 * c) * x - 4 * c, 0.0))
    f = np.where((cols >= lo[:, None]) & (cols < hi[:, None]), f, 0.0)
    total = f.sum(axis=1, keepdims=True)
    return np.divide(f, total, out=f.copy(), where=total != 0)


@lowers("Interpolate")
def _interpolate(xs, a):
    x = xs[0]
    cdt = _compute_dtype(x.dtype)
    opmath = np.float64 if cdt == tf.float64 else np.float32
    y = tf.cast(x, cdt)
    rank = len(x.shape)
    letters = "abcde"[:rank]
    for i in range(rank - 2):
        ax = 2 + i
        n_in = x.shape[ax]
        if a["scale"] is not None:
            p, q = a["scale"][i]
            n_out, scale = (n_in * p) // q, (None if a["recompute"] else p / q)
        else:
            n_out, scale = a[f"size{i}"], None
        if a["antialias"]:
            table = _aa_table(a["mode"], n_in, n_out, a["align_corners"], scale)
        else:
            table = _resize_table(a["mode"], n_in, n_out, a["align_corners"], scale, opmath)
        if a["mode"] in ("nearest", "nearest-exact"):
            y = _gather_axis(y, np.argmax(table, axis=1), ax)
            continue
        out_letters = letters[:ax] + "z" + letters[ax + 1:]
        y = tf.einsum(f"z{letters[ax]},{letters}->{out_letters}", tf.constant(table, cdt), y)
    return tf.cast(y, x.dtype)


# -- Linear / MatMul / Einsum --------------------------------------------------------------------

@lowers("Linear")
def _linear(xs, a):
    x, w = xs[0], xs[1]
    y = tf.tensordot(x, w, axes=[[len(x.shape) - 1], [1]])
    if a["bias"]:
        y = y + xs[2]
    return y


def bmm(x, y, transpose_b: bool = False):
    """Batched matmul with the batch dims broadcast explicitly first: TF 2.21's oneDNN
    BatchMatMulV2 reads garbage when it has to broadcast e.g. (2,1,12,12) @ (1,1,12,12)."""
    bx, by = list(x.shape[:-2]), list(y.shape[:-2])
    batch = list(np.broadcast_shapes(tuple(bx), tuple(by)))
    if bx != batch:
        x = tf.broadcast_to(x, batch + list(x.shape[-2:]))
    if by != batch:
        y = tf.broadcast_to(y, batch + list(y.shape[-2:]))
    return tf.linalg.matmul(x, y, transpose_b=transpose_b)


@lowers("MatMul")
def _matmul(xs, a):
    x, y = xs
    if len(x.shape) == 1 and len(y.shape) == 1:
        return tf.tensordot(x, y, axes=1)
    if len(x.shape) == 1:
        return tf.squeeze(bmm(x[None, :], y), axis=-2)
    if len(y.shape) == 1:
        return tf.squeeze(bmm(x, y[:, None]), axis=-1)
    return bmm(x, y)


@lowers("Einsum")
def _einsum(xs, a):
    eq = a["equation"]
    terms = eq.split("->")[0].split(",")
    axes_of = []
    size: dict[str, int] = {}
    for t, x in zip(terms, xs):
        head, _, tail = t.partition("...")
        r = len(x.shape)
        axes = [(c, j) for j, c in enumerate(head)] + [(c, r - len(tail) + j) for j, c in enumerate(tail)]
        axes_of.append(axes)
        for c, j in axes:
            size[c] = max(size.get(c, 1), x.shape[j])
    ops = []
    for x, axes in zip(xs, axes_of):
        # TF's einsum does not stretch size-1 letters the way torch does: tile them explicitly
        reps = [1] * len(x.shape)
        for c, j in axes:
            if x.shape[j] == 1 and size[c] > 1:
                reps[j] = size[c]
        ops.append(tf.tile(x, reps) if any(r > 1 for r in reps) else x)
    return tf.einsum(eq, *ops)


# -- Softmax / attention -------------------------------------------------------------------------

def _as_vector(fn, x, axis):
    if len(x.shape) == 0:
        return tf.reshape(fn(tf.reshape(x, [1]), axis=0), [])
    return fn(x, axis=axis)


@lowers("Softmax")
def _softmax(xs, a):
    return _as_vector(tf.nn.softmax, xs[0], a["axis"])


@lowers("LogSoftmax")
def _log_softmax(xs, a):
    return _as_vector(tf.nn.log_softmax, xs[0], a["axis"])


@lowers("ScaledDotProductAttention")
def _sdpa(xs, a):
    q, k, v = (tf.cast(t, _compute_dtype(t.dtype)) for t in xs[:3])
    if a["gqa"]:
        g = q.shape[-3] // k.shape[-3]
        k, v = tf.repeat(k, g, axis=-3), tf.repeat(v, g, axis=-3)
    e = q.shape[-1]
    scale = a["scale"] if a["scale"] is not None else 1.0 / float(np.sqrt(e))
    s = bmm(q, k, transpose_b=True) * tf.constant(scale, q.dtype)
    if a["is_causal"]:
        keep = np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool))
        s = tf.where(tf.constant(keep), s, tf.constant(-np.inf, s.dtype))
    if a["mask"] == "float":
        s = s + tf.cast(xs[3], s.dtype)
    return tf.cast(bmm(tf.nn.softmax(s, axis=-1), v), xs[0].dtype)
