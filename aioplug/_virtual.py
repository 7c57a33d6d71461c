"""Building blocks of virtual devices: plugins whose compiled models drive other devices.

AUTO, MULTI, HETERO and BATCH are devices like any other (found through the entry-point
group, passing the same conformance suite), except that they compile nothing themselves:
:class:`VirtualPlugin` compiles the model, or parts of it, on the devices named in
``MULTI_DEVICE_PRIORITIES`` through the plugin's :attr:`~Plugin.core`, and wraps the results
in a :class:`VirtualCompiledModel`. Its requests are :class:`VirtualSyncInferRequest`\\ s whose
compute stage is a coroutine awaiting the requests of those devices, so each part runs on its
own device's executors and nothing blocks the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, BinaryIO

from ._async_request import AsyncInferRequest, Stage
from ._compiled_model import CompiledModel
from ._executors import CancelToken, CoroutineExecutor
from ._naming import DeviceTarget, parse_device_name
from ._plugin import Plugin, RunBlocking
from ._profiling import ProfilingInfo
from ._remote import RemoteContext
from ._results import InferResults
from ._sync_request import SyncInferRequest
from .errors import DeviceError, DeviceNameError, ImportExportError
from .model import Model
from .properties import Mutability, PropertySpec, well_known

__all__ = ["VirtualCompiledModel", "VirtualPlugin", "VirtualSyncInferRequest"]

log = logging.getLogger(__name__)

VIRTUAL_ONLY_KEYS = frozenset(
    {
        "MULTI_DEVICE_PRIORITIES", "AUTO_BATCH_TIMEOUT", "ENABLE_RUNTIME_FALLBACK",
        "VARIABLE_STATES", "MAX_QUEUED_REQUESTS",
    }
)
"""Keys a virtual device keeps for itself rather than passing to the devices it drives.
(Variable state lives in the virtual request, which feeds it to its parts as plain inputs.)"""

_COMPILED_KEYS_NOT_VIRTUAL = frozenset(
    {"DEVICE_ID", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "COMPUTE_EXECUTOR"}
)


class VirtualPlugin(Plugin):
    """A device that compiles models on other devices and drives their compiled models.

    Subclasses fill :meth:`_compile_virtual` and :meth:`query_model`; they may override
    :meth:`default_targets` (used when the device list is empty).
    """

    def _property_specs(self) -> list[PropertySpec]:
        return well_known(
            "FULL_DEVICE_NAME", "AVAILABLE_DEVICES", "OPTIMIZATION_CAPABILITIES",
            "RANGE_FOR_ASYNC_INFER_REQUESTS", "PERFORMANCE_HINT", "PERFORMANCE_HINT_NUM_REQUESTS",
            "EXECUTION_MODE_HINT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS",
            "INFERENCE_NUM_THREADS", "PERF_COUNT", "VARIABLE_STATES", "MAX_QUEUED_REQUESTS",
            "COMPUTE_EXECUTOR", "MULTI_DEVICE_PRIORITIES",
        )

    def _readonly_values(self) -> dict[str, Any]:
        return {
            "FULL_DEVICE_NAME": lambda: self.full_device_name,
            "AVAILABLE_DEVICES": lambda: [],  # not a device of its own: not listed by the Core
            "OPTIMIZATION_CAPABILITIES": lambda: [],
            "RANGE_FOR_ASYNC_INFER_REQUESTS": lambda: (1, 64, 1),
        }

    def compile_config(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """The hardware devices' compile configuration, plus this device's own keys (its device
        list, batch timeout, fallback switch) as set on it, where ``properties`` leave them out."""
        config = super().compile_config(properties)
        values = self.properties.values()
        for key in VIRTUAL_ONLY_KEYS:
            if key in values and key not in config:
                config[key] = values[key]
        return config

    # -- targets -------------------------------------------------------------------------
    def targets(self, config: Mapping[str, Any]) -> list[DeviceTarget]:
        """The devices to drive, in priority order, from ``MULTI_DEVICE_PRIORITIES``.

        Exclusions (``-TEMPLATE``) are removed; an empty list means :meth:`default_targets`.
        """
        text = str(config.get("MULTI_DEVICE_PRIORITIES", "") or "")
        listed = list(parse_device_name(f"{self.device_name}:{text}").targets) if text else []
        excluded = {t.name.split(".")[0] for t in listed if t.excluded}
        chosen = [t for t in listed if not t.excluded]
        if not chosen:
            chosen = [t for t in self.default_targets() if t.name.split(".")[0] not in excluded]
        core = self.core
        for target in chosen:
            inner = parse_device_name(target.name)
            plugin = core.get_plugin(inner.device)
            if isinstance(plugin, VirtualPlugin):
                raise DeviceNameError(
                    f"{self.device_name} drives hardware devices; {target.name} is virtual"
                )
            if inner.device_id is not None:
                plugin._check_device_id(inner.device_id)
        if not chosen:
            raise DeviceNameError(
                f"{self.device_name} has no device to run on: every candidate is excluded "
                f"({text or 'no list'})"
            )
        return chosen

    def default_targets(self) -> list[DeviceTarget]:
        """Candidates when no list is given; by default, a list is required."""
        raise DeviceNameError(
            f"{self.device_name} needs a device list, e.g. '{self.device_name}:CPU'"
        )

    def forwarded_properties(
        self, target: DeviceTarget, config: Mapping[str, Any], explicit: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The properties passed on to ``target``: those given to this compile, and those set on
        this device that differ from their defaults, where ``target`` supports them."""
        specs = self.properties.specs
        values = {k: v for k, v in config.items() if k in explicit or v != specs[k].default}
        inner = self.core.get_plugin(parse_device_name(target.name).device)
        supported = inner.properties.specs
        return {
            k: v
            for k, v in values.items()
            if k not in VIRTUAL_ONLY_KEYS and k in supported and supported[k].mutable
        }

    # -- compile -------------------------------------------------------------------------
    def compile_model(self, model: Model, properties: Mapping[str, Any]) -> CompiledModel:
        raise DeviceError(
            f"{self.device_name} is a virtual device: compile through the Core, "
            f"`await core.compile_model(model, '{self.device_name}:CPU')`"
        )

    async def compile_model_async(
        self, model: Model, properties: Mapping[str, Any], run_blocking: RunBlocking
    ) -> CompiledModel:
        props = dict(properties)
        cache_dir = props.pop("CACHE_DIR", None)
        config = self.compile_config(props)
        explicit = {k: v for k, v in props.items() if k in config}
        targets = self.targets(config)
        forwarded = {
            str(t): {
                **self.forwarded_properties(t, config, explicit),
                **({"CACHE_DIR": cache_dir} if cache_dir else {}),
            }
            for t in targets
        }
        compiled = await self._compile_virtual(model, config, targets, forwarded)
        self._compiled.add(compiled)
        log.debug("%s compiled %s on %s", self.device_name, model.name, compiled.get_property("EXECUTION_DEVICES"))
        return compiled

    async def compile_on(
        self, model: Model | Any, target: DeviceTarget, properties: Mapping[str, Any]
    ) -> CompiledModel:
        """Compiles ``model`` on one target device through the Core."""
        return await self.core.compile_model(model, target.name, dict(properties))

    async def import_model_async(
        self,
        stream: BinaryIO | bytes,
        properties: Mapping[str, Any],
        run_blocking: RunBlocking,
        from_cache: bool = False,
    ) -> CompiledModel:
        raise ImportExportError(
            f"{self.device_name} cannot import compiled models: import onto the device that "
            "exported it"
        )

    def _create_default_context(self) -> RemoteContext:
        raise NotImplementedError(
            f"{self.device_name} is virtual and has no memory of its own: create remote "
            "tensors on a device it drives"
        )

    # -- holes ---------------------------------------------------------------------------
    async def _compile_virtual(
        self,
        model: Model,
        config: dict[str, Any],
        targets: list[DeviceTarget],
        forwarded: dict[str, dict[str, Any]],
    ) -> VirtualCompiledModel:
        """Compiles on the targets (``forwarded[str(target)]`` are their properties)."""
        raise NotImplementedError

    def query_model(self, model: Model, properties: Mapping[str, Any] | None = None) -> dict[str, str]:
        raise NotImplementedError


