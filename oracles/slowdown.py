"""Honest slowdown statistics: a higher opt level is slower only when repeated timing says so.

One timing proves nothing on a shared machine. A slowdown needs a large ratio of medians, an
absolute difference above timer noise, a rank test that rejects "same distribution", and a second
independent measurement that agrees. The rank test is scipy's Mann-Whitney U (one-sided: the higher
level's times are stochastically greater), exact for small samples without ties, else the normal
approximation with tie and continuity correction: a reviewed implementation, not a hand-written one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value for "b is stochastically greater than a" (1.0 when nothing can be said)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        return 1.0  # scipy warns and answers NaN: no evidence either way
    p = float(mannwhitneyu(x, y, alternative="less", method="auto").pvalue)
    return p if math.isfinite(p) else 1.0


@dataclass
class SlowdownVerdict:
    ratio: float  # median(high) / median(low), first measurement
    p_value: float
    confirm_ratio: float | None
    confirm_p_value: float | None
    slow: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _ratio(low: Sequence[float], high: Sequence[float]) -> float:
    if not len(low) or not len(high):
        return float("nan")
    ml, mh = float(np.median(low)), float(np.median(high))
    return mh / ml if ml > 0 else (float("inf") if mh > 0 else 1.0)


def _why_not(low: Sequence[float], high: Sequence[float], p: float, *, min_ratio: float, floor_s: float,
             alpha: float, min_runs: int) -> str:
    """Empty when the measurement shows a slowdown, else the first criterion it misses."""
    if len(low) < min_runs or len(high) < min_runs:
        return f"too few runs ({len(low)}, {len(high)} < {min_runs})"
    ml, mh = float(np.median(low)), float(np.median(high))
    if not mh > min_ratio * ml:
        return f"ratio {_ratio(low, high):.2f} <= {min_ratio:g}"
    if not mh - ml > floor_s:
        return f"difference {mh - ml:.2e} s <= floor {floor_s:g} s"
    if not p < alpha:
        return f"p {p:.3g} >= {alpha:g}"
    return ""


def judge_slowdown(low: Sequence[float], high: Sequence[float], low2: Sequence[float] | None,
                   high2: Sequence[float] | None, *, min_ratio: float = 2.0, floor_s: float = 1e-3,
                   alpha: float = 0.01, min_runs: int = 10) -> SlowdownVerdict:
    """Is `high` (the higher opt level's run times) a slowdown over `low`, confirmed by low2/high2?"""
    crit = {"min_ratio": min_ratio, "floor_s": floor_s, "alpha": alpha, "min_runs": min_runs}
    p = mann_whitney_u(low, high)
    first = _why_not(low, high, p, **crit)
    if low2 is None or high2 is None:
        return SlowdownVerdict(_ratio(low, high), p, None, None, False, first or "unconfirmed")
    p2 = mann_whitney_u(low2, high2)
    second = _why_not(low2, high2, p2, **crit)
    reason = first or (f"not confirmed: {second}" if second else "confirmed")
    return SlowdownVerdict(_ratio(low, high), p, _ratio(low2, high2), p2, not first and not second, reason)
