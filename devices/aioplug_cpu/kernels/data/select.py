"""Selection kernels: NonZero, Unique, TopK, ReverseSequence."""

from __future__ import annotations

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import INT64, FnKernel, int_list, normalize_axis

__all__: list[str] = []


@kernel("NonZero", 9)
def non_zero(node: KernelNode) -> Kernel:
    """NonZero: int64 ``(rank, nnz)`` coordinates of the non-zero elements, row-major order."""

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        if x.ndim == 0:
            return (np.zeros((0, int(bool(x))), dtype=INT64),)
        return (np.array(np.nonzero(x), dtype=INT64).reshape(x.ndim, -1),)

    return FnKernel(run)


@kernel("Unique", 11)
def unique(node: KernelNode) -> Kernel:
    """Unique: values (sorted, or in first-occurrence order), first indices, inverse, counts."""
    axis_attr = node.attr("axis")
    keep_sorted = bool(node.attr("sorted", 1))

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        axis = normalize_axis(int(axis_attr), x.ndim) if axis_attr is not None else None
        src = x.reshape(-1) if axis is None else x
        y, first, inverse, counts = np.unique(
            src, return_index=True, return_inverse=True, return_counts=True, axis=axis
        )
        inverse = inverse.reshape(-1)
        if not keep_sorted:
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            y = np.take(y, order, axis=0 if axis is None else axis)
            first, counts, inverse = first[order], counts[order], rank[inverse]
        return (y, first.astype(INT64), inverse.astype(INT64), counts.astype(INT64))

    return FnKernel(run)


def top_k(x: np.ndarray, k: int, axis: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top-k along ``axis``, ties resolved by the lower index first; int64 indices."""
    a = normalize_axis(axis, x.ndim)
    n = x.shape[a]
    if largest:
        rev = np.flip(x, axis=a)
        order = np.argsort(rev, axis=a, kind="stable")
        idx = (n - 1) - np.flip(order, axis=a)
    else:
        idx = np.argsort(x, axis=a, kind="stable")
    idx = np.take(idx, np.arange(k), axis=a)
    return np.take_along_axis(x, idx, axis=a), idx.astype(INT64, copy=False)


@kernel("TopK", 1)
def top_k_1(node: KernelNode) -> Kernel:
    """TopK-1: ``k`` attribute, largest values, sorted."""
    k, axis = int(node.attr("k")), int(node.attr("axis", -1))
    return FnKernel(lambda x: top_k(x, k, axis, True))


@kernel("TopK", 10)
@kernel("TopK", 11)
def top_k_10(node: KernelNode) -> Kernel:
    """TopK-10+: ``k`` input; ``largest`` and ``sorted`` (11+); outputs are always sorted."""
    axis = int(node.attr("axis", -1))
    largest = bool(node.attr("largest", 1))
    return FnKernel(lambda x, k: top_k(x, int_list(k)[0], axis, largest))


@kernel("ReverseSequence", 10)
def reverse_sequence(node: KernelNode) -> Kernel:
    """ReverseSequence: reverses the first ``sequence_lens[b]`` steps of every batch entry."""
    batch_axis = int(node.attr("batch_axis", 1))
    time_axis = int(node.attr("time_axis", 0))

    def run(x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray]:
        xt = np.moveaxis(x, (time_axis, batch_axis), (0, 1))
        t = np.arange(xt.shape[0])[:, None]
        ln = lens.astype(np.int64)[None, :]
        src = np.where(t < ln, ln - 1 - t, t)
        out = xt[src, np.arange(xt.shape[1])[None, :]]
        return (np.moveaxis(out, (0, 1), (time_axis, batch_axis)),)

    return FnKernel(run)
