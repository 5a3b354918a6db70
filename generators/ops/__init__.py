"""The registry of operator specs. Each group module lists its specs in SPECS."""

from __future__ import annotations

from generators.ops import conv, elementwise, index, nn, norm, reduce, shape
from generators.spec import OpSpec

_GROUPS = (elementwise, conv, nn, norm, shape, index, reduce)

REGISTRY: dict[str, OpSpec] = {}
for _mod in _GROUPS:
    for _spec in _mod.SPECS:
        if _spec.name in REGISTRY:
            raise RuntimeError(f"op {_spec.name!r} is declared twice")
        REGISTRY[_spec.name] = _spec


def get_spec(name: str) -> OpSpec:
    return REGISTRY[name]


def all_op_names() -> list[str]:
    return sorted(REGISTRY)
