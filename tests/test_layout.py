"""The shape of the code a reader relies on: fuzzer/ in rooms, no import circle, no private name borrowed
across modules, and the default pipeline rule (everything that really runs here, compile-only only on demand)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from fuzzer.targets.registry import Machine, availability, list_availability, select_pipelines
from oracles.pipeline_id import parse_pipeline

REPO = Path(__file__).resolve().parents[1]
ROOMS = {"cli", "campaign", "workers", "case", "targets", "reduce", "corpus", "report", "check", "reach"}
LOOSE_MODULES = {"__init__.py", "devices.py", "versions.py"}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for top in ("fuzzer", "generators", "oracles") for p in (REPO / top).rglob("*.py")}


def imports_of(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file, at any depth (lazy ones too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [a.name for a in node.names]
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]  # `from pkg import module`
            out += [(s, []) for s in subs]
            out.append((base, [n for n in names if f"{base}.{n}" not in known]))
    return out


def test_fuzzer_is_in_rooms() -> None:
    loose = {p.name for p in (REPO / "fuzzer").glob("*.py")} - LOOSE_MODULES
    assert not loose, f"modules outside a room: {sorted(loose)}"
    rooms = {p.name for p in (REPO / "fuzzer").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {"cli", "campaign", "workers", "case"} <= rooms and rooms <= ROOMS, rooms
    commands = {p.stem for p in (REPO / "fuzzer" / "cli").glob("*.py")}
    assert {"gen", "run", "fuzz", "nightly", "reduce", "replay", "report", "devices", "targets", "ops"} <= commands


def test_no_import_circle_within_fuzzer() -> None:
    known = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        if name.startswith("fuzzer"):
            graph[name] = {m for m, _ in imports_of(path, name, known) if m in known and m.startswith("fuzzer")
                           and m != name and not name.startswith(m + ".")}  # a module's own package is no edge
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_no_private_name_imported_across_modules() -> None:
    known = project_modules()
    borrowed = [f"{name}: from {m} import {n}" for name, path in known.items()
                for m, names in imports_of(path, name, known) if m in known for n in names if n.startswith("_")]
    assert not borrowed, borrowed


def test_parallax_help_lists_every_command() -> None:
    r = subprocess.run([sys.executable, "-m", "fuzzer.cli", "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    for cmd in ("gen", "ops", "run", "targets", "fuzz", "report", "nightly", "devices", "reduce", "replay"):
        assert cmd in r.stdout


# ----- the default pipelines -------------------------------------------------------------------------------
NO_GPU_WITH_NVCC = Machine(gpu=False, nvcc="/usr/local/cuda/bin/nvcc", cxx="/usr/bin/g++", ort_providers=())
GPU = Machine(gpu=True, nvcc="/usr/local/cuda/bin/nvcc", cxx="/usr/bin/g++",
              ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


def test_default_is_available_minus_compile_only() -> None:
    for machine in (NO_GPU_WITH_NVCC, GPU, None):
        rows = list_availability(machine)
        chosen = select_pipelines(machine=machine)
        assert chosen.run == [a.pipeline for a in rows if a.available and not a.compile_only]
        assert {n for n, _ in chosen.left_out} == {a.pipeline.name for a in rows} - {p.name for p in chosen.run}
        assert all(why for _, why in chosen.left_out)
        nightly = select_pipelines(compile_only=True, machine=machine)
        assert nightly.run == [a.pipeline for a in rows if a.available]


def test_default_runs_tvm_at_every_level_through_every_route() -> None:
    """The CPU TVM pipelines run on llvm; the default must not drop them for not saying "cpu"."""
    run = {p.name for p in select_pipelines(machine=NO_GPU_WITH_NVCC).run}
    for route in ("torch>onnx:torchscript", "torch>onnx:dynamo", "torch>export"):
        for level in ("O0", "O1", "O2", "O3"):
            assert f"{route}>tvm:{level}:llvm" in run
    cuda_tvm = parse_pipeline("torch>export>tvm:O3:cuda")
    assert availability(cuda_tvm, NO_GPU_WITH_NVCC).compile_only and cuda_tvm.name not in run
    assert cuda_tvm.name in {p.name for p in select_pipelines(compile_only=True, machine=NO_GPU_WITH_NVCC).run}
    with_gpu = {p.name for p in select_pipelines(machine=GPU).run}
    assert {"torch>eager:cuda", "torch>export>tvm:O3:cuda", "torch>onnx:torchscript>ort:all:cuda"} <= with_gpu


def test_named_pipelines_leave_the_rest_out_with_a_reason() -> None:
    names = ["torch>onnx:torchscript>ort:all:cpu", "torch>export>tvm:O0:llvm"]
    chosen = select_pipelines(names)
    assert [p.name for p in chosen.run] == names
    assert len(chosen.left_out) == len(list_availability()) - 2
    lines = chosen.lines()
    assert lines[0].startswith("pipelines: running 2: ") and any("not named" in x for x in lines[1:])
