"""The compiled model: an execution configuration of one model on one device.

It is the actor that owns the request pool and the stage executors. ``await infer(...)``
borrows a request from the pool (waiting in FIFO order when all are busy, ``QueueFull`` past
``MAX_QUEUED_REQUESTS``), runs it, and returns it. Devices subclass it and fill the holes
:meth:`CompiledModel._create_sync_infer_request` and :meth:`CompiledModel._export_payload`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
import numpy as np

from ._async_request import AsyncInferRequest, Stage
from ._blob import write_blob
from ._executors import Executor, ExecutorStatistics, LoopExecutor, ThreadExecutor
from ._pool import PoolStatistics, RequestPool
from ._remote import RemoteContext
from ._results import InferResults
from ._sync_request import SyncInferRequest
from .errors import ClosedError, ModelError, PropertyError
from .model import Model, Port, _select
from .properties import Mutability, PropertySet, PropertySpec, well_known

if TYPE_CHECKING:
    from ._plugin import Plugin

__all__ = ["CompiledModel", "CompiledModelStatistics"]

log = logging.getLogger(__name__)

LOOP_COMPUTE_THRESHOLD_S = 50e-6
"""Plans whose measured compute is below this run on the event loop (no thread hop)."""

MEASURE_RUNS = 30
MEASURE_BUDGET_S = 0.02
"""At most this many warm-up runs, and this much time, to measure a plan's compute."""

LATENCY_LOOP_COMPUTE_THRESHOLD_S = 500e-6
"""The same bound under ``PERFORMANCE_HINT=LATENCY``: one stream serialises requests anyway,
and a loop -> thread -> loop hop (40-100 us on a 2-core machine, more when the machine is
busy) would be a large part of such a run; half a millisecond on the loop is well inside
what an event loop tolerates between its I/O."""

_RUNTIME_MUTABLE = frozenset({"PERF_COUNT", "MAX_QUEUED_REQUESTS"})


@dataclass(frozen=True)
class CompiledModelStatistics:
    """A snapshot of a compiled model's pool and executors."""

    pool: PoolStatistics
    executors: tuple[ExecutorStatistics, ...]
    in_flight_tasks: int


