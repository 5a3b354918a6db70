"""TensorFlow lowerings of the index group (TF's gather rejects negative indices: wrap them)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from generators.lower_tf.table import lowers


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@lowers("Gather")
def _gather(xs, a):
    x, idx = xs
    axis = _norm(a["axis"], len(x.shape))
    n = tf.cast(int(x.shape[axis]), idx.dtype)
    return tf.gather(x, tf.where(idx < 0, idx + n, idx), axis=axis)


@lowers("GatherElements")
def _gather_elements(xs, a):
    x, idx = xs
    r = len(idx.shape)
    dim = _norm(a["dim"], r)
    grids = np.indices([int(d) for d in idx.shape], dtype=np.int64)
    coords = [tf.cast(idx, tf.int64) if i == dim else tf.constant(grids[i]) for i in range(r)]
    return tf.gather_nd(x, tf.stack(coords, axis=-1))


@lowers("IndexSelect")
def _index_select(xs, a):
    return tf.gather(xs[0], xs[1], axis=a["dim"])


@lowers("Embedding")
def _embedding(xs, a):
    return tf.nn.embedding_lookup(xs[0], xs[1])


@lowers("OneHot")
def _one_hot(xs, a):
    return tf.one_hot(xs[0], int(a["num_classes"]), dtype=tf.int64)
