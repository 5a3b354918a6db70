"""numpy reference of the shape group: index arithmetic from the definitions, not the frameworks."""

from __future__ import annotations

import numpy as np

from generators.lower_numpy.table import lowers


def _ints(a: dict, prefix: str, n: int) -> list[int]:
    return [int(a[f"{prefix}{i}"]) for i in range(n)]


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@lowers("Reshape")
def _reshape(xs, a):
    return np.reshape(xs[0], _ints(a, "s", a["rank"]))


@lowers("Transpose")
def _transpose(xs, a):
    x = xs[0]
    return np.transpose(x, [_norm(p, x.ndim) for p in a["perm"]])


@lowers("Squeeze")
def _squeeze(xs, a):
    x = xs[0]
    gone = {_norm(d, x.ndim) for d in a["dims"]}
    return x.reshape([n for i, n in enumerate(x.shape) if i not in gone])


@lowers("Unsqueeze")
def _unsqueeze(xs, a):
    x = xs[0]
    d = a["dim"]
    p = d + x.ndim + 1 if d < 0 else d
    return x.reshape(x.shape[:p] + (1,) + x.shape[p:])


@lowers("Expand")
def _expand(xs, a):
    x = xs[0]
    sizes = _ints(a, "s", a["rank"])
    x = x.reshape((1,) * (len(sizes) - x.ndim) + x.shape)
    # Output element i reads input element i, or 0 along a stretched size-1 dim.
    idx = np.ix_(*[np.arange(s) if n == s else np.zeros(s, dtype=np.int64) for n, s in zip(x.shape, sizes)])
    return x[idx] if sizes else x.copy()


def _bound(v: int | None, n: int, default: int) -> int:
    if v is None:
        return default
    v = v + n if v < 0 else v
    return min(max(v, 0), n)


@lowers("Slice")
def _slice(xs, a):
    x = xs[0]
    for i, d in enumerate(a["dims"]):
        n = x.shape[d]
        start = _bound(None if a["starts"][i] == "none" else int(a[f"start{d}"]), n, 0)
        end = _bound(None if a["ends"][i] == "none" else int(a[f"end{d}"]), n, n)
        step = int(a[f"step{d}"]) if a["steps"][i] else 1
        x = np.take(x, np.arange(start, end, step, dtype=np.int64), axis=d)
    return x


@lowers("Concat")
def _concat(xs, a):
    return np.concatenate(xs, axis=_norm(a["axis"], xs[0].ndim))


@lowers("Split")
def _split(xs, a):
    x = xs[0]
    axis = _norm(a["axis"], x.ndim)
    n, k = x.shape[axis], a["parts"]
    if a["mode"] == "sizes":
        sizes = _ints(a, "size", k)
    else:
        c = int(a["chunk"])
        sizes = [c] * (k - 1) + [n - (k - 1) * c]
    starts = np.cumsum([0] + sizes)
    return [np.take(x, np.arange(starts[i], starts[i + 1]), axis=axis) for i in range(k)]


@lowers("Flatten")
def _flatten(xs, a):
    x = xs[0]
    if x.ndim == 0:
        return x.reshape(1)
    s, e = _norm(a["start_dim"], x.ndim), _norm(a["end_dim"], x.ndim)
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:]) if x.size else x


@lowers("Tile")
def _tile(xs, a):
    x = xs[0]
    reps = _ints(a, "r", a["n_reps"])
    q = max(x.ndim, len(reps))
    x = x.reshape((1,) * (q - x.ndim) + x.shape)
    reps = [1] * (q - len(reps)) + reps
    # Output index i along a dim of size n reads input index i mod n.
    return x[np.ix_(*[np.arange(n * t) % n for n, t in zip(x.shape, reps)])]


@lowers("Flip")
def _flip(xs, a):
    x = xs[0]
    for d in a["dims"]:
        d = _norm(d, x.ndim)
        x = np.take(x, np.arange(x.shape[d] - 1, -1, -1), axis=d)
    return x


@lowers("Roll")
def _roll(xs, a):
    x = xs[0]
    shifts = _ints(a, "sh", a["n_shifts"])
    if a["dims"] is None:
        flat = x.reshape(-1)
        n = flat.size
        return flat[(np.arange(n) - shifts[0]) % n].reshape(x.shape)
    for s, d in zip(shifts, a["dims"]):
        d = _norm(d, x.ndim)
        n = x.shape[d]
        # out[i] = in[(i - shift) mod n]
        x = np.take(x, (np.arange(n) - s) % n, axis=d)
    return x


def _triangle(x: np.ndarray, diagonal: int, lower: bool) -> np.ndarray:
    n, m = x.shape[-2:]
    off = np.arange(m)[None, :] - np.arange(n)[:, None]  # column minus row
    keep = off <= diagonal if lower else off >= diagonal
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


@lowers("Tril")
def _tril(xs, a):
    return _triangle(xs[0], int(a["diagonal"]), lower=True)


@lowers("Triu")
def _triu(xs, a):
    return _triangle(xs[0], int(a["diagonal"]), lower=False)
