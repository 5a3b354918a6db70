"""report.md: a corpus entry as an upstream issue, ready to paste (title, versions, pipeline, expected vs
actual, the reduced model in a few lines, and the repro script inline)."""

from __future__ import annotations

from typing import Any

from generators.ir import Graph

# Component -> the tag its upstream tracker puts in front of titles, and how the issue names the component.
_TAGS = {
    "torch.onnx (torchscript)": ("[ONNX]", "TorchScript exporter"),
    "torch.onnx (dynamo)": ("[ONNX]", "torch.export-based ONNX exporter"),
    "torch.export": ("[export]", "torch.export"),
    "torch eager": ("", "eager PyTorch"),
    "inductor": ("[inductor]", "Inductor (CPU)"),
    "tf2onnx": ("", "tf2onnx"),
    "tensorflow eager": ("", "eager TensorFlow"),
    "xla": ("[XLA]", "XLA (tf.function(jit_compile=True))"),
    "onnxruntime": ("", "onnxruntime"),
    "onnx reference evaluator": ("[Reference]", "ReferenceEvaluator"),
    "tvm onnx frontend": ("[Relax][Frontend][ONNX]", "from_onnx"),
    "tvm torch frontend": ("[Relax][Frontend][Torch]", "from_exported_program"),
    "tvm codegen": ("[Codegen][LLVM]", "LLVM codegen"),
    "tvm runtime": ("[Runtime]", "Relax VM"),
}


def component_tag(component: str) -> tuple[str, str]:
    if component in _TAGS:
        return _TAGS[component]
    if component.startswith("onnxruntime optimizer"):
        return "", f"onnxruntime graph optimizations ({component.split('(')[-1].rstrip(')')})"
    if component.startswith("tvm optimisation"):
        return "[Relax]", f"TVM at {component.split('(')[-1].rstrip(')')}"
    return "", component


def op_phrase(graph: Graph, first_op: str) -> str:
    """The op the bug is about with its input dtype ("int64 FloorDiv"), or the ops of a small graph."""
    nodes = graph.topological_nodes()
    node = next((n for n in nodes if n.op == first_op), None) or (nodes[0] if len(nodes) == 1 else None)
    if node is not None:
        dtypes = sorted({graph.tensors[t].dtype for t in node.inputs})
        return f"{'/'.join(dtypes)} {node.op}".strip()
    ops = list(dict.fromkeys(n.op for n in nodes))
    return ", ".join(ops[:3]) + (", ..." if len(ops) > 3 else "")


def make_title(finding: dict[str, Any], graph: Graph) -> str:
    tag, who = component_tag(finding["component"])
    op = op_phrase(graph, finding.get("first_op", ""))
    if finding["symptom"] == "wrong_output":
        what = "wrong output dtype/shape" if _shape_or_dtype(finding) else "wrong results"
        text = f"{who} gives {what} for {op}"
    elif finding["symptom"] == "invalid_model":
        text = f"{who} emits an invalid ONNX model for {op}"
    elif finding["kind"] in ("segfault", "abort", "timeout", "oom"):
        verb = {"segfault": "segfaults", "abort": "aborts", "timeout": "hangs", "oom": "runs out of memory"}
        text = f"{who} {verb[finding['kind']]} at {finding['stage']} on {op}"
    else:
        exc = finding.get("expect", {}).get("exc_type") or "an error"
        text = f"{who} raises {exc} on {op}"
    return f"{tag} {text}".strip()


def _shape_or_dtype(finding: dict[str, Any]) -> bool:
    return any(not r.get("shape_equal", True) or not r.get("dtype_equal", True) for r in finding.get("records", []))


def _records_table(records: list[dict[str, Any]]) -> str:
    head = ("| output | class | max abs | max rel | over tolerance | atol / rtol | minimum passing atol "
            "| argmax agrees | note |\n|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in records:
        def num(key: str) -> str:
            v = r.get(key)
            return "" if v is None else (v if isinstance(v, str) else f"{v:.4g}")
        share = r.get("share_over_tol")
        rows.append(f"| {r.get('output_index')} | {r.get('klass')} | {num('max_abs')} | {num('max_rel')} | "
                    f"{'' if share is None else f'{share:.1%}'} | {num('atol')} / {num('rtol')} | "
                    f"{num('min_passing_atol')} | {num('argmax_agree')} | {r.get('note', '')} |")
    return head + "\n" + "\n".join(rows)


def graph_lines(graph: Graph) -> str:
    """The reduced graph, one line per node: `y = FloorDiv(a, b) {attrs}  # int64[6]`."""
    t = graph.tensors
    lines = [f"input  {n}: {t[n].dtype}{list(t[n].shape)}" for n in graph.inputs]
    lines += [f"weight {n}: {t[n].dtype}{list(t[n].shape)}" for n in graph.weights]
    for node in graph.topological_nodes():
        attrs = f" {node.attrs}" if node.attrs else ""
        outs = ", ".join(node.outputs)
        types = ", ".join(f"{t[o].dtype}{list(t[o].shape)}" for o in node.outputs)
        lines.append(f"{outs} = {node.op}({', '.join(node.inputs)}){attrs}  # {types}")
    lines.append(f"return {', '.join(graph.outputs)}")
    return "\n".join(lines)


def render_report(finding: dict[str, Any], graph: Graph, repro: str, model_text: str) -> str:
    """`finding` is the entry's finding.json; `model_text` the ONNX model as text ("" without one)."""
    versions = "\n".join(f"- {k}: {v}" for k, v in finding["versions"].items())
    expect = finding["expect"]
    if finding["symptom"] == "wrong_output":
        happened = (f"{finding['pipeline']} returns outputs that differ from the eager {finding['source']} "
                    f"reference: {finding['message']}\n\n{_records_table(finding.get('records', []))}")
        expected = ("The outputs of the eager reference (test_data_set_0/output_*.pb), within the per-output "
                    "tolerance derived from the float32-float64 gap of the reference (exact for ints and bools).")
    else:
        happened = f"At stage `{finding['stage']}` ({finding['kind']}):\n\n```\n{finding['message'].strip()}\n```"
        expected = "The pipeline runs and returns the eager reference's outputs (test_data_set_0/output_*.pb)."
    model = (f"```\n{model_text.strip()}\n```" if model_text
             else "(no ONNX model on this pipeline; the graph is listed below)")
    why = f"\n\nBlamed on **{finding['component']}**: {finding['why']}" if finding.get("why") else ""
    keys = " and ".join(f"`{k}`" for k in expect.get("keys", []))
    key = f" The error message must contain {keys}." if keys else ""
    return f"""# {finding['title']}

## Versions
{versions}

## Pipeline
`{finding['pipeline']}`{why}

## Expected
{expected}

## What happened
{happened}

## Reduced model
{model}

Generated graph (Parallax IR):
```
{graph_lines(graph)}
```

## Repro
In this folder: `python repro.py` prints `REPRODUCED` (exit 0) or `NOT REPRODUCED` (exit 1) and one line of
detail. It needs only {', '.join(finding['libraries'])}, numpy and onnx.{key}
Inputs and expected outputs are ONNX TensorProtos in `test_data_set_0/` (the onnx_test_runner layout).

```python
{repro.rstrip()}
```

Signature: `{finding['signature']}`
"""
