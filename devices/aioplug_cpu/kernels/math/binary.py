"""Arithmetic binary and variadic element-wise kernels: Add Sub Mul Div Pow Mod Sum Mean Max Min.

From opset 7 these broadcast as numpy does. Opsets 1 and 6 of Add/Sub/Mul/Div used the legacy
``broadcast``/``axis`` attributes: with ``broadcast=1`` and an ``axis``, B's dimensions line up
with A's starting at ``axis``. Integer Div truncates toward zero (as C does); Pow keeps the
base's dtype; Mod follows the divisor's sign unless ``fmod=1`` (C ``fmod``, dividend's sign).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import (
    Array,
    as_kernel,
    binary_kernel,
    const_input,
    ensure_array,
    int_attr,
    known_dtype,
    legacy_broadcast_kernel,
    unary_kernel,
    versions,
)

__all__: list[str] = []

Ufunc2 = Callable[[Any, Any], Any]


_binary = binary_kernel


@versions("Add", 1, 6)
def _add_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.add)


@versions("Add", 7, 13, 14)
def _add(node: KernelNode) -> Kernel:
    return _binary(np.add)


@versions("Sub", 1, 6)
def _sub_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.subtract)


@versions("Sub", 7, 13, 14)
def _sub(node: KernelNode) -> Kernel:
    return _binary(np.subtract)


@versions("Mul", 1, 6)
def _mul_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, np.multiply)


@versions("Mul", 7, 13, 14)
def _mul(node: KernelNode) -> Kernel:
    return _binary(np.multiply)


def _divide(a: Array, b: Array) -> Array:
    """Divides; integers truncate toward zero, and a zero divisor gives 0 instead of trapping."""
    kind = a.dtype.kind
    if kind == "i":
        with np.errstate(divide="ignore", invalid="ignore"):
            # a - fmod(a, b) is an exact multiple of b, so floor division is exact there.
            return np.floor_divide(np.subtract(a, np.fmod(a, b)), b)
    if kind == "u":
        with np.errstate(divide="ignore"):
            return np.floor_divide(a, b)
    return np.divide(a, b)


def _div_kernel(node: KernelNode) -> Ufunc2:
    dtype = known_dtype(node, 0)
    if dtype is not None and dtype.kind not in "iu":
        return np.divide
    return _divide


@versions("Div", 1, 6)
def _div_legacy(node: KernelNode) -> Kernel:
    return legacy_broadcast_kernel(node, _div_kernel(node))


@versions("Div", 7, 13, 14)
def _div(node: KernelNode) -> Kernel:
    return _binary(_div_kernel(node))


def _power(a: Array, b: Array) -> Array:
    """``a ** b`` in a's dtype; a float exponent on an integer base truncates the result."""
    y: Array
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        y = np.power(a, b if b.dtype == a.dtype else b.astype(a.dtype))
    elif b.dtype.kind == "i" and a.dtype.kind in "iu" and np.any(b < 0):
        # numpy refuses negative integer exponents; C's pow then a cast truncates
        y = np.power(a.astype(np.float64), b).astype(a.dtype)
    elif b.dtype == a.dtype:
        y = np.power(a, b)
    else:
        y = np.power(a, b).astype(a.dtype)
    return y


@versions("Pow", 1, 7, 12, 13, 15)
def _pow(node: KernelNode) -> Kernel:
    exponent = const_input(node, 1)
    dtype = known_dtype(node, 0)
    if (
        node.opset >= 7
        and exponent is not None
        and exponent.ndim == 0
        and dtype is not None
        and dtype.kind == "f"
    ):
        value = float(exponent)
        square, root = unary_kernel(np.square), unary_kernel(np.sqrt)
        if value == 2.0:
            return as_kernel(lambda a, b: square(a))
        if value == 0.5:
            return as_kernel(lambda a, b: root(a))
        if value == 1.0:
            return as_kernel(lambda a, b: (a,))
    if node.opset < 7:
        return legacy_broadcast_kernel(node, _power)
    return _binary(_power)


def _int_mod(fn: Ufunc2) -> Ufunc2:
    def mod(a: Array, b: Array) -> Array:
        y: Array
        if a.dtype.kind in "iu":
            with np.errstate(divide="ignore", invalid="ignore"):
                y = fn(a, b)
        else:
            y = fn(a, b)
        return y

    return mod


@versions("Mod", 10, 13, 28)
def _mod(node: KernelNode) -> Kernel:
    fn: Ufunc2 = np.fmod if int_attr(node, "fmod", 0) else np.mod
    dtype = known_dtype(node, 0)
    if dtype is not None and dtype.kind not in "iu":
        return _binary(fn)
    return _binary(_int_mod(fn))


def _variadic(fn: Ufunc2) -> Kernel:
    """Folds ``fn`` over one or more broadcast inputs."""

    def run(*xs: Array) -> tuple[Array]:
        acc = xs[0]
        for x in xs[1:]:
            acc = fn(acc, x)
        return (acc if acc.__class__ is np.ndarray else np.asarray(acc),)

    return as_kernel(run)


@versions("Sum", 1, 6, 8, 13)
def _sum(node: KernelNode) -> Kernel:
    return _variadic(np.add)


@versions("Max", 1, 6, 8, 12, 13)
def _max(node: KernelNode) -> Kernel:
    return _variadic(np.maximum)


@versions("Min", 1, 6, 8, 12, 13)
def _min(node: KernelNode) -> Kernel:
    return _variadic(np.minimum)


@versions("Mean", 1, 6, 8, 13)
def _mean(node: KernelNode) -> Kernel:
    def run(*xs: Array) -> tuple[Array]:
        acc = xs[0]
        for x in xs[1:]:
            acc = np.add(acc, x)
        if len(xs) == 1:
            return (acc,)
        return (ensure_array(np.divide(acc, len(xs)), acc.dtype),)

    return as_kernel(run)
