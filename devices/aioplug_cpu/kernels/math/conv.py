"""Conv (1-D/2-D/3-D, grouped, depthwise, dilated, strided, every auto_pad mode).

``Y[n, m] = B[m] + sum_{c, k} W[m, c, k] * Xpad[n, g(m) * C/G + c, o * s + k * d]``.
The general path builds the im2col matrix of all groups with one strided view and one copy,
then runs one batched BLAS product ``W[g] @ cols[n, g]``; a 1x1, stride-1, unpadded conv
skips the copy. Depthwise convs (one input channel per group) accumulate one scaled,
contiguous run per kernel tap instead (see ``FlatTaps``), or, in 2-D float32 with numba
installed, run the compiled kernel of ``_jit``. Constant weights are arranged once,
in the factory; float16 computes in float32. With numba installed, a 3x3 stride-1 float32
conv runs as Winograd F(2x2, 3x3) (``_jit.winograd3x3``) instead of im2col.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._registry import Kernel, KernelNode
from . import _jit
from ._common import Array, as_kernel, compute_dtype, const_input, int_attr, versions
from ._jit import PreActivation
from ._spatial import (
    FlatTaps,
    Geometry,
    Window,
    crop_flat,
    flat_taps,
    pad_input,
    split_phases,
    window_attrs,
)

__all__ = ["ConvCore", "conv_kernel"]

COMPILED_KINDS = {
    "dw_jit": "depthwise_jit", "winograd": "winograd", "pw_jit": "pointwise_jit",
    "direct": "direct_jit",
}
"""Prepared weight kinds that run a compiled kernel, with their profiling exec types."""

_Layout = tuple[Geometry, FlatTaps]

DIRECT_CHANNELS = 4
"""Convs of one group with at most this many input channels (a network's stem) run directly
on the compiled tiles at one thread per stream: an im2col matrix would cost as much to
write as its product (MobileNetV2's stem 0.62 -> 0.29 ms, ResNet-18's 7x7 4.2 -> 2.4 ms)."""


class ConvCore:
    """A prepared convolution without bias: ``run(x, w)`` gives ``(N, M, *out)``.

    ``compute`` fixes the arithmetic dtype (the integer convolutions use float64, exact for
    their products); None computes in ``compute_dtype`` of the input.
    """

    __slots__ = ("_geoms", "_node", "_out_channels", "_prepared", "_window", "compute", "group")

    def __init__(
        self, node: KernelNode, weights: Array | None, compute: np.dtype[Any] | None = None
    ) -> None:
        self._node = node
        self.group = int_attr(node, "group", 1)
        self.compute = compute
        kernel = None if weights is None else weights.shape[2:]
        self._window: Window | None = window_attrs(node, None, kernel)
        self._geoms: dict[tuple[int, ...], _Layout] = {}
        self._prepared: tuple[str, Any] | None = None
        self._out_channels = 0 if weights is None else weights.shape[0]
        if weights is not None:
            dtype = compute if compute is not None else compute_dtype(weights.dtype)
            self._prepared = self._prepare(weights.astype(dtype, copy=False), constant=True)

    def _prepare(self, w: Array, constant: bool = False) -> tuple[str, Any]:
        """Arranges weights: ``("dw", (K, C, mult, 1))``, ``("gemm", (G, Mg, Cg*K))``,
        ``("dw_jit", (C, kh, kw))`` for the compiled 2-D depthwise kernel, or ``("pw_jit",
        tiles)`` for the compiled 1x1 kernel (``constant`` weights only: packed once)."""
        m, cg = w.shape[0], w.shape[1]
        g = self.group
        window = self._window
        # the tiles run on one thread: with more per stream, BLAS uses them
        one_thread = int(self._node.extra.get("threads", 1)) <= 1
        if constant and one_thread and self._pointwise(w) and _jit.available():
            _jit.warm_up("pointwise")
            return "pw_jit", _jit.pointwise_weights(w.reshape(m, cg))
        compiled = w.ndim == 4 and w.dtype == np.float32 and _jit.available()
        if constant and one_thread and compiled and self._direct(w):
            _jit.warm_up("direct")
            return "direct", _jit.pointwise_weights(w.reshape(m, -1))
        if compiled and cg == 1 and g > 1 and m == g:
            _jit.warm_up("depthwise")
            return "dw_jit", _jit.prepare_weights(w)
        if (
            compiled and g == 1 and w.shape[2:] == (3, 3) and window is not None
            and window.strides == (1, 1) and window.dilations == (1, 1)
        ):
            _jit.warm_up("winograd", "pointwise")  # its products on small planes: the tiles
            return "winograd", _jit.winograd_weights(w, self._static_output())
        if cg == 1 and g > 1 and m % g == 0:
            mult = m // g
            taps = w.reshape(g, mult, -1).transpose(2, 0, 1)
            return "dw", np.ascontiguousarray(taps).reshape(taps.shape + (1,))
        return "gemm", np.ascontiguousarray(w.reshape(g, m // g, -1))

    def _pointwise(self, w: Array) -> bool:
        """A float32 1x1 conv of one group with unit strides and no padding: its output is
        one matrix product of its input."""
        window = self._window
        if w.dtype != np.float32 or self.group != 1 or window is None:
            return False
        if any(k != 1 for k in w.shape[2:]) or any(s != 1 for s in window.strides):
            return False
        return window.auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID") or not any(window.pads)

    def _direct(self, w: Array) -> bool:
        """A 2-D conv of one group over few input channels, without dilation, with equal
        strides of 1 or 2: the compiled direct kernel's case."""
        window = self._window
        return (
            window is not None and self.group == 1 and w.shape[1] <= DIRECT_CHANNELS
            and window.dilations == (1, 1) and window.strides in ((1, 1), (2, 2))
        )

    def _static_output(self) -> tuple[int, int] | None:
        """The output plane's size when the model fixes it (2-D), else None."""
        shapes = self._node.output_shapes
        shape = shapes[0] if shapes else None
        if shape is None or len(shape) != 4:
            return None
        height, width = shape[2], shape[3]
        if isinstance(height, int) and isinstance(width, int):
            return height, width
        return None

    def _geometry(self, x: Array, w_shape: tuple[int, ...]) -> tuple[Window, _Layout]:
        window = self._window
        if window is None or len(window.kernel) != x.ndim - 2:
            window = window_attrs(self._node, x.ndim - 2, w_shape[2:])
            assert window is not None
            self._window = window
        layout = self._geoms.get(x.shape)
        if layout is None:
            geom = window.geometry(x.shape[2:])
            layout = (geom, flat_taps(window, geom, x.shape[2:]))
            self._geoms[x.shape] = layout
        return window, layout

    def run_fused(
        self, x: Array, bias: Array, low: float, high: float, pre: PreActivation | None = None,
        residual: Array | None = None,
    ) -> Array:
        """The conv with the bias (and ``residual``, of the output's shape) added and the
        result clipped to ``[low, high]`` (constant float32 weights, compiled kernels
        available): Winograd does it as it stores, a GEMM conv in one compiled pass over its
        output, the depthwise kernel as it stores when there is no residual. ``pre`` is
        applied to the input first: by the depthwise kernel as it reads, by numpy for the
        others."""
        assert self._prepared is not None and self._window is not None
        kind, warr = self._prepared
        if kind == "pw_jit":
            if pre is not None:
                x = apply_pre_activation(x, pre)
            return _jit.pointwise_conv(x, warr, self._out_channels, bias, low, high, residual)
        window, (geom, _) = self._geometry(x, (0, 0) + self._window.kernel)
        if kind == "dw_jit":
            if residual is None:
                return _jit.depthwise2d(x, warr, bias, window, geom, low, high, pre)
            y = _jit.depthwise2d(x, warr, bias, window, geom, pre=pre)
            y += residual
            np.clip(y, low, high, out=y)
            return y
        if pre is not None:
            x = apply_pre_activation(x, pre)
        if kind == "winograd":
            return _jit.winograd3x3(x, warr, bias, geom, low, high, residual)
        if kind == "direct":
            return _jit.direct_conv(
                x, warr, self._out_channels, window.kernel, window.strides[0], geom, bias, low,
                high, residual,
            )
        assert kind == "gemm"
        y = _gemm_conv(x, warr, window, geom, self.group)
        _jit.bias_clip(y, bias, low, high, residual)
        return y

    def _run_compiled(
        self, prepared: tuple[str, Any], x: Array, bias: Array, low: float, high: float
    ) -> Array:
        kind, warr = prepared
        if kind == "pw_jit":
            return _jit.pointwise_conv(x, warr, self._out_channels, bias, low, high)
        window, (geom, _) = self._geometry(x, (0, 0) + (self._window.kernel if self._window else ()))
        if kind == "winograd":
            return _jit.winograd3x3(x, warr, bias, geom, low, high)
        if kind == "direct":
            return _jit.direct_conv(
                x, warr, self._out_channels, window.kernel, window.strides[0], geom, bias, low,
                high,
            )
        return _jit.depthwise2d(x, warr, bias, window, geom, low, high)

    def run(self, x: Array, w: Array | None) -> Array:
        """Convolves ``x`` (already in the compute dtype) with the prepared or given weights."""
        prepared = self._prepared
        if prepared is None:
            assert w is not None
            prepared = self._prepare(w.astype(x.dtype, copy=False))
            w_shape = w.shape
        else:
            w_shape = (self._out_channels, 0) + (self._window.kernel if self._window else ())
        window, (geom, ft) = self._geometry(x, w_shape)
        kind, warr = prepared
        if kind in COMPILED_KINDS:
            zeros = np.zeros(w_shape[0], np.float32)
            return self._run_compiled(prepared, x, zeros, -np.inf, np.inf)
        if kind == "dw":
            return _depthwise(x, warr, ft)
        return _gemm_conv(x, warr, window, geom, self.group)


def _gemm_conv(x: Array, wmat: Array, window: Window, geom: Geometry, group: int) -> Array:
    n, c = x.shape[:2]
    g, mg, ck = wmat.shape
    cg = c // group
    out = geom.out
    npix = math.prod(out)  # np.prod's wrapper costs ~5 us per conv
    simple = (
        all(k == 1 for k in window.kernel)
        and all(s == 1 for s in window.strides)
        and not any(geom.begin)
        and not any(geom.end)
    )
    if simple:
        cols = x.reshape(n, g, cg, npix)
    else:
        xp = pad_input(x, geom.begin, geom.end)
        sn, sc = xp.strides[:2]
        ss = xp.strides[2:]
        shape = (n, g, cg, *window.kernel, *out)
        strides = (
            sn,
            cg * sc,
            sc,
            *(st * d for st, d in zip(ss, window.dilations)),
            *(st * s for st, s in zip(ss, window.strides)),
        )
        cols = as_strided(xp, shape, strides, writeable=False).reshape(n, g, ck, npix)
    y: Array = np.matmul(wmat, cols)  # (n, g, mg, npix): one BLAS GEMM per image and group
    return y.reshape((n, g * mg, *out))


def _depthwise(x: Array, taps: Array, ft: FlatTaps) -> Array:
    """One input channel per group: ``y[n, c, j] = sum_k taps[k, c, j] * xpad[n, c, o*s + k*d]``.

    Each tap is one multiply-add over a contiguous run of the flattened, phase-split padded
    input (see ``FlatTaps``), with a reused product buffer.
    """
    n, c = x.shape[:2]
    mult = taps.shape[2]
    phases = split_phases(x, ft)
    length = ft.length
    size = math.prod(ft.grid)
    acc = np.zeros((n, c, mult, size), dtype=x.dtype)
    run = acc[..., :length]
    if mult == 1:
        run = run[:, :, 0]
        prod = np.empty((n, c, length), dtype=x.dtype)
        for idx, (phase, off) in enumerate(ft.taps):
            np.multiply(phases[phase][:, :, off : off + length], taps[idx, :, 0], out=prod)
            run += prod
    else:
        prod = np.empty((n, c, mult, length), dtype=x.dtype)
        for idx, (phase, off) in enumerate(ft.taps):
            np.multiply(phases[phase][:, :, None, off : off + length], taps[idx], out=prod)
            run += prod
    return crop_flat(acc.reshape(n, c * mult, size), ft)


def _bias_shape(rank: int) -> tuple[int, ...]:
    return (-1,) + (1,) * rank


def apply_pre_activation(x: Array, pre: PreActivation) -> Array:
    """``clip(x + pre.bias[c], pre.low, pre.high)`` on a new array."""
    y: Array = x + pre.bias.astype(x.dtype, copy=False).reshape(_bias_shape(x.ndim - 2))
    np.clip(y, pre.low, pre.high, out=y)
    return y


def _pre_activation(node: KernelNode) -> PreActivation | None:
    """The producer's bias and Relu/Clip a fusion moved onto this conv's input (the
    ``input_activation*`` attributes and a constant fourth input), or None."""
    name = node.attr("input_activation")
    if not name:
        return None
    bounds = clip_bounds(
        str(name), float(node.attr("input_activation_alpha", 0.0)),
        float(node.attr("input_activation_beta", 0.0)),
    )
    bias = const_input(node, 3)
    if bounds is None or bias is None:
        raise ValueError(f"input_activation {name!r} needs Relu or Clip and a constant bias")
    return PreActivation(np.ascontiguousarray(bias.reshape(-1), np.float32), *bounds)


@versions("Conv", 1, 11, 22)
def _conv(node: KernelNode) -> Kernel:
    return conv_kernel(node)


def conv_kernel(node: KernelNode, residual: bool = False) -> Kernel:
    """The kernel of a Conv node; with ``residual``, of a conv whose fourth input (of the
    output's shape) is added to its output, as ``Conv -> Add`` fuses into."""
    w_const = const_input(node, 1)
    b_const = const_input(node, 2)
    core = ConvCore(node, w_const)
    pre = None if residual else _pre_activation(node)
    has_bias = node.num_inputs > 2
    bias_c = None
    if b_const is not None and w_const is not None:
        bias_c = b_const.astype(compute_dtype(w_const.dtype)).reshape(
            _bias_shape(w_const.ndim - 2)
        )
    kind, warr = core._prepared if core._prepared is not None else ("", None)
    exec_type = {"dw": "depthwise", **COMPILED_KINDS}.get(kind, "gemm_im2col")
    # a bias (and a following Relu/Clip) costs one compiled pass over a GEMM conv's output
    fused_gemm = (
        kind == "gemm" and bias_c is not None and warr is not None
        and warr.dtype == np.float32 and _jit.available()
    )
    if (kind in COMPILED_KINDS or fused_gemm) and w_const is not None and (
        bias_c is not None or not has_bias
    ):
        if fused_gemm:
            _jit.warm_up("epilogue")
        bias = np.zeros(w_const.shape[0], np.float32) if bias_c is None else bias_c.reshape(-1)
        return _compiled_kernel(
            core, np.ascontiguousarray(bias, np.float32), exec_type, pre=pre, residual=residual
        )

    def run(
        x: Array, w: Array | None = None, b: Array | None = None, extra: Array | None = None
    ) -> tuple[Array]:
        dtype = x.dtype
        xc = x.astype(compute_dtype(dtype), copy=False)
        if pre is not None:
            xc = apply_pre_activation(xc, pre)
        y = core.run(xc, None if w_const is not None else w)
        if has_bias:
            if bias_c is not None:
                y += bias_c
            elif b is not None:
                y += b.astype(y.dtype, copy=False).reshape(_bias_shape(y.ndim - 2))
        if residual:
            assert extra is not None
            y += extra
        return (y if y.dtype == dtype else y.astype(dtype),)

    return as_kernel(run, f"{exec_type}+add" if residual else exec_type)


def clip_bounds(activation: str, alpha: float, beta: float) -> tuple[float, float] | None:
    """The ``[low, high]`` that Relu or Clip(alpha, beta) keeps; None for other activations."""
    if activation == "Relu":
        return 0.0, float(np.inf)
    if activation == "Clip":
        return alpha, beta
    return None


def _compiled_kernel(
    core: ConvCore, bias: Array, exec_type: str, low: float = -np.inf, high: float = np.inf,
    activation: str = "", pre: PreActivation | None = None, residual: bool = False,
) -> Kernel:
    """A conv on a compiled kernel with its bias (and with ``residual``, the fourth input
    added); ``fuse_activation`` folds a following Relu or Clip into the same pass (the
    fused-op kernels ask for it)."""

    def run(
        x: Array, w: Array | None = None, b: Array | None = None, extra: Array | None = None
    ) -> tuple[Array]:
        dtype = x.dtype
        z = extra if residual else None
        y = core.run_fused(x.astype(np.float32, copy=False), bias, low, high, pre, z)
        return (y if y.dtype == dtype else y.astype(dtype),)

    suffix = "+add" if residual else ""
    suffix += f"+{activation.lower()}" if activation else ""
    kernel = as_kernel(run, f"{exec_type}{suffix}")

    def fuse_activation(name: str, alpha: float, beta: float) -> Kernel | None:
        bounds = clip_bounds(name, alpha, beta)
        if bounds is None or activation:
            return None
        lo, hi = bounds
        return _compiled_kernel(
            core, bias, exec_type, max(low, lo), min(high, hi), name, pre, residual
        )

    setattr(kernel, "fuse_activation", fuse_activation)  # noqa: B010
    return kernel
