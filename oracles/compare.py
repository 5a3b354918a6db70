"""Compare one output against the reference and keep a record, not a boolean.

A converter engineer triaging a finding needs more than "mismatch": how far off (max abs / rel
error), how much of the tensor (share over tolerance), what tolerance would have passed (Polygraphy's
"minimum required tolerance"), whether NaN/Inf appeared, whether shapes or dtypes changed, and
whether a classifier's decision (argmax) flips. The record also sorts the difference into a class:

* "ok": shapes and dtypes equal, every element within tolerance.
* "precision": rounding-like exceedance: every element within PRECISION_FACTOR times its
  tolerance, no NaN/Inf appeared, argmax agrees (up to near-ties).
* "semantic": anything else: shape or dtype differs, NaN/Inf appeared or vanished, ints or bools
  differ, values far off, or argmax flips.

Values are compared in float64 (complex128 for complex outputs). NaN in both at the same position is
equal, and so are infinities of the same sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from oracles.tolerance import Tolerance

KLASSES = ("ok", "precision", "semantic")
PRECISION_FACTOR = 10.0


@dataclass
class CompareRecord:
    """Statistics of one (reference, target) output pair; None where the pair is not comparable."""

    output_index: int
    klass: str
    shape_equal: bool
    dtype_equal: bool
    ref_dtype: str
    got_dtype: str
    ref_shape: tuple[int, ...] | None
    got_shape: tuple[int, ...] | None
    atol: float
    rtol: float
    max_abs: float | None = None
    max_rel: float | None = None  # over elements with ref != 0
    share_over_tol: float | None = None
    min_passing_atol: float | None = None  # inf when NaN/Inf disagree: no atol passes
    nan_inf_appeared: int = 0  # got non-finite where ref is finite
    nan_inf_vanished: int = 0  # ref non-finite where got differs from it
    argmax_agree: float | None = None  # share of last-axis rows whose argmax agrees (up to ties)
    note: str = ""

    def __post_init__(self) -> None:
        if self.klass not in KLASSES:
            raise ValueError(f"unknown class {self.klass!r}")

    @property
    def mismatch(self) -> bool:
        return self.klass != "ok"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, float) and not np.isfinite(value):
                d[key] = str(value)  # "inf" / "nan": strict JSON has no infinities
            elif isinstance(value, tuple):
                d[key] = list(value)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CompareRecord:
        fields = dict(d)
        for key in ("ref_shape", "got_shape"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        for key in ("atol", "rtol", "max_abs", "max_rel", "share_over_tol", "min_passing_atol", "argmax_agree"):
            if isinstance(fields.get(key), str):
                fields[key] = float(fields[key])
        return cls(**fields)


def _wide(a: np.ndarray) -> np.ndarray:
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _exact_kind(a: np.ndarray) -> bool:
    return a.dtype.kind in "biu"


def _argmax_agreement(r: np.ndarray, g: np.ndarray, tol: Tolerance) -> float | None:
    """Share of rows (last axis) where got's argmax is also a maximum of ref, up to a near-tie.

    A row agrees when ref at got's argmax is within two tolerances of ref's maximum: two values
    that both sit within tolerance of the reference can swap order by that much, so anything
    closer is rounding, not a flipped decision.
    """
    if r.ndim == 0 or r.shape[-1] < 2 or r.size == 0 or np.iscomplexobj(r) or np.iscomplexobj(g):
        return None
    rows_r = r.reshape(-1, r.shape[-1])
    rows_g = g.reshape(-1, g.shape[-1])
    finite = np.isfinite(rows_r).all(axis=1) & np.isfinite(rows_g).all(axis=1)
    if not finite.any():
        return None
    rows_r, rows_g = rows_r[finite], rows_g[finite]
    idx = np.arange(rows_r.shape[0])
    best_r = rows_r[idx, rows_r.argmax(axis=1)]
    at_g = rows_r[idx, rows_g.argmax(axis=1)]
    slack = 2 * tol.atol + tol.rtol * (np.abs(best_r) + np.abs(at_g))
    return float(np.mean(at_g >= best_r - slack))


def compare_output(ref: np.ndarray, got: np.ndarray, tol: Tolerance, output_index: int = 0) -> CompareRecord:
    """Judge `got` against `ref` under `tol`; never raises on odd shapes, dtypes or sizes."""
    ref, got = np.asarray(ref), np.asarray(got)
    base: dict[str, Any] = {
        "output_index": output_index, "shape_equal": ref.shape == got.shape,
        "dtype_equal": ref.dtype == got.dtype, "ref_dtype": str(ref.dtype), "got_dtype": str(got.dtype),
        "ref_shape": tuple(ref.shape), "got_shape": tuple(got.shape), "atol": tol.atol, "rtol": tol.rtol}
    if ref.shape != got.shape:
        return CompareRecord(klass="semantic", note=f"shape {ref.shape} vs {got.shape}", **base)
    exact = _exact_kind(ref) or _exact_kind(got)
    tol_used = Tolerance(0.0, 0.0) if exact else tol
    r, g = _wide(ref), _wide(got)
    fin_r, fin_g = np.isfinite(r), np.isfinite(g)
    appeared = int(np.count_nonzero(fin_r & ~fin_g))
    # ref non-finite: equal only when got holds the same NaN/Inf (NaN==NaN, Inf of the same sign).
    same_nonfinite = (np.isnan(r) & np.isnan(g)) | (~fin_r & (r == g))
    vanished = int(np.count_nonzero(~fin_r & ~same_nonfinite))
    both = fin_r & fin_g
    diff = np.abs(g[both] - r[both])
    mag = np.abs(r[both])
    allowed = tol_used.atol + tol_used.rtol * mag
    if exact and ref.dtype.kind in "biu" and got.dtype.kind in "biu":
        over = int(np.count_nonzero(ref != got))  # integers beyond 2**53 do not survive float64
    else:
        over = int(np.count_nonzero(diff > allowed)) + appeared + vanished
    nonzero = mag > 0
    need = diff - tol_used.rtol * mag
    record = CompareRecord(
        klass="ok", max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float((diff[nonzero] / mag[nonzero]).max()) if nonzero.any() else 0.0,
        share_over_tol=over / ref.size if ref.size else 0.0,
        min_passing_atol=float("inf") if appeared or vanished else (float(max(need.max(), 0.0)) if need.size else 0.0),
        nan_inf_appeared=appeared, nan_inf_vanished=vanished,
        argmax_agree=None if exact else _argmax_agreement(r, g, tol_used), **base)
    record.klass, record.note = _classify(record, over, exact, bool(np.all(diff <= PRECISION_FACTOR * allowed)))
    return record


def _classify(rec: CompareRecord, over: int, exact: bool, within_precision: bool) -> tuple[str, str]:
    if not rec.dtype_equal:
        return "semantic", f"dtype {rec.ref_dtype} vs {rec.got_dtype}"
    if rec.nan_inf_appeared:
        return "semantic", f"{rec.nan_inf_appeared} NaN/Inf appeared"
    if rec.nan_inf_vanished:
        return "semantic", f"{rec.nan_inf_vanished} NaN/Inf of the reference differ"
    if over == 0:
        return "ok", ""
    if exact:
        return "semantic", f"{over} exact values differ"
    if rec.argmax_agree is not None and rec.argmax_agree < 1.0:
        return "semantic", f"argmax agrees on {rec.argmax_agree:.1%} of rows"
    if not within_precision:
        return "semantic", f"values beyond {PRECISION_FACTOR:g}x tolerance"
    return "precision", f"{over} values within {PRECISION_FACTOR:g}x tolerance"


def compare_outputs(refs: Sequence[np.ndarray], gots: Sequence[np.ndarray],
                    tols: Sequence[Tolerance]) -> list[CompareRecord]:
    """One record per output; a single semantic record when the output counts differ."""
    if len(refs) != len(gots) or len(refs) != len(tols):
        return [CompareRecord(output_index=-1, klass="semantic", shape_equal=False, dtype_equal=False,
                              ref_dtype="", got_dtype="", ref_shape=None, got_shape=None, atol=0.0, rtol=0.0,
                              note=f"output count {len(refs)} vs {len(gots)} (tolerances {len(tols)})")]
    return [compare_output(r, g, t, i) for i, (r, g, t) in enumerate(zip(refs, gots, tols))]
