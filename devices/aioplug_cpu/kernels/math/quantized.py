"""Integer and quantized-linear products: MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Inputs are centred on their zero points (scalar, per-row of A / per-column of B for the
matmuls, per output channel of W for the convs) and multiplied exactly: the products run in
float64 BLAS, exact for 8/16-bit operands, and the integer results come back as int32.
The QLinear forms then requantise: ``y = saturate(rint(acc * sa * sb / sy) + zp_y)``, rounding
half to even, saturating to the output type (that of ``y_zero_point``). For QLinearConv a
bias input (int32, scale ``sx * sw``) joins the accumulator before requantising.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import Array, as_kernel, const_input, versions
from .conv import ConvCore

__all__: list[str] = []

_F64 = np.dtype(np.float64)


def _rows(zp_or_scale: Array | None, a: Array) -> Array | None:
    """A 1-D per-row vector of A (length M) becomes a column ``(M, 1)``; others stay."""
    if zp_or_scale is None:
        return None
    v = np.asarray(zp_or_scale)
    if v.ndim == 1 and v.size > 1 and a.ndim >= 2 and v.size == a.shape[-2]:
        return v.reshape(-1, 1)
    return v


def _centred(x: Array, zp: Array | None) -> Array:
    xf = x.astype(_F64)
    if zp is not None:
        xf -= np.asarray(zp).astype(_F64)
    return xf


def _requantize(acc: Array, multiplier: Any, zp: Array | None, out_dtype: np.dtype[Any]) -> Array:
    y = np.rint(acc * multiplier)
    if zp is not None:
        y += np.asarray(zp).astype(_F64)
    info = np.iinfo(out_dtype)
    q: Array = np.clip(y, info.min, info.max).astype(out_dtype)
    return q


def _check_integer(dtype: np.dtype[Any], op: str) -> None:
    if dtype.kind not in "iu":
        raise NotImplementedError(f"{op}: only integer quantized types are implemented ({dtype})")


@versions("MatMulInteger", 10)
def _matmul_integer(node: KernelNode) -> Kernel:
    def run(
        a: Array, b: Array, a_zp: Array | None = None, b_zp: Array | None = None
    ) -> tuple[Array]:
        acc = np.matmul(_centred(a, _rows(a_zp, a)), _centred(b, b_zp))
        return (acc.astype(np.int32),)

    return as_kernel(run, "gemm")


@versions("QLinearMatMul", 10, 21)
def _qlinear_matmul(node: KernelNode) -> Kernel:
    def run(
        a: Array,
        a_scale: Array,
        a_zp: Array | None,
        b: Array,
        b_scale: Array,
        b_zp: Array | None,
        y_scale: Array,
        y_zp: Array | None = None,
    ) -> tuple[Array]:
        out_dtype = y_zp.dtype if y_zp is not None else a.dtype
        _check_integer(out_dtype, "QLinearMatMul")
        _check_integer(a.dtype, "QLinearMatMul")
        acc = np.matmul(_centred(a, _rows(a_zp, a)), _centred(b, b_zp))
        sa = _rows(np.asarray(a_scale, dtype=np.float32), a)
        assert sa is not None
        multiplier = (sa * np.asarray(b_scale, dtype=np.float32)) / np.asarray(
            y_scale, dtype=np.float32
        )
        return (_requantize(acc, multiplier.astype(_F64), y_zp, out_dtype),)

    return as_kernel(run, "gemm")


def _channel_column(v: Array | None, rank: int) -> Array | None:
    """A per-output-channel vector reshaped to broadcast over ``(M, C, *k)`` weights."""
    if v is None:
        return None
    v = np.asarray(v)
    return v.reshape((-1,) + (1,) * (rank - 1)) if v.size > 1 else v.reshape(())


def _centred_weights(w: Array | None, zp: Array | None) -> Array | None:
    return None if w is None else _centred(w, _channel_column(zp, w.ndim))


@versions("ConvInteger", 10)
def _conv_integer(node: KernelNode) -> Kernel:
    w_c = const_input(node, 1)
    wzp_c = const_input(node, 3)
    fixed = w_c is not None and (node.num_inputs < 4 or wzp_c is not None)
    core = ConvCore(node, _centred_weights(w_c, wzp_c) if fixed else None, _F64)

    def run(
        x: Array, w: Array, x_zp: Array | None = None, w_zp: Array | None = None
    ) -> tuple[Array]:
        wc = None if fixed else _centred(w, _channel_column(w_zp, w.ndim))
        acc = core.run(_centred(x, x_zp), wc)
        return (acc.astype(np.int32),)

    return as_kernel(run, "gemm_im2col")


@versions("QLinearConv", 10)
def _qlinear_conv(node: KernelNode) -> Kernel:
    w_c = const_input(node, 3)
    wzp_c = const_input(node, 5)
    fixed = w_c is not None and wzp_c is not None
    core = ConvCore(node, _centred_weights(w_c, wzp_c) if fixed else None, _F64)

    def run(
        x: Array,
        x_scale: Array,
        x_zp: Array | None,
        w: Array,
        w_scale: Array,
        w_zp: Array | None,
        y_scale: Array,
        y_zp: Array | None,
        b: Array | None = None,
    ) -> tuple[Array]:
        out_dtype = y_zp.dtype if y_zp is not None else x.dtype
        _check_integer(out_dtype, "QLinearConv")
        wc = None if fixed else _centred(w, _channel_column(w_zp, w.ndim))
        acc = core.run(_centred(x, x_zp), wc)
        rank = acc.ndim - 2
        if b is not None:
            acc += b.astype(_F64).reshape((-1,) + (1,) * rank)
        ws = np.asarray(w_scale, dtype=np.float32)
        ws = ws.reshape((-1,) + (1,) * rank) if ws.size > 1 else ws.reshape(())
        multiplier = (np.asarray(x_scale, dtype=np.float32).reshape(()) * ws) / np.asarray(
            y_scale, dtype=np.float32
        ).reshape(())
        return (_requantize(acc, multiplier.astype(_F64), y_zp, out_dtype),)

    return as_kernel(run, "gemm_im2col")
