"""torch lowerings of the norm group (torch.nn.functional, inference mode)."""

from __future__ import annotations

import torch.nn.functional as F

from generators.lower_torch.table import lowers


def _affine(params, a):
    """(weight, bias) from the trailing inputs, None where the node has none."""
    it = iter(params)
    w = next(it) if a["weight"] else None
    b = next(it) if a["bias"] else None
    return w, b


@lowers("BatchNorm")
def _batch_norm(xs, a):
    w, b = _affine(xs[3:], a)
    return F.batch_norm(xs[0], xs[1], xs[2], w, b, training=False, eps=a["eps"])


@lowers("LayerNorm")
def _layer_norm(xs, a):
    x = xs[0]
    w, b = _affine(xs[1:], a)
    return F.layer_norm(x, tuple(x.shape[x.dim() - a["num_dims"]:]), w, b, eps=a["eps"])


@lowers("RMSNorm")
def _rms_norm(xs, a):
    x = xs[0]
    w, _ = _affine(xs[1:], a)
    return F.rms_norm(x, tuple(x.shape[x.dim() - a["num_dims"]:]), w, eps=a["eps"])


@lowers("GroupNorm")
def _group_norm(xs, a):
    w, b = _affine(xs[1:], a)
    return F.group_norm(xs[0], a["num_groups"], w, b, eps=a["eps"])


@lowers("InstanceNorm")
def _instance_norm(xs, a):
    w, b = _affine(xs[1:], a)
    return F.instance_norm(xs[0], weight=w, bias=b, use_input_stats=True, eps=a["eps"])
