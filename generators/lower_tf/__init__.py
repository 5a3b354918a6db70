"""tf lowerings of every spec, one module per op group (mirrors generators/ops)."""

from generators.lower_tf import conv, elementwise, index, nn, norm, reduce, shape  # noqa: F401  (registers)
from generators.lower_tf.table import LOWER

__all__ = ["LOWER"]
