"""The check report as a terminal table and as one self-contained HTML page (inline CSS, the per-layer
error plot as a base64 PNG; no scripts, no links)."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import Any


def _num(v: Any, fmt: str = ".3g") -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return format(v, fmt) if math.isfinite(v) else str(v)


def rows(report: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in report["pipelines"]:
        e, c, t = r["errors"] or {}, r["classifier"] or {}, r["timing"] or {}
        out.append([r["pipeline"], r["status"], r["failed_stage"] or "", _num(e.get("max_abs")),
                    _num(e.get("max_rel")), _num(e.get("min_passing_atol")),
                    f"{e['inputs_disagreeing']}/{e['inputs']}" if e else "",
                    _num(c.get("top1_agreement"), ".2f"), _num(c.get("kendall_tau_top5"), ".2f"),
                    _num(t.get("median_s") * 1e3 if t else None, ".3g"), _num(t.get("iqr_s") * 1e3 if t else None,
                                                                           ".2g")])
    return out


HEADER = ["pipeline", "status", "stage", "max abs", "max rel", "min atol", "bad in", "top-1", "tau@5",
          "median ms", "iqr ms"]


def text(report: dict[str, Any]) -> str:
    table = [HEADER] + rows(report)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = [f"parallax check {report['model']['name']} ({report['framework']}, {report['inputs']['count']} inputs)"]
    for k, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    for r in report["pipelines"]:
        if r["status"].startswith("crash") or r["status"] in ("unsupported", "skipped"):
            lines.append(f"  {r['pipeline']}: {r['message']}")
    if report["crashes_by_stage"]:
        by_stage = sorted(report["crashes_by_stage"].items())
        lines.append("crashes by stage: " + ", ".join(f"{s} {n}" for s, n in by_stage))
    if report.get("unsupported_by_stage"):
        by_stage = sorted(report["unsupported_by_stage"].items())
        lines.append("capability gaps (not crashes) by stage: " + ", ".join(f"{s} {n}" for s, n in by_stage))
    for s in report["slowdowns"]:
        if s["slower"]:
            lines.append(f"SLOWDOWN {s['pipeline']} vs {s['baseline']}: x{s['ratio']:.2f}, "
                         f"Mann-Whitney p {s['p_value']:.3g}")
    lines.append(f"slowdown tests: {len(report['slowdowns'])}, slower: {sum(s['slower'] for s in report['slowdowns'])}")
    for conv, d in report["diagnoses"].items():
        lines += diagnosis_lines(conv, d)
    for f in report["files"]:
        lines.append(f"wrote {f}")
    lines.append(f"{report['seconds']:.1f} s ({report['sut_seconds']:.1f} s inside the systems under test)")
    return "\n".join(lines)


def _verdict(t: dict[str, Any]) -> str:
    if not t["applicable"]:
        return "nothing to change"
    return "removes it" if t.get("removes_divergence") else "still diverges"


def diagnosis_lines(conv: str, d: dict[str, Any]) -> list[str]:
    if "error" in d and not d.get("layers"):
        return [f"diagnosis of {conv or 'the model'}: failed: {d['error']}"]
    if not d.get("diverging"):
        n = len(d.get("layers", []))
        return [f"conversion {conv}: agrees with the source on every input ({n} layers compared)"]
    lines = [f"DIVERGING conversion {conv}: first layer that diverges while its inputs agree: {d.get('layer')}"]
    rank = d.get("ranking", [])[:3]
    if rank:
        lines.append("  ranked: " + ", ".join(r["layer"] for r in rank))
    tried = [f"{t['class']} ({_verdict(t)})" for t in d.get("transplants", [])]
    if tried:
        lines.append("  transplants tried: " + ", ".join(tried))
    if d.get("fault_class"):
        lines.append(f"  fault class: {d['fault_class']} (the first transplant that removes the divergence)")
        for c in d.get("changes", []):
            lines.append(f"    {c}")
        o, r = d.get("original", {}), d.get("repaired", {})
        lines.append(f"  agreement: original {o.get('inputs_agreeing')}/{o.get('inputs')} inputs, top-1 "
                     f"{_num(o.get('top1_agreement'), '.2f')}, max abs {_num(o.get('max_abs'))}; repaired "
                     f"{r.get('inputs_agreeing')}/{r.get('inputs')} inputs, top-1 "
                     f"{_num(r.get('top1_agreement'), '.2f')}, max abs {_num(r.get('max_abs'))}")
    else:
        lines.append("  fault class: none found (no transplant removes the divergence)")
    return lines


# -- HTML ---------------------------------------------------------------------------------------------------
def layer_plot(diag: dict[str, Any], title: str) -> bytes | None:
    layers = diag.get("layers") or []
    if not layers:
        return None
    if "MPLCONFIGDIR" not in os.environ:
        cfg = Path(".work/matplotlib")
        cfg.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(cfg.resolve())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def val(d: Any) -> float:
        v = float(d) if not isinstance(d, str) else float("inf")
        return v if math.isfinite(v) else 1.0
    ys = [max([val(d) for d in lay["deltas"]] or [0.0]) for lay in layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(layers)), 3.2))
    colors = ["#c0392b" if lay["diverged"] else "#2e86c1" for lay in layers]
    ax.bar(range(len(layers)), [max(y, 1e-12) for y in ys], color=colors)
    ax.set_yscale("log")
    ax.axhline(1e-3, color="gray", linestyle=":", linewidth=1)
    ax.set_ylabel("max relative delta")
    ax.set_title(title, fontsize=9)
    if len(layers) <= 60:
        ax.set_xticks(range(len(layers)), [lay["name"] for lay in layers], rotation=90, fontsize=6)
    else:
        ax.set_xlabel("layer (converted graph order)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


CSS = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:12px}"
       "td,th{border:1px solid #ccc;padding:2px 6px}th{background:#eee}td.n{text-align:right}"
       ".bad{color:#b03a2e;font-weight:bold}.ok{color:#1e8449}pre{background:#f6f6f6;padding:6px}")


def page(report: dict[str, Any]) -> str:
    e = html.escape
    name = report["model"]["name"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>parallax check {e(name)}</title>"
             f"<style>{CSS}</style></head><body><h1>parallax check {e(name)}</h1>",
             f"<p>{e(report['framework'])} model, {report['inputs']['count']} inputs, {report['seconds']:.1f} s "
             f"({report['sut_seconds']:.1f} s inside the systems under test)</p>", "<h2>Pipelines</h2><table><tr>"]
    parts += [f"<th>{e(h)}</th>" for h in HEADER] + ["</tr>"]
    for r in rows(report):
        cls = "bad" if r[1] in ("MISMATCH",) or r[1].startswith("crash") else ("ok" if r[1] == "ok" else "")
        parts.append("<tr>" + "".join(f"<td class='{cls if i == 1 else ('n' if i >= 3 else '')}'>{e(c)}</td>"
                                      for i, c in enumerate(r)) + "</tr>")
    parts.append("</table>")
    msgs = [r for r in report["pipelines"] if r["message"]]
    if msgs:
        parts.append("<h3>Failures and skips</h3><ul>" + "".join(
            f"<li><b>{e(r['pipeline'])}</b> ({e(r['failed_stage'] or r['status'])}): {e(r['message'])}</li>"
            for r in msgs) + "</ul>")
    parts.append("<h2>Slowdown tests across opt levels</h2><table><tr><th>pipeline</th><th>baseline</th>"
                 "<th>ratio</th><th>p (Mann-Whitney)</th><th>verdict</th></tr>")
    for s in report["slowdowns"]:
        parts.append(f"<tr><td>{e(s['pipeline'])}</td><td>{e(s['baseline'])}</td><td class='n'>{_num(s['ratio'])}"
                     f"</td><td class='n'>{_num(s['p_value'])}</td><td>{e(s['reason'])}</td></tr>")
    parts.append("</table><h2>Per-layer errors and diagnosis</h2>")
    if not report["diagnoses"]:
        parts.append("<p>No per-layer comparison: it needs a PyTorch source and an ONNX conversion.</p>")
    for conv, d in report["diagnoses"].items():
        parts.append(f"<h3>{e(conv or 'model')}</h3><pre>{e(chr(10).join(diagnosis_lines(conv, d)))}</pre>")
        png = layer_plot(d, f"{name} via {conv}: per-layer max relative delta (red: diverged)")
        if png:
            parts.append(f"<img alt='per-layer error plot' src='data:image/png;base64,"
                         f"{base64.b64encode(png).decode()}'>")
    parts.append("</body></html>")
    return "".join(parts)
