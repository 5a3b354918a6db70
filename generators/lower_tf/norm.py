"""TensorFlow lowerings of the norm group: moments + normalisation, laid out as torch's (N, C, *)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from generators.lower_tf.table import lowers


def _affine(params, a):
    it = iter(params)
    w = next(it) if a["weight"] else None
    b = next(it) if a["bias"] else None
    return w, b


def _channel(p, rank: int):
    """A (C,) parameter reshaped to broadcast against (N, C, *)."""
    return None if p is None else tf.reshape(p, [1, -1] + [1] * (rank - 2))


def _up(x):
    """float16 computes in float32, as torch's CPU norm kernels do (one rounding at the end)."""
    return None if x is None else tf.cast(x, tf.float32) if x.dtype == tf.float16 else x


def _scale_shift(y, w, b, dtype):
    if w is not None:
        y = y * _up(w)
    if b is not None:
        y = y + _up(b)
    return tf.cast(y, dtype)


def _normalize(x, axes, eps):
    """(x - mean) / sqrt(biased var + eps) over `axes`, in the compute dtype of _up."""
    x32 = _up(x)
    mean, var = tf.nn.moments(x32, axes=axes, keepdims=True)
    return (x32 - mean) * tf.math.rsqrt(var + tf.constant(eps, x32.dtype))


@lowers("BatchNorm")
def _batch_norm(xs, a):
    x, r = xs[0], len(xs[0].shape)
    w, b = _affine(xs[3:], a)
    return tf.nn.batch_normalization(x, _channel(xs[1], r), _channel(xs[2], r), _channel(b, r),
                                     _channel(w, r), a["eps"])


@lowers("LayerNorm")
def _layer_norm(xs, a):
    x, r = xs[0], len(xs[0].shape)
    w, b = _affine(xs[1:], a)
    return _scale_shift(_normalize(x, list(range(r - a["num_dims"], r)), a["eps"]), w, b, x.dtype)


@lowers("RMSNorm")
def _rms_norm(xs, a):
    x, r = xs[0], len(xs[0].shape)
    w, _ = _affine(xs[1:], a)
    eps = a["eps"] if a["eps"] is not None else float(np.finfo(x.dtype.as_numpy_dtype).eps)
    x32 = _up(x)
    ms = tf.reduce_mean(tf.square(x32), axis=list(range(r - a["num_dims"], r)), keepdims=True)
    return _scale_shift(x32 * tf.math.rsqrt(ms + tf.constant(eps, x32.dtype)), w, None, x.dtype)


@lowers("GroupNorm")
def _group_norm(xs, a):
    x = xs[0]
    shape, r, g = list(x.shape), len(x.shape), a["num_groups"]
    w, b = _affine(xs[1:], a)
    grouped = tf.reshape(x, [shape[0], g, shape[1] // g] + shape[2:])
    y = tf.reshape(_normalize(grouped, list(range(2, r + 1)), a["eps"]), shape)
    return _scale_shift(y, _channel(w, r), _channel(b, r), x.dtype)


@lowers("InstanceNorm")
def _instance_norm(xs, a):
    x, r = xs[0], len(xs[0].shape)
    w, b = _affine(xs[1:], a)
    return _scale_shift(_normalize(x, list(range(2, r)), a["eps"]), _channel(w, r), _channel(b, r), x.dtype)
