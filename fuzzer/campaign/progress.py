"""What a running campaign shows: a rich live panel on a terminal, a plain status line every ~10 s
otherwise (CI logs), nothing with --quiet; and the summary printed when the run ends."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

PLAIN_EVERY_S = 10.0
LIVE_EVERY_S = 0.5


def _hms(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _remaining(stats: Any) -> str:
    return "until stopped" if stats.deadline is None else _hms(stats.deadline - time.monotonic()) + " left"


def _split(counter: Counter) -> dict[str, tuple[int, int]]:
    """(key, "new"|"dup") -> n  into  key -> (new, dup)."""
    out: dict[str, tuple[int, int]] = {}
    for (key, tag), n in counter.items():
        new, dup = out.get(key, (0, 0))
        out[key] = (new + n, dup) if tag == "new" else (new, dup + n)
    return dict(sorted(out.items(), key=lambda kv: (-sum(kv[1]), kv[0])))


def status_line(stats: Any) -> str:
    """One line of plain text: time, throughput, bugs, workers."""
    new = sum(n for (_, tag), n in stats.by_symptom.items() if tag == "new")
    found = sum(stats.by_symptom.values())
    workers = ", ".join(f"{w.name} {w.state}" + (f" #{w.case}" if w.case is not None else "")
                        + (f" ({w.restarts} restarts)" if w.restarts else "") for w in stats.workers)
    line = (f"[{_hms(stats.elapsed())} elapsed, {_remaining(stats)}] {stats.cases} cases ({stats.rate():.2f}/s, "
            f"{stats.invalid} invalid, {stats.harness_errors} harness errors), {found} findings, {new} new bugs "
            f"({stats.total_bugs} in the store), {stats.rss_mb:.0f} MiB; {workers}")
    return line + (f"; stopping: {stats.stopping}" if stats.stopping else "")


class Silent:
    """--quiet: events.jsonl is the only live output."""

    def update(self, stats: Any) -> None:
        pass

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class PlainStatus(Silent):
    """Not a terminal: a status line every ~10 s."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.next = 0.0

    def update(self, stats: Any) -> None:
        now = time.monotonic()
        if now >= self.next:
            print(status_line(stats), file=self.stream, flush=True)
            self.next = now + PLAIN_EVERY_S


class LiveDisplay(Silent):
    """A terminal: the rich live panel, redrawn at most twice a second."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.next = 0.0

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def update(self, stats: Any) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.live.update(render(stats), refresh=True)
            self.next = now + LIVE_EVERY_S


def render(stats: Any) -> Any:
    """The live panel: header, findings by symptom and component (new / duplicate), workers, last new bug."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(("parallax fuzz ", "bold"), f"{stats.out}   ", (_hms(stats.elapsed()), "cyan"),
                         " elapsed, ", (_remaining(stats), "cyan"), f"   {stats.cases} cases ",
                         (f"{stats.rate():.2f}/s", "bold green"),
                         f"   {stats.invalid} invalid, {stats.harness_errors} harness errors, "
                         f"{stats.total_bugs} bugs in the store, {stats.gaps} capability gaps, "
                         f"{len(stats.skips)} skip rules, {stats.rss_mb:.0f} MiB")
    parts: list[Any] = [head]
    tables = Table.grid(padding=(0, 4))
    row = []
    for title, counter in (("symptom", stats.by_symptom), ("component", stats.by_component)):
        t = Table(title=f"findings by {title}", title_justify="left", show_edge=False)
        t.add_column(title, no_wrap=True, max_width=34)
        t.add_column("new", justify="right", style="bold red")
        t.add_column("dup", justify="right")
        for key, (new, dup) in list(_split(counter).items())[:8]:
            t.add_row(key, str(new), str(dup))
        row.append(t)
    tables.add_row(*row)
    parts.append(tables)
    w = Table(title="workers", title_justify="left", show_edge=False)
    for col in ("worker", "state", "case", "restarts", "cases"):
        w.add_column(col)
    for h in stats.workers:
        style = "red" if h.state == "failed" else ""
        w.add_row(h.name, Text(h.state, style=style), "" if h.case is None else str(h.case), str(h.restarts),
                  str(h.cases))
    parts.append(w)
    if stats.new_bugs:
        f = stats.new_bugs[-1]
        parts.append(Text.assemble(("last new bug: ", "bold"), f"{f.symptom} at {f.stage} in {f.component} "
                                   f"({', '.join(f.pipelines[:2])}) ", (f.message.splitlines()[0][:100]
                                                                        if f.message else "", "dim")))
    if stats.stopping:
        parts.append(Text(f"stopping: {stats.stopping}", style="yellow"))
    return Group(*parts)


def make_display(quiet: bool, stream: TextIO = sys.stdout) -> Silent:
    if quiet:
        return Silent()
    return LiveDisplay() if stream.isatty() else PlainStatus(stream)


def summary_lines(summary: Any) -> list[str]:
    """The end-of-run summary: cases, rate, bugs new/total by symptom and component, gaps, skips, where."""
    st = summary.stats
    out = [f"stopped: {summary.reason} after {_hms(summary.seconds)}",
           f"{st.cases} cases ({st.rate():.2f}/s): {st.judged} judged, {st.invalid} invalid, "
           f"{st.harness_errors} harness errors",
           f"{len(st.new_bugs)} new bugs this run, {st.total_bugs} distinct bugs in the store"]
    for title, counter in (("symptom", st.by_symptom), ("component", st.by_component)):
        parts = [f"{k} {new} new/{new + dup}" for k, (new, dup) in _split(counter).items()]
        if parts:
            out.append(f"  findings by {title}: " + ", ".join(parts))
    for w in st.workers:
        if w.state == "failed":
            out.append(f"worker {w.name} failed: {w.error}")
    out.append(f"{st.gaps} capability gaps (not bugs); {st.flaky} flaky findings (not reproduced in a fresh worker, "
               f"not bugs); {st.recycles} workers recycled for memory")
    for r in st.skips:
        out.append(f"skipping graphs with {r.op} on {r.pipeline}: {r.reason}")
    out.append(f"store: {st.out}")
    out.append(f"next: parallax report {st.out}")
    return out
