"""A generated case on disk: graph.json, inputs.npz, weights.npz, case.json.

Arrays are .npz read with allow_pickle=False; every file is written to a temporary
name and renamed, so a crash never leaves a half-written case.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from generators.ir import Graph, GraphError
from generators.values import Values


class CaseError(ValueError):
    """A case folder that is missing a file or holds a corrupt one."""


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_case(out: Path, graph: Graph, values: Values, meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "inputs.npz", npz_bytes(values.inputs))
    atomic_write(out / "weights.npz", npz_bytes(values.weights))
    atomic_write(out / "case.json", (json.dumps(meta, sort_keys=True, indent=1) + "\n").encode())
    atomic_write(out / "graph.json", graph.dumps().encode())  # last: its presence marks a complete case


def _load_npz(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise CaseError(f"{path}: missing") from None
    except (ValueError, OSError, EOFError) as e:
        raise CaseError(f"{path}: not a valid .npz ({e})") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise CaseError(f"{path}: no array for {', '.join(missing)}")
    return {n: arrays[n] for n in names}


def read_case(folder: Path) -> tuple[Graph, Values]:
    gpath = folder / "graph.json"
    try:
        graph = Graph.loads(gpath.read_text())
        graph.validate()
    except FileNotFoundError:
        raise CaseError(f"{gpath}: missing") from None
    except (GraphError, UnicodeDecodeError) as e:
        raise CaseError(f"{gpath}: {e}") from None
    values = Values(_load_npz(folder / "inputs.npz", graph.inputs), _load_npz(folder / "weights.npz", graph.weights))
    for name, arr in {**values.inputs, **values.weights}.items():
        t = graph.tensors[name]
        if tuple(arr.shape) != t.shape or str(arr.dtype) != t.dtype:
            raise CaseError(f"{folder}: array {name} is {arr.dtype}{list(arr.shape)}, "
                            f"graph says {t.dtype}{list(t.shape)}")
    return graph, values
