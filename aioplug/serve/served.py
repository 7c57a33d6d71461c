"""A served model: one compiled model version, its protocol metadata, and its guarded infer.

:meth:`ServedModel.infer` borrows a request from the compiled model's pool (so the model's
``MAX_QUEUED_REQUESTS`` bounds its queue), runs it under the request's deadline, and returns
the outputs with the time spent in each stage. A full queue raises ServerBusy at once; an
expired deadline stops the work, queued or running, and raises DeadlineExceeded.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import anyio

from .._compiled_model import CompiledModel
from .._results import InferResults
from ..errors import ClosedError, QueueFull
from .datatypes import datatype_of
from .tensors import port_shape
from .errors import DeadlineExceeded, ServerBusy, ServerClosing
from .repository import ModelSpec

__all__ = ["ServedModel", "PLATFORM"]

log = logging.getLogger(__name__)

PLATFORM = "aioplug_onnx"


def _tensor_meta(ports: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "datatype": datatype_of(p.dtype) if p.dtype is not None else "BYTES",
            "shape": port_shape(p),
        }
        for p in ports
    ]


class ServedModel:
    """One model version behind the protocol: metadata and inference with a deadline."""

    def __init__(self, spec: ModelSpec, compiled: CompiledModel) -> None:
        self.spec = spec
        self.compiled = compiled
        self.name = spec.name
        self.version = str(spec.version)
        self.in_flight = 0
        self.inputs = compiled.inputs
        self.outputs = compiled.outputs
        self._metadata: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": _tensor_meta(compiled.inputs),
            "outputs": _tensor_meta(compiled.outputs),
        }

    def metadata(self, versions: list[str] | None = None) -> dict[str, Any]:
        """The model metadata document; ``versions`` lists every served version."""
        if versions is None:
            return self._metadata
        return {**self._metadata, "versions": versions}

    def config(self) -> dict[str, Any]:
        """A Triton-style model configuration document (for ``/config``)."""
        def entries(ports: Any) -> list[dict[str, Any]]:
            return [
                {"name": t["name"], "data_type": f"TYPE_{'STRING' if t['datatype'] == 'BYTES' else t['datatype']}",
                 "dims": t["shape"]}
                for t in _tensor_meta(ports)
            ]
        return {
            "name": self.name,
            "platform": PLATFORM,
            "backend": "aioplug",
            "version_policy": {"specific": {"versions": [int(self.version)]}},
            "max_batch_size": 0,
            "input": entries(self.inputs),
            "output": entries(self.outputs),
            "parameters": {"device": {"string_value": self.compiled.device_name}},
        }

    @property
    def ready(self) -> bool:
        """True while the compiled model is open."""
        return not self.compiled.closed

    def queue_full(self) -> bool:
        """True when a new caller would be refused now (every request busy, queue at its bound)."""
        stats = self.compiled.pool.statistics()
        return stats.idle == 0 and stats.created >= stats.size and stats.waiting >= stats.max_waiting

    async def infer(
        self, inputs: dict[str, Any], timeout_s: float | None = None, *, deadline_ms: float | None = None
    ) -> tuple[InferResults, dict[str, float]]:
        """Runs one inference; returns its outputs and the seconds of each stage.

        ``timeout_s`` covers the wait in the queue and the run; ``deadline_ms``, the whole
        deadline the client set, is what the error message quotes (default: ``timeout_s``).
        Raises ServerBusy when the queue is full, DeadlineExceeded when the deadline expires
        (the work is stopped), and ServerClosing when the model closes meanwhile.
        """
        pool = self.compiled.pool
        phase = "waiting in the queue"
        start = time.perf_counter()
        deadline = math.inf if timeout_s is None else anyio.current_time() + timeout_s
        scope = anyio.CancelScope(deadline=deadline)
        self.in_flight += 1
        try:
            with scope:
                try:
                    request = await pool.acquire()
                except QueueFull as exc:
                    raise ServerBusy(f"model {self.name!r} version {self.version} is busy: {exc}") from exc
                queued = time.perf_counter() - start
                phase = "running"
                try:
                    results = await request.infer(inputs)
                    stages = {"queue": queued, **request.stage_times}
                finally:
                    pool.release(request)
                return results, stages
        except ClosedError as exc:
            raise ServerClosing(f"model {self.name!r} is closed: the server is shutting down") from exc
        except Exception as exc:
            if scope.cancel_called:
                raise self._expired(deadline_ms, timeout_s, phase) from exc
            raise
        finally:
            self.in_flight -= 1
        raise self._expired(deadline_ms, timeout_s, phase)  # the deadline cancelled the scope

    @staticmethod
    def _expired(deadline_ms: float | None, timeout_s: float | None, phase: str) -> DeadlineExceeded:
        ms = deadline_ms if deadline_ms is not None else (timeout_s or 0.0) * 1e3
        log.debug("deadline of %g ms expired while %s", ms, phase)
        return DeadlineExceeded(f"the deadline of {ms:g} ms expired while {phase}; the work was stopped")
