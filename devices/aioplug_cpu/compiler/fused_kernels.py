"""Kernels of the fused ops the passes create, in the ``aioplug.cpu`` domain.

``Fused<Op>`` runs the standard kernel of ``<Op>`` and applies an activation in place on its
fresh output (one pass over memory fewer), or, where the base kernel offers
``fuse_activation`` (the compiled conv kernels), lets it apply the activation as it stores.
``MatMulBias``, ``ConvAdd`` (a residual sum), ``LayerNorm`` and ``Gelu`` replace the
multi-node patterns exporters emit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ..kernels import Kernel, KernelNode, kernel, lookup
from ..kernels.math._erf import gelu_erf
from ..kernels.math._jit import layer_norm_last, warm_up_for
from ..kernels.math.conv import conv_kernel

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
