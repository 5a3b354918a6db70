"""Graph -> tf.function with weights as tf.Variables (tf2onnx turns those into initializers)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from generators.ir import Graph
from generators.lower_tf import LOWER


class TFGraph(tf.Module):
    """Holds the variables and the traced function; `fn` takes inputs in graph.inputs order."""

    def __init__(self, graph: Graph, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.graph = graph
        self.order = graph.topological_nodes()
        self.vars = {n: tf.Variable(weights[n], trainable=False, name=n) for n in graph.weights}
        sig = [tf.TensorSpec(graph.tensors[n].shape, graph.tensors[n].dtype, name=n) for n in graph.inputs]
        self.fn = tf.function(self._forward, input_signature=sig, autograph=False)

    def _forward(self, *inputs: tf.Tensor) -> tuple[tf.Tensor, ...]:
        env: dict[str, tf.Tensor] = dict(zip(self.graph.inputs, inputs))
        env.update({n: v.read_value() for n, v in self.vars.items()})
        for n in self.order:
            outs = LOWER.call(n.op, [env[t] for t in n.inputs], n.attrs)
            env.update(zip(n.outputs, outs))
        return tuple(tf.identity(env[t]) for t in self.graph.outputs)


def to_tf(graph: Graph, weights: dict[str, np.ndarray]) -> TFGraph:
    return TFGraph(graph, weights)


def run_tf(graph: Graph, inputs: dict[str, np.ndarray], weights: dict[str, np.ndarray],
           traced: bool = False) -> list[np.ndarray]:
    """Eager run by default (each op dispatched by TF's eager runtime); `traced` runs the tf.function."""
    m = to_tf(graph, weights)
    args = [tf.constant(inputs[n]) for n in graph.inputs]
    outs = m.fn(*args) if traced else m._forward(*args)
    return [o.numpy() for o in outs]
