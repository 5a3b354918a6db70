"""torch lowerings of the nn group: the natural torch API for each op (these are under test)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generators.lower_torch.table import lowers


@lowers("Pad")
def _pad(xs, a):
    pads = [a[f"pad{i}"] for i in range(2 * a["k"])]
    if a["mode"] == "constant":
        return F.pad(xs[0], pads, mode="constant", value=a["value"])
    return F.pad(xs[0], pads, mode=a["mode"])


@lowers("Interpolate")
def _interpolate(xs, a):
    x = xs[0]
    s = x.dim() - 2
    kw = {"mode": a["mode"]}
    if a["align_corners"] is not None:
        kw["align_corners"] = a["align_corners"]
    if a["antialias"]:
        kw["antialias"] = True
    if a["scale"] is not None:
        return F.interpolate(x, scale_factor=[p / q for p, q in a["scale"]],
                             recompute_scale_factor=a["recompute"], **kw)
    return F.interpolate(x, size=[a[f"size{i}"] for i in range(s)], **kw)


@lowers("Linear")
def _linear(xs, a):
    return F.linear(xs[0], xs[1], xs[2] if a["bias"] else None)


@lowers("MatMul")
def _matmul(xs, a):
    return torch.matmul(xs[0], xs[1])


@lowers("Einsum")
def _einsum(xs, a):
    return torch.einsum(a["equation"], *xs)


@lowers("Softmax")
def _softmax(xs, a):
    return F.softmax(xs[0], dim=a["axis"])


@lowers("LogSoftmax")
def _log_softmax(xs, a):
    return F.log_softmax(xs[0], dim=a["axis"])


@lowers("ScaledDotProductAttention")
def _sdpa(xs, a):
    q, k, v = xs[:3]
    mask = xs[3] if a["mask"] == "float" else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=a["is_causal"], scale=a["scale"],
                                          enable_gqa=a["gqa"])
