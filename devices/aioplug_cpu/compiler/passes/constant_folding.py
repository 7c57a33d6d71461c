"""Constant folding: run nodes whose inputs are all known at compile time.

The node's kernel computes its outputs once; they become constants and the node goes. Random
ops and nodes with subgraphs are never folded. Outputs larger than ``MAX_FOLDED_BYTES``
stay computed at run time (folding them would bloat the plan, e.g. a big ConstantOfShape).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ...kernels import KernelNotFound, lookup
from ..graph import Graph, GraphNode, captured_names
from ..kernel_node import kernel_node

__all__ = ["fold_constants"]

log = logging.getLogger(__name__)

NEVER_FOLD = frozenset(
    {
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
        "Bernoulli", "Dropout", "If", "Loop", "Scan", "SequenceMap",
    }
)
MAX_FOLDED_BYTES = 64 << 20


def _foldable(graph: Graph, node: GraphNode) -> bool:
    if node.op_type in NEVER_FOLD or captured_names(node):
        return False
    return all(not name or graph.const(name) is not None for name in node.inputs)


def fold_constants(graph: Graph) -> int:
    """Folds every foldable node; returns how many."""
    kept: list[GraphNode] = []
    folded = 0
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if _foldable(graph, node):
            values = _evaluate(graph, node)
            if values is not None and all(
                isinstance(v, np.ndarray) and v.nbytes <= MAX_FOLDED_BYTES for v in values
            ):
                for name, value in zip(node.outputs, values):
                    if name:
                        v = graph.value(name)
                        v.const = value
                        v.dtype, v.shape = value.dtype, tuple(value.shape)
                if not outputs.intersection(node.outputs):
                    folded += 1
                    continue
                # a node producing a graph output stays, so each run returns a fresh array
                for name in node.outputs:
                    if name:
                        graph.value(name).const = None
        kept.append(node)
    graph.nodes = kept
    return folded


def _evaluate(graph: Graph, node: GraphNode) -> list[Any] | None:
    try:
        factory = lookup(node.domain, node.op_type, graph.opset(node.domain))
        kernel = factory(kernel_node(graph, node))
        args = [graph.const(name) if name else None for name in node.inputs]
        return [np.asarray(v) if isinstance(v, np.generic) else v for v in kernel(*args)]
    except KernelNotFound:
        return None
    except Exception as exc:  # a node that fails now fails at run time with a clear error
        log.debug("not folding %s (%s): %r", node.name, node.op_type, exc)
        return None
