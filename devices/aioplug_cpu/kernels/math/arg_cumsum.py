"""ArgMax, ArgMin, CumSum and CumProd.

ArgMax/ArgMin give int64 indices along ``axis`` (default 0), the first extreme unless
``select_last_index=1`` (opset 12+), keeping the axis when ``keepdims=1`` (the default).
CumSum sums (CumProd multiplies) along the axis given as a scalar input; ``exclusive=1``
leaves out the element itself (starting from 0, or 1 for the product) and ``reverse=1`` runs
from the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import Array, as_kernel, const_input, int_attr, norm_axis, versions

__all__: list[str] = []


def _arg(node: KernelNode, fn: Callable[..., Any]) -> Kernel:
    axis = int_attr(node, "axis", 0)
    keep = bool(int_attr(node, "keepdims", 1))
    last = bool(int_attr(node, "select_last_index", 0))

    def run(x: Array) -> tuple[Array]:
        ax = norm_axis(axis, x.ndim)
        if last:
            n = x.shape[ax]
            idx = (n - 1) - fn(np.flip(x, ax), axis=ax)
        else:
            idx = fn(x, axis=ax)
        idx = idx.astype(np.int64, copy=False)
        return (np.expand_dims(idx, ax) if keep else idx,)

    return as_kernel(run)


@versions("ArgMax", 1, 11, 12, 13)
def _argmax(node: KernelNode) -> Kernel:
    return _arg(node, np.argmax)


@versions("ArgMin", 1, 11, 12, 13)
def _argmin(node: KernelNode) -> Kernel:
    return _arg(node, np.argmin)


def _cumulate(
    x: Array, axis: int, exclusive: bool, reverse: bool, product: bool = False
) -> Array:
    if reverse:
        x = np.flip(x, axis)
    acc = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    y = (np.cumprod if product else np.cumsum)(x, axis=axis, dtype=acc)
    if exclusive:
        shifted = np.ones_like(y) if product else np.zeros_like(y)
        src = [slice(None)] * y.ndim
        dst = [slice(None)] * y.ndim
        src[axis] = slice(0, -1)
        dst[axis] = slice(1, None)
        shifted[tuple(dst)] = y[tuple(src)]
        y = shifted
    if reverse:
        y = np.flip(y, axis)
    return y.astype(x.dtype, copy=False)


def _cumulative(node: KernelNode, product: bool) -> Kernel:
    exclusive = bool(int_attr(node, "exclusive", 0))
    reverse = bool(int_attr(node, "reverse", 0))
    axis_c = const_input(node, 1)
    fixed = None if axis_c is None else int(axis_c.reshape(-1)[0])

    def run(x: Array, axis: Array) -> tuple[Array]:
        a = fixed if fixed is not None else int(np.asarray(axis).reshape(-1)[0])
        return (_cumulate(x, norm_axis(a, x.ndim), exclusive, reverse, product),)

    return as_kernel(run)


@versions("CumSum", 11, 14)
def _cumsum_k(node: KernelNode) -> Kernel:
    return _cumulative(node, product=False)


@versions("CumProd", 26)
def _cumprod_k(node: KernelNode) -> Kernel:
    return _cumulative(node, product=True)
