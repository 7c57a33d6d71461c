"""The BATCH compiled model: the user's model, compiled with a batch axis on one device.

Its ports are the user's model's (batch 1 stays 1); the model compiled on the device has a
symbolic batch dimension. Its requests gather in a :class:`~aioplug_batch.batcher.Batcher`
that runs them in batches on the device's requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aioplug.plugin import (
    CompiledModel,
    Model,
    PropertySpec,
    SyncInferRequest,
    VirtualCompiledModel,
)

from . import config as batch_config
from .batcher import Batcher, BatchStatistics
from .batch_axis import BatchLayout
from .sync_infer_request import BatchSyncInferRequest

if TYPE_CHECKING:
    from .plugin import BatchPlugin


class BatchCompiledModel(VirtualCompiledModel):
    """A model whose concurrent requests run in batches of ``batch_size`` on ``device_model``.

    ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` is ``batch_size`` times the device model's, so the
    pool lets enough requests in to fill every device request with a batch.
    """

    def __init__(
        self,
        plugin: BatchPlugin,
        model: Model,
        config: Mapping[str, Any],
        device_model: CompiledModel,
        layout: BatchLayout,
        *,
        batch_size: int,
        timeout_ms: int,
    ) -> None:
        device_requests = int(device_model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        super().__init__(
            plugin, model, config, [device_model], optimal_requests=batch_size * device_requests
        )
        self._device_model = device_model
        self.label = batch_config.LABEL
        self._batcher = Batcher(
            [device_model.create_infer_request() for _ in range(device_requests)],
            batch_size,
            timeout_ms / 1000.0,
            [p.name for p in self._graph_inputs],
            [p.name for p in self._graph_outputs],
            static=layout.static,
            uniform=layout.uniform,
            typed=layout.typed,
            device=plugin.device_name,
            label=self.label,
            profiling=lambda: self._perf_count,
            track=self._track,
        )

    @property
    def device_model(self) -> CompiledModel:
        """The model compiled, with a symbolic batch dimension, on the device BATCH drives."""
        return self._device_model

    @property
    def batcher(self) -> Batcher:
        """The batcher that gathers this model's requests."""
        return self._batcher

    @property
    def batch_size(self) -> int:
        """The most requests one batch holds."""
        return self._batcher.size

    def batch_statistics(self) -> BatchStatistics:
        """Returns a snapshot of the batching: batches run, their sizes, waits, dropped requests."""
        return self._batcher.statistics()

    def _property_specs(self) -> list[PropertySpec]:
        return batch_config.compiled_model_properties(super()._property_specs())

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return BatchSyncInferRequest(self)

    async def aclose(self) -> None:
        """Fails waiting requests with ClosedError, then closes the model and the device's."""
        if self.closed:
            return
        self._batcher.close()
        await asyncio.sleep(0)  # the callers see ClosedError before their tasks are cancelled
        await super().aclose()

    def __repr__(self) -> str:
        return f"<BatchCompiledModel {self.model.name!r} on {self.device_name}>"
