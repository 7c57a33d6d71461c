"""Activation kernels: Relu LeakyRelu PRelu Elu Selu Celu Sigmoid HardSigmoid HardSwish Tanh
Softplus Softsign Gelu Mish ThresholdedRelu Swish Shrink, and Dropout.

Each keeps its input's dtype; scalar attributes act as numpy "weak" scalars, so float16 and
float32 inputs are never promoted. The exponential branches evaluate ``expm1`` on
``min(x, 0)`` so large positive inputs cannot overflow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import (
    Array,
    as_kernel,
    const_input,
    ensure_array,
    float_attr,
    int_attr,
    unary_kernel,
    versions,
)
from . import _jit
from ._erf import gelu_erf

__all__: list[str] = []


def _relu_values(x: Array) -> Array:
    """``max(x, 0)``; for floats through numpy's clip, about 3x faster than maximum (NaN stays
    NaN; -0.0 stays -0.0)."""
    if x.dtype.kind == "f":
        return np.clip(x, 0, np.inf)
    return np.maximum(x, 0)


@versions("Relu", 1, 6, 13, 14)
def _relu(node: KernelNode) -> Kernel:
    return unary_kernel(_relu_values)


@versions("LeakyRelu", 1, 6, 16)
def _leaky_relu(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 0.01)
    if 0.0 <= alpha <= 1.0:
        return unary_kernel(lambda x: np.maximum(x, x * alpha))
    return unary_kernel(lambda x: np.maximum(x, 0) + np.minimum(x, 0) * alpha)


@versions("PRelu", 1, 6, 7, 9, 16)
def _prelu(node: KernelNode) -> Kernel:
    legacy = node.opset < 7

    def run(x: Array, slope: Array) -> tuple[Array]:
        if legacy and slope.ndim == 1 and x.ndim > 2 and slope.shape[0] == x.shape[1] > 1:
            slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))  # channel-wise slope
        return (ensure_array(np.maximum(x, 0) + np.minimum(x, 0) * slope, x.dtype),)

    return as_kernel(run)


def _elu_like(x: Array, alpha: float, scale: float = 1.0, inv: float = 1.0) -> Array:
    """``x`` for ``x > 0`` else ``alpha * (exp(x * inv) - 1)``, all times ``scale``; one of the
    two terms of ``max(x, 0) + alpha * expm1(min(x, 0) * inv)`` is always zero."""
    neg = np.minimum(x, 0)
    if inv != 1.0:
        neg = neg * inv
    y = np.expm1(neg) * alpha + np.maximum(x, 0)
    return y * scale if scale != 1.0 else y


@versions("Elu", 1, 6, 22)
def _elu(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 1.0)
    return unary_kernel(lambda x: _elu_like(x, alpha))


@versions("Selu", 1, 6, 22)
def _selu(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 1.67326319217681884765625)
    gamma = float_attr(node, "gamma", 1.05070102214813232421875)
    return unary_kernel(lambda x: _elu_like(x, alpha, gamma))


@versions("Celu", 12, 28)
def _celu(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 1.0)
    inv = 1.0 / alpha
    return unary_kernel(lambda x: _elu_like(x, alpha, 1.0, inv))


def _sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``; exp overflowing to inf correctly gives 0."""
    e = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    e += 1
    np.reciprocal(e, out=e)
    return e


@versions("Sigmoid", 1, 6, 13)
def _sigmoid_k(node: KernelNode) -> Kernel:
    return unary_kernel(lambda x: _sigmoid(x))


def _hard_sigmoid(x: Array, alpha: float, beta: float) -> Array:
    return np.minimum(np.maximum(x * alpha + beta, 0), 1)


@versions("HardSigmoid", 1, 6, 22)
def _hard_sigmoid_k(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 0.2)
    beta = float_attr(node, "beta", 0.5)
    return unary_kernel(lambda x: _hard_sigmoid(x, alpha, beta))


@versions("HardSwish", 14, 22)
def _hard_swish(node: KernelNode) -> Kernel:
    return unary_kernel(lambda x: x * _hard_sigmoid(x, 1.0 / 6.0, 0.5))


@versions("Tanh", 1, 6, 13)
def _tanh(node: KernelNode) -> Kernel:
    return unary_kernel(lambda x: np.tanh(x))


@versions("Softplus", 1, 22)
def _softplus(node: KernelNode) -> Kernel:
    return unary_kernel(lambda x: np.logaddexp(x, 0))


@versions("Softsign", 1, 22)
def _softsign(node: KernelNode) -> Kernel:
    return unary_kernel(lambda x: x / (np.abs(x) + 1))


