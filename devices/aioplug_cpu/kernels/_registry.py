"""The CPU kernel registry: ONNX ops found by ``(domain, op_type, since_version)``.

A kernel is registered with :func:`kernel` under the opset version that introduced the
behaviour it implements. :func:`lookup` returns the newest implementation whose
``since_version`` is not newer than the model's opset for that domain, as onnx's reference
evaluator does. Registration is explicit (a decorator per kernel), never by scanning globals.

A kernel *factory* receives a :class:`KernelNode` (everything known about the node at
compile time) and returns a :class:`Kernel`: a callable taking the node's runtime inputs
(``None`` for an omitted optional input) and returning a tuple of outputs. The factory is the
place to pre-compute attributes and pre-arrange constant weights, so the call does no
per-run parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "Kernel",
    "KernelFactory",
    "KernelNode",
    "KernelNotFound",
    "kernel",
    "lookup",
    "registered_ops",
]

Dim = int | str | None
"""A dimension: an int, a symbolic name, or unknown."""


@dataclass(frozen=True)
class KernelNode:
    """What a kernel factory knows about its node at compile time."""

    op_type: str
    domain: str
    opset: int
    """The model's opset version for ``domain``."""
    attributes: Mapping[str, Any]
    """Decoded attribute values: int, float, str, list, np.ndarray, onnx.GraphProto."""
    num_inputs: int
    num_outputs: int
    name: str = ""
    const_inputs: tuple[np.ndarray | None, ...] = ()
    """Values of inputs known at compile time (initializers, folded constants), else None."""
    input_dtypes: tuple[np.dtype[Any] | None, ...] = ()
    input_shapes: tuple[tuple[Dim, ...] | None, ...] = ()
    output_dtypes: tuple[np.dtype[Any] | None, ...] = ()
    output_shapes: tuple[tuple[Dim, ...] | None, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Device-specific compile context (e.g. the thread count); kernels may ignore it."""

    def attr(self, name: str, default: Any = None) -> Any:
        """Returns attribute ``name``, or ``default`` when the node does not set it."""
        return self.attributes.get(name, default)


class Kernel(Protocol):
    """A prepared kernel: runtime inputs in, a tuple of outputs out."""

    exec_type: str
    """What actually runs, for profiling (``gemm_im2col``, ``numpy``, ``reference``)."""

    def __call__(self, *inputs: Any) -> tuple[Any, ...]: ...


KernelFactory = Callable[[KernelNode], Kernel]


class KernelNotFound(LookupError):
    """No kernel implements this op at this opset."""


_REGISTRY: dict[tuple[str, str], list[tuple[int, KernelFactory]]] = {}


def kernel(
    op_type: str, since: int, domain: str = ""
) -> Callable[[KernelFactory], KernelFactory]:
    """Registers a kernel factory for ``op_type`` as defined since opset ``since``."""

    def register(factory: KernelFactory) -> KernelFactory:
        versions = _REGISTRY.setdefault((domain, op_type), [])
        if any(v == since for v, _ in versions):
            raise ValueError(f"kernel {domain or 'ai.onnx'}::{op_type}-{since} registered twice")
        versions.append((since, factory))
        versions.sort(key=lambda item: item[0])
        return factory

    return register


def lookup(domain: str, op_type: str, opset: int) -> KernelFactory:
    """Returns the newest factory for ``op_type`` not newer than ``opset``."""
    domain = "" if domain == "ai.onnx" else domain
    versions = _REGISTRY.get((domain, op_type))
    if not versions:
        raise KernelNotFound(f"no CPU kernel for {domain or 'ai.onnx'}::{op_type}")
    best = None
    for since, factory in versions:
        if since <= opset:
            best = factory
    if best is None:
        available = ", ".join(str(v) for v, _ in versions)
        raise KernelNotFound(
            f"no CPU kernel for {domain or 'ai.onnx'}::{op_type} at opset {opset}; "
            f"implemented since versions: {available}"
        )
    return best


def registered_ops() -> dict[tuple[str, str], tuple[int, ...]]:
    """Returns ``{(domain, op_type): since_versions}`` for every registered kernel."""
    return {key: tuple(v for v, _ in versions) for key, versions in _REGISTRY.items()}
