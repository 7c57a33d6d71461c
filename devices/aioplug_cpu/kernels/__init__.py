"""CPU kernels: numpy implementations of ONNX ops, registered by opset version.

Importing this package registers every kernel: the math family (``math/``: convolution,
matrix products, pooling, normalisation, element-wise, activations, reductions) and the data
family (``data/``: shape and data movement, indexing, recurrent layers, sequences, and the
reference fallback for the long tail).
"""

from __future__ import annotations

from . import data as _data  # noqa: F401  (registers kernels)
from . import math as _math  # noqa: F401  (registers kernels)
from ._registry import (
    Kernel,
    KernelFactory,
    KernelNode,
    KernelNotFound,
    kernel,
    lookup,
    registered_ops,
)

__all__ = [
    "Kernel",
    "KernelFactory",
    "KernelNode",
    "KernelNotFound",
    "kernel",
    "lookup",
    "registered_ops",
]

_data.finalize()  # the reference fallback for ops no numpy kernel implements, registered last
