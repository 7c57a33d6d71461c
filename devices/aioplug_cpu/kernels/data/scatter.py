"""Scatter kernels: ScatterElements, ScatterND and the deprecated Scatter.

The data input is copied, then updated in place: plain assignment for ``reduction='none'``,
otherwise an unbuffered ``ufunc.at`` so that repeated indices accumulate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, normalize_axis

__all__: list[str] = []

_REDUCERS: dict[str, Any] = {
    "add": np.add,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
}


def _reducer(node: KernelNode) -> Any:
    name = str(node.attr("reduction", "none"))
    if name == "none":
        return None
    if name not in _REDUCERS:
        raise ValueError(f"{node.op_type}: unsupported reduction {name!r}")
    return _REDUCERS[name]


def _apply(out: np.ndarray, key: tuple[Any, ...], upd: np.ndarray, ufunc: Any) -> None:
    if ufunc is None:
        out[key] = upd
    else:
        ufunc.at(out, key, upd)


def scatter_elements(x: np.ndarray, idx: np.ndarray, upd: np.ndarray, axis: int, ufunc: Any) -> np.ndarray:
    """Writes ``upd`` into a copy of ``x`` at ``idx`` along ``axis`` (other coords implicit)."""
    a = normalize_axis(axis, x.ndim)
    ix = idx.astype(np.intp, copy=True)
    ix[ix < 0] += x.shape[a]
    grids = np.ogrid[tuple(slice(0, n) for n in idx.shape)]
    key = tuple(ix if k == a else g for k, g in enumerate(grids))
    out = x.copy()
    _apply(out, key, upd, ufunc)
    return out


@kernel("ScatterElements", 11)
@kernel("ScatterElements", 16)
@kernel("ScatterElements", 18)
def scatter_elements_kernel(node: KernelNode) -> Kernel:
    """ScatterElements: reduction none/add/mul (16+), max/min (18+)."""
    axis = int(node.attr("axis", 0))
    ufunc = _reducer(node)
    return FnKernel(lambda x, i, u: (scatter_elements(x, i, u, axis, ufunc),))


@kernel("Scatter", 9)
@kernel("Scatter", 11)
def scatter(node: KernelNode) -> Kernel:
    """Scatter (deprecated): ScatterElements without reduction."""
    axis = int(node.attr("axis", 0))
    return FnKernel(lambda x, i, u: (scatter_elements(x, i, u, axis, None),))


@kernel("ScatterND", 11)
@kernel("ScatterND", 16)
@kernel("ScatterND", 18)
def scatter_nd(node: KernelNode) -> Kernel:
    """ScatterND: ``out[idx[..., :]] = updates[...]`` with reduction none/add/mul/max/min."""
    ufunc = _reducer(node)

    def run(x: np.ndarray, idx: np.ndarray, upd: np.ndarray) -> tuple[np.ndarray]:
        k = idx.shape[-1]
        ix = idx.astype(np.intp, copy=False)
        key = tuple(ix[..., j] for j in range(k))
        out = x.copy()
        _apply(out, key, upd, ufunc)
        return (out,)

    return FnKernel(run)
