"""Gather kernels: Gather, GatherElements, GatherND, Compress.

Negative indices count from the end of the indexed axis, which numpy's fancy indexing and
``np.take`` already do; out-of-range indices raise.
"""

from __future__ import annotations

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, normalize_axis

__all__: list[str] = []


@kernel("Gather", 1)
@kernel("Gather", 11)
def gather(node: KernelNode) -> Kernel:
    """Gather: ``take`` along ``axis`` (default 0); output shape is data[:axis]+indices+data[axis+1:]."""
    axis = int(node.attr("axis", 0))

    def run(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray]:
        return (np.take(x, idx, axis=normalize_axis(axis, x.ndim)),)

    return FnKernel(run)


@kernel("GatherElements", 11)
def gather_elements(node: KernelNode) -> Kernel:
    """GatherElements: ``out[i][j] = data[idx[i][j]][j]`` for axis 0, and so on per axis."""
    axis = int(node.attr("axis", 0))

    def run(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray]:
        a = normalize_axis(axis, x.ndim)
        if idx.shape != x.shape:
            x = x[tuple(slice(None) if k == a else slice(0, n) for k, n in enumerate(idx.shape))]
        return (np.take_along_axis(x, idx.astype(np.intp, copy=False), axis=a),)

    return FnKernel(run)


def gather_nd(x: np.ndarray, idx: np.ndarray, batch_dims: int) -> np.ndarray:
    """GatherND core: slices of ``x`` addressed by the last dim of ``idx`` per batch."""
    b = batch_dims
    k = idx.shape[-1]
    batch_shape = x.shape[:b]
    nb = int(np.prod(batch_shape, dtype=np.int64))
    xf = x.reshape((nb, *x.shape[b:]))
    ix = idx.reshape(nb, -1, k).astype(np.intp, copy=False)
    key = (np.arange(nb)[:, None], *(ix[..., j] for j in range(k)))
    res = xf[key]
    out: np.ndarray = res.reshape(idx.shape[:-1] + x.shape[b + k:])
    return out


@kernel("GatherND", 11)
@kernel("GatherND", 12)
def gather_nd_kernel(node: KernelNode) -> Kernel:
    """GatherND: ``batch_dims`` (12+) leading dims are shared by data and indices."""
    b = int(node.attr("batch_dims", 0))
    return FnKernel(lambda x, idx: (gather_nd(x, idx, b),))


@kernel("Compress", 9)
@kernel("Compress", 11)
def compress(node: KernelNode) -> Kernel:
    """Compress: keeps the slices where ``condition`` is true, on ``axis`` or the flattened input."""
    axis = node.attr("axis")

    def run(x: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray]:
        c = cond.reshape(-1).astype(bool, copy=False)
        if axis is None:
            return (np.compress(c, x.reshape(-1)),)
        return (np.compress(c, x, axis=normalize_axis(int(axis), x.ndim)),)

    return FnKernel(run)
