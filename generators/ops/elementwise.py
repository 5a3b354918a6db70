"""Element-wise operators: unary math and activations, binary arithmetic with
broadcasting, comparisons, logic, where, clip, cast, PReLU.

Most families here are rows of a table: one small class per *kind* of rule
(unary, binary), instantiated per operator with its dtypes, value domain and
attribute choices.
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import ALL, BOOL, FLOATS, INTS, NUMERIC
from generators.ir import TensorType
from generators.spec import Domain, Homogeneous, OpSpec, Plan, Shape, pick_rank, same_shape
from generators.symbolic import Cond, broadcast_all


class Unary(Homogeneous):
    """y = f(x), same shape. `choices`: structural attributes, name -> options."""

    def __init__(self, name: str, dtypes: tuple[str, ...], domain: str | None = None,
                 choices: dict[str, list[Any]] | None = None) -> None:
        self.name, self.dtypes, self.domain = name, dtypes, domain
        self.choices = choices or {}

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        attrs = {k: rng.choice(v) for k, v in self.choices.items()}
        return Plan([pick_rank(rng)], [dtype], attrs)

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {0: self.domain} if self.domain else {}

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


class Binary(Homogeneous):
    """z = f(x, y) with numpy broadcasting; `out` fixes the output dtype (bool for comparisons)."""

    def __init__(self, name: str, dtypes: tuple[str, ...], out: str | None = None,
                 domains: dict[int, str] | None = None, fresh: dict[int, str] | None = None) -> None:
        self.name, self.dtypes, self.out_dtype = name, dtypes, out
        self.dom, self.fresh = domains or {}, fresh or {}

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        r2 = r if rng.random() < 0.7 else rng.randint(0, r)
        ranks = [r, r2] if rng.random() < 0.5 else [r2, r]
        return Plan(ranks, [dtype, dtype], fresh=dict(self.fresh))

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return dict(self.dom)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return broadcast_all(shapes)[0]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [broadcast_all(shapes)[1]]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        # Each input takes the trailing dims of the output (no stretching needed).
        return [tuple(out[len(out) - r:]) if r else () for r in in_ranks]


class Where(OpSpec):
    """where(cond, x, y): three-way broadcasting, bool condition."""

    name = "Where"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        ranks = [r if rng.random() < 0.6 else rng.randint(0, r) for _ in range(3)]
        ranks[rng.randrange(3)] = r
        return Plan(ranks, [BOOL, dtype, dtype])

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        c, x, y = in_dtypes
        return [x] if c == BOOL and x == y and x in self.dtypes else None

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return broadcast_all(shapes)[0]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [broadcast_all(shapes)[1]]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out[len(out) - r:]) if r else () for r in in_ranks]


class Clip(Unary):
    """clamp(x, min, max) with min < max drawn from small sets (ints for int dtypes)."""

    def __init__(self) -> None:
        super().__init__("Clip", NUMERIC)

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        lo, hi = sorted(rng.sample([-3, -1, 0, 1, 2, 5], 2))
        if dtype in FLOATS:
            lo, hi = lo * rng.choice([0.5, 1.0]), hi * rng.choice([1.0, 1.5])
        return Plan([pick_rank(rng)], [dtype], {"min": lo, "max": hi})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [attrs["min"] < attrs["max"]]


class Cast(OpSpec):
    """x.astype(to). Float sources are kept in a range every target dtype holds."""

    name = "Cast"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        to = rng.choice([d for d in ALL if d != dtype])
        return Plan([pick_rank(rng)], [dtype], {"to": to})

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {0: "small"} if ins[0].dtype in FLOATS and attrs["to"] not in FLOATS else {}

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        ok = len(in_dtypes) == 1 and in_dtypes[0] in ALL and attrs.get("to") in ALL
        return [attrs["to"]] if ok else None

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


class PRelu(Homogeneous):
    """prelu(x, slope): slope is a weight of 1 or C = x.shape[1] elements (torch's rule)."""

    name = "PRelu"
    dtypes = FLOATS

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        return Plan([pick_rank(rng, 2, 5), 1], [dtype, dtype], {"per_channel": rng.random() < 0.7},
                    fresh={1: "weight"})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        want = shapes[0][1] if attrs["per_channel"] else 1
        return [shapes[1][0] == want]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out), (out[1] if attrs["per_channel"] else 1,)]


_F, _N = FLOATS, NUMERIC
_SLOPES = [0.01, 0.1, 0.2, 0.5]

SPECS: list[OpSpec] = [
    # unary math
    Unary("Abs", _N), Unary("Neg", _N), Unary("Sign", _N),
    Unary("Exp", _F, "exp_safe"), Unary("Expm1", _F, "exp_safe"),
    Unary("Log", _F, "positive"), Unary("Log1p", _F, "nonneg"),
    Unary("Sqrt", _F, "nonneg"), Unary("Rsqrt", _F, "positive"), Unary("Reciprocal", _F, "nonzero"),
    Unary("Sin", _F), Unary("Cos", _F), Unary("Tanh", _F), Unary("Atan", _F),
    Unary("Asin", _F, "unit"), Unary("Acos", _F, "unit"),
    Unary("Sinh", _F, "exp_safe"), Unary("Cosh", _F, "exp_safe"),
    Unary("Erf", _F), Unary("Floor", _F), Unary("Ceil", _F), Unary("Round", _F), Unary("Square", _N),
    # activations
    Unary("Relu", _F), Unary("Relu6", _F), Unary("Sigmoid", _F),
    Unary("Gelu", _F, choices={"approximate": ["none", "tanh"]}),
    Unary("LeakyRelu", _F, choices={"negative_slope": _SLOPES}),
    Unary("Elu", _F, choices={"alpha": [1.0, 0.5, 2.0]}),
    Unary("Celu", _F, choices={"alpha": [1.0, 0.5, 2.0]}),
    Unary("Selu", _F), Unary("Softplus", _F), Unary("Mish", _F), Unary("Hardswish", _F),
    Unary("Hardsigmoid", _F), Unary("Silu", _F), Unary("Softsign", _F),
    Unary("Hardtanh", _F, choices={"bounds": [[-1.0, 1.0], [-2.0, 0.5], [0.0, 6.0]]}),
    Unary("Not", (BOOL,)),
    PRelu(), Clip(), Cast(), Where(),
    # binary arithmetic
    Binary("Add", _N), Binary("Sub", _N), Binary("Mul", _N),
    Binary("Div", _F, domains={1: "nonzero"}),
    Binary("Pow", _F, domains={0: "positive", 1: "small"}),
    Binary("Maximum", _N), Binary("Minimum", _N),
    Binary("FloorDiv", INTS + _F, domains={1: "nonzero"}, fresh={1: "leaf"}),
    Binary("Mod", INTS + _F, domains={1: "nonzero"}, fresh={1: "leaf"}),
    # comparisons and logic
    Binary("Equal", _N + (BOOL,), BOOL), Binary("NotEqual", _N + (BOOL,), BOOL),
    Binary("Greater", _N, BOOL), Binary("GreaterEqual", _N, BOOL),
    Binary("Less", _N, BOOL), Binary("LessEqual", _N, BOOL),
    Binary("And", (BOOL,)), Binary("Or", (BOOL,)), Binary("Xor", (BOOL,)),
]
