"""torch lowerings of the index group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generators.lower_torch.table import lowers


@lowers("Gather")
def _gather(xs, a):
    # Real advanced indexing, so negative indices reach torch (index_select would reject them).
    x, idx = xs
    axis = a["axis"]
    if axis < 0:
        return x[(Ellipsis, idx) + (slice(None),) * (-axis - 1)]
    return x[(slice(None),) * axis + (idx,)]


@lowers("GatherElements")
def _gather_elements(xs, a):
    return torch.gather(xs[0], a["dim"], xs[1])


@lowers("IndexSelect")
def _index_select(xs, a):
    return torch.index_select(xs[0], a["dim"], xs[1])


@lowers("Embedding")
def _embedding(xs, a):
    return F.embedding(xs[1], xs[0])


@lowers("OneHot")
def _one_hot(xs, a):
    return F.one_hot(xs[0], int(a["num_classes"]))
