"""Compiled kernels for the ops numpy cannot do fast, used when numba is installed.

Gelu's erf is a polynomial numpy evaluates in about twenty passes (numpy has no erf);
compiled, the polynomial and the final product are one pass each around numpy's exp.

A 3x3 stride-1 convolution runs as Winograd's F(2x2, 3x3): the input and output tile
transforms are compiled loops, the 16 products between them BLAS matrix products.

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

__all__ = [
    "available", "depthwise2d", "gelu_erf", "prepare_weights", "warm_up", "winograd3x3",
    "winograd_weights",
]

log = logging.getLogger(__name__)

_kernel: Callable[..., None] | None = None
_gelu: Callable[..., None] | None = None
_winograd: tuple[Callable[..., None], Callable[..., None]] | None = None
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

    @numba.njit(nogil=True, fastmath=True, boundscheck=False, cache=True)
    def winograd_input(
        x: Array, v: Array, th: int, tw: int, top: int, left: int
    ) -> None:  # pragma: no cover - compiled
        """``V = B^T d B`` for every 4x4 input tile ``d`` (stride 2) of each channel of ``x``
        ``(C, H, W)``: ``v[16, C, th * tw]``. Each channel is first copied into a zero-padded
        plane; the row transform runs over whole rows, the column one over a tile row."""
        channels, height, width = x.shape
        plane_h, plane_w = 2 * th + 2, 2 * tw + 2
        plane = np.zeros((plane_h, plane_w), np.float32)
        rows = np.empty((4, plane_w), np.float32)
        for c in range(channels):
            for yy in range(min(height, plane_h - top)):
                src = x[c, yy]
                dst = plane[yy + top]
                for xx in range(min(width, plane_w - left)):
                    dst[xx + left] = src[xx]
            for ty in range(th):
                r0, r1, r2, r3 = plane[2 * ty], plane[2 * ty + 1], plane[2 * ty + 2], plane[2 * ty + 3]
                for j in range(plane_w):
                    rows[0, j] = r0[j] - r2[j]
                    rows[1, j] = r1[j] + r2[j]
                    rows[2, j] = r2[j] - r1[j]
                    rows[3, j] = r1[j] - r3[j]
                base = ty * tw
                for i in range(4):
                    t = rows[i]
                    v0, v1, v2, v3 = v[4 * i, c], v[4 * i + 1, c], v[4 * i + 2, c], v[4 * i + 3, c]
                    for tx in range(tw):
                        e0, o0, e1, o1 = t[2 * tx], t[2 * tx + 1], t[2 * tx + 2], t[2 * tx + 3]
                        v0[base + tx] = e0 - e1
                        v1[base + tx] = o0 + e1
                        v2[base + tx] = e1 - o0
                        v3[base + tx] = o0 - o1

    @numba.njit(nogil=True, fastmath=True, boundscheck=False, cache=True)
    def winograd_output(
        prod: Array, bias: Array, lo: float, hi: float, out: Array, th: int, tw: int
    ) -> None:  # pragma: no cover - compiled
        """``Y = A^T m A`` for every tile of ``prod[16, M, th * tw]``, plus bias, clipped to
        ``[lo, hi]``, into ``out[M, OH, OW]``."""
        out_h, out_w = out.shape[1], out.shape[2]
        cols = np.empty((8, tw), np.float32)
        for m in range(prod.shape[1]):
            bm = bias[m]
            for ty in range(th):
                base = ty * tw
                for j in range(4):
                    p0, p1, p2, p3 = prod[j, m], prod[4 + j, m], prod[8 + j, m], prod[12 + j, m]
                    for tx in range(tw):
                        k = base + tx
                        cols[j, tx] = p0[k] + p1[k] + p2[k]
                        cols[4 + j, tx] = p1[k] - p2[k] - p3[k]
                for r in range(2):
                    oy = 2 * ty + r
                    if oy >= out_h:
                        break
                    row = out[m, oy]
                    b = 4 * r
                    for tx in range(tw):
                        ox = 2 * tx
                        v = bm + cols[b, tx] + cols[b + 1, tx] + cols[b + 2, tx]
                        row[ox] = min(max(v, lo), hi)
                        if ox + 1 < out_w:
                            v = bm + cols[b + 1, tx] - cols[b + 2, tx] - cols[b + 3, tx]
                            row[ox + 1] = min(max(v, lo), hi)

    global _winograd
    _winograd = (winograd_input, winograd_output)

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
        geometry = Geometry((3, 3), (1, 1), (1, 1))
        winograd3x3(x, np.zeros((16, 1, 1), np.float32), bias, geometry)


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


_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


def winograd_weights(w: Array) -> Array:
    """``U = G g G^T`` of each ``(M, C, 3, 3)`` filter, as ``(16, M, C)`` float32 (computed in
    float64)."""
    u = np.einsum("ai,mcij,bj->abmc", _WINOGRAD_G, w.astype(np.float64), _WINOGRAD_G)
    return np.ascontiguousarray(u.reshape(16, w.shape[0], w.shape[1]).astype(np.float32))


def winograd3x3(
    x: Array, u: Array, bias: Array, geom: Geometry, low: float = -np.inf, high: float = np.inf
) -> Array:
    """A 3x3, stride-1, undilated, ungrouped float32 convolution by Winograd's F(2x2, 3x3):
    each 4x4 input tile and 3x3 filter become 16 products, so the 16 batched matrix products
    ``U[k] @ V[k]`` do 2.25 times fewer multiplications than im2col's one. ``u`` from
    :func:`winograd_weights`; only when :func:`available`."""
    assert _get() is not None and _winograd is not None
    transform_in, transform_out = _winograd
    n, c = x.shape[:2]
    m = u.shape[1]
    out_h, out_w = geom.out
    th, tw = (out_h + 1) // 2, (out_w + 1) // 2
    out = np.empty((n, m, out_h, out_w), np.float32)
    v = np.empty((16, c, th * tw), np.float32)
    for i in range(n):
        transform_in(np.ascontiguousarray(x[i]), v, th, tw, geom.begin[0], geom.begin[1])
        transform_out(np.matmul(u, v), bias, low, high, out[i], th, tw)
    return out


def prepare_weights(w: Any) -> Array:
    """``(C, 1, kh, kw)`` weights as the kernel reads them: ``(C, kh, kw)`` float32."""
    return np.ascontiguousarray(np.asarray(w, np.float32).reshape(w.shape[0], *w.shape[2:]))
