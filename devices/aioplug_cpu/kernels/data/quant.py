"""Quantisation kernels: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear.

Scales and zero points are per-tensor (scalar), per-axis (1-D along ``axis``) or blocked
(``block_size`` > 0: the ``axis`` dim of the scale is ``ceil(D / block_size)``). Division
rounds half to even and integer results saturate to the target range.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, normalize_axis
from .cast import cast_array, onnx_dtype

__all__: list[str] = []


def _broadcast_param(p: np.ndarray, x_shape: tuple[int, ...], axis: int, block: int) -> np.ndarray:
    """Shapes a scale or zero point so that it broadcasts against ``x``."""
    if p.size == 1 and p.ndim <= 1 and block <= 0:
        return p.reshape(())
    a = normalize_axis(axis, len(x_shape))
    if block > 0:
        rep = np.repeat(p, block, axis=a)
        return rep[tuple(slice(0, x_shape[a]) if k == a else slice(None) for k in range(rep.ndim))]
    if p.ndim == 1:
        shape = [1] * len(x_shape)
        shape[a] = p.shape[0]
        return p.reshape(shape)
    return p


def _int_range(dtype: np.dtype[Any]) -> tuple[int, int] | None:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return int(info.min), int(info.max)
    try:
        sub = ml_dtypes.iinfo(dtype)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return None
    return int(sub.min), int(sub.max)


def quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, out: np.dtype[Any],
             axis: int, block: int, saturate: bool, precision: np.dtype[Any] | None) -> np.ndarray:
    """``saturate(round(x / scale) + zero_point)`` in the target type."""
    calc = precision or (scale.dtype if scale.dtype.kind == "f" else np.dtype(np.float32))
    if calc.itemsize < 4 or calc.kind != "f":
        calc = np.dtype(np.float32) if calc != np.float16 else calc
    s = _broadcast_param(scale, x.shape, axis, block).astype(calc, copy=False)
    q = x.astype(calc, copy=False) / s
    rng = _int_range(out)
    if rng is not None:
        q = np.rint(q)
        if zp is not None:
            q = q + _broadcast_param(zp, x.shape, axis, block).astype(calc)
        ints: np.ndarray = np.clip(q, rng[0], rng[1]).astype(out)
        return ints
    if zp is not None:
        q = q + _broadcast_param(zp, x.shape, axis, block).astype(calc)
    return cast_array(q.astype(np.float32, copy=False), out, saturate)


def _quantize_kernel(node: KernelNode) -> FnKernel:
    axis = int(node.attr("axis", 1))
    block = int(node.attr("block_size", 0))
    saturate = bool(node.attr("saturate", 1))
    out_attr = int(node.attr("output_dtype", 0))
    prec_attr = int(node.attr("precision", 0))
    precision = onnx_dtype(prec_attr) if prec_attr else None

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> tuple[np.ndarray]:
        out = zp.dtype if zp is not None else (onnx_dtype(out_attr) if out_attr else np.dtype(np.uint8))
        return (quantize(x, scale, zp, out, axis, block, saturate, precision),)

    return FnKernel(run)


@kernel("QuantizeLinear", 10)
@kernel("QuantizeLinear", 13)
@kernel("QuantizeLinear", 19)
@kernel("QuantizeLinear", 21)
@kernel("QuantizeLinear", 23)
def quantize_linear(node: KernelNode) -> Kernel:
    """QuantizeLinear: per-axis (13+), saturate (19+), blocked/output_dtype (21+), precision (23+)."""
    return _quantize_kernel(node)


def dequantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, out: np.dtype[Any],
               axis: int, block: int) -> np.ndarray:
    """``(x - zero_point) * scale`` in the scale's (or ``output_dtype``'s) type."""
    calc = np.dtype(np.float64) if scale.dtype == np.float64 else np.dtype(np.float32)
    v = x.astype(calc)
    if zp is not None:
        v = v - _broadcast_param(zp, x.shape, axis, block).astype(calc)
    v = v * _broadcast_param(scale, x.shape, axis, block).astype(calc)
    res: np.ndarray = v.astype(out, copy=False)
    return res


@kernel("DequantizeLinear", 10)
@kernel("DequantizeLinear", 13)
@kernel("DequantizeLinear", 19)
@kernel("DequantizeLinear", 21)
@kernel("DequantizeLinear", 23)
def dequantize_linear(node: KernelNode) -> Kernel:
    """DequantizeLinear: per-axis (13+), blocked (21+), ``output_dtype`` (23+)."""
    axis = int(node.attr("axis", 1))
    block = int(node.attr("block_size", 0))
    out_attr = int(node.attr("output_dtype", 0))
    fixed = onnx_dtype(out_attr) if out_attr else None

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> tuple[np.ndarray]:
        return (dequantize(x, scale, zp, fixed or scale.dtype, axis, block),)

    return FnKernel(run)


@kernel("DynamicQuantizeLinear", 11)
def dynamic_quantize_linear(node: KernelNode) -> Kernel:
    """DynamicQuantizeLinear: uint8 with scale ``(max(0,x) - min(0,x)) / 255`` and rounded zp."""

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x32 = x.astype(np.float32, copy=False)
        lo = np.float32(min(0.0, float(x32.min()) if x32.size else 0.0))
        hi = np.float32(max(0.0, float(x32.max()) if x32.size else 0.0))
        scale = np.float32((hi - lo) / np.float32(255))
        if scale == 0:
            zp = np.float32(0)
            y = np.zeros(x.shape, dtype=np.uint8)
        else:
            zp = np.clip(np.rint(-lo / scale), 0, 255)
            y = np.clip(np.rint(x32 / scale) + zp, 0, 255).astype(np.uint8)
        return y, np.array(scale, dtype=np.float32), np.array(zp, dtype=np.uint8)

    return FnKernel(run)
