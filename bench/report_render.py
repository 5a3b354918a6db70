"""Load a `parallax report --html` page in headless Chromium and print one JSON object: did it load without
console errors or network requests, how many plots rendered with a non-zero size, its title, the time taken.

    .venv/bin/python bench/report_render.py crashes/            # renders the report of a campaign folder
    .venv/bin/python bench/report_render.py crashes/report.html  # or checks an existing report file

Not a test: CI has no Chromium (`apt-get install chromium`). The page itself has no script; the bench loads a
copy with a probe script added (it records errors, measures every <img>/<svg> after layout and lists the
resources the page fetched) and reads the probe's findings from `--dump-dom`. A screenshot of the original page
is checked for being more than a blank sheet. Exit 0 when everything holds, 1 when something does not, 2 when
the input or Chromium is missing.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBE_HEAD = """<script>
window.__probeErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__probeErrors.push(t && t !== window && t.tagName ? "failed to load <" + t.tagName.toLowerCase() + ">"
                                                           : String(e.message));
}, true);
(function () {
  var orig = console.error;
  console.error = function () { window.__probeErrors.push(Array.prototype.join.call(arguments, " "));
                                 return orig.apply(console, arguments); };
})();
</script>"""
PROBE_TAIL = """<script>
window.addEventListener("load", function () {
  var plots = [];
  document.querySelectorAll("img, svg").forEach(function (el) {
    var r = el.getBoundingClientRect();
    plots.push({tag: el.tagName.toLowerCase(), alt: el.getAttribute("alt") || "",
                width: Math.round(r.width), height: Math.round(r.height),
                natural_width: el.naturalWidth === undefined ? null : el.naturalWidth,
                complete: el.complete === undefined ? true : el.complete});
  });
  var fetched = performance.getEntriesByType("resource").map(function (e) { return e.name; });
  var pre = document.createElement("pre");
  pre.id = "parallax-probe";
  pre.textContent = JSON.stringify({title: document.title, plots: plots, errors: window.__probeErrors,
                                    resources: fetched, ready: document.readyState});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def headless(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--disable-background-networking", "--hide-scrollbars", "--virtual-time-budget=5000",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def make_report(folder: Path, target: Path) -> float:
    """`parallax report FOLDER --html TARGET` with the code in this checkout; its wall time."""
    t0 = time.perf_counter()
    env = {**os.environ, "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", str(ROOT / ".work" / "matplotlib"))}
    r = subprocess.run([sys.executable, "-m", "fuzzer.cli", "report", str(folder), "--html", str(target)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        print(json.dumps({"ok": False, "error": r.stderr.strip()[-500:]}))
        sys.exit(2)
    return time.perf_counter() - t0


def with_probe(page: str) -> str:
    page = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + PROBE_HEAD, page, count=1)
    return page.replace("</body>", PROBE_TAIL + "</body>", 1)


def console_errors(stderr: str) -> list[str]:
    """Console messages Chromium logged at error level (its own dbus/GPU chatter is not the page's)."""
    return [line.strip()[:300] for line in stderr.splitlines()
            if "CONSOLE" in line and ("ERROR" in line or "Uncaught" in line)]


def nonblank_share(png: Path) -> float | None:
    """Share of screenshot pixels that are not (near) white: a blank or failed page is ~0."""
    if not png.is_file():
        return None
    os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".work" / "matplotlib"))
    import matplotlib.image as mpimg
    img = mpimg.imread(str(png))
    rgb = img[..., :3]
    if rgb.dtype.kind in "ui":
        rgb = rgb / 255.0
    return float((rgb.min(axis=-1) < 0.94).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="a campaign folder (the report is rendered first) or a report .html file")
    ap.add_argument("--screenshot", help="keep the screenshot here (PNG)")
    args = ap.parse_args()
    target = Path(args.target)
    browser = chromium()
    if browser is None:
        print(json.dumps({"ok": False, "error": "no chromium on PATH (apt-get install chromium)"}))
        return 2
    if not target.exists():
        print(json.dumps({"ok": False, "error": f"{target}: no such file or folder"}))
        return 2
    result: dict[str, Any] = {"browser": subprocess.run([browser, "--version"], capture_output=True,
                                                         text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="report_render.") as tmp_text:
        tmp = Path(tmp_text)
        if target.is_dir():
            page_path = tmp / "report.html"
            result["report_seconds"] = round(make_report(target, page_path), 3)
        else:
            page_path = target
        page = page_path.read_text(encoding="utf-8")
        result["html"] = str(target if not target.is_dir() else target / "(rendered)")
        result["bytes"] = len(page.encode())
        result["script_free"] = "<script" not in page.lower()
        probe = tmp / "probe.html"
        probe.write_text(with_probe(page), encoding="utf-8")
        t0 = time.perf_counter()
        dom = headless(browser, "--dump-dom", probe.resolve().as_uri())
        result["render_seconds"] = round(time.perf_counter() - t0, 3)
        m = re.search(r'<pre id="parallax-probe">(.*?)</pre>', dom.stdout, re.S)
        found = json.loads(html.unescape(m.group(1))) if m else None
        shot = Path(args.screenshot) if args.screenshot else tmp / "shot.png"
        headless(browser, f"--screenshot={shot.resolve()}", "--window-size=1300,2400", page_path.resolve().as_uri())
        result["screenshot_nonblank_share"] = nonblank_share(shot)
    result["loaded"] = bool(found and found["ready"] == "complete")
    result["title"] = found["title"] if found else None
    plots = found["plots"] if found else []
    result["plots_total"] = len(plots)
    result["plots_rendered"] = sum(1 for p in plots if p["width"] > 0 and p["height"] > 0
                                   and p["complete"] and p["natural_width"] != 0)
    result["plots"] = plots
    result["page_errors"] = found["errors"] if found else ["the probe did not run"]
    result["console_errors"] = console_errors(dom.stderr)
    result["external_requests"] = [u for u in (found["resources"] if found else []) if not u.startswith("data:")]
    result["ok"] = bool(result["loaded"] and result["script_free"] and not result["page_errors"]
                        and not result["console_errors"] and not result["external_requests"]
                        and plots and result["plots_rendered"] == len(plots)
                        and (result["screenshot_nonblank_share"] or 0) > 0.01)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
