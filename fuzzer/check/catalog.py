"""The built-in architectures `parallax check` knows, with the input each takes.

Weights are random and seeded (nothing can be downloaded here). Image sizes are the smallest each
architecture accepts comfortably, so every built-in runs through every pipeline in minutes on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Builtin:
    name: str
    framework: str  # "torch" | "keras"
    input_shape: tuple[int, ...]  # one input, batch of 1
    kind: str  # "image" (NCHW for torch, NHWC for keras) | "sequence"
    classifier: bool
    about: str
    memory_mb: int = 8192  # the worker's default memory limit for this model


DEFAULT_MEMORY_MB = 8192


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("resnet18", "torch", (1, 3, 64, 64), "image", True, "torchvision ResNet-18"),
    Builtin("mobilenet_v2", "torch", (1, 3, 64, 64), "image", True, "torchvision MobileNetV2"),
    Builtin("inception_v3", "torch", (1, 3, 80, 80), "image", True, "torchvision Inception v3 (no aux head)"),
    Builtin("vit_small", "torch", (1, 3, 32, 32), "image", True,
            "torchvision VisionTransformer: patch 8, 2 layers, 2 heads, width 64"),
    Builtin("lstm", "torch", (1, 12, 16), "sequence", True, "2-layer LSTM over 12 steps of 16 features, linear head"),
    Builtin("tiny_cnn", "torch", (1, 3, 16, 16), "image", True, "two conv blocks with GroupNorm, pooled linear head"),
    Builtin("keras_mobilenet_v2", "keras", (1, 64, 64, 3), "image", True, "keras.applications.MobileNetV2"),
    # tf2onnx peaks between 8 and 14 GiB resident converting ResNet50's 25M parameters (measured)
    Builtin("keras_resnet50", "keras", (1, 64, 64, 3), "image", True, "keras.applications.ResNet50",
            memory_mb=16384),
    Builtin("keras_inception_v3", "keras", (1, 80, 80, 3), "image", True, "keras.applications.InceptionV3"),
)}


def builtin_names() -> list[str]:
    return list(BUILTINS)


def memory_mb(name: str) -> int:
    """The default worker memory limit for MODEL (a built-in's own, else the project's default)."""
    return BUILTINS[name].memory_mb if name in BUILTINS else DEFAULT_MEMORY_MB
