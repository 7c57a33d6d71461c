"""Normalisation kernels: BatchNormalization, InstanceNormalization, LayerNormalization,
RMSNormalization, GroupNormalization, LpNormalization, MeanVarianceNormalization, LRN.

All compute ``(x - mean) / sqrt(var + epsilon) * scale + bias`` over their own axes with the
population variance; float16/bfloat16 compute in float32 and come back in their own type.
BatchNormalization in inference folds its four parameter vectors into one multiply-add per
element (done once when they are constants). Training mode (``training_mode=1`` from opset
14; more than one output before 14) normalises with the batch statistics and also returns
``running = input * momentum + batch * (1 - momentum)`` for mean and variance (and, before
14, the batch mean and variance themselves).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from . import _jit
from ._common import (
    Array,
    as_kernel,
    compute_dtype,
    const_input,
    float_attr,
    int_attr,
    norm_axis,
    versions,
)

__all__: list[str] = []


def _param_shape(param: Array, rank: int) -> tuple[int, ...]:
    """Channel parameters ``(C, ...)`` broadcast over ``(N, C, *spatial)``."""
    return tuple(param.shape) + (1,) * (rank - 1 - param.ndim)


def _bn_fold(scale: Array, bias: Array, mean: Array, var: Array, eps: float) -> tuple[Array, Array]:
    s = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    return s, bias.astype(np.float64) - mean.astype(np.float64) * s


def _bn_inference(node: KernelNode, eps: float) -> Kernel:
    consts = [const_input(node, i) for i in range(1, 5)]
    folded: tuple[Array, Array] | None = None
    if all(c is not None for c in consts):
        scale, bias, mean, var = (c for c in consts if c is not None)
        folded = _bn_fold(scale, bias, mean, var, eps)
    by_dtype: dict[Any, tuple[Array, Array]] = {}

    def run(x: Array, scale: Array, bias: Array, mean: Array, var: Array) -> tuple[Array]:
        cdt = compute_dtype(x.dtype)
        ab = by_dtype.get((cdt, x.ndim)) if folded is not None else None
        if ab is None:
            a, b = folded if folded is not None else _bn_fold(scale, bias, mean, var, eps)
            shape = _param_shape(a, x.ndim)
            ab = (a.astype(cdt).reshape(shape), b.astype(cdt).reshape(shape))
            if folded is not None:
                by_dtype[(cdt, x.ndim)] = ab
        y = x.astype(cdt, copy=False) * ab[0]
        y += ab[1]
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run)


def _bn_training(eps: float, momentum: float, legacy: bool) -> Kernel:
    def run(x: Array, scale: Array, bias: Array, mean: Array, var: Array) -> tuple[Array, ...]:
        cdt = compute_dtype(x.dtype)
        xc = x.astype(cdt, copy=False)
        axes = (0,) + tuple(range(2, x.ndim))
        batch_mean = xc.mean(axis=axes)
        batch_var = xc.var(axis=axes)
        a, b = _bn_fold(scale, bias, batch_mean, batch_var, eps)
        shape = _param_shape(a, x.ndim)
        y = (xc * a.astype(cdt).reshape(shape) + b.astype(cdt).reshape(shape)).astype(x.dtype)
        running_mean = (mean * momentum + batch_mean * (1 - momentum)).astype(mean.dtype)
        running_var = (var * momentum + batch_var * (1 - momentum)).astype(var.dtype)
        if legacy:
            return (
                y,
                running_mean,
                running_var,
                batch_mean.astype(mean.dtype),
                batch_var.astype(var.dtype),
            )
        return (y, running_mean, running_var)

    return as_kernel(run)


@versions("BatchNormalization", 1, 6, 7, 9)
def _batch_norm_1(node: KernelNode) -> Kernel:
    eps = float_attr(node, "epsilon", 1e-5)
    if node.num_outputs > 1 and not int_attr(node, "is_test", 0):
        return _bn_training(eps, float_attr(node, "momentum", 0.9), legacy=True)
    return _bn_inference(node, eps)


@versions("BatchNormalization", 14, 15)
def _batch_norm_14(node: KernelNode) -> Kernel:
    eps = float_attr(node, "epsilon", 1e-5)
    if int_attr(node, "training_mode", 0):
        return _bn_training(eps, float_attr(node, "momentum", 0.9), legacy=False)
    return _bn_inference(node, eps)


def _standardize(x: Array, axes: tuple[int, ...], eps: float) -> tuple[Array, Array, Array]:
    """Returns ``(x - mean) * inv_std``, mean and inv_std (kept dims) over ``axes``."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return centred * inv_std, mean, inv_std


