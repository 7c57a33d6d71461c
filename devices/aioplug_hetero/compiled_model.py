"""The HETERO compiled model: the split plan and one compiled model per subgraph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aioplug.plugin import (
    CompiledModel,
    DeviceTarget,
    Model,
    Plugin,
    SyncInferRequest,
    VirtualCompiledModel,
)

from .export import write_stream
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
        targets: Sequence[DeviceTarget],
        optimal_requests: int,
        loaded_from_cache: bool = False,
    ) -> None:
        if not len(subgraphs) == len(parts) == len(targets):
            raise ValueError(
                f"{len(subgraphs)} subgraphs, {len(parts)} compiled parts, {len(targets)} targets"
            )
        self._subgraphs = tuple(subgraphs)
        self._targets = tuple(targets)
        inputs = {port.name for port in model.inputs}
        initializers = model.initializers
        # graph outputs no subgraph produces: graph inputs (passed through) or initializers
        self._constant_outputs: dict[str, np.ndarray] = {
            port.name: initializers[port.name]
            for port in model.outputs
            if port.name not in inputs and port.name in initializers
        }
        super().__init__(
            plugin, model, config, parts,
            optimal_requests=optimal_requests, loaded_from_cache=loaded_from_cache,
        )

    @property
    def subgraphs(self) -> tuple[Subgraph, ...]:
        """The split plan, in execution order: device, nodes, and the values crossing each cut."""
        return self._subgraphs

    @property
    def targets(self) -> tuple[DeviceTarget, ...]:
        """The listed device each part was compiled on (``parts[i]`` on ``targets[i]``)."""
        return self._targets

    @property
    def constant_outputs(self) -> Mapping[str, np.ndarray]:
        """Graph outputs that are initializers of the model (no subgraph computes them)."""
        return self._constant_outputs

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return HeteroSyncInferRequest(self)

    def _export_payload(self) -> bytes:
        """The split plan, the original model and every part's own export (``export.py``)."""
        return write_stream(self.model, self._targets, self._subgraphs, self.parts)

    def __repr__(self) -> str:
        devices = " -> ".join(s.device for s in self._subgraphs)
        return f"<HeteroCompiledModel {self.model.name!r} on {self.device_name}: {devices}>"
