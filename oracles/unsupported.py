"""Unsupported is not a bug: tell a clean capability gap from a crash.

Every converter and backend declines some ops, dtypes or attributes in its own words ("not
implemented", "only 4D query, key, and value are supported", "Unsupported function types [...]").
Those are known gaps, not findings; counting them as crashes would drown the real ones. Only the
libraries' declarative wording counts, read from their raise sites and checked by triggering each
error on the pinned stack (tests/test_unsupported_idioms.py): an assertion about the model that is
false for a valid model, an invalid model, a failed check or a shape error is still a finding.

Where a message lists several ops (TVM's torch frontend, its ONNX frontend, tf2onnx, XLA),
`unsupported_ops` names each one, so the judge can file one gap per op.
"""

from __future__ import annotations

import re

# Exception classes that exist only to say "this is not implemented here".
UNSUPPORTED_TYPES = frozenset({
    "NotImplementedError",  # Python convention; the ONNX reference evaluator, inductor lowerings
    "NotImplemented",  # onnxruntime's pybind class for status NOT_IMPLEMENTED
    "UnsupportedOperatorError",  # torch.onnx TorchScript exporter
    "OpNotImplemented",  # tvm.error.OpNotImplemented, the Relax frontends' converter tables
    "UnimplementedError",  # tf.errors.UnimplementedError (XLA and TF kernels)
    "Unsupported",  # torch._dynamo.exc.Unsupported: a construct dynamo declines to capture (torch.export raises it)
})

# Exception classes and wording that say the *model* is wrong: onnx's checker and shape inference
# ("has unsupported type: tensor(int32)" there means the exporter wrote an invalid model) and
# onnxruntime's INVALID_GRAPH. These stay findings whatever words they use.
INVALID_MODEL_TYPES = frozenset({"ValidationError", "InferenceError", "InvalidGraph"})
_INVALID_MODEL = re.compile(r"\bINVALID_GRAPH\b|This is an invalid model|\[(?:Shape|Type)InferenceError\]"
                            r"|Bad node spec")

# The libraries' declarative wording for a declined op, dtype, rank or attribute.
UNSUPPORTED_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    # onnxruntime status code 9, and its "no kernel for this type/opset" text
    r"\bNOT_IMPLEMENTED\b",
    r"Could not find an implementation for \w+\(\d+\)",
    # "Unsupported function types [...]" (TVM torch frontend), "Unsupported transposed convolution
    # dimensionality: 5" (TVM), "... is currently unsupported" (TVM ONNX Resize), "Unsupported: ONNX
    # export of operator" (TorchScript exporter), "Detected unsupported operations" (XLA),
    # "Unsupported ops: Counter(" (tf2onnx), "Unsupported input type." (tf2onnx handlers)
    r"\bunsupported\b",
    # "is not supported", "are not implemented", "not yet supported", "is currently not supported",
    # "not supported on XLA", "The following operators are not supported for frontend ONNX"
    r"\bnot (?:yet |currently |been )?(?:supported|implemented)\b",
    # "inductor does not support pin_memory" (inductor's assert_nyi), "Not support type" (tf2onnx)
    r"\bnot (?:yet |currently )?support\b",
    # "only 4D query, key, and value are supported" (dynamo exporter), "layer_norm: only support float32
    # and float16" (TVM legalisation), "only supports 2D matmul", "Segment ops only supported for ..."
    r"\bonly\b[^.;:\n]{0,80}?\bsupport(?:s|ed)?\b",
    # "EyeLike only accept 1D or 2D tensors" (ONNX reference), "Can only convert Roll is axis is const",
    # "DynamicPartition only implemented for partitions of rank 1", "only applies on INT32, INT64" (tf2onnx)
    r"\b(?:can )?only (?:accepts?|applies|implemented|convert)\b",
    # a wrapped NotImplementedError: "backend='inductor' raised:\nNotImplementedError: ..." (dynamo's
    # BackendCompilerFailed), "<class 'NotImplementedError'>: ..." (torch.onnx's exception summary)
    r"\bNotImplementedError\b",
    r"No ONNX function found for",  # torch.onnx dynamo exporter (DispatchError)
    r"No registered '\w+' OpKernel",  # TF / XLA: no kernel for this op and dtype on this device
))

