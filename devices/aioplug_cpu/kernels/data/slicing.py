"""Slicing and padding kernels: Slice, Pad, CenterCropPad.

ONNX slice bounds follow Python's: negative indices count from the end and out-of-range
values clamp (for negative steps the end clamps to "before the first element"), so a Python
``slice`` built from the raw values has exactly ONNX's semantics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, const_input, int_list, normalize_axes

__all__: list[str] = []


def _slice_key(rank: int, starts: list[int], ends: list[int], axes: list[int] | None,
               steps: list[int] | None) -> tuple[slice, ...]:
    key = [slice(None)] * rank
    ax = normalize_axes(axes, rank) if axes else list(range(len(starts)))
    st = steps or [1] * len(starts)
    for a, s, e, p in zip(ax, starts, ends, st, strict=True):
        if p == 0:
            raise ValueError("Slice: step must not be 0")
        key[a] = slice(s, e, p)
    return tuple(key)


@kernel("Slice", 1)
def slice_1(node: KernelNode) -> Kernel:
    """Slice-1: starts/ends/axes from attributes."""
    starts = int_list(node.attr("starts"))
    ends = int_list(node.attr("ends"))
    axes = int_list(node.attr("axes")) or None

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        return (x[_slice_key(x.ndim, starts, ends, axes, None)],)

    return FnKernel(run)


class _SliceKernel:
    """Slice-10+: builds the slice key once when starts/ends/axes/steps are constant."""

    exec_type = "numpy"

    def __init__(self, consts: list[np.ndarray | None], present: list[bool]) -> None:
        self._present = present
        self._fixed = all(c is not None or not p for c, p in zip(consts, present))
        self._consts = [int_list(c) if c is not None else None for c in consts]
        self._cache: tuple[int, tuple[slice, ...]] | None = None

    def __call__(self, x: np.ndarray, *args: Any) -> tuple[np.ndarray]:
        if self._fixed:
            cache = self._cache
            if cache is None or cache[0] != x.ndim:
                s, e, a, p = self._consts
                cache = (x.ndim, _slice_key(x.ndim, s or [], e or [], a, p))
                self._cache = cache
            return (x[cache[1]],)
        vals = [int_list(v) if v is not None else None for v in (*args, None, None)[:4]]
        return (x[_slice_key(x.ndim, vals[0] or [], vals[1] or [], vals[2], vals[3])],)


@kernel("Slice", 10)
@kernel("Slice", 13)
def slice_10(node: KernelNode) -> Kernel:
    """Slice-10+: starts, ends, optional axes and steps as inputs; negative steps allowed."""
    consts = [const_input(node.const_inputs, i) for i in range(1, 5)]
    present = [i < node.num_inputs for i in range(1, 5)]
    return _SliceKernel(consts, present)


def _pad(x: np.ndarray, pads: list[int], mode: str, value: Any, axes: list[int] | None) -> np.ndarray:
    """Pads (or crops, for negative pads) ``x``; ``pads`` is [begins..., ends...] over ``axes``."""
    rank = x.ndim
    ax = normalize_axes(axes, rank) if axes else list(range(rank))
    n = len(ax)
    if len(pads) != 2 * n:
        raise ValueError(f"Pad: expected {2 * n} pad values, got {len(pads)}")
    before = [0] * rank
    after = [0] * rank
    for i, a in enumerate(ax):
        before[a] = pads[i]
        after[a] = pads[i + n]
    if any(p < 0 for p in before + after):
        key = tuple(slice(max(-b, 0), d - max(-e, 0)) for b, e, d in zip(before, after, x.shape))
        x = x[key]
        before = [max(b, 0) for b in before]
        after = [max(e, 0) for e in after]
    if not any(before) and not any(after):
        return x
    if mode == "constant":
        out_shape = tuple(d + b + e for d, b, e in zip(x.shape, before, after))
        out = np.full(out_shape, value if value is not None else 0, dtype=x.dtype)
        out[tuple(slice(b, b + d) for b, d in zip(before, x.shape))] = x
        return out
    np_mode = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if np_mode is None:
        raise ValueError(f"Pad: unsupported mode {mode!r}")
    return np.pad(x, list(zip(before, after)), mode=np_mode)  # type: ignore[call-overload, no-any-return]


@kernel("Pad", 1)
def pad_1(node: KernelNode) -> Kernel:
    """Pad-1: ``paddings`` and ``value`` attributes."""
    pads = int_list(node.attr("paddings"))
    mode, value = str(node.attr("mode", "constant")), float(node.attr("value", 0.0))
    return FnKernel(lambda x: (_pad(x, pads, mode, value, None),))


@kernel("Pad", 2)
def pad_2(node: KernelNode) -> Kernel:
    """Pad-2: ``pads`` and ``value`` attributes."""
    pads = int_list(node.attr("pads"))
    mode, value = str(node.attr("mode", "constant")), float(node.attr("value", 0.0))
    return FnKernel(lambda x: (_pad(x, pads, mode, value, None),))


@kernel("Pad", 11)
@kernel("Pad", 18)
@kernel("Pad", 19)
def pad_11(node: KernelNode) -> Kernel:
    """Pad-11+: pads, constant_value and (18+) axes inputs; ``wrap`` mode since 19."""
    mode = str(node.attr("mode", "constant"))
    const_pads = const_input(node.const_inputs, 1)
    const_axes = const_input(node.const_inputs, 3)
    fixed_pads = int_list(const_pads) if const_pads is not None else None
    fixed_axes = int_list(const_axes) if const_axes is not None else None

    def run(x: np.ndarray, pads: np.ndarray, value: np.ndarray | None = None,
            axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        p = fixed_pads if fixed_pads is not None else int_list(pads)
        a = fixed_axes if fixed_axes is not None else (int_list(axes) if axes is not None else None)
        v = value.reshape(-1)[0] if value is not None and value.size else None
        return (_pad(x, p, mode, v, a),)

    return FnKernel(run)


@kernel("CenterCropPad", 18)
def center_crop_pad(node: KernelNode) -> Kernel:
    """CenterCropPad: crops (start rounded down) or zero-pads (extra pixel on the right) to shape."""
    attr_axes = node.attr("axes")

    def run(x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        rank = x.ndim
        axes = normalize_axes(int_list(attr_axes), rank) if attr_axes is not None else list(range(rank))
        target = int_list(shape)
        src = [slice(None)] * rank
        dst = [slice(None)] * rank
        out_shape = list(x.shape)
        for a, t in zip(axes, target, strict=True):
            d = x.shape[a]
            out_shape[a] = t
            if t < d:
                s = (d - t) // 2
                src[a] = slice(s, s + t)
            elif t > d:
                s = (t - d) // 2
                dst[a] = slice(s, s + d)
        out = np.zeros(out_shape, dtype=x.dtype)
        out[tuple(dst)] = x[tuple(src)]
        return (out,)

    return FnKernel(run)
