"""GlobalAveragePool, GlobalMaxPool, GlobalLpPool, MaxRoiPool and MaxUnpool.

The global pools reduce every spatial axis (2..) to size 1. MaxRoiPool max-pools each region
``[batch, x1, y1, x2, y2]`` (scaled by ``spatial_scale`` and rounded half away from zero) into
a ``pooled_shape`` grid whose bin ``i`` spans ``[floor(i * len / P), ceil((i + 1) * len / P))``
of the region; empty bins give 0. MaxUnpool scatters X to the flat positions given by I in a
zero tensor of the size MaxPool's input would have had
(``(in - 1) * stride - pad_begin - pad_end + kernel``); an ``output_shape`` input larger than
that pads this result with zeros at the end of each axis, as onnx's node tests expect.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import Array, as_kernel, compute_dtype, float_attr, versions

__all__: list[str] = []


def _spatial_axes(x: Array) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


@versions("GlobalAveragePool", 1, 22)
def _global_average_pool(node: KernelNode) -> Kernel:
    """Float32/float64 sum each channel's plane as one matrix-vector product (numpy's mean
    over a short last axis costs ~4x as much: 70 us on MobileNetV2's 1280x7x7)."""
    ones: dict[tuple[np.dtype[Any], int], Array] = {}

    def run(x: Array) -> tuple[Array]:
        size = math.prod(x.shape[2:])
        if x.dtype in (np.float32, np.float64) and x.ndim > 2 and size > 0 and x.size > 0:
            key = (x.dtype, size)
            vector = ones.get(key)
            if vector is None:
                vector = ones[key] = np.ones(size, x.dtype)
            y = np.ascontiguousarray(x).reshape(-1, size) @ vector
            y /= size
            return (y.reshape(x.shape[:2] + (1,) * (x.ndim - 2)),)
        y = np.mean(x, axis=_spatial_axes(x), dtype=compute_dtype(x.dtype), keepdims=True)
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run)


@versions("GlobalMaxPool", 1, 22)
def _global_max_pool(node: KernelNode) -> Kernel:
    return as_kernel(lambda x: (np.max(x, axis=_spatial_axes(x), keepdims=True),))


@versions("GlobalLpPool", 1, 2, 22)
def _global_lp_pool(node: KernelNode) -> Kernel:
    p = float_attr(node, "p", 2.0)

    def run(x: Array) -> tuple[Array]:
        xa = np.abs(x.astype(compute_dtype(x.dtype), copy=False))
        axes = _spatial_axes(x)
        if p == 2.0:
            y = np.sqrt(np.sum(xa * xa, axis=axes, keepdims=True))
        elif p == 1.0:
            y = np.sum(xa, axis=axes, keepdims=True)
        else:
            y = np.power(np.sum(np.power(xa, p), axis=axes, keepdims=True), 1.0 / p)
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run)


def _round_half_away(v: float) -> int:
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


@versions("MaxRoiPool", 1, 22)
def _max_roi_pool(node: KernelNode) -> Kernel:
    pooled = node.attr("pooled_shape")
    if pooled is None or len(pooled) != 2:
        raise ValueError("MaxRoiPool needs a 2-value pooled_shape attribute")
    ph_n, pw_n = int(pooled[0]), int(pooled[1])
    scale = float_attr(node, "spatial_scale", 1.0)

    def bins(start: int, length: int, count: int, limit: int) -> list[tuple[int, int]]:
        size = length / count
        out = []
        for i in range(count):
            lo = min(max(math.floor(i * size) + start, 0), limit)
            hi = min(max(math.ceil((i + 1) * size) + start, 0), limit)
            out.append((lo, hi))
        return out

    def run(x: Array, rois: Array) -> tuple[Array]:
        _, c, h, w = x.shape
        y = np.zeros((rois.shape[0], c, ph_n, pw_n), dtype=x.dtype)
        for r, roi in enumerate(rois.astype(np.float64)):
            batch = int(roi[0])
            x1, y1, x2, y2 = (_round_half_away(float(v) * scale) for v in roi[1:5])
            hbins = bins(y1, max(y2 - y1 + 1, 1), ph_n, h)
            wbins = bins(x1, max(x2 - x1 + 1, 1), pw_n, w)
            image = x[batch]
            for i, (h0, h1) in enumerate(hbins):
                if h1 <= h0:
                    continue
                rows = np.max(image[:, h0:h1, :], axis=1)  # (C, W)
                for j, (w0, w1) in enumerate(wbins):
                    if w1 > w0:
                        y[r, :, i, j] = np.max(rows[:, w0:w1], axis=1)
        return (y,)

    return as_kernel(run)


@versions("MaxUnpool", 9, 11, 22)
def _max_unpool(node: KernelNode) -> Kernel:
    kernel = [int(v) for v in (node.attr("kernel_shape") or [])]
    if not kernel:
        raise ValueError("MaxUnpool needs a kernel_shape attribute")
    rank = len(kernel)
    strides = [int(v) for v in (node.attr("strides") or [1] * rank)]
    pads = [int(v) for v in (node.attr("pads") or [0] * (2 * rank))]

    def run(x: Array, indices: Array, output_shape: Array | None = None) -> tuple[Array]:
        inferred = x.shape[:2] + tuple(
            (x.shape[2 + i] - 1) * strides[i] - pads[i] - pads[rank + i] + kernel[i]
            for i in range(rank)
        )
        flat = np.zeros(int(np.prod(inferred, dtype=np.int64)), dtype=x.dtype)
        flat[indices.ravel()] = x.ravel()
        y = flat.reshape(inferred)
        if output_shape is None:
            return (y,)
        target = tuple(int(v) for v in np.asarray(output_shape).ravel())
        if target == inferred:
            return (y,)
        out = np.zeros(target, dtype=x.dtype)
        region = tuple(slice(0, min(a, b)) for a, b in zip(inferred, target))
        out[region] = y[region]
        return (out,)

    return as_kernel(run)

