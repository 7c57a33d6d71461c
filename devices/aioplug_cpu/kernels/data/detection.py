"""Detection kernels: NonMaxSuppression and RoiAlign."""

from __future__ import annotations

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import INT64, FnKernel

__all__: list[str] = []


def _scalar(v: np.ndarray | None, default: float) -> float:
    if v is None or np.asarray(v).size == 0:
        return default
    return float(np.asarray(v).reshape(-1)[0])


def _corners(boxes: np.ndarray, center: bool) -> np.ndarray:
    """(N, 4) boxes as (y_min, x_min, y_max, x_max) in float64."""
    b = boxes.astype(np.float64)
    if center:
        xc, yc, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
    y0, y1 = np.minimum(b[:, 0], b[:, 2]), np.maximum(b[:, 0], b[:, 2])
    x0, x1 = np.minimum(b[:, 1], b[:, 3]), np.maximum(b[:, 1], b[:, 3])
    return np.stack([y0, x0, y1, x1], axis=1)


def _iou(c: np.ndarray) -> np.ndarray:
    """Pairwise IoU of corner boxes; 0 where an area or the union is not positive."""
    area = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
    ih = np.clip(np.minimum(c[:, None, 2], c[None, :, 2]) - np.maximum(c[:, None, 0], c[None, :, 0]), 0, None)
    iw = np.clip(np.minimum(c[:, None, 3], c[None, :, 3]) - np.maximum(c[:, None, 1], c[None, :, 1]), 0, None)
    inter = ih * iw
    union = area[:, None] + area[None, :] - inter
    valid = (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    return np.where(valid, inter / np.where(union > 0, union, 1.0), 0.0)


@kernel("NonMaxSuppression", 10)
@kernel("NonMaxSuppression", 11)
def non_max_suppression(node: KernelNode) -> Kernel:
    """NonMaxSuppression: greedy per (batch, class) by descending score (ties: lower index);
    a box is dropped when its IoU with a kept box exceeds ``iou_threshold``; int64 [K, 3]."""
    center = bool(node.attr("center_point_box", 0))

    def run(boxes: np.ndarray, scores: np.ndarray, max_out: np.ndarray | None = None,
            iou_thr: np.ndarray | None = None, score_thr: np.ndarray | None = None
            ) -> tuple[np.ndarray]:
        limit = int(_scalar(max_out, 0))
        iou_t = _scalar(iou_thr, 0.0)
        has_score_t = score_thr is not None and np.asarray(score_thr).size > 0
        score_t = _scalar(score_thr, 0.0)
        selected: list[tuple[int, int, int]] = []
        if limit > 0:
            for b in range(boxes.shape[0]):
                iou = _iou(_corners(boxes[b], center))
                for c in range(scores.shape[1]):
                    s = scores[b, c].astype(np.float64)
                    cand = np.nonzero(s > score_t)[0] if has_score_t else np.arange(s.shape[0])
                    order = cand[np.argsort(-s[cand], kind="stable")]
                    kept: list[int] = []
                    for i in order.tolist():
                        if kept and (iou[i, kept] > iou_t).any():
                            continue
                        kept.append(i)
                        if len(kept) >= limit:
                            break
                    selected.extend((b, c, i) for i in kept)
        return (np.array(selected, dtype=INT64).reshape(-1, 3),)

    return FnKernel(run)


def _bilinear_taps(ys: np.ndarray, xs: np.ndarray, h: int, w: int
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flat indices and weights of the 4 taps of every (y, x) sample (Caffe2/ORT rules)."""
    outside = (ys < -1.0) | (ys > h) | (xs < -1.0) | (xs > w)
    y = np.maximum(ys, 0.0)
    x = np.maximum(xs, 0.0)
    y_lo = np.floor(y).astype(np.int64)
    x_lo = np.floor(x).astype(np.int64)
    y_edge, x_edge = y_lo >= h - 1, x_lo >= w - 1
    y_lo = np.where(y_edge, h - 1, y_lo)
    x_lo = np.where(x_edge, w - 1, x_lo)
    y = np.where(y_edge, y_lo, y)
    x = np.where(x_edge, x_lo, x)
    y_hi = np.where(y_edge, y_lo, y_lo + 1)
    x_hi = np.where(x_edge, x_lo, x_lo + 1)
    ly, lx = y - y_lo, x - x_lo
    hy, hx = 1 - ly, 1 - lx
    keep = ~outside
    idx = [y_lo * w + x_lo, y_lo * w + x_hi, y_hi * w + x_lo, y_hi * w + x_hi]
    wts = [hy * hx * keep, hy * lx * keep, ly * hx * keep, ly * lx * keep]
    return [np.where(keep, i, 0) for i in idx], wts


@kernel("RoiAlign", 10)
@kernel("RoiAlign", 16)
def roi_align(node: KernelNode) -> Kernel:
    """RoiAlign: bilinear samples averaged (or maxed) per output bin; half_pixel offsets (16+)."""
    mode = str(node.attr("mode", "avg"))
    out_h = int(node.attr("output_height", 1))
    out_w = int(node.attr("output_width", 1))
    ratio = int(node.attr("sampling_ratio", 0))
    scale = float(node.attr("spatial_scale", 1.0))
    default_ctm = "half_pixel" if node.opset >= 16 else "output_half_pixel"
    half_pixel = str(node.attr("coordinate_transformation_mode", default_ctm)) == "half_pixel"

    def run(x: np.ndarray, rois: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray]:
        n_rois = rois.shape[0]
        _, ch, h, w = x.shape
        out = np.zeros((n_rois, ch, out_h, out_w), dtype=x.dtype)
        flat = x.reshape(x.shape[0], ch, h * w).astype(np.float64)
        off = 0.5 if half_pixel else 0.0
        for r in range(n_rois):
            x0, y0, x1, y1 = (float(v) * scale - off for v in rois[r])
            rw, rh = x1 - x0, y1 - y0
            if not half_pixel:
                rw, rh = max(rw, 1.0), max(rh, 1.0)
            bh, bw = rh / out_h, rw / out_w
            gh = ratio if ratio > 0 else int(np.ceil(rh / out_h))
            gw = ratio if ratio > 0 else int(np.ceil(rw / out_w))
            gh, gw = max(gh, 1), max(gw, 1)
            ys = y0 + np.arange(out_h)[:, None] * bh + (np.arange(gh)[None, :] + 0.5) * bh / gh
            xs = x0 + np.arange(out_w)[:, None] * bw + (np.arange(gw)[None, :] + 0.5) * bw / gw
            yy = np.broadcast_to(ys[:, :, None, None], (out_h, gh, out_w, gw))
            xx = np.broadcast_to(xs[None, None, :, :], (out_h, gh, out_w, gw))
            idx, wts = _bilinear_taps(yy, xx, h, w)
            img = flat[int(batch[r])]
            vals = [img[:, i] * wt for i, wt in zip(idx, wts)]  # each (C, oh, gh, ow, gw)
            if mode == "avg":
                res = sum(vals[1:], vals[0]).sum(axis=(2, 4)) / (gh * gw)
            else:
                res = np.maximum.reduce(vals).max(axis=(2, 4))
            out[r] = res
        return (out,)

    return FnKernel(run)
