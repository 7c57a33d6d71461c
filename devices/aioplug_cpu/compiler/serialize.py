"""The transformed graph as an ONNX model: the CPU device's safe export format.

Fused nodes live in the ``aioplug.cpu`` domain; constants become initializers. Importing
parses the ONNX model again (no code execution) and builds the plan without re-running the
passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import Graph

__all__ = ["CPU_DOMAIN", "graph_to_onnx"]

CPU_DOMAIN = "aioplug.cpu"


def _attribute(name: str, value: Any) -> onnx.AttributeProto:
    if isinstance(value, np.ndarray):
        return helper.make_attribute(name, numpy_helper.from_array(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        value = [numpy_helper.from_array(v) for v in value]
    elif isinstance(value, list):
        value = [v.item() if isinstance(v, np.generic) else v for v in value]
    return helper.make_attribute(name, value)


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    v = graph.values.get(name)
    if v is None or v.dtype is None:
        return helper.make_value_info(name, onnx.TypeProto())
    elem = helper.np_dtype_to_tensor_dtype(v.dtype)
    shape = None if v.shape is None else [d if d is not None else None for d in v.shape]
    return helper.make_tensor_value_info(name, elem, shape)


def graph_to_onnx(graph: Graph, name: str) -> onnx.ModelProto:
    """Returns ``graph`` as a self-contained ONNX model."""
    nodes = []
    used: set[str] = set()
    for node in graph.nodes:
        nodes.append(
            helper.make_node(
                node.op_type, node.inputs, node.outputs, name=node.name, domain=node.domain or None
            )
        )
        nodes[-1].attribute.extend(_attribute(k, v) for k, v in node.attrs.items())
        used.update(node.inputs)
    from .graph import captured_names

    for node in graph.nodes:
        used |= captured_names(node)
    used.update(graph.outputs)
    inits = [
        numpy_helper.from_array(np.asarray(graph.const(n)), n)
        for n in sorted(used)
        if n and n not in graph.inputs and graph.const(n) is not None
    ]
    proto_graph = helper.make_graph(
        nodes,
        name,
        [_value_info(graph, n) for n in graph.inputs],
        [_value_info(graph, n) for n in graph.outputs],
        inits,
    )
    opsets = [helper.make_opsetid(d, v) for d, v in graph.opsets.items()]
    if any(n.domain == CPU_DOMAIN for n in graph.nodes) and CPU_DOMAIN not in graph.opsets:
        opsets.append(helper.make_opsetid(CPU_DOMAIN, 1))
    model = helper.make_model(proto_graph, opset_imports=opsets)
    return model
