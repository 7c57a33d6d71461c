"""Compiled kernels for the ops numpy cannot do fast, used when numba is installed.

A depthwise convolution does 9 multiply-adds per output (3x3) and no matrix product, so BLAS
cannot help it, and numpy needs two passes over the whole tensor per kernel tap. Compiled,
each channel is copied into one small zero-padded plane that stays in cache, and each output
is one sum over its window (written out for 3x3, so the loop over a row vectorises), with the
bias and a following Relu or Clip applied as it is stored.

numba is an optional extra (``pip install "aioplug[jit]"``); without it, or with
``AIOPLUG_CPU_JIT=0`` in the environment, the numpy kernels run. Functions are compiled on
first use (when a model that needs them is compiled) and release the GIL, so streams run in
parallel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ._common import Array
from ._spatial import Geometry, Window

__all__ = ["available", "depthwise2d", "prepare_weights", "warm_up"]

log = logging.getLogger(__name__)

_kernel: Callable[..., None] | None = None
_tried = False


def _build() -> Callable[..., None] | None:
    if os.environ.get("AIOPLUG_CPU_JIT", "1").strip().lower() in {"0", "no", "false", "off"}:
        return None
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(nogil=True, fastmath=True, boundscheck=False, cache=True)
    def depthwise(
        x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array,
        sy: int, sx: int, dy: int, dx: int, top: int, left: int,
    ) -> None:  # pragma: no cover - compiled
        n_img, channels, height, width = x.shape
        out_h, out_w = out.shape[2], out.shape[3]
        kh, kw = w.shape[1], w.shape[2]
        # one zero-padded plane, reused for every channel: its border is never written
        plane_h = max(top + height, (out_h - 1) * sy + (kh - 1) * dy + 1)
        plane_w = max(left + width, (out_w - 1) * sx + (kw - 1) * dx + 1)
        plane = np.zeros((plane_h, plane_w), np.float32)
        three = kh == 3 and kw == 3 and dy == 1 and dx == 1
        for n in range(n_img):
            for c in range(channels):
                for iy in range(height):
                    src = x[n, c, iy]
                    dst = plane[top + iy, left : left + width]
                    for ix in range(width):
                        dst[ix] = src[ix]
                bc = bias[c]
                if three:
                    w00, w01, w02 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
                    w10, w11, w12 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
                    w20, w21, w22 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
                    for oy in range(out_h):
                        r0 = plane[oy * sy]
                        r1 = plane[oy * sy + 1]
                        r2 = plane[oy * sy + 2]
                        row_out = out[n, c, oy]
                        if sx == 1:  # contiguous loads: the loop vectorises
                            for j in range(out_w):
                                v = (
                                    bc + w00 * r0[j] + w01 * r0[j + 1] + w02 * r0[j + 2]
                                    + w10 * r1[j] + w11 * r1[j + 1] + w12 * r1[j + 2]
                                    + w20 * r2[j] + w21 * r2[j + 1] + w22 * r2[j + 2]
                                )
                                row_out[j] = min(max(v, lo), hi)
                        else:
                            for ox in range(out_w):
                                j = ox * sx
                                v = (
                                    bc + w00 * r0[j] + w01 * r0[j + 1] + w02 * r0[j + 2]
                                    + w10 * r1[j] + w11 * r1[j + 1] + w12 * r1[j + 2]
                                    + w20 * r2[j] + w21 * r2[j + 1] + w22 * r2[j + 2]
                                )
                                row_out[ox] = min(max(v, lo), hi)
                else:
                    for oy in range(out_h):
                        row_out = out[n, c, oy]
                        for ox in range(out_w):
                            row_out[ox] = bc
                        for ky in range(kh):
                            row_in = plane[oy * sy + ky * dy]
                            for kx in range(kw):
                                wv = w[c, ky, kx]
                                shift = kx * dx
                                for ox in range(out_w):
                                    row_out[ox] += wv * row_in[ox * sx + shift]
                        for ox in range(out_w):
                            row_out[ox] = min(max(row_out[ox], lo), hi)

    return depthwise


def _get() -> Callable[..., None] | None:
    global _kernel, _tried
    if not _tried:
        _tried = True
        _kernel = _build()
        if _kernel is not None:
            log.debug("numba kernels enabled for the CPU device")
    return _kernel


def available() -> bool:
    """True when the compiled kernels can be used."""
    return _get() is not None


def warm_up() -> None:
    """Compiles the kernels for float32 now (a model's compilation calls this), not mid-run."""
    kernel = _get()
    if kernel is not None:
        x = np.zeros((1, 1, 3, 3), np.float32)
        w = np.zeros((1, 3, 3), np.float32)
        bias = np.zeros(1, np.float32)
        kernel(x, w, bias, -np.inf, np.inf, np.empty((1, 1, 3, 3), np.float32), 1, 1, 1, 1, 1, 1)


def depthwise2d(
    x: Array, weights: Array, bias: Array, window: Window, geom: Geometry,
    low: float = -np.inf, high: float = np.inf,
) -> Array:
    """``clip(conv(x) + bias, low, high)`` as ``(N, C, *out)``, for a float32 2-D conv with one
    input channel and one output per group (``weights`` from :func:`prepare_weights`, ``bias``
    float32 ``(C,)``); only when :func:`available`."""
    kernel = _get()
    assert kernel is not None and x.dtype == np.float32 and x.ndim == 4
    n, c = x.shape[:2]
    out = np.empty((n, c, *geom.out), np.float32)
    kernel(
        np.ascontiguousarray(x), weights, bias, low, high, out, window.strides[0],
        window.strides[1], window.dilations[0], window.dilations[1], geom.begin[0],
        geom.begin[1],
    )
    return out


def prepare_weights(w: Any) -> Array:
    """``(C, 1, kh, kw)`` weights as the kernel reads them: ``(C, kh, kw)`` float32."""
    return np.ascontiguousarray(np.asarray(w, np.float32).reshape(w.shape[0], *w.shape[2:]))
