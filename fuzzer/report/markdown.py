"""A Markdown summary (a table of distinct bugs) for a CI comment or a nightly mail."""

from __future__ import annotations

from fuzzer.report import fmt
from fuzzer.report.load import ReportData, skips_saved
from fuzzer.report.since import SinceEntry, SinceReport


def cell(text: object) -> str:
    """Table-cell safe: no pipes or newlines break the row."""
    return str(text if text is not None else "").replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(data: ReportData, since: SinceReport | None = None) -> str:
    out = [f"# Parallax report: `{data.out}`", "",
           f"{fmt.cases_line(data)}; {data.finding_rows} findings; **{len(data.bugs)} distinct bugs**; "
           f"{len(data.runs)} runs; {fmt.throughput_line(data)}", "",
           "## Distinct bugs", "", f"Example folders are relative to `{data.out}`.", ""]
    if data.bugs:
        out += ["| # | signature | count | symptom | location | component | first op | first seen | "
                "smallest example | message |",
                "|---|---|---:|---|---|---|---|---|---|---|"]
        for i, b in enumerate(data.bugs, 1):
            out.append(f"| {i} | `{b.sig12}` | {b.count} | {cell(b.symptom)} | {cell(b.location)} | "
                       f"{cell(b.component)} | {cell(b.first_op)} | {fmt.when(b.first_seen)} | "
                       f"{cell(fmt.smallest(data, b, relative=True))} | {cell(b.headline)} |")
    else:
        out.append("No bugs found.")
    out += ["", f"## Capability gaps (not bugs): {len(data.gaps)}", ""]
    if data.gaps:
        out += ["| count | component | op | dtype | message |", "|---:|---|---|---|---|"]
        out += [f"| {g.count} | {cell(g.component)} | {cell(g.op)} | {cell(g.dtype)} | "
                f"{cell((g.message.splitlines() or [''])[0][:160])} |" for g in data.gaps]
    out += ["", f"## Flaky (not reproduced in a fresh worker, not bugs): {len(data.flaky)}", ""]
    out += [f"- x{f['count']} {cell(f['symptom'])} in {cell(f['component'])}: {cell(f['note'][:160])}"
            for f in data.flaky]
    out += ["", f"## Scheduling skips: {len(data.skips)}", ""]
    if skips_saved(data.skips):
        out += [f"{skips_saved(data.skips)}.", ""]
    out += [f"- `{cell(s.pipeline)}` skips `{cell(s.trigger_text)}` ({cell(s.saved_text)}): {cell(s.reason)}"
            for s in data.skips]
    out += ["", "## Coverage", "", f"- {fmt.coverage_line(data)}", f"- {fmt.opseq_line(data)}"]
    out += ["", "## Pipelines and workers", "", *[f"- {cell(x)}" for x in fmt.pipelines_lines(data)],
            f"- {fmt.recycles_line(data)}"]
    if since is not None:
        out += ["", *since_markdown(since)]
    return "\n".join(out) + "\n"


def _row(e: SinceEntry) -> str:
    b = e.bug
    return (f"| `{b.sig12}` | {cell(b.symptom)} | {cell(b.component)} | {e.count_before} | {e.count_after} | "
            f"{'yes' if e.tested_after else cell('no: ' + e.why_untested)} | {cell(b.headline)} |")


def since_markdown(s: SinceReport) -> list[str]:
    common = sorted(set(s.pipelines_before) & set(s.pipelines_after))
    out = [f"## Since {cell(s.baseline)}", "",
           f"{s.cases_before} cases before, {s.cases_after} after; pipelines tested on both sides: "
           f"{', '.join(f'`{p}`' for p in common) or 'none'}", ""]
    for title, entries in (("New", s.new), ("Vanished", s.vanished), ("Still there", s.still)):
        out += [f"### {title}: {len(entries)}", ""]
        if entries:
            out += ["| signature | symptom | component | before | after | tested after | message |",
                    "|---|---|---|---:|---:|---|---|", *(_row(e) for e in entries), ""]
    return out
