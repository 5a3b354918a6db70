"""The generator of an entry's repro.py: a standalone script a maintainer reads first and runs with
`python repro.py` in the entry's folder, on a machine with the libraries under test but no Parallax.

The script mirrors exactly how Parallax calls each system (fuzzer/targets/*: same calls, same options),
runs the failing pipeline, and judges what happens against finding.json's expectation:

* wrong output: compare with test_data_set_0/output_*.pb under the stored per-output tolerance (exact for
  ints and bools, NaN equal to NaN, infinities equal by sign);
* exception / invalid model: the same exception type at the same stage, its message holding the stored keys;
* segfault / abort / timeout / oom: the pipeline runs in a child process (the script itself with --child)
  and the parent judges the child's signal, deadline or memory.

It prints REPRODUCED or NOT REPRODUCED and one line of detail, and exits 0 or 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oracles.pipeline_id import ONNX_CONVERTERS, PipelineId

CHILD_KINDS = ("segfault", "abort", "timeout", "oom")
ORT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}


class ReproUnsupported(ValueError):
    """A pipeline or finding this generator cannot write a standalone script for."""


@dataclass
class ReproSpec:
    """Everything repro.py needs, all of it also in finding.json."""

    pipeline: PipelineId
    mode: str  # "source": build the source model and run the whole pipeline; "onnx": start from model.onnx
    expect: dict[str, Any]  # symptom, kind, stage, exc_type, keys
    graph_inputs: list[str]
    graph_outputs: list[str]
    tolerances: list[tuple[float, float]]
    title: str = ""
    timeout_s: float = 120.0
    memory_mb: int = 8192
    torch_source: dict = field(default_factory=dict)  # from source_model.torch_source
    has_constants: bool = False


def libraries(spec: ReproSpec) -> list[str]:
    """The libraries under test this script imports (besides numpy and onnx, which read the test data)."""
    p = spec.pipeline
    libs: list[str] = []
    if spec.mode == "source":
        libs += ["torch"] if p.source == "torch" else ["tensorflow"]
        if p.converter == "tf2onnx":
            libs.append("tf2onnx")
    if p.backend == "ort":
        libs.append("onnxruntime")
    if p.backend == "tvm":
        libs.append("tvm")
    return libs


def check_supported(p: PipelineId, mode: str) -> None:
    if p.device not in ("cpu", "llvm"):
        raise ReproUnsupported(f"{p.name}: repro.py covers CPU pipelines only")
    if p.backend == "eager":
        raise ReproUnsupported(f"{p.name}: eager on another device has no CPU repro")
    if mode == "onnx" and p.converter not in ONNX_CONVERTERS:
        raise ReproUnsupported(f"{p.name}: no ONNX model to start from")


# -- pieces of the script ---------------------------------------------------------------------------------
_HEADER = '''\
"""{title}

Parallax repro for {pipeline}: {what}.
Run `python repro.py` in this folder: it prints REPRODUCED (exit 0) or NOT REPRODUCED (exit 1) and one
line of detail. Inputs and expected outputs are in test_data_set_0/ (ONNX TensorProtos); finding.json
holds the versions it was found with, the tolerances and the diff statistics.
"""

{io}import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
'''

_CONSTANTS = '''
HERE = Path(__file__).resolve().parent
PIPELINE = {pipeline!r}
# What the bug looks like: the symptom, the failure kind, the stage, and for exceptions the type and stable
# fragments of the message (the parts between names, shapes and numbers), each of which must appear.
EXPECTED = {expect}
GRAPH_INPUTS = {inputs!r}
GRAPH_OUTPUTS = {outputs!r}
TOLERANCES = {tolerances!r}  # per output (atol, rtol): |got - expected| <= atol + rtol * |expected|
TIMEOUT_S = {timeout}
MEMORY_MB = {memory}
stage = "setup"


def enter(name):
    """Mark the pipeline stage now running (the child reports it to the parent on stdout)."""
    global stage
    stage = name
    if "--child" in sys.argv:
        print(f"STAGE {{name}}", flush=True)


def load_data_set():
    """Inputs by graph input name, and the expected outputs as (name, array), from test_data_set_0/."""
    def tensors(kind):
        files = sorted((HERE / "test_data_set_0").glob(f"{{kind}}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        out = []
        for path in files:
            t = onnx.TensorProto()
            t.ParseFromString(path.read_bytes())
            out.append((t.name, numpy_helper.to_array(t)))
        return out
    inputs = dict(zip(GRAPH_INPUTS, (a for _, a in tensors("input"))))
    return inputs, tensors("output")
'''

_ONNX_FEEDS = '''

def onnx_feeds(model_inputs, inputs):
    """Model input name -> array: converters keep the graph's input names, tf2onnx may add ':0'."""
    names = [n[:-2] if n.endswith(":0") else n for n in model_inputs]
    if not all(n in inputs for n in names) and len(model_inputs) == len(GRAPH_INPUTS):
        names = GRAPH_INPUTS  # renamed inputs: positional
    return {{m: inputs[n] for m, n in zip(model_inputs, names)}}