@versions("Gelu", 20)
def _gelu(node: KernelNode) -> Kernel:
    approximate = str(node.attr("approximate", "none"))
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)

        def run_tanh(x: Array) -> Array:
            inner = (x * x * 0.044715 + 1) * x * c
            return (np.tanh(inner) + 1) * x * 0.5

        return unary_kernel(run_tanh)
    if approximate != "none":
        raise ValueError(f"Gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    _jit.warm_up_for(node)
    return unary_kernel(gelu_erf)


@versions("Mish", 18, 22)
def _mish(node: KernelNode) -> Kernel:
    return unary_kernel(lambda x: x * np.tanh(np.logaddexp(x, 0)))


@versions("ThresholdedRelu", 10, 22)
def _thresholded_relu(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 1.0)
    return unary_kernel(lambda x: np.where(x > alpha, x, x.dtype.type(0)))


@versions("Swish", 24)
def _swish(node: KernelNode) -> Kernel:
    alpha = float_attr(node, "alpha", 1.0)
    if alpha == 1.0:
        return unary_kernel(lambda x: x * _sigmoid(x))
    return unary_kernel(lambda x: x * _sigmoid(x * alpha))


@versions("Shrink", 9)
def _shrink(node: KernelNode) -> Kernel:
    lambd = float_attr(node, "lambd", 0.5)
    bias = float_attr(node, "bias", 0.0)

    def run(x: Array) -> Array:
        if x.dtype.kind in "iu":
            xf = x.astype(np.float64)
            return np.where(xf < -lambd, xf + bias, np.where(xf > lambd, xf - bias, 0.0))
        zero = x.dtype.type(0)
        return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, zero))

    return unary_kernel(run)


# --- Dropout ---------------------------------------------------------------------------------


def _dropout(
    x: Array, ratio: float, rng: np.random.RandomState, with_mask: bool, mask_dtype: Any
) -> tuple[Array, ...]:
    """Training-mode dropout: keeps an element when a uniform draw is ``>= ratio``."""
    keep: Array = np.greater_equal(rng.uniform(0.0, 1.0, x.shape), ratio)
    y = (x * keep * (1.0 / (1.0 - ratio))).astype(x.dtype, copy=False)
    return (y, keep.astype(mask_dtype)) if with_mask else (y,)


def _identity_dropout(with_mask: bool, mask_dtype: Any) -> Kernel:
    if not with_mask:
        return as_kernel(lambda x, *rest: (x,))
    return as_kernel(lambda x, *rest: (x, np.ones(x.shape, dtype=mask_dtype or x.dtype)))


def _random_state(seed: int | None) -> np.random.RandomState:
    return np.random.RandomState(seed)


@versions("Dropout", 1, 6)
def _dropout_1(node: KernelNode) -> Kernel:
    """``is_test=0`` (the default) means training: a random mask scaled by 1/(1-ratio)."""
    with_mask = node.num_outputs > 1
    ratio = float_attr(node, "ratio", 0.5)
    if int_attr(node, "is_test", 0) or ratio == 0.0:
        return _identity_dropout(with_mask, None)
    rng = _random_state(None)
    return as_kernel(lambda x: _dropout(x, ratio, rng, with_mask, x.dtype))


@versions("Dropout", 7)
def _dropout_7(node: KernelNode) -> Kernel:
    return _identity_dropout(node.num_outputs > 1, None)


@versions("Dropout", 10)
def _dropout_10(node: KernelNode) -> Kernel:
    return _identity_dropout(node.num_outputs > 1, np.bool_)


@versions("Dropout", 12, 13, 22)
def _dropout_12(node: KernelNode) -> Kernel:
    """Inputs ``ratio`` (default 0.5) and ``training_mode`` (default false); a ``seed``
    attribute makes each run draw the same mask."""
    with_mask = node.num_outputs > 1
    training_c = const_input(node, 2)
    has_training = node.num_inputs > 2
    if not has_training or (training_c is not None and not bool(training_c)):
        return _identity_dropout(with_mask, np.bool_)
    seed_attr = node.attr("seed")
    seed = None if seed_attr is None else int(seed_attr) & 0xFFFFFFFF
    own_rng = _random_state(None)

    def run(
        x: Array, ratio: Array | None = None, training: Array | None = None
    ) -> tuple[Array, ...]:
        r = 0.5 if ratio is None else float(ratio)
        if training is None or not bool(training) or r == 0.0:
            if with_mask:
                return (x, np.ones(x.shape, dtype=np.bool_))
            return (x,)
        rng = own_rng if seed is None else _random_state(seed)
        return _dropout(x, r, rng, with_mask, np.bool_)

    return as_kernel(run)
