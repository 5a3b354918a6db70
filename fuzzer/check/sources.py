"""The source model inside a worker: load what a ModelSpec names, run it eagerly (float32, and float64
for the noise estimate where the framework allows), convert it, and expose its layers for localisation.

Imported only inside a worker (it imports torch or TensorFlow on demand).
"""

from __future__ import annotations

import copy
import importlib.util
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fuzzer.check.catalog import BUILTINS
from fuzzer.check.spec import ENTRY_POINT, ModelSpec


@dataclass
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class LayerInfo:
    """What a transplant needs from one source layer: its type, parameters and hyper-parameters."""

    name: str
    type: str
    params: dict[str, np.ndarray] = field(default_factory=dict)
    hyper: dict[str, Any] = field(default_factory=dict)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy"):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _flatten(out: Any) -> list[np.ndarray]:
    if isinstance(out, dict):
        return [a for k in sorted(out) for a in _flatten(out[k])]
    if isinstance(out, list | tuple):
        return [a for o in out for a in _flatten(o)]
    return [_np(out)]


class TorchModel:
    framework = "torch"

    def __init__(self, module: Any, inputs: list[InputSpec], example: list[np.ndarray] | None = None) -> None:
        import torch

        self.torch = torch
        self.module = module.eval()
        self.inputs = inputs
        self.example = example
        self._program: Any = None

    def _args(self, arrays: list[np.ndarray]) -> tuple[Any, ...]:
        return tuple(self.torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with self.torch.no_grad():
            return _flatten(self.module(*self._args(arrays)))

    def run64(self, arrays: list[np.ndarray]) -> list[np.ndarray] | None:
        if not all(np.dtype(i.dtype).kind == "f" for i in self.inputs):
            return None
        wide = copy.deepcopy(self.module).double()
        with self.torch.no_grad():
            return _flatten(wide(*self._args([a.astype(np.float64) for a in arrays])))

    def export_onnx(self, exporter: str, arrays: list[np.ndarray]) -> bytes:
        names = {"input_names": [i.name for i in self.inputs]}
        if exporter == "torchscript":
            buf = io.BytesIO()
            self.torch.onnx.export(self.module, self._args(arrays), buf, dynamo=False, **names)
            return buf.getvalue()
        program = self.torch.onnx.export(self.module, self._args(arrays), dynamo=True, verbose=False, **names)
        return program.model_proto.SerializeToString()

    def export_program(self, arrays: list[np.ndarray]) -> Any:
        if self._program is None:
            self._program = self.torch.export.export(self.module, self._args(arrays))
        return self._program

    # -- layers, for localisation and transplants --------------------------------------------------------
    def layer_outputs(self, arrays: list[np.ndarray]) -> tuple[dict[str, list[np.ndarray]], dict[str, list[Any]]]:
        """Every named sub-module's outputs, one per call (a module reused in forward is called twice),
        and the positional inputs of its first call (to export it alone for a graph transplant)."""
        outs: dict[str, list[np.ndarray]] = {}
        ins: dict[str, list[Any]] = {}
        handles = []
        for name, mod in self.module.named_modules():
            if not name:
                continue

            def hook(m: Any, args: Any, out: Any, name: str = name) -> None:
                ins.setdefault(name, [a.detach().clone() if hasattr(a, "detach") else a for a in args])
                if isinstance(out, self.torch.Tensor):
                    outs.setdefault(name, []).append(out.detach().cpu().numpy().copy())
            handles.append(mod.register_forward_hook(hook))
        try:
            self.run(arrays)
        finally:
            for h in handles:
                h.remove()
        return outs, ins

    def submodule(self, name: str) -> Any:
        return self.module.get_submodule(name)

    def layer_info(self, name: str) -> LayerInfo:
        mod = self.submodule(name)
        params = {k: _np(v) for k, v in mod.named_parameters(recurse=False)}
        params.update({k: _np(v) for k, v in mod.named_buffers(recurse=False) if v is not None})
        hyper: dict[str, Any] = {}
        for key in ("padding", "stride", "dilation", "groups", "kernel_size", "eps", "negative_slope",
                    "min_val", "max_val", "ceil_mode", "alpha"):
            if hasattr(mod, key):
                value = getattr(mod, key)
                hyper[key] = list(value) if isinstance(value, tuple) else value
        if type(mod).__name__ == "ReLU6":
            hyper["min_val"], hyper["max_val"] = 0.0, 6.0
        return LayerInfo(name, type(mod).__name__, params, hyper)

    def export_submodule(self, name: str, args: list[Any]) -> bytes:
        buf = io.BytesIO()
        self.torch.onnx.export(self.submodule(name), tuple(args), buf, dynamo=False)
        return buf.getvalue()

    def module_names(self) -> list[str]:
        return [n for n, _ in self.module.named_modules() if n]


class TFModel:
    """A Keras model or a SavedModel signature, as one function of positional inputs."""

    framework = "tf"

    def __init__(self, fn: Any, inputs: list[InputSpec], example: list[np.ndarray] | None = None) -> None:
        import tensorflow as tf

        self.tf = tf
        self.inputs = inputs
        self.example = example
        self.keep: Any = None  # what must outlive `fn` (a loaded SavedModel owns the signature's variables)
        self.fn = tf.function(fn, autograph=False,
                              input_signature=[tf.TensorSpec(i.shape, i.dtype, name=i.name) for i in inputs])

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return _flatten(self.fn(*[self.tf.constant(a) for a in arrays]))

    def run64(self, arrays: list[np.ndarray]) -> list[np.ndarray] | None:
        return None  # a Keras model's dtype policy is fixed at build time: no float64 twin

    def export_onnx(self, converter: str, arrays: list[np.ndarray]) -> bytes:
        import tf2onnx

        from fuzzer.targets.tf_targets import raise_for_passed_through_ops

        model, _ = tf2onnx.convert.from_function(self.fn, input_signature=self.fn.input_signature)
        raise_for_passed_through_ops(model)
        return model.SerializeToString()


def _torch_inputs(example: list[np.ndarray]) -> list[InputSpec]:
    return [InputSpec(f"input_{k}", tuple(a.shape), str(a.dtype)) for k, a in enumerate(example)]


def load(spec: ModelSpec) -> TorchModel | TFModel | None:
    """The source model; None for an ONNX file (it has no source)."""
    if spec.kind == "onnx":
        return None
    if spec.kind == "builtin":
        b = BUILTINS[spec.ref]
        inputs = [InputSpec("input_0", b.input_shape, "float32")]
        if b.framework == "torch":
            from fuzzer.check import zoo

            return TorchModel(zoo.build_torch(b.name), inputs)
        from fuzzer.check import zoo

        return _keras(zoo.build_keras(b.name, b.input_shape), inputs, None)
    if spec.kind == "savedmodel":
        return _saved_model(spec.ref)
    return _python(spec.ref)


def _keras(model: Any, inputs: list[InputSpec], example: list[np.ndarray] | None) -> TFModel:
    def call(*xs: Any) -> Any:
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)
    return TFModel(call, inputs, example)