# Messages that list every op they decline: (the list, one item, whether items are torch FX targets whose
# overload goes: 'amax.default' is the op amax).
_LISTS = (
    (re.compile(r"Unsupported function types \[([^\]]*)\]"), re.compile(r"'([^']+)'"), True),  # TVM torch frontend
    (re.compile(r"not supported for frontend ONNX: ([\w.]+(?:\s*,\s*[\w.]+)*)"), re.compile(r"([\w.]+)"), False),
    (re.compile(r"Unsupported ops: Counter\(\{([^}]*)\}\)"), re.compile(r"'([\w.]+)'"), False),  # tf2onnx log
    # tf2onnx's log line, and Parallax's own error for the ops tf2onnx copied unconverted: "[node: OpType], ..."
    (re.compile(r"Tensorflow op ((?:\[[^\]:]*: \w+\](?:,\s*)?)+)"), re.compile(r": (\w+)\]"), False),
)
_KERNEL = re.compile(r"No registered '(\w+)' OpKernel")  # XLA lists one per declined op

# Where each library names the one op it declined; the first that matches wins.
_OP_PATTERNS = tuple(re.compile(p) for p in (
    r"Could not find an implementation for (\w+)\(",
    r"Exporting the operator '([\w:.]+)'",
    r"ONNX export of operator ([\w:.]+)",
    r"ONNX export of ([\w:.]+) in opset",
    r"OpOverload\(op='([\w:.]+)'",
    r"No registered schema for operator '(\w+)'",
    r"No Op registered for (\w+) with domain_version",
    r"[Oo]perator '?([\w:.]+)'? is not (?:supported|implemented)",
    r"\b([a-z]\w*): only support",  # TVM legalisation: "layer_norm: only support float32 and float16"
))
# Where a library says which op it was working on; it names the declined op only when the words decline.
_CONTEXT_PATTERNS = tuple(re.compile(p) for p in (
    r"while running (\w+) node",  # onnxruntime kernel errors: the ONNX op type
    r"call_function\[target=torch\.ops\.(\w+\.\w+)\.\w+\]",  # dynamo exporter: the FX node being translated
))


def is_unsupported(exc_type: str, message: str) -> bool:
    """True when the failure is the library declining an op/dtype/attribute cleanly."""
    short = exc_type.rsplit(".", 1)[-1]
    if short in UNSUPPORTED_TYPES:
        return True
    if short in INVALID_MODEL_TYPES or _INVALID_MODEL.search(message):
        return False
    return any(p.search(message) for p in UNSUPPORTED_PATTERNS)


def _strip_overload(name: str) -> str:
    """'amax.default' -> 'amax': a torch FX target's overload is not part of the op's name."""
    return name.split(".", 1)[0]


def unsupported_ops(message: str) -> list[str]:
    """Every op the message declines, sorted, one entry each ('amax', 'amin'); else the one op it names;
    else []. A message that lists several ops is several gaps."""
    for head, item, fx_targets in _LISTS:
        m = head.search(message)
        if m:
            ops = {_strip_overload(x) if fx_targets else x for x in item.findall(m.group(1))}
            if ops:
                return sorted(ops)
    kernels = set(_KERNEL.findall(message))
    if kernels:
        return sorted(kernels)
    for pattern in _OP_PATTERNS:
        m = pattern.search(message)
        if m:
            return [m.group(1)]
    if any(p.search(message) for p in UNSUPPORTED_PATTERNS):
        for pattern in _CONTEXT_PATTERNS:
            m = pattern.search(message)
            if m:
                return [m.group(1)]
    return []


def mask_op_lists(message: str) -> str:
    """The message with each list of declined ops replaced by "<ops>": the wording of the gap, whatever
    else was declined alongside ("Unsupported function types [<ops>]")."""
    def blank(m: re.Match[str]) -> str:
        return m.string[m.start(0):m.start(1)] + "<ops>" + m.string[m.end(1):m.end(0)]
    for head, _, _ in _LISTS:
        message = head.sub(blank, message)
    return message


def unsupported_op(message: str) -> str:
    """The first op the message names ('Erf', 'aten::special_zeta', 'prims.zeta', 'amax'), else ""."""
    ops = unsupported_ops(message)
    return ops[0] if ops else ""
