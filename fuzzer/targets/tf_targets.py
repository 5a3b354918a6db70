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
        return model.SerializeToString()

    def compile_xla(self) -> Any:
        """The first call compiles (XLA clusters are built lazily); returns a callable for the run stage."""
        fn = tf.function(self.module._forward, jit_compile=True, autograph=False,
                         input_signature=[tf.TensorSpec(a.shape, a.dtype) for a in self.args])
        fn(*self.args)
        return lambda: [o.numpy() for o in fn(*self.args)]
