"""Compiled kernels for the ops numpy cannot do fast, used when numba is installed.

The kernels live in ``_jit_kernels`` (imported only when numba is); this module holds their
numpy-facing wrappers, which the op kernels call when :func:`available`.

* A 3x3 stride-1 convolution runs as Winograd's F(2x2, 3x3): compiled input and output tile
  transforms around 16 matrix products (BLAS, or the tiles below on planes of few tiles);
  the bias, a residual sum and Relu/Clip are applied as the output transform stores.
* A depthwise convolution does 9 multiply-adds per output (3x3) and no matrix product, so
  BLAS cannot help it. Each channel is copied into a small zero-padded plane (split by
  phase for stride 2), taking the producer's bias and activation on the way, and every
  output of the flattened plane is one 9-tap sum at fixed offsets: one long vectorised loop.
* A 1x1 convolution is a register-tiled matrix product written in LLVM IR
  (``_jit_pointwise``) that adds the bias and a residual sum and clips as it stores; a
  convolution over few input channels (a stem) runs directly on the same tiles; any other
  GEMM convolution's bias, residual sum and Relu/Clip take one pass over its output.
* An inverted-residual block's expand 1x1 conv and 3x3 depthwise conv run as one kernel:
  the tiles store a group of expanded channels straight into the padded (or column-split)
  planes the depthwise sum reads, while they are in cache.
* MaxPool reduces phase-split planes along rows, then columns, in long branch-free loops.
* LayerNorm is one kernel; Softmax and Gelu are compiled passes around numpy's vectorised
  exp (Gelu's erf is a polynomial numpy would evaluate in about twenty passes).

numba is an optional extra (``pip install "aioplug[jit]"``); without it, or with
``AIOPLUG_CPU_JIT=0`` in the environment, the numpy kernels run. Kernels are compiled once
and cached on disk by numba, loaded when a model that needs them is compiled, and release
the GIL, so streams run in parallel.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .._registry import KernelNode
from ._common import Array
from ._spatial import Geometry, Window

__all__ = [
    "PreActivation", "available", "bias_clip", "depthwise2d", "depthwise_planes_cover",
    "direct_conv", "expand_depthwise", "gelu_erf", "layer_norm_last", "max_pool2d",
    "pointwise_conv", "pointwise_weights", "prepare_weights", "softmax_last",
    "WinogradWeights", "warm_up", "warm_up_for", "winograd3x3", "winograd_weights",
]

log = logging.getLogger(__name__)


class PreActivation(NamedTuple):
    """A producer's per-channel bias and Relu/Clip bounds, applied by the consumer as it reads
    its input: ``clip(x + bias[c], low, high)``."""

    bias: Array
    low: float
    high: float


_kernels: ModuleType | None = None
_tried = False
_warmed: set[str] = set()


def _build() -> ModuleType | None:
    """The kernels module, or None when numba is missing or ``AIOPLUG_CPU_JIT`` says no."""
    if os.environ.get("AIOPLUG_CPU_JIT", "1").strip().lower() in {"0", "no", "false", "off"}:
        return None
    try:
        from . import _jit_kernels
    except ImportError:  # numba is not installed
        return None
    return _jit_kernels


def _get() -> ModuleType | None:
    global _kernels, _tried
    if not _tried:
        _tried = True
        _kernels = _build()
        if _kernels is not None:
            log.debug("numba kernels enabled for the CPU device")
    return _kernels


def _need() -> ModuleType:
    kernels = _get()
    assert kernels is not None, "the compiled kernels are not available"
    return kernels


def available() -> bool:
    """True when the compiled kernels can be used."""
    return _get() is not None


WARM_UP_GROUPS = (
    "depthwise", "epilogue", "pointwise", "direct", "expand", "pool", "rows", "winograd",
)
"""The kernel groups :func:`warm_up` compiles, each for the ops that use it."""


def warm_up(*groups: str) -> None:
    """Compiles (or loads from numba's cache) the float32 kernels of ``groups`` (all of
    :data:`WARM_UP_GROUPS` by default) now, when a model that uses them compiles, not
    mid-run; each group once per process."""
    k = _get()
    wanted = [g for g in (groups or WARM_UP_GROUPS) if g not in _warmed]
    if k is None or not wanted:
        return
    unknown = set(wanted) - set(WARM_UP_GROUPS)
    assert not unknown, f"unknown kernel groups {sorted(unknown)}"
    x = np.zeros((1, 1, 3, 3), np.float32)
    w = np.zeros((1, 3, 3), np.float32)
    bias = np.zeros(1, np.float32)
    out = np.empty((1, 1, 3, 3), np.float32)
    # the same (C-contiguous) array types as the real calls, or those would compile anew
    even, half = np.zeros((1, 1, 4, 4), np.float32), np.empty((1, 1, 2, 2), np.float32)
    same, halved = Geometry((3, 3), (1, 1), (1, 1)), Geometry((2, 2), (1, 1), (0, 0))
    tiles = pointwise_weights(np.zeros((1, 1), np.float32))
    taps = pointwise_weights(np.zeros((1, 9), np.float32))
    for group in wanted:
        if group == "depthwise":
            k.depthwise(x, w, bias, -np.inf, np.inf, out, 1, 1, 1, 1, 1, 1, bias, -np.inf, np.inf)
            for flat in (k.depthwise3x3_s1, k.depthwise3x3_s2):
                flat(x, w, bias, -np.inf, np.inf, out, 1, 1, bias, -np.inf, np.inf)
            k.depthwise3x3_same(x, w, bias, -np.inf, np.inf, out, bias, -np.inf, np.inf)
            for s2 in (k.depthwise3x3_s2_even, k.depthwise3x3_s2_even_small):
                s2(even, w, bias, -np.inf, np.inf, half, 1, 1, bias, -np.inf, np.inf)
        elif group == "epilogue":
            bias_clip(out, bias, -np.inf, np.inf)
            bias_clip(out, bias, -np.inf, np.inf, out.copy())
        elif group == "pointwise":
            pointwise_conv(x, tiles, 1, bias, -np.inf, np.inf)
            pointwise_conv(x, tiles, 1, bias, -np.inf, np.inf, residual=out)
        elif group == "direct":
            direct_conv(x, taps, 1, (3, 3), 1, same, bias, 0.0, 6.0)
            direct_conv(even, taps, 1, (3, 3), 2, halved, bias, 0.0, 6.0, half.copy())
        elif group == "expand":  # one kernel for every expand conv and stride
            expand_depthwise(x, tiles, bias, 0.0, 6.0, w, bias, same, 1, 0.0, 6.0)
        elif group == "pool":
            k.max_pool(x, out, 3, 3, 1, 1, 1, 1, 1, 1)
        elif group == "rows":
            gelu_erf(x)
            rows = out.reshape(3, 3)
            layer_norm_last(rows, bias.repeat(3), bias.repeat(3), 1e-5)
            softmax_last(rows)
        else:  # winograd
            filters = winograd_weights(np.zeros((1, 1, 3, 3), np.float32))
            winograd3x3(x, filters, bias, same)
            winograd3x3(x, filters, bias, same, residual=out)
            v = np.zeros((16, 1, 6), np.float32)
            k.winograd_input_flat(x[0], v, 2, 2, 1, 1)
            for has_res in (False, True):
                k.winograd_output_flat(v, bias, -np.inf, np.inf, out[0], 2, 2, out[0], has_res, 3)
        _warmed.add(group)


SMALL = 4096
"""Inputs with fewer elements gain nothing from a compiled row kernel worth loading numba for."""


def warm_up_for(node: KernelNode) -> None:
    """Loads the compiled kernels (:func:`warm_up`) for an op whose row kernels may serve
    this node (first input float32 or not known yet, and not known to be small). The row
    kernels (:func:`softmax_last`, :func:`layer_norm_last`, :func:`gelu_erf`) never load
    them themselves, so no first inference pays for it."""
    dtype = node.input_dtypes[0] if node.input_dtypes else None
    shape = node.input_shapes[0] if node.input_shapes else None
    if dtype is not None and np.dtype(dtype) != np.float32:
        return
    if shape is not None and all(isinstance(d, int) for d in shape):
        if int(np.prod(shape, dtype=np.int64)) < SMALL:
            return
    warm_up("rows")


def _loaded() -> ModuleType | None:
    """The compiled kernels when they are already loaded, else None (never loads them)."""
    return _kernels if _tried else None


def depthwise2d(
    x: Array, weights: Array, bias: Array, window: Window, geom: Geometry,
    low: float = -np.inf, high: float = np.inf, pre: PreActivation | None = None,
) -> Array:
    """``clip(conv(x') + bias, low, high)`` as ``(N, C, *out)``, for a float32 2-D conv with one
    input channel and one output per group (``weights`` from :func:`prepare_weights`, ``bias``
    float32 ``(C,)``), where ``x' = clip(x + pre.bias[c], pre.low, pre.high)`` (``x`` itself
    without ``pre``); only when :func:`available`."""
    k = _need()
    assert x.dtype == np.float32 and x.ndim == 4
    n, c = x.shape[:2]
    out = np.empty((n, c, *geom.out), np.float32)
    x = np.ascontiguousarray(x)
    if pre is None:
        pre = PreActivation(np.zeros(c, np.float32), -np.inf, np.inf)
    (sy, sx), (dy, dx) = window.strides, window.dilations
    top, left = geom.begin
    height, width = x.shape[2:]
    if weights.shape[1:] == (3, 3) and sy == sx and sy in (1, 2) and dy == dx == 1:
        small = height * width <= k.SMALL_PLANE
        if sy == 1 and depthwise_planes_cover(height, width, geom, 1):
            k.depthwise3x3_same(x, weights, bias, low, high, out, *pre)
        elif sy == 2 and depthwise_planes_cover(height, width, geom, 2):
            even = k.depthwise3x3_s2_even_small if small else k.depthwise3x3_s2_even
            even(x, weights, bias, low, high, out, top, left, *pre)
        else:
            flat = k.depthwise3x3_s1 if sy == 1 else k.depthwise3x3_s2
            flat(x, weights, bias, low, high, out, top, left, *pre)
    else:
        k.depthwise(x, weights, bias, low, high, out, sy, sx, dy, dx, top, left, *pre)
    return out


def depthwise_planes_cover(height: int, width: int, geom: Geometry, stride: int) -> bool:
    """Whether the plane-based 3x3 depthwise kernels (``depthwise3x3_same``, the stride-2
    ``depthwise3x3_s2_even*`` and :func:`expand_depthwise`) cover a conv of this geometry over
    an ``height`` x ``width`` plane: stride 1 with one pixel of padding on every side and
    ``width > 1``, or stride 2 on even sizes halved, with ``top`` and ``left`` pads of 0 or 1."""
    top, left = geom.begin
    if stride == 1:
        return geom.begin == (1, 1) and geom.end == (1, 1) and width > 1
    return (
        stride == 2 and height % 2 == 0 and width % 2 == 0 and top in (0, 1) and left in (0, 1)
        and geom.out == (height // 2, width // 2)
    )


def expand_depthwise(
    x: Array, expand: Array, expand_bias: Array, expand_low: float, expand_high: float,
    weights: Array, bias: Array, geom: Geometry, stride: int, low: float, high: float,
    direct: tuple[tuple[int, int], int, Geometry] | None = None,
) -> Array | None:
    """An expand conv (``expand`` from :func:`pointwise_weights`, its bias and clip) followed
    by a 3x3 depthwise conv (``weights`` from :func:`prepare_weights`, its bias and clip, its
    geometry ``geom`` on the expanded planes) on a float32 ``(N, K, H, W)``, computed a group
    of channels at a time (see ``_jit_kernels.expand_depthwise``). The expand conv is 1x1,
    or with ``direct`` (its kernel size, stride and geometry) one for :func:`direct_conv`.
    None when :func:`depthwise_planes_cover` says no; only when :func:`available`."""
    k = _need()
    if x.dtype != np.float32 or x.ndim != 4 or weights.shape[1:] != (3, 3):
        return None
    if direct is None:
        height, width = x.shape[2:]
        e_kernel = (0, 0, 0, 0, 0)
    else:
        (kh, kw), e_stride, e_geom = direct
        height, width = e_geom.out
        e_kernel = (kh, kw, e_stride, *e_geom.begin)
    if not depthwise_planes_cover(height, width, geom, stride):
        return None
    out = np.empty((x.shape[0], weights.shape[0], *geom.out), np.float32)
    top, left = geom.begin
    k.expand_depthwise(
        np.ascontiguousarray(x), expand, expand_bias, expand_low, expand_high, e_kernel,
        height, width, weights, bias, low, high, out, stride, top, left,
    )
    return out


def bias_clip(
    y: Array, bias: Array, low: float, high: float, residual: Array | None = None
) -> None:
    """``y = clip(y + bias[channel] (+ residual), low, high)`` in place, in one pass, for a
    C-contiguous float32 ``y`` of shape ``(N, C, ...)`` and a ``residual`` of the same shape;
    only when :func:`available`."""
    k = _need()
    rows = y.reshape(y.shape[0], y.shape[1], -1)
    if residual is None:
        k.bias_clip(rows, bias, low, high)
    else:
        z = np.ascontiguousarray(residual, np.float32).reshape(rows.shape)
        k.bias_add_clip(rows, bias, z, low, high)


def pointwise_weights(w: Array) -> Array:
    """A 1x1 conv's ``(M, C)`` float32 weights packed for :func:`pointwise_conv`; only when
    :func:`available`."""
    packed: Array = _need().pack_pointwise_weights(w[None])
    return packed


def pointwise_conv(
    x: Array, packed: Array, channels: int, bias: Array, low: float, high: float,
    residual: Array | None = None,
) -> Array:
    """A 1x1, unit-stride, unpadded conv of a float32 ``(N, C, *spatial)`` into ``channels``
    outputs, with the bias (and ``residual``, of the output's shape) added and the result
    clipped to ``[low, high]`` as it stores (``packed`` from :func:`pointwise_weights`,
    ``bias`` float32 ``(channels,)``); only when :func:`available`."""
    k = _need()
    n, c = x.shape[:2]
    rows = np.ascontiguousarray(x).reshape(n, c, -1)
    y = np.empty((n, channels, rows.shape[2]), np.float32)
    if residual is None:
        k.pointwise(rows, packed, bias, low, high, y, False, y)
    else:
        z = np.ascontiguousarray(residual, np.float32).reshape(y.shape)
        k.pointwise(rows, packed, bias, low, high, z, True, y)
    return y.reshape((n, channels, *x.shape[2:]))


def direct_conv(
    x: Array, packed: Array, channels: int, kernel: tuple[int, int], stride: int,
    geom: Geometry, bias: Array, low: float, high: float, residual: Array | None = None,
) -> Array:
    """A float32 2-D conv of one group, without dilation, with equal strides, computed
    directly on the tiles (no im2col matrix; see ``_jit_pointwise.direct``), with the bias
    (and ``residual``, of the output's shape) added and the result clipped to ``[low,
    high]`` as it stores (``packed`` from :func:`pointwise_weights` of the ``(M, C * kh *
    kw)`` weights); only when :func:`available`."""
    k = _need()
    n = x.shape[0]
    y = np.empty((n, channels, *geom.out), np.float32)
    top, left = geom.begin
    x = np.ascontiguousarray(x)
    if residual is None:
        k.direct(x, packed, bias, low, high, y, False, y, *kernel, stride, top, left)
    else:
        z = np.ascontiguousarray(residual, np.float32).reshape(y.shape)
        k.direct(x, packed, bias, low, high, z, True, y, *kernel, stride, top, left)
    return y


def max_pool2d(x: Array, window: Window, geom: Geometry) -> Array:
    """2-D max pooling of a float32 ``(N, C, H, W)`` (padding and NaN ignored, as numpy's
    ``fmax`` does); ``geom`` must cover every window (``ceil_mode`` included); only when
    :func:`available`."""
    k = _need()
    assert x.dtype == np.float32 and x.ndim == 4
    out = np.empty((x.shape[0], x.shape[1], *geom.out), np.float32)
    (kh, kw), (sy, sx), (dy, dx) = window.kernel, window.strides, window.dilations
    top, left = geom.begin
    k.max_pool(np.ascontiguousarray(x), out, kh, kw, sy, sx, dy, dx, top, left)
    return out


def layer_norm_last(x: Array, gamma: Array, beta: Array, eps: float) -> Array | None:
    """LayerNorm over the last axis of a float32 ``x`` with ``gamma``/``beta`` of that axis's
    length, in one compiled kernel; None without the compiled kernels or for other dtypes."""
    k = _loaded()
    if k is None or x.dtype != np.float32 or x.ndim == 0:
        return None
    n = x.shape[-1]
    if gamma.shape != (n,) or beta.shape != (n,) or n == 0:
        return None
    rows = np.ascontiguousarray(x).reshape(-1, n)
    out = np.empty_like(rows)
    k.layer_norm(
        rows, np.ascontiguousarray(gamma, np.float32), np.ascontiguousarray(beta, np.float32),
        eps, out,
    )
    return out.reshape(x.shape)


def softmax_last(x: Array) -> Array | None:
    """Softmax over the last axis of a float32 ``x``: the max shift and the normalisation
    compiled, numpy's vectorised exp between them; None without the compiled kernels or
    for other dtypes."""
    k = _loaded()
    if k is None or x.dtype != np.float32 or x.ndim == 0 or x.size == 0:
        return None
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty_like(rows)
    k.shift_by_max(rows, out)
    np.exp(out, out=out)
    k.normalise_rows(out)
    return out.reshape(x.shape)


def gelu_erf(x: Array) -> Array | None:
    """``0.5 * x * (1 + erf(x / sqrt(2)))`` for float32, from the same erfc fit as the numpy
    kernel in three passes instead of about twenty; None without the compiled kernels."""
    k = _loaded()
    if k is None or x.dtype != np.float32:
        return None
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    k.gelu(flat, out)
    return out.reshape(x.shape)


WINOGRAD_FLAT_MIN_TILES = 16
"""Tile columns from which Winograd's transforms run flat (see ``_jit_kernels``)."""

_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


class WinogradWeights(NamedTuple):
    """``U = G g G^T`` of each ``(M, C, 3, 3)`` filter, as ``(16, M, C)`` float32 for BLAS and,
    unless the plane is known to be large, packed for :func:`pointwise_conv`'s tiles (which
    win on planes of few tiles)."""

    u: Array
    tiles: Array | None
    zeros: Array


def _winograd_layout(out_h: int, out_w: int) -> tuple[int, int, bool, int]:
    """Tile rows and columns of an output plane, whether the transforms run flat (wide
    planes: their long loops vectorise, at one unused tile column in ``tw + 1`` for the
    products; narrow ones keep the dense layout), and the products' row pitch."""
    th, tw = (out_h + 1) // 2, (out_w + 1) // 2
    flat = tw >= WINOGRAD_FLAT_MIN_TILES
    return th, tw, flat, tw + 1 if flat else tw


def winograd_weights(w: Array, out: tuple[int, int] | None = None) -> WinogradWeights:
    """The Winograd-domain filters of ``(M, C, 3, 3)`` weights (computed in float64), for
    outputs of the static size ``out`` when known (the tiles are packed only for planes they
    serve); only when :func:`available`."""
    u = np.einsum("ai,mcij,bj->abmc", _WINOGRAD_G, w.astype(np.float64), _WINOGRAD_G)
    u32 = np.ascontiguousarray(u.reshape(16, w.shape[0], w.shape[1]).astype(np.float32))
    tiles = None
    if out is None or _products_on_tiles(*out):
        tiles = _need().pack_pointwise_weights(u32)
    return WinogradWeights(u32, tiles, np.zeros(w.shape[0], np.float32))


def _products_on_tiles(out_h: int, out_w: int) -> bool:
    th, _, _, pitch = _winograd_layout(out_h, out_w)
    return bool(th * pitch <= _need().POINTWISE_SMALL_PIXELS)


def winograd3x3(
    x: Array, u: WinogradWeights, bias: Array, geom: Geometry, low: float = -np.inf,
    high: float = np.inf, residual: Array | None = None,
) -> Array:
    """A 3x3, stride-1, undilated, ungrouped float32 convolution by Winograd's F(2x2, 3x3):
    each 4x4 input tile and 3x3 filter become 16 products, so the 16 batched matrix products
    ``U[k] @ V[k]`` do 2.25 times fewer multiplications than im2col's one (on the tiles of
    :func:`pointwise_conv` for planes of few tiles, where BLAS is slow: 512x512 by 16 tiles
    runs at about half its speed on large ones). ``residual`` (of the output's shape) is
    added before the clip. ``u`` from :func:`winograd_weights`; only when
    :func:`available`."""
    k = _need()
    n, c = x.shape[:2]
    m = u.u.shape[1]
    out_h, out_w = geom.out
    th, tw, flat, pitch = _winograd_layout(out_h, out_w)
    out = np.empty((n, m, out_h, out_w), np.float32)
    transform_in = k.winograd_input_flat if flat else k.winograd_input
    transform_out = k.winograd_output_flat if flat else k.winograd_output
    v = np.empty((16, c, th * pitch), np.float32)
    res = out if residual is None else np.ascontiguousarray(residual, np.float32)
    for i in range(n):
        transform_in(np.ascontiguousarray(x[i]), v, th, tw, geom.begin[0], geom.begin[1])
        if u.tiles is not None and _products_on_tiles(out_h, out_w):
            prod = np.empty((16, m, v.shape[2]), np.float32)
            k.pointwise(v, u.tiles, u.zeros, -np.inf, np.inf, prod, False, prod)
        else:
            prod = np.matmul(u.u, v)
        transform_out(prod, bias, low, high, out[i], th, tw, res[i], residual is not None, pitch)
    return out


def prepare_weights(w: Any) -> Array:
    """``(C, 1, kh, kw)`` weights as the kernel reads them: ``(C, kh, kw)`` float32."""
    return np.ascontiguousarray(np.asarray(w, np.float32).reshape(w.shape[0], *w.shape[2:]))
