"""TensorFlow lowerings of the conv group, computing torch's functions.

TF works channels-last, so every op transposes NC* -> N*C and back. Padding is
explicit (tf.pad, or an index gather for reflect/replicate/circular) before a
VALID op. Where TF CPU lacks a kernel (grouped 3-D conv, dilated conv-transpose,
stride with dilation, 3-D pools in float16/float64, integer 3-D max pool,
dilated pools) the lowering composes the same function from supported ops:
per-group convs, a zero-dilated filter, strided slices of a stride-1 result,
or a max/sum over kernel-offset slices. Shapes are static, so window bounds and
divisors are computed in numpy at trace time.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import tensorflow as tf

from generators.lower_tf.table import lowers


def _vals(a: dict[str, Any], key: str) -> list[int]:
    return [int(a[f"{key}{i}"]) for i in range(a["rank"])]


def _nhwc(x: tf.Tensor) -> tf.Tensor:
    r = len(x.shape)
    return tf.transpose(x, [0] + list(range(2, r)) + [1])


def _nchw(x: tf.Tensor) -> tf.Tensor:
    r = len(x.shape)
    return tf.transpose(x, [0, r - 1] + list(range(1, r - 1)))


def _pad_index(size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Source index of each padded position for torch's reflect / replicate / circular padding."""
    j = np.arange(-lo, size + hi)
    if mode == "reflect":
        j = np.abs(j)
        return np.where(j >= size, 2 * (size - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    return np.mod(j, size)


def _pad(x: tf.Tensor, pads: list[tuple[int, int]], mode: str = "zeros", value: Any = 0) -> tf.Tensor:
    """Pad the spatial axes of an N*C tensor; negative `hi` crops."""
    crop = tuple(slice(0, x.shape[1 + i] + lo + hi) if hi < 0 else slice(None) for i, (lo, hi) in enumerate(pads))
    pads = [(lo, max(hi, 0)) for lo, hi in pads]
    if mode == "zeros":
        x = tf.pad(x, [[0, 0]] + [list(p) for p in pads] + [[0, 0]], constant_values=value)
    else:
        for i, (lo, hi) in enumerate(pads):
            if lo or hi:
                x = tf.gather(x, _pad_index(x.shape[1 + i], lo, hi, mode), axis=1 + i)
    return x[(slice(None),) + crop]


def _dilate(t: tf.Tensor, axis: int, d: int) -> tf.Tensor:
    """Insert d-1 zeros between the entries of `t` along `axis` (k -> d*(k-1)+1)."""
    if d == 1:
        return t
    k = t.shape[axis]
    z = tf.zeros_like(t)
    t = tf.stack([t] + [z] * (d - 1), axis=axis + 1)
    shape = list(t.shape[:axis]) + [k * d] + list(t.shape[axis + 2:])
    t = tf.reshape(t, shape)
    return t[(slice(None),) * axis + (slice(0, d * (k - 1) + 1),)]


def _bias(y: tf.Tensor, xs: list[tf.Tensor]) -> tf.Tensor:
    """Add the bias to a channels-last result."""
    return y + xs[2] if len(xs) > 2 else y


def _conv_nhwc(x: tf.Tensor, f: tf.Tensor, strides: list[int], dils: list[int], groups: int) -> tf.Tensor:
    """VALID grouped conv, x (N, *L, C_in), f (*k, C_in/g, C_out)."""
    r = len(strides)
    if r == 3 and groups > 1:  # TF CPU has no grouped Conv3D: one conv per group
        xg = tf.split(x, groups, axis=-1)
        fg = tf.split(f, groups, axis=-1)
        return tf.concat([_conv_nhwc(a, b, strides, dils, 1) for a, b in zip(xg, fg, strict=True)], axis=-1)
    if max(dils) > 1 and max(strides) > 1:  # tf.nn.convolution refuses both: stride-1 result, then subsample
        y = tf.nn.convolution(x, f, padding="VALID", dilations=dils)
        return y[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    return tf.nn.convolution(x, f, strides=strides, padding="VALID", dilations=dils)


@lowers("Conv")
def _conv(xs, a):
    x, w, r = _nhwc(xs[0]), xs[1], a["rank"]
    ks, dils = list(w.shape[2:]), _vals(a, "dilation")
    if a["padding"] == "same":
        pads = [(dils[i] * (ks[i] - 1) // 2, dils[i] * (ks[i] - 1) - dils[i] * (ks[i] - 1) // 2) for i in range(r)]
    else:
        pads = [(p, p) for p in _vals(a, "pad")]
    x = _pad(x, pads, a["padding_mode"])
    f = tf.transpose(w, list(range(2, r + 2)) + [1, 0])
    y = _conv_nhwc(x, f, _vals(a, "stride"), dils, int(a["groups"]))
    return _nchw(_bias(y, xs))


@lowers("ConvTranspose")
def _conv_t(xs, a):
    x, w, r, g = _nhwc(xs[0]), xs[1], a["rank"], int(a["groups"])
    strides, pads, dils, ops = _vals(a, "stride"), _vals(a, "pad"), _vals(a, "dilation"), _vals(a, "output_padding")
    n, ins, opg = x.shape[0], list(x.shape[1:-1]), w.shape[1]
    # TF filter (*k, C_out/g, C_in/g); TF CPU has no dilated conv-transpose, so dilate the filter with zeros.
    f = tf.transpose(w, list(range(2, r + 2)) + [1, 0])
    for i, d in enumerate(dils):
        f = _dilate(f, i, d)
    full = [(ins[i] - 1) * strides[i] + f.shape[i] for i in range(r)]
    ys = [tf.nn.conv_transpose(xg, fg, [n] + full + [opg], strides, padding="VALID")
          for xg, fg in zip(tf.split(x, g, axis=-1), tf.split(f, g, axis=-1), strict=True)]
    y = tf.concat(ys, axis=-1) if g > 1 else ys[0]
    # torch: drop `pad` on both sides, then output_padding more on the right (zeros where nothing lands).
    y = _pad(y, [(0, ops[i] - pads[i]) for i in range(r)])
    y = y[(slice(None),) + tuple(slice(pads[i], None) for i in range(r))]
    return _nchw(_bias(y, xs))


def _window_count(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    o = -(-span // s) + 1
    return o - 1 if (o - 1) * s >= size + p else o


def _pool(x: tf.Tensor, a: dict[str, Any], kind: str, value: Any) -> tuple[tf.Tensor, list[int]]:
    """Pad (with `value`) to exactly the extent the windows read, then pool VALID. Returns (y, out sizes)."""
    ks, ss, ps = _vals(a, "kernel"), _vals(a, "stride"), _vals(a, "pad")
    ds = _vals(a, "dilation") if kind == "MAX" else [1] * len(ks)
    sizes = list(x.shape[1:-1])
    outs = [_window_count(L, k, s, p, d, bool(a["ceil_mode"]))
            for L, k, s, p, d in zip(sizes, ks, ss, ps, ds, strict=True)]
    need = [(o - 1) * s + d * (k - 1) + 1 for o, k, s, d in zip(outs, ks, ss, ds, strict=True)]
    x = _pad(x, [(p, n - L - p) for p, n, L in zip(ps, need, sizes, strict=True)], value=value)
    r = len(ks)
    native = max(ds) == 1 and (r < 3 or x.dtype == tf.float32) and (kind == "AVG" or x.dtype.is_floating or r == 2)
    if native:
        fn = tf.nn.max_pool if kind == "MAX" else tf.nn.avg_pool
        return fn(x, ks, ss, "VALID"), outs
    y = None
    for t in itertools.product(*(range(k) for k in ks)):
        sl = tuple(slice(t[i] * ds[i], t[i] * ds[i] + (outs[i] - 1) * ss[i] + 1, ss[i]) for i in range(r))
        v = x[(slice(None),) + sl]
        y = v if y is None else (tf.maximum(y, v) if kind == "MAX" else y + v)
    return (y if kind == "MAX" else y / tf.cast(int(np.prod(ks)), y.dtype)), outs


@lowers("MaxPool")
def _max_pool(xs, a):
    x = _nhwc(xs[0])
    low = -np.inf if x.dtype.is_floating else x.dtype.min
    return _nchw(_pool(x, a, "MAX", tf.constant(low, x.dtype))[0])


@lowers("AvgPool")
def _avg_pool(xs, a):
    x = _nhwc(xs[0])
    y, outs = _pool(x, a, "AVG", tf.constant(0, x.dtype))
    ks, ss, ps = _vals(a, "kernel"), _vals(a, "stride"), _vals(a, "pad")
    # The pool divided by prod(k); rescale to torch's divisor per output position.
    div = np.ones(())
    for L, k, s, p, o in zip(x.shape[1:-1], ks, ss, ps, outs, strict=True):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, L + p)
        if not a["count_include_pad"]:
            start, end = np.maximum(start, 0), np.minimum(end, L)
        div = np.multiply.outer(div, (end - start).astype(np.float64))
    if a.get("divisor_override") is not None:
        div = np.full(div.shape, float(a["divisor_override"]))
    scale = float(np.prod(ks)) / div
    if np.all(scale == 1.0):
        return _nchw(y)
    return _nchw(y * tf.constant(scale[None, ..., None], y.dtype))


def _adaptive(x: tf.Tensor, a: dict[str, Any], kind: str) -> tf.Tensor:
    """Regular windows use TF's pool op when it has the kernel; otherwise reduce axis by axis."""
    outs, sizes, r = _vals(a, "out"), list(x.shape[1:-1]), a["rank"]
    if all(L % o == 0 for L, o in zip(sizes, outs, strict=True)) and (r < 3 or x.dtype == tf.float32):
        ks = [L // o for L, o in zip(sizes, outs, strict=True)]
        return (tf.nn.max_pool if kind == "MAX" else tf.nn.avg_pool)(x, ks, ks, "VALID")
    red = tf.reduce_max if kind == "MAX" else tf.reduce_mean
    for i, (L, n) in enumerate(zip(sizes, outs, strict=True)):
        parts = []
        for j in range(n):
            lo, hi = (j * L) // n, -(-((j + 1) * L) // n)
            parts.append(red(x[(slice(None),) * (1 + i) + (slice(lo, hi),)], axis=1 + i, keepdims=True))
        x = tf.concat(parts, axis=1 + i)
    return x


@lowers("AdaptiveAvgPool")
def _adaptive_avg(xs, a):
    return _nchw(_adaptive(_nhwc(xs[0]), a, "AVG"))


@lowers("AdaptiveMaxPool")
def _adaptive_max(xs, a):
    return _nchw(_adaptive(_nhwc(xs[0]), a, "MAX"))