class CompiledModel:
    """One model compiled for one device; lends requests from its pool."""

    def __init__(
        self,
        plugin: Plugin,
        model: Model,
        config: Mapping[str, Any],
        *,
        loaded_from_cache: bool = False,
    ) -> None:
        self._plugin = plugin
        self._model = model
        self._device = plugin.device_name
        self._config = dict(config)
        self._loaded_from_cache = loaded_from_cache
        self._perf_count = bool(self._config.get("PERF_COUNT", False))
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._requests: weakref.WeakSet[AsyncInferRequest] = weakref.WeakSet()
        self._init_ports(model)
        self._streams = self._resolve_streams()
        self._properties = PropertySet(
            f"compiled model {model.name!r} on {self._device}",
            self._property_specs(),
            getters={
                "NETWORK_NAME": lambda: self._model.name,
                "EXECUTION_DEVICES": self._execution_devices,
                "LOADED_FROM_CACHE": lambda: self._loaded_from_cache,
                "OPTIMAL_NUMBER_OF_INFER_REQUESTS": self._optimal_requests,
                "PERF_COUNT": lambda: self._perf_count,
                "MAX_QUEUED_REQUESTS": lambda: self._pool.max_waiting,
                "COMPUTE_EXECUTOR": lambda: self._compute_mode,
                "NUM_STREAMS": lambda: self._streams,
            },
        )
        self._properties.set(
            {k: v for k, v in self._config.items() if k in self._properties.specs},
            allow_ro=True,
        )
        self._compute_mode = str(self._config.get("COMPUTE_EXECUTOR", "AUTO"))
        self._loop_executor = LoopExecutor(f"{self._device}-loop")
        self._compute: Executor = self._loop_executor
        self._threads: ThreadExecutor | None = None
        self._pool: RequestPool[AsyncInferRequest] = RequestPool(
            self.create_infer_request,
            self._optimal_requests(),
            int(self._config.get("MAX_QUEUED_REQUESTS", 4096)),
        )

    # -- ports ---------------------------------------------------------------------------
    def _init_ports(self, model: Model) -> None:
        state_map: dict[str, str] = dict(self._config.get("VARIABLE_STATES") or {})
        in_names = {p.name: p for p in model.inputs}
        out_names = {p.name: p for p in model.outputs}
        initials: dict[str, np.ndarray] = {}
        for src, dst in state_map.items():
            if src not in in_names:
                raise ModelError(
                    f"VARIABLE_STATES names {src!r}, which is not an input of {model.name!r}; "
                    f"inputs: {', '.join(in_names)}"
                )
            if dst not in out_names:
                raise ModelError(
                    f"VARIABLE_STATES maps {src!r} to {dst!r}, which is not an output; "
                    f"outputs: {', '.join(out_names)}"
                )
            port = in_names[src]
            if port.is_dynamic or port.dtype is None:
                raise ModelError(
                    f"state input {src!r} has {port.describe()}; a state needs a static shape "
                    "and a tensor type: fix the input's shape in the model"
                )
            initials[src] = np.zeros(tuple(int(d) for d in port.shape or ()), dtype=port.dtype)  # type: ignore[arg-type]
        self._state_map = state_map
        self._state_initials = initials
        self._graph_inputs: tuple[Port, ...] = model.inputs
        self._graph_outputs: tuple[Port, ...] = model.outputs
        self._graph_output_index = {p.name: i for i, p in enumerate(model.outputs)}
        states_out = set(state_map.values())
        self.inputs: tuple[Port, ...] = tuple(
            Port(p.name, p.dtype, p.shape, i, p.kind)
            for i, p in enumerate(p for p in model.inputs if p.name not in state_map)
        )
        self.outputs: tuple[Port, ...] = tuple(
            Port(p.name, p.dtype, p.shape, i, p.kind)
            for i, p in enumerate(p for p in model.outputs if p.name not in states_out)
        )

    def input(self, key: str | int | None = None) -> Port:
        """Returns the input named or numbered ``key``; the only one when ``key`` is None."""
        return _select(self.inputs, key, "input", self._model.name)

    def output(self, key: str | int | None = None) -> Port:
        """Returns the output named or numbered ``key``; the only one when ``key`` is None."""
        return _select(self.outputs, key, "output", self._model.name)

    @property
    def device_name(self) -> str:
        """The device this model is compiled for (with its id, e.g. ``TEMPLATE.0``)."""
        return f"{self._device}.{self._config.get('DEVICE_ID', '0')}"

    @property
    def model(self) -> Model:
        """The model as compiled (the runtime model)."""
        return self._model

    @property
    def plugin(self) -> Plugin:
        """The plugin that compiled this model."""
        return self._plugin

    # -- properties ----------------------------------------------------------------------
    def _property_specs(self) -> list[PropertySpec]:
        """The compiled model's properties: those fixed at compile time are read-only here."""
        specs = well_known(
            "NETWORK_NAME", "EXECUTION_DEVICES", "LOADED_FROM_CACHE",
            "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "DEVICE_ID", "PERF_COUNT", "PERFORMANCE_HINT",
            "NUM_STREAMS", "INFERENCE_NUM_THREADS", "VARIABLE_STATES", "MAX_QUEUED_REQUESTS",
            "COMPUTE_EXECUTOR", "EXECUTION_MODE_HINT", "INFERENCE_PRECISION_HINT",
        )
        return [
            spec if spec.name in _RUNTIME_MUTABLE else replace(spec, mutability=Mutability.RO)
            for spec in specs
        ]

    def get_property(self, name: str) -> Any:
        """Returns a property of the compiled model."""
        return self._properties.get(name)

    def set_property(self, properties: Mapping[str, Any]) -> None:
        """Sets run-time properties (``PERF_COUNT``, ``MAX_QUEUED_REQUESTS``)."""
        for name in properties:
            spec = self._properties.spec(name)
            if not spec.mutable:
                raise PropertyError(
                    f"{name} is read-only on a compiled model (fixed when it was compiled: pass "
                    f"it to compile_model). Settable now: {', '.join(sorted(_RUNTIME_MUTABLE))}"
                )
        checked = self._properties.validate(properties)
        if "PERF_COUNT" in checked:
            self._perf_count = bool(checked["PERF_COUNT"])
        if "MAX_QUEUED_REQUESTS" in checked:
            self._pool.max_waiting = int(checked["MAX_QUEUED_REQUESTS"])

    def _resolve_streams(self) -> int:
        streams = int(self._config.get("NUM_STREAMS", -1))
        if streams <= 0:
            hint = self._config.get("PERFORMANCE_HINT", "LATENCY")
            streams = 1 if hint == "LATENCY" else max(1, os.cpu_count() or 1)
        return streams

    def _execution_devices(self) -> list[str]:
        return [self.device_name]

    def _optimal_requests(self) -> int:
        n = self._streams
        limit = int(self._config.get("PERFORMANCE_HINT_NUM_REQUESTS", 0) or 0)
        return min(n, limit) if limit > 0 else n

    def get_context(self) -> RemoteContext:
        """The device context the model was compiled in."""
        return self._plugin.get_default_context()

    # -- executors -----------------------------------------------------------------------
    def _prepare(self) -> None:
        """Chooses the compute executor; called once after compilation, off the loop."""
        mode = self._compute_mode
        if mode == "AUTO":
            measured = self._measure_compute()
            limit = (
                LATENCY_LOOP_COMPUTE_THRESHOLD_S
                if self._streams == 1 and self._config.get("PERFORMANCE_HINT", "LATENCY") == "LATENCY"
                else LOOP_COMPUTE_THRESHOLD_S
            )
            mode = "LOOP" if measured is not None and measured < limit else "STREAMS"
            log.debug(
                "%s: compute measured %s s -> %s", self.device_name, measured, mode
            )
        self._compute_mode = mode
        if mode == "STREAMS":
            self._threads = ThreadExecutor(f"{self._device}-stream", self._streams)
            self._compute = self._threads

    def _measure_compute(self) -> float | None:
        """The compute time a plan is judged by: the best of a few warm-up runs on zero
        inputs; None when they cannot run.

        The time is this thread's CPU time, which another process taking the core does not
        inflate (on a shared machine wall times drift by tens of per cent), unless the wall
        time is more than twice it: then the work ran on other threads too (BLAS), and the
        wall time, which is what would block the loop, counts."""
        if any(p.is_dynamic or p.dtype is None for p in self._graph_inputs):
            return None
        request = self._create_sync_infer_request()
        best_wall = best_cpu = float("inf")
        spent = 0.0
        try:
            # the first runs of a new process pay one-time set-up (page faults on fresh
            # weights, BLAS start-up, caches), so a small plan is run until its best time
            # settles: up to MEASURE_RUNS runs within MEASURE_BUDGET_S after the first; a
            # large one stops after two
            for run in range(MEASURE_RUNS):
                cpu = time.thread_time()
                request.infer()
                best_cpu = min(best_cpu, time.thread_time() - cpu)
                elapsed = request.stage_times["compute"]
                best_wall = min(best_wall, elapsed)
                spent += elapsed if run else 0.0
                large = best_wall > 10 * LATENCY_LOOP_COMPUTE_THRESHOLD_S
                if run >= 1 and (large or spent > MEASURE_BUDGET_S):
                    break
        except Exception as exc:  # zeros are not valid input for every model
            log.debug("%s: warm-up run failed (%r); using stream threads", self.device_name, exc)
            return None
        return best_wall if best_wall > 2 * best_cpu else min(best_cpu, best_wall)

    @property
    def light_executor(self) -> Executor:
        """The executor of light stages (the event loop)."""
        return self._loop_executor

    @property
    def compute_executor(self) -> Executor:
        """The executor of the compute stage (stream threads, or the loop for tiny plans)."""
        return self._compute

    def _pipeline(self, request: SyncInferRequest) -> list[Stage]:
        """The async pipeline of a request: preprocess, compute, postprocess."""
        return [
            Stage(self._loop_executor, request.preprocess, "preprocess"),
            Stage(self._compute, request.compute, "compute"),
            Stage(self._loop_executor, request.postprocess, "postprocess"),
        ]

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests ------------------------------------------------------------------------
    def create_sync_infer_request(self) -> SyncInferRequest:
        """Creates a synchronous request: ``request.infer(inputs)`` runs on the calling thread."""
        self._check_open()
        return self._create_sync_infer_request()

    def create_infer_request(self) -> AsyncInferRequest:
        """Creates an asynchronous request of its own, outside the pool."""
        self._check_open()
        request = self._create_async_infer_request(self._create_sync_infer_request())
        self._requests.add(request)
        return request

    async def infer(self, inputs: Any = None, *, timeout: float | None = None) -> InferResults:
        """Runs one inference on a request borrowed from the pool; returns its outputs.

        ``timeout`` (seconds) covers the wait for a free request and the run; past it the run
        is cancelled and ``TimeoutError`` raised.
        """
        if timeout is not None:
            with anyio.fail_after(timeout):
                return await self._infer_pooled(inputs)
        return await self._infer_pooled(inputs)

    async def _infer_pooled(self, inputs: Any) -> InferResults:
        pool = self._pool
        request = await pool.acquire()
        try:
            return await request.infer(inputs)
        finally:
            pool.release(request)

    @property
    def pool(self) -> RequestPool[AsyncInferRequest]:
        """The request pool behind :meth:`infer`."""
        return self._pool

    def statistics(self) -> CompiledModelStatistics:
        """Returns a snapshot of the pool and executors."""
        executors = [self._loop_executor.statistics()]
        if self._threads is not None:
            executors.append(self._threads.statistics())
        return CompiledModelStatistics(self._pool.statistics(), tuple(executors), len(self._tasks))

    # -- export --------------------------------------------------------------------------
    def export_model(self, stream: BinaryIO) -> None:
        """Writes the compiled model to a binary stream; ``Core.import_model`` reads it back."""
        self._check_open()
        config = {
            k: v for k, v in self._config.items() if k not in {"CACHE_DIR", "LOADED_FROM_CACHE"}
        }
        header = {
            "device": self._plugin.device_name,
            "plugin_version": self._plugin.version,
            "network_name": self._model.name,
            "config": config,
        }
        write_blob(stream, header, self._export_payload())

    # -- lifecycle -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"compiled model {self._model.name!r} on {self._device} is closed")

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    async def aclose(self) -> None:
        """Cancels running requests, stops the executors' threads; later use raises ClosedError."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        for request in list(self._requests):
            request._stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*tasks, return_exceptions=True)
        if self._threads is not None:
            self._threads.close()
        self._plugin._forget(self)

    # -- holes for devices ---------------------------------------------------------------
    def _create_sync_infer_request(self) -> SyncInferRequest:
        """Creates the device's synchronous request."""
        raise NotImplementedError

    def _create_async_infer_request(self, sync: SyncInferRequest) -> AsyncInferRequest:
        """Wraps a sync request in the async pipeline; override to change the stages."""
        return AsyncInferRequest(sync, self._pipeline(sync))

    def _export_payload(self) -> bytes:
        """Returns the device-specific bytes that ``Plugin._import_model`` reads back."""
        raise NotImplementedError(f"{self._device} cannot export compiled models")

    def __repr__(self) -> str:
        return f"<CompiledModel {self._model.name!r} on {self.device_name}>"
