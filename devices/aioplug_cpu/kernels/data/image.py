"""Image kernels: Col2Im and GridSample."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, int_list

__all__: list[str] = []


@kernel("Col2Im", 18)
def col2im(node: KernelNode) -> Kernel:
    """Col2Im: sums sliding blocks ``[N, C*prod(block), L]`` back into ``[N, C, *image]``."""
    dil_attr, pad_attr, str_attr = node.attr("dilations"), node.attr("pads"), node.attr("strides")

    def run(cols: np.ndarray, image: np.ndarray, block: np.ndarray) -> tuple[np.ndarray]:
        img, blk = int_list(image), int_list(block)
        r = len(img)
        dil = int_list(dil_attr) if dil_attr is not None else [1] * r
        pads = int_list(pad_attr) if pad_attr is not None else [0] * (2 * r)
        strides = int_list(str_attr) if str_attr is not None else [1] * r
        n = cols.shape[0]
        kprod = int(np.prod(blk))
        c = cols.shape[1] // kprod
        padded = [img[i] + pads[i] + pads[i + r] for i in range(r)]
        counts = [(padded[i] - (dil[i] * (blk[i] - 1) + 1)) // strides[i] + 1 for i in range(r)]
        src = cols.reshape(n, c, *blk, *counts)
        out = np.zeros((n, c, *padded), dtype=cols.dtype)
        for k in itertools.product(*(range(b) for b in blk)):
            key = tuple(slice(k[i] * dil[i], k[i] * dil[i] + strides[i] * counts[i], strides[i])
                        for i in range(r))
            dst_key: tuple[Any, ...] = (slice(None), slice(None), *key)
            src_key: tuple[Any, ...] = (slice(None), slice(None), *k)
            out[dst_key] += src[src_key]
        crop = tuple(slice(pads[i], pads[i] + img[i]) for i in range(r))
        return (out[(slice(None), slice(None), *crop)],)

    return FnKernel(run)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflects coordinates into ``[lo, hi]`` (repeatedly, as a mirror)."""
    span = hi - lo
    if span <= 0:
        return np.zeros_like(x)
    d = np.abs(x - lo)
    flips = np.floor(d / span)
    rem = d - flips * span
    return np.where(flips % 2 == 0, lo + rem, hi - rem)


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> list[np.ndarray]:
    def near(d: np.ndarray) -> np.ndarray:
        return ((a + 2) * d - (a + 3)) * d * d + 1  # type: ignore[no-any-return]

    def far(d: np.ndarray) -> np.ndarray:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # type: ignore[no-any-return]

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


class _GridSample:
    """GridSample over N-D inputs: nearest, (bi)linear or (bi)cubic taps per spatial dim."""

    exec_type = "numpy"

    def __init__(self, mode: str, padding: str, align: bool) -> None:
        self.mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
        self.padding = padding
        self.align = align

    def _prepare(self, g: np.ndarray, size: int) -> np.ndarray:
        """Un-normalises grid values to pixel coordinates, applying border/reflection."""
        x = (g + 1) / 2 * (size - 1) if self.align else ((g + 1) * size - 1) / 2
        if self.padding == "border":
            x = np.clip(x, 0, size - 1)
        elif self.padding == "reflection":
            x = _reflect(x, 0, size - 1) if self.align else _reflect(x, -0.5, size - 0.5)
        return x

    def _tap(self, i: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Index to read for tap ``i`` and whether it contributes (zeros padding)."""
        if self.padding == "zeros":
            ok = (i >= 0) & (i < size)
            return np.clip(i, 0, size - 1), ok
        if self.padding == "border":
            return np.clip(i, 0, size - 1), np.ones(i.shape, dtype=bool)
        lo, hi = (0.0, size - 1.0) if self.align else (-0.5, size - 0.5)
        j = np.clip(np.rint(_reflect(i.astype(np.float64), lo, hi)), 0, size - 1).astype(np.int64)
        return j, np.ones(i.shape, dtype=bool)

    def __call__(self, x: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray]:
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        r = len(spatial)
        out_sp = grid.shape[1:-1]
        g = grid.astype(np.float64).reshape(n, -1, r)
        coords = [self._prepare(g[..., r - 1 - d], spatial[d]) for d in range(r)]  # (n, P)
        taps_per_dim: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for d in range(r):
            xd = coords[d]
            if self.mode == "nearest":
                taps = [(np.rint(xd).astype(np.int64), np.ones_like(xd))]
            else:
                base = np.floor(xd)
                t = xd - base
                if self.mode == "linear":
                    taps = [(base.astype(np.int64), 1 - t), (base.astype(np.int64) + 1, t)]
                else:
                    ws = _cubic_weights(t)
                    taps = [(base.astype(np.int64) + k - 1, ws[k]) for k in range(4)]
            taps_per_dim.append(taps)
        flat = x.reshape(n, c, -1).astype(np.float64)
        strides = [int(np.prod(spatial[d + 1:], dtype=np.int64)) for d in range(r)]
        batch = np.arange(n)[:, None]
        acc = np.zeros((n, g.shape[1], c))
        for combo in itertools.product(*taps_per_dim):
            lin = np.zeros(g.shape[:2], dtype=np.int64)
            weight = np.ones(g.shape[:2])
            for d, (i, wt) in enumerate(combo):
                j, ok = self._tap(i, spatial[d])
                lin += j * strides[d]
                weight = weight * wt * ok
            vals = flat.transpose(0, 2, 1)[batch, lin]  # (n, P, c)
            acc += vals * weight[..., None]
        out = acc.transpose(0, 2, 1).reshape(n, c, *out_sp)
        return (out.astype(x.dtype),)


@kernel("GridSample", 16)
@kernel("GridSample", 20)
def grid_sample(node: KernelNode) -> Kernel:
    """GridSample: samples X at normalised grid locations (16: 2-D bilinear/nearest/bicubic;
    20+: N-D linear/nearest/cubic); padding zeros/border/reflection; align_corners."""
    default = "bilinear" if node.opset < 20 else "linear"
    return _GridSample(str(node.attr("mode", default)), str(node.attr("padding_mode", "zeros")),
                       bool(node.attr("align_corners", 0)))


