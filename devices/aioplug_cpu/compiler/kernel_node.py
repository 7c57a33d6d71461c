"""Builds a kernel's compile-time view of a graph node."""

from __future__ import annotations

from ..kernels import KernelNode
from .graph import Graph, GraphNode

__all__ = ["kernel_node"]


def kernel_node(graph: Graph, node: GraphNode, extra: dict[str, object] | None = None) -> KernelNode:
    """Returns the :class:`KernelNode` of ``node`` in ``graph``."""
    ins = [graph.values.get(name) if name else None for name in node.inputs]
    outs = [graph.values.get(name) if name else None for name in node.outputs]
    return KernelNode(
        op_type=node.op_type,
        domain=node.domain,
        opset=graph.opset(node.domain),
        attributes=node.attrs,
        num_inputs=len(node.inputs),
        num_outputs=len(node.outputs),
        name=node.name,
        const_inputs=tuple(v.const if v is not None else None for v in ins),
        input_dtypes=tuple(v.dtype if v is not None else None for v in ins),
        input_shapes=tuple(v.shape if v is not None else None for v in ins),
        output_dtypes=tuple(v.dtype if v is not None else None for v in outs),
        output_shapes=tuple(v.shape if v is not None else None for v in outs),
        extra=extra or {},
    )
