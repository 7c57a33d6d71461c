"""The HETERO compiled model: the split plan and one compiled model per subgraph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aioplug.plugin import (
    CompiledModel,
    Model,
    Plugin,
    SyncInferRequest,
    VirtualCompiledModel,
)

from .infer_request import HeteroSyncInferRequest
from .split import Subgraph

__all__ = ["HeteroCompiledModel"]


class HeteroCompiledModel(VirtualCompiledModel):
    """A model split into subgraphs, each compiled on its device; ``parts[i]`` runs
    ``subgraphs[i]``."""

    def __init__(
        self,
        plugin: Plugin,
        model: Model,
        config: Mapping[str, Any],
        subgraphs: Sequence[Subgraph],
        parts: Sequence[CompiledModel],
        *,
        optimal_requests: int,
    ) -> None:
        if len(subgraphs) != len(parts):
            raise ValueError(f"{len(subgraphs)} subgraphs but {len(parts)} compiled parts")
        self._subgraphs = tuple(subgraphs)
        inputs = {port.name for port in model.inputs}
        initializers = model.initializers
        # graph outputs no subgraph produces: graph inputs (passed through) or initializers
        self._constant_outputs: dict[str, np.ndarray] = {
            port.name: initializers[port.name]
            for port in model.outputs
            if port.name not in inputs and port.name in initializers
        }
        super().__init__(plugin, model, config, parts, optimal_requests=optimal_requests)

    @property
    def subgraphs(self) -> tuple[Subgraph, ...]:
        """The split plan, in execution order: device, nodes, and the values crossing each cut."""
        return self._subgraphs

    @property
    def constant_outputs(self) -> Mapping[str, np.ndarray]:
        """Graph outputs that are initializers of the model (no subgraph computes them)."""
        return self._constant_outputs

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return HeteroSyncInferRequest(self)

    def __repr__(self) -> str:
        devices = " -> ".join(s.device for s in self._subgraphs)
        return f"<HeteroCompiledModel {self.model.name!r} on {self.device_name}: {devices}>"
