"""Random kernels: RandomNormal(Like), RandomUniform(Like), Bernoulli.

Shapes and dtypes follow the spec; values come from a numpy generator seeded by ``seed``
when given (each call draws fresh numbers, as a stateful generator does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel, int_list
from .cast import onnx_dtype

__all__: list[str] = []


def _rng(node: KernelNode) -> np.random.Generator:
    seed = node.attr("seed")
    return np.random.default_rng(None if seed is None else int(np.float32(seed).view(np.uint32)))


def _dtype(node: KernelNode, default: np.dtype[Any] | None) -> np.dtype[Any] | None:
    raw = node.attr("dtype")
    return onnx_dtype(raw) if raw is not None else default


def _normal(rng: np.random.Generator, shape: tuple[int, ...], node: KernelNode,
            dtype: np.dtype[Any]) -> np.ndarray:
    mean, scale = float(node.attr("mean", 0.0)), float(node.attr("scale", 1.0))
    return (rng.standard_normal(shape) * scale + mean).astype(dtype)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], node: KernelNode,
             dtype: np.dtype[Any]) -> np.ndarray:
    low, high = float(node.attr("low", 0.0)), float(node.attr("high", 1.0))
    return rng.uniform(low, high, shape).astype(dtype)


@kernel("RandomNormal", 1)
def random_normal(node: KernelNode) -> Kernel:
    """RandomNormal: ``shape`` attribute, ``mean`` and ``scale``, float32 by default."""
    rng, shape = _rng(node), tuple(int_list(node.attr("shape")))
    dtype = _dtype(node, np.dtype(np.float32))
    assert dtype is not None
    return FnKernel(lambda: (_normal(rng, shape, node, dtype),))


@kernel("RandomUniform", 1)
def random_uniform(node: KernelNode) -> Kernel:
    """RandomUniform: ``shape`` attribute, values in ``[low, high)``, float32 by default."""
    rng, shape = _rng(node), tuple(int_list(node.attr("shape")))
    dtype = _dtype(node, np.dtype(np.float32))
    assert dtype is not None
    return FnKernel(lambda: (_uniform(rng, shape, node, dtype),))


@kernel("RandomNormalLike", 1)
def random_normal_like(node: KernelNode) -> Kernel:
    """RandomNormalLike: the input's shape, ``dtype`` or the input's dtype."""
    rng, fixed = _rng(node), _dtype(node, None)
    return FnKernel(lambda x: (_normal(rng, x.shape, node, fixed or x.dtype),))


@kernel("RandomUniformLike", 1)
def random_uniform_like(node: KernelNode) -> Kernel:
    """RandomUniformLike: the input's shape, ``dtype`` or the input's dtype."""
    rng, fixed = _rng(node), _dtype(node, None)
    return FnKernel(lambda x: (_uniform(rng, x.shape, node, fixed or x.dtype),))


@kernel("Bernoulli", 15)
def bernoulli(node: KernelNode) -> Kernel:
    """Bernoulli: 1 with probability ``input``, of ``dtype`` or the input's dtype."""
    rng, fixed = _rng(node), _dtype(node, None)

    def run(p: np.ndarray) -> tuple[np.ndarray]:
        return ((rng.random(p.shape) < p).astype(fixed or p.dtype),)

    return FnKernel(run)
