"""The reference fallback: onnx.reference's implementation of an op wrapped as a kernel.

It covers the long tail of standard ops that no numpy kernel implements. Each node gets its
own ``OpRun`` instance, built the way onnx's ``ReferenceEvaluator`` builds one, and runs with
``exec_type = "reference"``. Ops with subgraph attributes (If, Loop, Scan, SequenceMap) and
ops whose function body depends on the node's context are not wrapped: the device compiler
runs those itself.

Registration is lazy (:func:`register_reference_fallbacks`) so that it only fills the gaps
left by the numpy kernels of both families, whatever their import order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnx.defs
from onnx import helper, numpy_helper

from .._registry import Kernel, KernelNode, kernel, registered_ops

__all__ = [
    "FALLBACK_DOMAINS",
    "ReferenceKernel",
    "ReferenceKernelFactory",
    "reference_kernel_factory",
    "register_reference_fallbacks",
]

_log = logging.getLogger(__name__)

FALLBACK_DOMAINS = ("", "ai.onnx.ml", "ai.onnx.preview.training")
"""Domains whose standard ops get a reference fallback."""

_EXCLUDED = frozenset({"If", "Loop", "Scan", "SequenceMap"})
"""Control flow: the device compiler runs their subgraphs itself."""


def _loader(domain: str) -> Callable[..., Any]:
    """Returns onnx.reference's ``load_op`` for ``domain``."""
    if domain == "":
        from onnx.reference.ops import load_op

        return load_op
    if domain == "ai.onnx.ml":
        from onnx.reference.ops.aionnxml import load_op as load_ml

        return load_ml
    if domain == "ai.onnx.preview.training":
        from onnx.reference.ops.aionnx_preview_training import load_op as load_training

        return load_training
    raise ValueError(f"no reference implementations for domain {domain!r}")


def _load_class(domain: str, op_type: str, version: int) -> Any:
    """Loads the reference class (or class-like callable) of ``op_type`` at ``version``."""
    from onnx.reference import ReferenceEvaluator

    load = _loader(domain)
    if domain == "":
        return load(domain, op_type, version, evaluator_cls=ReferenceEvaluator)
    return load(domain, op_type, version)


def _attribute_proto(name: str, value: Any) -> onnx.AttributeProto | None:
    """Re-encodes a decoded attribute value; None for an empty list (type unknown)."""
    if isinstance(value, np.ndarray):
        value = numpy_helper.from_array(value)
    elif isinstance(value, list):
        if not value:
            return None
        if isinstance(value[0], np.ndarray):
            value = [numpy_helper.from_array(v) for v in value]
    return helper.make_attribute(name, value)


def _node_proto(node: KernelNode) -> onnx.NodeProto:
    """Returns the node's NodeProto: the compiler's own when it passes one, else rebuilt."""
    given = node.extra.get("onnx_node") if node.extra else None
    if isinstance(given, onnx.NodeProto):
        return given
    proto = helper.make_node(
        node.op_type,
        [f"in{i}" for i in range(node.num_inputs)],
        [f"out{i}" for i in range(node.num_outputs)],
        name=node.name or node.op_type,
        domain=node.domain,
    )
    for name, value in node.attributes.items():
        attr = _attribute_proto(name, value)
        if attr is not None:
            proto.attribute.append(attr)
    return proto


class ReferenceKernel:
    """One node run by its onnx.reference implementation."""

    exec_type = "reference"
    __slots__ = ("_num_outputs", "_op")

    def __init__(self, op: Any, num_outputs: int) -> None:
        self._op = op
        self._num_outputs = num_outputs

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        out = self._op.run(*inputs)
        return tuple(out)


class ReferenceKernelFactory:
    """Kernel factory for ``domain::op_type`` through onnx.reference (identifiable by type)."""

    def __init__(self, op_type: str, domain: str) -> None:
        self.op_type = op_type
        self.domain = domain

    def __repr__(self) -> str:
        return f"ReferenceKernelFactory({self.domain or 'ai.onnx'}::{self.op_type})"

    def __call__(self, node: KernelNode) -> Kernel:
        from onnx.reference import ReferenceEvaluator

        cls = _load_class(self.domain, self.op_type, node.opset)
        opsets = {self.domain: node.opset}
        opsets.setdefault("", node.opset if self.domain == "" else onnx.defs.onnx_opset_version())
        run_params: dict[str, Any] = {
            "log": lambda *_args: None,
            "opsets": opsets,
            "verbose": 0,
            "new_ops": {},
            "existing_functions": {},
            "evaluator_cls": ReferenceEvaluator,
        }
        op = cls(_node_proto(node), run_params)
        if op.need_context():
            raise NotImplementedError(
                f"{self.domain or 'ai.onnx'}::{self.op_type} needs the evaluator's context"
            )
        return ReferenceKernel(op, node.num_outputs)


def reference_kernel_factory(op_type: str, domain: str = "") -> ReferenceKernelFactory:
    """Returns a kernel factory running ``domain::op_type`` through onnx.reference."""
    domain = "" if domain == "ai.onnx" else domain
    _loader(domain)
    return ReferenceKernelFactory(op_type, domain)


def _has_graph_attribute(schema: onnx.defs.OpSchema) -> bool:
    graph_types = {onnx.defs.OpSchema.AttrType.GRAPH, onnx.defs.OpSchema.AttrType.GRAPHS}
    return any(a.type in graph_types for a in schema.attributes.values())


def _loadable(domain: str, op_type: str, version: int) -> bool:
    try:
        _load_class(domain, op_type, version)
    except Exception:  # not implemented, context-dependent function, unknown schema
        return False
    return True


def register_reference_fallbacks() -> list[str]:
    """Registers a reference kernel for every standard op not yet in the registry.

    Returns the registered ops as ``domain::op_type`` strings. Calling it again only
    registers ops that appeared since (normally none), so it is safe to call twice.
    """
    present = set(registered_ops())
    first_version: dict[tuple[str, str], int] = {}
    latest: dict[tuple[str, str], onnx.defs.OpSchema] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        key = (schema.domain, schema.name)
        if schema.domain not in FALLBACK_DOMAINS:
            continue
        first_version[key] = min(first_version.get(key, schema.since_version), schema.since_version)
        if key not in latest or schema.since_version > latest[key].since_version:
            latest[key] = schema
    added: list[str] = []
    for key in sorted(latest):
        domain, op_type = key
        if key in present or op_type in _EXCLUDED or _has_graph_attribute(latest[key]):
            continue
        if not _loadable(domain, op_type, latest[key].since_version):
            continue
        kernel(op_type, first_version[key], domain)(reference_kernel_factory(op_type, domain))
        added.append(f"{domain or 'ai.onnx'}::{op_type}")
    _log.debug("reference fallbacks registered for %d ops", len(added))
    return added
