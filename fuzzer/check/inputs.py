"""N seeded inputs for a model: real photos where an installed package ships some, else image-like fields.

matplotlib ships three pictures in its sample data (grace_hopper.jpg, and two PNGs); image inputs are
seeded random crops of them, resized and normalised the way ImageNet models expect. Other float inputs
are smooth seeded noise; integer inputs are seeded small non-negative integers. The example input a
Python model file provides is input 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PICTURES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")


def _pictures() -> list[np.ndarray]:
    """RGB float arrays in [0, 1], or [] when matplotlib or Pillow is missing."""
    try:
        import matplotlib
        from PIL import Image
    except ImportError:
        return []
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    out = []
    for name in PICTURES:
        path = folder / name
        if path.is_file():
            with Image.open(path) as im:
                out.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    return out


def _image(h: int, w: int, rng: np.random.Generator, pictures: list[np.ndarray], k: int) -> np.ndarray:
    """An HxWx3 picture crop (or smooth noise), normalised."""
    from PIL import Image

    if pictures:
        pic = pictures[k % len(pictures)]
        ph, pw = pic.shape[:2]
        side = int(min(ph, pw) * rng.uniform(0.5, 1.0))
        y, x = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
        crop = Image.fromarray((pic[y:y + side, x:x + side] * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
        rgb = np.asarray(crop, dtype=np.float32) / 255.0
    else:
        coarse = rng.random((max(2, h // 8), max(2, w // 8), 3), dtype=np.float32)
        rgb = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                         dtype=np.float32) / 255.0
    return (rgb - MEAN) / STD


def make_inputs(specs: list[dict], n: int, seed: int, example: list[np.ndarray] | None = None,
                image_layout: str = "") -> list[list[np.ndarray]]:
    """`n` input sets (one array per model input). `image_layout` is "NCHW", "NHWC" or "" (not an image)."""
    rng = np.random.default_rng(seed)
    pictures = _pictures() if image_layout else []
    out: list[list[np.ndarray]] = []
    for k in range(n):
        if k == 0 and example is not None:
            out.append([np.asarray(a) for a in example])
            continue
        arrays = []
        for s in specs:
            shape, dtype = tuple(s["shape"]), np.dtype(s["dtype"])
            arrays.append(_one(shape, dtype, rng, pictures, k, image_layout))
        out.append(arrays)
    return out


def _one(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator, pictures: list[np.ndarray], k: int,
         layout: str) -> np.ndarray:
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if layout and len(shape) == 4:
        channels = shape[1] if layout == "NCHW" else shape[3]
        if channels == 3:
            h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
            batch = np.stack([_image(h, w, rng, pictures, k * shape[0] + b) for b in range(shape[0])])
            return (batch.transpose(0, 3, 1, 2) if layout == "NCHW" else batch).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)
