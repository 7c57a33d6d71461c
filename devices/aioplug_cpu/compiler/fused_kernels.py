"""Kernels of the fused ops the passes create, in the ``aioplug.cpu`` domain.

``Fused<Op>`` runs the standard kernel of ``<Op>`` and applies an activation in place on its
fresh output (one pass over memory fewer), or, where the base kernel offers
``fuse_activation`` (the compiled conv kernels), lets it apply the activation as it stores.
``MatMulBias``, ``ConvAdd`` (a residual sum), ``ExpandDepthwise`` (an inverted-residual
block's expand and depthwise convs), ``LayerNorm`` and ``Gelu`` replace the multi-node
patterns exporters emit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ..kernels import Kernel, KernelNode, kernel, lookup
from ..kernels.math._common import as_kernel
from ..kernels.math._erf import gelu_erf
from ..kernels.math import _jit
from ..kernels.math._jit import layer_norm_last, warm_up_for
from ..kernels.math._spatial import window_attrs
from ..kernels.math.conv import DIRECT_CHANNELS, clip_bounds, conv_kernel

__all__ = ["ACTIVATIONS", "CPU_DOMAIN", "FUSABLE_BASES"]

CPU_DOMAIN = "aioplug.cpu"
FUSABLE_BASES = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "MatMulBias", "ConvAdd")
_OWN_BASES = ("MatMulBias", "ConvAdd")
"""Bases that are themselves ``aioplug.cpu`` ops."""
ACTIVATION_KEYS = ("activation", "activation_alpha", "activation_beta")


def _relu(y: Any, alpha: float, beta: float) -> None:
    # on large float arrays numpy's clip is about 3x faster than maximum (NaN stays NaN); on
    # small ones its Python wrapper (~3 us) costs more than the work
    if y.dtype.kind == "f" and y.size > 4096:
        np.clip(y, 0, np.inf, out=y)
    else:
        np.maximum(y, 0, out=y)


def _clip(y: Any, alpha: float, beta: float) -> None:
    np.clip(y, alpha, beta, out=y)


def _leaky_relu(y: Any, alpha: float, beta: float) -> None:
    np.multiply(y, alpha, out=y, where=y < 0)


def _sigmoid(y: Any, alpha: float, beta: float) -> None:
    with np.errstate(over="ignore"):
        np.negative(y, out=y)
        np.exp(y, out=y)
        y += 1
        np.reciprocal(y, out=y)


def _tanh(y: Any, alpha: float, beta: float) -> None:
    np.tanh(y, out=y)


def _hard_sigmoid(y: Any, alpha: float, beta: float) -> None:
    y *= alpha
    y += beta
    np.clip(y, 0, 1, out=y)


def _hard_swish(y: Any, alpha: float, beta: float) -> None:
    gate = np.clip(y * (1.0 / 6.0) + 0.5, 0, 1)
    y *= gate


ACTIVATIONS: dict[str, Callable[[Any, float, float], None]] = {
    "Relu": _relu,
    "Clip": _clip,
    "LeakyRelu": _leaky_relu,
    "Sigmoid": _sigmoid,
    "Tanh": _tanh,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish,
}


def _base_node(node: KernelNode, op_type: str, domain: str = "") -> KernelNode:
    opsets = dict(node.extra.get("opsets") or {})
    attrs = {k: v for k, v in node.attributes.items() if k not in ACTIVATION_KEYS}
    return replace(
        node, op_type=op_type, domain=domain, opset=opsets.get(domain, 17), attributes=attrs
    )


class _Fused:
    __slots__ = ("_base", "_act", "_alpha", "_beta", "exec_type")

    def __init__(self, base: Kernel, activation: str, alpha: float, beta: float) -> None:
        self._base = base
        self._act = ACTIVATIONS[activation]
        self._alpha = alpha
        self._beta = beta
        self.exec_type = f"{base.exec_type}+{activation.lower()}"

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        (y,) = self._base(*inputs)[:1]
        self._act(y, self._alpha, self._beta)
        return (y,)


def _fused_factory(base_op: str) -> Callable[[KernelNode], Kernel]:
    def factory(node: KernelNode) -> Kernel:
        domain = CPU_DOMAIN if base_op in _OWN_BASES else ""
        base_node = _base_node(node, base_op, domain)
        base = lookup(domain, base_op, base_node.opset)(base_node)
        activation = str(node.attr("activation"))
        alpha = float(node.attr("activation_alpha", 0.0))
        beta = float(node.attr("activation_beta", 0.0))
        fuse = getattr(base, "fuse_activation", None)  # a kernel that applies it as it stores
        fused: Kernel | None = fuse(activation, alpha, beta) if fuse is not None else None
        return fused if fused is not None else _Fused(base, activation, alpha, beta)

    factory.__name__ = f"fused_{base_op.lower()}"
    return factory


for _op in FUSABLE_BASES:
    kernel(f"Fused{_op}", 1, CPU_DOMAIN)(_fused_factory(_op))


@kernel("MatMulBias", 1, CPU_DOMAIN)
class MatMulBias:
    """``x @ w + b`` with constant ``w`` (K, N) and ``b`` (N,)."""

    exec_type = "matmul_bias"

    def __init__(self, node: KernelNode) -> None:
        self._w = np.ascontiguousarray(node.const_inputs[1])
        self._b = node.const_inputs[2]

    def __call__(self, x: Any, w: Any = None, b: Any = None) -> tuple[Any, ...]:
        y = np.matmul(x, self._w)
        y += self._b
        return (y,)


@kernel("ConvAdd", 1, CPU_DOMAIN)
def conv_add(node: KernelNode) -> Kernel:
    """``Conv(x, w, b) + z``: a residual connection's sum, added as the conv stores its
    output (``z`` has the output's shape)."""
    return conv_kernel(node, residual=True)


EXPAND_PREFIX = "expand_"
"""``ExpandDepthwise`` keeps its expand conv's attributes under this prefix (none: a 1x1)."""


@kernel("ExpandDepthwise", 1, CPU_DOMAIN)
def expand_depthwise(node: KernelNode) -> Kernel:
    """``FusedConv(depthwise)(Conv(x, w_expand), w, b, b_expand)``: the expand conv's output
    (a 1x1 conv, or a stem over few channels with its ``expand_*`` attributes), with
    ``b_expand`` and the ``input_activation`` applied, convolved by the 3x3 depthwise conv
    with ``b`` and its ``activation``. On the compiled kernels at one thread per stream, one
    kernel computes and convolves a group of expanded channels at a time
    (``_jit.expand_depthwise``); otherwise, or for a geometry it does not cover, the two
    convs' own kernels run one after the other."""
    consts = node.const_inputs + (None,) * (5 - len(node.const_inputs))
    dtypes = node.input_dtypes + (None,) * (5 - len(node.input_dtypes))
    shapes = node.input_shapes + (None,) * (5 - len(node.input_shapes))
    opsets = dict(node.extra.get("opsets") or {})
    n = len(EXPAND_PREFIX)
    expand_attrs = {k[n:]: v for k, v in node.attributes.items() if k.startswith(EXPAND_PREFIX)}
    dw_attrs = {k: v for k, v in node.attributes.items() if not k.startswith(EXPAND_PREFIX)}
    expand_node = replace(
        node, op_type="Conv", domain="", opset=opsets.get("", 17), attributes=expand_attrs,
        num_inputs=2, num_outputs=1, name=f"{node.name}/expand", const_inputs=consts[:2],
        input_dtypes=dtypes[:2], input_shapes=shapes[:2], output_dtypes=dtypes[:1],
        output_shapes=(None,),
    )
    dw_node = replace(
        node, op_type="FusedConv", num_inputs=4, attributes=dw_attrs,
        const_inputs=(None, *consts[2:5]), input_dtypes=(dtypes[0], *dtypes[2:5]),
        input_shapes=(None, *shapes[2:5]),
    )
    w_expand, w_dw, b_dw, b_expand = consts[1:5]
    outer = clip_bounds(
        str(node.attr("activation", "")), float(node.attr("activation_alpha", 0.0)),
        float(node.attr("activation_beta", 0.0)),
    ) if node.attr("activation") else (-np.inf, np.inf)
    inner = clip_bounds(
        str(node.attr("input_activation", "")), float(node.attr("input_activation_alpha", 0.0)),
        float(node.attr("input_activation_beta", 0.0)),
    )
    window = window_attrs(dw_node, 2, (3, 3))
    e_window = None if w_expand is None else window_attrs(expand_node, 2, w_expand.shape[2:])
    fast = (
        _jit.available() and int(node.extra.get("threads", 1)) <= 1 and outer is not None
        and inner is not None and window is not None and e_window is not None
        and all(v is not None for v in (w_expand, w_dw, b_dw, b_expand))
    )
    pointwise = fast and e_window is not None and (
        e_window.kernel == (1, 1) and e_window.strides == (1, 1) and not any(e_window.pads)
        and e_window.auto_pad in ("NOTSET", "VALID")
    )
    direct = (
        fast and not pointwise and e_window is not None and w_expand is not None
        and w_expand.shape[1] <= DIRECT_CHANNELS and e_window.dilations == (1, 1)
        and e_window.strides in ((1, 1), (2, 2))
    )
    fast = pointwise or direct

    def planes(x_shape: tuple[int, ...]) -> tuple[Any, Any]:
        """The expand conv's geometry (None for a 1x1) and the depthwise conv's."""
        assert window is not None and e_window is not None
        e_geom = e_window.geometry(x_shape[2:]) if direct else None
        return e_geom, window.geometry(e_geom.out if e_geom is not None else x_shape[2:])

    shape = shapes[0]
    static = shape is not None and len(shape) == 4 and all(isinstance(d, int) for d in shape)
    if fast and static:
        assert shape is not None and window is not None
        e_geom, geometry = planes(tuple(shape))  # a static plane: decide now
        height, width = e_geom.out if e_geom is not None else shape[2:]
        fast = _jit.depthwise_planes_cover(height, width, geometry, window.strides[0])
    # the two convs' own kernels, for what the fused one does not cover; made only when a
    # plane may need them (their weights arranged and their compiled kernels loaded then)
    chain: list[Kernel] = []

    def make_chain() -> list[Kernel]:
        if not chain:  # two streams may both make it: either pair serves
            chain[:] = (conv_kernel(expand_node), lookup(CPU_DOMAIN, "FusedConv", 1)(dw_node))
        return chain

    if not (fast and static):
        make_chain()

    def chained(x: Any, w_e: Any, w: Any, b: Any, b_e: Any) -> tuple[Any, ...]:
        expand, depthwise = make_chain()
        (y,) = expand(x, w_e)[:1]
        return depthwise(y, w, b, b_e)

    if not fast:
        return as_kernel(chained, f"{chain[0].exec_type}|{chain[1].exec_type}")
    assert window is not None and e_window is not None and outer is not None
    assert inner is not None and w_expand is not None and w_dw is not None
    assert b_dw is not None and b_expand is not None
    _jit.warm_up("expand")
    channels = w_dw.shape[0]
    tiles = _jit.pointwise_weights(w_expand.reshape(channels, -1).astype(np.float32))
    taps = _jit.prepare_weights(w_dw.astype(np.float32))
    bias = np.ascontiguousarray(b_dw.reshape(-1), np.float32)
    e_bias = np.ascontiguousarray(b_expand.reshape(-1), np.float32)
    stride = window.strides[0]
    kernel_hw = (int(w_expand.shape[2]), int(w_expand.shape[3]))
    layouts: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def run(x: Any, w_e: Any, w: Any, b: Any, b_e: Any) -> tuple[Any, ...]:
        if x.dtype == np.float32 and x.ndim == 4:
            layout = layouts.get(x.shape)
            if layout is None:
                layout = layouts[x.shape] = planes(x.shape)
            e_geom, geometry = layout
            stem = None if e_geom is None else (kernel_hw, e_window.strides[0], e_geom)
            y = _jit.expand_depthwise(
                x, tiles, e_bias, inner[0], inner[1], taps, bias, geometry, stride, outer[0],
                outer[1], stem,
            )
            if y is not None:
                return (y,)
        return chained(x, w_e, w, b, b_e)

    activation = str(node.attr("activation", "")).lower()
    kind = "direct_depthwise_jit" if direct else "expand_depthwise_jit"
    return as_kernel(run, kind + (f"+{activation}" if activation else ""))


@kernel("LayerNorm", 1, CPU_DOMAIN)
class LayerNorm:
    """Normalises over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``."""

    exec_type = "layer_norm"

    def __init__(self, node: KernelNode) -> None:
        self._eps = float(node.attr("epsilon", 1e-5))
        warm_up_for(node)
        self._gamma = node.const_inputs[1]
        self._beta = node.const_inputs[2]

    def __call__(self, x: Any, gamma: Any = None, beta: Any = None) -> tuple[Any, ...]:
        g = self._gamma if self._gamma is not None else gamma
        b = self._beta if self._beta is not None else beta
        compiled = layer_norm_last(x, np.asarray(g), np.asarray(b), self._eps)
        if compiled is not None:  # float32 with numba: one kernel, two passes per row
            return (compiled,)
        mean = x.mean(axis=-1, keepdims=True)
        y = x - mean
        var = np.einsum("...i,...i->...", y, y)[..., None]
        var *= 1.0 / x.shape[-1]
        var += self._eps
        np.sqrt(var, out=var)
        y /= var
        y *= g
        y += b
        return (y.astype(x.dtype, copy=False),)


@kernel("Gelu", 1, CPU_DOMAIN)
class Gelu:
    """``x * 0.5 * (1 + erf(x / sqrt(2)))``."""

    exec_type = "gelu_erf"

    def __init__(self, node: KernelNode) -> None:
        warm_up_for(node)

    def __call__(self, x: Any) -> tuple[Any, ...]:
        return (gelu_erf(x),)
