"""The plain-text summary `parallax report OUT` prints when no format flag is given."""

from __future__ import annotations

from fuzzer.report import fmt
from fuzzer.report.load import ReportData, skips_saved
from fuzzer.report.since import SinceEntry, SinceReport


def render_text(data: ReportData, since: SinceReport | None = None) -> str:
    c = data.campaign
    lines = [f"Parallax campaign {data.out}: seed {c.get('seed')}, {c.get('nodes')} nodes per graph, "
             f"created {fmt.when(c.get('created'))}"]
    for r in data.runs:
        lines.append(f"  run {r.id}: {fmt.when(r.started)}, {fmt.duration(r.seconds)}, {r.cases} cases, "
                     f"{r.workers} workers ({r.engine or '?'}){', resumed' if r.resumed else ''}"
                     f", stop: {r.stop_reason or 'running or killed'}")
    lines.append(f"{fmt.cases_line(data)}; {data.finding_rows} findings; {len(data.bugs)} distinct bugs")
    lines.append(fmt.throughput_line(data))
    lines.append(fmt.recycles_line(data))
    lines.extend(fmt.pipelines_lines(data))
    lines.append("")
    lines.append(f"Distinct bugs ({len(data.bugs)})")
    for i, b in enumerate(data.bugs, 1):
        lines.append(f"{i:>3}. [{b.sig12}] x{b.count}  {b.symptom} at {b.location} ({b.stage}), "
                     f"component: {b.component}" + (f", first diverging op {b.first_op}" if b.first_op else ""))
        lines.append(f"     {b.headline}")
        lines.append(f"     first seen {fmt.when(b.first_seen)} (run {b.first_run}), last seen {fmt.when(b.last_seen)}"
                     f"; pipelines: {', '.join(b.pipelines)}")
        lines.append(f"     smallest example: {fmt.smallest(data, b) or 'none kept'}")
    if not data.bugs:
        lines.append("  none")
    lines.append("")
    lines.append(f"Capability gaps, not bugs ({len(data.gaps)})")
    for g in data.gaps:
        head = (g.message.strip().splitlines() or [""])[0][:160]
        lines.append(f"  x{g.count}  {g.component}  {g.op or '?'} {g.dtype or ''}  {head}")
    lines.append(f"Flaky: not reproduced in a fresh worker, not counted as bugs ({len(data.flaky)})")
    for f in data.flaky:
        lines.append(f"  x{f['count']}  {f['symptom']} in {f['component']} ({f['stage']}): "
                     f"{(f['message'] or '').splitlines()[0][:120] if f['message'] else ''} [{f['note'][:120]}]")
    saved = skips_saved(data.skips)
    lines.append(f"Scheduling skips ({len(data.skips)})" + (f": {saved}" if saved else ""))
    for s in data.skips:
        lines.append(f"  {s.pipeline} skips graphs with {s.trigger_text} since {fmt.when(s.since)}: {s.saved_text}")
        lines.append(f"     {s.reason}")
    lines.append("")
    lines.append(fmt.coverage_line(data))
    lines.append(fmt.opseq_line(data))
    if since is not None:
        lines.append("")
        lines.extend(since_lines(since))
    return "\n".join(lines) + "\n"


def _entry(e: SinceEntry) -> str:
    b = e.bug
    return (f"  [{b.sig12}] {b.symptom} at {b.location}, {b.component}: before x{e.count_before}, "
            f"after x{e.count_after}" + ("" if e.tested_after else f" (not looked for since: {e.why_untested})")
            + f"\n      {b.headline}")


def since_lines(s: SinceReport) -> list[str]:
    common = sorted(set(s.pipelines_before) & set(s.pipelines_after))
    lines = [f"Since {s.baseline}: {s.cases_before} cases before, {s.cases_after} after; "
             f"pipelines tested on both sides: {', '.join(common) or 'none'}"]
    for title, entries in (("NEW", s.new), ("VANISHED", s.vanished), ("STILL THERE", s.still)):
        lines.append(f"{title} ({len(entries)})")
        lines.extend(_entry(e) for e in entries)
    return lines
