"""Per-pipeline figures against the source: errors, minimum passing tolerance, classifier agreement
(top-1, Kendall's tau over the reference's top 5) and timing, with a slowdown test across opt levels.

Errors reuse the campaign's oracles (oracles.compare records, oracles.tolerance's noise-derived
tolerances), one record per input and output. Statistics come from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from oracles.compare import CompareRecord, compare_outputs
from oracles.tolerance import Tolerance, derive_tolerance

TOP_K = 5
SLOW_RATIO = 1.5  # a higher level is called slower only when its median is this much above the lowest's
SLOW_FLOOR_S = 1e-3
SLOW_ALPHA = 0.01


def tolerances(refs: list[list[np.ndarray]], refs64: list[list[np.ndarray]] | None) -> list[list[Tolerance]]:
    """One tolerance per input and output, from the float32-float64 gap where there is a float64 twin."""
    out = []
    for k, ref in enumerate(refs):
        wide = refs64[k] if refs64 is not None else [None] * len(ref)
        out.append([derive_tolerance(r, w, str(r.dtype)) for r, w in zip(ref, wide)])
    return out


def records(refs: list[list[np.ndarray]], gots: list[list[np.ndarray]],
            tols: list[list[Tolerance]]) -> list[list[CompareRecord]]:
    return [compare_outputs(r, g, t) for r, g, t in zip(refs, gots, tols)]


def disagreeing(recs: list[list[CompareRecord]]) -> list[bool]:
    """Per input: does any output mismatch?"""
    return [any(r.mismatch for r in rs) for rs in recs]


def _finite_max(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def error_summary(recs: list[list[CompareRecord]]) -> dict[str, Any]:
    flat = [r for rs in recs for r in rs]
    bad = disagreeing(recs)
    klass = "semantic" if any(r.klass == "semantic" for r in flat) else (
        "precision" if any(r.klass == "precision" for r in flat) else "ok")
    return {"class": klass, "max_abs": _finite_max([r.max_abs for r in flat]),
            "max_rel": _finite_max([r.max_rel for r in flat]),
            "min_passing_atol": _finite_max([r.min_passing_atol for r in flat]),
            "rtol": _finite_max([r.rtol for r in flat]),
            "inputs_disagreeing": int(sum(bad)), "inputs": len(recs),
            "notes": sorted({r.note for r in flat if r.note})[:3]}


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1]).astype(np.float64)


def classifier_agreement(refs: list[list[np.ndarray]], gots: list[list[np.ndarray]]) -> dict[str, Any] | None:
    """Top-1 agreement and mean Kendall's tau of got's scores over ref's top-5 classes (first output)."""
    pairs = [(_rows(r[0]), _rows(g[0])) for r, g in zip(refs, gots)
             if r and g and r[0].shape == g[0].shape and r[0].ndim >= 1 and r[0].shape[-1] >= 2]
    if not pairs:
        return None
    agree, taus = [], []
    for ref, got in pairs:
        for rr, gg in zip(ref, got):
            if not (np.isfinite(rr).all() and np.isfinite(gg).all()):
                agree.append(False)
                continue
            agree.append(int(rr.argmax()) == int(gg.argmax()))
            k = min(TOP_K, rr.size)
            top = np.argsort(-rr, kind="stable")[:k]
            tau = stats.kendalltau(rr[top], gg[top]).statistic
            taus.append(1.0 if math.isnan(tau) else float(tau))  # nan: constant scores, no order to disagree on
    return {"top1_agreement": float(np.mean(agree)), "kendall_tau_top5": float(np.mean(taus)) if taus else None,
            "rows": len(agree)}


def timing(run_times: list[float]) -> dict[str, Any] | None:
    if not run_times:
        return None
    t = np.asarray(run_times)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "min_s": float(t.min()), "max_s": float(t.max()),
            "runs": len(run_times)}


@dataclass
class SlowdownTest:
    pipeline: str
    baseline: str
    ratio: float
    p_value: float
    slower: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "baseline": self.baseline, "ratio": self.ratio,
                "p_value": self.p_value, "slower": self.slower, "reason": self.reason}


def slowdown(pipeline: str, baseline: str, high: list[float], low: list[float]) -> SlowdownTest:
    """Is `high` (a higher opt level) slower than `low` (the lowest level of the same route)? One-sided
    Mann-Whitney U, plus a ratio and an absolute floor so that timer noise on a shared machine is no finding."""
    if len(high) < 3 or len(low) < 3:
        return SlowdownTest(pipeline, baseline, float("nan"), 1.0, False, "too few runs")
    p = float(stats.mannwhitneyu(high, low, alternative="greater").pvalue)
    mh, ml = float(np.median(high)), float(np.median(low))
    ratio = mh / ml if ml > 0 else float("inf")
    if ratio <= SLOW_RATIO:
        return SlowdownTest(pipeline, baseline, ratio, p, False, f"ratio {ratio:.2f} <= {SLOW_RATIO}")
    if mh - ml <= SLOW_FLOOR_S:
        return SlowdownTest(pipeline, baseline, ratio, p, False, f"difference under {SLOW_FLOOR_S} s")
    if p >= SLOW_ALPHA:
        return SlowdownTest(pipeline, baseline, ratio, p, False, f"p {p:.3g} >= {SLOW_ALPHA}")
    return SlowdownTest(pipeline, baseline, ratio, p, True, "slower")
