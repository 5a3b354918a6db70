"""The built-in architectures, built with seeded random weights. Imported only inside a worker.

torchvision: the pinned wheel (0.28.0 from PyPI) is the CUDA build; on this CPU-only torch its C++
extension cannot load (it links libc10_cuda.so), and `import torchvision` then fails in
`torchvision._meta_registrations`, which registers fake kernels for the extension's detection ops
(nms, roi_align). The model definitions are pure Python and need none of them, so `torchvision()`
retries the import with that one module stood in by an empty one. The ops stay unusable, as they are.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import numpy as np
import torch
from torch import nn

SEED = 0


def torchvision() -> Any:
    try:
        return importlib.import_module("torchvision")
    except (RuntimeError, OSError):
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        return importlib.import_module("torchvision")


class Block(nn.Module):
    """conv -> GroupNorm -> ReLU: a Conv with pads, an InstanceNormalization with epsilon once exported."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.GroupNorm(2, channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class TinyCNN(nn.Module):
    """Small enough for tests, rich enough for every fault class: weights, pads, epsilon, clip bounds."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6())
        self.block = Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


class LSTMClassifier(nn.Module):
    def __init__(self, features: int = 16, hidden: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def build_torch(name: str) -> nn.Module:
    torch.manual_seed(SEED)
    if name == "tiny_cnn":
        return TinyCNN().eval()
    if name == "lstm":
        return LSTMClassifier().eval()
    tv = torchvision()
    if name == "resnet18":
        model = tv.models.resnet18(weights=None)
    elif name == "mobilenet_v2":
        model = tv.models.mobilenet_v2(weights=None)
    elif name == "inception_v3":
        model = tv.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    elif name == "vit_small":
        from torchvision.models.vision_transformer import VisionTransformer

        model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64,
                                  mlp_dim=128, num_classes=10)
    else:
        raise ValueError(f"no torch built-in {name!r}")
    _reinit(model)
    return model.eval()


def _reinit(model: nn.Module) -> None:
    """torchvision's own initialisation suits training, not checking: MobileNetV2's logits come out at ~1e-9,
    Inception v3's at ~1e8, and the ViT's head is zero-initialised, so its logits are exactly 0 and every
    backend trivially agrees. Seeded He-normal weights (fan-in), small biases and non-trivial batch-norm
    statistics (which the exporters fold into the convolutions) keep the outputs O(1) and the folding exercised."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm):
                if module.weight is not None:
                    module.weight.copy_(0.8 + 0.4 * torch.rand(module.weight.shape, generator=gen))
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=gen))
                    module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))
                continue
            for pname, p in module.named_parameters(recurse=False):
                if p.ndim >= 2 and pname != "pos_embedding":
                    p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
                elif pname.endswith("bias"):
                    p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def build_keras(name: str, input_shape: tuple[int, ...]) -> Any:
    """A keras.applications model with `weights=None`, logits out (no softmax), weights re-drawn by `_he_init`."""
    import keras

    keras.utils.set_random_seed(SEED)
    shape = tuple(input_shape[1:])
    apps = {"keras_mobilenet_v2": keras.applications.MobileNetV2, "keras_resnet50": keras.applications.ResNet50,
            "keras_inception_v3": keras.applications.InceptionV3}
    if name not in apps:
        raise ValueError(f"no keras built-in {name!r}")
    model = apps[name](weights=None, input_shape=shape, classifier_activation=None)
    _he_init(model)
    return model


def _he_init(model: Any) -> None:
    """Keras' own initialisation leaves these networks' outputs at ~1e-11 (MobileNetV2) or ~1e-3: every
    backend then "agrees" on noise and the softmax is flat, so nothing is tested. Seeded He-normal kernels and
    non-trivial batch-norm statistics keep activations alive through the depth, like trained weights do."""
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kind = type(layer).__name__
        new = []
        for w, var in zip(weights, layer.weights):
            path = str(getattr(var, "path", var.name))
            if kind == "BatchNormalization":
                w = {"gamma": lambda s: rng.uniform(0.8, 1.2, s), "beta": lambda s: rng.normal(0, 0.1, s),
                     "moving_mean": lambda s: rng.normal(0, 0.1, s),
                     "moving_variance": lambda s: rng.uniform(0.5, 1.5, s)}[path.rsplit("/", 1)[-1]](w.shape)
            elif w.ndim >= 2:
                fan_in = int(np.prod(w.shape[:2] if kind == "DepthwiseConv2D" else w.shape[:-1]))
                w = rng.normal(0, np.sqrt(2.0 / fan_in), w.shape)
            else:
                w = rng.normal(0, 0.05, w.shape)
            new.append(np.asarray(w, dtype=np.float32))
        layer.set_weights(new)
