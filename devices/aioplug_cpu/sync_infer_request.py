"""The CPU sync request: runs the execution plan, checking for cancellation between nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aioplug.plugin import CancelToken, SyncInferRequest

if TYPE_CHECKING:
    from .compiled_model import CpuCompiledModel


class CpuSyncInferRequest(SyncInferRequest):
    """One inference at a time through the compiled plan."""

    def __init__(self, compiled: CpuCompiledModel) -> None:
        super().__init__(compiled)
        self._cpu_model = compiled
        self._plan = compiled.plan
        self._input_names = tuple(p.name for p in compiled.model.inputs)

    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        self._cpu_model.apply_threads()
        record = self.record_node if self.profiling_enabled else None
        return self._plan.run([feed[name] for name in self._input_names], token, record)
