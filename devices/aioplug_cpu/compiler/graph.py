"""A mutable graph for compile-time passes: nodes, values, constants, use lists.

Built from the (immutable) model IR. Passes rewrite it in place: replace nodes, mark values
constant, drop dead nodes. Node order stays topological.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from aioplug.plugin import Model

__all__ = ["Graph", "GraphNode", "Value"]

Dim = int | str | None


@dataclass
class Value:
    """A named value: its dtype and shape when known, its value when constant."""

    name: str
    dtype: np.dtype[Any] | None = None
    shape: tuple[Dim, ...] | None = None
    const: Any = None
    """A numpy array when the value is known at compile time."""

    @property
    def is_const(self) -> bool:
        """True when the value is known at compile time."""
        return self.const is not None

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        """The shape when every dimension is a fixed size."""
        if self.const is not None and isinstance(self.const, np.ndarray):
            return tuple(self.const.shape)
        if self.shape is None or not all(isinstance(d, int) for d in self.shape):
            return None
        return tuple(int(d) for d in self.shape)  # type: ignore[arg-type]


@dataclass
class GraphNode:
    """One node; ``attrs`` holds decoded attributes (GraphProto for subgraphs)."""

    name: str
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    original: tuple[str, ...] = ()
    """Names of the model nodes this node stands for (after fusion)."""

    def attr(self, name: str, default: Any = None) -> Any:
        """Returns attribute ``name`` or ``default``."""
        return self.attrs.get(name, default)


class Graph:
    """Nodes in topological order, values by name, graph inputs and outputs."""

    def __init__(
        self,
        nodes: Iterable[GraphNode],
        values: Mapping[str, Value],
        inputs: Iterable[str],
        outputs: Iterable[str],
        opsets: Mapping[str, int],
    ) -> None:
        self.nodes = list(nodes)
        self.values = dict(values)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.opsets = dict(opsets)
        self._ids = itertools.count()

    @classmethod
    def from_model(cls, model: Model) -> Graph:
        """Builds the graph of ``model`` with initializers as constants."""
        values: dict[str, Value] = {}

        def value(name: str) -> Value:
            v = values.get(name)
            if v is None:
                port = model.value_port(name)
                v = values[name] = Value(
                    name,
                    port.dtype if port is not None else None,
                    port.shape if port is not None else None,
                )
            return v

        for name, array in model.initializers.items():
            v = value(name)
            v.const = array
            v.dtype, v.shape = array.dtype, tuple(array.shape)
        nodes = []
        for node in model.nodes:
            for name in (*node.inputs, *node.outputs):
                if name:
                    value(name)
            nodes.append(
                GraphNode(
                    node.name, node.op_type, node.domain, list(node.inputs), list(node.outputs),
                    dict(node.attributes), (node.name,),
                )
            )
        inputs = [p.name for p in model.inputs]
        for name in inputs:
            value(name).const = None
        return cls(nodes, values, inputs, [p.name for p in model.outputs], model.opsets)

    # -- queries -------------------------------------------------------------------------
    def opset(self, domain: str) -> int:
        """The model's opset version for ``domain``."""
        return self.opsets.get(domain, self.opsets.get("", 1))

    def const(self, name: str) -> Any:
        """The compile-time value of ``name``, or None."""
        if not name:
            return None
        v = self.values.get(name)
        return v.const if v is not None else None

    def value(self, name: str) -> Value:
        """The value ``name`` (created on first use)."""
        v = self.values.get(name)
        if v is None:
            v = self.values[name] = Value(name)
        return v

    def consumers(self) -> dict[str, list[GraphNode]]:
        """Returns ``{value name: nodes that read it}`` (subgraph captures included)."""
        uses: dict[str, list[GraphNode]] = {}
        for node in self.nodes:
            for name in itertools.chain(node.inputs, captured_names(node)):
                if name:
                    uses.setdefault(name, []).append(node)
        return uses

    def producers(self) -> dict[str, GraphNode]:
        """Returns ``{value name: the node that writes it}``."""
        return {name: node for node in self.nodes for name in node.outputs if name}

    def fresh_name(self, base: str) -> str:
        """A value or node name not used yet."""
        while True:
            name = f"{base}__{next(self._ids)}"
            if name not in self.values:
                return name


def captured_names(node: GraphNode) -> set[str]:
    """Names a node's subgraphs read from the enclosing scope."""
    names: set[str] = set()
    for attr in node.attrs.values():
        graphs = attr if isinstance(attr, list) else [attr]
        for graph in graphs:
            if isinstance(graph, onnx.GraphProto):
                names |= _outer_names(graph)
    return names


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    defined |= {i.name for i in graph.sparse_initializer}
    used: set[str] = set()
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                used.add(name)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                used |= {n for n in _outer_names(sub) if n not in defined}
        defined |= set(node.output)
    return used
