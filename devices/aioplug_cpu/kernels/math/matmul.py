"""Gemm, MatMul, Einsum and Det.

Gemm computes ``alpha * A' @ B' + beta * C`` (``A' = A.T`` when ``transA``, likewise B) with C
broadcast to ``(M, N)``; a constant B is transposed and scaled by alpha once, a constant C
scaled by beta once. MatMul follows numpy (batched, broadcast, 1-D operands promoted);
a constant 2-D right operand turns a batched product into one GEMM. Einsum runs numpy's einsum
along a contraction path computed once per input shapes (the implicit form's output lists the
labels used once, in ASCII order, after the ellipsis). float16 computes in float32.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import (
    Array,
    as_kernel,
    compute_dtype,
    const_input,
    ensure_array,
    float_attr,
    int_attr,
    versions,
)

__all__: list[str] = []


def _is_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


@versions("Gemm", 1, 6, 7, 9, 11, 13)
def _gemm(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 1.0)
    beta = float_attr(node, "beta", 1.0)
    trans_a = bool(int_attr(node, "transA", 0))
    trans_b = bool(int_attr(node, "transB", 0))
    b_const = const_input(node, 1)
    c_const = const_input(node, 2)
    has_c = node.num_inputs > 2 and beta != 0.0

    b_ready: Array | None = None
    alpha_folded = False
    if b_const is not None:
        bb = b_const.T if trans_b else b_const
        if _is_float(b_const.dtype):
            bb = bb.astype(compute_dtype(b_const.dtype), copy=False)
            if alpha != 1.0:
                bb = bb * bb.dtype.type(alpha)
                alpha_folded = True
        b_ready = np.ascontiguousarray(bb)
    c_ready: Array | None = None
    if has_c and c_const is not None and _is_float(c_const.dtype):
        cc = c_const.astype(compute_dtype(c_const.dtype), copy=False)
        c_ready = cc * cc.dtype.type(beta) if beta != 1.0 else cc
    in_place_for: dict[tuple[int, ...], bool] = {}

    def run(a: Array, b: Array, c: Array | None = None) -> tuple[Array]:
        dtype = a.dtype
        floating = _is_float(dtype)
        cdt = compute_dtype(dtype)
        aa = a.T if trans_a else a
        if floating and aa.dtype != cdt:
            aa = aa.astype(cdt)
        if b_ready is not None:
            bb = b_ready
        else:
            bb = b.T if trans_b else b
            if floating and bb.dtype != cdt:
                bb = bb.astype(cdt)
        y = aa @ bb
        if alpha != 1.0 and not alpha_folded:
            y = y * alpha if floating else (y * alpha).astype(dtype)
        if has_c:
            if c_ready is not None:
                in_place = in_place_for.get(y.shape)
                if in_place is None:  # once per output shape: broadcast_shapes costs ~5 us
                    in_place = np.broadcast_shapes(y.shape, c_ready.shape) == y.shape
                    in_place_for[y.shape] = in_place
                if in_place and y.dtype == c_ready.dtype:
                    y += c_ready  # y is fresh from the product: add the bias in place
                else:
                    y = y + c_ready
            elif c is not None:
                if floating:
                    cc = c.astype(cdt, copy=False)
                    y = y + (cc * cdt.type(beta) if beta != 1.0 else cc)
                else:
                    y = y + (c if beta == 1.0 else (c * beta).astype(dtype))
        return (y if y.dtype == dtype else y.astype(dtype),)

    return as_kernel(run, "gemm")


@versions("MatMul", 1, 9, 13)
def _matmul(node: KernelNode) -> Kernel:
    b_const = const_input(node, 1)
    if b_const is not None and b_const.ndim == 2:
        b_ready = np.ascontiguousarray(b_const.astype(compute_dtype(b_const.dtype), copy=False))
        k, n = b_ready.shape

        def run_const(a: Array, b: Array) -> tuple[Array]:
            dtype = a.dtype
            aa = a.astype(b_ready.dtype, copy=False)
            if aa.ndim > 2:
                y = (aa.reshape(-1, k) @ b_ready).reshape(aa.shape[:-1] + (n,))
            else:
                y = aa @ b_ready
            return (ensure_array(y, dtype),)

        return as_kernel(run_const, "gemm")

    def run(a: Array, b: Array) -> tuple[Array]:
        dtype = a.dtype
        cdt = compute_dtype(dtype)
        if cdt != dtype:
            return (ensure_array(np.matmul(a.astype(cdt), b.astype(cdt)), dtype),)
        y = np.matmul(a, b)
        return (y if y.__class__ is np.ndarray else np.asarray(y),)

    return as_kernel(run, "gemm")


def _explicit(equation: str) -> str:
    """Returns the equation without spaces and with an explicit output term."""
    eq = equation.replace(" ", "")
    if "->" in eq:
        return eq
    counts = Counter(ch for ch in eq if ch.isalpha())
    once = "".join(sorted(ch for ch, n in counts.items() if n == 1))
    return f"{eq}->{'...' if '...' in eq else ''}{once}"


@versions("Einsum", 12, 28)
def _einsum(node: KernelNode) -> Kernel:
    equation = _explicit(str(node.attr("equation", "")))
    paths: dict[tuple[tuple[int, ...], ...], Any] = {}

    def run(*xs: Array) -> tuple[Array]:
        dtype = xs[0].dtype
        cdt = compute_dtype(dtype)
        ops = [x.astype(cdt, copy=False) for x in xs]
        if len(ops) < 2:
            y = np.einsum(equation, *ops)
        else:
            key = tuple(x.shape for x in ops)
            path = paths.get(key)
            if path is None:
                path = np.einsum_path(equation, *ops, optimize="greedy")[0]
                paths[key] = path
            y = np.einsum(equation, *ops, optimize=path)
        y = np.asarray(y)
        return (y if y.dtype == dtype else y.astype(dtype),)

    return as_kernel(run)


@versions("Det", 11, 22)
def _det(node: KernelNode) -> Kernel:
    def run(x: Array) -> tuple[Array]:
        dtype = x.dtype
        y = np.asarray(np.linalg.det(x.astype(compute_dtype(dtype), copy=False)))
        return (y if y.dtype == dtype else y.astype(dtype),)

    return as_kernel(run)
