"""Cast kernels: Cast and CastLike, including the ml_dtypes low-precision types.

Float8 targets saturate by default (``saturate=1``: out-of-range values and infinities become
the largest finite value); ``saturate=0`` keeps ml_dtypes' IEEE-style overflow (NaN or inf).
FLOAT8E8M0 is built from the float32 exponent bits with the ``round_mode`` rule. A target
type numpy cannot represent raises a clear error at compile time.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel

__all__ = ["cast_array", "onnx_dtype"]

_FLOAT8 = {
    np.dtype(ml_dtypes.float8_e4m3fn),
    np.dtype(ml_dtypes.float8_e4m3fnuz),
    np.dtype(ml_dtypes.float8_e5m2),
    np.dtype(ml_dtypes.float8_e5m2fnuz),
    np.dtype(ml_dtypes.float4_e2m1fn),
}
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
_SUBBYTE_INT = {
    np.dtype(ml_dtypes.int4),
    np.dtype(ml_dtypes.uint4),
    np.dtype(ml_dtypes.int2),
    np.dtype(ml_dtypes.uint2),
}
_STR = np.dtype(object)


def onnx_dtype(elem_type: int | str) -> np.dtype[Any]:
    """Returns the numpy dtype of an ONNX element type (Cast-1 also accepts its name)."""
    if isinstance(elem_type, str):
        elem_type = int(TensorProto.DataType.Value(elem_type.upper()))
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(int(elem_type)))
    except Exception as exc:
        raise NotImplementedError(
            f"Cast: ONNX type {elem_type} has no numpy representation here"
        ) from exc


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32)
    exp = ((bits >> 23) & 0xFF).astype(np.int32)
    mant = bits & 0x7FFFFF
    nan = np.isnan(x)
    inf = np.isinf(x)
    if round_mode == "up":
        exp += mant != 0
    elif round_mode == "nearest":
        exp += mant >= 0x400000
    elif round_mode != "down":
        raise ValueError(f"Cast: unknown round_mode {round_mode!r}")
    over = (exp > 254) | inf
    if saturate:
        exp = np.where(over, 254, exp)
    else:
        exp = np.where(over, 255, exp)
    exp = np.where(nan, 255, exp)
    return exp.astype(np.uint8).view(_E8M0)


def _from_string(x: np.ndarray, to: np.dtype[Any]) -> np.ndarray:
    flat = [float(s) if to.kind in "fcV" else int(float(s)) if to.kind in "iub" else s
            for s in x.reshape(-1).tolist()]
    if to.kind == "V" or to in _FLOAT8 or to == _E8M0:
        return np.array(flat, dtype=np.float32).reshape(x.shape).astype(to)
    return np.array(flat, dtype=to).reshape(x.shape)


def _to_string(x: np.ndarray) -> np.ndarray:
    """Numbers as their shortest round-trip text for their own dtype ("0.1" for float32 0.1)."""
    src = x.astype(np.float32) if x.dtype.kind == "V" else x
    out: np.ndarray = src.astype(str).astype(object)
    return out


def _wrap_subbyte(x: np.ndarray, to: np.dtype[Any]) -> np.ndarray:
    """Casts to a 2- or 4-bit integer keeping the low bits (two's complement wrap)."""
    info = ml_dtypes.iinfo(to)  # type: ignore[no-untyped-call]
    bits = int(info.bits)
    src = x.astype(np.float64) if x.dtype.kind == "V" or x.dtype in _FLOAT8 else x
    v = src.astype(np.int64) & ((1 << bits) - 1)
    if info.min < 0:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return v.astype(to)


def cast_array(x: np.ndarray, to: np.dtype[Any], saturate: bool = True,
               round_mode: str = "up") -> np.ndarray:
    """Casts ``x`` to ``to`` with ONNX's rules (saturation for float8, E8M0 rounding)."""
    if x.dtype == to:
        return x
    if to == _STR:
        return _to_string(x)
    if x.dtype == _STR:
        return _from_string(x, to)
    if to == _E8M0:
        return _to_e8m0(x, saturate, round_mode)
    if to in _FLOAT8:
        src = x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(np.float32)
        if saturate:
            big = float(ml_dtypes.finfo(to).max)  # type: ignore[no-untyped-call]
            src = np.clip(src, -big, big)
        return src.astype(to)
    if to in _SUBBYTE_INT and x.dtype not in _SUBBYTE_INT:
        return _wrap_subbyte(x, to)
    return x.astype(to)


@kernel("Cast", 1)
@kernel("Cast", 6)
@kernel("Cast", 19)
@kernel("Cast", 24)
def cast(node: KernelNode) -> Kernel:
    """Cast: converts to ``to``; ``saturate`` (19+) for float8, ``round_mode`` (24+) for E8M0."""
    to = onnx_dtype(node.attr("to"))
    saturate = bool(node.attr("saturate", 1))
    round_mode = str(node.attr("round_mode", "up"))
    return FnKernel(lambda x: (cast_array(x, to, saturate, round_mode),))


@kernel("CastLike", 15)
@kernel("CastLike", 19)
def cast_like(node: KernelNode) -> Kernel:
    """CastLike: converts the first input to the dtype of the second."""
    saturate = bool(node.attr("saturate", 1))
    round_mode = str(node.attr("round_mode", "up"))
    return FnKernel(lambda x, like: (cast_array(x, like.dtype, saturate, round_mode),))
