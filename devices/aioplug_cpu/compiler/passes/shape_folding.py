"""Shape folding: ``Shape`` and ``Size`` of values whose shape is static become constants.

Exported graphs compute reshape targets through Shape -> Gather -> Unsqueeze -> Concat chains;
once the Shape is constant, constant folding removes the whole chain.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph

__all__ = ["fold_shapes"]


def fold_shapes(graph: Graph) -> int:
    """Marks the outputs of Shape/Size nodes with static inputs constant; returns how many."""
    folded = 0
    outputs = set(graph.outputs)
    kept = []
    for node in graph.nodes:
        if node.op_type in ("Shape", "Size") and node.domain == "" and node.outputs[0] not in outputs:
            source = graph.values.get(node.inputs[0])
            shape = source.static_shape if source is not None else None
            if shape is not None:
                if node.op_type == "Size":
                    value = np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
                else:
                    rank = len(shape)
                    start = int(node.attr("start", 0))
                    end = node.attr("end")
                    start = max(0, min(rank, start + rank if start < 0 else start))
                    stop = rank if end is None else int(end)
                    stop = max(0, min(rank, stop + rank if stop < 0 else stop))
                    value = np.array(shape[start:stop], dtype=np.int64)
                out = graph.value(node.outputs[0])
                out.const, out.dtype, out.shape = value, value.dtype, tuple(value.shape)
                folded += 1
                continue
        kept.append(node)
    graph.nodes = kept
    return folded
