"""A register-tiled matrix product for 1x1 convolutions, Winograd's products and direct
convolutions over few input channels, its micro-kernels written in LLVM IR through numba;
imported only when numba is installed (by ``_jit_kernels``).

``y[n, m, p] = clip(bias[m] + sum_k W[n, m, k] * x[n, k, p] (+ z[n, m, p]), lo, hi)`` with
one weight matrix for all images ``n`` (a 1x1 conv) or one each (Winograd's 16 products).
The weights are packed once, when the model compiles, in tiles of six output channels,
``(B, ceil(M / 6), K, 6)``, with zero rows past ``M``. A tile kernel (:func:`_tile`) keeps
six output channels by 16 pixels in twelve 8-float vector registers for the whole sum over
``K``, started from the bias: per ``k`` two vector loads of ``x``, six broadcast weights,
twelve fused multiply-adds, and a prefetch of the weights well ahead (on small planes they
come from far caches). The input is read where it lies (no packed copy, unlike a BLAS call,
but on 7x7 planes), and a residual and the clip are applied to the registers before the one
store: the output is written once, as it is, into a padded plane, or split into its even and
odd pixels for a stride-2 conv that reads it. The last 1-4 pixels of a row run on
:func:`_column`, which holds a tile's six weights in one vector and broadcasts the pixels.
LLVM picks the instructions for the machine (AVX2 FMA where there is one, pairs of 4-float
vectors elsewhere).

:func:`direct` runs a conv over few input channels (a network's stem) on the same tiles: each
image split once into its stride x stride phase planes, where every tap of a run of outputs
is a contiguous run of one plane, read at a per-``k`` offset (:func:`_tile_indexed`).

It runs on one thread, so the CPU device uses it for models with one thread per stream
(with more, BLAS uses them), where it beats OpenBLAS's ``sgemm`` (through ``np.matmul``) plus
the epilogue pass that needs; on products over few columns, where OpenBLAS is slow, it wins
at any thread count: Winograd's 512x512 by 16 tiles take 2.94 ms against 6.15 ms.
``tests/cpu/test_jit_pointwise.py`` and ``tests/cpu/test_jit_direct.py`` check it against
the definition.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ._common import Array

TILE_ROWS = 6
"""Output channels per tile (the packed weights' last axis)."""
TILE_COLS = 16
"""Pixels per tile: two 8-float vectors."""
_VECTORS = TILE_COLS // 8
PACK_PIXELS = 64
"""On fewer pixels than this (7x7 planes), inputs are copied strip by strip first."""
PREFETCH = 384
"""How far ahead (in floats, 64 steps of ``k``) a tile prefetches its weights: on small planes
the weights come from far caches or memory, and the hardware's prefetcher runs too short
ahead of the stream (MobileNetV2's 7x7 layers with cold weights 5-10% faster)."""
COLUMN_PIXELS = 4
"""A last partial strip of at most this many pixels runs on :func:`_column` (weights in vector
registers, pixels broadcast) instead of a zero-padded 8-pixel tile: 7x7 planes' one extra
pixel cost them a sixth of their time."""
_UNROLL = 4
SMALL_PIXELS = 256
"""Up to this many pixels per image, each weight tile is read once and the whole input stays
in cache; above it, each 16-pixel strip of the input stays in cache for all weight tiles."""


def pack_weights(w: Array) -> Array:
    """``(B, M, K)`` weights (one matrix per image of the product, or one for all, ``B = 1``)
    as ``(B, ceil(M / 6), K, 6)`` float32 tiles, zero past ``M``."""
    b, m, k = w.shape
    tiles = -(-m // TILE_ROWS)
    padded = np.zeros((b, tiles * TILE_ROWS, k), np.float32)
    padded[:, :m] = w
    return np.ascontiguousarray(padded.reshape(b, tiles, TILE_ROWS, k).transpose(0, 1, 3, 2))


def _data(context: Any, builder: ir.IRBuilder, arrty: Any, arr: Any) -> Any:
    return cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data


_V8 = ir.VectorType(ir.FloatType(), 8)
_V8P = _V8.as_pointer()
_I32 = ir.IntType(32)


def _splat(builder: ir.IRBuilder, value: Any) -> Any:
    """``value`` in all eight lanes."""
    vec = builder.insert_element(ir.Constant(_V8, ir.Undefined), value, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, 8), [0] * 8)
    return builder.shuffle_vector(vec, ir.Constant(_V8, ir.Undefined), mask)


def _fma(builder: ir.IRBuilder) -> Any:
    """LLVM's fused multiply-add of 8-float vectors."""
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_V8, [_V8, _V8, _V8]), "llvm.fma.v8f32"
    )


