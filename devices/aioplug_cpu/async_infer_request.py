"""The CPU async request: preprocess on the loop, compute on a stream, postprocess on the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aioplug.plugin import AsyncInferRequest, Stage, SyncInferRequest

if TYPE_CHECKING:
    from .compiled_model import CpuCompiledModel


class CpuAsyncInferRequest(AsyncInferRequest):
    """Stages of different requests overlap: one computes while another is prepared."""

    def __init__(self, sync: SyncInferRequest, compiled: CpuCompiledModel) -> None:
        light, compute = compiled.light_executor, compiled.compute_executor
        super().__init__(
            sync,
            [
                Stage(light, sync.preprocess, "preprocess"),
                Stage(compute, sync.compute, "compute"),
                Stage(light, sync.postprocess, "postprocess"),
            ],
        )
