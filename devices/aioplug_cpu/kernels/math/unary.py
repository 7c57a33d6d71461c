"""Unary math kernels: Abs Neg Exp Log Sqrt Reciprocal Floor Ceil Round Sign, trigonometric and
hyperbolic functions, Erf, IsNaN, IsInf and Clip.

Each keeps its input's dtype (IsNaN/IsInf give bool). Round rounds half to even. Clip bounds
are attributes before opset 11 and optional scalar inputs from 11; ``min > max`` gives ``max``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import Array, as_kernel, const_input, ensure_array, int_attr, unary_kernel, versions
from ._erf import erf

__all__: list[str] = []


def _unary(fn: Callable[[Any], Any]) -> Kernel:
    return unary_kernel(fn)


def _predicate(fn: Callable[[Any], Any]) -> Kernel:
    return unary_kernel(fn, keep_dtype=False)


@versions("Abs", 1, 6, 13)
def _abs(node: KernelNode) -> Kernel:
    return _unary(np.abs)


@versions("Neg", 1, 6, 13)
def _neg(node: KernelNode) -> Kernel:
    return _unary(np.negative)


@versions("Exp", 1, 6, 13)
def _exp(node: KernelNode) -> Kernel:
    return _unary(np.exp)


@versions("Log", 1, 6, 13)
def _log(node: KernelNode) -> Kernel:
    return _unary(np.log)


@versions("Sqrt", 1, 6, 13)
def _sqrt(node: KernelNode) -> Kernel:
    return _unary(np.sqrt)


@versions("Reciprocal", 1, 6, 13)
def _reciprocal(node: KernelNode) -> Kernel:
    return _unary(np.reciprocal)


@versions("Floor", 1, 6, 13)
def _floor(node: KernelNode) -> Kernel:
    return _unary(np.floor)


@versions("Ceil", 1, 6, 13)
def _ceil(node: KernelNode) -> Kernel:
    return _unary(np.ceil)


@versions("Round", 11, 22)
def _round(node: KernelNode) -> Kernel:
    return _unary(np.rint)


@versions("Sign", 9, 13)
def _sign(node: KernelNode) -> Kernel:
    return _unary(np.sign)


@versions("Sin", 7, 22)
def _sin(node: KernelNode) -> Kernel:
    return _unary(np.sin)


@versions("Cos", 7, 22)
def _cos(node: KernelNode) -> Kernel:
    return _unary(np.cos)


@versions("Tan", 7, 22)
def _tan(node: KernelNode) -> Kernel:
    return _unary(np.tan)


@versions("Asin", 7, 22)
def _asin(node: KernelNode) -> Kernel:
    return _unary(np.arcsin)


@versions("Acos", 7, 22)
def _acos(node: KernelNode) -> Kernel:
    return _unary(np.arccos)


@versions("Atan", 7, 22)
def _atan(node: KernelNode) -> Kernel:
    return _unary(np.arctan)


@versions("Sinh", 9, 22)
def _sinh(node: KernelNode) -> Kernel:
    return _unary(np.sinh)


@versions("Cosh", 9, 22)
def _cosh(node: KernelNode) -> Kernel:
    return _unary(np.cosh)


@versions("Asinh", 9, 22)
def _asinh(node: KernelNode) -> Kernel:
    return _unary(np.arcsinh)


@versions("Acosh", 9, 22)
def _acosh(node: KernelNode) -> Kernel:
    return _unary(np.arccosh)


@versions("Atanh", 9, 22)
def _atanh(node: KernelNode) -> Kernel:
    return _unary(np.arctanh)


def _erf_any(x: Array) -> Array:
    """erf for every numeric dtype; integer results truncate as a cast does."""
    if x.dtype.kind == "f":
        return erf(x)
    if x.dtype.name == "bfloat16":
        return erf(x.astype(np.float32)).astype(x.dtype)
    return erf(x.astype(np.float64)).astype(x.dtype)


@versions("Erf", 9, 13)
def _erf(node: KernelNode) -> Kernel:
    return _unary(_erf_any)


@versions("IsNaN", 9, 13, 20)
def _isnan(node: KernelNode) -> Kernel:
    return _predicate(np.isnan)


@versions("IsInf", 10, 20)
def _isinf(node: KernelNode) -> Kernel:
    negative = bool(int_attr(node, "detect_negative", 1))
    positive = bool(int_attr(node, "detect_positive", 1))
    if negative and positive:
        return _predicate(np.isinf)
    if positive:
        return _predicate(np.isposinf)
    if negative:
        return _predicate(np.isneginf)
    return _predicate(lambda x: np.zeros(x.shape, dtype=np.bool_))


def _clamp(x: Array, lo: Any, hi: Any) -> Array:
    """``min(max(x, lo), hi)`` skipping absent bounds; NaN stays NaN."""
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return x if x.__class__ is np.ndarray else ensure_array(x)


@versions("Clip", 1)
def _clip_1(node: KernelNode) -> Kernel:
    lo = node.attr("min")
    hi = node.attr("max")

    def run(x: Array) -> tuple[Array]:
        t = x.dtype.type
        return (_clamp(x, None if lo is None else t(lo), None if hi is None else t(hi)),)

    return as_kernel(run)


@versions("Clip", 6)
def _clip_6(node: KernelNode) -> Kernel:
    lo = float(node.attr("min", -3.4028234663852886e38))
    hi = float(node.attr("max", 3.4028234663852886e38))

    def run(x: Array) -> tuple[Array]:
        t = x.dtype.type
        with np.errstate(over="ignore"):  # the float32 limits overflow to inf in float16
            return (_clamp(x, t(lo), t(hi)),)

    return as_kernel(run)


@versions("Clip", 11, 12, 13)
def _clip_11(node: KernelNode) -> Kernel:
    lo_c = const_input(node, 1)
    hi_c = const_input(node, 2)
    has_lo = node.num_inputs > 1
    has_hi = node.num_inputs > 2
    if (lo_c is not None or not has_lo) and (hi_c is not None or not has_hi):
        lo_v = None if lo_c is None else lo_c.reshape(())
        hi_v = None if hi_c is None else hi_c.reshape(())

        def run_const(x: Array, lo: Any = None, hi: Any = None) -> tuple[Array]:
            return (_clamp(x, lo_v, hi_v),)

        return as_kernel(run_const)

    def run(x: Array, lo: Array | None = None, hi: Array | None = None) -> tuple[Array]:
        return (_clamp(x, lo, hi),)

    return as_kernel(run)
