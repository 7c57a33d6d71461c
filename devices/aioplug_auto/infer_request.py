"""AUTO's and MULTI's requests: each forwards its inputs to a request of a device it drives.

An AUTO request runs on the chosen device. If that fails with a device error (and
``ENABLE_RUNTIME_FALLBACK`` is on), the same inputs are run on the next capable candidate; the
switch is logged and shows in the request's profiling as a ``runtime fallback`` record. A MULTI
request borrows a device request from the shared worker pool for each run, and its profiling
says which device ran it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aioplug.plugin import (
    CancelToken,
    DeviceError,
    InferResults,
    SyncInferRequest,
    VirtualSyncInferRequest,
)

if TYPE_CHECKING:
    from .compiled_model import AutoCompiledModel, MultiCompiledModel

log = logging.getLogger(__name__)


class AutoInferRequest(VirtualSyncInferRequest):
    """Runs on AUTO's chosen device; re-runs on the next candidate after a device error."""

    def __init__(self, compiled: AutoCompiledModel) -> None:
        super().__init__(compiled)
        self._auto = compiled
        self._output_order = tuple(p.name for p in compiled.model.outputs)
        self._sync_parts: dict[int, SyncInferRequest] = {}

    def _outputs_of(self, results: InferResults) -> list[Any]:
        return [results[name] for name in self._output_order]

    def _fall_back(self, index: int, exc: DeviceError, start: float) -> int:
        """Logs and records the switch to the next candidate; re-raises when there is none."""
        auto = self._auto
        following = index + 1
        if following >= auto.candidates:
            raise exc
        failed, target = auto.candidate_name(index), auto.candidate_name(following)
        log.warning("AUTO: request failed on %s (%s); re-running it on %s", failed, exc, target)
        if self.profiling_enabled:
            elapsed = time.perf_counter() - start
            self.record_node("runtime fallback", "Fallback", f"{failed} -> {target}", elapsed, 0.0)
        return following

    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        index = 0
        while True:
            token.raise_if_cancelled()
            start = time.perf_counter()
            request = self._sync_parts.get(index)
            if request is None:
                compiled = self._auto.candidate(index)
                request = self._sync_parts[index] = compiled.create_sync_infer_request()
            label = self._auto.candidate_name(index)
            try:
                return self._outputs_of(self.run_part_sync(request, feed, token, label))
            except DeviceError as exc:
                index = self._fall_back(index, exc, start)


class MultiInferRequest(VirtualSyncInferRequest):
    """Runs each inference on a request borrowed from whichever device frees one first."""

    def __init__(self, compiled: MultiCompiledModel) -> None:
        super().__init__(compiled)
        self._multi = compiled
        self._output_order = tuple(p.name for p in compiled.model.outputs)
        self._sync_request: SyncInferRequest | None = None
        self.last_device = ""
        """The device that ran the last inference."""

    async def _infer_async(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        workers = self._multi.workers
        worker = await workers.acquire(token)
        try:
            self.last_device = worker.device
            if self.profiling_enabled:
                self.record_node("device", "Dispatch", worker.device, 0.0, 0.0)
            results = await self.run_part(worker.request, feed, token, worker.device)
        finally:
            workers.release(worker)
        return [results[name] for name in self._output_order]

    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        """The synchronous path runs on the first device."""
        token.raise_if_cancelled()
        first = self._multi.parts[0]
        if self._sync_request is None:
            self._sync_request = first.create_sync_infer_request()
        self.last_device = self._multi.workers.device(0)
        results = self.run_part_sync(self._sync_request, feed, token, self.last_device)
        return [results[name] for name in self._output_order]
