"""The BATCH sync request: its compute stage joins a batch; its sync path runs the device alone.

``_infer_async`` (the asynchronous pipeline's compute stage) hands the request's feed to the
compiled model's batcher and awaits its slice of the batch's outputs. ``_infer`` (``infer()``
on a sync request, on the caller's thread) runs one synchronous request of the device with
this request's inputs only: there is nothing to batch with on that path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aioplug.plugin import CancelToken, SyncInferRequest, VirtualSyncInferRequest

if TYPE_CHECKING:
    from .compiled_model import BatchCompiledModel


class BatchSyncInferRequest(VirtualSyncInferRequest):
    """One request of a BATCH compiled model."""

    def __init__(self, compiled: BatchCompiledModel) -> None:
        super().__init__(compiled)
        self._batch_model = compiled
        self._device_sync: SyncInferRequest | None = None

    async def _infer_async(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        batcher = self._batch_model._batcher
        entry = batcher.submit(feed)
        token.add_callback(entry)  # request.cancel(): leave the queue, or the batch
        try:
            outputs = await entry.future
        except asyncio.CancelledError:  # the task was cancelled, or its deadline passed
            batcher.abandon(entry)
            raise
        finally:
            token.remove_callback(entry)
        if self.profiling_enabled:
            self.extend_profiling(batcher.records(entry))
        return outputs

    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        request = self._device_sync
        if request is None:
            request = self._device_sync = self._batch_model.device_model.create_sync_infer_request()
        return self.run_part_sync(request, feed, token, self._batch_model.label).to_tuple()