'''

_TORCH_MODEL = '''

# -- the model: torch.export's aten-level graph of the generated module, as a plain function ---------------
def aten_graph({params}):
{body}

class Model(torch.nn.Module):
    """The reduced graph: float weights are Parameters, the others buffers (as Parallax builds it)."""

    def __init__(self):
        super().__init__()
{weights_load}{constants_load}{registrations}

    def forward(self, *inputs):
        return aten_graph({call}*inputs)


def source_model(inputs):
    """The torch module and its arguments, in graph input order."""
    model = Model().eval()
    args = tuple(torch.from_numpy(np.array(inputs[n])) for n in GRAPH_INPUTS)
    return model, args


def reference(model, args):
    """The eager torch run the expected outputs came from."""
    with torch.no_grad():
        return [o.detach().numpy() for o in model(*args)]
'''

_TF_MODEL = '''

# -- the model: a SavedModel of the generated tf.Module (GraphDef + variables), `fn` takes the graph inputs --
def source_model(inputs):
    """The loaded SavedModel (its `fn` is the traced function, variables included) and the arguments."""
    model = tf.saved_model.load(str(HERE / "saved_model"))
    args = [tf.constant(inputs[n]) for n in GRAPH_INPUTS]
    return model, args


def reference(model, args):
    """The same function run by TF itself, for comparison with the stored expected outputs."""
    return [o.numpy() for o in model.fn(*args)]
'''

_TVM_HELPERS = '''

def tvm_build(mod, opt_level):
    """Relax's default pipeline and codegen inside PassContext(opt_level); LLVM's own level follows it."""
    target = tvm.target.Target({"kind": "llvm", "opt-level": opt_level})
    with tvm.transform.PassContext(opt_level=opt_level):
        with target:
            lowered = relax.get_default_pipeline(target)(mod)
        return tvm.compile(lowered, target, relax_pipeline=None)


def tvm_run(executable, args):
    """Run "main" once on the CPU; tuples flattened into a list of numpy arrays."""
    dev = tvm.cpu(0)
    vm = relax.VirtualMachine(executable, dev)
    result = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(a) if np.ndim(a) else np.asarray(a), dev)
                          for a in args])
    out = []

    def flatten(value):
        if isinstance(value, tvm.runtime.Tensor):
            out.append(value.numpy())
        elif isinstance(value, tvm.runtime.ShapeTuple):
            out.append(np.asarray(list(value), dtype=np.int64))
        elif isinstance(value, (bool, int, float, np.generic)):
            out.append(np.asarray(value))
        else:
            for item in value:
                flatten(item)
    flatten(result)
    return out
'''

_TVM_ONNX_HELPERS = '''

