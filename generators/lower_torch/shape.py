"""torch lowerings of the shape group: the natural torch API for each op (the system under test)."""

from __future__ import annotations

import torch

from generators.lower_torch.table import lowers


def _ints(a: dict, prefix: str, n: int) -> list[int]:
    return [int(a[f"{prefix}{i}"]) for i in range(n)]


@lowers("Reshape")
def _reshape(xs, a):
    sizes = _ints(a, "s", a["rank"])
    if a["infer_dim"] is not None:
        sizes[a["infer_dim"]] = -1
    return torch.reshape(xs[0], sizes)


@lowers("Transpose")
def _transpose(xs, a):
    return torch.permute(xs[0], a["perm"])


@lowers("Squeeze")
def _squeeze(xs, a):
    dims = a["dims"]
    return torch.squeeze(xs[0], tuple(dims) if a["as_tuple"] else dims[0])


@lowers("Unsqueeze")
def _unsqueeze(xs, a):
    return torch.unsqueeze(xs[0], a["dim"])


@lowers("Expand")
def _expand(xs, a):
    q, r = a["rank"], xs[0].dim()
    sizes = _ints(a, "s", q)
    for j, keep in enumerate(a["keep"]):
        if keep:
            sizes[q - r + j] = -1
    return xs[0].expand(sizes)


@lowers("Slice")
def _slice(xs, a):
    x = xs[0]
    idx = [slice(None)] * x.dim()
    for i, d in enumerate(a["dims"]):
        start = None if a["starts"][i] == "none" else int(a[f"start{d}"])
        end = None if a["ends"][i] == "none" else int(a[f"end{d}"])
        step = int(a[f"step{d}"]) if a["steps"][i] else None
        idx[d] = slice(start, end, step)
    if a["ellipsis"]:
        return x[(Ellipsis, *idx[a["dims"][0]:])]
    return x[tuple(idx)]


@lowers("Concat")
def _concat(xs, a):
    return torch.cat(list(xs), dim=a["axis"])


@lowers("Split")
def _split(xs, a):
    arg = _ints(a, "size", a["parts"]) if a["mode"] == "sizes" else int(a["chunk"])
    return list(torch.split(xs[0], arg, dim=a["axis"]))


@lowers("Flatten")
def _flatten(xs, a):
    return torch.flatten(xs[0], a["start_dim"], a["end_dim"])


@lowers("Tile")
def _tile(xs, a):
    return torch.tile(xs[0], tuple(_ints(a, "r", a["n_reps"])))


@lowers("Flip")
def _flip(xs, a):
    return torch.flip(xs[0], a["dims"])


@lowers("Roll")
def _roll(xs, a):
    shifts = _ints(a, "sh", a["n_shifts"])
    if a["dims"] is None:
        return torch.roll(xs[0], shifts[0] if a["as_int"] else shifts)
    if a["as_int"]:
        return torch.roll(xs[0], shifts[0], a["dims"][0])
    return torch.roll(xs[0], shifts, a["dims"])


@lowers("Tril")
def _tril(xs, a):
    return torch.tril(xs[0], int(a["diagonal"]))


@lowers("Triu")
def _triu(xs, a):
    return torch.triu(xs[0], int(a["diagonal"]))
