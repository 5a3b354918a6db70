"""A lowering table: op name -> framework function, filled by decorators in group modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LowerFn = Callable[[list[Any], dict[str, Any]], Any]


class LoweringTable(dict[str, LowerFn]):
    """One per framework. A lowering takes (inputs, attrs) and returns a tensor or a list of them."""

    def __init__(self, framework: str) -> None:
        super().__init__()
        self.framework = framework

    def register(self, *names: str) -> Callable[[LowerFn], LowerFn]:
        def deco(fn: LowerFn) -> LowerFn:
            for n in names:
                if n in self:
                    raise RuntimeError(f"{self.framework}: {n!r} lowered twice")
                self[n] = fn
            return fn
        return deco

    def call(self, op: str, xs: list[Any], attrs: dict[str, Any]) -> list[Any]:
        try:
            fn = self[op]
        except KeyError:
            raise NotImplementedError(f"no {self.framework} lowering for {op!r}") from None
        out = fn(xs, attrs)
        return list(out) if isinstance(out, (list, tuple)) else [out]
