"""TensorFlow lowerings of the element-wise group (torch semantics where they differ)."""

from __future__ import annotations

import math

import tensorflow as tf

from generators.lower_tf.table import LOWER, lowers


def const(v: float, like: tf.Tensor) -> tf.Tensor:
    """A constant in `like`'s dtype, built directly (tf.cast of a Python float goes through float32)."""
    return tf.constant(v, dtype=like.dtype)


def _relu6(x):
    return tf.nn.relu6(x)


_UNARY = {
    "Abs": tf.math.abs, "Neg": tf.math.negative, "Sign": tf.math.sign, "Exp": tf.math.exp,
    "Expm1": tf.math.expm1, "Log": tf.math.log, "Log1p": tf.math.log1p, "Sqrt": tf.math.sqrt,
    "Rsqrt": tf.math.rsqrt, "Reciprocal": tf.math.reciprocal, "Sin": tf.math.sin, "Cos": tf.math.cos,
    "Tanh": tf.math.tanh, "Atan": tf.math.atan, "Asin": tf.math.asin, "Acos": tf.math.acos,
    "Sinh": tf.math.sinh, "Cosh": tf.math.cosh, "Erf": tf.math.erf, "Floor": tf.math.floor,
    "Ceil": tf.math.ceil, "Round": tf.math.round, "Square": tf.math.square, "Relu": tf.nn.relu,
    "Relu6": _relu6, "Sigmoid": tf.math.sigmoid, "Selu": tf.nn.selu, "Softplus": tf.math.softplus,
    "Mish": lambda x: x * tf.math.tanh(tf.math.softplus(x)),
    "Hardswish": lambda x: x * _relu6(x + 3) / 6, "Hardsigmoid": lambda x: _relu6(x + 3) / 6,
    "Silu": tf.nn.silu, "Softsign": tf.nn.softsign, "Not": tf.math.logical_not,
}
_BINARY = {
    "Add": tf.math.add, "Sub": tf.math.subtract, "Mul": tf.math.multiply, "Div": tf.math.truediv,
    "Pow": tf.math.pow, "Maximum": tf.math.maximum, "Minimum": tf.math.minimum,
    "FloorDiv": tf.math.floordiv, "Mod": tf.math.floormod, "Equal": tf.math.equal,
    "NotEqual": tf.math.not_equal, "Greater": tf.math.greater, "GreaterEqual": tf.math.greater_equal,
    "Less": tf.math.less, "LessEqual": tf.math.less_equal, "And": tf.math.logical_and,
    "Or": tf.math.logical_or, "Xor": tf.math.logical_xor,
}
for _name, _fn in _UNARY.items():
    LOWER.register(_name)(lambda xs, a, fn=_fn: fn(xs[0]))
for _name, _fn in _BINARY.items():
    LOWER.register(_name)(lambda xs, a, fn=_fn: fn(xs[0], xs[1]))


@lowers("Gelu")
def _gelu(xs, a):
    x = xs[0]
    if x.dtype == tf.float64:  # tf.nn.gelu loses ~5e-9 relative in float64: build it in float64
        if a["approximate"] == "tanh":
            c = tf.constant(math.sqrt(2 / math.pi), tf.float64)
            return 0.5 * x * (1 + tf.math.tanh(c * (x + 0.044715 * x * x * x)))
        return 0.5 * x * (1 + tf.math.erf(x / tf.constant(math.sqrt(2.0), tf.float64)))
    return tf.nn.gelu(x, approximate=a["approximate"] == "tanh")


@lowers("LeakyRelu")
def _leaky(xs, a):
    x = xs[0]
    if x.dtype == tf.float64:  # tf's LeakyRelu keeps alpha as a float32 attribute
        return tf.where(x >= 0, x, x * tf.constant(a["negative_slope"], tf.float64))
    return tf.nn.leaky_relu(x, alpha=a["negative_slope"])


@lowers("Elu")
def _elu(xs, a):
    x = xs[0]
    return tf.where(x > 0, x, const(a["alpha"], x) * tf.math.expm1(x))


@lowers("Celu")
def _celu(xs, a):
    x, al = xs[0], const(a["alpha"], xs[0])
    return tf.nn.relu(x) + tf.minimum(tf.zeros_like(x), al * tf.math.expm1(x / al))


@lowers("Hardtanh")
def _hardtanh(xs, a):
    lo, hi = a["bounds"]
    return tf.clip_by_value(xs[0], const(lo, xs[0]), const(hi, xs[0]))


@lowers("PRelu")
def _prelu(xs, a):
    x, w = xs
    w = tf.reshape(w, [1, -1] + [1] * (len(x.shape) - 2))
    return tf.where(x >= 0, x, w * x)


@lowers("Clip")
def _clip(xs, a):
    x = xs[0]
    return tf.clip_by_value(x, const(a["min"], x), const(a["max"], x))


@lowers("Cast")
def _cast(xs, a):
    return tf.cast(xs[0], a["to"])


@lowers("Where")
def _where(xs, a):
    return tf.where(xs[0], xs[1], xs[2])