class VirtualCompiledModel(CompiledModel):
    """A compiled model whose requests drive ``parts``: compiled models of other devices."""

    def __init__(
        self,
        plugin: Plugin,
        model: Model,
        config: Mapping[str, Any],
        parts: Sequence[CompiledModel],
        *,
        optimal_requests: int,
    ) -> None:
        self._parts = tuple(parts)
        self._optimal = max(1, int(optimal_requests))
        super().__init__(plugin, model, config)
        self._coroutines = CoroutineExecutor(f"{plugin.device_name}-requests")
        self._compute = self._coroutines
        self._compute_mode = "VIRTUAL"

    @property
    def parts(self) -> tuple[CompiledModel, ...]:
        """The compiled models this one drives."""
        return self._parts

    @property
    def device_name(self) -> str:
        """The virtual device with its list, e.g. ``MULTI:CPU,TEMPLATE``."""
        priorities = self._config.get("MULTI_DEVICE_PRIORITIES", "")
        return f"{self._device}:{priorities}" if priorities else self._device

    def _property_specs(self) -> list[PropertySpec]:
        specs = [s for s in super()._property_specs() if s.name not in _COMPILED_KEYS_NOT_VIRTUAL]
        specs.extend(
            replace(s, mutability=Mutability.RO) for s in well_known("MULTI_DEVICE_PRIORITIES")
        )
        return specs

    def _execution_devices(self) -> list[str]:
        devices: list[str] = []
        for part in self._parts:
            for device in part.get_property("EXECUTION_DEVICES"):
                if device not in devices:
                    devices.append(device)
        return devices

    def _optimal_requests(self) -> int:
        limit = int(self._config.get("PERFORMANCE_HINT_NUM_REQUESTS", 0) or 0)
        return min(self._optimal, limit) if limit > 0 else self._optimal

    def _prepare(self) -> None:
        """Nothing to measure: the parts chose their own executors."""

    def set_property(self, properties: Mapping[str, Any]) -> None:
        super().set_property(properties)
        if "PERF_COUNT" in properties:
            for part in self._parts:
                part.set_property({"PERF_COUNT": self._perf_count})

    def get_context(self) -> RemoteContext:
        return self._plugin.get_default_context()

    def _create_async_infer_request(self, sync: SyncInferRequest) -> AsyncInferRequest:
        light = self.light_executor
        return AsyncInferRequest(
            sync,
            [
                Stage(light, sync.preprocess, "preprocess"),
                Stage(self._coroutines, sync.compute_async, "compute"),
                Stage(light, sync.postprocess, "postprocess"),
            ],
        )

    async def aclose(self) -> None:
        """Closes this model, then the parts it owns."""
        if self.closed:
            return
        await super().aclose()
        for part in self._parts:
            await part.aclose()


