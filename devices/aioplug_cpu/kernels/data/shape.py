"""Shape kernels: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand, Shape, Size, Identity.

These only move or re-view data. Where an attribute or a constant input fixes the result
layout, the factory resolves it once and the call is a single numpy view operation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import INT64, FnKernel, const_input, int_list, normalize_axes

__all__: list[str] = []


def _reshape_target(in_shape: tuple[int, ...], spec: list[int], allowzero: bool) -> list[int]:
    """Resolves ONNX reshape semantics: 0 copies the input dim (unless allowzero), -1 infers."""
    if allowzero:
        return spec
    out = list(spec)
    for i, d in enumerate(spec):
        if d == 0:
            if i >= len(in_shape):
                raise ValueError(f"Reshape: 0 at position {i} beyond input rank {len(in_shape)}")
            out[i] = in_shape[i]
    return out


@kernel("Reshape", 1)
def reshape_1(node: KernelNode) -> Kernel:
    """Reshape-1: target shape from the ``shape`` attribute."""
    spec = int_list(node.attr("shape", []))

    def run(x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        return (x.reshape(_reshape_target(x.shape, spec, False)),)

    return FnKernel(run)


@kernel("Reshape", 5)
@kernel("Reshape", 14)
def reshape_5(node: KernelNode) -> Kernel:
    """Reshape-5/14: target shape from input 1; ``allowzero`` (14+) keeps literal zeros."""
    allowzero = bool(node.attr("allowzero", 0))
    const = const_input(node.const_inputs, 1)
    if const is not None:
        spec = int_list(const)
        if allowzero or 0 not in spec:
            fixed = tuple(spec)

            def run_fixed(x: np.ndarray, _shape: Any = None) -> tuple[np.ndarray]:
                return (x.reshape(fixed),)

            return FnKernel(run_fixed)

        def run_const(x: np.ndarray, _shape: Any = None) -> tuple[np.ndarray]:
            return (x.reshape(_reshape_target(x.shape, spec, False)),)

        return FnKernel(run_const)

    def run(x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        return (x.reshape(_reshape_target(x.shape, int_list(shape), allowzero)),)

    return FnKernel(run)


@kernel("Flatten", 1)
@kernel("Flatten", 11)
def flatten(node: KernelNode) -> Kernel:
    """Flatten: 2-D view ``(prod(shape[:axis]), prod(shape[axis:]))``; negative axis since 11."""
    axis = int(node.attr("axis", 1))

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"Flatten: axis {axis} out of range for rank {x.ndim}")
        return (x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:])),)

    return FnKernel(run)


def _squeeze(x: np.ndarray, axes: list[int] | None) -> np.ndarray:
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    return np.squeeze(x, axis=tuple(normalize_axes(axes, x.ndim)))


@kernel("Squeeze", 1)
def squeeze_1(node: KernelNode) -> Kernel:
    """Squeeze-1: removes the ``axes`` attribute's unit dims, or every unit dim."""
    raw = node.attr("axes")
    axes = int_list(raw) if raw is not None else None
    return FnKernel(lambda x: (_squeeze(x, axes),))


@kernel("Squeeze", 13)
def squeeze_13(node: KernelNode) -> Kernel:
    """Squeeze-13: axes come from the optional second input."""
    const = const_input(node.const_inputs, 1)
    if const is not None or node.num_inputs < 2:
        axes = int_list(const) if const is not None else None
        return FnKernel(lambda x, *_: (_squeeze(x, axes),))

    def run(x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        return (_squeeze(x, int_list(axes) if axes is not None else None),)

    return FnKernel(run)


def _unsqueeze(x: np.ndarray, axes: list[int]) -> np.ndarray:
    rank = x.ndim + len(axes)
    norm = sorted(normalize_axes(axes, rank))
    if len(set(norm)) != len(norm):
        raise ValueError(f"Unsqueeze: repeated axes {axes}")
    shape = list(x.shape)
    for a in norm:
        shape.insert(a, 1)
    return x.reshape(shape)


@kernel("Unsqueeze", 1)
def unsqueeze_1(node: KernelNode) -> Kernel:
    """Unsqueeze-1: inserts unit dims at the ``axes`` attribute (positions in the output)."""
    axes = int_list(node.attr("axes", []))
    return FnKernel(lambda x: (_unsqueeze(x, axes),))


@kernel("Unsqueeze", 13)
def unsqueeze_13(node: KernelNode) -> Kernel:
    """Unsqueeze-13: axes come from the second input."""
    const = const_input(node.const_inputs, 1)
    if const is not None:
        axes = int_list(const)
        return FnKernel(lambda x, _a=None: (_unsqueeze(x, axes),))
    return FnKernel(lambda x, a: (_unsqueeze(x, int_list(a)),))


@kernel("Transpose", 1)
def transpose(node: KernelNode) -> Kernel:
    """Transpose: permutes axes by ``perm`` (default: reversed)."""
    raw = node.attr("perm")
    if raw is None:
        return FnKernel(lambda x: (np.transpose(x),))
    perm = tuple(int_list(raw))
    return FnKernel(lambda x: (np.transpose(x, perm),))


@kernel("Expand", 8)
def expand(node: KernelNode) -> Kernel:
    """Expand: bidirectional broadcast of the input against the shape input (materialised)."""

    def run(x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        out_shape = np.broadcast_shapes(x.shape, tuple(int_list(shape)))
        out = np.empty(out_shape, dtype=x.dtype)
        out[...] = x
        return (out,)

    return FnKernel(run)


@kernel("Shape", 1)
@kernel("Shape", 15)
def shape(node: KernelNode) -> Kernel:
    """Shape: the input's dims as int64, sliced by ``start``/``end`` (15+, clamped)."""
    start = int(node.attr("start", 0))
    end = node.attr("end")
    stop = int(end) if end is not None else None

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        return (np.array(x.shape[start:stop], dtype=INT64),)

    return FnKernel(run)


@kernel("Size", 1)
def size(node: KernelNode) -> Kernel:
    """Size: number of elements as an int64 scalar."""
    return FnKernel(lambda x: (np.array(x.size, dtype=INT64),))


@kernel("Identity", 1)
def identity(node: KernelNode) -> Kernel:
    """Identity: returns its input (tensor, sequence or optional) unchanged."""
    return FnKernel(lambda x: (x,))


@kernel("DepthToSpace", 1)
@kernel("DepthToSpace", 11)
def depth_to_space(node: KernelNode) -> Kernel:
    """DepthToSpace: moves channel blocks into space, DCR (default) or CRD (11+) order."""
    bs = int(node.attr("blocksize"))
    crd = node.attr("mode", "DCR") == "CRD"

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        b, c, h, w = x.shape
        oc = c // (bs * bs)
        if crd:
            t = x.reshape(b, oc, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
        else:
            t = x.reshape(b, bs, bs, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
        return (t.reshape(b, oc, h * bs, w * bs),)

    return FnKernel(run)


@kernel("SpaceToDepth", 1)
@kernel("SpaceToDepth", 28)
def space_to_depth(node: KernelNode) -> Kernel:
    """SpaceToDepth: moves spatial blocks into channels, DCR (default) or CRD (28+) order."""
    bs = int(node.attr("blocksize"))
    crd = node.attr("mode", "DCR") == "CRD"

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        b, c, h, w = x.shape
        t = x.reshape(b, c, h // bs, bs, w // bs, bs)
        t = t.transpose(0, 1, 3, 5, 2, 4) if crd else t.transpose(0, 3, 5, 1, 2, 4)
        return (t.reshape(b, c * bs * bs, h // bs, w // bs),)

    return FnKernel(run)