@versions("InstanceNormalization", 1, 6, 22)
def _instance_norm(node: KernelNode) -> Kernel:
    eps = float_attr(node, "epsilon", 1e-5)

    def run(x: Array, scale: Array, bias: Array) -> tuple[Array]:
        cdt = compute_dtype(x.dtype)
        xn, _, _ = _standardize(x.astype(cdt, copy=False), tuple(range(2, x.ndim)), eps)
        shape = _param_shape(scale, x.ndim)
        y = xn * scale.astype(cdt).reshape(shape) + bias.astype(cdt).reshape(shape)
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run)


_STASH = {1: np.dtype(np.float32), 11: np.dtype(np.float64), 10: np.dtype(np.float16)}


@versions("LayerNormalization", 17)
def _layer_norm(node: KernelNode) -> Kernel:
    """Normalises over axes ``[axis, rank)``; Mean and InvStdDev come in ``stash_type``."""
    axis = int_attr(node, "axis", -1)
    eps = float_attr(node, "epsilon", 1e-5)
    stash = _STASH.get(int_attr(node, "stash_type", 1), np.dtype(np.float32))
    n_out = node.num_outputs
    _jit.warm_up_for(node)

    def run(x: Array, scale: Array, bias: Array | None = None) -> tuple[Array, ...]:
        if n_out == 1 and x.ndim and norm_axis(axis, x.ndim) == x.ndim - 1:
            beta = np.zeros(x.shape[-1], np.float32) if bias is None else bias
            compiled = _jit.layer_norm_last(x, scale, beta, eps)  # float32 with numba
            if compiled is not None:
                return (compiled,)
        cdt = np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)
        ax = norm_axis(axis, x.ndim)
        rows = int(np.prod(x.shape[:ax], dtype=np.int64))
        cols = int(np.prod(x.shape[ax:], dtype=np.int64))
        xr = x.astype(cdt, copy=False).reshape(rows, cols)
        mean = xr.mean(axis=1, keepdims=True)
        y = xr - mean
        var = np.einsum("ij,ij->i", y, y)[:, None] / max(cols, 1)
        inv_std = 1.0 / np.sqrt(var + eps)
        y *= inv_std
        y = y.reshape(x.shape)
        y *= scale.astype(cdt, copy=False)
        if bias is not None:
            y += bias.astype(cdt, copy=False)
        y = y if y.dtype == x.dtype else y.astype(x.dtype)
        if n_out == 1:
            return (y,)
        stats_shape = x.shape[:ax] + (1,) * (x.ndim - ax)
        return (
            y,
            mean.reshape(stats_shape).astype(stash, copy=False),
            inv_std.reshape(stats_shape).astype(stash, copy=False),
        )

    return as_kernel(run)


@versions("RMSNormalization", 23)
def _rms_norm(node: KernelNode) -> Kernel:
    """``x / sqrt(mean(x**2 over [axis, rank)) + epsilon) * scale``, computed in ``stash_type``."""
    axis = int_attr(node, "axis", -1)
    eps = float_attr(node, "epsilon", 1e-5)
    stash = _STASH.get(int_attr(node, "stash_type", 1), np.dtype(np.float32))

    def run(x: Array, scale: Array) -> tuple[Array]:
        cdt = np.dtype(np.float64) if np.float64 in (x.dtype, stash) else np.dtype(np.float32)
        ax = norm_axis(axis, x.ndim)
        rows = int(np.prod(x.shape[:ax], dtype=np.int64))
        cols = int(np.prod(x.shape[ax:], dtype=np.int64))
        xr = x.astype(cdt, copy=False).reshape(rows, cols)
        mean_sq = np.einsum("ij,ij->i", xr, xr)[:, None] / max(cols, 1)
        y = xr * (1.0 / np.sqrt(mean_sq + eps))
        y = y.reshape(x.shape) * scale.astype(cdt, copy=False)
        return (y.astype(x.dtype, copy=False),)

    return as_kernel(run)


