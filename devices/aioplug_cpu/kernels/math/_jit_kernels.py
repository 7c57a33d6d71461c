"""The numba kernels behind ``_jit``; imported only when numba is installed.

Every kernel is a module-level function, so numba's on-disk cache can key it by name: a
kernel that calls another one then loads from the cache too (closures would be compiled
again in every process).

Writing loops numba vectorises:

* ``error_model="numpy"``: a float division by zero gives inf/nan instead of raising, which
  drops the branch that would stop LLVM from vectorising any loop with a division in it.
* Index arrays through views at fixed offsets (``a[i + 1]`` of a view, not ``a[i + k]`` with a
  runtime ``k``): a possibly negative index needs a wraparound check that stops vectorising.
  Or index with unsigned integers (``numba.uint64``), which cannot wrap: no view to make
  (about 30 ns each) and no array to pass to a nested kernel, which is what small planes pay
  for, per channel.
* Long loops over flattened planes rather than short loops over rows: a vectorised loop runs
  its remainder scalar, and a row of 7 or 14 is nearly all remainder.
* Few distinct arrays per loop: LLVM checks every pair that may overlap at run time and gives
  up past a handful.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import uint64 as _u

from ._common import Array
from ._erf import _C_T0, _QC32
from ._jit_pointwise import pack_weights as pack_pointwise_weights  # noqa: F401 (for _jit)
from ._jit_pointwise import SMALL_PIXELS as POINTWISE_SMALL_PIXELS  # noqa: F401 (for _jit)
from ._jit_pointwise import (  # noqa: F401 (direct and pointwise for _jit)
    TILE_ROWS,
    direct,
    direct_layout,
    direct_split,
    direct_tiles,
    pointwise,
    pointwise_into,
)

_JIT_OPTIONS: dict[str, Any] = {
    "nogil": True, "fastmath": True, "boundscheck": False, "cache": True, "error_model": "numpy",
}
_EXACT_OPTIONS: dict[str, Any] = {
    "nogil": True, "boundscheck": False, "cache": True, "error_model": "numpy",
}
"""No fastmath: for the max kernels, whose NaN test must stay (MaxPool skips NaN like fmax)."""


@numba.njit(**_JIT_OPTIONS)
def taps3x3(
    p0: Array, p1: Array, p2: Array, p3: Array, p4: Array, p5: Array, p6: Array,
    p7: Array, p8: Array, w: Array, c: int, bc: float, lo: float, hi: float, acc: Array,
) -> None:  # pragma: no cover - compiled
    """``acc = clip(bc + sum_k w[c, k] * p_k, lo, hi)`` over equal-length runs: one
    vectorised loop (its operands are views at fixed offsets, so no index can wrap)."""
    w0, w1, w2 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
    w3, w4, w5 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
    w6, w7, w8 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
    for i in range(acc.shape[0]):
        v = (
            bc + w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i] + w4 * p4[i]
            + w5 * p5[i] + w6 * p6[i] + w7 * p7[i] + w8 * p8[i]
        )
        acc[i] = min(max(v, lo), hi)


@numba.njit(**_JIT_OPTIONS)
def store_rows(acc: Array, pitch: int, out: Array) -> None:  # pragma: no cover - compiled
    """``out[oy, :] = acc[oy * pitch : oy * pitch + out_w]``: the valid columns."""
    for oy in range(out.shape[0]):
        src = acc[oy * pitch :]
        dst = out[oy]
        for ox in range(out.shape[1]):
            dst[ox] = src[ox]


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_s1(
    x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array, top: int, left: int,
    pre: Array, pre_lo: float, pre_hi: float,
) -> None:  # pragma: no cover - compiled
    """3x3, stride 1: each channel is copied into a zero-padded plane of pitch
    ``out_w + 2`` (as ``clip(x + pre[c], pre_lo, pre_hi)``: the producer's bias and
    activation, applied here instead of in a pass of their own); every output of the
    flattened plane is then one 9-tap sum at fixed offsets, a single loop of
    ``out_h * pitch`` (the two extra columns per row are dropped when stored). Small
    planes vectorise as well as large ones."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    in_lo, in_hi = np.float32(pre_lo), np.float32(pre_hi)
    pitch = out_w + 2
    plane = np.zeros((out_h + 3) * pitch, np.float32)
    acc = np.empty(out_h * pitch, np.float32)
    rows = min(height, out_h + 2 - top)
    cols = min(width, pitch - left)
    r0, r1, r2 = plane, plane[pitch:], plane[2 * pitch :]
    # the taps' views are made once: made per channel they cost ~30 ns each
    p0, p1, p2, p3, p4, p5 = r0, r0[1:], r0[2:], r1, r1[1:], r1[2:]
    p6, p7, p8 = r2, r2[1:], r2[2:]
    for n in range(n_img):
        for c in range(channels):
            shift = pre[c]
            for iy in range(rows):
                src = x[n, c, iy]
                dst = plane[(top + iy) * pitch + left :]
                for ix in range(cols):
                    dst[ix] = min(max(src[ix] + shift, in_lo), in_hi)
            taps3x3(p0, p1, p2, p3, p4, p5, p6, p7, p8, w, c, np.float32(bias[c]), lo32, hi32, acc)
            store_rows(acc, pitch, out[n, c])


