"""The plugin base class: one per device type, created by ``create_plugin_engine()``.

A device subclasses :class:`Plugin` and fills small holes: its property specs and read-only
values, :meth:`Plugin._compile_model`, :meth:`Plugin._import_model`,
:meth:`Plugin._is_node_supported` and :meth:`Plugin._create_default_context`. The public
methods validate and translate errors; the Core calls them (compile and import from the
device actor's worker thread).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ._blob import read_blob
from ._remote import RemoteContext
from .errors import DeviceError, DeviceNotFound, ImportExportError, PropertyError, UnsupportedOp
from .model import Model, Node, read_model
from .properties import PropertySet, PropertySpec, well_known

if TYPE_CHECKING:
    from ._compiled_model import CompiledModel
    from ._core import Core

__all__ = ["Plugin"]

log = logging.getLogger(__name__)
T = TypeVar("T")

RunBlocking = Callable[..., Awaitable[Any]]
"""``await run_blocking(fn, *args)``: runs ``fn`` on the device actor's worker thread."""

COMPILE_TIME_KEYS = frozenset(
    {
        "PERFORMANCE_HINT", "PERFORMANCE_HINT_NUM_REQUESTS", "EXECUTION_MODE_HINT",
        "INFERENCE_PRECISION_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERF_COUNT",
        "DEVICE_ID", "VARIABLE_STATES", "MAX_QUEUED_REQUESTS", "COMPUTE_EXECUTOR",
        "TEST_UNSUPPORTED_OPS",
    }
)
"""Plugin properties that a compiled model takes over as its configuration."""


