"""Unsupported is not a bug: tell a clean capability gap from a crash.

Every converter and backend has ops, dtypes or attributes it declines with a clear "not
implemented" error. Those are known gaps, not findings; counting them as crashes would drown the
real ones. Only the libraries' own explicit wording counts (collected by triggering each error on
the pinned stack): an invalid model, a failed check or a shape error is still a finding.
"""

from __future__ import annotations

import re

# Exception classes that exist only to say "this is not implemented here".
UNSUPPORTED_TYPES = frozenset({
    "NotImplementedError",  # Python convention; the ONNX reference evaluator, inductor lowerings
    "NotImplemented",  # onnxruntime's pybind class for status NOT_IMPLEMENTED
    "UnsupportedOperatorError",  # torch.onnx TorchScript exporter
    "OpNotImplemented",  # tvm.error.OpNotImplemented, the Relax ONNX frontend's converter table
    "UnimplementedError",  # tf.errors.UnimplementedError (XLA and TF kernels)
    "Unsupported",  # torch._dynamo.exc.Unsupported: dynamo cannot capture the construct (fullgraph)
})

# Wording that each library uses for a declined op, dtype or attribute.
UNSUPPORTED_PATTERNS = tuple(re.compile(p) for p in (
    r"\bNOT_IMPLEMENTED\b",  # onnxruntime status code 9
    r"Could not find an implementation for \w+\(\d+\)",  # onnxruntime: no kernel for this type/opset
    r"not supported for frontend ONNX",  # TVM Relax ONNX frontend
    r"Exporting the operator .* is not supported",  # torch.onnx TorchScript exporter
    r"Unsupported: ONNX export of operator",  # torch.onnx TorchScript exporter: attribute values it declines
    r"No ONNX function found for",  # torch.onnx dynamo exporter (DispatchError)
    r"Unsupported ops: Counter\(",  # tf2onnx (logged, see the module note in the report)
    r"Tensorflow op \[[^\]]*\] is not supported",  # tf2onnx
    r"Detected unsupported operations when trying to compile graph",  # XLA via tf.function(jit_compile=True)
    r"not supported on XLA",
    r"\bNotImplementedError\b",  # a wrapped NotImplementedError (inductor's BackendCompilerFailed)
    r"\b(?:is|are) not (?:supported|implemented)\b",
    r"\bnot (?:yet )?implemented\b",
    r"\bhas no implementation\b",
    r"\bUnimplemented\b",
))

# Where each library names the op it declined; the first that matches wins.
_OP_PATTERNS = tuple(re.compile(p) for p in (
    r"Could not find an implementation for (\w+)\(",
    r"not supported for frontend ONNX: ([\w.]+)",
    r"Exporting the operator '([\w:.]+)'",
    r"ONNX export of operator ([\w:.]+)",
    r"OpOverload\(op='([\w:.]+)'",
    r"Unsupported ops: Counter\(\{'([\w.]+)'",
    r"Tensorflow op \[[^:\]]*: (\w+)\]",
    r"No registered '(\w+)' OpKernel",
    r"No registered schema for operator '(\w+)'",
    r"No Op registered for (\w+) with domain_version",
    r"[Oo]perator '?([\w:.]+)'? is not (?:supported|implemented)",
))


def is_unsupported(exc_type: str, message: str) -> bool:
    """True when the failure is the library declining an op/dtype/attribute cleanly."""
    if exc_type.rsplit(".", 1)[-1] in UNSUPPORTED_TYPES:
        return True
    return any(p.search(message) for p in UNSUPPORTED_PATTERNS)


def unsupported_op(message: str) -> str:
    """The op the message names ('Erf', 'aten::special_zeta', 'prims.zeta', 'AsString'), else ""."""
    for pattern in _OP_PATTERNS:
        m = pattern.search(message)
        if m:
            return m.group(1)
    return ""
