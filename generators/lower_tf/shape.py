"""TensorFlow lowerings of the shape group (torch semantics: negative axes normalised,
torch.tile's rank padding, roll over the flattened tensor, tril/triu diagonals)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from generators.lower_tf.table import lowers


def _ints(a: dict, prefix: str, n: int) -> list[int]:
    return [int(a[f"{prefix}{i}"]) for i in range(n)]


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@lowers("Reshape")
def _reshape(xs, a):
    sizes = _ints(a, "s", a["rank"])
    if a["infer_dim"] is not None:
        sizes[a["infer_dim"]] = -1
    return tf.reshape(xs[0], sizes)


@lowers("Transpose")
def _transpose(xs, a):
    r = len(xs[0].shape)
    return tf.transpose(xs[0], [_norm(p, r) for p in a["perm"]])


@lowers("Squeeze")
def _squeeze(xs, a):
    return tf.squeeze(xs[0], axis=list(a["dims"]))


@lowers("Unsqueeze")
def _unsqueeze(xs, a):
    return tf.expand_dims(xs[0], a["dim"])


@lowers("Expand")
def _expand(xs, a):
    return tf.broadcast_to(xs[0], _ints(a, "s", a["rank"]))


@lowers("Slice")
def _slice(xs, a):
    x = xs[0]
    idx = [slice(None)] * len(x.shape)
    for i, d in enumerate(a["dims"]):
        start = None if a["starts"][i] == "none" else int(a[f"start{d}"])
        end = None if a["ends"][i] == "none" else int(a[f"end{d}"])
        step = int(a[f"step{d}"]) if a["steps"][i] else None
        idx[d] = slice(start, end, step)
    return x[tuple(idx)]


@lowers("Concat")
def _concat(xs, a):
    return tf.concat(list(xs), axis=a["axis"])


@lowers("Split")
def _split(xs, a):
    x = xs[0]
    axis = _norm(a["axis"], len(x.shape))
    k = a["parts"]
    if a["mode"] == "sizes":
        sizes = _ints(a, "size", k)
    else:
        c = int(a["chunk"])
        sizes = [c] * (k - 1) + [int(x.shape[axis]) - (k - 1) * c]
    return tf.split(x, sizes, axis=axis)


@lowers("Flatten")
def _flatten(xs, a):
    x = xs[0]
    shape = [int(d) for d in x.shape]
    if not shape:
        return tf.reshape(x, [1])
    s, e = _norm(a["start_dim"], len(shape)), _norm(a["end_dim"], len(shape))
    return tf.reshape(x, shape[:s] + [int(np.prod(shape[s:e + 1]))] + shape[e + 1:])


@lowers("Tile")
def _tile(xs, a):
    x = xs[0]
    shape = [int(d) for d in x.shape]
    reps = _ints(a, "r", a["n_reps"])
    q = max(len(shape), len(reps))
    x = tf.reshape(x, [1] * (q - len(shape)) + shape)
    return tf.tile(x, [1] * (q - len(reps)) + reps)


@lowers("Flip")
def _flip(xs, a):
    r = len(xs[0].shape)
    if not a["dims"]:
        return tf.identity(xs[0])
    return tf.reverse(xs[0], [_norm(d, r) for d in a["dims"]])


@lowers("Roll")
def _roll(xs, a):
    x = xs[0]
    shifts = _ints(a, "sh", a["n_shifts"])
    if a["dims"] is None:
        flat = tf.roll(tf.reshape(x, [-1]), shifts[0], 0)
        return tf.reshape(flat, tf.shape(x))
    r = len(x.shape)
    return tf.roll(x, shifts, [_norm(d, r) for d in a["dims"]])


def _band(x, keep_lower: int, keep_upper: int):
    return tf.linalg.band_part(x, keep_lower, keep_upper)


def _mask(x, diagonal: int, lower: bool):
    n, m = int(x.shape[-2]), int(x.shape[-1])
    off = np.arange(m)[None, :] - np.arange(n)[:, None]  # j - i
    keep = off <= diagonal if lower else off >= diagonal
    return tf.where(tf.constant(keep), x, tf.zeros_like(x))


@lowers("Tril")
def _tril(xs, a):
    k = int(a["diagonal"])
    # band_part keeps j - i <= k with num_upper = k (k >= 0, at most the column count, TF's rule);
    # a negative k needs a mask.
    return _band(xs[0], -1, min(k, int(xs[0].shape[-1]))) if k >= 0 else _mask(xs[0], k, lower=True)


@lowers("Triu")
def _triu(xs, a):
    k = int(a["diagonal"])
    return _band(xs[0], min(-k, int(xs[0].shape[-2])), -1) if k <= 0 else _mask(xs[0], k, lower=False)
