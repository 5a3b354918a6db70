"""Write one corpus entry, atomically, and read one back with every file checked.

An entry is a folder (see DESIGN.md "Corpus entry"): graph.json, finding.json, weights.npz, model.onnx when
the pipeline has an ONNX converter, test_data_set_0/ (inputs and expected outputs as TensorProtos), the
source model (torch: code inside repro.py; TF: saved_model/), repro.py and report.md. It is built in a
temporary sibling folder and renamed into place, so a crash never leaves half an entry; finding.json lists
every other file with its sha256, so a truncated or edited file is caught before anything runs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fuzzer.case.files import atomic_write, npz_bytes
from fuzzer.corpus import source_model
from fuzzer.corpus.report_md import make_title, render_report
from fuzzer.corpus.repro_script import ReproSpec, ReproUnsupported, check_supported, libraries, render_repro
from fuzzer.corpus.test_data import TestDataError, data_set_files, read_data_set
from generators.ir import Graph, GraphError
from generators.values import Values
from fuzzer.versions import stack_versions
from oracles.blame import CONVERTER_NAMES, SOURCE_NAMES
from oracles.judge import Finding, Reference
from oracles.outcome import Outcome
from oracles.pipeline_id import ONNX_CONVERTERS, PipelineError, PipelineId, parse_pipeline
from oracles.signature import normalise_message

FORMAT = 1
REQUIRED_KEYS = ("format", "pipeline", "symptom", "stage", "kind", "signature", "expect", "files", "judge_pipelines")
SOURCE_TIMEOUT_S = 600.0
_NODE_NAME = re.compile(r"(node name: |Node\()[^)]*\)")
_NAME_FIELD = re.compile(r"Name: \S+")
_PLACEHOLDER = re.compile(r"<id>|<shape>|<addr>|<uuid>|\bN\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class EntryError(ValueError):
    """An entry that cannot be written (unsupported finding) or read (missing or corrupt file)."""


class CaseEvidence(Protocol):
    """What write_entry reads from a run (fuzzer.case.runner.CaseResult has it)."""

    references: dict[str, Reference]
    outcomes: dict[str, Outcome]
    artefacts: dict[str, bytes]


@dataclass
class Evidence:
    """The pieces of a CaseResult an entry needs, for callers that have no CaseResult at hand."""

    references: dict[str, Reference]
    outcomes: dict[str, Outcome]
    artefacts: dict[str, bytes]


# -- pure helpers ------------------------------------------------------------------------------------------
def message_keys(message: str, lines: int = 2) -> list[str]:
    """Fragments of the raw error text that survive another graph: per normalised line (the first `lines`),
    the longest run between placeholders (names, shapes, numbers) that occurs verbatim in the message."""
    # Node names differ between the campaign's conversion and repro.py's (tf2onnx names nodes after the
    # SavedModel's function): mask them so no fragment depends on one.
    message = _NODE_NAME.sub(r"\1<id>)", message)
    message = _NAME_FIELD.sub("Name: <id>", message)
    raw = _ANSI.sub("", message)
    keys = []
    for norm in normalise_message(message).split("\n")[:lines]:
        pieces = sorted((p.strip(" ,.:;'\"()[]{}") for p in _PLACEHOLDER.split(norm)), key=len, reverse=True)
        key = next((p for p in pieces if len(p) >= 8 and p in raw), "")
        if key and key not in keys:
            keys.append(key)
    return keys


def versions() -> dict[str, str]:
    """Installed versions of the stack (read from package metadata: nothing heavy is imported)."""
    return stack_versions()


def repro_mode(pid: PipelineId, finding: Finding, has_model: bool) -> str:
    """"onnx" when the exported model is fine and a backend is at fault (start from model.onnx), else "source"."""
    if not has_model or pid.converter not in ONNX_CONVERTERS or finding.stage in ("export", "check"):
        return "source"
    if finding.component in (CONVERTER_NAMES[pid.converter], SOURCE_NAMES[pid.source]):
        return "source"
    return "onnx"


def judge_pipelines(pid: PipelineId, finding: Finding, ran: list[str]) -> list[str]:
    """The pipelines whose votes made this finding: its own, the unoptimised consumers of the same model and
    the lowest level of the same backend (every pipeline of the source when the source was outvoted)."""
    want = set(finding.pipelines) | {pid.name}
    for name in ran:
        q = parse_pipeline(name)
        if q.source != pid.source:
            continue
        plain = q.backend == "onnxref" or q.level in ("disable", "O0")
        same_model = q.converter == pid.converter and q.converter in ONNX_CONVERTERS
        lowest = q.backend == pid.backend and q.converter == pid.converter and plain
        if (same_model and plain) or lowest or finding.component == SOURCE_NAMES[pid.source]:
            want.add(name)
    return sorted(want)


def entry_name(finding: Finding, graph: Graph) -> str:
    """A folder name that says what the entry is: component-symptom-op-hash."""
    ops = "-".join(dict.fromkeys(n.op for n in graph.topological_nodes()))[:40]
    text = f"{finding.component}-{finding.symptom}-{finding.first_op or ops}"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    digest = hashlib.sha256(finding.signature.encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON: {type(o).__name__}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "finding.json"}


def _write(folder: Path, rel: str, data: bytes) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def _model_io(model: bytes | None) -> tuple[list[str], list[str], str]:
    """(input names that are not initializers, output names, printable text) of an ONNX model."""
    if model is None:
        return [], [], ""
    import onnx
    import onnx.printer

    m = onnx.load_from_string(model)
    inits = {t.name for t in m.graph.initializer}
    try:
        text = onnx.printer.to_text(m.graph)
    except Exception:  # noqa: BLE001 - the text is a courtesy; an odd model still makes an entry
        text = ""
    return [i.name for i in m.graph.input if i.name not in inits], [o.name for o in m.graph.output], text


def _data_set(graph: Graph, values: Values, expected: list[np.ndarray] | None,
              model_inputs: list[str], model_outputs: list[str]) -> dict[str, bytes]:
    """Graph inputs in graph order, named as the model names them (tf2onnx may add ':0') when there is one."""
    by_graph = {(m[:-2] if m.endswith(":0") else m): m for m in model_inputs}
    inputs = [(by_graph.get(n, n), values.inputs[n]) for n in graph.inputs]
    names = model_outputs if len(model_outputs) == len(graph.outputs) else graph.outputs
    outputs = list(zip(names, expected)) if expected is not None else []
    return data_set_files(inputs, outputs)


def _materialise(folder: Path, source: str) -> dict[str, Any]:
    """The source model in standalone form, made by a child process (see fuzzer.corpus.source_model)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run([sys.executable, "-m", "fuzzer.corpus.source_model", source, str(folder)], cwd=root,
                              env=env, capture_output=True, text=True, timeout=SOURCE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EntryError(f"materialising the {source} source model took over {SOURCE_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise EntryError(f"cannot write a standalone {source} model: {tail}")
    if source != "torch":
        return {}
    path = folder / source_model.TORCH_SOURCE
    data = json.loads(path.read_text())
    path.unlink()
    return data


# -- writing -----------------------------------------------------------------------------------------------
def write_entry(out_dir: Path, graph: Graph, values: Values, finding: Finding, result: CaseEvidence,
                pipeline: str | None = None, timeout_s: float = 120.0, memory_mb: int = 8192) -> Path:
    """Write the corpus entry for `finding` on `pipeline` (default: its first) into the new folder `out_dir`.

    `result` is the CaseResult the finding came from (references, outcomes, artefacts). Atomic: the entry
    is built in a temporary sibling and renamed; `out_dir` must not exist. Raises EntryError for findings
    that have no standalone repro (slowdowns, reference crashes, non-CPU pipelines).
    """
    name = pipeline or finding.pipelines[0]
    if name not in finding.pipelines:
        raise EntryError(f"pipeline {name} is not one of the finding's: {', '.join(finding.pipelines)}")
    try:
        pid = parse_pipeline(name)
    except PipelineError as e:
        raise EntryError(str(e)) from None
    if finding.symptom == "slowdown" or finding.stage == "reference":
        raise EntryError(f"{finding.symptom} at {finding.stage}: no standalone repro for this kind of finding")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise EntryError(f"{out_dir}: already exists (entries are never overwritten)")
    model = result.artefacts.get(f"{pid.source}>{pid.converter}") if pid.converter in ONNX_CONVERTERS else None
    mode = repro_mode(pid, finding, model is not None)
    try:
        check_supported(pid, mode)
    except ReproUnsupported as e:
        raise EntryError(str(e)) from None
    ref = result.references.get(pid.source)
    expected = ref.outputs if ref is not None and ref.failure is None else None
    if finding.symptom == "wrong_output" and (expected is None or ref is None):
        raise EntryError("a wrong-output finding without reference outputs")
    tols = [(t.atol, t.rtol) for t in ref.tolerances()] if expected is not None and ref is not None else []
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _fill(tmp, graph, values, finding, result, pid, mode, model, expected, tols, timeout_s, memory_mb)
        if out_dir.exists():
            raise EntryError(f"{out_dir}: already exists (entries are never overwritten)")
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _fill(tmp: Path, graph: Graph, values: Values, finding: Finding, result: CaseEvidence, pid: PipelineId,
          mode: str, model: bytes | None, expected: list[np.ndarray] | None, tols: list[tuple[float, float]],
          timeout_s: float, memory_mb: int) -> None:
    model_inputs, model_outputs, model_text = _model_io(model)
    _write(tmp, "graph.json", graph.dumps().encode())
    _write(tmp, "weights.npz", npz_bytes(values.weights))
    if model is not None:
        _write(tmp, "model.onnx", model)
    for rel, data in _data_set(graph, values, expected, model_inputs, model_outputs).items():
        _write(tmp, rel, data)
    torch_source = _materialise(tmp, pid.source) if mode == "source" else {}
    exc_type = finding.detail.get("exc_type", "") if finding.symptom != "wrong_output" else ""
    error = finding.detail.get("error", finding.message)
    expect = {"symptom": finding.symptom, "kind": finding.kind, "stage": finding.stage, "exc_type": exc_type,
              "keys": message_keys(error) if finding.symptom != "wrong_output" and finding.kind not in
              ("segfault", "abort", "timeout", "oom") else []}
    ran = sorted(n for n, o in result.outcomes.items() if not o.skipped)
    record: dict[str, Any] = {
        "format": FORMAT, "pipeline": pid.name, "source": pid.source, "converter": pid.converter,
        "backend": pid.backend, "level": pid.level, "device": pid.device, "mode": mode,
        "symptom": finding.symptom, "stage": finding.stage, "kind": finding.kind, "component": finding.component,
        "location": finding.location, "signature": finding.signature, "first_op": finding.first_op,
        "culprit": finding.culprit, "why": finding.why, "message": finding.message, "expect": expect,
        "pipelines": list(finding.pipelines), "judge_pipelines": judge_pipelines(pid, finding, ran),
        "versions": versions(), "graph_hash": graph.content_hash(),
        "inputs": list(graph.inputs), "outputs": list(graph.outputs),
        "tolerances": [{"output": o, "dtype": graph.tensors[o].dtype, "atol": a, "rtol": r, "exact": a == r == 0.0}
                       for o, (a, r) in zip(graph.outputs, tols)],
        "records": finding.detail.get("records", []), "timeout_s": timeout_s, "memory_mb": memory_mb,
        "finding": finding.to_json()}
    spec = ReproSpec(pid, mode, expect, list(graph.inputs), list(graph.outputs), tols, "", timeout_s, memory_mb,
                     torch_source, (tmp / source_model.TORCH_CONSTANTS).exists())
    record["libraries"] = libraries(spec)
    record["title"] = spec.title = make_title(record, graph)
    repro = render_repro(spec)
    _write(tmp, "repro.py", repro.encode())
    _write(tmp, "report.md", render_report(record, graph, repro, model_text).encode())
    record["files"] = _manifest(tmp)
    _write(tmp, "finding.json", (json.dumps(record, indent=1, default=_json_default) + "\n").encode())


# -- reading -----------------------------------------------------------------------------------------------
def read_entry(folder: Path) -> tuple[dict[str, Any], Graph, Values]:
    """finding.json, the graph and its values (inputs from the test data, weights.npz), every file checked
    against the manifest; EntryError names the first missing or corrupt file."""
    path = folder / "finding.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise EntryError(f"{path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EntryError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED_KEYS):
        raise EntryError(f"{path}: not a corpus entry record (needs {', '.join(REQUIRED_KEYS)})")
    if record["format"] != FORMAT:
        raise EntryError(f"{path}: format {record['format']!r}, this Parallax reads {FORMAT}")
    for rel, digest in record["files"].items():
        f = folder / rel
        if not f.is_file():
            raise EntryError(f"{f}: missing")
        if _sha256(f) != digest:
            raise EntryError(f"{f}: corrupt (its sha256 differs from finding.json's)")
    try:
        graph = Graph.loads((folder / "graph.json").read_text())
        graph.validate()
        inputs, _ = read_data_set(folder)
        with np.load(folder / "weights.npz", allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
        parse_pipeline(record["pipeline"])
    except (GraphError, TestDataError, PipelineError, OSError, ValueError) as e:
        raise EntryError(f"{folder}: {e}") from None
    if len(inputs) != len(graph.inputs):
        raise EntryError(f"{folder}: {len(inputs)} input files for {len(graph.inputs)} graph inputs")
    return record, graph, Values(dict(zip(graph.inputs, (a for _, a in inputs))), weights)
