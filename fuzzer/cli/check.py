"""`parallax check MODEL`: is a real model the same after conversion and compilation, and if not, where
does it break and why? Exit 0 when every pipeline agrees with the source, 1 when one mismatches or
crashes, 2 on bad input (nothing written)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import comma_names, positive_float, positive_int
from fuzzer.cli.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="run a real model through every applicable pipeline; localise, classify and "
                       "repair a diverging conversion")
    from fuzzer.check.catalog import builtin_names

    p.add_argument("model", help=f"a built-in name ({', '.join(builtin_names())}), a .py file defining "
                   "parallax_model() -> (model, example_input), a TF SavedModel folder, or a .onnx file "
                   "(backends only)")
    p.add_argument("--pipelines", type=comma_names, help="comma-separated pipelines (default: every applicable one)")
    p.add_argument("--inputs", type=positive_int, default=4, help="seeded inputs (real pictures for image models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed runs per pipeline (slowdown test)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--html", help="also write a self-contained HTML report to this file")
    p.add_argument("--out", help="folder for converted and repaired models (default: .work/check/MODEL)")
    p.add_argument("--converted", help="an ONNX file to diagnose as MODEL's conversion (a PyTorch MODEL); "
                   "no other pipeline runs")
    p.add_argument("--skip-onnxref", action="store_true", help="skip the ONNX reference evaluator (slow on big models)")
    p.add_argument("--onnxref-timeout", type=positive_float, default=120.0,
                   help="seconds the ONNX reference evaluator may take before it is skipped")
    p.add_argument("--no-diagnose", action="store_true", help="skip fault localisation and repair")
    p.add_argument("--stage-timeout", type=positive_float, default=300.0, help="seconds allowed per stage")
    p.add_argument("--memory-mb", type=positive_int, help="worker memory limit (resident MiB; default 8192, more "
                   "for built-ins whose converters need it)")
    p.add_argument("--work-dir", default=".work", help="worker logs and library caches")
    p.set_defaults(run=run_check)


def _validate(args: argparse.Namespace) -> tuple[Any, Any]:
    from fuzzer.check.catalog import memory_mb
    from fuzzer.check.job import parse_pid
    from fuzzer.check.runner import CheckSettings
    from fuzzer.check.spec import ModelError, resolve_model
    from oracles.pipeline_id import PipelineError

    try:
        spec = resolve_model(args.model)
        converted = None
        if args.converted:
            converted = Path(args.converted)
            if not converted.is_file() or converted.suffix != ".onnx":
                raise UsageError(f"--converted {args.converted}: not an .onnx file")
            resolve_model(str(converted))
    except ModelError as e:
        raise UsageError(str(e)) from None
    if spec.kind == "onnx" and converted is not None:
        raise UsageError("--converted needs a source model, not an ONNX file")
    for name in args.pipelines or ():
        try:
            parse_pid(name)
        except PipelineError as e:
            raise UsageError(str(e)) from None
    if args.html:
        html = Path(args.html)
        if html.is_dir() or not html.parent.is_dir():
            raise UsageError(f"--html {args.html}: not a writable file path (its folder must exist)")
    out = Path(args.out) if args.out else Path(args.work_dir) / "check" / spec.name
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    settings = CheckSettings(inputs=args.inputs, seed=args.seed, repeats=args.repeats,
                             stage_timeout_s=args.stage_timeout, onnxref_timeout_s=args.onnxref_timeout,
                             memory_mb=args.memory_mb or memory_mb(spec.ref if spec.kind == "builtin" else ""),
                             pipelines=list(args.pipelines) if args.pipelines else None,
                             skip_onnxref=args.skip_onnxref, diagnose=not args.no_diagnose, converted=converted,
                             out=out, work=Path(args.work_dir))
    return spec, settings


def run_check(args: argparse.Namespace) -> int:
    from fuzzer.check import render
    from fuzzer.check.catalog import BUILTINS
    from fuzzer.check.report import build_report
    from fuzzer.check.runner import Checker, CheckError, dump_json

    spec, settings = _validate(args)
    try:
        run = Checker(spec, settings).check()
    except (CheckError, ValueError) as e:
        raise UsageError(str(e).splitlines()[0]) from None
    classifier = BUILTINS[spec.ref].classifier if spec.kind == "builtin" else None
    report = build_report(run, classifier)
    if args.html:
        Path(args.html).write_text(render.page(report), encoding="utf-8")
        report["files"].append(str(args.html))
    if args.json:
        print(dump_json(report))
    else:
        print(render.text(report))
    bad = [r for r in report["pipelines"] if r["status"] == "MISMATCH" or r["status"].startswith("crash")]
    diverging = [d for d in report["diagnoses"].values() if d.get("diverging")]
    print(f"check: {len(bad)} pipeline(s) mismatching or crashing, {len(diverging)} diverging conversion(s)",
          file=sys.stderr)
    return 1 if bad or diverging else 0
