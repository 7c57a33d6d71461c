"""Compiled kernels for the ops numpy cannot do fast, used when numba is installed.

Gelu's erf is a polynomial numpy evaluates in about twenty passes (numpy has no erf);
compiled, the polynomial and the final product are one pass each around numpy's exp.

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

__all__ = ["available", "depthwise2d", "gelu_erf", "prepare_weights", "warm_up"]

log = logging.getLogger(__name__)

_kernel: Callable[..., None] | None = None
_gelu: Callable[..., None] | None = None
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

    from ._erf import _C_T0, _QC32

    coefs = tuple(np.float32(c) for c in reversed(_QC32))  # highest power first, for Horner
    t_scale = np.float32(2.0 / (1.0 - _C_T0))
    t_shift = np.float32((_C_T0 + 1.0) / (1.0 - _C_T0))

    @numba.njit(nogil=True, fastmath=True, cache=True)
    def gelu_parts(x: Array, poly: Array, neg_sq: Array) -> None:  # pragma: no cover - compiled
        """``Q(s)`` of the erfc fit, and ``-z^2``, for ``z = x / sqrt(2)``."""
        for i in range(x.size):
            a = abs(x[i]) * np.float32(0.70710677)
            s = t_scale / (np.float32(1.0) + a * np.float32(0.5)) - t_shift
            acc = np.float32(0.0)
            for c in coefs:
                acc = acc * s + c
            poly[i] = acc
            neg_sq[i] = -a * a

    @numba.njit(nogil=True, fastmath=True, cache=True)
    def gelu_finish(x: Array, poly: Array, expo: Array, out: Array) -> None:  # pragma: no cover
        """``x / 2 * (1 + erf(z))``, with ``erfc(|z|) = Q(s) exp(-z^2)``."""
        for i in range(x.size):
            v = x[i]
            tail = poly[i] * expo[i]
            out[i] = np.float32(0.5) * v * (np.float32(2.0) - tail if v > 0 else tail)

    def gelu(x: Array, out: Array) -> None:
        poly = np.empty_like(x)
        expo = np.empty_like(x)
        gelu_parts(x, poly, expo)
        np.exp(expo, out=expo)  # numpy's vectorised exp: the compiled loops then vectorise too
        gelu_finish(x, poly, expo, out)

    global _gelu
    _gelu = gelu
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


def gelu_erf(x: Array) -> Array | None:
    """``0.5 * x * (1 + erf(x / sqrt(2)))`` for float32, from the same erfc fit as the numpy
    kernel in three passes instead of about twenty; None without the compiled kernels."""
    if _get() is None or _gelu is None or x.dtype != np.float32:
        return None
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _gelu(flat, out)
    return out.reshape(x.shape)


def prepare_weights(w: Any) -> Array:
    """``(C, 1, kh, kw)`` weights as the kernel reads them: ``(C, kh, kw)`` float32."""
    return np.ascontiguousarray(np.asarray(w, np.float32).reshape(w.shape[0], *w.shape[2:]))
