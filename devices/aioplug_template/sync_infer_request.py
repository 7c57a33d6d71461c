"""The TEMPLATE sync request: executes the graph node by node with onnx reference kernels.

Between nodes it checks the cancel token, so a cancelled request stops at the next node
boundary; with ``PERF_COUNT`` it records each node's real and CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onnx.reference import ReferenceEvaluator

from aioplug.plugin import CancelToken, InferError, RequestCancelled, SyncInferRequest

if TYPE_CHECKING:
    from .compiled_model import TemplateCompiledModel


class TemplateSyncInferRequest(SyncInferRequest):
    """Runs the graph node by node; one reference evaluator per request."""

    def __init__(self, compiled: TemplateCompiledModel) -> None:
        super().__init__(compiled)
        model = compiled.model
        evaluator = ReferenceEvaluator(model.proto)
        self._kernels = evaluator.rt_nodes_
        self._constants = dict(evaluator.rt_inits_)
        self._names = [node.name for node in model.nodes]
        self._output_names = [port.name for port in model.outputs]

    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        values: dict[str, Any] = {"": None, **self._constants, **feed}
        profile = self.profiling_enabled
        perf_counter, thread_time = time.perf_counter, time.thread_time
        for name, kernel in zip(self._names, self._kernels):
            if token.cancelled:
                raise RequestCancelled(f"cancelled before node {name!r}")
            args = [values[i] for i in kernel.input]
            if profile:
                start, cpu = perf_counter(), thread_time()
            try:
                if kernel.need_context():
                    outputs = kernel.run(*args, context=values)
                else:
                    outputs = kernel.run(*args)
            except RequestCancelled:
                raise
            except Exception as exc:
                raise InferError(f"node {name!r} ({kernel.op_type}) failed: {exc}") from exc
            if profile:
                self.record_node(
                    name, kernel.op_type, "reference", perf_counter() - start, thread_time() - cpu
                )
            for out_name, value in zip(kernel.output, outputs):
                values[out_name] = value
        return [values[name] for name in self._output_names]
