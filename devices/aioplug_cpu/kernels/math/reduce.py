"""Reduce* kernels: Sum Mean Max Min Prod L1 L2 LogSum LogSumExp SumSquare.

``axes`` is an attribute up to opset 11/13 (absent or empty: reduce everything) and an optional
int64 input from opset 13 (ReduceSum) or 18 (the others); with the input form, absent or empty
axes reduce everything unless ``noop_with_empty_axes=1``, which returns the input unchanged.
``keepdims`` defaults to 1. The output keeps the input's dtype (float16 accumulates in float32,
integers in their own type). An empty reduction gives the operation's identity: 0 for sums,
1 for products, -inf/+inf (or the integer limits) for Max/Min, -inf for the log forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import (
    Array,
    as_kernel,
    axes_tuple,
    compute_dtype,
    const_input,
    ensure_array,
    int_attr,
    versions,
)

__all__: list[str] = []

Axes = tuple[int, ...]
ReduceFn = Callable[[Array, Axes, bool], Any]
"""A reduction: (x, non-empty sorted axes, keepdims) -> an array or a numpy scalar."""


def _sum(x: Array, axes: Axes, keep: bool) -> Any:
    return np.sum(x, axis=axes, dtype=compute_dtype(x.dtype), keepdims=keep)


def _mean(x: Array, axes: Axes, keep: bool) -> Any:
    acc = compute_dtype(x.dtype) if x.dtype.kind == "f" else np.dtype(np.float64)
    if any(x.shape[a] == 0 for a in axes):
        shape = _reduced_shape(x.shape, axes, keep)
        return np.full(shape, np.nan, dtype=acc)
    return np.mean(x, axis=axes, dtype=acc, keepdims=keep)


def _max(x: Array, axes: Axes, keep: bool) -> Any:
    return np.max(x, axis=axes, keepdims=keep)


def _min(x: Array, axes: Axes, keep: bool) -> Any:
    return np.min(x, axis=axes, keepdims=keep)


def _prod(x: Array, axes: Axes, keep: bool) -> Any:
    return np.prod(x, axis=axes, dtype=compute_dtype(x.dtype), keepdims=keep)


def _l1(x: Array, axes: Axes, keep: bool) -> Any:
    return np.sum(np.abs(x), axis=axes, dtype=compute_dtype(x.dtype), keepdims=keep)


def _sum_square(x: Array, axes: Axes, keep: bool) -> Any:
    xc = x.astype(compute_dtype(x.dtype), copy=False)
    return np.sum(xc * xc, axis=axes, keepdims=keep)


def _l2(x: Array, axes: Axes, keep: bool) -> Any:
    s = _sum_square(x, axes, keep)
    return np.sqrt(s) if s.dtype.kind == "f" else np.sqrt(s.astype(np.float64))


def _log_sum(x: Array, axes: Axes, keep: bool) -> Any:
    s = _sum(x, axes, keep)
    with np.errstate(divide="ignore"):
        return np.log(s) if s.dtype.kind == "f" else np.log(s.astype(np.float64))


def _log_sum_exp(x: Array, axes: Axes, keep: bool) -> Any:
    xc = x.astype(compute_dtype(x.dtype) if x.dtype.kind == "f" else np.float64, copy=False)
    if any(xc.shape[a] == 0 for a in axes):
        return np.full(_reduced_shape(xc.shape, axes, keep), -np.inf, dtype=xc.dtype)
    m = np.max(xc, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(xc - m), axis=axes, keepdims=True)) + m
    return s if keep else s.reshape(_reduced_shape(xc.shape, axes, False))


def _reduced_shape(shape: tuple[int, ...], axes: Axes, keep: bool) -> tuple[int, ...]:
    if keep:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _empty_identity(fn: ReduceFn, dtype: np.dtype[Any]) -> Any:
    """The value an empty Max/Min reduction yields in ``dtype``."""
    is_max = fn is _max
    if dtype.kind == "f" or dtype.name == "bfloat16":
        return -np.inf if is_max else np.inf
    if dtype.kind == "b":
        return not is_max
    info = np.iinfo(dtype)
    return info.min if is_max else info.max


def _apply(fn: ReduceFn, x: Array, axes: Axes, keep: bool) -> Array:
    if (fn is _max or fn is _min) and any(x.shape[a] == 0 for a in axes):
        shape = _reduced_shape(x.shape, axes, keep)
        return np.full(shape, _empty_identity(fn, x.dtype), dtype=x.dtype)
    y = fn(x, axes, keep)
    if y.__class__ is not np.ndarray or y.dtype != x.dtype:
        return ensure_array(y, x.dtype)
    result: Array = y
    return result


def _with_axes_attr(node: KernelNode, fn: ReduceFn) -> Kernel:
    """Axes from the attribute (absent or empty: all axes)."""
    keep = bool(int_attr(node, "keepdims", 1))
    attr = node.attr("axes")
    axes_attr = None if attr is None or len(attr) == 0 else tuple(int(a) for a in attr)

    def run(x: Array) -> tuple[Array]:
        axes = tuple(range(x.ndim)) if axes_attr is None else axes_tuple(axes_attr, x.ndim)
        return (_apply(fn, x, axes, keep),)

    return as_kernel(run)


def _with_axes_input(node: KernelNode, fn: ReduceFn) -> Kernel:
    """Axes from the optional second input, honouring ``noop_with_empty_axes``."""
    keep = bool(int_attr(node, "keepdims", 1))
    noop = bool(int_attr(node, "noop_with_empty_axes", 0))
    axes_c = const_input(node, 1)
    if node.num_inputs < 2 or (axes_c is not None and axes_c.size == 0):
        if noop:
            return as_kernel(lambda x, axes=None: (x,))
        return as_kernel(lambda x, axes=None: (_apply(fn, x, tuple(range(x.ndim)), keep),))
    if axes_c is not None:
        fixed = axes_c.ravel().astype(np.int64)
        return as_kernel(lambda x, axes=None: (_apply(fn, x, axes_tuple(fixed, x.ndim), keep),))

    def run(x: Array, axes: Array | None = None) -> tuple[Array]:
        if axes is None or axes.size == 0:
            if noop:
                return (x,)
            return (_apply(fn, x, tuple(range(x.ndim)), keep),)
        return (_apply(fn, x, axes_tuple(axes, x.ndim), keep),)

    return as_kernel(run)


@versions("ReduceSum", 1, 11)
def _reduce_sum_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _sum)


@versions("ReduceSum", 13)
def _reduce_sum_13(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _sum)


@versions("ReduceMean", 1, 11, 13)
def _reduce_mean_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _mean)


@versions("ReduceMean", 18)
def _reduce_mean_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _mean)


@versions("ReduceMax", 1, 11, 12, 13)
def _reduce_max_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _max)


@versions("ReduceMax", 18, 20)
def _reduce_max_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _max)


@versions("ReduceMin", 1, 11, 12, 13)
def _reduce_min_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _min)


@versions("ReduceMin", 18, 20)
def _reduce_min_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _min)


@versions("ReduceProd", 1, 11, 13)
def _reduce_prod_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _prod)


@versions("ReduceProd", 18)
def _reduce_prod_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _prod)


@versions("ReduceL1", 1, 11, 13)
def _reduce_l1_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _l1)


@versions("ReduceL1", 18)
def _reduce_l1_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _l1)


@versions("ReduceL2", 1, 11, 13)
def _reduce_l2_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _l2)


@versions("ReduceL2", 18)
def _reduce_l2_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _l2)


@versions("ReduceLogSum", 1, 11, 13)
def _reduce_log_sum_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _log_sum)


@versions("ReduceLogSum", 18, 28)
def _reduce_log_sum_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _log_sum)


@versions("ReduceLogSumExp", 1, 11, 13)
def _reduce_log_sum_exp_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _log_sum_exp)


@versions("ReduceLogSumExp", 18, 28)
def _reduce_log_sum_exp_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _log_sum_exp)


@versions("ReduceSumSquare", 1, 11, 13)
def _reduce_sum_square_1(node: KernelNode) -> Kernel:
    return _with_axes_attr(node, _sum_square)


@versions("ReduceSumSquare", 18)
def _reduce_sum_square_18(node: KernelNode) -> Kernel:
    return _with_axes_input(node, _sum_square)
