"""Softmax, LogSoftmax and Hardmax.

Before opset 13 the input is coerced to 2-D ``[prod(shape[:axis]), prod(shape[axis:])]``
(``axis`` defaults to 1) and normalised along the second dimension; from 13 the op works along
the single ``axis`` (default -1). Hardmax gives 1 at the first maximum, 0 elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._registry import Kernel, KernelNode
from . import _jit
from ._common import Array, as_kernel, int_attr, norm_axis, versions

__all__: list[str] = []

Along = Callable[[Array, int], Array]


def _softmax(x: Array, axis: int) -> Array:
    if axis == x.ndim - 1:
        compiled = _jit.softmax_last(x)  # float32 with numba: one compiled pass each side of exp
        if compiled is not None:
            return compiled
    # the ufuncs' own reduce: np.max/np.sum add a Python wrapper that costs more than a
    # small softmax
    e: Array = np.subtract(x, np.maximum.reduce(x, axis=axis, keepdims=True))
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=axis, keepdims=True)
    return e


def _log_softmax(x: Array, axis: int) -> Array:
    shifted: Array = np.subtract(x, np.max(x, axis=axis, keepdims=True))
    with np.errstate(divide="ignore"):
        shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


def _hardmax(x: Array, axis: int) -> Array:
    index = np.expand_dims(np.argmax(x, axis=axis), axis)
    y = np.zeros_like(x)
    np.put_along_axis(y, index, 1, axis=axis)
    return y


def _along_axis(node: KernelNode, fn: Along) -> Kernel:
    """Opset 13 and later: ``fn`` along ``axis`` (default -1)."""
    axis = int_attr(node, "axis", -1)

    def run(x: Array) -> tuple[Array]:
        if x.ndim == 0:
            return (fn(x.reshape(1), 0).reshape(()),)
        return (fn(x, norm_axis(axis, x.ndim)),)

    return as_kernel(run)


def _coerced_2d(node: KernelNode, fn: Along) -> Kernel:
    """Before opset 13: ``fn`` along dimension 1 of the input seen as 2-D at ``axis``."""
    axis = int_attr(node, "axis", 1)

    def run(x: Array) -> tuple[Array]:
        if x.size == 0:
            return (x.copy(),)
        ax = norm_axis(axis, x.ndim) if x.ndim else 0
        rows = int(np.prod(x.shape[:ax], dtype=np.int64))
        return (fn(x.reshape(rows, -1), 1).reshape(x.shape),)

    return as_kernel(run)


@versions("Softmax", 1, 11)
def _softmax_1(node: KernelNode) -> Kernel:
    _jit.warm_up_for(node)
    return _coerced_2d(node, _softmax)


@versions("Softmax", 13)
def _softmax_13(node: KernelNode) -> Kernel:
    _jit.warm_up_for(node)
    return _along_axis(node, _softmax)


@versions("LogSoftmax", 1, 11)
def _log_softmax_1(node: KernelNode) -> Kernel:
    return _coerced_2d(node, _log_softmax)


@versions("LogSoftmax", 13)
def _log_softmax_13(node: KernelNode) -> Kernel:
    return _along_axis(node, _log_softmax)


@versions("Hardmax", 1, 11)
def _hardmax_1(node: KernelNode) -> Kernel:
    return _coerced_2d(node, _hardmax)


@versions("Hardmax", 13)
def _hardmax_13(node: KernelNode) -> Kernel:
    return _along_axis(node, _hardmax)
