"""The pipeline grammar users type: `source>[converter>]backend[:level][:device]`.

    torch>onnx:dynamo>tvm:O3:llvm     tf>tf2onnx>ort:all:cpu     torch>inductor:cpu
    tf>xla:cpu                        torch>export>tvm:O0:llvm   torch>onnx:torchscript>onnxref
    torch>eager:cuda

Plain data: the oracles reason about pipelines (which component, which opt level) without
knowing how any of them runs.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("torch", "tf")
CONVERTERS = {"torch": ("onnx:torchscript", "onnx:dynamo", "export"), "tf": ("tf2onnx",)}
ONNX_CONVERTERS = ("onnx:torchscript", "onnx:dynamo", "tf2onnx")
ORT_LEVELS = ("disable", "basic", "extended", "all")
TVM_LEVELS = ("O0", "O1", "O2", "O3")
# backend -> (levels, devices, converters it accepts; () means it takes the source directly)
BACKENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "ort": (ORT_LEVELS, ("cpu", "cuda"), ONNX_CONVERTERS),
    "onnxref": ((), ("cpu",), ONNX_CONVERTERS),
    "tvm": (TVM_LEVELS, ("llvm", "cuda"), ONNX_CONVERTERS + ("export",)),
    "inductor": ((), ("cpu", "cuda"), ()),
    "xla": ((), ("cpu",), ()),
    "eager": ((), ("cuda",), ()),  # the source itself on another device; the CPU eager run is the reference
}
SOURCE_BACKENDS = {"torch": ("inductor", "eager"), "tf": ("xla",)}


class PipelineError(ValueError):
    """A pipeline name that does not parse or names an impossible combination."""


@dataclass(frozen=True, order=True)
class PipelineId:
    source: str
    converter: str  # "" when the backend takes the source directly
    backend: str
    level: str  # "" for backends without levels
    device: str

    @property
    def name(self) -> str:
        parts = [self.source] + ([self.converter] if self.converter else [])
        tail = self.backend + (f":{self.level}" if self.level else "")
        if self.backend != "onnxref":
            tail += f":{self.device}"
        return ">".join(parts + [tail])

    def __str__(self) -> str:
        return self.name

    @property
    def level_rank(self) -> int:
        """Position of the opt level in its backend's order (0 = least optimised)."""
        levels = BACKENDS[self.backend][0]
        return levels.index(self.level) if self.level in levels else 0

    def with_level(self, level: str) -> PipelineId:
        return PipelineId(self.source, self.converter, self.backend, level, self.device)

    @property
    def runs_on_gpu(self) -> bool:
        return self.device == "cuda"


def parse_pipeline(text: str) -> PipelineId:
    parts = [p.strip() for p in text.strip().split(">")]
    if len(parts) < 2 or not all(parts):
        raise PipelineError(f"pipeline {text!r}: expected source>[converter>]backend, "
                            "e.g. torch>onnx:dynamo>ort:all:cpu")
    source, *middle, tail = parts
    if source not in SOURCES:
        raise PipelineError(f"pipeline {text!r}: unknown source {source!r} (one of {', '.join(SOURCES)})")
    if len(middle) > 1:
        raise PipelineError(f"pipeline {text!r}: at most one converter")
    converter = middle[0] if middle else ""
    if converter and converter not in CONVERTERS[source]:
        raise PipelineError(f"pipeline {text!r}: unknown converter {converter!r} for {source} "
                            f"(one of {', '.join(CONVERTERS[source])})")
    backend, *opts = tail.split(":")
    if backend not in BACKENDS:
        raise PipelineError(f"pipeline {text!r}: unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    levels, devices, takes = BACKENDS[backend]
    if takes and converter not in takes:
        raise PipelineError(f"pipeline {text!r}: {backend} needs one of the converters {', '.join(takes)}")
    if not takes and (converter or backend not in SOURCE_BACKENDS[source]):
        runs = "/".join(s for s in SOURCES if backend in SOURCE_BACKENDS[s])
        raise PipelineError(f"pipeline {text!r}: {backend} runs {runs} directly, with no converter")
    level = ""
    if levels:
        if not opts or opts[0] not in levels:
            raise PipelineError(f"pipeline {text!r}: {backend} needs a level, one of {', '.join(levels)}")
        level = opts.pop(0)
    device = opts.pop(0) if opts else devices[0]
    if device not in devices:
        raise PipelineError(f"pipeline {text!r}: {backend} runs on {', '.join(devices)}, not {device!r}")
    if opts:
        raise PipelineError(f"pipeline {text!r}: unexpected {':'.join(opts)!r}")
    return PipelineId(source, converter, backend, level, device)


def all_pipelines() -> list[PipelineId]:
    """Every combination the grammar allows, available or not."""
    out: list[PipelineId] = []
    for source in SOURCES:
        for backend, (levels, devices, takes) in BACKENDS.items():
            convs = [c for c in takes if c in CONVERTERS[source]] if takes else (
                [""] if backend in SOURCE_BACKENDS[source] else [])
            for conv in convs:
                for level in levels or ("",):
                    for device in devices:
                        out.append(PipelineId(source, conv, backend, level, device))
    return out
