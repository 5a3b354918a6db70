"""[ONNX] TorchScript exporter raises AssertionError on float32 Roll

Parallax repro for torch>onnx:torchscript>onnxref: AssertionError at stage export.
Run `python repro.py` in this folder: it prints REPRODUCED (exit 0) or NOT REPRODUCED (exit 1) and one
line of detail. Inputs and expected outputs are in test_data_set_0/ (ONNX TensorProtos); finding.json
holds the versions it was found with, the tolerances and the diff statistics.
"""

import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
import torch
from onnx.reference import ReferenceEvaluator

HERE = Path(__file__).resolve().parent
PIPELINE = 'torch>onnx:torchscript>onnxref'
# What the bug looks like: the symptom, the failure kind, the stage, and for exceptions the type and stable
# fragments of the message (the parts between names, shapes and numbers), each of which must appear.
EXPECTED = {
    "symptom": "crash",
    "kind": "exception",
    "stage": "export",
    "exc_type": "AssertionError",
    "keys": [
        "!= len(dims)="
    ]
}
GRAPH_INPUTS = ['t0']
GRAPH_OUTPUTS = ['t1']
TOLERANCES = [(1.9073486328125e-06, 0.0001)]  # per output (atol, rtol): |got - expected| <= atol + rtol * |expected|
TIMEOUT_S = 120.0
MEMORY_MB = 8192
stage = "setup"


def enter(name):
    """Mark the pipeline stage now running (the child reports it to the parent on stdout)."""
    global stage
    stage = name
    if "--child" in sys.argv:
        print(f"STAGE {name}", flush=True)


def load_data_set():
    """Inputs by graph input name, and the expected outputs as (name, array), from test_data_set_0/."""
    def tensors(kind):
        files = sorted((HERE / "test_data_set_0").glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        out = []
        for path in files:
            t = onnx.TensorProto()
            t.ParseFromString(path.read_bytes())
            out.append((t.name, numpy_helper.to_array(t)))
        return out
    inputs = dict(zip(GRAPH_INPUTS, (a for _, a in tensors("input"))))
    return inputs, tensors("output")


def onnx_feeds(model_inputs, inputs):
    """Model input name -> array: converters keep the graph's input names, tf2onnx may add ':0'."""
    names = [n[:-2] if n.endswith(":0") else n for n in model_inputs]
    if not all(n in inputs for n in names) and len(model_inputs) == len(GRAPH_INPUTS):
        names = GRAPH_INPUTS  # renamed inputs: positional
    return {m: inputs[n] for m, n in zip(model_inputs, names)}


# -- the model: torch.export's aten-level graph of the generated module, as a plain function ---------------
def aten_graph(inputs_0):
    roll = torch.ops.aten.roll.default(inputs_0, [0]);  inputs_0 = None
    return (roll,)


class Model(torch.nn.Module):
    """The reduced graph: float weights are Parameters, the others buffers (as Parallax builds it)."""

    def __init__(self):
        super().__init__()


    def forward(self, *inputs):
        return aten_graph(*inputs)


def source_model(inputs):
    """The torch module and its arguments, in graph input order."""
    model = Model().eval()
    args = tuple(torch.from_numpy(np.array(inputs[n])) for n in GRAPH_INPUTS)
    return model, args


def reference(model, args):
    """The eager torch run the expected outputs came from."""
    with torch.no_grad():
        return [o.detach().numpy() for o in model(*args)]


# -- the pipeline ----------------------------------------------------------------------------------------
def run_pipeline(inputs):
    """torch>onnx:torchscript>onnxref, every stage from the source model on."""
    model, args = source_model(inputs)
    enter("export")
    buffer = io.BytesIO()
    torch.onnx.export(model, args, buffer, dynamo=False, input_names=GRAPH_INPUTS, output_names=GRAPH_OUTPUTS)
    model_bytes = buffer.getvalue()
    enter("check")
    onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    enter("import")
    evaluator = ReferenceEvaluator(onnx.load_from_string(model_bytes))
    enter("run")
    feeds = onnx_feeds(list(evaluator.input_names), inputs)
    return [np.asarray(o) for o in evaluator.run(None, feeds)]


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
    return re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip() or repr(e)


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
