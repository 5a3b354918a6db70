"""torch lowerings of the element-wise group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generators.lower_torch.table import LOWER, lowers

_UNARY = {
    "Abs": torch.abs, "Neg": torch.neg, "Sign": torch.sign, "Exp": torch.exp, "Expm1": torch.expm1,
    "Log": torch.log, "Log1p": torch.log1p, "Sqrt": torch.sqrt, "Rsqrt": torch.rsqrt,
    "Reciprocal": torch.reciprocal, "Sin": torch.sin, "Cos": torch.cos, "Tanh": torch.tanh,
    "Atan": torch.atan, "Asin": torch.asin, "Acos": torch.acos, "Sinh": torch.sinh, "Cosh": torch.cosh,
    "Erf": torch.erf, "Floor": torch.floor, "Ceil": torch.ceil, "Round": torch.round,
    "Square": torch.square, "Relu": torch.relu, "Relu6": F.relu6, "Sigmoid": torch.sigmoid,
    "Selu": F.selu, "Softplus": F.softplus, "Mish": F.mish, "Hardswish": F.hardswish,
    "Hardsigmoid": F.hardsigmoid, "Silu": F.silu, "Softsign": F.softsign, "Not": torch.logical_not,
}
_BINARY = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow,
    "Maximum": torch.maximum, "Minimum": torch.minimum, "FloorDiv": torch.floor_divide,
    "Mod": torch.remainder, "Equal": torch.eq, "NotEqual": torch.ne, "Greater": torch.gt,
    "GreaterEqual": torch.ge, "Less": torch.lt, "LessEqual": torch.le,
    "And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
}

for _name, _fn in _UNARY.items():
    LOWER.register(_name)(lambda xs, a, fn=_fn: fn(xs[0]))
for _name, _fn in _BINARY.items():
    LOWER.register(_name)(lambda xs, a, fn=_fn: fn(xs[0], xs[1]))


@lowers("Gelu")
def _gelu(xs, a):
    return F.gelu(xs[0], approximate=a["approximate"])


@lowers("LeakyRelu")
def _leaky(xs, a):
    return F.leaky_relu(xs[0], a["negative_slope"])


@lowers("Elu")
def _elu(xs, a):
    return F.elu(xs[0], a["alpha"])


@lowers("Celu")
def _celu(xs, a):
    return F.celu(xs[0], a["alpha"])


@lowers("Hardtanh")
def _hardtanh(xs, a):
    lo, hi = a["bounds"]
    return F.hardtanh(xs[0], lo, hi)


@lowers("PRelu")
def _prelu(xs, a):
    return F.prelu(xs[0], xs[1])


@lowers("Clip")
def _clip(xs, a):
    return torch.clamp(xs[0], a["min"], a["max"])


@lowers("Cast")
def _cast(xs, a):
    return xs[0].to(getattr(torch, a["to"]))


@lowers("Where")
def _where(xs, a):
    return torch.where(xs[0], xs[1], xs[2])