class VirtualSyncInferRequest(SyncInferRequest):
    """A request of a virtual device; devices fill :meth:`_infer` and :meth:`_infer_async`."""

    async def run_part(
        self, request: AsyncInferRequest, inputs: Any, token: CancelToken, label: str = ""
    ) -> InferResults:
        """Awaits ``request.infer(inputs)``: cancelling ``token`` cancels it, and its profiling
        records join this request's (its own stages named after ``label``)."""
        cancel = request.cancel
        token.add_callback(cancel)
        try:
            results = await request.infer(inputs)
        finally:
            token.remove_callback(cancel)
        if self.profiling_enabled:
            self.extend_profiling(part_records(request.get_profiling_info(), label))
        return results

    def run_part_sync(
        self, request: SyncInferRequest, inputs: Any, token: CancelToken, label: str = ""
    ) -> InferResults:
        """Runs a part's synchronous request on the calling thread (the sync path), under this
        request's ``token``, so cancelling this request stops the part at its next node."""
        token.raise_if_cancelled()
        request.set_inputs(inputs)
        request.token = token
        try:
            request.preprocess()
            request.compute()
            request.postprocess()
        finally:
            request.token = CancelToken()
        results = request.results
        assert results is not None
        if self.profiling_enabled:
            self.extend_profiling(part_records(request.get_profiling_info(), label))
        return results


def part_records(records: Sequence[ProfilingInfo], label: str) -> list[ProfilingInfo]:
    """A part's profiling records, its own stages renamed ``"<label>: input preprocessing"``."""
    if not label:
        return list(records)
    stages = {"Preprocess", "Postprocess", "Compute"}
    return [
        replace(r, node_name=f"{label}: {r.node_name}") if r.node_type in stages else r for r in records
    ]
