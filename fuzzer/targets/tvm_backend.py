"""TVM Relax (0.27) as a backend: import, build at an opt level, run, time, and blame one pass.

The caller times and attributes failures per stage, so each public function is exactly one
stage: `import_onnx` / `import_exported_program` ("import"), `build` ("compile"), `run` and
`time_runs` ("run").

What the opt level changes in TVM 0.27 (read from the installed package and checked with a
pass instrument, see `passes_that_run`):

* `relax.get_default_pipeline(target)` is the same four groups for llvm and cuda: library
  dispatch (DispatchSampling, DispatchSortScan), legalisation (LegalizeOps,
  AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR; cuda adds the dlight default GPU
  schedule `ApplyDefaultSchedule(Matmul, GEMV, Reduction, GeneralReduction, Fallback)`),
  dataflow lowering and VM finalisation (cuda adds RewriteCUDAGraph). The TIR lowering run by
  `tvm.compile` is the "s_tir" pipeline (about 50 passes, FlattenBuffer, VectorizeLoop,
  StorageRewrite, LoopPartition, CommonSubexprElim, ...). Every one of these passes is
  registered with opt_level 0, so none is switched off by the level.
* What the level does change: FuseOps reads `PassContext.opt_level` itself: at O0 it fuses
  nothing (one PrimFunc per op), at O1 and above it runs the full fusion algorithm. FuseTIR
  then runs three opt_level-1 passes (CanonicalizeTIRVariables, CanonicalizeRelaxBindings,
  DeadCodeElimination) that O0 skips. Nothing in TVM's own passes separates O1, O2 and O3.
* TVM does let the LLVM code generator's level differ: the llvm target's "opt-level"
  option (the LLVM pass pipeline, -O0..-O3; TVM's default is -O3 whatever the pass context
  says). `build` sets it to the same number, so O1, O2 and O3 differ in machine code, and O0
  is unoptimised end to end. For cuda it applies to the host code; device code goes through
  NVRTC or nvcc with their defaults. `find_guilty_pass` can name it as the pseudo-pass
  `LLVM_OPT_PASS`: "disabling" it builds with LLVM -O0.

`disabled_passes` reaches every pass run inside a `tvm.transform.Sequential` (all of the
above, by the names `passes_that_run` reports, e.g. "FuseOps", "tirx.VectorizeLoop",
"s_tir.LoopPartition"); disabling FuseOps at O3 really yields one PrimFunc per op.

CUDA without a GPU: the cuda pipeline already applies the dlight default schedule, so
unscheduled PrimFuncs do not fail VerifyMemory. TVM 0.27 stores CUDA kernels as C source in
the executable and compiles them only when a GPU loads the module, so `tvm.compile` alone
never runs a CUDA compiler; `build` therefore compiles the source itself through TVM's own
`tvm_callback_cuda_compile`, making a device-compiler failure a compile-stage failure (on a
GPU machine the runtime compiles it once more at load). That callback uses NVRTC from the
`cuda-bindings` package unless TVM's own TVM_CUDA_COMPILE_MODE says "nvcc"; where
cuda-bindings is missing and the variable is unset, `build` sets it to "nvcc" (needs nvcc on
PATH). Without a GPU the arch cannot be detected, so it is pinned to `DEFAULT_CUDA_ARCH`
(TVM's own fallback, sm_50, is rejected by CUDA 13's nvcc).

A level-dependent result this exposes (pinned in tests/test_tvm_backend.py): uint8 BitShift
LEFT/RIGHT by 8 or more is 0 in onnxruntime and numpy, and in TVM with LLVM -O0/-O1, but TVM
emits a bare LLVM shift (poison for such amounts), so with LLVM -O2/-O3, TVM's default,
vectorised code yields x << (s mod 8).

Threads: TVM's runtime thread pool reads TVM_NUM_THREADS when it starts; this module sets it
to 1 before importing TVM unless it is already set, so timings are not skewed by the 2-core
machine being shared.

ONNX inputs: shapes and dtypes are passed explicitly from the model's graph inputs (those
that are not initializers); fully static shapes are pinned, inputs with symbolic dims are left
to TVM (it makes them symbolic). The opset is the model's default-domain opset import, passed
explicitly (TVM would otherwise take the same value). Weights stay constants in the module
(keep_params_in_input=False), so `run` takes exactly the model's inputs, in order.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", "1")

import importlib.util  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tvm  # noqa: E402
from tvm import relax  # noqa: E402

TARGETS = ("llvm", "cuda")
DEFAULT_CUDA_ARCH = "sm_80"
# Pseudo-pass: in `disabled_passes` it builds with LLVM -O0 instead of -O<opt_level>.
LLVM_OPT_PASS = "llvm.opt-level"
# Passes that read PassContext.opt_level inside instead of being skipped by it.
OPT_LEVEL_SENSITIVE_PASSES = ("FuseOps",)
# Containers the instrument sees but that are not passes of their own.
_CONTAINER_PASSES = frozenset({"sequential", "_pipeline"})


class DeviceUnavailable(RuntimeError):
    """The module was built for a device this machine does not have (compile-only testing)."""


@dataclass
class Compiled:
    """A built module plus what it was built with; `lowered` is the Relax+TIR module before codegen."""

    executable: Any  # relax.VMExecutable
    target: str
    opt_level: int
    disabled_passes: tuple[str, ...]
    lowered: tvm.IRModule
    _vm: Any = field(default=None, repr=False)


# ---------------------------------------------------------------- import


def _onnx_input_signature(model: onnx.ModelProto) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Static shapes and numpy dtype names of the graph inputs that are not initializers."""
    initializers = {t.name for t in model.graph.initializer}
    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        ttype = value.type.tensor_type
        if ttype.elem_type:
            dtypes[value.name] = str(onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type))
        if ttype.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
            if all(d is not None for d in dims):
                shapes[value.name] = [int(d) for d in dims]
    return shapes, dtypes


