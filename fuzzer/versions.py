"""Versions of the stack under test, read from package metadata (nothing heavy is imported)."""

from __future__ import annotations

import importlib.metadata
import platform

STACK = ("torch", "tensorflow-cpu", "tensorflow", "onnx", "onnxruntime", "onnxscript", "onnx-ir", "tf2onnx",
         "apache-tvm", "numpy", "z3-solver", "ml-dtypes", "protobuf")


def stack_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in STACK:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
