"""The TEMPLATE async request: its pipeline, written out as data.

Preprocessing and postprocessing are light and run on the event loop; compute runs on the
compiled model's compute executor (stream threads, or the loop for tiny graphs). Requests
overlap: one request's compute runs while another's inputs are prepared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aioplug.plugin import AsyncInferRequest, Stage, SyncInferRequest

if TYPE_CHECKING:
    from .compiled_model import TemplateCompiledModel


class TemplateAsyncInferRequest(AsyncInferRequest):
    """Preprocess on the loop, compute on the stream executor, postprocess on the loop."""

    def __init__(self, sync: SyncInferRequest, compiled: TemplateCompiledModel) -> None:
        light, compute = compiled.light_executor, compiled.compute_executor
        pipeline = [
            Stage(light, sync.preprocess, "preprocess"),
            Stage(compute, sync.compute, "compute"),
            Stage(light, sync.postprocess, "postprocess"),
        ]
        super().__init__(sync, pipeline)
