"""`parallax check` benchmark: per model, the wall time of a whole check and the share of it spent inside
the systems under test (exporters, converters, onnxruntime, the ONNX reference evaluator, TVM, and the
eager reference), i.e. the stages the workers timed; the rest is Parallax: worker start-up, loading the
model, moving arrays, judging and diagnosing.

Prints one JSON object: one row per model (wall s, inside-SUT s and share, seconds per stage, pipelines,
statuses, the conversion diagnosis) and the totals.

    .venv/bin/python bench/check.py                          # every built-in, default pipelines
    .venv/bin/python bench/check.py --models tiny_cnn,resnet18 --inputs 2 --skip-onnxref
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from fuzzer.check.catalog import builtin_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(builtin_names()), help="comma-separated built-ins or model paths")
    ap.add_argument("--inputs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pipelines", help="comma-separated pipelines (default: every applicable one)")
    ap.add_argument("--skip-onnxref", action="store_true")
    ap.add_argument("--work-dir", default=str(ROOT / ".work"))
    args = ap.parse_args()

    from fuzzer.check.catalog import memory_mb
    from fuzzer.check.report import build_report
    from fuzzer.check.runner import Checker, CheckError, CheckSettings
    from fuzzer.check.spec import ModelError, resolve_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_check.") as tmp:
        for name in [m for m in args.models.split(",") if m]:
            try:
                spec = resolve_model(name)
            except ModelError as e:
                rows.append({"model": name, "error": str(e)})
                continue
            settings = CheckSettings(inputs=args.inputs, repeats=args.repeats, skip_onnxref=args.skip_onnxref,
                                     memory_mb=memory_mb(spec.ref if spec.kind == "builtin" else ""),
                                     pipelines=args.pipelines.split(",") if args.pipelines else None,
                                     out=Path(tmp) / spec.name, work=Path(args.work_dir))
            t0 = time.perf_counter()
            try:
                run = Checker(spec, settings).check()
            except CheckError as e:
                rows.append({"model": name, "error": str(e), "wall_s": round(time.perf_counter() - t0, 2)})
                continue
            wall = time.perf_counter() - t0
            report = build_report(run)
            diag = {c: {"diverging": d.get("diverging"), "layer": d.get("layer"), "fault_class": d.get("fault_class")}
                    for c, d in report["diagnoses"].items()}
            rows.append({"model": name, "framework": report["framework"], "wall_s": round(wall, 2),
                         "sut_s": round(run.sut_seconds, 2), "sut_share": round(run.sut_seconds / wall, 3),
                         "stage_s": report["stage_seconds"], "pipelines": len(report["pipelines"]),
                         "statuses": dict(Counter(r["status"] for r in report["pipelines"])),
                         "slower": [s["pipeline"] for s in report["slowdowns"] if s["slower"]], "diagnoses": diag})
    done = [r for r in rows if "wall_s" in r and "error" not in r]
    total = sum(r["wall_s"] for r in done)
    print(json.dumps({"inputs": args.inputs, "repeats": args.repeats, "models": rows,
                      "total_wall_s": round(total, 2),
                      "total_sut_share": round(sum(r["sut_s"] for r in done) / total, 3) if total else None},
                     indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
