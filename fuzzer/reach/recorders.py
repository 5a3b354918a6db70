"""Record the registry keys a converter looks up while it runs, where the artefact cannot tell afterwards.

The TorchScript exporter dispatches on TorchScript node kinds that its own passes produce, tf2onnx on the TF
graph after its rewriters, the dynamo exporter on a program after its own decompositions, and none of these
survive in the ONNX model. Each recorder wraps the one lookup the component makes per node and passes every
call through unchanged: it measures dispatch, it does not alter it. A lookup made before a failure is
recorded too (that entry point ran). Each context manager yields the set it fills and undoes its wrapper on
exit.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from fuzzer.reach.registries import target_key


@contextlib.contextmanager
def torchscript_dispatch() -> Iterator[set[str]]:
    """`_run_symbolic_function` asks `registration.registry.get_function_group("domain::op")` for each node
    (relu_ already stripped to relu). The export's last step asks it again for every node of the finished
    ONNX model (looking for onnxscript functions); only the calls from `_run_symbolic_function` are dispatch."""
    from torch.onnx._internal.torchscript_exporter import registration

    reg = registration.registry
    seen: set[str] = set()
    original = reg.get_function_group

    def recording(name: str) -> Any:
        if sys._getframe(1).f_code.co_name == "_run_symbolic_function":
            seen.add(name)
        return original(name)

    reg.get_function_group = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del reg.get_function_group  # the class's method shows through again


@contextlib.contextmanager
def dynamo_dispatch() -> Iterator[set[str]]:
    """`_core` calls `_dispatching.dispatch(node, registry)` for each call_function node it lowers
    (operator.getitem is handled before dispatch, so it is never a lookup)."""
    from torch.onnx._internal.exporter import _dispatching

    seen: set[str] = set()
    original = _dispatching.dispatch

    def recording(node: Any, registry: Any) -> Any:
        seen.add(target_key(node.target))
        return original(node, registry)

    _dispatching.dispatch = recording
    try:
        yield seen
    finally:
        _dispatching.dispatch = original


@contextlib.contextmanager
def tf2onnx_dispatch() -> Iterator[set[str]]:
    """`tensorflow_onnx_mapping` returns Counters of the TF op types it found a handler for and of those it did
    not (body graphs included); both are lookups in the handler table."""
    from tf2onnx import tfonnx

    seen: set[str] = set()
    original = tfonnx.tensorflow_onnx_mapping

    def recording(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not kwargs.get("is_tflite", False):
            mapped, unmapped = result[0], result[1]
            seen.update(mapped)
            seen.update(unmapped)
        return result

    tfonnx.tensorflow_onnx_mapping = recording
    try:
        yield seen
    finally:
        tfonnx.tensorflow_onnx_mapping = original


class _RecordingMap(dict):
    """TVM's convert map with its lookups recorded: `_check_unsupported_func_type` tests every node's name with
    `in` before any is converted (a miss is a lookup too), then `self.convert_map[func_name](node)`."""

    seen: set[str]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.seen.add(key)
        return super().__contains__(key)

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)


@contextlib.contextmanager
def tvm_torch_dispatch() -> Iterator[set[str]]:
    """The importer builds `self.convert_map = self.create_convert_map()` per import; hand it a recording map."""
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    seen: set[str] = set()
    original = ExportedProgramImporter.create_convert_map

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        table = _RecordingMap(original(self, *args, **kwargs))
        table.seen = seen
        return table

    ExportedProgramImporter.create_convert_map = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        ExportedProgramImporter.create_convert_map = original  # type: ignore[method-assign]