class Plugin:
    """Describes one device type and compiles models for it."""

    version: str = "0.0.0"
    """The plugin's version; part of the cache key and the export header."""

    full_device_name: str = "device"

    def __init__(self, device_name: str) -> None:
        self.device_name = device_name
        self._properties = PropertySet(
            f"device {device_name}", self._property_specs(), getters=self._readonly_values()
        )
        self._context: RemoteContext | None = None
        self._compiled: weakref.WeakSet[CompiledModel] = weakref.WeakSet()
        self._core: weakref.ref[Core] | None = None

    # -- the Core ------------------------------------------------------------------------
    def _attach(self, core: Core) -> None:
        self._core = weakref.ref(core)

    @property
    def core(self) -> Core:
        """The Core that loaded this plugin (virtual devices compile through it)."""
        core = self._core() if self._core is not None else None
        if core is None:
            raise DeviceError(f"plugin {self.device_name} is not attached to an open Core")
        return core

    # -- properties ----------------------------------------------------------------------
    def _property_specs(self) -> list[PropertySpec]:
        """The device's supported properties; override to add or remove keys."""
        return well_known(
            "FULL_DEVICE_NAME", "AVAILABLE_DEVICES", "OPTIMIZATION_CAPABILITIES",
            "RANGE_FOR_ASYNC_INFER_REQUESTS", "RANGE_FOR_STREAMS", "EXECUTION_DEVICES",
            "DEVICE_ARCHITECTURE", "DEVICE_TYPE", "CACHING_PROPERTIES", "PERFORMANCE_HINT",
            "PERFORMANCE_HINT_NUM_REQUESTS", "EXECUTION_MODE_HINT", "INFERENCE_PRECISION_HINT",
            "NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERF_COUNT", "DEVICE_ID",
            "VARIABLE_STATES", "MAX_QUEUED_REQUESTS", "COMPUTE_EXECUTOR", "TEST_UNSUPPORTED_OPS",
        )

    def _readonly_values(self) -> dict[str, Any]:
        """Getters of the read-only properties."""
        return {
            "FULL_DEVICE_NAME": lambda: self.full_device_name,
            "AVAILABLE_DEVICES": lambda: ["0"],
            "OPTIMIZATION_CAPABILITIES": lambda: ["FP32", "EXPORT_IMPORT"],
            "RANGE_FOR_ASYNC_INFER_REQUESTS": lambda: (1, 64, 1),
            "RANGE_FOR_STREAMS": lambda: (1, 64),
            "EXECUTION_DEVICES": lambda: [f"{self.device_name}.0"],
            "DEVICE_ARCHITECTURE": lambda: self.device_name,
            "DEVICE_TYPE": lambda: "integrated",
            "CACHING_PROPERTIES": lambda: [
                "DEVICE_ARCHITECTURE", "EXECUTION_MODE_HINT", "INFERENCE_PRECISION_HINT",
                "VARIABLE_STATES",
            ],
        }

    @property
    def properties(self) -> PropertySet:
        """The plugin's property set."""
        return self._properties

    def get_property(self, name: str) -> Any:
        """Returns a device property."""
        return self._properties.get(name)

    def set_property(self, properties: Mapping[str, Any]) -> None:
        """Sets device properties (all validated before any is applied)."""
        checked = self._properties.validate(properties)
        if "DEVICE_ID" in checked:
            self._check_device_id(checked["DEVICE_ID"])
        self._properties.set(checked)

    def _check_device_id(self, device_id: str) -> None:
        available = [str(d) for d in self.get_property("AVAILABLE_DEVICES")]
        if str(device_id) not in available:
            raise DeviceNotFound(
                f"{self.device_name} has no device {device_id!r}; available ids: "
                f"{', '.join(available)}"
            )

    def compile_config(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Returns the plugin's values overlaid with validated ``properties``."""
        checked = self._properties.validate(properties)
        if "DEVICE_ID" in checked:
            self._check_device_id(checked["DEVICE_ID"])
        values = self._properties.values()
        config = {k: v for k, v in values.items() if k in COMPILE_TIME_KEYS}
        config.update(checked)
        return config

    def caching_key_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Values of the caching-relevant properties for ``config``."""
        out = {}
        for key in self.get_property("CACHING_PROPERTIES"):
            out[key] = config[key] if key in config else self._properties.get(key)
        out["DEVICE_ID"] = config.get("DEVICE_ID", "0")
        return out

    # -- compile, import, query ----------------------------------------------------------
    def compile_model(self, model: Model, properties: Mapping[str, Any]) -> CompiledModel:
        """Compiles ``model`` with the plugin's properties overlaid by ``properties``."""
        config = self.compile_config(properties)
        self.check_supported(model, config)
        compiled = self._compile_model(model, config)
        compiled._prepare()
        self._compiled.add(compiled)
        return compiled

    async def compile_model_async(
        self, model: Model, properties: Mapping[str, Any], run_blocking: RunBlocking
    ) -> CompiledModel:
        """How the Core compiles: :meth:`compile_model` on the device's worker thread.

        Virtual devices override it to await the Core's compilation on the devices they drive.
        """
        compiled: CompiledModel = await run_blocking(self.compile_model, model, properties)
        return compiled

    async def import_model_async(
        self,
        stream: BinaryIO | bytes,
        properties: Mapping[str, Any],
        run_blocking: RunBlocking,
        from_cache: bool = False,
    ) -> CompiledModel:
        """How the Core imports: :meth:`import_model` on the device's worker thread."""
        imported: CompiledModel = await run_blocking(
            self.import_model, stream, properties, from_cache
        )
        return imported

    def import_model(
        self, stream: BinaryIO | bytes, properties: Mapping[str, Any], from_cache: bool = False
    ) -> CompiledModel:
        """Rebuilds a compiled model from a stream written by ``CompiledModel.export_model``."""
        header, payload = read_blob(stream, self.device_name)
        config = self._stream_config(header)
        config.update(self._properties.validate(properties))
        compiled = self._import_model(payload, config, from_cache)
        compiled._prepare()
        self._compiled.add(compiled)
        return compiled

    def _stream_config(self, header: Mapping[str, Any]) -> dict[str, Any]:
        """The compile configuration an exported stream's header stores, checked against this
        plugin's version and properties; ImportExportError when it does not fit."""
        if header.get("plugin_version") != self.version:
            raise ImportExportError(
                f"the stream was exported by {self.device_name} plugin version "
                f"{header.get('plugin_version')}; this plugin is {self.version}"
            )
        stored = header.get("config")
        if not isinstance(stored, dict):
            raise ImportExportError("the stream's header has no compile configuration")
        try:
            return self.compile_config(stored)
        except PropertyError as exc:
            raise ImportExportError(f"the stream's configuration is not valid here: {exc}") from exc

    def query_model(self, model: Model, properties: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Returns ``{node name: device}`` for every node the device can run."""
        config = self.compile_config(properties or {})
        device = f"{self.device_name}.{config.get('DEVICE_ID', '0')}"
        return {
            node.name: device
            for node in model.nodes
            if self._supports(node, model.opsets.get(node.domain, 1), config)
        }

    def _supports(self, node: Node, opset: int, config: Mapping[str, Any]) -> bool:
        if node.op_type in config.get("TEST_UNSUPPORTED_OPS", ()):
            return False
        return self._is_node_supported(node, opset, config)

    def check_supported(self, model: Model, config: Mapping[str, Any]) -> None:
        """Raises UnsupportedOp naming each op (with its opset) the device cannot run."""
        missing: dict[tuple[str, str, int], None] = {}
        for node in model.nodes:
            opset = model.opsets.get(node.domain, 1)
            if not self._supports(node, opset, config):
                missing[(node.domain or "ai.onnx", node.op_type, opset)] = None
        if missing:
            ops = ", ".join(f"{d}::{op} (opset {v})" for d, op, v in missing)
            raise UnsupportedOp(
                f"{self.device_name} cannot run {len(missing)} op(s) of model "
                f"{model.name!r}: {ops}",
                tuple(missing),
            )

    def get_default_context(self) -> RemoteContext:
        """Returns the device's default remote context."""
        if self._context is None:
            self._context = self._create_default_context()
        return self._context

    def _forget(self, compiled: CompiledModel) -> None:
        self._compiled.discard(compiled)

    @property
    def compiled_models(self) -> list[CompiledModel]:
        """Compiled models of this plugin that are alive and open."""
        return [c for c in self._compiled if not c.closed]

    # -- holes for devices ---------------------------------------------------------------
    def _compile_model(self, model: Model, config: dict[str, Any]) -> CompiledModel:
        """Builds the device's compiled model."""
        raise NotImplementedError

    def _import_model(self, payload: bytes, config: dict[str, Any], from_cache: bool) -> CompiledModel:
        """Rebuilds a compiled model from the bytes its ``_export_payload`` wrote."""
        raise NotImplementedError(f"{self.device_name} cannot import compiled models")

    def _is_node_supported(self, node: Node, opset: int, config: Mapping[str, Any]) -> bool:
        """True when the device can run ``node`` at ``opset``."""
        raise NotImplementedError

    def _create_default_context(self) -> RemoteContext:
        """Creates the device's default remote context."""
        raise NotImplementedError(f"{self.device_name} has no remote context")

    @staticmethod
    def _read_model_payload(payload: bytes) -> Model:
        """Reads an ONNX model payload (for devices whose export is the ONNX graph)."""
        try:
            return read_model(payload)
        except Exception as exc:
            raise ImportExportError(f"the stream's model payload is invalid: {exc}") from exc
