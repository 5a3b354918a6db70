"""TensorFlow lowerings of the reduce group, matching torch semantics.

Where torch and TF differ: torch sums/multiplies ints and bools in int64 (TF keeps
the dtype) and accumulates float16 in float32 (TF's float16 sums drift); TF has no
bool max/min (any/all); TF's top_k works on the last axis and only for the largest;
torch's cumsum has no reverse/exclusive (TF's has).
"""

from __future__ import annotations

import tensorflow as tf

from generators.lower_tf.table import lowers


def _axes(axes):
    return None if axes is None else list(axes)


def _wide(x):
    """torch's accumulation dtype: int64 for ints and bools, float32 for float16 (cast back by _back)."""
    if x.dtype == tf.float16:
        return tf.cast(x, tf.float32)
    return x if x.dtype.is_floating else tf.cast(x, tf.int64)


def _back(y, x):
    """float16 results return to float16 after a float32 accumulation (torch's CPU kernels do the same)."""
    return tf.cast(y, tf.float16) if x.dtype == tf.float16 else y


@lowers("ReduceSum")
def _sum(xs, a):
    return _back(tf.reduce_sum(_wide(xs[0]), axis=_axes(a["axes"]), keepdims=a["keepdims"]), xs[0])


@lowers("ReduceMean")
def _mean(xs, a):
    return _back(tf.reduce_mean(_wide(xs[0]), axis=_axes(a["axes"]), keepdims=a["keepdims"]), xs[0])


@lowers("ReduceMax")
def _max(xs, a):
    fn = tf.reduce_any if xs[0].dtype == tf.bool else tf.reduce_max
    return fn(xs[0], axis=_axes(a["axes"]), keepdims=a["keepdims"])


@lowers("ReduceMin")
def _min(xs, a):
    fn = tf.reduce_all if xs[0].dtype == tf.bool else tf.reduce_min
    return fn(xs[0], axis=_axes(a["axes"]), keepdims=a["keepdims"])


@lowers("ReduceProd")
def _prod(xs, a):
    return _back(tf.reduce_prod(_wide(xs[0]), axis=_axes(a["axes"]), keepdims=a["keepdims"]), xs[0])


@lowers("ReduceLogSumExp")
def _lse(xs, a):
    return _back(tf.reduce_logsumexp(_wide(xs[0]), axis=_axes(a["axes"]), keepdims=a["keepdims"]), xs[0])


@lowers("ReduceL2")
def _l2(xs, a):
    x = _wide(xs[0])
    return _back(tf.sqrt(tf.reduce_sum(x * x, axis=_axes(a["axes"]), keepdims=a["keepdims"])), xs[0])


def _arg(fn, xs, a):
    y = fn(xs[0], axis=a["axis"], output_type=tf.int64)
    return tf.expand_dims(y, a["axis"]) if a["keepdims"] else y


@lowers("ArgMax")
def _argmax(xs, a):
    return _arg(tf.math.argmax, xs, a)


@lowers("ArgMin")
def _argmin(xs, a):
    return _arg(tf.math.argmin, xs, a)


@lowers("CumSum")
def _cumsum(xs, a):
    y = tf.cumsum(_wide(xs[0]), axis=a["axis"], exclusive=a["exclusive"], reverse=a["reverse"])
    return _back(y, xs[0])


def _to_last(x, axis):
    """The permutation that moves `axis` last, and its inverse."""
    r = len(x.shape)
    ax = axis % r
    perm = [i for i in range(r) if i != ax] + [ax]
    inv = [perm.index(i) for i in range(r)]
    return perm, inv


@lowers("TopK")
def _topk(xs, a):
    x, k = xs[0], a["k"]
    perm, inv = _to_last(x, a["axis"])
    xt = tf.transpose(x, perm)
    if a["largest"]:
        v, i = tf.math.top_k(xt, k=k, sorted=True)
        i = tf.cast(i, tf.int64)
    else:
        i = tf.argsort(xt, axis=-1, direction="ASCENDING", stable=True)[..., :k]
        v = tf.gather(xt, i, batch_dims=len(x.shape) - 1)
        i = tf.cast(i, tf.int64)
    return [tf.transpose(v, inv), tf.transpose(i, inv)]


@lowers("Sort")
def _sort(xs, a):
    x, d = xs[0], "DESCENDING" if a["descending"] else "ASCENDING"
    v = tf.sort(x, axis=a["axis"], direction=d)
    i = tf.argsort(x, axis=a["axis"], direction=d, stable=True)
    return [v, tf.cast(i, tf.int64)]
