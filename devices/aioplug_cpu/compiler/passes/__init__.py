"""Graph passes, one per module, run in order by the :class:`PassManager`.

A pass is a callable ``(graph) -> int`` returning how many rewrites it made. The manager
runs the list, repeating it while anything changed (up to a bound), and records what each
pass did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..graph import Graph
from .constant_folding import fold_constants
from .dead_nodes import remove_dead_nodes

__all__ = ["Pass", "PassManager", "default_passes", "fold_constants", "remove_dead_nodes"]

log = logging.getLogger(__name__)

Pass = Callable[[Graph], int]


def default_passes() -> list[Pass]:
    """The CPU device's passes, in order."""
    from .fusions import fusion_passes

    return [fold_constants, remove_dead_nodes, *fusion_passes(), remove_dead_nodes]


@dataclass
class PassManager:
    """Runs passes until none changes the graph (at most ``max_rounds`` rounds)."""

    passes: Sequence[Pass] = field(default_factory=default_passes)
    max_rounds: int = 4
    report: dict[str, int] = field(default_factory=dict)

    def run(self, graph: Graph) -> Graph:
        """Rewrites ``graph`` in place and returns it."""
        for _ in range(self.max_rounds):
            changed = 0
            for p in self.passes:
                n = p(graph)
                if n:
                    name = getattr(p, "__name__", type(p).__name__)
                    self.report[name] = self.report.get(name, 0) + n
                    changed += n
            if not changed:
                break
        log.debug("passes: %s", self.report)
        return graph
