"""Registry keys that no test case can reach, each by a stated rule: left out of reach's denominator and listed
beside it, so that what counts is visible and checkable. A rule says why: no valid model reaches the key
(random ops cannot be judged, deprecated ops fail the checker, in-place ops are functionalised away), or no
pipeline can as it exports (eval mode, static shapes). A key reached anyway is reported as
"excluded_but_reached" by the tally: a rule that is wrong shows itself.

The rules read the libraries' own metadata where they have it (torch op tags and schemas, the ONNX schema
table), and op names where they do not (tf2onnx, ONNX random ops). A key no rule matches stays in the
denominator: reachable in principle, and unreached only because the generator does not build it yet.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuzzer.reach.registries import DEFAULT_DOMAIN, Registry, registry, tf2onnx_opset

TORCH_COMPONENTS = ("tvm-torch", "dynamo", "torchscript")
ONNX_COMPONENTS = ("tvm-onnx", "onnxruntime", "onnx-reference")
# Arguments that make a seeded-random torch op deterministic when off (dropout at eval, rrelu at eval).
_MODE_ARGS = {"train", "training", "dropout_p"}


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    components: tuple[str, ...]
    applies: Callable[[str, str], bool]  # (component, key) -> whether the key is unreachable by this rule


# -- torch keys ---------------------------------------------------------------------------------------------
def torch_overloads(component: str, key: str) -> list[Any]:
    """The torch OpOverloads a torch-side registry key names ([] when it names none, e.g. operator.add)."""
    import torch

    if component == "tvm-torch":
        namespace, name, overload = "aten", *(key.split(".", 1) + ["default"])[:2]
    elif "::" in key:
        namespace, _, rest = key.partition("::")
        name, _, overload = rest.partition(".")
        # TorchScript keys name a packet (the exporter stripped a trailing "_": relu_ -> relu); dynamo's
        # OpOverload.name() leaves out "default".
        overload = "" if component == "torchscript" else overload or "default"
    else:
        return []
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return []
    if overload:
        found = getattr(packet, overload, None)
        return [found] if isinstance(found, torch._ops.OpOverload) else []
    return [getattr(packet, o) for o in getattr(packet, "overloads", lambda: [])()]


def _is_random(component: str, key: str) -> bool:
    if component in TORCH_COMPONENTS:
        import torch

        ops = torch_overloads(component, key)
        return bool(ops) and all(torch.Tag.nondeterministic_seeded in op.tags
                                 and not {a.name for a in op._schema.arguments} & _MODE_ARGS for op in ops)
    name = key.rpartition("::")[2]
    return bool(re.match(r"(Random|Multinomial|Bernoulli|SampleDistorted)", name))


def _is_in_place(component: str, key: str) -> bool:
    import torch

    ops = torch_overloads(component, key)
    return bool(ops) and all(torch.Tag.inplace in op.tags or op._schema.is_mutable for op in ops)


def _is_symbolic_size(component: str, key: str) -> bool:
    if component == "tvm-torch":
        return (("." not in key and key != "getitem" and hasattr(operator, key)) or key.startswith("sym_")
                or key.startswith("_assert_scalar"))
    if component == "dynamo":
        module, _, name = key.rpartition(".")
        return ((module in ("_operator", "math") and name != "getitem") or key.startswith("torch.sym_")
                or key.startswith("aten::sym_"))
    return False


def _is_sparse(component: str, key: str) -> bool:
    return "sparse" in key.rpartition("::")[2].lower()


def _is_training_only(component: str, key: str) -> bool:
    if component in ONNX_COMPONENTS:
        return key.startswith("ai.onnx.preview.training::")
    if component == "tf2onnx":
        return key.endswith("Grad")
    name = key.rpartition("::")[2]
    return "backward" in name or name.startswith("_native_batch_norm_legit_functional")


def _is_quantized(component: str, key: str) -> bool:
    return key.startswith("quantized::")


def _is_classical_ml(component: str, key: str) -> bool:
    return key.startswith("ai.onnx.ml::")


def _is_input_pipeline(component: str, key: str) -> bool:
    return bool(re.match(r"(Iterator|FIFOQueue|QueueDequeue)", key))


def _op_type(component: str, key: str) -> tuple[str, str]:
    if component == "tvm-onnx":
        return "", key
    domain, _, op = key.partition("::")
    return ("" if domain == DEFAULT_DOMAIN else domain), op


@functools.cache
def _lowest_converter_opset() -> int:
    from fuzzer.reach.registries import dynamo_opset, torchscript_opset

    return min(tf2onnx_opset(), dynamo_opset(), torchscript_opset())


def _is_deprecated(component: str, key: str) -> bool:
    import onnx

    domain, op = _op_type(component, key)
    if domain != "":
        return False
    try:
        return bool(onnx.defs.get_schema(op, _lowest_converter_opset(), "").deprecated)
    except onnx.defs.SchemaError:
        return False


def _is_not_standard(component: str, key: str) -> bool:
    import onnx

    domain, op = _op_type(component, key)
    return domain == "" and not onnx.defs.has(op, "")


RULES = (
    Rule("random", "draws random numbers: no two runs agree, so no oracle can judge the output "
         "(torch: ops tagged nondeterministic_seeded that no train/dropout_p argument switches off; "
         "ONNX and TF: Random*, Multinomial, Bernoulli, SampleDistorted*)",
         TORCH_COMPONENTS + ONNX_COMPONENTS + ("tf2onnx",), _is_random),
    Rule("in-place", "in-place or mutating overload: torch.export functionalises the program (TVM and the "
         "dynamo exporter run its decompositions) before dispatch, so these never reach the table",
         ("tvm-torch", "dynamo"), _is_in_place),
    Rule("symbolic-size", "arithmetic and guards on symbolic sizes (operator.*, math.*, sym_*, _assert_scalar): "
         "they appear only in programs exported with dynamic shapes, and every pipeline exports static shapes",
         ("tvm-torch", "dynamo"), _is_symbolic_size),
    Rule("sparse", "sparse layouts: graphs, ONNX tensors and the exported programs are dense; the torch ops "
         "need a sparse tensor operand", TORCH_COMPONENTS, _is_sparse),
    Rule("training-only", "gradients, optimisers and running-statistics updates (*backward*, *Grad, "
         "_native_batch_norm_legit_functional, ai.onnx.preview.training): every pipeline exports an eval-mode "
         "forward", TORCH_COMPONENTS + ONNX_COMPONENTS + ("tf2onnx",), _is_training_only),
    Rule("quantized", "symbolic functions of torch's quantized:: namespace: they take torch quantized tensors, "
         "which only torch.ao quantization makes", ("torchscript",), _is_quantized),
    Rule("classical-ml", "ai.onnx.ml operators (trees, SVMs, encoders): sklearn-style converters emit them, "
         "no converter of a DL framework does", ("onnxruntime", "onnx-reference"), _is_classical_ml),
    Rule("input-pipeline", "dataset iterators and queues: a tf.function over tensors has none", ("tf2onnx",),
         _is_input_pipeline),
    Rule("deprecated", "deprecated at the lowest opset a converter emits (min of tf2onnx, dynamo and TorchScript "
         "defaults): onnx.checker rejects a model that uses it", ONNX_COMPONENTS, _is_deprecated),
    Rule("not-onnx", "not an ONNX standard op (onnxruntime contrib ops that only its offline transformer "
         "optimiser writes); TVM dispatches on op_type alone", ("tvm-onnx",), _is_not_standard),
)


@functools.cache
def excluded(component: str) -> dict[str, str]:
    """Key -> the name of the first rule that makes it unreachable, for one component's registry."""
    reg: Registry = registry(component)
    out: dict[str, str] = {}
    for key in sorted(reg.keys):
        for rule in RULES:
            if component in rule.components and rule.applies(component, key):
                out[key] = rule.name
                break
    return out


def registry_info(component: str) -> dict[str, Any]:
    """A registry and its excluded keys as plain JSON: built where the libraries are imported (a worker), read
    by a parent that never imports them (`Tally.summary`)."""
    reg = registry(component)
    return {"keys": sorted(reg.keys), "where": reg.where, "opset": reg.opset, "excluded": excluded(component)}


def rules_json() -> list[dict[str, Any]]:
    return [{"rule": r.name, "reason": r.reason, "components": list(r.components)} for r in RULES]
