"""The CPU compiled model: the transformed graph, its execution plan, and its requests."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aioplug.plugin import AsyncInferRequest, CompiledModel, Model, SyncInferRequest

from .async_infer_request import CpuAsyncInferRequest
from .compiler import Graph, PassManager, build_plan
from .compiler.serialize import graph_to_onnx
from .config import streams_for
from .sync_infer_request import CpuSyncInferRequest

if TYPE_CHECKING:
    from .plugin import CpuPlugin

log = logging.getLogger(__name__)


def set_blas_threads(threads: int) -> None:
    """Sets the threads of every BLAS numpy may call, from whichever thread runs this.

    OpenBLAS (pthreads) has one process-wide pool. threadpoolctl 3.8 lets only the first
    Python thread that limits it change it later (the others are silently ignored), and
    compute runs on the loop or on stream threads: each change first takes that control
    over for the calling thread."""
    import threadpoolctl

    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


class CpuCompiledModel(CompiledModel):
    """A model compiled into an execution plan; exports its transformed graph as ONNX."""

    def __init__(
        self,
        plugin: CpuPlugin,
        model: Model,
        config: dict[str, Any],
        *,
        loaded_from_cache: bool = False,
        transformed: bool = False,
    ) -> None:
        super().__init__(plugin, model, config, loaded_from_cache=loaded_from_cache)
        self._cpu = plugin
        self.threads_per_stream = streams_for(self._config).threads_per_stream
        graph = Graph.from_model(model)
        self.pass_report: dict[str, int] = {}
        if not transformed:
            manager = PassManager()
            manager.run(graph)
            self.pass_report = manager.report
        self.graph = graph
        self.plan = build_plan(
            graph, extra={"threads": self.threads_per_stream, "opsets": dict(graph.opsets)}
        )
        executed = {step.name for step in self.plan.steps}
        fused_into = {
            name: step.name
            for step in self.plan.steps for name in step.original if name not in executed
        }
        self.optimized_out: tuple[tuple[str, str, str], ...] = tuple(
            (node.name, node.op_type, f"fused into {fused_into[node.name]}"
             if node.name in fused_into else "folded at compile time")
            for node in model.nodes
            if node.name not in executed
        )
        """(name, type, why) of model nodes no step runs under their own name."""
        log.debug(
            "compiled %s: %d nodes -> %d steps (%s)",
            model.name, len(model.nodes), len(self.plan.steps), self.pass_report,
        )

    def _resolve_streams(self) -> int:
        return streams_for(self._config).streams

    def apply_threads(self) -> None:
        """Sets numpy's BLAS threads for this model's streams, when they differ."""
        wanted = self.threads_per_stream
        if self._cpu.blas_threads != wanted:
            set_blas_threads(wanted)
            self._cpu.blas_threads = wanted

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return CpuSyncInferRequest(self)

    def _create_async_infer_request(self, sync: SyncInferRequest) -> AsyncInferRequest:
        return CpuAsyncInferRequest(sync, self)

    def _export_payload(self) -> bytes:
        proto = graph_to_onnx(self.graph, self.model.name)
        data: bytes = proto.SerializeToString()
        return data
