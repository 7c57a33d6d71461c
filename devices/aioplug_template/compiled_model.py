"""The TEMPLATE compiled model: the graph prepared once, requests that execute it."""

from __future__ import annotations

from aioplug.plugin import AsyncInferRequest, CompiledModel, SyncInferRequest

from .async_infer_request import TemplateAsyncInferRequest
from .sync_infer_request import TemplateSyncInferRequest


class TemplateCompiledModel(CompiledModel):
    """A model compiled for TEMPLATE; exports as its ONNX graph."""

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return TemplateSyncInferRequest(self)

    def _create_async_infer_request(self, sync: SyncInferRequest) -> AsyncInferRequest:
        return TemplateAsyncInferRequest(sync, self)

    def _export_payload(self) -> bytes:
        return self.model.serialize()