@numba.njit(**_JIT_OPTIONS)
def split_phases(
    x: Array, phases: Array, pitch: int, top: int, left: int, rows: int, cols: int,
    shift: float, lo: float, hi: float,
) -> None:  # pragma: no cover - compiled
    """Copies ``clip(x + shift, lo, hi)`` (the first ``rows`` x ``cols`` of one plane) into
    the four phase planes (even/odd rows x even/odd columns, pitch ``pitch``) of its
    zero-padded version (``top``, ``left`` pads)."""
    for iy in range(rows):
        py = top + iy
        base = (py >> 1) * pitch
        even, odd = phases[2 * (py & 1)], phases[2 * (py & 1) + 1]
        src = x[iy]
        if left & 1:  # input columns 0, 2, ... land in odd plane columns
            first, second = odd[base + (left >> 1) :], even[base + (left >> 1) + 1 :]
        else:
            first, second = even[base + (left >> 1) :], odd[base + (left >> 1) :]
        for k in range(cols >> 1):
            first[k] = min(max(src[2 * k] + shift, lo), hi)
            second[k] = min(max(src[2 * k + 1] + shift, lo), hi)
        if cols & 1:
            first[cols >> 1] = min(max(src[cols - 1] + shift, lo), hi)


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_s2(
    x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array, top: int, left: int,
    pre: Array, pre_lo: float, pre_hi: float,
) -> None:  # pragma: no cover - compiled
    """3x3, stride 2: the zero-padded plane is split as it is copied (with ``pre`` as in
    stride 1) into four phase planes (even/odd rows x even/odd columns) of pitch
    ``out_w + 1``, in which all nine taps of every output sit at fixed offsets: the same
    single loop as stride 1."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    in_lo, in_hi = np.float32(pre_lo), np.float32(pre_hi)
    pitch = out_w + 1
    phases = np.zeros((4, (out_h + 2) * pitch), np.float32)
    acc = np.empty(out_h * pitch, np.float32)
    rows = min(height, 2 * out_h + 1 - top)  # padded rows/columns past 2 * out are unused
    cols = min(width, 2 * out_w + 1 - left)
    ee, eo, oe, oo = phases[0], phases[1], phases[2], phases[3]
    p0, p1, p2, p3, p4, p5 = ee, eo, ee[1:], oe, oo, oe[1:]
    p6, p7, p8 = ee[pitch:], eo[pitch:], ee[pitch + 1 :]
    for n in range(n_img):
        for c in range(channels):
            split_phases(x[n, c], phases, pitch, top, left, rows, cols, pre[c], in_lo, in_hi)
            taps3x3(p0, p1, p2, p3, p4, p5, p6, p7, p8, w, c, np.float32(bias[c]), lo32, hi32, acc)
            store_rows(acc, pitch, out[n, c])


@numba.njit(**_JIT_OPTIONS)
def copy_clip(
    src: Array, dst: Array, shift: float, lo: float, hi: float
) -> None:  # pragma: no cover - compiled
    """``dst = clip(src + shift, lo, hi)`` over equal-length runs."""
    for i in range(src.shape[0]):
        dst[i] = min(max(src[i] + shift, lo), hi)


@numba.njit(**_JIT_OPTIONS)
def split_clip(
    src: Array, even: Array, odd: Array, shift: float, lo: float, hi: float
) -> None:  # pragma: no cover - compiled
    """``even[k], odd[k] = clip(src[2k] + shift), clip(src[2k + 1] + shift)``."""
    for k in range(even.shape[0]):
        even[k] = min(max(src[2 * k] + shift, lo), hi)
        odd[k] = min(max(src[2 * k + 1] + shift, lo), hi)


SMALL_PLANE = 1024
"""Planes of at most this many pixels take :func:`depthwise3x3_s2_even_small`: per channel, its
cost is mostly fixed overhead, which that kernel avoids; larger ones gain from writing
straight out."""


@numba.njit(**_JIT_OPTIONS)
def column_masks(
    positions: int, pitch: int, left_col: int, right_col: int
) -> tuple[Array, Array]:  # pragma: no cover - compiled
    """Two masks over ``positions`` outputs laid ``pitch`` to a row: False at column
    ``left_col`` of every row in the first and at ``right_col`` in the second (-1 for none),
    where a kernel's left or right taps read the neighbouring row instead of the padding."""
    keep_left = np.ones(positions, np.bool_)
    keep_right = np.ones(positions, np.bool_)
    for row in range(0, positions, pitch):
        if left_col >= 0 and row + left_col < positions:
            keep_left[row + left_col] = False
        if right_col >= 0 and row + right_col < positions:
            keep_right[row + right_col] = False
    return keep_left, keep_right


