"""Resize and Upsample: separable N-D resampling, one axis at a time.

For every resized axis the output coordinates are mapped back to input coordinates by the
``coordinate_transformation_mode``. Nearest mode gathers the rounded indices. Linear and
cubic modes build a dense ``(out, in)`` weight matrix for the axis (taps clamped to the
edge, or dropped and renormalised with ``exclude_outside``; with ``antialias`` the kernel is
stretched by ``1 / scale`` when downsampling) and apply it as one matrix product. With
``tf_crop_and_resize`` positions mapped outside the input take ``extrapolation_value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import normalize_axes

__all__ = ["ResizeKernel", "apply_resize", "plan_resize", "resize"]


@dataclass(frozen=True)
class _Spec:
    mode: str = "nearest"
    ctm: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    extrapolation: float = 0.0
    antialias: bool = False
    axes: tuple[int, ...] | None = None
    policy: str = "stretch"
    legacy: bool = False
    """Resize-10 / Upsample: asymmetric coordinates, floor (ceil when shrinking) nearest."""


def _coords(spec: _Spec, out_len: int, in_len: int, scale: float,
            roi: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Input coordinate of every output index along one axis, and the extrapolation mask."""
    y = np.arange(out_len, dtype=np.float64)
    out_f = scale * in_len
    mode = spec.ctm
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "align_corners":
        return (np.zeros(out_len) if out_f == 1 else y * (in_len - 1) / (out_f - 1)), None
    if mode == "pytorch_half_pixel":
        return (np.full(out_len, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5), None
    if mode == "half_pixel_symmetric":
        offset = (in_len / 2) * (1 - out_len / out_f)
        return offset + (y + 0.5) / scale - 0.5, None
    if mode == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale, None
    if mode == "tf_crop_and_resize":
        start, end = roi if roi is not None else (0.0, 1.0)
        if out_f == 1:
            x = np.full(out_len, (end - start) * (in_len - 1) / 2)
        else:
            x = y * (end - start) * (in_len - 1) / (out_f - 1)
        x = x + start * (in_len - 1)
        return x, (x < 0) | (x > in_len - 1)
    raise ValueError(f"Resize: unknown coordinate_transformation_mode {mode!r}")


def _nearest(spec: _Spec, x: np.ndarray, in_len: int, scale: float) -> np.ndarray:
    floor = np.floor(x)
    frac = x - floor
    if spec.legacy:
        idx = np.ceil(x) if scale < 1 else floor
    elif spec.nearest_mode == "round_prefer_floor":
        idx = np.where(frac <= 0.5, floor, floor + 1)
    elif spec.nearest_mode == "round_prefer_ceil":
        idx = np.where(frac < 0.5, floor, floor + 1)
    elif spec.nearest_mode == "floor":
        idx = floor
    elif spec.nearest_mode == "ceil":
        idx = np.ceil(x)
    else:
        raise ValueError(f"Resize: unknown nearest_mode {spec.nearest_mode!r}")
    out: np.ndarray = np.clip(idx, 0, in_len - 1).astype(np.intp)
    return out


def _kernel_weights(spec: _Spec, d: np.ndarray) -> np.ndarray:
    """Interpolation kernel at (scaled) distances ``d``."""
    ad = np.abs(d)
    if spec.mode == "linear":
        lin: np.ndarray = np.clip(1.0 - ad, 0.0, 1.0)
        return lin
    a = spec.cubic_a
    near = ((a + 2) * ad - (a + 3)) * ad * ad + 1
    far = ((a * ad - 5 * a) * ad + 8 * a) * ad - 4 * a
    return np.where(ad <= 1, near, np.where(ad < 2, far, 0.0))


def _weight_matrix(spec: _Spec, x: np.ndarray, in_len: int, scale: float) -> np.ndarray:
    """Dense ``(out, in)`` matrix of the linear/cubic taps along one axis."""
    support = 1.0 if spec.mode == "linear" else 2.0
    s = min(scale, 1.0) if spec.antialias else 1.0
    start = int(np.floor(-support / s)) + 1
    n = 2 - 2 * start
    base = np.floor(x)
    idx = base[:, None] + np.arange(start, start + n)[None, :]
    w = _kernel_weights(spec, (idx - x[:, None]) * s)
    if spec.antialias:
        w = w / w.sum(axis=1, keepdims=True)
    if spec.exclude_outside:
        w = np.where((idx < 0) | (idx > in_len - 1), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    cols = np.clip(idx, 0, in_len - 1).astype(np.intp)
    mat = np.zeros((x.shape[0], in_len))
    rows = np.broadcast_to(np.arange(x.shape[0])[:, None], cols.shape)
    np.add.at(mat, (rows, cols), w)
    return mat


def _apply_matrix(x: np.ndarray, mat: np.ndarray, axis: int) -> np.ndarray:
    pre = int(np.prod(x.shape[:axis], dtype=np.int64))
    post = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    out_shape = (*x.shape[:axis], mat.shape[0], *x.shape[axis + 1:])
    if post == 1:
        res = x.reshape(pre, x.shape[axis]) @ mat.T
    else:
        res = np.matmul(mat, x.reshape(pre, x.shape[axis], post))
    out: np.ndarray = res.reshape(out_shape)
    return out


_Step = tuple[int, np.ndarray, "np.ndarray | None"]
"""One resized axis: (axis, nearest indices or weight matrix, extrapolation mask or None)."""


def plan_resize(shape: tuple[int, ...], spec: _Spec, scales: list[float] | None,
                sizes: list[int] | None, roi: list[float] | None) -> list[_Step]:
    """Per-axis resampling steps for an input of ``shape``; scales/sizes/roi per ``spec.axes``."""
    rank = len(shape)
    axes = normalize_axes(spec.axes, rank) if spec.axes else list(range(rank))
    if sizes:
        ratios = [sizes[i] / shape[a] for i, a in enumerate(axes)]
        if spec.policy in ("not_larger", "not_smaller"):
            r = min(ratios) if spec.policy == "not_larger" else max(ratios)
            ratios = [r] * len(axes)
            sizes = [int(r * shape[a] + 0.5) for a in axes]
        elif spec.policy != "stretch":
            raise ValueError(f"Resize: unknown keep_aspect_ratio_policy {spec.policy!r}")
        out_sizes, eff = sizes, ratios
    elif scales:
        if len(scales) != len(axes):
            raise ValueError(f"Resize: {len(scales)} scales for {len(axes)} axes")
        eff = [float(v) for v in scales]
        out_sizes = [int(v * shape[a]) for v, a in zip(eff, axes)]
    else:
        raise ValueError("Resize: neither scales nor sizes given")
    n = len(axes)
    steps: list[_Step] = []
    for i, a in enumerate(axes):
        in_len, out_len, scale = shape[a], out_sizes[i], eff[i]
        ax_roi = (float(roi[i]), float(roi[i + n])) if roi is not None and len(roi) == 2 * n else None
        if (out_len == in_len and scale == 1.0 and spec.ctm != "tf_crop_and_resize"
                and not (spec.mode == "nearest" and spec.ctm == "tf_half_pixel_for_nn")):
            continue
        coords, outside = _coords(spec, out_len, in_len, scale, ax_roi)
        if spec.mode == "nearest":
            op = _nearest(spec, coords, in_len, scale)
        else:
            op = _weight_matrix(spec, coords, in_len, scale)
        steps.append((a, op, outside if outside is not None and outside.any() else None))
    return steps


def apply_resize(x: np.ndarray, spec: _Spec, steps: list[_Step]) -> np.ndarray:
    """Runs the planned steps: gathers (nearest) or one matrix product per axis."""
    calc = np.float64 if x.dtype == np.float64 else np.float32
    y = x if spec.mode == "nearest" or x.dtype == calc else x.astype(calc)
    for a, op, outside in steps:
        if spec.mode == "nearest":
            y = np.take(y, op, axis=a)
        else:
            y = _apply_matrix(y, op.astype(calc, copy=False), a)
        if outside is not None:
            shape = [1] * x.ndim
            shape[a] = outside.shape[0]
            y = np.where(outside.reshape(shape), np.asarray(spec.extrapolation, dtype=y.dtype), y)
    if y.dtype == x.dtype:
        return y
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        rounded: np.ndarray = np.clip(np.rint(y), info.min, info.max).astype(x.dtype)
        return rounded
    return y.astype(x.dtype)


def resize(x: np.ndarray, spec: _Spec, scales: list[float] | None, sizes: list[int] | None,
           roi: list[float] | None) -> np.ndarray:
    """Resizes ``x``; scales/sizes/roi are given per axis of ``spec.axes`` (all by default)."""
    return apply_resize(x, spec, plan_resize(x.shape, spec, scales, sizes, roi))


def _floats(v: Any) -> list[float] | None:
    if v is None:
        return None
    arr = np.asarray(v).reshape(-1)
    return [float(f) for f in arr.tolist()] if arr.size else None


class ResizeKernel:
    """Resize-10+ and Upsample: inputs are mapped by position to roi/scales/sizes."""

    exec_type = "numpy"

    def __init__(self, spec: _Spec, roi_at: int | None, scales_at: int | None,
                 sizes_at: int | None, fixed_scales: list[float] | None = None) -> None:
        self.spec = spec
        self._roi_at, self._scales_at, self._sizes_at = roi_at, scales_at, sizes_at
        self._fixed_scales = fixed_scales
        self._plan: tuple[Any, list[_Step]] | None = None
        """The last plan and its key (shape, scales, sizes, roi): reused while they repeat."""

    def __call__(self, x: np.ndarray, *args: Any) -> tuple[np.ndarray]:
        def arg(i: int | None) -> Any:
            return args[i - 1] if i is not None and i - 1 < len(args) else None

        scales = self._fixed_scales or _floats(arg(self._scales_at))
        sizes_raw = _floats(arg(self._sizes_at))
        sizes = [int(v) for v in sizes_raw] if sizes_raw else None
        roi = _floats(arg(self._roi_at))
        key = (x.shape, tuple(scales or ()), tuple(sizes or ()), tuple(roi or ()))
        cached = self._plan
        if cached is None or cached[0] != key:
            cached = (key, plan_resize(x.shape, self.spec, None if sizes else scales, sizes, roi))
            self._plan = cached
        return (apply_resize(x, self.spec, cached[1]),)


def _spec(node: KernelNode, legacy: bool) -> _Spec:
    axes = node.attr("axes")
    return _Spec(
        mode=str(node.attr("mode", "nearest")),
        ctm="asymmetric" if legacy else str(node.attr("coordinate_transformation_mode", "half_pixel")),
        nearest_mode=str(node.attr("nearest_mode", "round_prefer_floor")),
        cubic_a=float(node.attr("cubic_coeff_a", -0.75)),
        exclude_outside=bool(node.attr("exclude_outside", 0)),
        extrapolation=float(node.attr("extrapolation_value", 0.0)),
        antialias=bool(node.attr("antialias", 0)),
        axes=tuple(int(a) for a in axes) if axes is not None else None,
        policy=str(node.attr("keep_aspect_ratio_policy", "stretch")),
        legacy=legacy,
    )


@kernel("Resize", 10)
def resize_10(node: KernelNode) -> Kernel:
    """Resize-10: ``scales`` input, nearest or linear, asymmetric coordinates."""
    return ResizeKernel(_spec(node, True), None, 1, None)


@kernel("Resize", 11)
@kernel("Resize", 13)
@kernel("Resize", 18)
@kernel("Resize", 19)
def resize_11(node: KernelNode) -> Kernel:
    """Resize-11+: roi/scales/sizes inputs; antialias, axes, keep_aspect_ratio_policy (18+);
    half_pixel_symmetric (19+)."""
    return ResizeKernel(_spec(node, False), 1, 2, 3)


@kernel("Upsample", 7)
def upsample_7(node: KernelNode) -> Kernel:
    """Upsample-7: ``scales`` attribute; nearest (floor) or linear, asymmetric coordinates."""
    mode = "linear" if node.attr("mode", "nearest") in ("linear", "bilinear") else "nearest"
    spec = _Spec(mode=mode, ctm="asymmetric", legacy=True)
    return ResizeKernel(spec, None, None, None, [float(s) for s in node.attr("scales")])


@kernel("Upsample", 9)
def upsample_9(node: KernelNode) -> Kernel:
    """Upsample-9: ``scales`` input."""
    mode = "linear" if node.attr("mode", "nearest") in ("linear", "bilinear") else "nearest"
    return ResizeKernel(_Spec(mode=mode, ctm="asymmetric", legacy=True), None, 1, None)
