"""What MODEL names, validated before any worker starts: bad input is one line and nothing written.

MODEL is one of:
* a built-in name (`catalog.BUILTINS`);
* a Python file defining `parallax_model()`: it takes no arguments and returns `(model, example_input)`,
  where `model` is a `torch.nn.Module` or a Keras model and `example_input` is an array (numpy or torch),
  or a tuple of arrays for a model with several inputs. Check generates its inputs with the example's
  shapes and dtypes (the example itself is input 0); the first dimension is the batch;
* a TensorFlow SavedModel folder (its `serving_default` signature);
* an ONNX file: no source, so backends only (the reference is onnxruntime with optimisations off).

The Python file is only parsed here, never run: it runs inside the isolated worker.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from pathlib import Path

from fuzzer.check.catalog import BUILTINS, builtin_names

ENTRY_POINT = "parallax_model"
KINDS = ("builtin", "python", "savedmodel", "onnx")


class ModelError(ValueError):
    """MODEL does not name a model check can load."""


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    ref: str  # the built-in name or the absolute path
    name: str  # short label for reports and output file names

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, str]) -> ModelSpec:
        return cls(d["kind"], d["ref"], d["name"])


def resolve_model(text: str) -> ModelSpec:
    """The spec for MODEL; raise ModelError (one line) when it is not a model."""
    if text in BUILTINS:
        return ModelSpec("builtin", text, text)
    path = Path(text)
    if not path.exists():
        if "/" in text or path.suffix:
            raise ModelError(f"{text}: no such file or folder")
        raise ModelError(f"{text!r} is not a built-in model (built-ins: {', '.join(builtin_names())})")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return ModelSpec("savedmodel", str(path.resolve()), path.resolve().name)
        raise ModelError(f"{text}: not a model (a folder without saved_model.pb is no TF SavedModel)")
    if path.suffix == ".py":
        _check_python(path)
        return ModelSpec("python", str(path.resolve()), path.stem)
    if path.suffix == ".onnx":
        _check_onnx(path)
        return ModelSpec("onnx", str(path.resolve()), path.stem)
    raise ModelError(f"{text}: not a model (expected a built-in name, a .py file, a SavedModel folder "
                     "or a .onnx file)")


def _check_python(path: Path) -> None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path}: not a Python model file ({type(e).__name__}: {e})") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == ENTRY_POINT for n in tree.body):
        raise ModelError(f"{path}: no top-level function {ENTRY_POINT}() returning (model, example_input)")


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for a corrupt file
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, or shape inference's own errors
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{path}: fails onnx.checker: {first[:300]}") from None
