"""numpy reference of the element-wise group: written from the definitions, not the frameworks."""

from __future__ import annotations

import math

import numpy as np

from generators.lower_numpy.table import LOWER, lowers

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf(x.astype(np.float64)), dtype=np.float64).astype(x.dtype)


def _same(fn):
    """Compute in float64 (or as-is for ints/bools) and return in the input dtype."""
    def run(x):
        if x.dtype.kind == "f":
            return np.asarray(fn(x.astype(np.float64))).astype(x.dtype)
        return np.asarray(fn(x)).astype(x.dtype)
    return run


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _relu6(x):
    return np.clip(x, 0, 6)


def _gelu_exact(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


_UNARY = {
    "Abs": np.abs, "Neg": np.negative, "Sign": np.sign, "Exp": np.exp, "Expm1": np.expm1,
    "Log": np.log, "Log1p": np.log1p, "Sqrt": np.sqrt, "Rsqrt": lambda x: 1.0 / np.sqrt(x),
    "Reciprocal": lambda x: 1.0 / x, "Sin": np.sin, "Cos": np.cos, "Tanh": np.tanh,
    "Atan": np.arctan, "Asin": np.arcsin, "Acos": np.arccos, "Sinh": np.sinh, "Cosh": np.cosh,
    "Erf": erf, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round, "Square": np.square,
    "Relu": lambda x: np.maximum(x, 0), "Relu6": _relu6, "Sigmoid": _sigmoid,
    "Selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "Softplus": _softplus, "Mish": lambda x: x * np.tanh(_softplus(x)),
    "Hardswish": lambda x: x * _relu6(x + 3) / 6, "Hardsigmoid": lambda x: _relu6(x + 3) / 6,
    "Silu": lambda x: x * _sigmoid(x), "Softsign": lambda x: x / (1 + np.abs(x)),
    "Not": np.logical_not,
}
_BINARY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.true_divide, "Pow": np.power,
    "Maximum": np.maximum, "Minimum": np.minimum, "FloorDiv": np.floor_divide, "Mod": np.mod,
    "Equal": np.equal, "NotEqual": np.not_equal, "Greater": np.greater,
    "GreaterEqual": np.greater_equal, "Less": np.less, "LessEqual": np.less_equal,
    "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}
for _name, _fn in _UNARY.items():
    _wrapped = _same(_fn)
    LOWER.register(_name)(lambda xs, a, fn=_wrapped: fn(xs[0]))
for _name, _fn in _BINARY.items():
    LOWER.register(_name)(lambda xs, a, fn=_fn: np.asarray(fn(xs[0], xs[1])))


@lowers("Gelu")
def _gelu(xs, a):
    x = xs[0].astype(np.float64)
    if a["approximate"] == "tanh":
        y = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    else:
        y = _gelu_exact(x)
    return y.astype(xs[0].dtype)


@lowers("LeakyRelu")
def _leaky(xs, a):
    x = xs[0]
    return np.where(x >= 0, x, x * a["negative_slope"]).astype(x.dtype)


@lowers("Elu")
def _elu(xs, a):
    x = xs[0].astype(np.float64)
    return np.where(x > 0, x, a["alpha"] * np.expm1(x)).astype(xs[0].dtype)


@lowers("Celu")
def _celu(xs, a):
    x, al = xs[0].astype(np.float64), a["alpha"]
    return (np.maximum(x, 0) + np.minimum(0, al * np.expm1(x / al))).astype(xs[0].dtype)


@lowers("Hardtanh")
def _hardtanh(xs, a):
    lo, hi = a["bounds"]
    return np.clip(xs[0], lo, hi).astype(xs[0].dtype)


@lowers("PRelu")
def _prelu(xs, a):
    x, w = xs
    w = w.reshape([1, -1] + [1] * (x.ndim - 2))
    return np.where(x >= 0, x, w * x).astype(x.dtype)


@lowers("Clip")
def _clip(xs, a):
    return np.clip(xs[0], a["min"], a["max"]).astype(xs[0].dtype)


@lowers("Cast")
def _cast(xs, a):
    return xs[0].astype(a["to"])


@lowers("Where")
def _where(xs, a):
    return np.where(xs[0], xs[1], xs[2])