def _saved_model(path: str) -> TFModel:
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    if "serving_default" not in loaded.signatures:
        raise ValueError(f"{path}: the SavedModel has no serving_default signature")
    sig = loaded.signatures["serving_default"]
    specs = sig.structured_input_signature[1]
    names = sorted(specs)
    inputs = [InputSpec(n, tuple(d if d is not None else 1 for d in specs[n].shape), specs[n].dtype.name)
              for n in names]

    def call(*xs: Any) -> Any:
        return sig(**dict(zip(names, xs)))
    model = TFModel(call, inputs)
    model.keep = loaded
    return model


def _python(path: str) -> TorchModel | TFModel:
    mod_spec = importlib.util.spec_from_file_location("parallax_user_model", path)
    if mod_spec is None or mod_spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    made = getattr(module, ENTRY_POINT)()
    if not isinstance(made, tuple) or len(made) != 2:
        raise TypeError(f"{ENTRY_POINT}() must return (model, example_input), got {type(made).__name__}")
    model, example = made
    arrays = [_np(a) for a in (example if isinstance(example, tuple | list) else (example,))]
    inputs = _torch_inputs(arrays)
    import sys

    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchModel(model, inputs, arrays)
    if hasattr(model, "get_config") and callable(model):
        return _keras(model, inputs, arrays)
    raise TypeError(f"{ENTRY_POINT}() returned a {type(model).__name__}: expected a torch.nn.Module or a Keras model")
