"""Logical, comparison and bitwise element-wise kernels, and Where.

Outputs of And/Or/Xor/Not and of the comparisons are bool. Opset 1 of And/Or/Xor/Equal/Less/
Greater used the legacy ``broadcast``/``axis`` attributes (B aligned with A at ``axis``).
BitShift shifts by amounts of the same integer type; a shift outside ``[0, bits)`` yields what
the sign extension alone gives (-1 for a right shift of a negative value, else 0), which is
numpy's behaviour too.
"""

from __future__ import annotations

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import (
    Array,
    as_kernel,
    binary_kernel,
    ensure_array,
    legacy_broadcast_kernel,
    unary_kernel,
    versions,
)

__all__: list[str] = []


_binary = binary_kernel


@versions("And", 1)
def _and_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.logical_and)


@versions("And", 7)
def _and(node: KernelNode) -> Kernel:
    return _binary(np.logical_and)


@versions("Or", 1)
def _or_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.logical_or)


@versions("Or", 7)
def _or(node: KernelNode) -> Kernel:
    return _binary(np.logical_or)


@versions("Xor", 1)
def _xor_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.logical_xor)


@versions("Xor", 7)
def _xor(node: KernelNode) -> Kernel:
    return _binary(np.logical_xor)


@versions("Not", 1)
def _not(node: KernelNode) -> Kernel:
    return unary_kernel(np.logical_not, keep_dtype=False)


def _equal(a: Array, b: Array) -> Array:
    """Element-wise equality; string tensors compare as Python objects."""
    result = np.equal(a, b)
    return result if result.dtype == np.bool_ else result.astype(np.bool_)


@versions("Equal", 1)
def _equal_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.equal)


@versions("Equal", 7, 11, 13, 19)
def _equal_k(node: KernelNode) -> Kernel:
    return _binary(_equal)


@versions("Less", 1)
def _less_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.less)


@versions("Less", 7, 9, 13)
def _less(node: KernelNode) -> Kernel:
    return _binary(np.less)


@versions("Greater", 1)
def _greater_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.greater)


@versions("Greater", 7, 9, 13)
def _greater(node: KernelNode) -> Kernel:
    return _binary(np.greater)


@versions("LessOrEqual", 12, 16)
def _less_equal(node: KernelNode) -> Kernel:
    return _binary(np.less_equal)


@versions("GreaterOrEqual", 12, 16)
def _greater_equal(node: KernelNode) -> Kernel:
    return _binary(np.greater_equal)


@versions("BitShift", 11, 28)
def _bitshift(node: KernelNode) -> Kernel:
    direction = str(node.attr("direction", "")).upper()
    if direction == "LEFT":
        return _binary(np.left_shift)
    if direction == "RIGHT":
        return _binary(np.right_shift)
    raise ValueError(f"BitShift direction must be LEFT or RIGHT, got {direction!r}")


@versions("BitwiseAnd", 18)
def _bitwise_and(node: KernelNode) -> Kernel:
    return _binary(np.bitwise_and)


@versions("BitwiseOr", 18)
def _bitwise_or(node: KernelNode) -> Kernel:
    return _binary(np.bitwise_or)


@versions("BitwiseXor", 18)
def _bitwise_xor(node: KernelNode) -> Kernel:
    return _binary(np.bitwise_xor)


@versions("BitwiseNot", 18)
def _bitwise_not(node: KernelNode) -> Kernel:
    return unary_kernel(np.invert)


@versions("Where", 9, 16)
def _where(node: KernelNode) -> Kernel:
    def run(cond: Array, x: Array, y: Array) -> tuple[Array]:
        return (ensure_array(np.where(cond, x, y)),)

    return as_kernel(run)