def _default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return 1


def import_onnx(model_bytes: bytes) -> tvm.IRModule:
    """ONNX → Relax with the model's own static input signature and opset (stage "import")."""
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load_from_string(model_bytes)
    shapes, dtypes = _onnx_input_signature(model)
    return from_onnx(model, shape_dict=shapes, dtype_dict=dtypes, opset=_default_opset(model),
                     keep_params_in_input=False)


def import_exported_program(ep: Any) -> tvm.IRModule:
    """torch.export.ExportedProgram → Relax, weights bound as constants (stage "import")."""
    from tvm.relax.frontend.torch import from_exported_program

    return from_exported_program(ep, keep_params_as_input=False)


# ---------------------------------------------------------------- build


def cuda_available() -> bool:
    """Whether a CUDA device is present (building for cuda works without one)."""
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:  # noqa: BLE001 - a runtime built without CUDA raises instead of saying no
        return False


def _cuda_arch() -> str:
    if cuda_available():
        return "sm_" + str(tvm.cuda(0).compute_version).replace(".", "")
    return DEFAULT_CUDA_ARCH


def _ensure_cuda_compiler() -> None:
    """Route device code to nvcc where TVM's default, NVRTC via cuda-bindings, is not installed."""
    if "TVM_CUDA_COMPILE_MODE" not in os.environ and importlib.util.find_spec("cuda") is None:
        os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"


def make_target(target: str, opt_level: int, llvm_opt_level: int | None = None) -> tvm.target.Target:
    """The TVM target for "llvm" or "cuda", with LLVM's own level following the TVM opt level."""
    if target not in TARGETS:
        raise ValueError(f"unknown TVM target {target!r} (one of {', '.join(TARGETS)})")
    host = {"kind": "llvm", "opt-level": opt_level if llvm_opt_level is None else llvm_opt_level}
    if target == "llvm":
        return tvm.target.Target(host)
    return tvm.target.Target({"kind": "cuda", "arch": _cuda_arch()}, host=host)


