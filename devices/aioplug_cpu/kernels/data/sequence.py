"""Sequence and optional kernels. A sequence is a Python list of arrays, an empty optional None.

Kernels never mutate an input list: every sequence output is a new list.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import INT64, FnKernel, int_list, normalize_axis

__all__: list[str] = []


@kernel("Optional", 15)
def optional(node: KernelNode) -> Kernel:
    """Optional: wraps the input, or makes an empty optional (None) when it is omitted."""
    return FnKernel(lambda x=None: (x,))


@kernel("OptionalHasElement", 15)
@kernel("OptionalHasElement", 18)
def optional_has_element(node: KernelNode) -> Kernel:
    """OptionalHasElement: bool scalar, false for an empty or (18+) omitted input."""
    return FnKernel(lambda x=None: (np.array(x is not None),))


@kernel("OptionalGetElement", 15)
@kernel("OptionalGetElement", 18)
def optional_get_element(node: KernelNode) -> Kernel:
    """OptionalGetElement: the wrapped value (18+ also passes plain tensors and sequences)."""

    def run(x: Any) -> tuple[Any]:
        if x is None:
            raise ValueError("OptionalGetElement: the optional is empty")
        return (x,)

    return FnKernel(run)


@kernel("SequenceEmpty", 11)
def sequence_empty(node: KernelNode) -> Kernel:
    """SequenceEmpty: an empty sequence."""
    return FnKernel(lambda: ([],))


@kernel("SequenceConstruct", 11)
def sequence_construct(node: KernelNode) -> Kernel:
    """SequenceConstruct: a sequence of the inputs."""
    return FnKernel(lambda *xs: (list(xs),))


def _position(pos: np.ndarray | None, n: int, default: int, insert: bool) -> int:
    if pos is None:
        return default
    p = int(np.asarray(pos).reshape(-1)[0])
    limit = n + 1 if insert else n
    if not -n <= p < limit:
        raise IndexError(f"sequence position {p} out of range for length {n}")
    return p + n if p < 0 else p


@kernel("SequenceInsert", 11)
def sequence_insert(node: KernelNode) -> Kernel:
    """SequenceInsert: inserts the tensor at ``position`` (default: the end)."""

    def run(seq: list[np.ndarray], x: np.ndarray, pos: np.ndarray | None = None) -> tuple[list[np.ndarray]]:
        out = list(seq)
        out.insert(_position(pos, len(seq), len(seq), True), x)
        return (out,)

    return FnKernel(run)


@kernel("SequenceAt", 11)
def sequence_at(node: KernelNode) -> Kernel:
    """SequenceAt: the tensor at ``position`` (negative counts from the end)."""
    return FnKernel(lambda seq, pos: (seq[_position(pos, len(seq), 0, False)],))


@kernel("SequenceErase", 11)
def sequence_erase(node: KernelNode) -> Kernel:
    """SequenceErase: removes the tensor at ``position`` (default: the last)."""

    def run(seq: list[np.ndarray], pos: np.ndarray | None = None) -> tuple[list[np.ndarray]]:
        out = list(seq)
        del out[_position(pos, len(seq), len(seq) - 1, False)]
        return (out,)

    return FnKernel(run)


@kernel("SequenceLength", 11)
def sequence_length(node: KernelNode) -> Kernel:
    """SequenceLength: int64 scalar length."""
    return FnKernel(lambda seq: (np.array(len(seq), dtype=INT64),))


@kernel("SplitToSequence", 11)
def split_to_sequence(node: KernelNode) -> Kernel:
    """SplitToSequence: by sizes (1-D split), by chunk size (scalar), or into unit slices."""
    axis = int(node.attr("axis", 0))
    keepdims = bool(node.attr("keepdims", 1))

    def run(x: np.ndarray, split: np.ndarray | None = None) -> tuple[list[np.ndarray]]:
        a = normalize_axis(axis, x.ndim)
        n = x.shape[a]
        if split is None:
            parts = np.split(x, n, axis=a)
            return ([p if keepdims else np.squeeze(p, axis=a) for p in parts],)
        if split.ndim == 0:
            step = int(split)
            points = list(range(step, n, step))
        else:
            points = np.cumsum(int_list(split))[:-1].tolist()
        return (list(np.split(x, points, axis=a)),)

    return FnKernel(run)


@kernel("ConcatFromSequence", 11)
def concat_from_sequence(node: KernelNode) -> Kernel:
    """ConcatFromSequence: concatenates along ``axis``, or stacks on a new axis (new_axis=1)."""
    axis = int(node.attr("axis"))
    new_axis = bool(node.attr("new_axis", 0))

    def run(seq: list[np.ndarray]) -> tuple[np.ndarray]:
        rank = seq[0].ndim
        if new_axis:
            return (np.stack(seq, axis=normalize_axis(axis, rank + 1)),)
        return (np.concatenate(seq, axis=normalize_axis(axis, rank)),)

    return FnKernel(run)
