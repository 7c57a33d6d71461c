"""Generator kernels: Constant, ConstantOfShape, Range, EyeLike, OneHot, Trilu."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, int_list, normalize_axis
from .cast import onnx_dtype

__all__: list[str] = []


def _sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    values = numpy_helper.to_array(sp.values)
    indices = numpy_helper.to_array(sp.indices).astype(np.int64)
    dims = tuple(int(d) for d in sp.dims)
    dense = np.zeros(int(np.prod(dims, dtype=np.int64)), dtype=values.dtype)
    if indices.ndim == 2:
        indices = np.ravel_multi_index(tuple(indices.T), dims)
    dense[indices.reshape(-1)] = values.reshape(-1)
    return dense.reshape(dims)


def constant_value(attrs: dict[str, Any] | Any) -> np.ndarray:
    """Returns the tensor a Constant node's single ``value*`` attribute defines."""
    if "value" in attrs:
        v = attrs["value"]
        return v if isinstance(v, np.ndarray) else numpy_helper.to_array(v)
    if "sparse_value" in attrs:
        return _sparse_to_dense(attrs["sparse_value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    if "value_string" in attrs:
        return np.array(attrs["value_string"], dtype=object)
    if "value_strings" in attrs:
        return np.array(list(attrs["value_strings"]), dtype=object)
    raise ValueError("Constant: no value attribute")


@kernel("Constant", 1)
@kernel("Constant", 9)
@kernel("Constant", 11)
@kernel("Constant", 12)
def constant(node: KernelNode) -> Kernel:
    """Constant: the tensor of ``value`` / ``sparse_value`` (11+) / ``value_*`` (12+)."""
    value = constant_value(node.attributes)
    value.setflags(write=False)
    return FnKernel(lambda: (value,))


@kernel("ConstantOfShape", 9)
def constant_of_shape(node: KernelNode) -> Kernel:
    """ConstantOfShape: a tensor of the input shape filled with ``value`` (default float32 0)."""
    raw = node.attr("value")
    fill = np.asarray(raw).reshape(-1)[0] if raw is not None else np.float32(0)
    dtype = np.asarray(raw).dtype if raw is not None else np.dtype(np.float32)

    def run(shape: np.ndarray) -> tuple[np.ndarray]:
        return (np.full(tuple(int_list(shape)), fill, dtype=dtype),)

    return FnKernel(run)


@kernel("Range", 11)
def range_(node: KernelNode) -> Kernel:
    """Range: ``start + i * delta`` for ``i < max(ceil((limit - start) / delta), 0)``."""

    def run(start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray]:
        dtype = start.dtype
        calc = np.float32 if dtype.kind == "V" or dtype == np.float16 else dtype
        s, lim, d = (np.asarray(v, dtype=calc).reshape(()) for v in (start, limit, delta))
        if dtype.kind in "iu":
            n = max(-(-(int(lim) - int(s)) // int(d)), 0)
        else:
            n = max(int(np.ceil((lim - s) / d)), 0)
        out = s + np.arange(n, dtype=calc) * d
        return (out.astype(dtype, copy=False),)

    return FnKernel(run)


@kernel("EyeLike", 9)
def eye_like(node: KernelNode) -> Kernel:
    """EyeLike: a 2-D identity of the input's shape, shifted by ``k``, of ``dtype`` or the input's."""
    k = int(node.attr("k", 0))
    raw = node.attr("dtype")
    fixed = onnx_dtype(raw) if raw is not None else None

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        rows, cols = x.shape
        return (np.eye(rows, cols, k=k, dtype=fixed or x.dtype),)

    return FnKernel(run)


@kernel("OneHot", 9)
@kernel("OneHot", 11)
def one_hot(node: KernelNode) -> Kernel:
    """OneHot: ``on`` where ``indices`` (negative counts from ``depth``) hits, else ``off``."""
    axis = int(node.attr("axis", -1))

    def run(indices: np.ndarray, depth: np.ndarray, values: np.ndarray) -> tuple[np.ndarray]:
        n = int(np.asarray(depth).reshape(-1)[0])
        idx = indices.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        a = normalize_axis(axis, idx.ndim + 1)
        shape = [1] * (idx.ndim + 1)
        shape[a] = n
        hits = np.expand_dims(idx, a) == np.arange(n, dtype=np.int64).reshape(shape)
        off, on = values.reshape(-1)[0], values.reshape(-1)[1]
        return (np.where(hits, on, off).astype(values.dtype, copy=False),)

    return FnKernel(run)


@kernel("Trilu", 14)
def trilu(node: KernelNode) -> Kernel:
    """Trilu: keeps the upper (default) or lower triangle of the last two dims, offset by ``k``."""
    upper = bool(node.attr("upper", 1))

    def run(x: np.ndarray, k: np.ndarray | None = None) -> tuple[np.ndarray]:
        kk = int(np.asarray(k).reshape(-1)[0]) if k is not None else 0
        return ((np.triu(x, kk) if upper else np.tril(x, kk)),)

    return FnKernel(run)
