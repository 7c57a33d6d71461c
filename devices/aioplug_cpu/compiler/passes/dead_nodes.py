"""Dead-node removal: drop nodes none of whose outputs is used."""

from __future__ import annotations

from ..graph import Graph, captured_names

__all__ = ["remove_dead_nodes"]


def remove_dead_nodes(graph: Graph) -> int:
    """Removes nodes whose outputs reach no graph output; returns how many."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(name in live for name in node.outputs if name):
            kept.append(node)
            live.update(name for name in node.inputs if name)
            live.update(captured_names(node))
    removed = len(graph.nodes) - len(kept)
    if removed:
        graph.nodes = list(reversed(kept))
    return removed
