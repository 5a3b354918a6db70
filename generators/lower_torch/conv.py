"""torch lowerings of the conv group: the natural torch.nn.functional calls."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from generators.lower_torch.table import lowers


def _dims(a: dict[str, Any], key: str) -> Any:
    """Per-dimension attribute as a tuple, or a scalar when `uniform` (torch's int-argument path)."""
    vals = tuple(int(a[f"{key}{i}"]) for i in range(a["rank"]))
    return vals[0] if a.get("uniform") else vals


def _bias(xs: list[Any]) -> Any:
    return xs[2] if len(xs) > 2 else None


@lowers("Conv")
def _conv(xs, a):
    x, w, r = xs[0], xs[1], a["rank"]
    fn = getattr(F, f"conv{r}d")
    stride, dil, groups = _dims(a, "stride"), _dims(a, "dilation"), int(a["groups"])
    if a["padding"] == "same":
        return fn(x, w, _bias(xs), stride, "same", dil, groups)
    pad = _dims(a, "pad")
    if a["padding_mode"] != "zeros":
        # What nn.ConvNd does for non-zero padding modes: F.pad, then an unpadded conv.
        pads = [int(a[f"pad{i}"]) for i in reversed(range(r)) for _ in range(2)]
        x = F.pad(x, pads, mode=a["padding_mode"])
        pad = 0
    return fn(x, w, _bias(xs), stride, pad, dil, groups)


@lowers("ConvTranspose")
def _conv_t(xs, a):
    fn = getattr(F, f"conv_transpose{a['rank']}d")
    return fn(xs[0], xs[1], _bias(xs), _dims(a, "stride"), _dims(a, "pad"), _dims(a, "output_padding"),
              int(a["groups"]), _dims(a, "dilation"))


@lowers("MaxPool")
def _max_pool(xs, a):
    fn = getattr(F, f"max_pool{a['rank']}d")
    return fn(xs[0], _dims(a, "kernel"), _dims(a, "stride"), _dims(a, "pad"), _dims(a, "dilation"),
              ceil_mode=bool(a["ceil_mode"]))


@lowers("AvgPool")
def _avg_pool(xs, a):
    fn = getattr(F, f"avg_pool{a['rank']}d")
    args = (xs[0], _dims(a, "kernel"), _dims(a, "stride"), _dims(a, "pad"), bool(a["ceil_mode"]),
            bool(a["count_include_pad"]))
    if a.get("divisor_override") is not None:
        return fn(*args, divisor_override=int(a["divisor_override"]))
    return fn(*args)


@lowers("AdaptiveAvgPool")
def _adaptive_avg(xs, a):
    return getattr(F, f"adaptive_avg_pool{a['rank']}d")(xs[0], _dims(a, "out"))


@lowers("AdaptiveMaxPool")
def _adaptive_max(xs, a):
    return getattr(F, f"adaptive_max_pool{a['rank']}d")(xs[0], _dims(a, "out"))
