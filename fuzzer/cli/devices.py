"""`parallax devices`: the CPU, and CUDA as torch, onnxruntime, TVM and nvcc see it."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    d = sub.add_parser("devices", help="the devices the pipelines can use: CPU, and CUDA as torch/ORT/TVM see it")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(run=run_devices)


def run_devices(args: argparse.Namespace) -> int:
    from fuzzer.devices import discover_devices

    devices = discover_devices()
    if args.json:
        print(json.dumps(devices.to_json(), indent=1))
    else:
        print("\n".join(devices.lines()))
    return 0
