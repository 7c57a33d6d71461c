"""Join and split kernels: Concat, Split, Tile."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, const_input, int_list, normalize_axis

__all__: list[str] = []


def _concat(axis: int) -> Callable[..., tuple[np.ndarray]]:
    def run(*xs: np.ndarray) -> tuple[np.ndarray]:
        parts = [x for x in xs if x is not None]
        return (np.concatenate(parts, axis=normalize_axis(axis, parts[0].ndim)),)

    return run


@kernel("Concat", 1)
def concat_1(node: KernelNode) -> Kernel:
    """Concat-1: joins inputs along ``axis`` (default 1 in this version)."""
    return FnKernel(_concat(int(node.attr("axis", 1))))


@kernel("Concat", 4)
@kernel("Concat", 11)
def concat_4(node: KernelNode) -> Kernel:
    """Concat-4+: joins inputs along the required ``axis`` (negative since 11)."""
    return FnKernel(_concat(int(node.attr("axis"))))


def _split_points(dim: int, sizes: list[int] | None, parts: int, num_outputs: int | None) -> list[int]:
    """Returns the cut points of a split along a dim of length ``dim``."""
    if sizes:
        if sum(sizes) != dim:
            raise ValueError(f"Split: sizes {sizes} do not add up to {dim}")
        return [int(v) for v in np.cumsum(sizes)[:-1]]
    if num_outputs is not None:
        chunk = -(-dim // num_outputs)
        return [min(chunk * i, dim) for i in range(1, num_outputs)]
    if dim % parts:
        raise ValueError(f"Split: dim {dim} does not divide into {parts} equal parts")
    step = dim // parts
    return [step * i for i in range(1, parts)]


def _make_split(axis: int, attr_sizes: list[int] | None, parts: int, num_outputs: int | None,
                const_sizes: np.ndarray | None) -> FnKernel:
    fixed = int_list(const_sizes) if const_sizes is not None else attr_sizes

    def run(x: np.ndarray, split: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        a = normalize_axis(axis, x.ndim)
        sizes = int_list(split) if split is not None else fixed
        return tuple(np.split(x, _split_points(x.shape[a], sizes, parts, num_outputs), axis=a))

    return FnKernel(run)


@kernel("Split", 1)
def split_1(node: KernelNode) -> Kernel:
    """Split-1: sizes from the ``split`` attribute or the optional second input."""
    return _make_split(int(node.attr("axis", 0)), int_list(node.attr("split")) or None,
                       node.num_outputs, None, const_input(node.const_inputs, 1))


@kernel("Split", 2)
@kernel("Split", 11)
def split_2(node: KernelNode) -> Kernel:
    """Split-2/11: sizes from the ``split`` attribute, else equal parts."""
    return _make_split(int(node.attr("axis", 0)), int_list(node.attr("split")) or None,
                       node.num_outputs, None, None)


@kernel("Split", 13)
@kernel("Split", 18)
def split_13(node: KernelNode) -> Kernel:
    """Split-13/18: sizes from the optional input; ``num_outputs`` (18+) uses ceil-sized chunks."""
    n = node.attr("num_outputs")
    return _make_split(int(node.attr("axis", 0)), None, node.num_outputs,
                       int(n) if n is not None else None, const_input(node.const_inputs, 1))


@kernel("Tile", 1)
def tile_1(node: KernelNode) -> Kernel:
    """Tile-1: repeats the input ``tiles`` times along ``axis`` (both scalar inputs)."""

    def run(x: np.ndarray, tiles: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray]:
        reps = [1] * x.ndim
        reps[normalize_axis(int(axis), x.ndim)] = int(tiles)
        return (np.tile(x, reps),)

    return FnKernel(run)


@kernel("Tile", 6)
def tile_6(node: KernelNode) -> Kernel:
    """Tile-6: repeats the input ``repeats[i]`` times along every axis i."""
    const = const_input(node.const_inputs, 1)
    if const is not None:
        reps = tuple(int_list(const))
        return FnKernel(lambda x, _r=None: (np.tile(x, reps),))
    return FnKernel(lambda x, r: (np.tile(x, tuple(int_list(r))),))
