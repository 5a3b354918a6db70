"""Per-output tolerances estimated from the graph's own numeric noise, not guessed.

The rule, for one output of the reference run `ref` (dtype `dtype`), with `ref64` the same graph
run in float64 (None when the graph cannot be promoted):

* integer and bool outputs: exact, `Tolerance(0, 0)`.
* float outputs with `ref64`:
    rtol = RTOL[dtype]
    atol = max(K_GAP * gap, C_FLOOR * eps(dtype) * scale)
  where gap = max |ref - ref64| over the elements finite in both (the rounding noise this very
  graph amplifies: cancellations, long reductions, steep functions) and scale = max(1, max |ref|).
  Another correct float32 implementation differs from the exact result by roughly as much as the
  float32 reference does, so it lands within about 2*gap of `ref`; K_GAP leaves room for a backend
  that rounds worse (FMA contraction, vectorised exp/tanh approximations, Winograd convolutions)
  while staying far below what a wrong op, axis or constant does (errors of the order of `scale`).
  The floor keeps a graph whose float32 run happens to equal its float64 run (gap = 0, e.g. pure
  data movement or exactly representable values) from demanding bit-exactness of other backends.
* float outputs without `ref64` (float16, mixed precision): the noise is unknown, so the rule falls
  back to the dtype and the output's magnitude, wider than above:
    rtol = FALLBACK_RTOL_FACTOR * RTOL[dtype]
    atol = rtol * scale
  i.e. every element may miss by the relative tolerance of the output's largest element.

RTOL per dtype is a multiple of the dtype's machine epsilon that an independent implementation of
a short chain of ops meets element-wise: float16 (eps 9.8e-4) 1e-2 ~ 10 eps, bfloat16 (eps 7.8e-3)
5e-2 ~ 6 eps, float32 (eps 1.2e-7) 1e-4 ~ 800 eps (transcendental approximations and reassociated
reductions in compilers are accurate to a few hundred ulp, not to one), float64 (eps 2.2e-16) 1e-7.

K_GAP, C_FLOOR and FALLBACK_RTOL_FACTOR are the knobs `bench/false_positives.py` tunes against the
false-positive rate over random graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_GAP = 20.0
C_FLOOR = 16.0
FALLBACK_RTOL_FACTOR = 4.0

RTOL: dict[str, float] = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-4, "float64": 1e-7}
EPS: dict[str, float] = {"float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0 ** -7,
                         "float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}
_COMPLEX_PART = {"complex64": "float32", "complex128": "float64"}


@dataclass(frozen=True)
class Tolerance:
    """|got - ref| <= atol + rtol * |ref| element-wise (numpy.allclose's convention)."""

    atol: float
    rtol: float

    @property
    def exact(self) -> bool:
        return self.atol == 0.0 and self.rtol == 0.0

    def to_json(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol}

    @classmethod
    def from_json(cls, d: dict[str, float]) -> Tolerance:
        return cls(float(d["atol"]), float(d["rtol"]))


EXACT = Tolerance(0.0, 0.0)


def float_kind(dtype: str) -> str:
    """The real float type whose rounding governs `dtype` ("" for ints, bools and anything exact)."""
    name = str(dtype)
    if name in RTOL:
        return name
    return _COMPLEX_PART.get(name, "")


def output_scale(ref: np.ndarray) -> float:
    """max(1, max |ref|) over finite elements: the magnitude that absolute noise scales with."""
    a = np.abs(np.asarray(ref).astype(np.complex128 if np.iscomplexobj(ref) else np.float64))
    finite = a[np.isfinite(a)]
    return max(1.0, float(finite.max())) if finite.size else 1.0


def float64_gap(ref: np.ndarray, ref64: np.ndarray) -> float:
    """max |ref - ref64| over elements finite in both; 0 when none are (or the shapes differ)."""
    r = np.asarray(ref)
    r64 = np.asarray(ref64)
    if r.shape != r64.shape or r.size == 0:
        return 0.0
    wide = np.complex128 if np.iscomplexobj(r) or np.iscomplexobj(r64) else np.float64
    a, b = r.astype(wide), r64.astype(wide)
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def derive_tolerance(ref: np.ndarray, ref64: np.ndarray | None, dtype: str) -> Tolerance:
    """The tolerance for one output; see the module docstring for the rule and its reasons."""
    kind = float_kind(dtype)
    if not kind:
        return EXACT
    scale = output_scale(ref)
    if ref64 is None:
        rtol = FALLBACK_RTOL_FACTOR * RTOL[kind]
        return Tolerance(rtol * scale, rtol)
    floor = C_FLOOR * EPS[kind] * scale
    return Tolerance(max(K_GAP * float64_gap(ref, ref64), floor), RTOL[kind])
