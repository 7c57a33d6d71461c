"""AUTO's and MULTI's compiled models.

:class:`AutoCompiledModel` runs on the chosen device and keeps the other capable candidates for
runtime fallback, compiling one the first time a request needs it. :class:`MultiCompiledModel`
holds one compiled model per device and a shared :class:`~.workers.WorkerPool` of their requests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from aioplug.plugin import (
    AsyncInferRequest,
    CompiledModel,
    DeviceTarget,
    ImportExportError,
    Model,
    Plugin,
    Stage,
    SyncInferRequest,
    VirtualCompiledModel,
    VirtualPlugin,
    parse_device_name,
)

from .export import write_stream
from .infer_request import AutoInferRequest, MultiInferRequest
from .workers import WorkerPool

log = logging.getLogger(__name__)


class AutoCompiledModel(VirtualCompiledModel):
    """The model compiled on AUTO's choice, with the next candidates for runtime fallback."""

    def __init__(
        self,
        plugin: VirtualPlugin,
        model: Model,
        config: Mapping[str, Any],
        chosen: CompiledModel,
        fallbacks: Sequence[tuple[DeviceTarget, dict[str, Any]]],
        *,
        chosen_target: DeviceTarget,
        loaded_from_cache: bool = False,
    ) -> None:
        super().__init__(
            plugin, model, config, [chosen],
            optimal_requests=int(chosen.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")),
            loaded_from_cache=loaded_from_cache,
        )
        self._chosen_target = chosen_target
        self._candidates: list[tuple[DeviceTarget, dict[str, Any]]] = list(fallbacks)
        self._models: list[CompiledModel | None] = [chosen] + [None] * len(self._candidates)
        self._auto = plugin
        self._names = [",".join(chosen.get_property("EXECUTION_DEVICES"))] + [
            target.name for target, _ in self._candidates
        ]
        self._sync_lock = threading.Lock()
        self.fallback_enabled = bool(self._config.get("ENABLE_RUNTIME_FALLBACK", True))

    @property
    def chosen(self) -> CompiledModel:
        """The compiled model on the device AUTO chose."""
        return self.parts[0]

    def _execution_devices(self) -> list[str]:
        return list(self.chosen.get_property("EXECUTION_DEVICES"))

    @property
    def candidates(self) -> int:
        """How many devices a request may run on: the choice and its fallbacks."""
        return len(self._models) if self.fallback_enabled else 1

    def compiled_candidate(self, index: int) -> CompiledModel | None:
        """The compiled model of candidate ``index`` (0: the choice), if compiled yet."""
        return self._models[index]

    def candidate(self, index: int) -> CompiledModel:
        """The compiled model of candidate ``index`` (0: the choice). A fallback is compiled on
        first need, on the thread that needs it (a stream thread of the chosen device)."""
        compiled = self._models[index]
        if compiled is not None:
            return compiled
        with self._sync_lock:
            compiled = self._models[index]
            if compiled is None:
                target, props = self._candidates[index - 1]
                name = parse_device_name(target.name)
                if name.device_id is not None:
                    props = {**props, "DEVICE_ID": name.device_id}
                device = self._auto.core.get_plugin(name.device)
                compiled = device.compile_model(self.model, props)
                self._models[index] = compiled
            return compiled

    def candidate_name(self, index: int) -> str:
        """The device of candidate ``index``, as profiling records and logs name it."""
        return self._names[index]

    @property
    def chosen_target(self) -> DeviceTarget:
        """The listed device AUTO chose (``CPU``, or ``CPU.1`` as listed)."""
        return self._chosen_target

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return AutoInferRequest(self)

    def _create_async_infer_request(self, sync: SyncInferRequest) -> AsyncInferRequest:
        """One pipeline per request: its compute stage runs the chosen device's request on that
        device's compute executor (stream threads, or the loop for tiny models), rather than a
        second pipeline awaited inside this one."""
        light = self.light_executor
        return AsyncInferRequest(
            sync,
            [
                Stage(light, sync.preprocess, "preprocess"),
                Stage(self.chosen.compute_executor, sync.compute, "compute"),
                Stage(light, sync.postprocess, "postprocess"),
            ],
        )

    def _export_payload(self) -> bytes:
        """The original model, the chosen device's own export and the fallback candidates."""
        fallbacks = [target for target, _ in self._candidates]
        return write_stream(self.model, self._chosen_target, self.chosen, fallbacks)

    async def aclose(self) -> None:
        if self.closed:
            return
        await super().aclose()
        for compiled in self._models[1:]:
            if compiled is not None:
                await compiled.aclose()


class MultiCompiledModel(VirtualCompiledModel):
    """One compiled model per device; requests go to whichever device frees one first."""

    def __init__(
        self, plugin: Plugin, model: Model, config: Mapping[str, Any], parts: Sequence[CompiledModel]
    ) -> None:
        workers = WorkerPool(parts)
        super().__init__(plugin, model, config, parts, optimal_requests=workers.size)
        self.workers = workers

    def _create_sync_infer_request(self) -> SyncInferRequest:
        return MultiInferRequest(self)

    def _export_payload(self) -> bytes:
        raise ImportExportError(
            f"{self.device_name} cannot export compiled models: a model spread over several "
            "devices is not exportable (as in OpenVINO's MULTI); export from one device, e.g. "
            "compile on 'AUTO' without CUMULATIVE_THROUGHPUT, or on a hardware device"
        )

    async def aclose(self) -> None:
        if self.closed:
            return
        self.workers.close()
        await super().aclose()
