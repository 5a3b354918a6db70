"""Symptom x location: how findings are filed (after the ONNX-converter failure study).

Symptoms say what the user sees; locations say which part of the pipeline went wrong. Both come
from plain tables, so a report and the store agree on the words.
"""

from __future__ import annotations

import re

SYMPTOMS = ("crash", "wrong_output", "invalid_model", "hang", "oom", "slowdown")
LOCATIONS = ("trace/load", "node conversion", "graph optimisation", "export/validation", "backend import",
             "backend optimisation", "codegen/runtime")

# Not a pipeline stage: the pseudo-stage of a mismatch that triangulation blamed on an opt level
# (the same backend is right at a lower level and wrong at a higher one).
OPT_LEVEL = "opt_level"

_SYMPTOM_BY_KIND = {"timeout": "hang", "oom": "oom", "invalid_model": "invalid_model"}
_LOCATION_BY_STAGE = {
    "reference": "trace/load",
    "export": "node conversion",
    "check": "export/validation",
    "import": "backend import",
    "compile": "backend optimisation",
    "run": "codegen/runtime",
    OPT_LEVEL: "backend optimisation",
}
# (stage, component word) -> location, overriding the stage's default.
_LOCATION_OVERRIDES = {
    ("compile", "codegen"): "codegen/runtime",
    (OPT_LEVEL, "ort"): "graph optimisation",
    (OPT_LEVEL, "onnxruntime"): "graph optimisation",
}


def symptom_for_failure(kind: str, stage: str) -> str:
    """timeout -> hang, oom -> oom, an invalid model or a failed check -> invalid_model, else crash."""
    if kind in _SYMPTOM_BY_KIND:
        return _SYMPTOM_BY_KIND[kind]
    return "invalid_model" if stage == "check" else "crash"


def _words(component: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", component.lower()) if w]


def location_for(stage: str, component: str = "") -> str:
    """The location for a failing stage (or OPT_LEVEL) of a component such as "ort", "tvm codegen (llvm)"."""
    if stage not in _LOCATION_BY_STAGE:
        raise ValueError(f"unknown stage {stage!r}")
    for word in _words(component):
        if (stage, word) in _LOCATION_OVERRIDES:
            return _LOCATION_OVERRIDES[(stage, word)]
    return _LOCATION_BY_STAGE[stage]
