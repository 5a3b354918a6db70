"""Inputs and expected outputs in the ONNX test-data layout (`test_data_set_0/input_0.pb`, `output_0.pb`, ...).

The layout onnxruntime's onnx_test_runner and ONNX's backend tests read: one serialised TensorProto per
file, numbered in the model's input and output order. Protobuf, never pickles.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

DATA_SET = "test_data_set_0"
_FILE = re.compile(r"^(input|output)_(\d+)\.pb$")


class TestDataError(ValueError):
    """A test-data folder with a missing, misnumbered or unreadable .pb file."""

    __test__ = False  # not a pytest class, despite the name


def tensor_bytes(name: str, array: np.ndarray) -> bytes:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array), name=name).SerializeToString()


def data_set_files(inputs: list[tuple[str, np.ndarray]], outputs: list[tuple[str, np.ndarray]]) -> dict[str, bytes]:
    """{relative path: bytes} of one data set; the caller writes them (atomically, with the rest of the entry)."""
    files = {f"{DATA_SET}/input_{i}.pb": tensor_bytes(n, a) for i, (n, a) in enumerate(inputs)}
    files.update({f"{DATA_SET}/output_{i}.pb": tensor_bytes(n, a) for i, (n, a) in enumerate(outputs)})
    return files


def read_tensor(path: Path) -> tuple[str, np.ndarray]:
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    t = onnx.TensorProto()
    try:
        t.ParseFromString(path.read_bytes())
        return t.name, numpy_helper.to_array(t)
    except FileNotFoundError:
        raise TestDataError(f"{path}: missing") from None
    except (DecodeError, ValueError, TypeError) as e:
        raise TestDataError(f"{path}: not a TensorProto ({e})") from None


def read_data_set(folder: Path) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(inputs, outputs) of `folder/test_data_set_0`, each a list of (name, array) in file-number order."""
    ds = folder / DATA_SET
    if not ds.is_dir():
        raise TestDataError(f"{ds}: missing")
    found: dict[str, dict[int, Path]] = {"input": {}, "output": {}}
    for p in ds.iterdir():
        m = _FILE.match(p.name)
        if m:
            found[m.group(1)][int(m.group(2))] = p
    out = []
    for kind in ("input", "output"):
        idx = sorted(found[kind])
        if idx != list(range(len(idx))):
            raise TestDataError(f"{ds}: {kind} files are not numbered 0..{len(idx) - 1}")
        out.append([read_tensor(found[kind][i]) for i in idx])
    return out[0], out[1]
