"""Values for an edited graph: carried over from the graph it came from, or searched anew.

A reduction edit keeps most leaves; a cut turns intermediates into leaves (their values computed with
the numpy reference); a resize slices. The bug often hangs on the exact values, so carrying them over
comes first and `find_values` is only the fallback when the carried values leave an op's domain.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from generators.emit.torch_module import as_tensor, run_nodes
from generators.ir import Graph
from generators.lower_numpy import LOWER as NUMPY_LOWER
from generators.lower_torch import LOWER as TORCH_LOWER
from generators.values import Values, check_values, find_values


def values_digest(values: Values) -> str:
    """sha256 over names, dtypes, shapes and bytes of every leaf: part of the reducer's cache key."""
    h = hashlib.sha256()
    for kind, arrays in (("i", values.inputs), ("w", values.weights)):
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name]) if np.ndim(arrays[name]) else np.asarray(arrays[name])
            h.update(f"{kind}:{name}:{a.dtype}:{a.shape};".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def evaluate_all(graph: Graph, values: Values) -> dict[str, np.ndarray]:
    """Every tensor of the graph by name, with the numpy reference (eager torch where numpy fails; only the
    leaves when both fail, and then a cut's new leaves are searched for instead of carried over)."""
    leaves: dict[str, np.ndarray] = {**values.inputs, **values.weights}
    env = dict(leaves)
    try:
        for n in graph.topological_nodes():
            outs = NUMPY_LOWER.call(n.op, [env[t] for t in n.inputs], n.attrs)
            for name, o in zip(n.outputs, outs):
                env[name] = np.asarray(o).astype(graph.tensors[name].dtype, copy=False)
        return env
    except Exception:  # any gap in the numpy lowerings: fall back to torch
        pass
    tleaves = {k: as_tensor(v) for k, v in leaves.items()}
    try:
        with torch.no_grad():
            tenv = run_nodes(graph, graph.topological_nodes(), tleaves, lambda name: tleaves[name], TORCH_LOWER)
    except (RuntimeError, ValueError, TypeError, IndexError):
        return dict(leaves)
    return {k: v.detach().numpy().astype(graph.tensors[k].dtype, copy=False) for k, v in tenv.items()}


def fit_array(a: np.ndarray, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """`a` made to `shape`/`dtype`: sliced from the front when every dim shrank, reshaped when only the
    rank changed, cyclically tiled otherwise; floats cast to ints are rounded first."""
    a = np.asarray(a)
    if a.shape != shape:
        if a.ndim == len(shape) and all(n <= m for n, m in zip(shape, a.shape)):
            a = a[tuple(slice(0, n) for n in shape)]
        elif a.size == int(np.prod(shape, dtype=np.int64)):
            a = a.reshape(shape)
        elif a.size:
            a = np.resize(a.ravel(), shape)
        else:
            a = np.zeros(shape, dtype=a.dtype)
    if a.dtype.kind == "f" and np.dtype(dtype).kind in "iub":
        a = np.rint(a)
    return np.array(a.astype(dtype), copy=True)


def carry_values(new: Graph, sources: dict[str, np.ndarray]) -> Values:
    """Leaves of `new` from same-named arrays in `sources` (the old leaves and intermediates), fitted."""
    def leaf(t: str) -> np.ndarray:
        tt = new.tensors[t]
        if t in sources:
            return fit_array(sources[t], tt.shape, tt.dtype)
        return np.zeros(tt.shape, dtype=tt.dtype)
    return Values({t: leaf(t) for t in new.inputs}, {t: leaf(t) for t in new.weights})


def values_ok(graph: Graph, values: Values) -> bool:
    """The eager torch reference runs, finite and inside every op's value domain (what value search promises)."""
    leaves = {k: as_tensor(v) for k, v in {**values.inputs, **values.weights}.items()}
    try:
        with torch.no_grad():
            env = run_nodes(graph, graph.topological_nodes(), leaves, lambda name: leaves[name], TORCH_LOWER)
            problems, _ = check_values(graph, env)
    except Exception:  # the eager reference failing in any way (a lowering refusing an edited attribute too)
        return False
    return not problems


def fit_values(new: Graph, sources: dict[str, np.ndarray], seed: int = 0) -> Values | None:
    """Carried-over values when they keep the reference valid, else a fresh value search, else None."""
    carried = carry_values(new, sources)
    if values_ok(new, carried):
        return carried
    try:
        found, report = find_values(new, seed, samples=8, search_steps=30)
    except Exception:  # an edit the eager lowering cannot run: not a candidate
        return None
    return found if report.ok else None
