"""The HETERO request: runs the subgraphs in order, each on its device's own request.

Each HETERO request owns one request per part, made on first use. A part gets exactly the
values it reads; the values it produces are handed on to later parts as the same numpy arrays
(every device here works in host memory, so a cut costs no copy). A part's request runs its
stages on its own device's executors, so while one HETERO request computes on the second
device, the next one can compute on the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aioplug.plugin import (
    AsyncInferRequest,
    CancelToken,
    SyncInferRequest,
    VirtualSyncInferRequest,
)

if TYPE_CHECKING:
    from .compiled_model import HeteroCompiledModel

__all__ = ["HeteroSyncInferRequest"]


class HeteroSyncInferRequest(VirtualSyncInferRequest):
    """One inference at a time through every part, in the split plan's order."""

    def __init__(self, compiled: HeteroCompiledModel) -> None:
        super().__init__(compiled)
        self._hetero = compiled
        self._steps = tuple(
            (s.inputs, s.outputs, f"part {s.index} on {s.device}") for s in compiled.subgraphs
        )
        self._result_names = tuple(port.name for port in compiled.model.outputs)
        self._async_parts: tuple[AsyncInferRequest, ...] | None = None
        self._sync_parts: tuple[SyncInferRequest, ...] | None = None

    @property
    def part_requests(self) -> tuple[AsyncInferRequest, ...]:
        """The asynchronous requests of the parts (made on first use)."""
        if self._async_parts is None:
            self._async_parts = tuple(p.create_infer_request() for p in self._hetero.parts)
        return self._async_parts

    @property
    def part_sync_requests(self) -> tuple[SyncInferRequest, ...]:
        """The synchronous requests of the parts (made on first use, for the sync path)."""
        if self._sync_parts is None:
            self._sync_parts = tuple(p.create_sync_infer_request() for p in self._hetero.parts)
        return self._sync_parts

    def _values(self, feed: dict[str, Any]) -> dict[str, Any]:
        values = dict(feed)
        for name, value in self._hetero.constant_outputs.items():
            values[name] = value.copy()
        return values

    async def _infer_async(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        values = self._values(feed)
        for (inputs, outputs, label), request in zip(self._steps, self.part_requests):
            token.raise_if_cancelled()
            results = await self.run_part(
                request, {name: values[name] for name in inputs}, token, label
            )
            for name in outputs:
                values[name] = results[name]
        return [values[name] for name in self._result_names]

    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        values = self._values(feed)
        for (inputs, outputs, label), request in zip(self._steps, self.part_sync_requests):
            token.raise_if_cancelled()
            results = self.run_part_sync(
                request, {name: values[name] for name in inputs}, token, label
            )
            for name in outputs:
                values[name] = results[name]
        return [values[name] for name in self._result_names]
