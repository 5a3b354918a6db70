"""The graph reducer: shrink a case to the smallest one that still shows the same bug."""

from fuzzer.reduce.api import ReductionResult, control_pipelines, find_target, reduce_case
from fuzzer.reduce.target import DoesNotReproduce, ReductionTarget

__all__ = ["DoesNotReproduce", "ReductionResult", "ReductionTarget", "control_pipelines", "find_target",
           "reduce_case"]
