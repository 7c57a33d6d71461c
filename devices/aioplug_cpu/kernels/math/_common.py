"""Shared helpers of the math kernels: kernel wrapping, multi-version registration, axes.

A kernel here is a plain function given an ``exec_type`` attribute: calling a function costs
less than calling an object with ``__call__``, and the function closes over everything its
factory pre-computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from .._registry import Kernel, KernelFactory, KernelNode, kernel

__all__ = [
    "Array",
    "as_kernel",
    "binary_kernel",
    "ensure_array",
    "axes_tuple",
    "compute_dtype",
    "const_input",
    "float_attr",
    "int_attr",
    "ints_attr",
    "known_dtype",
    "norm_axis",
    "unary_kernel",
    "versions",
]

Array = np.ndarray[Any, np.dtype[Any]]


def as_kernel(fn: Callable[..., tuple[Any, ...]], exec_type: str = "numpy") -> Kernel:
    """Returns ``fn`` tagged with ``exec_type``: the function itself is the kernel."""
    setattr(fn, "exec_type", exec_type)  # noqa: B010  (functions accept attributes)
    return cast(Kernel, fn)


def ensure_array(y: Any, dtype: np.dtype[Any] | None = None) -> Array:
    """Returns ``y`` as an ndarray (ufuncs give numpy scalars for 0-d inputs), cast to
    ``dtype`` when given (ufuncs without a bfloat16 loop compute in float32)."""
    arr: Array = np.asarray(y)
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def unary_kernel(
    fn: Callable[[Any], Any], keep_dtype: bool = True, exec_type: str = "numpy"
) -> Kernel:
    """A kernel ``x -> (fn(x),)`` whose output is always an ndarray, of x's dtype when
    ``keep_dtype``."""
    if keep_dtype:

        def run(x: Array) -> tuple[Array]:
            y = fn(x)
            if y.__class__ is not np.ndarray or y.dtype is not x.dtype:
                y = ensure_array(y, x.dtype)
            return (y,)

    else:

        def run(x: Array) -> tuple[Array]:
            y = fn(x)
            return (y if y.__class__ is np.ndarray else np.asarray(y),)

    return as_kernel(run, exec_type)


def binary_kernel(fn: Callable[[Any, Any], Any], exec_type: str = "numpy") -> Kernel:
    """A kernel ``(a, b) -> (fn(a, b),)`` whose output is always an ndarray."""

    def run(a: Array, b: Array) -> tuple[Array]:
        y = fn(a, b)
        return (y if y.__class__ is np.ndarray else np.asarray(y),)

    return as_kernel(run, exec_type)


def versions(
    op_type: str, *since: int, domain: str = ""
) -> Callable[[KernelFactory], KernelFactory]:
    """Registers one factory under every listed ``since`` version of ``op_type``.

    Use it only where the listed versions share one behaviour (they differ in types only);
    versions whose attributes or inputs changed get their own factory.
    """

    def register(factory: KernelFactory) -> KernelFactory:
        for v in since:
            kernel(op_type, v, domain)(factory)
        return factory

    return register


def const_input(node: KernelNode, index: int) -> Array | None:
    """Returns the compile-time value of input ``index``, or None when unknown or absent."""
    if index < len(node.const_inputs):
        return node.const_inputs[index]
    return None


def known_dtype(node: KernelNode, index: int = 0) -> np.dtype[Any] | None:
    """Returns the dtype of input ``index`` when shape inference knows it."""
    if index < len(node.input_dtypes):
        return node.input_dtypes[index]
    return None


def int_attr(node: KernelNode, name: str, default: int) -> int:
    """Returns an int attribute (``default`` when absent)."""
    return int(node.attr(name, default))


def float_attr(node: KernelNode, name: str, default: float) -> float:
    """Returns a float attribute; an absent one gives ``default`` rounded to float32, as
    ONNX stores float attributes (and their schema defaults) in 32 bits."""
    value = node.attr(name)
    return float(np.float32(default)) if value is None else float(value)


def ints_attr(node: KernelNode, name: str) -> tuple[int, ...] | None:
    """Returns an ints attribute as a tuple, or None when absent."""
    value = node.attr(name)
    if value is None:
        return None
    return tuple(int(v) for v in value)


def norm_axis(axis: int, rank: int) -> int:
    """Returns ``axis`` made non-negative for a tensor of ``rank`` dimensions."""
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def axes_tuple(axes: Sequence[int] | Array, rank: int) -> tuple[int, ...]:
    """Returns sorted, unique, non-negative axes."""
    return tuple(sorted({norm_axis(int(a), rank) for a in np.asarray(axes).ravel()}))


def compute_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype arithmetic runs in: float16 and bfloat16 compute in float32."""
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return dtype
    if dtype.kind == "f" or dtype.name == "bfloat16":
        return np.dtype(np.float32)
    return dtype


def legacy_broadcast_kernel(node: KernelNode, fn: Callable[[Any, Any], Any]) -> Kernel:
    """Opsets 1 and 6: aligns B at ``axis`` when ``broadcast=1`` sets one, else numpy rules."""
    axis = node.attr("axis")
    if not int_attr(node, "broadcast", 0) or axis is None:
        return binary_kernel(fn)
    ax = int(axis)

    def run(a: Array, b: Array) -> tuple[Array]:
        start = ax + a.ndim if ax < 0 else ax
        trailing = a.ndim - start - b.ndim
        if trailing > 0:
            b = b.reshape(b.shape + (1,) * trailing)
        return (ensure_array(fn(a, b)),)

    return as_kernel(run)
