"""The CPU sync request: runs the execution plan, checking for cancellation between nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aioplug.plugin import CancelToken, ProfilingStatus, SyncInferRequest

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
        if not self.profiling_enabled:
            return self._plan.run([feed[name] for name in self._input_names], token)
        outputs = self._plan.run([feed[name] for name in self._input_names], token, self.record_node)
        for name, op_type, why in self._cpu_model.optimized_out:
            self.record_node(name, op_type, why, 0.0, 0.0, ProfilingStatus.OPTIMIZED_OUT)
        return outputs