def _check_opt_level(opt_level: int) -> None:
    if opt_level not in (0, 1, 2, 3):
        raise ValueError(f"TVM opt level must be 0..3, got {opt_level}")


def _build_in_context(mod: tvm.IRModule, opt_level: int, target: str, disabled: Sequence[str],
                      instruments: Sequence[Any] = ()) -> Compiled:
    _check_opt_level(opt_level)
    tvm_target = make_target(target, opt_level, 0 if LLVM_OPT_PASS in disabled else None)
    if target == "cuda":
        _ensure_cuda_compiler()
    tvm_disabled = [p for p in disabled if p != LLVM_OPT_PASS]
    with tvm.transform.PassContext(opt_level=opt_level, disabled_pass=tvm_disabled, instruments=list(instruments)):
        with tvm_target:
            lowered = relax.get_default_pipeline(tvm_target)(mod)
        executable = tvm.compile(lowered, tvm_target, relax_pipeline=None)
        if target == "cuda":
            with tvm_target:
                _compile_device_code(executable)
    return Compiled(executable, target, opt_level, tuple(disabled), lowered)


def _device_modules(module: Any, kind: str) -> list[Any]:
    found = [module] if module.kind == kind else []
    for sub in module.imports:
        found.extend(_device_modules(sub, kind))
    return found


def device_sources(compiled: Compiled) -> list[str]:
    """The CUDA C source of each device module in a cuda build (empty for llvm)."""
    return [m.inspect_source() for m in _device_modules(compiled.executable.mod, "cuda")]


def _compile_device_code(executable: Any) -> None:
    """Compile the CUDA source now, the way the runtime would when it loads the module.

    TVM 0.27 keeps CUDA kernels as source in the executable and compiles them when a GPU loads
    them; doing it here too makes a device-compiler failure a compile-stage failure, GPU or not.
    """
    compile_cuda = tvm.get_global_func("tvm_callback_cuda_compile")
    for module in _device_modules(executable.mod, "cuda"):
        compile_cuda(module.inspect_source())


def build(mod: tvm.IRModule, opt_level: int, target: str, disabled_passes: Sequence[str] = ()) -> Compiled:
    """The default Relax pipeline for `target` plus TIR lowering and codegen (stage "compile")."""
    return _build_in_context(mod, opt_level, target, tuple(disabled_passes))


# ---------------------------------------------------------------- run


def _device(target: str) -> Any:
    if target == "cuda":
        if not cuda_available():
            raise DeviceUnavailable("built for cuda, but this machine has no CUDA device (compile-only)")
        return tvm.cuda(0)
    return tvm.cpu(0)


def _flatten(value: Any, out: list[np.ndarray]) -> None:
    """VM results as numpy arrays: tensors copied back, tuples flattened in order, scalars rank-0."""
    if isinstance(value, tvm.runtime.Tensor):
        out.append(value.numpy())
    elif isinstance(value, tvm.runtime.ShapeTuple):
        out.append(np.asarray(list(value), dtype=np.int64))
    elif isinstance(value, (bool, int, float, np.generic)):
        out.append(np.asarray(value))
    elif isinstance(value, Sequence) or hasattr(value, "__len__") and hasattr(value, "__getitem__"):
        for item in value:
            _flatten(item, out)
    else:
        raise TypeError(f"unexpected VM result of type {type(value).__name__}")


def _vm(compiled: Compiled) -> Any:
    if compiled._vm is None:
        compiled._vm = relax.VirtualMachine(compiled.executable, _device(compiled.target))
    return compiled._vm


def _upload(compiled: Compiled, inputs: list[np.ndarray]) -> list[Any]:
    dev = _device(compiled.target)
    return [tvm.runtime.tensor(_contiguous(x), dev) for x in inputs]


