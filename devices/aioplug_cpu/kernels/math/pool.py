"""MaxPool (with Indices), AveragePool and LpPool over 1-D/2-D/3-D windows.

Window geometry follows ``_spatial`` (explicit pads with optional ``ceil_mode``, or auto_pad).
The input is padded once (-inf or the integer minimum for Max, 0 for sums) to cover every
window; max and sum windows then reduce separably, one axis at a time, one in-place ufunc per
kernel tap of that axis:

* MaxPool ignores padding and NaN (``fmax``). Indices are flat positions in the unpadded input
  ``((n * C + c) * H + h) * W + w``, or with ``storage_order=1`` column-major over the spatial
  axes ``(n * C + c) * H * W + h + w * H``; the first maximum in window order wins.
* AveragePool divides the window sum by the number of real input elements it covers, or with
  ``count_include_pad=1`` by the elements inside the (explicitly or auto) padded input;
  positions that only ``ceil_mode`` adds are never counted.
* LpPool gives ``(sum |x|^p) ** (1/p)`` over the window's real elements.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from . import _jit
from ._common import Array, as_kernel, compute_dtype, float_attr, int_attr, versions
from ._spatial import Geometry, Window, pad_input, window_attrs

__all__: list[str] = []


@dataclass(frozen=True)
class _Plan:
    geom: Geometry
    end: tuple[int, ...]
    """End pads including the extra ones a ``ceil_mode`` window needs."""
    axis_taps: tuple[tuple[slice, ...], ...]
    """Per spatial axis, per kernel tap, the slice of the padded axis that tap reads."""
    taps: tuple[tuple[slice, ...], ...]
    """Per kernel tap (row-major), the slices of the padded input it reads."""
    offsets: Array
    """Per kernel tap, its offset along each spatial axis: shape (taps, rank)."""


def _plan(window: Window, spatial: tuple[int, ...]) -> _Plan:
    geom = window.geometry(spatial)
    end = []
    axis_taps = []
    for i, n in enumerate(spatial):
        k, s, d, out = window.kernel[i], window.strides[i], window.dilations[i], geom.out[i]
        need = (out - 1) * s + (k - 1) * d + 1 if out > 0 else 0
        end.append(max(geom.end[i], need - n - geom.begin[i]))
        axis_taps.append(tuple(slice(t * d, t * d + (out - 1) * s + 1, s) for t in range(k)))
    offsets = list(itertools.product(*(range(k) for k in window.kernel)))
    lead = (slice(None), slice(None))
    taps = tuple(
        lead + tuple(axis_taps[i][t] for i, t in enumerate(offs)) for offs in offsets
    )
    return _Plan(geom, tuple(end), tuple(axis_taps), taps, np.array(offsets, dtype=np.int64))


class _Pooler:
    """Per-input-shape plans for one node (the node's window is fixed)."""

    __slots__ = ("_plans", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self._plans: dict[tuple[int, ...], _Plan] = {}

    def plan(self, shape: tuple[int, ...]) -> _Plan:
        plan = self._plans.get(shape)
        if plan is None:
            plan = _plan(self.window, shape[2:])
            self._plans[shape] = plan
        return plan


def _lowest(dtype: np.dtype[Any]) -> Any:
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    if dtype.kind == "b":
        return False
    return -np.inf


def _window_of(node: KernelNode) -> Window:
    window = window_attrs(node, None)
    if window is None:
        raise ValueError(f"{node.op_type} needs a kernel_shape attribute")
    return window


def _separable(xp: Array, plan: _Plan, fn: Any) -> Array:
    """Reduces every window with the associative ``fn``, one spatial axis at a time (the
    last axis first); ``xp`` is the padded input."""
    cur = xp
    for axis in range(len(plan.axis_taps) - 1, -1, -1):
        lead = (slice(None),) * (2 + axis)
        taps = plan.axis_taps[axis]
        if len(taps) == 1:
            cur = cur[lead + (taps[0],)]
            continue
        acc = fn(cur[lead + (taps[0],)], cur[lead + (taps[1],)])
        for sl in taps[2:]:
            fn(acc, cur[lead + (sl,)], out=acc)
        cur = acc
    return cur if cur.base is None else cur.copy()


def _max_values(x: Array, plan: _Plan) -> Array:
    """Window maxima; NaN is ignored like the padding is (``fmax``)."""
    xp = pad_input(x, plan.geom.begin, plan.end, _lowest(x.dtype))
    return _separable(xp, plan, np.fmax if x.dtype.kind == "f" else np.maximum)


def _max_indices(x: Array, plan: _Plan, window: Window, col_major: bool) -> tuple[Array, Array]:
    xp = pad_input(x, plan.geom.begin, plan.end, _lowest(x.dtype))
    best = xp[plan.taps[0]].copy()
    arg = np.zeros(best.shape, dtype=np.int64)
    for tap, sl in enumerate(plan.taps[1:], start=1):
        v = xp[sl]
        upd = v > best
        np.copyto(best, v, where=upd)
        np.copyto(arg, tap, where=upd)
    rank = x.ndim - 2
    spatial = x.shape[2:]
    if col_major:
        steps = np.cumprod((1,) + spatial[:-1])
    else:
        steps = np.cumprod((1,) + spatial[::-1][:-1])[::-1]
    flat = np.zeros(best.shape, dtype=np.int64)
    for i in range(rank):
        view_shape = [1] * x.ndim
        view_shape[2 + i] = plan.geom.out[i]
        base = np.arange(plan.geom.out[i], dtype=np.int64) * window.strides[i] - plan.geom.begin[i]
        coord = base.reshape(view_shape) + plan.offsets[arg, i] * window.dilations[i]
        flat += coord * int(steps[i])
    nc = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[:2] + (1,) * rank)
    flat += nc * int(np.prod(spatial, dtype=np.int64))
    return best, flat


@versions("MaxPool", 1, 8, 10, 11, 12, 22)
def _max_pool(node: KernelNode) -> Kernel:
    pooler = _Pooler(_window_of(node))
    col_major = int_attr(node, "storage_order", 0) == 1
    with_indices = node.num_outputs > 1

    window = pooler.window
    float32 = node.input_dtypes[:1] == (np.dtype(np.float32),)
    compiled = float32 and not with_indices and len(window.kernel) == 2 and _jit.available()
    if compiled:
        _jit.warm_up("pool")

    def run(x: Array) -> tuple[Array, ...]:
        plan = pooler.plan(x.shape)
        if with_indices:
            return _max_indices(x, plan, window, col_major)
        if compiled and x.dtype == np.float32 and x.ndim == 4:
            return (_jit.max_pool2d(x, window, plan.geom),)
        return (_max_values(x, plan),)

    return as_kernel(run, "pool_jit" if compiled else "pool_separable")


def _window_sum(x: Array, plan: _Plan) -> Array:
    """Window sums over the zero-padded input."""
    return _separable(pad_input(x, plan.geom.begin, plan.end), plan, np.add)


def _counts(window: Window, plan: _Plan, spatial: tuple[int, ...], include_pad: bool) -> Array:
    """How many window taps of each output position fall inside the counted region."""
    total: Array | None = None
    rank = len(spatial)
    for i in range(rank):
        n, b = spatial[i], plan.geom.begin[i]
        lo, hi = (0, n + b + plan.geom.end[i]) if include_pad else (b, b + n)
        starts = np.arange(plan.geom.out[i], dtype=np.int64) * window.strides[i]
        pos = starts[:, None] + np.arange(window.kernel[i], dtype=np.int64) * window.dilations[i]
        cnt = ((pos >= lo) & (pos < hi)).sum(axis=1)
        shape = [1] * rank
        shape[i] = -1
        cnt = cnt.reshape(shape)
        total = cnt if total is None else total * cnt
    assert total is not None
    return total


@versions("AveragePool", 1, 7, 10, 11, 19, 22)
def _average_pool(node: KernelNode) -> Kernel:
    pooler = _Pooler(_window_of(node))
    include_pad = int_attr(node, "count_include_pad", 0) == 1
    divisors: dict[tuple[tuple[int, ...], str], Array] = {}

    def run(x: Array) -> tuple[Array]:
        plan = pooler.plan(x.shape)
        cdt = compute_dtype(x.dtype)
        key = (x.shape, cdt.str)
        div = divisors.get(key)
        if div is None:
            div = _counts(pooler.window, plan, x.shape[2:], include_pad).astype(cdt)
            divisors[key] = div
        y = _window_sum(x.astype(cdt, copy=False), plan)
        y /= div
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run, "pool_separable")


@versions("LpPool", 1, 2, 11, 18, 22)
def _lp_pool(node: KernelNode) -> Kernel:
    pooler = _Pooler(_window_of(node))
    p = float_attr(node, "p", 2.0)

    def run(x: Array) -> tuple[Array]:
        plan = pooler.plan(x.shape)
        cdt = compute_dtype(x.dtype)
        xa = np.abs(x.astype(cdt, copy=False))
        powered = xa * xa if p == 2.0 else (xa if p == 1.0 else np.power(xa, p))
        y = _window_sum(powered, plan)
        y = np.sqrt(y) if p == 2.0 else (y if p == 1.0 else np.power(y, 1.0 / p))
        return (y if y.dtype == x.dtype else y.astype(x.dtype),)

    return as_kernel(run, "pool_separable")
