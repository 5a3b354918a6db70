"""The TensorFlow source: eager reference, tf2onnx (from_function) and XLA (jit_compile=True).

Imported only inside a worker process (it imports TensorFlow).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from generators.emit.tf_function import TFGraph
from generators.ir import Graph
from generators.values import Values


def pin_threads() -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised its thread pools in this worker
        pass


class TFSource:
    """One graph materialised as a tf.Module (weights are tf.Variables) with its inputs."""

    def __init__(self, graph: Graph, values: Values) -> None:
        self.graph = graph
        self.module = TFGraph(graph, values.weights)
        self.args = [tf.constant(values.inputs[n]) for n in graph.inputs]

    def run_eager(self) -> list[np.ndarray]:
        return [o.numpy() for o in self.module._forward(*self.args)]

    def export_onnx(self) -> bytes:
        import tf2onnx

        model, _ = tf2onnx.convert.from_function(self.module.fn, input_signature=self.module.fn.input_signature)
        raise_for_passed_through_ops(model)
        return model.SerializeToString()

    def compile_xla(self) -> Any:
        """The first call compiles (XLA clusters are built lazily); returns a callable for the run stage."""
        fn = tf.function(self.module._forward, jit_compile=True, autograph=False,
                         input_signature=[tf.TensorSpec(a.shape, a.dtype) for a in self.args])
        fn(*self.args)
        return lambda: [o.numpy() for o in fn(*self.args)]


def raise_for_passed_through_ops(model: Any) -> None:
    """tf2onnx only logs the TF ops it cannot convert and copies them into the model as non-ONNX nodes; the
    checker then rejects the model. That is a capability gap, not an invalid-model bug: say so, per op."""
    import onnx

    unknown = sorted({n.op_type for n in model.graph.node
                      if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if unknown:
        names = ", ".join(f"[{n.name}: {n.op_type}]" for n in model.graph.node if n.op_type in unknown)
        raise NotImplementedError(f"Tensorflow op {names} is not supported by tf2onnx (copied unconverted)")
