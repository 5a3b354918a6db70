"""One self-contained HTML file: inline CSS, plots as base64 PNG, no script, no external reference at all,
so the report opens offline, from a mail attachment or a CI artefact."""

from __future__ import annotations

import base64
from html import escape

from fuzzer.report import fmt, plots
from fuzzer.report.load import ReportData, skips_saved
from fuzzer.report.since import SinceEntry, SinceReport

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1300px;color:#222;
padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.95em;background:#f6f6f6;padding:0 .2em;word-break:break-all}
.msg{max-width:38em;word-break:break-word}.muted{color:#777}
.sym-crash,.sym-hang,.sym-oom{color:#b00020}.sym-wrong_output{color:#a04000}.sym-invalid_model{color:#6a1b9a}
figure{margin:1em 0}img.plot{max-width:100%;height:auto;border:1px solid #eee}
"""


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="muted">{escape(alt)}: not enough data yet.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """`rows` hold HTML already escaped."""
    numeric = numeric or set()
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _bugs(data: ReportData) -> str:
    if not data.bugs:
        return "<p>No bugs found.</p>"
    rows = []
    for i, b in enumerate(data.bugs, 1):
        example = escape(b.smallest_dir) if b.smallest_dir else "none kept"
        nodes = "" if b.smallest_nodes is None else str(b.smallest_nodes)
        reduced = escape(b.reduced_dir) if b.reduced_dir else escape(b.reduce_state or "")
        rows.append([str(i), f"<code>{b.sig12}</code>", str(b.count), f'<span class="sym-{escape(b.symptom)}">'
                     f"{escape(b.symptom)}</span>", escape(b.location), escape(b.component), escape(b.first_op),
                     escape(fmt.when(b.first_seen)), f"<code>{example}</code>", nodes,
                     f"<code>{reduced}</code>" if b.reduced_dir else reduced,
                     f'<div class="msg">{escape(b.headline)}</div>'
                     f'<div class="muted">{escape(", ".join(b.pipelines))}</div>'])
    return _table(["#", "signature", "count", "symptom", "location", "component", "first op", "first seen",
                   "smallest example", "nodes", "reduced", "message / pipelines"], rows, {0, 2, 9})


def _since_entries(entries: list[SinceEntry]) -> str:
    if not entries:
        return '<p class="muted">none</p>'
    rows = [[f"<code>{e.bug.sig12}</code>", escape(e.bug.symptom), escape(e.bug.component), str(e.count_before),
             str(e.count_after), "yes" if e.tested_after else f"<b>no</b>: {escape(e.why_untested)}",
             escape(e.bug.headline)] for e in entries]
    return _table(["signature", "symptom", "component", "before", "after", "tested after", "message"], rows, {3, 4})


def _since(s: SinceReport) -> str:
    common = sorted(set(s.pipelines_before) & set(s.pipelines_after))
    parts = [f"<h2>Since {escape(s.baseline)}</h2>",
             f"<p>{s.cases_before} cases before, {s.cases_after} after. Pipelines tested on both sides: "
             f"{escape(', '.join(common)) or 'none'}. A vanished bug none of whose pipelines ran after the baseline "
             "is not evidence of a fix.</p>"]
    for title, entries in (("New", s.new), ("Vanished", s.vanished), ("Still there", s.still)):
        parts.append(f"<h3>{title}: {len(entries)}</h3>{_since_entries(entries)}")
    return "".join(parts)


def _opseq(data: ReportData) -> str:
    s = data.opseq
    share = f"{s.pair_share:.1%}" if s.pair_share is not None else "n/a"
    rows2 = [[escape(q), str(n)] for q, n in s.top2]
    rows3 = [[escape(q), str(n)] for q, n in s.top3]
    return (f"<p>{s.distinct2} distinct producer&gt;consumer 2-chains ({s.total2} occurrences), covering {share} of "
            f"the {s.pairs_possible} ordered pairs of the generator's {s.families} op families (an upper bound: not "
            f"every pair is type-compatible); {s.distinct3} distinct 3-chains ({s.total3} occurrences).</p>"
            + (_table(["most common 2-chains", "count"], rows2, {1}) if rows2 else "")
            + (_table(["most common 3-chains", "count"], rows3, {1}) if rows3 else ""))


def render_html(data: ReportData, since: SinceReport | None = None) -> str:
    c = data.campaign
    title = f"Parallax report: {data.out}"
    runs = [[str(r.id), escape(fmt.when(r.started)), escape(fmt.duration(r.seconds)), str(r.cases),
             escape(str(r.workers)), escape(r.engine), "yes" if r.resumed else "", str(r.recycles),
             escape(r.stop_reason or ""), escape(r.host)] for r in data.runs]
    gaps = [[str(g.count), escape(g.component), escape(g.op), escape(g.dtype),
             f'<div class="msg">{escape((g.message.splitlines() or [""])[0][:200])}</div>'] for g in data.gaps]
    skips = [[escape(s.pipeline), escape(s.trigger_text), "" if s.skipped is None else str(s.skipped),
              "" if s.sent is None else str(s.sent), escape(fmt.when(s.since)), escape(s.reason)] for s in data.skips]
    versions = data.runs[-1].versions if data.runs else {}
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Seed {escape(str(c.get('seed')))}, {escape(str(c.get('nodes')))} nodes per graph, created "
        f"{escape(fmt.when(c.get('created')))}. {escape(fmt.cases_line(data))}; {data.finding_rows} findings; "
        f"<b>{len(data.bugs)} distinct bugs</b>. {escape(fmt.throughput_line(data))}.</p>",
        f"<h2>Distinct bugs ({len(data.bugs)})</h2>",
        f'<p class="muted">Example folders are relative to <code>{escape(str(data.out))}</code>; each holds '
        "graph.json, inputs.npz, weights.npz, case.json, finding.json and the models involved.</p>", _bugs(data),
        "<h2>Over time</h2>",
        _img(plots.plot_throughput(data.snapshots), "Throughput (cases per second)"),
        _img(plots.plot_findings(data.snapshots, data.finding_times,
                                 [b.first_seen for b in data.bugs if b.first_seen is not None]),
             "Findings over time"),
        f"<h2>Capability gaps, not bugs ({len(data.gaps)})</h2>",
        _table(["count", "component", "op", "dtype", "message"], gaps, {0}) if gaps else "<p>none</p>",
        f"<h2>Flaky: not reproduced in a fresh worker, not bugs ({len(data.flaky)})</h2>",
        _table(["count", "symptom", "component", "stage", "what the fresh worker saw"],
               [[str(f["count"]), escape(f["symptom"]), escape(f["component"]), escape(f["stage"]),
                 escape(f["note"][:200])] for f in data.flaky], {0}) if data.flaky else "<p>none</p>",
        f"<h2>Scheduling skips ({len(data.skips)})</h2>",
        f"<p>{escape(skips_saved(data.skips))}.</p>" if skips_saved(data.skips) else "",
        _table(["pipeline", "trigger", "runs saved", "sent anyway", "since", "reason"], skips, {2, 3})
        if skips else "<p>none</p>",
        "<h2>Coverage: op family × pipeline</h2>", f"<p>{escape(fmt.coverage_line(data))}</p>",
        _img(plots.plot_coverage(data.coverage), "Coverage heat map"),
        "<h2>Op sequences</h2>", _opseq(data),
    ]
    if since is not None:
        body.append(_since(since))
    body += [f"<h2>Runs ({len(data.runs)})</h2>",
             _table(["run", "started", "duration", "cases", "workers", "engine", "resumed", "recycled", "stop",
                     "host"], runs, {0, 3, 7}),
             f"<p>{escape(fmt.recycles_line(data))}</p>",
             "<h2>Pipelines (latest run)</h2>",
             "<ul>" + "".join(f"<li>{escape(x)}</li>" for x in fmt.pipelines_lines(data)) + "</ul>",
             "<h2>Versions (latest run)</h2>",
             _table(["library", "version"], [[escape(str(k)), escape(str(v))] for k, v in sorted(versions.items())])
             if versions else "<p>unknown</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