def _clip(builder: ir.IRBuilder, v: Any, low: Any, high: Any) -> Any:
    """``v`` (a vector or a scalar) clipped to ``[low, high]`` by compare-and-select, which
    keeps NaN, as Relu and Clip do."""
    v = builder.select(builder.fcmp_ordered("<", v, low), low, v)
    return builder.select(builder.fcmp_ordered(">", v, high), high, v)


@numba.njit(inline="always", cache=True)
def _variant(rows: int, vectors: int, residual: bool) -> int:
    """The key of a tile variant: ``rows`` output channels (1-6), ``vectors`` 8-pixel
    vectors (1-2), with or without the residual sum."""
    return ((rows - 1) * 2 + vectors - 1) * 2 + int(residual)


def _tile_codegen(indexed: bool) -> Any:
    """The code of :func:`_tile` (``indexed`` False: input row ``k`` at ``x_off + k * ldx``)
    and of :func:`_tile_indexed` (True: at ``x_off + offsets[k]``, the ``ldx`` argument an
    int64 array of offsets)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        (w, w_off, x, x_off, y, y_off, z, k_len, ldx, ldy, bias, b_off, lo, hi, variant) = args
        arg_types = signature.args
        v8p, i32, i64 = _V8P, _I32, k_len.type
        zero = ir.Constant(_V8, [0.0] * 8)

        def splat(value: Any) -> Any:
            return _splat(builder, value)

        def at(ptr: Any, offset: Any) -> Any:
            return builder.gep(ptr, [offset])

        def const(value: int) -> Any:
            return ir.Constant(i64, value)

        def load(ptr: Any, offset: Any) -> Any:
            return builder.load(builder.bitcast(at(ptr, offset), v8p), align=4)

        fma = _fma(builder)
        i8p = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )
        read, data = ir.Constant(i32, 0), ir.Constant(i32, 1)  # for a read, into data caches
        wp = at(_data(context, builder, arg_types[0], w), w_off)
        xp = at(_data(context, builder, arg_types[2], x), x_off)
        yp = at(_data(context, builder, arg_types[4], y), y_off)
        zp = at(_data(context, builder, arg_types[6], z), y_off)
        bp = at(_data(context, builder, arg_types[10], bias), b_off)
        offsets = _data(context, builder, arg_types[8], ldx) if indexed else None
        low, high = splat(lo), splat(hi)
        # one set of accumulators (LLVM keeps them in registers), shared by the variants
        accs = [
            [cgutils.alloca_once_value(builder, zero) for _ in range(_VECTORS)]
            for _ in range(TILE_ROWS)
        ]

        evens = ir.Constant(ir.VectorType(i32, 8), list(range(0, 16, 2)))
        odds = ir.Constant(ir.VectorType(i32, 8), list(range(1, 16, 2)))

        def clip(v: Any) -> Any:
            return _clip(builder, v, low, high)

        def store(rows: int, vectors: int, residual: bool) -> None:
            for i in range(rows):
                row = builder.mul(const(i), ldy)
                for j in range(vectors):
                    offset = builder.add(row, const(8 * j))
                    v = builder.load(accs[i][j])
                    if residual:
                        v = builder.fadd(v, load(zp, offset))
                    builder.store(clip(v), builder.bitcast(at(yp, offset), v8p), align=4)

        def store_split(rows: int) -> None:
            # each row's 16 pixels as its 8 even ones at y and its 8 odd ones at z
            for i in range(rows):
                row = builder.mul(const(i), ldy)
                first, second = (clip(builder.load(accs[i][j])) for j in range(2))
                builder.store(builder.shuffle_vector(first, second, evens),
                              builder.bitcast(at(yp, row), v8p), align=4)
                builder.store(builder.shuffle_vector(first, second, odds),
                              builder.bitcast(at(zp, row), v8p), align=4)

        def emit(rows: int, vectors: int, residual: bool, split: bool = False) -> None:
            for i in range(rows):  # the sums start from the bias
                shift = splat(builder.load(at(bp, const(i))))
                for j in range(vectors):
                    builder.store(shift, accs[i][j])
            with cgutils.for_range(builder, k_len) as loop:
                k = loop.index
                if indexed:
                    xrow = at(xp, builder.load(at(offsets, k)))
                else:
                    xrow = at(xp, builder.mul(k, ldx))
                xs = [load(xrow, const(8 * j)) for j in range(vectors)]
                wrow = at(wp, builder.mul(k, const(TILE_ROWS)))
                builder.call(prefetch, [builder.bitcast(at(wrow, const(PREFETCH)), i8p),
                                        read, ir.Constant(i32, 3), data])
                for i in range(rows):
                    wv = splat(builder.load(at(wrow, const(i))))
                    for j in range(vectors):
                        acc = builder.load(accs[i][j])
                        builder.store(builder.call(fma, [wv, xs[j], acc]), accs[i][j])
            if split:
                store_split(rows)
            else:
                store(rows, vectors, residual)

        done = builder.append_basic_block("tile.done")
        switch = builder.switch(variant, done)
        for rows in range(1, TILE_ROWS + 1):
            for vectors in range(1, _VECTORS + 1):
                for residual in (False, True):
                    block = builder.append_basic_block(f"tile.{rows}x{vectors}.{residual:d}")
                    switch.add_case(const(_variant.py_func(rows, vectors, residual)), block)
                    with builder.goto_block(block):
                        emit(rows, vectors, residual)
                        builder.branch(done)
            block = builder.append_basic_block(f"tile.{rows}.split")
            switch.add_case(const(_split_variant.py_func(rows)), block)
            with builder.goto_block(block):
                emit(rows, _VECTORS, False, split=True)
                builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return codegen


@numba.njit(inline="always", cache=True)
def _split_variant(rows: int) -> int:
    """The key of a splitting tile variant: ``rows`` output channels (1-6) by 16 pixels,
    stored deinterleaved, even pixels at ``y`` and odd ones at ``z`` (see :func:`_tile`)."""
    return 24 + rows - 1


@intrinsic
def _tile(  # type: ignore[no-untyped-def]
    typingctx, w, w_off, x, x_off, y, y_off, z, k_len, ldx, ldy, bias, b_off, lo, hi, variant
):
    """``y[y_off + i * ldy + j] = clip(bias[b_off + i] + sum_k w[w_off + k * 6 + i] *
    x[x_off + k * ldx + j] (+ z[y_off + i * ldy + j]), lo, hi)`` for ``i < rows`` and
    ``j < 8 * vectors`` of ``variant`` (see :func:`_variant`): one switch over the variants,
    each a loop over ``k`` with its accumulators in vector registers."""
    sig = types.void(
        w, w_off, x, x_off, y, y_off, z, k_len, ldx, ldy, bias, b_off, lo, hi, variant
    )
    return sig, _tile_codegen(indexed=False)


@intrinsic
def _tile_indexed(  # type: ignore[no-untyped-def]
    typingctx, w, w_off, x, x_off, y, y_off, z, k_len, offsets, ldy, bias, b_off, lo, hi,
    variant,
):
    """:func:`_tile` with input row ``k`` at ``x_off + offsets[k]``: a direct convolution's
    taps, each a run of the (phase-split) input."""
    sig = types.void(
        w, w_off, x, x_off, y, y_off, z, k_len, offsets, ldy, bias, b_off, lo, hi, variant
    )
    return sig, _tile_codegen(indexed=True)


@intrinsic
def _column(  # type: ignore[no-untyped-def]
    typingctx, w, w_off, x, x_off, y, y_off, z, k_len, ldx, ldy, bias, b_off, lo, hi, rows,
    cols, residual,
):
    """:func:`_tile`'s sum and epilogue for ``i < rows`` and ``j < cols`` (1 to
    :data:`COLUMN_PIXELS`), the other way round: the six weights of each ``k`` in one vector
    (a masked load), each pixel broadcast, ``k`` unrolled over four sets of accumulators to
    hide the multiply-adds' latency; each sum is stored alone, with the bias, the residual
    (when ``residual``) and the compare-and-select clip."""
    sig = types.void(
        w, w_off, x, x_off, y, y_off, z, k_len, ldx, ldy, bias, b_off, lo, hi, rows, cols,
        residual,
    )

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        (w, w_off, x, x_off, y, y_off, z, k_len, ldx, ldy, bias, b_off, lo, hi, rows, cols,
         residual) = args
        arg_types = signature.args
        v8, v8p, i32, i64 = _V8, _V8P, _I32, k_len.type
        zero = ir.Constant(v8, [0.0] * 8)
        lanes = ir.Constant(
            ir.VectorType(ir.IntType(1), 8), [1] * TILE_ROWS + [0] * (8 - TILE_ROWS)
        )
        fma = _fma(builder)
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v8, [v8p, i32, lanes.type, v8]),
            "llvm.masked.load.v8f32.p0v8f32",
        )

        def const(value: int) -> Any:
            return ir.Constant(i64, value)

        def at(ptr: Any, offset: Any) -> Any:
            return builder.gep(ptr, [offset])

        wp = at(_data(context, builder, arg_types[0], w), w_off)
        xp = at(_data(context, builder, arg_types[2], x), x_off)
        yp = at(_data(context, builder, arg_types[4], y), y_off)
        zp = at(_data(context, builder, arg_types[6], z), y_off)
        bp = at(_data(context, builder, arg_types[10], bias), b_off)
        with_residual = context.cast(builder, residual, arg_types[16], types.boolean)
        accs = [
            [cgutils.alloca_once_value(builder, zero) for _ in range(COLUMN_PIXELS)]
            for _ in range(_UNROLL)
        ]

        def step(k: Any, u: int, n_cols: int) -> None:
            wv = builder.call(masked_load, [
                builder.bitcast(at(wp, builder.mul(k, const(TILE_ROWS))), v8p),
                ir.Constant(i32, 4), lanes, zero,
            ])
            xrow = at(xp, builder.mul(k, ldx))
            for j in range(n_cols):
                xs = _splat(builder, builder.load(at(xrow, const(j))))
                acc = builder.load(accs[u][j])
                builder.store(builder.call(fma, [wv, xs, acc]), accs[u][j])

        def store(total: Any, i: int, j: int) -> None:
            offset = builder.add(builder.mul(const(i), ldy), const(j))
            value = cgutils.alloca_once_value(builder, builder.fadd(
                builder.extract_element(total, ir.Constant(i32, i)),
                builder.load(at(bp, const(i))),
            ))
            with builder.if_then(with_residual):
                builder.store(
                    builder.fadd(builder.load(value), builder.load(at(zp, offset))), value
                )
            builder.store(_clip(builder, builder.load(value), lo, hi), at(yp, offset))

        def emit(n_cols: int) -> None:
            for u in range(_UNROLL):
                for j in range(n_cols):
                    builder.store(zero, accs[u][j])
            quads = builder.udiv(k_len, const(_UNROLL))
            with cgutils.for_range(builder, quads) as loop:
                base = builder.mul(loop.index, const(_UNROLL))
                for u in range(_UNROLL):
                    step(builder.add(base, const(u)), u, n_cols)
            start = builder.mul(quads, const(_UNROLL))
            with cgutils.for_range(builder, builder.sub(k_len, start)) as loop:
                step(builder.add(start, loop.index), 0, n_cols)
            for j in range(n_cols):
                total = builder.load(accs[0][j])
                for u in range(1, _UNROLL):
                    total = builder.fadd(total, builder.load(accs[u][j]))
                for i in range(TILE_ROWS):
                    with builder.if_then(builder.icmp_signed(">", rows, const(i))):
                        store(total, i, j)

        done = builder.append_basic_block("column.done")
        switch = builder.switch(cols, done)
        for n_cols in range(1, COLUMN_PIXELS + 1):
            block = builder.append_basic_block(f"column.{n_cols}")
            switch.add_case(const(n_cols), block)
            with builder.goto_block(block):
                emit(n_cols)
                builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


_JIT_OPTIONS: dict[str, Any] = {
    "nogil": True, "fastmath": True, "boundscheck": False, "cache": True, "error_model": "numpy",
}


@numba.njit(**_JIT_OPTIONS)
def pointwise(
    x: Array, w: Array, bias: Array, lo: float, hi: float, z: Array, residual: bool,
    y: Array,
) -> None:  # pragma: no cover - compiled
    """``y[n] = clip(bias + W[n] @ x[n] (+ z[n]), lo, hi)`` for C-contiguous float32 ``x``
    ``(N, K, P)``, ``y`` and ``z`` ``(N, M, P)``, and ``W`` from :func:`pack_weights`, one
    matrix for all images or one each (see :func:`pointwise_into`)."""
    pointwise_into(x, w, bias, lo, hi, z.reshape(z.size), residual, y.reshape(y.size), 0,
                   x.shape[2], y.shape[1], False)


@numba.njit(**_JIT_OPTIONS)
def pointwise_into(
    x: Array, w: Array, bias: Array, lo: float, hi: float, zf: Array, residual: bool,
    yf: Array, y_base: int, pitch: int, m: int, split: bool,
) -> None:  # pragma: no cover - compiled
    """:func:`pointwise` into the flat ``yf``: output channel ``c`` of image ``n`` at
    ``y_base + (n * m + c) * pitch`` (``pitch`` at least the pixel count: room between
    the channels, as a padded plane has), the residual ``zf`` laid out the same. With
    ``split`` (no residual; a pixel count that is a multiple of 16), each channel is stored
    as its even pixels from there and its odd pixels at the same place in ``zf``: a
    stride-2 conv's column phases.

    Full 16-pixel strips run in place or, on 7x7 planes, from contiguous copies: there every
    weight tile walks all ``K`` rows of every strip, rows 49 floats apart that straddle cache
    lines, which the caches follow badly in place and well in order (7x7 layers 10-25%
    faster; on 14x14 planes the copy costs more than it saves: MobileNetV2's 576-channel
    layers 0.237 -> 0.214 ms without it). A last strip of at most :data:`COLUMN_PIXELS`
    pixels runs on :func:`_column`; a longer one on zero-padded copies, one vector wide when
    it has at most 8 pixels."""
    n_img, k_len, pixels = x.shape
    tiles = w.shape[1]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    full = pixels // TILE_COLS * TILE_COLS
    strips = full // TILE_COLS
    rest = pixels - full
    rest_vectors = 1 if rest <= 8 else 2
    strip = k_len * TILE_COLS
    pack = pixels < PACK_PIXELS
    packed = np.empty(strips * strip if pack else 0, np.float32)
    strip_x = np.zeros(strip, np.float32)
    strip_y = np.empty(TILE_ROWS * TILE_COLS, np.float32)
    strip_z = np.zeros(TILE_ROWS * TILE_COLS, np.float32)
    xf = x.reshape(x.size)
    w_step = k_len * TILE_ROWS
    for n in range(n_img):
        wn = w[n] if w.shape[0] > 1 else w[0]
        xb = n * k_len * pixels
        yb = y_base + n * m * pitch
        if pack:
            for s in range(strips):
                for k in range(k_len):
                    src = xb + k * pixels + s * TILE_COLS
                    dst = s * strip + k * TILE_COLS
                    for j in range(TILE_COLS):
                        packed[dst + j] = xf[src + j]
        # the input (or its strip) read at x_src + p_step * strip index, rows ldx apart
        x_src, p_step, ldx = (packed, strip, TILE_COLS) if pack else (xf, TILE_COLS, pixels)
        x0 = 0 if pack else xb
        y_step = TILE_COLS // 2 if split else TILE_COLS  # a strip's place in y
        # small planes: each weight tile over every strip; large: each strip for every tile
        by_tile = pixels <= SMALL_PIXELS
        outer, inner = (tiles, strips) if by_tile else (strips, tiles)
        for a in range(outer):
            for b in range(inner):
                t, q = (a, b) if by_tile else (b, a)
                rows = min(TILE_ROWS, m - t * TILE_ROWS)
                variant = _split_variant(rows) if split else _variant(rows, _VECTORS, residual)
                _tile(wn, t * w_step, x_src, x0 + q * p_step, yf,
                      yb + t * TILE_ROWS * pitch + q * y_step, zf, k_len, ldx, pitch, bias,
                      t * TILE_ROWS, lo32, hi32, variant)
        if 0 < rest <= COLUMN_PIXELS:
            # the last pixels' rows copied together: every tile reads all K of them
            for k in range(k_len):
                for j in range(rest):
                    strip_x[k * rest + j] = xf[xb + k * pixels + full + j]
            for t in range(tiles):
                _column(wn, t * w_step, strip_x, 0, yf, yb + t * TILE_ROWS * pitch + full,
                        zf, k_len, rest, pitch, bias, t * TILE_ROWS, lo32, hi32,
                        min(TILE_ROWS, m - t * TILE_ROWS), rest, residual)
        elif rest:
            for k in range(k_len):
                for j in range(rest):
                    strip_x[k * TILE_COLS + j] = xf[xb + k * pixels + full + j]
            for t in range(tiles):
                rows = min(TILE_ROWS, m - t * TILE_ROWS)
                y0 = yb + t * TILE_ROWS * pitch + full
                if residual:
                    for i in range(rows):
                        for j in range(rest):
                            strip_z[i * TILE_COLS + j] = zf[y0 + i * pitch + j]
                _tile(wn, t * w_step, strip_x, 0, strip_y, 0, strip_z, k_len, TILE_COLS,
                      TILE_COLS, bias, t * TILE_ROWS, lo32, hi32,
                      _variant(rows, rest_vectors, residual))
                for i in range(rows):
                    for j in range(rest):
                        yf[y0 + i * pitch + j] = strip_y[i * TILE_COLS + j]


@numba.njit(**_JIT_OPTIONS)
def split_input(
    x: Array, stride: int, top: int, left: int, pitch: int, phase_rows: int, phases: Array
) -> None:  # pragma: no cover - compiled
    """Copies one image ``x`` ``(C, H, W)``, zero-padded by ``top`` and ``left``, into the
    zeroed ``phases`` ``(C, stride, stride, phase_rows, pitch)``: padded element ``(r, q)``
    of channel ``c`` goes to ``phases[c, r % stride, q % stride, r // stride, q // stride]``
    (rows and columns past the phase planes are not needed and are left out)."""
    channels, height, width = x.shape
    for c in range(channels):
        for iy in range(height):
            r = iy + top
            row = r // stride
            if row >= phase_rows:
                break
            for px in range(stride):
                first = (px - left) % stride  # the first column of this phase
                q0 = (first + left) // stride
                count = min((width - first + stride - 1) // stride, pitch - TILE_COLS - q0)
                dst = phases[c, r % stride, px, row, q0:]
                src = x[c, iy, first:]
                for j in range(count):
                    dst[j] = src[j * stride]


@numba.njit(inline="always", cache=True)
def _phase_rows(out_h: int, kh: int, stride: int) -> int:
    """Rows of each phase plane that ``out_h`` output rows of a ``kh``-tall kernel read."""
    return ((out_h - 1) * stride + kh + stride - 1) // stride


@numba.njit(**_JIT_OPTIONS)
def direct_layout(
    channels: int, kh: int, kw: int, stride: int, out_h: int, out_w: int
) -> tuple[Array, Array, int]:  # pragma: no cover - compiled
    """The zeroed phase planes of one image for :func:`direct_tiles` (flat: ``(C, stride,
    stride, rows, pitch)``), the offset of each tap ``(c, ky, kx)`` in them, and their
    ``pitch``."""
    phase_rows = _phase_rows(out_h, kh, stride)
    phase_cols = _phase_rows(out_w, kw, stride)  # the same count across
    pitch = phase_cols + TILE_COLS  # slack for the last strip's reads past the row
    phases = np.zeros(channels * stride * stride * (phase_rows + 1) * pitch, np.float32)
    offsets = np.empty(channels * kh * kw, np.int64)
    for c in range(channels):
        for ky in range(kh):
            for kx in range(kw):
                phase = (c * stride + ky % stride) * stride + kx % stride
                offsets[(c * kh + ky) * kw + kx] = (
                    phase * (phase_rows + 1) * pitch + ky // stride * pitch + kx // stride
                )
    return phases, offsets, pitch


@numba.njit(**_JIT_OPTIONS)
def direct_split(
    x: Array, kh: int, stride: int, top: int, left: int, out_h: int, pitch: int,
    phases: Array,
) -> None:  # pragma: no cover - compiled
    """One image ``x`` ``(C, H, W)`` into the phase planes of :func:`direct_layout`."""
    phase_rows = _phase_rows(out_h, kh, stride)
    planes = phases.reshape((x.shape[0], stride, stride, phase_rows + 1, pitch))
    split_input(x, stride, top, left, pitch, phase_rows, planes)


@numba.njit(**_JIT_OPTIONS)
def direct_tiles(
    phases: Array, offsets: Array, pitch: int, w: Array, bias: Array, lo: float, hi: float,
    zf: Array, residual: bool, yf: Array, y_base: int, y_pitch: int, m: int, out_h: int,
    out_w: int,
) -> None:  # pragma: no cover - compiled
    """The direct conv's ``m`` output channels of one image (``w``'s tiles) from its phase
    planes: channel ``c`` row ``oy`` at ``yf[y_base + c * y_pitch + oy * out_w:]`` (and its
    residual at the same place in ``zf``)."""
    tiles, k_len = w.shape[1], w.shape[2]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    full = out_w // TILE_COLS * TILE_COLS
    rest = out_w - full
    rest_vectors = 1 if rest <= 8 else 2
    strip_y = np.empty(TILE_ROWS * TILE_COLS, np.float32)
    strip_z = np.zeros(TILE_ROWS * TILE_COLS, np.float32)
    w_step = k_len * TILE_ROWS
    for oy in range(out_h):
        x0 = oy * pitch
        for t in range(tiles):
            rows = min(TILE_ROWS, m - t * TILE_ROWS)
            y0 = y_base + t * TILE_ROWS * y_pitch + oy * out_w
            variant = _variant(rows, _VECTORS, residual)
            for q in range(0, full, TILE_COLS):
                _tile_indexed(w[0], t * w_step, phases, x0 + q, yf, y0 + q, zf, k_len,
                              offsets, y_pitch, bias, t * TILE_ROWS, lo32, hi32, variant)
            if rest:
                if residual:
                    for i in range(rows):
                        for j in range(rest):
                            strip_z[i * TILE_COLS + j] = zf[y0 + i * y_pitch + full + j]
                _tile_indexed(w[0], t * w_step, phases, x0 + full, strip_y, 0, strip_z, k_len,
                              offsets, TILE_COLS, bias, t * TILE_ROWS, lo32, hi32,
                              _variant(rows, rest_vectors, residual))
                for i in range(rows):
                    for j in range(rest):
                        yf[y0 + i * y_pitch + full + j] = strip_y[i * TILE_COLS + j]


@numba.njit(**_JIT_OPTIONS)
def direct(
    x: Array, w: Array, bias: Array, lo: float, hi: float, z: Array, residual: bool,
    y: Array, kh: int, kw: int, stride: int, top: int, left: int,
) -> None:  # pragma: no cover - compiled
    """A direct 2-D convolution (one group, no dilation) on the tiles: ``y[n, m] = clip(bias[m]
    + sum_{c, ky, kx} W[m, c, ky, kx] * xpad[n, c, oy * s + ky, ox * s + kx] (+ z[n, m]), lo,
    hi)`` for float32 ``x`` ``(N, C, H, W)``, ``y`` and ``z`` ``(N, M, OH, OW)``, and ``W``
    from :func:`pack_weights` of the ``(M, C * kh * kw)`` weights.

    Each image is split once into ``stride`` x ``stride`` phase planes of its zero-padded
    self (:func:`split_input`), where every tap ``(c, ky, kx)`` of a run of outputs along a
    row reads a contiguous run at a fixed offset: a tile is then the 1x1 product's tile with
    its ``k``-th input row at ``offsets[k]`` (:func:`_tile_indexed`), and no im2col matrix
    is written. Meant for few input channels (a network's stem), where im2col's copy costs
    as much as its product."""
    n_img, channels = x.shape[0], x.shape[1]
    m, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    phases, offsets, pitch = direct_layout(channels, kh, kw, stride, out_h, out_w)
    yf = y.reshape(y.size)
    zf = z.reshape(z.size)
    out_plane = out_h * out_w
    for n in range(n_img):
        if n:
            phases[:] = 0.0
        direct_split(x[n], kh, stride, top, left, out_h, pitch, phases)
        direct_tiles(phases, offsets, pitch, w, bias, lo, hi, zf, residual, yf,
                     n * m * out_plane, out_plane, m, out_h, out_w)