def run(compiled: Compiled, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run "main" once; outputs flat, in the model's output order (stage "run")."""
    args = _upload(compiled, inputs)
    out: list[np.ndarray] = []
    _flatten(_vm(compiled)["main"](*args), out)
    return out


def time_runs(compiled: Compiled, inputs: list[np.ndarray], repeats: int = 10, warmup: int = 1) -> list[float]:
    """Seconds per call of "main", inputs already on the device, results copied back each time."""
    args = _upload(compiled, inputs)
    main = _vm(compiled)["main"]
    times: list[float] = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        _flatten(main(*args), [])
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    return times


# ---------------------------------------------------------------- passes


@tvm.instrument.pass_instrument
class _PassRecorder:
    """Names of passes as they start; only passes the context lets run reach run_before_pass."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def run_before_pass(self, mod: tvm.IRModule, info: Any) -> None:
        name = str(info.name)
        if name not in _CONTAINER_PASSES and name not in self.names:
            self.names.append(name)


def _record_passes(mod: tvm.IRModule, opt_level: int, target: str,
                   disabled: Sequence[str] = ()) -> tuple[list[str], BaseException | None]:
    recorder = _PassRecorder()
    try:
        _build_in_context(mod, opt_level, target, tuple(disabled), [recorder])
    except Exception as exc:  # noqa: BLE001 - the passes up to a crash are still the answer
        return recorder.names, exc
    return recorder.names, None


def passes_that_run(mod: tvm.IRModule, opt_level: int, target: str) -> list[str]:
    """Passes that execute while building at `opt_level`, deduplicated in first-run order."""
    names, exc = _record_passes(mod, opt_level, target)
    if exc is not None:
        raise exc
    return names


def _candidate_passes(make_mod: Callable[[], tvm.IRModule], opt_level: int, target: str) -> list[str]:
    """Passes that run at `opt_level` but not at O0, then those that read the level themselves."""
    at_level, _ = _record_passes(make_mod(), opt_level, target)
    at_zero, _ = _record_passes(make_mod(), 0, target)
    extra = [p for p in at_level if p not in at_zero]
    sensitive = [p for p in OPT_LEVEL_SENSITIVE_PASSES if p in at_level and p not in extra]
    return extra + sensitive + ([LLVM_OPT_PASS] if opt_level > 0 else [])


def find_guilty_pass(make_mod: Callable[[], tvm.IRModule], opt_level: int, target: str,
                     is_bad: Callable[[Compiled | None, BaseException | None], bool]) -> str | None:
    """The single pass whose disabling makes a bad build at `opt_level` good, bisecting then linear.

    None when the build is not bad, when O0 is bad too (not an optimisation bug), or when no single
    candidate fixes it on its own.
    """
    tried: dict[tuple[str, ...], bool] = {}

    def bad(level: int, disabled: Sequence[str]) -> bool:
        key = (str(level), *sorted(disabled))
        if key not in tried:
            try:
                compiled, error = build(make_mod(), level, target, disabled), None
            except Exception as exc:  # noqa: BLE001 - a compile crash is one of the symptoms
                compiled, error = None, exc
            tried[key] = bool(is_bad(compiled, error))
        return tried[key]

    if not bad(opt_level, ()) or bad(0, ()):
        return None
    candidates = _candidate_passes(make_mod, opt_level, target)
    narrowed = list(candidates)
    while len(narrowed) > 1:
        half = len(narrowed) // 2
        first, second = narrowed[:half], narrowed[half:]
        if not bad(opt_level, first):
            narrowed = first
        elif not bad(opt_level, second):
            narrowed = second
        else:
            break
    for name in narrowed + [c for c in candidates if c not in narrowed]:
        if not bad(opt_level, [name]):
            return name
    return None


def _contiguous(x: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping rank 0 (np.ascontiguousarray turns a 0-d array into a 1-d one, and TVM then
    rejects it: a false crash on every 0-d input)."""
    return np.ascontiguousarray(x) if np.ndim(x) else np.asarray(x)