def onnx_input_signature(model):
    """Static shapes and dtypes of the model inputs that are not initializers (what Parallax passes TVM)."""
    initializers = {t.name for t in model.graph.initializer}
    shapes, dtypes = {}, {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        ttype = value.type.tensor_type
        if ttype.elem_type:
            dtypes[value.name] = str(onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        if ttype.HasField("shape") and all(d is not None for d in dims):
            shapes[value.name] = dims
    return shapes, dtypes


def default_opset(model):
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
'''

_JUDGE = '''

# -- judging ---------------------------------------------------------------------------------------------
def first_difference(expected, got, atol, rtol):
    """None when `got` matches `expected`, else one line: the error against the tolerance and the first index."""
    got = np.asarray(got)
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return f"got {got.dtype}{list(got.shape)}, expected {expected.dtype}{list(expected.shape)}"
    if expected.dtype.kind in "biu":  # ints and bools: exact
        bad, atol, rtol = expected != got, 0.0, 0.0
        e, g = expected.astype(np.float64), got.astype(np.float64)
    else:
        e, g = expected.astype(np.float64), got.astype(np.float64)
        same_nonfinite = (np.isnan(e) & np.isnan(g)) | (np.isinf(e) & (e == g))
        finite = np.isfinite(e) & np.isfinite(g)
        with np.errstate(invalid="ignore"):
            close = finite & (np.abs(g - e) <= atol + rtol * np.abs(e))
        bad = ~(same_nonfinite | close)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    finite = np.isfinite(e) & np.isfinite(g)
    max_abs = float(np.abs(g - e)[finite].max()) if finite.any() else float("nan")
    return (f"max abs error {max_abs:.4g} vs tolerance atol {atol:.3g} rtol {rtol:.3g}; {int(bad.sum())} of "
            f"{bad.size} elements differ, first at index {list(first)}: got {got[first].item()!r}, "
            f"expected {expected[first].item()!r}")


def compare(outputs, expected):
    if len(outputs) != len(expected):
        return f"{len(outputs)} outputs, expected {len(expected)}"
    for i, (got, (name, exp), (atol, rtol)) in enumerate(zip(outputs, expected, TOLERANCES)):
        why = first_difference(exp, got, atol, rtol)
        if why:
            return f"output {i} ({name}): {why}"
    return None


def reference_note(inputs, expected):
    """Whether the source framework itself still gives the expected outputs (source-mode scripts only)."""
    if "reference" not in globals():
        return ""
    try:
        why = compare(reference(*source_model(inputs)), expected)
    except Exception as e:  # noqa: BLE001 - a note, never the verdict
        return f"; the reference itself now fails: {type(e).__name__}"
    return "; the reference still gives the expected outputs" if why is None else f"; the reference differs too: {why}"


def error_text(e):
    return re.sub(r"\\x1b\\[[0-9;]*m", "", str(e)).strip() or repr(e)


def judge_mismatch(inputs, expected):
    try:
        outputs = run_pipeline(inputs)
    except Exception as e:  # noqa: BLE001 - the bug may have turned into another one
        return False, f"different failure: {type(e).__name__} at {stage}: {error_text(e).splitlines()[0][:300]}"
    why = compare(outputs, expected)
    if why is None:
        return False, f"{PIPELINE} matches the expected outputs"
    return True, why + reference_note(inputs, expected)


def judge_exception(inputs):
    try:
        run_pipeline(inputs)
    except Exception as e:  # noqa: BLE001 - the systems under test raise anything
        text = error_text(e)
        same = (type(e).__name__ == EXPECTED["exc_type"] and stage == EXPECTED["stage"]
                and all(key in text for key in EXPECTED["keys"]))
        line = f"{type(e).__name__} at {stage}: {text.splitlines()[0][:300]}"
        return same, line if same else f"different failure: {line}"
    return False, f"{PIPELINE} ran without error"


SIGNALS = {"segfault": (11, 7, 4, 8), "abort": (6,), "oom": (9,)}  # SIGSEGV SIGBUS SIGILL SIGFPE / SIGABRT / SIGKILL


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def judge_child():
    """Run the pipeline in a child (this script with --child) and judge its death: signal, deadline, memory."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child"], cwd=HERE,
                                 stdout=out, stderr=err, text=True)
        start, verdict = time.monotonic(), None
        while child.poll() is None:
            if time.monotonic() - start > TIMEOUT_S:
                verdict = "timeout"
            elif EXPECTED["kind"] == "oom" and rss_mb(child.pid) > MEMORY_MB:
                verdict = "oom"
            if verdict:
                child.kill()
                child.wait()
                break
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stages = [line.split(" ", 1)[1] for line in out.read().splitlines() if line.startswith("STAGE ")]
        last_stage = stages[-1] if stages else "setup"
        tail = (err.read().strip().splitlines() or [""])[-1][:300]
    code = child.returncode
    if verdict is None:
        verdict = next((k for k, sigs in SIGNALS.items() if code < 0 and -code in sigs), None)
    if verdict is None and EXPECTED["kind"] == "oom" and ("MemoryError" in tail or "bad_alloc" in tail):
        verdict = "oom"
    if verdict is None:
        what = "finished normally" if code == 0 else f"exited with code {code}: {tail}"
        return False, f"the pipeline {what} (at stage {last_stage})"
    same = verdict == EXPECTED["kind"] and last_stage == EXPECTED["stage"]
    line = f"{verdict} at {last_stage}" + (f" (signal {-code})" if code and code < 0 else "")
    return same, line if same else f"different failure: {line}"


def main():
    inputs, expected = load_data_set()
    if "--child" in sys.argv:
        run_pipeline(inputs)
        return 0
    # Libraries print to fd 1 from C++ (the TorchScript exporter dumps its IR on errors, and C++ flushes
    # that only at exit): fd 1 goes to stderr for good, and the verdict is written to the real stdout, so
    # it is always the last two lines there.
    sys.stdout.flush()
    verdict_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if EXPECTED["kind"] in ("segfault", "abort", "timeout", "oom"):
        reproduced, detail = judge_child()
    elif EXPECTED["symptom"] == "wrong_output":
        reproduced, detail = judge_mismatch(inputs, expected)
    else:
        reproduced, detail = judge_exception(inputs)
    sys.stdout.flush()
    print("REPRODUCED" if reproduced else "NOT REPRODUCED", file=verdict_out)
    print(detail, file=verdict_out)
    verdict_out.flush()
    return 0 if reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
'''


def _imports(spec: ReproSpec) -> str:
    p = spec.pipeline
    lines: list[str] = []
    if p.backend == "tvm":
        lines.append('os.environ.setdefault("TVM_NUM_THREADS", "1")  # one thread, as Parallax runs TVM')
    if spec.mode == "source" and p.source == "torch":
        lines.append("import torch")
        lines += spec.torch_source.get("imports", [])
    if spec.mode == "source" and p.source == "tf":
        lines.append("import tensorflow as tf")
        if p.converter == "tf2onnx":
            lines.append("import tf2onnx")
    if p.backend == "ort":
        lines.append("import onnxruntime as ort")
    if p.backend == "onnxref":
        lines.append("from onnx.reference import ReferenceEvaluator")
    if p.backend == "tvm":
        lines.append("import tvm")
        lines.append("from tvm import relax")
        if p.converter == "export":
            lines.append("from tvm.relax.frontend.torch import from_exported_program")
        else:
            lines.append("from tvm.relax.frontend.onnx import from_onnx")
    return "\n".join(lines) + "\n" if lines else ""


def _torch_model(spec: ReproSpec) -> str:
    src = spec.torch_source
    weights = [ph for ph in src["placeholders"] if ph["kind"] != "input"]
    regs = []
    for ph in weights:
        store = "constants" if ph["kind"] == "constant" else "weights"
        value = f"torch.from_numpy(np.array({store}[{ph['array']!r}]))"
        if ph["kind"] == "parameter":
            regs.append(f"        self.{ph['name']} = torch.nn.Parameter({value}, requires_grad=False)")
        else:
            regs.append(f"        self.register_buffer({ph['name']!r}, {value})")
    constants = ('        constants = np.load(HERE / "torch_constants.npz", allow_pickle=False)\n'
                 if spec.has_constants else "")
    load = ('        weights = np.load(HERE / "weights.npz", allow_pickle=False)\n'
            if any(ph["kind"] in ("parameter", "buffer") for ph in weights) else "")
    params = ", ".join(ph["name"] for ph in src["placeholders"])
    call = "".join(f"self.{ph['name']}, " for ph in weights)
    return _TORCH_MODEL.format(params=params, body=src["body"], weights_load=load, constants_load=constants,
                               registrations="\n".join(regs), call=call)


def _converter_steps(p: PipelineId) -> list[str]:
    names = "input_names=GRAPH_INPUTS, output_names=GRAPH_OUTPUTS"
    if p.converter == "onnx:torchscript":
        steps = ['enter("export")', "buffer = io.BytesIO()",
                 f"torch.onnx.export(model, args, buffer, dynamo=False, {names})",
                 "model_bytes = buffer.getvalue()"]
    elif p.converter == "onnx:dynamo":
        steps = ['enter("export")', f"program = torch.onnx.export(model, args, dynamo=True, verbose=False, {names})",
                 "model_bytes = program.model_proto.SerializeToString()"]
    elif p.converter == "tf2onnx":
        steps = ['enter("export")', "onnx_model, _ = tf2onnx.convert.from_function(model.fn, "
                 "input_signature=model.fn.input_signature)", "model_bytes = onnx_model.SerializeToString()"]
    else:
        return []
    return steps + ['enter("check")', "onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)"]


def _backend_steps(p: PipelineId) -> list[str]:
    if p.backend == "ort":
        return ['enter("compile")', "options = ort.SessionOptions()",
                f"options.graph_optimization_level = ort.GraphOptimizationLevel.{ORT_LEVELS[p.level]}",
                "options.intra_op_num_threads = 1", "options.inter_op_num_threads = 1",
                "options.log_severity_level = 3",
                'session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])',
                'enter("run")', "feeds = onnx_feeds([i.name for i in session.get_inputs()], inputs)",
                "return [np.asarray(o) for o in session.run(None, feeds)]"]
    if p.backend == "onnxref":
        return ['enter("import")', "evaluator = ReferenceEvaluator(onnx.load_from_string(model_bytes))",
                'enter("run")', "feeds = onnx_feeds(list(evaluator.input_names), inputs)",
                "return [np.asarray(o) for o in evaluator.run(None, feeds)]"]
    level = int(p.level[1:]) if p.backend == "tvm" else 0
    if p.backend == "tvm" and p.converter == "export":
        return ['enter("export")', "program = torch.export.export(model, args)",
                'enter("import")', "mod = from_exported_program(program, keep_params_as_input=False)",
                'enter("compile")', f"executable = tvm_build(mod, opt_level={level})",
                'enter("run")', "return tvm_run(executable, [inputs[n] for n in GRAPH_INPUTS])"]
    if p.backend == "tvm":
        return ['enter("import")', "onnx_model = onnx.load_from_string(model_bytes)",
                "shapes, dtypes = onnx_input_signature(onnx_model)",
                "mod = from_onnx(onnx_model, shape_dict=shapes, dtype_dict=dtypes, opset=default_opset(onnx_model), "
                "keep_params_in_input=False)",
                "initializers = {t.name for t in onnx_model.graph.initializer}",
                "model_inputs = [i.name for i in onnx_model.graph.input if i.name not in initializers]",
                'enter("compile")', f"executable = tvm_build(mod, opt_level={level})",
                'enter("run")', "return tvm_run(executable, list(onnx_feeds(model_inputs, inputs).values()))"]
    if p.backend == "inductor":
        return ['enter("compile")', "torch._dynamo.reset()",
                'compiled = torch.compile(model, backend="inductor")  # as users compile: graph breaks allowed',
                "with torch.no_grad():", "    compiled(*args)  # the first call compiles",
                'enter("run")', "with torch.no_grad():",
                "    return [o.detach().numpy() for o in compiled(*args)]"]
    if p.backend == "xla":
        return ['enter("compile")', "compiled = tf.function(model.fn, jit_compile=True, autograph=False, "
                "input_signature=[tf.TensorSpec(a.shape, a.dtype) for a in args])",
                "compiled(*args)  # the first call compiles", 'enter("run")',
                "return [o.numpy() for o in compiled(*args)]"]
    raise ReproUnsupported(f"{p.name}: no repro for backend {p.backend}")


def _pipeline_function(spec: ReproSpec) -> str:
    p = spec.pipeline
    if spec.mode == "onnx":
        doc = f"{p.name} from the exported model.onnx (the converter is not at fault)"
        steps = ['model_bytes = (HERE / "model.onnx").read_bytes()']
    else:
        doc = f"{p.name}, every stage from the source model on"
        steps = ["model, args = source_model(inputs)"] + _converter_steps(p)
    steps += _backend_steps(p)
    body = "\n".join("    " + s for s in steps)
    return f'\n\n# -- the pipeline {"-" * 88}\ndef run_pipeline(inputs):\n    """{doc}."""\n{body}\n'


def _what(spec: ReproSpec) -> str:
    e = spec.expect
    if e["symptom"] == "wrong_output":
        return "outputs that differ from the eager reference beyond the tolerance"
    if e["kind"] in CHILD_KINDS:
        return f"a {e['kind']} at stage {e['stage']}"
    return f"{e['exc_type'] or 'an error'} at stage {e['stage']}"


def render_repro(spec: ReproSpec) -> str:
    """The whole repro.py text for `spec`."""
    p = spec.pipeline
    check_supported(p, spec.mode)
    io = "import io\n" if spec.mode == "source" and p.converter == "onnx:torchscript" else ""
    parts = [_HEADER.format(title=spec.title.replace('"""', "'''"), pipeline=p.name, what=_what(spec), io=io),
             _imports(spec),
             _CONSTANTS.format(pipeline=p.name, expect=json.dumps(spec.expect, indent=4),
                               inputs=list(spec.graph_inputs), outputs=list(spec.graph_outputs),
                               tolerances=[(float(a), float(r)) for a, r in spec.tolerances],
                               timeout=float(spec.timeout_s), memory=int(spec.memory_mb))]
    if p.converter in ONNX_CONVERTERS or p.backend in ("ort", "onnxref"):
        parts.append(_ONNX_FEEDS.format())
    if spec.mode == "source":
        parts.append(_torch_model(spec) if p.source == "torch" else _TF_MODEL)
    if p.backend == "tvm":
        parts.append(_TVM_HELPERS)
        if p.converter != "export":
            parts.append(_TVM_ONNX_HELPERS)
    parts.append(_pipeline_function(spec))
    parts.append(_JUDGE)
    return "".join(parts)
