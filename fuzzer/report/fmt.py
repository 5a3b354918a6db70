"""Small formatting shared by every report format, so that text, Markdown, HTML and JUnit say the same."""

from __future__ import annotations

import time
from pathlib import Path

from fuzzer.report.load import Bug, ReportData


def when(t: float | None) -> str:
    """A unix time as UTC, to the minute; "" when unknown."""
    if t is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unfinished"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def example_dir(out: Path, rel: str | None) -> str:
    return str(out / rel) if rel else ""


def smallest(data: ReportData, b: Bug, relative: bool = False) -> str:
    """The smallest example's folder and node count, and the reduced case when there is one."""
    where = (lambda rel: rel or "") if relative else (lambda rel: example_dir(data.out, rel))
    text = where(b.smallest_dir)
    if text and b.smallest_nodes is not None:
        text += f" ({b.smallest_nodes} nodes)"
    if b.reduced_dir:
        text += f"; reduced: {where(b.reduced_dir)}"
    elif b.reduce_state:
        text += f"; reduction {b.reduce_state}"
    return text


def cases_line(data: ReportData) -> str:
    parts = [f"{n} {status or 'unknown'}" for status, n in sorted(data.cases_by_status.items())]
    return f"{data.cases_total} cases ({', '.join(parts) or 'none'})"


def throughput_line(data: ReportData) -> str:
    """Overall cases per second over the runs' wall time (finished runs only)."""
    secs = [r.seconds for r in data.runs if r.seconds]
    cases = sum(r.cases for r in data.runs if r.seconds)
    if not secs:
        return "throughput: no finished run"
    return f"throughput: {cases / sum(secs):.2f} cases/s over {duration(sum(secs))} of finished runs"


def coverage_line(data: ReportData) -> str:
    cov = data.coverage
    known = data.opseq.families
    never = cov.untested_families
    listed = ", ".join(never[:30]) + (f" and {len(never) - 30} more" if len(never) > 30 else "")
    return (f"coverage: {known - len(never)} of the generator's {known} op families judged "
            f"on {len(cov.pipelines)} pipelines; never judged: {listed or 'none'}")


def opseq_line(data: ReportData) -> str:
    s = data.opseq
    share = f" ({s.pair_share:.1%} of the {s.pairs_possible} ordered pairs of {s.families} families)" \
        if s.pair_share is not None else ""
    top = ", ".join(f"{seq} ({n})" for seq, n in s.top2[:5])
    return (f"op sequences: {s.distinct2} distinct 2-chains{share}, {s.distinct3} distinct 3-chains"
            + (f"; most common: {top}" if top else ""))


def pipelines_lines(data: ReportData) -> list[str]:
    """What the latest run ran, and what it left out grouped by reason."""
    if not data.pipelines_run and not data.pipelines_left_out:
        return ["pipelines: not recorded by this store"]
    out = [f"ran {len(data.pipelines_run)} pipelines: {', '.join(data.pipelines_run)}"]
    by_reason: dict[str, list[str]] = {}
    for name, why in data.pipelines_left_out:
        by_reason.setdefault(why, []).append(name)
    out += [f"left out {len(names)} ({why}): {', '.join(names)}" for why, names in by_reason.items()]
    return out


def recycles_line(data: ReportData) -> str:
    total = sum(r.recycles for r in data.runs)
    per_run = ", ".join(f"run {r.id}: {r.recycles}" for r in data.runs if r.recycles)
    return f"workers recycled for memory: {total}" + (f" ({per_run})" if per_run else "")
