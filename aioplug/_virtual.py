"""Building blocks of virtual devices: plugins whose compiled models drive other devices.

AUTO, MULTI, HETERO and BATCH are devices like any other (found through the entry-point
group, passing the same conformance suite), except that they compile nothing themselves:
:class:`VirtualPlugin` compiles the model, or parts of it, on the devices named in
``MULTI_DEVICE_PRIORITIES`` through the plugin's :attr:`~Plugin.core`, and wraps the results
in a :class:`VirtualCompiledModel`. Its requests are :class:`VirtualSyncInferRequest`\\ s whose
compute stage is a coroutine awaiting the requests of those devices, so each part runs on its
own device's executors and nothing blocks the loop.

Export and import: a virtual compiled model that can be rebuilt writes, in its export blob,
a bundle (:mod:`aioplug._bundle`) of a JSON manifest and the blobs its parts exported on their
own devices; :meth:`VirtualPlugin.import_model_async` checks the blob's header and hands the
bundle to the device's :meth:`VirtualPlugin._import_virtual`, which imports each part on its
device through the Core (:meth:`VirtualPlugin.import_on`), never compiling. The model cache
works the same way, its key folding in the configuration of every device driven
(:meth:`VirtualPlugin.caching_key_values`).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from ._async_request import AsyncInferRequest, Stage
from ._blob import read_blob
from ._bundle import unpack_bundle
from ._compiled_model import CompiledModel
from ._executors import CancelToken, CoroutineExecutor
from ._naming import DeviceTarget, parse_device_name
from ._plugin import Plugin, RunBlocking
from ._profiling import ProfilingInfo
from ._remote import RemoteContext
from ._results import InferResults
from ._sync_request import SyncInferRequest
from .errors import AioplugError, DeviceError, DeviceNameError, ImportExportError, PropertyError
from .model import Model, read_model
from .properties import Mutability, PropertySpec, well_known

__all__ = [
    "VirtualCompiledModel", "VirtualImport", "VirtualPlugin", "VirtualSyncInferRequest",
    "exported_bytes",
]

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


@dataclass(frozen=True)
class VirtualImport:
    """How one import runs: the configuration (the stream's, overlaid by the properties given),
    the properties given explicitly (empty for a cache hit), whether it is a cache hit, and the
    device actor's worker thread for parsing."""

    config: dict[str, Any]
    explicit: dict[str, Any]
    from_cache: bool
    run_blocking: RunBlocking

    async def read_model(self, data: bytes, device: str) -> Model:
        """The original model stored in a virtual export, read back on the worker thread."""
        try:
            model: Model = await self.run_blocking(read_model, data)
        except AioplugError as exc:
            raise ImportExportError(f"the {device} stream's model is invalid: {exc}") from exc
        return model


class VirtualPlugin(Plugin):
    """A device that compiles models on other devices and drives their compiled models.

    Subclasses fill :meth:`_compile_virtual` and :meth:`query_model`; they may override
    :meth:`default_targets` (used when the device list is empty). A device that exports fills
    :meth:`_import_virtual` and lists ``EXPORT_IMPORT`` in its ``OPTIMIZATION_CAPABILITIES``.
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

    def caching_key_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """What makes a cached compilation reusable: the devices driven, in priority order, each
        with its plugin's version, its own caching values under the properties it would be
        given, and the ops it is told to refuse (they decide placement); plus this device's own
        values that shape the result (variable states, precision and execution-mode hints).

        The properties given to a device are reconstructed as those of this configuration that
        differ from this device's defaults (a value passed explicitly but equal to the default
        cannot be told apart here)."""
        out: dict[str, Any] = {
            key: config.get(key)
            for key in ("VARIABLE_STATES", "INFERENCE_PRECISION_HINT", "EXECUTION_MODE_HINT")
            if key in config
        }
        devices = []
        for target in self.targets(config):
            forwarded = self.forwarded_properties(target, config, {})
            plugin, props = self._target_plugin(target, forwarded)
            target_config = plugin.compile_config(props)
            values = plugin.caching_key_values(target_config)
            unsupported = target_config.get("TEST_UNSUPPORTED_OPS")
            if unsupported:
                values["TEST_UNSUPPORTED_OPS"] = sorted(str(op) for op in unsupported)
            devices.append(
                {
                    "target": str(target), "plugin": plugin.device_name,
                    "version": plugin.version, "values": values,
                }
            )
        out["devices"] = devices
        return out

    def _target_plugin(
        self, target: DeviceTarget, props: Mapping[str, Any]
    ) -> tuple[Plugin, dict[str, Any]]:
        """The plugin of a target, and ``props`` with the target's device id (checked: an
        unknown device or id raises DeviceNotFound)."""
        name = parse_device_name(target.name)
        plugin = self.core.get_plugin(name.device)
        out = dict(props)
        if name.device_id is not None:
            plugin._check_device_id(name.device_id)
            out["DEVICE_ID"] = name.device_id
        return plugin, out

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
        """Compiles ``model`` on one target device through the Core.

        A device that exports is cached whole by the Core, so its parts are not cached again
        on their own (``CACHE_DIR`` is turned off for them unless given)."""
        props = dict(properties)
        if "EXPORT_IMPORT" in self.get_property("OPTIMIZATION_CAPABILITIES"):
            props.setdefault("CACHE_DIR", "")
        return await self.core.compile_model(model, target.name, props)

    async def import_model_async(
        self,
        stream: BinaryIO | bytes,
        properties: Mapping[str, Any],
        run_blocking: RunBlocking,
        from_cache: bool = False,
    ) -> CompiledModel:
        """Rebuilds a compiled model this device exported: checks the blob (device, versions,
        checksum) on the worker thread, takes the stream's configuration overlaid by
        ``properties``, and hands the bundle to :meth:`_import_virtual`."""
        if "EXPORT_IMPORT" not in self.get_property("OPTIMIZATION_CAPABILITIES"):
            raise ImportExportError(
                f"{self.device_name} cannot import compiled models: it does not export them "
                "(compile the model again)"
            )
        header, payload = await run_blocking(read_blob, stream, self.device_name)
        config = self._stream_config(header)
        try:
            given = self.properties.validate(properties)
        except PropertyError as exc:
            raise ImportExportError(f"the stream's configuration is not valid here: {exc}") from exc
        config.update(given)
        # a cache hit is given the whole current configuration: forward as a compile would
        explicit = {} if from_cache else {k: v for k, v in given.items() if k in config}
        manifest, sections = unpack_bundle(payload, self.device_name)
        how = VirtualImport(config, explicit, from_cache, run_blocking)
        try:
            compiled = await self._import_virtual(manifest, sections, how)
        except ImportExportError:
            raise
        except AioplugError as exc:  # a stream that disagrees with itself, e.g. its states
            raise ImportExportError(f"{self.device_name} cannot rebuild the stream: {exc}") from exc
        self._compiled.add(compiled)
        log.debug(
            "%s imported %s on %s", self.device_name, compiled.model.name,
            compiled.get_property("EXECUTION_DEVICES"),
        )
        return compiled

    async def import_on(self, blob: bytes, target: DeviceTarget, how: VirtualImport) -> CompiledModel:
        """Imports one part's blob on ``target`` through the Core, with the properties a compile
        would forward there (on a cache hit, the target's whole compile configuration, so that
        nothing of the stored configuration outlives a change). Any failure, an unavailable
        device included, is an ImportExportError naming the part's device."""
        try:
            plugin, props = self._target_plugin(
                target, self.forwarded_properties(target, how.config, how.explicit)
            )
            if isinstance(plugin, VirtualPlugin):
                raise DeviceNameError(f"{target.name} is virtual; parts run on hardware devices")
            if how.from_cache:
                props = plugin.compile_config(props)
            return await self.core._import_model(blob, target.name, props, from_cache=how.from_cache)
        except ImportExportError as exc:
            raise ImportExportError(
                f"{self.device_name}: the part for {target.name} cannot be imported: {exc}"
            ) from exc
        except AioplugError as exc:
            raise ImportExportError(
                f"{self.device_name}: the stream has a part for {target.name}, which cannot run "
                f"here ({exc}); available devices: {', '.join(self.core.available_devices)}"
            ) from exc

    def query_setup(
        self, properties: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], list[DeviceTarget], dict[str, dict[str, Any]]]:
        """For ``query_model``: the configuration, the targets and each target's properties."""
        props = {k: v for k, v in (properties or {}).items() if k != "CACHE_DIR"}
        config = self.compile_config(props)
        explicit = {k: v for k, v in props.items() if k in config}
        targets = self.targets(config)
        forwarded = {str(t): self.forwarded_properties(t, config, explicit) for t in targets}
        return config, targets, forwarded

    @staticmethod
    async def gather_parts(jobs: Iterable[Awaitable[CompiledModel]]) -> list[CompiledModel]:
        """Awaits compilations or imports of parts at once (each device's actor takes its own in
        order); if any fails, closes the others and raises the first error."""
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        done = [o for o in outcomes if isinstance(o, CompiledModel)]
        if errors:
            for part in done:
                await part.aclose()
            raise errors[0]
        return done

    def check_stream_devices(self, config: Mapping[str, Any], devices: Iterable[str]) -> None:
        """Raises ImportExportError when the import names a device list that leaves out a
        device the stream runs on."""
        try:
            listed = {parse_device_name(t.name).device for t in self.targets(config)}
        except AioplugError as exc:
            raise ImportExportError(f"{self.device_name}: {exc}") from exc
        missing = [d for d in devices if parse_device_name(d).device not in listed]
        if missing:
            raise ImportExportError(
                f"the stream runs on {', '.join(missing)}, which the device list "
                f"{config.get('MULTI_DEVICE_PRIORITIES')!r} of {self.device_name} leaves out: "
                f"import onto '{self.device_name}' alone or list those devices"
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

    async def _import_virtual(
        self, manifest: dict[str, Any], sections: list[bytes], how: VirtualImport
    ) -> VirtualCompiledModel:
        """Rebuilds the compiled model from its export bundle; parts through :meth:`import_on`."""
        raise ImportExportError(
            f"{self.device_name} cannot import compiled models: compile the model again"
        )

    def query_model(self, model: Model, properties: Mapping[str, Any] | None = None) -> dict[str, str]:
        raise NotImplementedError


def exported_bytes(compiled: CompiledModel) -> bytes:
    """The blob ``compiled.export_model`` writes, as bytes (a part of a virtual export)."""
    stream = io.BytesIO()
    compiled.export_model(stream)
    return stream.getvalue()


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
        loaded_from_cache: bool = False,
    ) -> None:
        self._parts = tuple(parts)
        self._optimal = max(1, int(optimal_requests))
        super().__init__(plugin, model, config, loaded_from_cache=loaded_from_cache)
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