@numba.njit(**_JIT_OPTIONS)
def s2_even_offsets(
    top: int, left: int, half: int, out_w: int
) -> tuple[Any, ...]:  # pragma: no cover - compiled
    """Where the stride-2 kernels' taps sit in the even and odd column planes (pitch ``half``
    per input row, after a zero row and one slack element): ``(r0, (a0, ..., a8), first,
    fix)``. Output ``(oy, ox)``'s tap ``(ky, kx)`` reads ``oy * W + ox + a[3 * ky + kx]`` of
    the odd plane for the outer columns and the even one for the middle column when
    ``left`` is 1, the reverse when it is 0; ``r0`` is where input row ``-top`` starts, and
    column ``fix`` is recomputed from its inner taps ``kx = first, first + 1``."""
    u_half = _u(half)
    # input row 2 * oy + ky - top starts at 1 + (2 * oy + ky - top + 1) * half
    r0 = _u(1 + (1 - top) * half)
    r1, r2 = r0 + u_half, r0 + _u(2) * u_half
    # left == 1: columns 2ox - 1, 2ox, 2ox + 1 are odd[j - 1], even[j], odd[j];
    # left == 0: columns 2ox, 2ox + 1, 2ox + 2 are even[j], odd[j], even[j + 1]
    edge = _u(1 - left)  # where the third tap sits past the first
    first = 1 if left == 1 else 0
    fix = _u(0 if left == 1 else out_w - 1)
    taps = (
        r0 - _u(left), r0, r0 + edge, r1 - _u(left), r1, r1 + edge,
        r2 - _u(left), r2, r2 + edge,
    )
    return r0, taps, first, fix


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_s2_even_small(
    x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array, top: int, left: int,
    pre: Array, pre_lo: float, pre_hi: float,
) -> None:  # pragma: no cover - compiled
    """:func:`depthwise3x3_s2_even` for small planes, whose rows of 7 or 14 outputs would be
    mostly a vector loop's scalar remainder: the sum runs over the flat ``out_h * W``
    positions rounded up to a multiple of 8 (those past ``out_w`` in each row are dropped
    when copied out), one function indexed with unsigned integers; the column next to the
    padding leaves out its outer taps by a select on a column mask, in the same loop."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    half = width // 2
    hw = height * width
    run = (out_h * width + 7) // 8 * 8
    lo32, hi32 = np.float32(lo), np.float32(hi)
    in_lo, in_hi = np.float32(pre_lo), np.float32(pre_hi)
    zero = np.float32(0.0)
    size = (height + 4) * half + 4 + run  # slack, zero row, body, the run's reads past it
    even = np.zeros(size, np.float32)
    odd = np.zeros(size, np.float32)
    acc = np.empty(run, np.float32)
    xf = x.reshape(n_img, channels * hw)
    of = out.reshape(n_img, channels * out_h * out_w)
    u_half, u_ow = _u(half), _u(out_w)
    body = _u(1) + u_half
    r0, taps, first, fix = s2_even_offsets(top, left, half, out_w)
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = taps
    # left pad 1: column 0's left taps read the row before; 0: the last column's right taps
    fix_col = np.int64(fix)
    keep_left, keep_right = column_masks(
        run, width, fix_col if left == 1 else np.int64(-1), fix_col if left == 0 else np.int64(-1)
    )
    side, mid = (odd, even) if left == 1 else (even, odd)  # outer and middle column taps
    for n in range(n_img):
        xs, ys = xf[n], of[n]
        for c in range(channels):
            base = _u(c) * _u(hw)
            shift = pre[c]
            for k in range(_u(hw // 2)):
                s = base + _u(2) * k
                even[body + k] = min(max(xs[s] + shift, in_lo), in_hi)
                odd[body + k] = min(max(xs[s + _u(1)] + shift, in_lo), in_hi)
            w0, w1, w2 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
            w3, w4, w5 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
            w6, w7, w8 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
            bc = np.float32(bias[c])
            for i in range(_u(run)):
                outer_left = w0 * side[i + a0] + w3 * side[i + a3] + w6 * side[i + a6]
                outer_right = w2 * side[i + a2] + w5 * side[i + a5] + w8 * side[i + a8]
                v = (
                    bc + w1 * mid[i + a1] + w4 * mid[i + a4] + w7 * mid[i + a7]
                    + (outer_left if keep_left[i] else zero)
                    + (outer_right if keep_right[i] else zero)
                )
                acc[i] = min(max(v, lo32), hi32)
            dst = _u(c) * _u(out_h) * u_ow
            for oy in range(_u(out_h)):
                src = oy * _u(width)
                row = dst + oy * u_ow
                for ox in range(u_ow):
                    ys[row + ox] = acc[src + ox]


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_s2_even(
    x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array, top: int, left: int,
    pre: Array, pre_lo: float, pre_hi: float,
) -> None:  # pragma: no cover - compiled
    """3x3, stride 2, even ``H`` and ``W``, ``top`` and ``left`` padding 0 or 1 and the output
    half the input (the padding after is ``1 - top``, ``1 - left``): each channel is split
    (with ``pre`` as in :func:`depthwise3x3_s1`) as one run into its even and its odd columns
    (planes of pitch ``W / 2`` after a zero row), where output ``(oy, ox)``'s taps sit at
    fixed offsets from ``oy * W + ox``; each output row is one loop over those offsets,
    indexed with unsigned integers (no views to make), straight into the output. The column
    next to the left (or right) padding reads the neighbouring row's input in its outer
    taps, so it is computed again from its six inner taps."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    half = width // 2
    hw = height * width
    lo32, hi32 = np.float32(lo), np.float32(hi)
    in_lo, in_hi = np.float32(pre_lo), np.float32(pre_hi)
    size = (height + 4) * half + 4  # slack, zero row, body, zero rows
    even = np.zeros(size, np.float32)
    odd = np.zeros(size, np.float32)
    even_body = even[1 + half : 1 + half + hw // 2]
    odd_body = odd[1 + half : 1 + half + hw // 2]
    xf = x.reshape(n_img, channels, hw)
    of = out.reshape(n_img, channels * out_h * out_w)
    u_half, u_w, u_ow = _u(half), _u(width), _u(out_w)
    r0, taps, first, fix = s2_even_offsets(top, left, half, out_w)
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = taps
    side, mid = (odd, even) if left == 1 else (even, odd)  # outer and middle column taps
    for n in range(n_img):
        ys = of[n]
        for c in range(channels):
            split_clip(xf[n, c], even_body, odd_body, pre[c], in_lo, in_hi)
            w0, w1, w2 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
            w3, w4, w5 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
            w6, w7, w8 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
            bc = np.float32(bias[c])
            dst = _u(c) * _u(out_h) * u_ow
            for oy in range(_u(out_h)):
                src = oy * u_w
                row = dst + oy * u_ow
                for ox in range(u_ow):
                    i = src + ox
                    v = (
                        bc + w0 * side[i + a0] + w1 * mid[i + a1] + w2 * side[i + a2]
                        + w3 * side[i + a3] + w4 * mid[i + a4] + w5 * side[i + a5]
                        + w6 * side[i + a6] + w7 * mid[i + a7] + w8 * side[i + a8]
                    )
                    ys[row + ox] = min(max(v, lo32), hi32)
                i = src + fix
                v = bc
                for ky in range(3):
                    j = r0 + _u(ky) * u_half + i
                    v += w[c, ky, first] * even[j] + w[c, ky, first + 1] * odd[j]
                ys[row + fix] = min(max(v, lo32), hi32)


@numba.njit(**_JIT_OPTIONS)
def depthwise(
    x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array,
    sy: int, sx: int, dy: int, dx: int, top: int, left: int,
    pre: Array, pre_lo: float, pre_hi: float,
) -> None:  # pragma: no cover - compiled
    """Any kernel size, stride and dilation: one zero-padded plane per channel (``pre``
    as in the 3x3 kernels), and per kernel tap one multiply-add over each output row."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    kh, kw = w.shape[1], w.shape[2]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    # one zero-padded plane, reused for every channel: its border is never written
    plane_h = max(top + height, (out_h - 1) * sy + (kh - 1) * dy + 1)
    plane_w = max(left + width, (out_w - 1) * sx + (kw - 1) * dx + 1)
    in_lo, in_hi = np.float32(pre_lo), np.float32(pre_hi)
    plane = np.zeros((plane_h, plane_w), np.float32)
    for n in range(n_img):
        for c in range(channels):
            shift = pre[c]
            for iy in range(height):
                src = x[n, c, iy]
                dst = plane[top + iy, left : left + width]
                for ix in range(width):
                    dst[ix] = min(max(src[ix] + shift, in_lo), in_hi)
            bc = np.float32(bias[c])
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
                    row_out[ox] = min(max(row_out[ox], lo32), hi32)


GROUP_BYTES = 96 * 1024
"""The 3x3 stride-1 depthwise kernel copies, and :func:`expand_depthwise` expands, this many
bytes of channels at a time (at least one channel, or one tile): they stay in the
second-level cache for the sum that reads them."""


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_same(
    x: Array, w: Array, bias: Array, lo: float, hi: float, out: Array,
    pre: Array, pre_lo: float, pre_hi: float,
) -> None:  # pragma: no cover - compiled
    """3x3, stride 1, one pixel of padding on every side (the output the input's size),
    ``W > 1``: a group of channels at a time (:data:`GROUP_BYTES`) is copied as
    ``clip(x + pre[c], pre_lo, pre_hi)`` (the producer's bias and activation, applied here
    instead of in a pass of their own) into planes of pitch ``W`` between two zero rows,
    then summed from there straight into ``out`` (:func:`depthwise3x3_same_planes`)."""
    n_img, channels, height, width = x.shape
    hw = height * width
    plane_len = hw + 2 * width + 2  # slack, zero row, body, zero row, slack
    per_group = max(1, min(channels, GROUP_BYTES // (plane_len * 4)))
    planes = np.zeros(per_group * plane_len, np.float32)
    keep_left, keep_right = column_masks(hw, width, 0, width - 1)
    in_lo, in_hi = np.float32(pre_lo), np.float32(pre_hi)
    xf = x.reshape(n_img, channels * hw)
    body = _u(1 + width)
    for n in range(n_img):
        xs = xf[n]
        for c0 in range(0, channels, per_group):
            group = min(per_group, channels - c0)
            for c in range(group):
                src = _u(c0 + c) * _u(hw)
                dst = _u(c) * _u(plane_len) + body
                shift = pre[c0 + c]
                for i in range(_u(hw)):
                    planes[dst + i] = min(max(xs[src + i] + shift, in_lo), in_hi)
            c1 = c0 + group
            depthwise3x3_same_planes(planes, plane_len, width, w[c0:c1], bias[c0:c1], lo, hi,
                                     out[n, c0:c1].reshape(group * hw), keep_left, keep_right)


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_s2_planes(
    planes: Array, channel_len: int, odd_at: int, width: int, top: int, left: int, w: Array,
    bias: Array, lo: float, hi: float, out: Array, out_w: int, keep_left: Array,
    keep_right: Array, acc: Array,
) -> None:  # pragma: no cover - compiled
    """:func:`depthwise3x3_s2_even`'s sum for channels already split into their even and odd
    columns: channel ``c``'s even columns at ``planes[c * channel_len + 1 + W / 2:]`` and its
    odd ones ``odd_at`` further, each plane after a zero row (and one slack element) and
    before zero rows, with ``keep_left`` and ``keep_right`` from :func:`column_masks` over
    the ``out_h * W`` positions. Rows of at least 16 outputs are summed in place, shorter
    ones over the flat positions (``acc``, rounded up to a multiple of 8) and copied out."""
    channels = w.shape[0]
    out_hw = out.size // channels
    out_h = out_hw // out_w
    half = width // 2
    lo32, hi32 = np.float32(lo), np.float32(hi)
    zero = np.float32(0.0)
    _, taps, _, _ = s2_even_offsets(top, left, half, out_w)
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = taps
    u_w, u_ow = _u(width), _u(out_w)
    rows_in_place = out_w >= 16
    for c in range(channels):
        even = _u(c) * _u(channel_len)
        odd = even + _u(odd_at)
        side, mid = (odd, even) if left == 1 else (even, odd)  # outer and middle column taps
        w0, w1, w2 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
        w3, w4, w5 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
        w6, w7, w8 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
        bc = np.float32(bias[c])
        dst = _u(c) * _u(out_hw)
        if rows_in_place:
            for oy in range(_u(out_h)):
                src = oy * u_w
                row = dst + oy * u_ow
                for ox in range(u_ow):
                    i = src + ox
                    s, m = side + i, mid + i
                    outer_left = w0 * planes[s + a0] + w3 * planes[s + a3] + w6 * planes[s + a6]
                    outer_right = w2 * planes[s + a2] + w5 * planes[s + a5] + w8 * planes[s + a8]
                    v = (
                        bc + w1 * planes[m + a1] + w4 * planes[m + a4] + w7 * planes[m + a7]
                        + (outer_left if keep_left[i] else zero)
                        + (outer_right if keep_right[i] else zero)
                    )
                    out[row + ox] = min(max(v, lo32), hi32)
            continue
        for i in range(_u(acc.size)):
            s, m = side + i, mid + i
            outer_left = w0 * planes[s + a0] + w3 * planes[s + a3] + w6 * planes[s + a6]
            outer_right = w2 * planes[s + a2] + w5 * planes[s + a5] + w8 * planes[s + a8]
            v = (
                bc + w1 * planes[m + a1] + w4 * planes[m + a4] + w7 * planes[m + a7]
                + (outer_left if keep_left[i] else zero)
                + (outer_right if keep_right[i] else zero)
            )
            acc[i] = min(max(v, lo32), hi32)
        for oy in range(_u(out_h)):
            src = oy * u_w
            row = dst + oy * u_ow
            for ox in range(u_ow):
                out[row + ox] = acc[src + ox]


@numba.njit(**_JIT_OPTIONS)
def depthwise3x3_same_planes(
    planes: Array, plane_len: int, width: int, w: Array, bias: Array, lo: float, hi: float,
    out: Array, keep_left: Array, keep_right: Array,
) -> None:  # pragma: no cover - compiled
    """The 3x3 stride-1 sum for channels already in their padded planes:
    channel ``c``'s ``H * W`` inputs at ``planes[c * plane_len + 1 + W:]``, after a zero row
    (and one slack element) and before another, with ``keep_left`` and ``keep_right`` from
    :func:`column_masks`; ``out`` is the channels' outputs, flat. Nothing is copied in or
    out."""
    channels = w.shape[0]
    hw = out.size // channels
    lo32, hi32 = np.float32(lo), np.float32(hi)
    zero = np.float32(0.0)
    u_w = _u(width)
    t1, t2 = _u(1), _u(2)
    t3, t4, t5 = u_w, u_w + _u(1), u_w + _u(2)
    t6, t7, t8 = _u(2) * u_w, _u(2) * u_w + _u(1), _u(2) * u_w + _u(2)
    for c in range(channels):
        base = _u(c) * _u(plane_len)
        dst = _u(c) * _u(hw)
        w0, w1, w2 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
        w3, w4, w5 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
        w6, w7, w8 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
        bc = np.float32(bias[c])
        for i in range(_u(hw)):
            j = base + i
            outer_left = w0 * planes[j] + w3 * planes[j + t3] + w6 * planes[j + t6]
            outer_right = w2 * planes[j + t2] + w5 * planes[j + t5] + w8 * planes[j + t8]
            v = (
                bc + w1 * planes[j + t1] + w4 * planes[j + t4] + w7 * planes[j + t7]
                + (outer_left if keep_left[i] else zero)
                + (outer_right if keep_right[i] else zero)
            )
            out[dst + i] = min(max(v, lo32), hi32)


@numba.njit(**_JIT_OPTIONS)
def expand_depthwise(
    x: Array, expand: Array, e_bias: Array, e_lo: float, e_hi: float, e_kernel: Any,
    height: int, width: int, w: Array, bias: Array, lo: float, hi: float, out: Array,
    stride: int, top: int, left: int,
) -> None:  # pragma: no cover - compiled
    """An inverted-residual block's expand and depthwise convs as one: ``out =
    clip(depthwise3x3(clip(expand(x) + e_bias, e_lo, e_hi)) + bias, lo, hi)``, for float32
    ``x`` ``(N, K, H, W)``, ``w`` the depthwise weights ``(C, 3, 3)`` and ``out`` ``(N, C,
    OH, OW)``, with the geometry of :func:`depthwise3x3_same` (stride 1) or
    :func:`depthwise3x3_s2_even` (stride 2) on the expanded ``height`` x ``width`` planes.
    ``expand`` is the tiles of a 1x1 conv (:func:`pointwise`) when ``e_kernel`` is
    ``(0, 0, 0, 0, 0)``, else of a direct conv (:func:`direct`) of kernel ``(kh, kw)``, stride
    and top and left pads ``e_kernel``, as a network's stem before its first depthwise conv.

    The expanded channels are computed a group at a time (:data:`GROUP_BYTES`) and convolved
    from there: the block's largest tensor (MobileNetV2's 96x112x112, 4.8 MB) never goes
    out to memory and back, only one group of it to the second-level cache. The tiles store
    each channel straight into the zero-padded plane (stride 1) or the even and odd column
    planes (stride 2, a 1x1 conv over whole strips) that the depthwise sum reads as they are
    (:func:`depthwise3x3_same_planes`, :func:`depthwise3x3_s2_planes`); otherwise the
    depthwise kernel splits a copy."""
    n_img, k_len = x.shape[0], x.shape[1]
    kh, kw, e_stride, e_top, e_left = e_kernel
    channels = w.shape[0]
    hw = height * width
    out_h, out_w = out.shape[2], out.shape[3]
    tiles, depth = expand.shape[1], expand.shape[2]
    half = width // 2
    # a 1x1 conv's tiles split each channel into its column phases as they store it, when
    # its pixels fill whole strips; otherwise the depthwise kernel splits a copy
    split = stride == 2 and hw % 16 == 0 and kh == 0
    run = (out_h * width + 7) // 8 * 8
    if stride == 1:
        plane_len = hw + 2 * width + 2  # slack, zero row, body, zero row, slack
        keep_left, keep_right = column_masks(hw, width, 0, width - 1)
    elif split:
        plane_len = 2 * ((height + 4) * half + 4 + run)  # each phase: as depthwise3x3_s2_even
        fix = np.int64(s2_even_offsets(top, left, half, out_w)[3])
        keep_left, keep_right = column_masks(
            run, width, fix if left == 1 else np.int64(-1), fix if left == 0 else np.int64(-1)
        )
    else:
        plane_len = hw
        keep_left, keep_right = column_masks(0, 1, -1, -1)
    per_group = max(1, GROUP_BYTES // (TILE_ROWS * plane_len * 4))
    # zero rows around each plane's body, which the tiles never write
    planes = np.zeros(per_group * TILE_ROWS * plane_len, np.float32)
    odd_planes = planes[plane_len // 2 :]
    acc = np.empty(run, np.float32)
    no_pre = np.zeros(channels, np.float32)
    inf = np.float32(np.inf)
    small = hw <= SMALL_PLANE
    phases, offsets, pitch = direct_layout(k_len if kh else 0, kh, kw, max(e_stride, 1),
                                           height, width)
    for n in range(n_img):
        xs = x[n].reshape((1, k_len, x.shape[2] * x.shape[3]))
        if kh:
            if n:
                phases[:] = 0.0
            direct_split(x[n], kh, e_stride, e_top, e_left, height, pitch, phases)
        for t0 in range(0, tiles, per_group):
            t1 = min(tiles, t0 + per_group)
            c0, c1 = t0 * TILE_ROWS, min(channels, t1 * TILE_ROWS)
            group = c1 - c0
            tile_w = expand[0, t0:t1].reshape((1, t1 - t0, depth, TILE_ROWS))
            wg, bg, eg = w[c0:c1], bias[c0:c1], e_bias[c0:c1]
            o = out[n, c0:c1].reshape(group * out_h * out_w)
            # the tiles' one call: into the padded planes, the column phases, or plain rows
            base = 1 + width if stride == 1 else (1 + half if split else 0)
            if kh:
                direct_tiles(phases, offsets, pitch, tile_w, eg, e_lo, e_hi, odd_planes, False,
                             planes, base, plane_len, group, height, width)
            else:
                pointwise_into(xs, tile_w, eg, e_lo, e_hi, odd_planes, False, planes, base,
                               plane_len, group, split)
            if stride == 1:
                depthwise3x3_same_planes(planes, plane_len, width, wg, bg, lo, hi, o,
                                         keep_left, keep_right)
            elif split:
                depthwise3x3_s2_planes(planes, plane_len, plane_len // 2, width, top, left, wg,
                                       bg, lo, hi, o, out_w, keep_left, keep_right, acc)
            else:
                plain = planes[: group * hw].reshape((1, group, height, width))
                o4 = o.reshape((1, group, out_h, out_w))
                if small:
                    depthwise3x3_s2_even_small(plain, wg, bg, lo, hi, o4, top, left, no_pre,
                                               -inf, inf)
                else:
                    depthwise3x3_s2_even(plain, wg, bg, lo, hi, o4, top, left, no_pre, -inf,
                                         inf)


@numba.njit(**_JIT_OPTIONS)
def bias_clip(y: Array, bias: Array, lo: float, hi: float) -> None:  # pragma: no cover
    """``y[n, m, :] = clip(y[n, m, :] + bias[m], lo, hi)`` in place, in one pass."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    for n in range(y.shape[0]):
        for m in range(y.shape[1]):
            b = bias[m]
            row = y[n, m]
            for j in range(row.shape[0]):
                row[j] = min(max(row[j] + b, lo32), hi32)


@numba.njit(**_JIT_OPTIONS)
def bias_add_clip(
    y: Array, bias: Array, z: Array, lo: float, hi: float
) -> None:  # pragma: no cover - compiled
    """``y[n, m, :] = clip(y[n, m, :] + bias[m] + z[n, m, :], lo, hi)`` in place."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    for n in range(y.shape[0]):
        for m in range(y.shape[1]):
            b = bias[m]
            row = y[n, m]
            add = z[n, m]
            for j in range(row.shape[0]):
                row[j] = min(max(row[j] + b + add[j], lo32), hi32)


@numba.njit(**_JIT_OPTIONS)
def layer_norm(
    x: Array, gamma: Array, beta: Array, eps: float, out: Array
) -> None:  # pragma: no cover - compiled
    """Each row of ``x (R, N)``: ``(x - mean) / sqrt(var + eps) * gamma + beta``, the mean
    and variance from two passes over the row while it is in cache."""
    n = x.shape[1]
    inv_n = np.float32(1.0) / np.float32(n)
    eps32 = np.float32(eps)
    for r in range(x.shape[0]):
        row = x[r]
        dst = out[r]
        total = np.float32(0.0)
        for j in range(n):
            total += row[j]
        mean = total * inv_n
        spread = np.float32(0.0)
        for j in range(n):
            d = row[j] - mean
            spread += d * d
        scale = np.float32(1.0) / np.sqrt(spread * inv_n + eps32)
        for j in range(n):
            dst[j] = (row[j] - mean) * scale * gamma[j] + beta[j]


@numba.njit(**_JIT_OPTIONS)
def shift_by_max(x: Array, out: Array) -> None:  # pragma: no cover - compiled
    """``out[r] = x[r] - max(x[r])`` for each row of ``x (R, N)``."""
    for r in range(x.shape[0]):
        row = x[r]
        top = row[0]
        for j in range(1, row.shape[0]):
            top = max(top, row[j])
        dst = out[r]
        for j in range(row.shape[0]):
            dst[j] = row[j] - top


@numba.njit(**_JIT_OPTIONS)
def normalise_rows(e: Array) -> None:  # pragma: no cover - compiled
    """``e[r] /= sum(e[r])`` for each row of ``e (R, N)``."""
    for r in range(e.shape[0]):
        row = e[r]
        total = np.float32(0.0)
        for j in range(row.shape[0]):
            total += row[j]
        inv = np.float32(1.0) / total
        for j in range(row.shape[0]):
            row[j] *= inv


# no fastmath in the max kernels: their NaN test must stay (MaxPool skips NaN like fmax)


@numba.njit(**_EXACT_OPTIONS)
def max_taps(acc: Array, first: Array, second: Array) -> None:  # pragma: no cover
    """``acc = fmax(first, second)``, NaN skipped, over one long run: branch-free, so it
    vectorises (``first`` must not be ``acc``: LLVM's overlap check would fail and run
    the scalar loop)."""
    for i in range(acc.shape[0]):
        a = first[i]
        b = second[i]
        acc[i] = a if (a > b) | (b != b) else b


@numba.njit(**_EXACT_OPTIONS)
def max_into(acc: Array, other: Array) -> None:  # pragma: no cover - compiled
    """``acc = fmax(acc, other)``, as :func:`max_taps`."""
    for i in range(acc.shape[0]):
        a = acc[i]
        b = other[i]
        acc[i] = a if (a > b) | (b != b) else b


@numba.njit(**_EXACT_OPTIONS)
def max_pool(
    x: Array, out: Array, kh: int, kw: int, sy: int, sx: int, dy: int, dx: int, top: int,
    left: int,
) -> None:  # pragma: no cover - compiled
    """2-D max pooling. Each channel's -inf-padded plane is split as it is copied into
    ``sy * sx`` phase planes (row ``i * sy + q``, column ``j * sx + p`` into phase
    ``(q, p)`` at ``(i, j)``), all of pitch ``out_w + reach``: every tap of every window
    is then at a fixed offset in a phase plane, so the window reduces along rows and
    then along columns in a few long loops over whole flattened planes."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    reach_x, reach_y = ((kw - 1) * dx) // sx, ((kh - 1) * dy) // sy
    pitch = out_w + reach_x
    rows = out_h + reach_y  # rows of each phase plane the windows read
    span = rows * pitch
    phases = np.full((sy, sx, (rows + 1) * pitch), -np.inf, np.float32)
    across = np.empty((sy, span), np.float32)  # per row phase: max along each row
    acc = np.empty(out_h * pitch, np.float32)
    in_rows = min(height, rows * sy - top)
    in_cols = min(width, pitch * sx - left)
    for n in range(n_img):
        for c in range(channels):
            for iy in range(in_rows):
                py = top + iy
                src = x[n, c, iy]
                base = (py // sy) * pitch
                if sx == 1:
                    dst = phases[py % sy, 0, base + left :]
                    for k in range(in_cols):
                        dst[k] = src[k]
                    continue
                if sx == 2:  # both column phases in one loop over column pairs
                    odd = left & 1
                    one = phases[py % sy, odd, base + (left >> 1) :]
                    two = phases[py % sy, 1 - odd, base + ((left + 1) >> 1) :]
                    for k in range(in_cols >> 1):
                        one[k] = src[2 * k]
                        two[k] = src[2 * k + 1]
                    if in_cols & 1:
                        one[in_cols >> 1] = src[in_cols - 1]
                    continue
                for p in range(sx):
                    first = (p - left % sx + sx) % sx  # the first input column in phase p
                    dst = phases[py % sy, p, base + (left + first) // sx :]
                    for k in range((in_cols - first + sx - 1) // sx):
                        dst[k] = src[first + k * sx]
            for q in range(sy):
                row_max = across[q]
                if kw == 1:
                    row_max[:] = phases[q, 0, :span]
                for kx in range(1, kw):
                    shift = kx * dx
                    tap = phases[q, shift % sx, shift // sx :]
                    if kx == 1:
                        max_taps(row_max, phases[q, 0], tap)
                    else:
                        max_into(row_max, tap)
            if kh == 1:
                acc[:] = across[0, : out_h * pitch]
            for ky in range(1, kh):
                shift = ky * dy
                tap = across[shift % sy, (shift // sy) * pitch :]
                if ky == 1:
                    max_taps(acc, across[0], tap)
                else:
                    max_into(acc, tap)
            for oy in range(out_h):
                src = acc[oy * pitch :]
                dst = out[n, c, oy]
                for ox in range(out_w):
                    dst[ox] = src[ox]


@numba.njit(**_JIT_OPTIONS)
def combine4(
    a: Array, b: Array, c: Array, d: Array, sa: float, sb: float, sc: float, sd: float,
    out: Array,
) -> None:  # pragma: no cover - compiled
    """``out = sa * a + sb * b + sc * c + sd * d`` over one long run (signs are +1 or -1)."""
    for i in range(out.shape[0]):
        out[i] = sa * a[i] + sb * b[i] + sc * c[i] + sd * d[i]


_BT_ROWS = np.array([[0, 2], [1, 2], [2, 1], [1, 3]], np.int64)
_BT_SIGNS = np.array([[1, -1], [1, 1], [1, -1], [1, -1]], np.float32)
"""``B^T`` of F(2x2, 3x3): row ``a`` is ``sign0 * d[rows0] + sign1 * d[rows1]``."""


@numba.njit(**_JIT_OPTIONS)
def winograd_input_flat(
    x: Array, v: Array, th: int, tw: int, top: int, left: int
) -> None:  # pragma: no cover - compiled
    """``V = B^T d B`` for every 4x4 tile, as :func:`winograd_input` computes it, for wide
    planes: each channel's zero-padded plane is split by row and column phase as it is
    copied, into four planes of pitch ``tw + 1``, where input ``d[r, s]`` of every tile sits
    at a fixed offset. Each of the 16 outputs (four terms of ``d``) is then one long loop
    over all tiles: ``v[16, C, th * (tw + 1)]``, whose last column of each tile row is
    unused."""
    channels, height, width = x.shape
    pitch = tw + 1
    phases = np.zeros((4, (th + 2) * pitch), np.float32)
    rows = min(height, 2 * th + 2 - top)
    cols = min(width, 2 * pitch - left)
    for c in range(channels):
        for iy in range(rows):
            py = top + iy
            base = (py >> 1) * pitch
            even, odd = phases[2 * (py & 1)], phases[2 * (py & 1) + 1]
            src = x[c, iy]
            if left & 1:  # input columns 0, 2, ... land in odd plane columns
                first, second = odd[base + (left >> 1) :], even[base + (left >> 1) + 1 :]
            else:
                first, second = even[base + (left >> 1) :], odd[base + (left >> 1) :]
            for k in range(cols >> 1):
                first[k] = src[2 * k]
                second[k] = src[2 * k + 1]
            if cols & 1:
                first[cols >> 1] = src[cols - 1]
        for a in range(4):
            ra0, ra1 = _BT_ROWS[a, 0], _BT_ROWS[a, 1]
            sa0, sa1 = _BT_SIGNS[a, 0], _BT_SIGNS[a, 1]
            for b in range(4):
                sb0, sb1 = _BT_ROWS[b, 0], _BT_ROWS[b, 1]
                gb0, gb1 = _BT_SIGNS[b, 0], _BT_SIGNS[b, 1]
                combine4(
                    phases[2 * (ra0 & 1) + (sb0 & 1), (ra0 >> 1) * pitch + (sb0 >> 1) :],
                    phases[2 * (ra0 & 1) + (sb1 & 1), (ra0 >> 1) * pitch + (sb1 >> 1) :],
                    phases[2 * (ra1 & 1) + (sb0 & 1), (ra1 >> 1) * pitch + (sb0 >> 1) :],
                    phases[2 * (ra1 & 1) + (sb1 & 1), (ra1 >> 1) * pitch + (sb1 >> 1) :],
                    sa0 * gb0, sa0 * gb1, sa1 * gb0, sa1 * gb1, v[4 * a + b, c],
                )


@numba.njit(**_JIT_OPTIONS)
def sum9(
    p0: Array, p1: Array, p2: Array, p3: Array, p4: Array, p5: Array, p6: Array, p7: Array,
    p8: Array, signs: Array, out: Array,
) -> None:  # pragma: no cover - compiled
    """``out = sum_k signs[k] * p_k`` over one long run."""
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = (
        signs[0], signs[1], signs[2], signs[3], signs[4], signs[5], signs[6], signs[7], signs[8]
    )
    for i in range(out.shape[0]):
        out[i] = (
            s0 * p0[i] + s1 * p1[i] + s2 * p2[i] + s3 * p3[i] + s4 * p4[i] + s5 * p5[i]
            + s6 * p6[i] + s7 * p7[i] + s8 * p8[i]
        )


@numba.njit(**_JIT_OPTIONS)
def interleave_row(
    even: Array, odd: Array, bias: float, add: Array, has_res: bool, lo: float, hi: float,
    row: Array,
) -> None:  # pragma: no cover - compiled
    """``row[2k] = clip(even[k] + bias (+ add[2k]))``, ``row[2k + 1]`` likewise from ``odd``."""
    n = row.shape[0]
    half = n >> 1
    if has_res:
        for k in range(half):
            row[2 * k] = min(max(even[k] + bias + add[2 * k], lo), hi)
            row[2 * k + 1] = min(max(odd[k] + bias + add[2 * k + 1], lo), hi)
    else:
        for k in range(half):
            row[2 * k] = min(max(even[k] + bias, lo), hi)
            row[2 * k + 1] = min(max(odd[k] + bias, lo), hi)
    if n & 1:
        v = even[half] + bias
        if has_res:
            v += add[n - 1]
        row[n - 1] = min(max(v, lo), hi)


_AT_ROWS = np.array([[0, 1, 2], [1, 2, 3]], np.int64)
_AT_SIGNS = np.array([[1, 1, 1], [1, -1, -1]], np.float32)
"""``A^T`` of F(2x2, 3x3): output row ``r`` sums ``signs[r] * m[rows[r]]``."""


@numba.njit(**_JIT_OPTIONS)
def winograd_output_flat(
    prod: Array, bias: Array, lo: float, hi: float, out: Array, th: int, tw: int,
    res: Array, has_res: bool, pitch: int,
) -> None:  # pragma: no cover - compiled
    """:func:`winograd_output` for wide planes: each of a tile's four outputs (row and column
    phase) is one 9-term loop over all tiles of ``prod[16, M, th * pitch]``; the phases are
    then interleaved into ``out`` rows with the bias, ``res`` and the clip."""
    out_h = out.shape[1]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    phases = np.empty((4, th * pitch), np.float32)
    signs = np.empty(9, np.float32)
    for m in range(prod.shape[1]):
        for ry in range(2):
            for rx in range(2):
                for a in range(3):
                    for b in range(3):
                        signs[3 * a + b] = _AT_SIGNS[ry, a] * _AT_SIGNS[rx, b]
                j0, j1, j2 = _AT_ROWS[ry, 0], _AT_ROWS[ry, 1], _AT_ROWS[ry, 2]
                k0, k1, k2 = _AT_ROWS[rx, 0], _AT_ROWS[rx, 1], _AT_ROWS[rx, 2]
                sum9(
                    prod[4 * j0 + k0, m], prod[4 * j0 + k1, m], prod[4 * j0 + k2, m],
                    prod[4 * j1 + k0, m], prod[4 * j1 + k1, m], prod[4 * j1 + k2, m],
                    prod[4 * j2 + k0, m], prod[4 * j2 + k1, m], prod[4 * j2 + k2, m],
                    signs, phases[2 * ry + rx],
                )
        bm = np.float32(bias[m])
        for oy in range(out_h):
            base = (oy >> 1) * pitch
            ry = oy & 1
            add = res[m, oy] if has_res else out[m, oy]  # ``add`` is not read without res
            interleave_row(
                phases[2 * ry, base:], phases[2 * ry + 1, base:], bm, add, has_res, lo32, hi32,
                out[m, oy],
            )


@numba.njit(**_JIT_OPTIONS)
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


@numba.njit(**_JIT_OPTIONS)
def winograd_output(
    prod: Array, bias: Array, lo: float, hi: float, out: Array, th: int, tw: int,
    res: Array, has_res: bool, pitch: int,
) -> None:  # pragma: no cover - compiled
    """``Y = A^T m A`` for every tile of ``prod[16, M, th * tw]``, plus bias (and
    ``res[M, OH, OW]`` when ``has_res``), clipped to ``[lo, hi]``, into ``out[M, OH, OW]``."""
    out_h, out_w = out.shape[1], out.shape[2]
    lo32, hi32 = np.float32(lo), np.float32(hi)  # float64 bounds would widen every store
    cols = np.empty((8, tw), np.float32)
    for m in range(prod.shape[1]):
        bm = bias[m]
        for ty in range(th):
            base = ty * pitch
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
                add = res[m, oy] if has_res else row  # ``row`` is never read then
                b = 4 * r
                for tx in range(tw):
                    ox = 2 * tx
                    v = bm + cols[b, tx] + cols[b + 1, tx] + cols[b + 2, tx]
                    if has_res:
                        v += add[ox]
                    row[ox] = min(max(v, lo32), hi32)
                    if ox + 1 < out_w:
                        v = bm + cols[b + 1, tx] - cols[b + 2, tx] - cols[b + 3, tx]
                        if has_res:
                            v += add[ox + 1]
                        row[ox + 1] = min(max(v, lo32), hi32)


_COEFS = np.array(_QC32[::-1], np.float32)  # highest power first, for Horner
_T_SCALE = np.float32(2.0 / (1.0 - _C_T0))
_T_SHIFT = np.float32((_C_T0 + 1.0) / (1.0 - _C_T0))


@numba.njit(**_JIT_OPTIONS)
def gelu_parts(x: Array, poly: Array, neg_sq: Array) -> None:  # pragma: no cover - compiled
    """``Q(s)`` of the erfc fit, and ``-z^2``, for ``z = x / sqrt(2)``."""
    for i in range(x.size):
        a = abs(x[i]) * np.float32(0.70710677)
        s = _T_SCALE / (np.float32(1.0) + a * np.float32(0.5)) - _T_SHIFT
        acc = np.float32(0.0)
        for k in range(_COEFS.size):  # a constant trip count: unrolled, then vectorised
            acc = acc * s + _COEFS[k]
        poly[i] = acc
        neg_sq[i] = -a * a


@numba.njit(**_JIT_OPTIONS)
def gelu_finish(x: Array, poly: Array, expo: Array, out: Array) -> None:  # pragma: no cover
    """``x / 2 * (1 + erf(z))``, with ``erfc(|z|) = Q(s) exp(-z^2)``."""
    for i in range(x.size):
        v = x[i]
        tail = poly[i] * expo[i]
        out[i] = np.float32(0.5) * v * (np.float32(2.0) - tail if v > 0 else tail)


def gelu(x: Array, out: Array) -> None:
    """Gelu of a flat float32 ``x`` into ``out``."""
    poly = np.empty_like(x)
    expo = np.empty_like(x)
    gelu_parts(x, poly, expo)
    np.exp(expo, out=expo)  # numpy's vectorised exp: the compiled loops then vectorise too
    gelu_finish(x, poly, expo, out)
