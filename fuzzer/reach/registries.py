"""The dispatch registries of the components under test, read from the installed libraries at run time.

Each registry is the table the component itself looks an op up in, keyed exactly as it looks it up:

* tvm-torch: `ExportedProgramImporter().create_convert_map()`, keyed by `node.target.__name__` ("add.Tensor");
* tvm-onnx: `onnx_frontend._get_convert_map()`, keyed by the ONNX node's op_type;
* torchscript: the TorchScript exporter's `registration.registry`, "domain::name" with a trailing "_" stripped
  (the exporter maps relu_ to relu), those with a symbolic function at the opset it exports;
* dynamo: the `ONNXRegistry.from_torchlib` the torch.export-based exporter dispatches in, "aten::add.Tensor";
* tf2onnx: `handler.tf_op.create_mapping(opset)`, keyed by the TF op type, at the opset from_function uses;
* onnxruntime: the CPU execution provider's kernels, "domain::OpType" ("ai.onnx" for the default domain);
* onnx-reference: the reference evaluator's implementations per domain, "domain::OpType".

Importing these libraries costs seconds (TVM, torch.onnx, tf2onnx): each registry is built once per process.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

COMPONENTS = ("tvm-torch", "tvm-onnx", "torchscript", "dynamo", "tf2onnx", "onnxruntime", "onnx-reference")
TITLES = {"tvm-torch": "TVM Relax torch frontend", "tvm-onnx": "TVM Relax ONNX frontend",
          "torchscript": "torch.onnx (torchscript) symbolic functions", "dynamo": "torch.onnx (dynamo) torchlib",
          "tf2onnx": "tf2onnx handlers", "onnxruntime": "onnxruntime CPU kernels",
          "onnx-reference": "ONNX reference evaluator ops"}
DEFAULT_DOMAIN = "ai.onnx"


@dataclass(frozen=True)
class Registry:
    component: str
    keys: frozenset[str]
    where: str  # the library code the keys were read from
    opset: int | None = None


def onnx_key(domain: str, op_type: str) -> str:
    """The key of an ONNX op in the onnxruntime and reference registries ("" and "ai.onnx" are one domain)."""
    return f"{domain or DEFAULT_DOMAIN}::{op_type}"


def target_key(target: Any) -> str:
    """The dynamo registry's key of an FX node target: OpOverloads by qualified name, as its `get_decomps` does."""
    if isinstance(target, str):
        return target
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return target.name()
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order::{target.name()}"
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


@functools.cache
def registry(component: str) -> Registry:
    if component not in COMPONENTS:
        raise KeyError(f"unknown component {component!r} (known: {', '.join(COMPONENTS)})")
    return _BUILDERS[component]()


def _tvm_torch() -> Registry:
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    keys = frozenset(ExportedProgramImporter().create_convert_map())
    return Registry("tvm-torch", keys, "tvm.relax.frontend.torch.ExportedProgramImporter().create_convert_map()")


def _tvm_onnx() -> Registry:
    from tvm.relax.frontend.onnx import onnx_frontend

    return Registry("tvm-onnx", frozenset(onnx_frontend._get_convert_map()),
                    "tvm.relax.frontend.onnx.onnx_frontend._get_convert_map()")


def torchscript_opset() -> int:
    """The opset `torch.onnx.export(dynamo=False)` uses when given none (fuzzer/targets/torch_targets.py)."""
    from torch.onnx import _constants

    return int(_constants.ONNX_DEFAULT_OPSET)


def _torchscript() -> Registry:
    from torch.onnx._internal import torchscript_exporter
    from torch.onnx._internal.torchscript_exporter import registration

    for mod in pkgutil.iter_modules(torchscript_exporter.__path__):  # symbolic functions register on import
        if mod.name.startswith("symbolic_opset"):
            importlib.import_module(f"{torchscript_exporter.__name__}.{mod.name}")
    opset = torchscript_opset()
    reg = registration.registry
    keys = frozenset(n for n in reg.all_functions() if reg.is_registered_op(n, opset))
    return Registry("torchscript", keys, "torch.onnx._internal.torchscript_exporter.registration.registry", opset)


def dynamo_opset() -> int:
    """The opset the torch.export-based exporter builds its registry for when given none: `_compat.export_compat`
    takes ONNX_DEFAULT_OPSET, raised to TORCHLIB_OPSET when lower."""
    from torch.onnx import _constants
    from torch.onnx._internal.exporter import _constants as exporter_constants

    return max(int(_constants.ONNX_DEFAULT_OPSET), int(exporter_constants.TORCHLIB_OPSET))


def _dynamo() -> Registry:
    from torch.onnx._internal.exporter import _registration

    reg = _registration.ONNXRegistry.from_torchlib(dynamo_opset())
    keys = frozenset(target_key(t) for t, metas in reg.functions.items() if metas)
    return Registry("dynamo", keys, "torch.onnx._internal.exporter._registration.ONNXRegistry.from_torchlib()",
                    reg.opset_version)


def tf2onnx_opset() -> int:
    """The opset `tf2onnx.convert.from_function` uses when given none (fuzzer/targets/tf_targets.py)."""
    from tf2onnx import utils

    return int(utils.find_opset(None))


def _tf2onnx() -> Registry:
    import tf2onnx.convert  # noqa: F401 - handlers register on import; convert (what from_function uses) adds 11
    from tf2onnx import handler

    opset = tf2onnx_opset()
    saved = handler.tf_op._MAPPING, handler.tf_op._DOMAIN_MAPPING
    try:  # create_mapping also stores the mapping as the "current" one: put the previous one back
        keys = frozenset(handler.tf_op.create_mapping(opset, []))
    finally:
        handler.tf_op._MAPPING, handler.tf_op._DOMAIN_MAPPING = saved
    return Registry("tf2onnx", keys, "tf2onnx.handler.tf_op.create_mapping(opset)", opset)


def _onnxruntime() -> Registry:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    keys = frozenset(onnx_key(k.domain, k.op_name) for k in ort_c.get_all_opkernel_def()
                     if k.provider == "CPUExecutionProvider")
    return Registry("onnxruntime", keys, "onnxruntime get_all_opkernel_def(), CPUExecutionProvider")


REFERENCE_DOMAINS = {"": "onnx.reference.ops._op_list", "ai.onnx.ml": "onnx.reference.ops.aionnxml._op_list",
                     "ai.onnx.preview": "onnx.reference.ops.aionnx_preview._op_list",
                     "ai.onnx.preview.training": "onnx.reference.ops.aionnx_preview_training._op_list",
                     "experimental": "onnx.reference.ops.experimental._op_list"}


def _reference() -> Registry:
    """Implemented ops that have an ONNX schema in their domain (the op lists also pick up base classes such
    as OpRun, which no model node can name)."""
    import onnx

    keys: set[str] = set()
    for domain, module in REFERENCE_DOMAINS.items():
        ops = importlib.import_module(module)._build_registered_operators()
        keys.update(onnx_key(domain, op) for op in ops if onnx.defs.has(op, domain))
    return Registry("onnx-reference", frozenset(keys), "onnx.reference.ops.*._op_list._build_registered_operators()")


_BUILDERS = {"tvm-torch": _tvm_torch, "tvm-onnx": _tvm_onnx, "torchscript": _torchscript, "dynamo": _dynamo,
             "tf2onnx": _tf2onnx, "onnxruntime": _onnxruntime, "onnx-reference": _reference}
