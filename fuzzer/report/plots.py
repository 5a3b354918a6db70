"""The report's plots as PNG bytes (matplotlib, Agg, no display): throughput, findings over time, coverage.

Runs of a resumed campaign may lie days apart (one a night), so time is "campaign time": each run's
snapshots are laid end to end, and a dotted line marks where a run starts.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from fuzzer.report.load import Coverage, Snapshot, throughput

_PROJECT_WORK = Path(__file__).resolve().parents[2] / ".work"


def _pyplot() -> Any:
    """matplotlib on the Agg backend, its config and font cache in the project work folder (not in ~)."""
    if "MPLCONFIGDIR" not in os.environ:
        cfg = _PROJECT_WORK / "matplotlib"
        cfg.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(cfg)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    fig.clf()
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def campaign_time(snaps: list[Snapshot]) -> tuple[list[float], list[float]]:
    """Seconds of campaign time per snapshot (runs laid end to end), and where each later run starts."""
    xs: list[float] = []
    starts: list[float] = []
    offset = 0.0
    run_first: dict[int, float] = {}
    last_local = 0.0
    current: int | None = None
    for s in snaps:
        if s.run_id != current:
            if current is not None:
                offset += last_local
                starts.append(offset)
            current = s.run_id
            run_first.setdefault(s.run_id, s.time)
            last_local = 0.0
        last_local = s.time - run_first[s.run_id]
        xs.append(offset + last_local)
    return xs, starts


def _time_axis(xs: list[float]) -> tuple[float, str]:
    span = max(xs) if xs else 0.0
    if span >= 3 * 3600:
        return 3600.0, "campaign time (hours)"
    if span >= 180:
        return 60.0, "campaign time (minutes)"
    return 1.0, "campaign time (seconds)"


def plot_throughput(snaps: list[Snapshot]) -> bytes | None:
    """Cases per second between consecutive snapshots of a run; None with fewer than two snapshots in a run."""
    points = throughput(snaps)
    if not points:
        return None
    xs, starts = campaign_time(snaps)
    at = {(s.time, s.run_id): x for s, x in zip(snaps, xs)}
    unit, label = _time_axis(xs)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    ax.plot([at[(t, r)] / unit for t, r, _ in points], [v for _, _, v in points], color="#1f77b4", lw=1.4)
    for s in starts:
        ax.axvline(s / unit, color="grey", ls=":", lw=1)
    ax.set_xlabel(label)
    ax.set_ylabel("cases / s")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_findings(snaps: list[Snapshot], finding_times: list[float], first_seen: list[float]) -> bytes | None:
    """Cumulative finding rows and distinct bugs: from the snapshots, else from the findings' own times."""
    plt = _pyplot()
    if snaps:
        xs, starts = campaign_time(snaps)
        unit, label = _time_axis(xs)
        rows = [s.findings for s in snaps]
        bugs = [s.bugs for s in snaps]
        x = [v / unit for v in xs]
        xb = x
    elif finding_times:
        t0 = min(finding_times + first_seen)
        ft = sorted(t - t0 for t in finding_times)
        bt = sorted(t - t0 for t in first_seen)
        unit, label = _time_axis(ft)
        label = label.replace("campaign", "wall-clock")
        x, rows = [v / unit for v in ft], list(range(1, len(ft) + 1))
        xb, bugs = [v / unit for v in bt], list(range(1, len(bt) + 1))
        starts = []
    else:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    ax.step(x, rows, where="post", color="#ff7f0e", lw=1.4, label="findings (all occurrences)")
    ax.step(xb, bugs, where="post", color="#d62728", lw=1.8, label="distinct bugs")
    for s in starts:
        ax.axvline(s / unit, color="grey", ls=":", lw=1)
    ax.set_xlabel(label)
    ax.set_ylabel("cumulative count")
    ax.set_ylim(bottom=0)
    ax.set_title("Findings over time")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_coverage(cov: Coverage) -> bytes | None:
    """Heat map: judged cases per op family (rows) × pipeline (columns), log colour scale, blank = never."""
    if not cov.cases:
        return None
    import numpy as np
    plt = _pyplot()
    from matplotlib.colors import LogNorm
    grid = np.zeros((len(cov.ops), len(cov.pipelines)))
    oi = {o: i for i, o in enumerate(cov.ops)}
    pi = {p: i for i, p in enumerate(cov.pipelines)}
    for (o, p), n in cov.cases.items():
        grid[oi[o], pi[p]] = n
    masked = np.ma.masked_less_equal(grid, 0)
    width = min(24.0, 3.0 + 0.4 * len(cov.pipelines))
    height = min(40.0, 1.8 + 0.17 * len(cov.ops))
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_facecolor("#eeeeee")
    image = ax.imshow(masked, aspect="auto", cmap="viridis", interpolation="nearest",
                      norm=LogNorm(vmin=1, vmax=max(1.0, float(grid.max()))))
    ax.set_xticks(range(len(cov.pipelines)), cov.pipelines, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(cov.ops)), cov.ops, fontsize=7)
    ax.set_title("Judged cases per op family × pipeline (grey: never)")
    fig.colorbar(image, ax=ax, label="cases", shrink=0.6)
    return _png(fig)