@versions("LRN", 1, 13)
def _lrn(node: KernelNode) -> Kernel:
    """Across channels: ``x / (bias + alpha / size * sum of squares in the window) ** beta``,
    the window ``[c - (size - 1) // 2, c + ceil((size - 1) / 2)]``."""
    size = int_attr(node, "size", 1)
    alpha = float_attr(node, "alpha", 1e-4)
    beta = float_attr(node, "beta", 0.75)
    bias = float_attr(node, "bias", 1.0)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2

    def run(x: Array) -> tuple[Array]:
        cdt = compute_dtype(x.dtype)
        xc = x.astype(cdt, copy=False)
        channels = x.shape[1]
        sq = np.square(xc)
        # window sums from a running sum along the channels, zero-padded at both ends
        pad = [(0, 0)] * x.ndim
        pad[1] = (before + 1, after)
        running = np.cumsum(np.pad(sq, pad), axis=1)
        hi = np.take(running, np.arange(size, size + channels), axis=1)
        lo = np.take(running, np.arange(0, channels), axis=1)
        window = hi - lo
        y = xc / np.power(bias + (alpha / size) * window, beta)
        return (y.astype(x.dtype, copy=False),)

    return as_kernel(run)


def _group_norm(node: KernelNode, per_channel: bool) -> Kernel:
    groups = int_attr(node, "num_groups", 1)
    eps = float_attr(node, "epsilon", 1e-5)

    def run(x: Array, scale: Array, bias: Array) -> tuple[Array]:
        cdt = compute_dtype(x.dtype)
        n, c = x.shape[:2]
        grouped = x.astype(cdt, copy=False).reshape(n, groups, -1)
        xn, _, _ = _standardize(grouped, (2,), eps)
        xn = xn.reshape(x.shape)
        s, b = scale.astype(cdt, copy=False), bias.astype(cdt, copy=False)
        if not per_channel:
            s, b = np.repeat(s, c // groups), np.repeat(b, c // groups)
        shape = (c,) + (1,) * (x.ndim - 2)
        y = xn * s.reshape(shape) + b.reshape(shape)
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run)


@versions("GroupNormalization", 18)
def _group_norm_18(node: KernelNode) -> Kernel:
    """Opset 18: ``scale`` and ``bias`` hold one value per group."""
    return _group_norm(node, per_channel=False)


@versions("GroupNormalization", 21)
def _group_norm_21(node: KernelNode) -> Kernel:
    """Opset 21: ``scale`` and ``bias`` hold one value per channel."""
    return _group_norm(node, per_channel=True)


@versions("LpNormalization", 1, 22)
def _lp_norm(node: KernelNode) -> Kernel:
    """``x / ||x||_p`` along ``axis`` (p is 1 or 2); a zero norm leaves zeros."""
    axis = int_attr(node, "axis", -1)
    p = int_attr(node, "p", 2)
    if p not in (1, 2):
        raise ValueError(f"LpNormalization supports p=1 or p=2, got {p}")

    def run(x: Array) -> tuple[Array]:
        ax = norm_axis(axis, x.ndim)
        if p == 2:
            norm = np.sqrt(np.sum(x * x, axis=ax, keepdims=True))
        else:
            norm = np.sum(np.abs(x), axis=ax, keepdims=True)
        norm = np.where(norm == 0, 1, norm).astype(x.dtype, copy=False)
        return (x / norm,)

    return as_kernel(run)


@versions("MeanVarianceNormalization", 9, 13)
def _mvn(node: KernelNode) -> Kernel:
    """``(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)`` over ``axes`` (default [0, 2, 3])."""
    axes_attr = node.attr("axes")
    axes_list = [0, 2, 3] if axes_attr is None else [int(a) for a in axes_attr]

    def run(x: Array) -> tuple[Array]:
        cdt = compute_dtype(x.dtype)
        xc = x.astype(cdt, copy=False)
        axes = tuple(sorted(norm_axis(a, x.ndim) for a in axes_list))
        mean = xc.mean(axis=axes, keepdims=True)
        var = np.mean(xc * xc, axis=axes, keepdims=True) - mean * mean
        y = (xc - mean) / (np.sqrt(np.maximum(var, 0)) + cdt.type(1e-9))
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run)
