"""The Core: finds device plugins, reads models, compiles and imports them, caches.

Plugins are found through the ``aioplug.devices`` entry-point group and loaded lazily by
name; :meth:`Core.register_plugin` adds one at run time. Each device gets an actor whose
mailbox serialises its compile and import work, which runs on the actor's own worker thread
so the event loop stays free. ``async with Core() as core`` owns those actors and every
compiled model, and closes them on exit.
"""

from __future__ import annotations

import importlib
import io
import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, BinaryIO, Union

import anyio
from anyio.abc import TaskGroup

from ._actor import Actor
from ._cache import ModelCache, cache_key
from ._compiled_model import CompiledModel
from ._executors import ThreadExecutor
from ._naming import DeviceName, parse_device_name
from ._plugin import Plugin
from ._remote import RemoteContext
from ._virtual import VirtualPlugin
from .errors import (
    AioplugError,
    ClosedError,
    DeviceError,
    DeviceNameError,
    DeviceNotFound,
    ImportExportError,
    PropertyError,
)
from .model import Model, ModelSource, read_model
from .properties import PropertySet, well_known

__all__ = ["Core", "ENTRY_POINT_GROUP"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "aioplug.devices"

PluginSource = Union[str, ModuleType, Callable[[], Plugin]]
"""A plugin to register: ``"module:function"``, a module exporting ``create_plugin_engine``,
or the factory itself."""

_CORE_PROPERTIES = [*well_known("CACHE_DIR")]


def _factory_of(source: PluginSource, name: str) -> Callable[[], Plugin]:
    if isinstance(source, str):
        module_name, _, attr = source.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise DeviceError(f"cannot import plugin module {module_name!r} for {name}: {exc}") from exc
        target = getattr(module, attr or "create_plugin_engine", None)
        if target is None:
            raise DeviceError(f"plugin module {module_name!r} has no {attr or 'create_plugin_engine'}")
        return _factory_of(target, name)
    if isinstance(source, ModuleType):
        factory = getattr(source, "create_plugin_engine", None)
        if factory is None:
            raise DeviceError(f"plugin module {source.__name__!r} has no create_plugin_engine()")
        return factory  # type: ignore[no-any-return]
    if callable(source):
        return source
    raise DeviceError(f"cannot register {source!r} as plugin {name}: not a module or factory")


class Core:
    """Entry point of aioplug: devices, models, compilation, caching.

    Use it as ``async with aioplug.Core() as core:``. ``plugins`` maps extra device names to
    plugin sources (the ``plugins.xml`` analogue); ``load_entry_points=False`` skips the
    installed ``aioplug.devices`` entry points.
    """

    def __init__(
        self,
        plugins: Mapping[str, PluginSource] | None = None,
        *,
        load_entry_points: bool = True,
    ) -> None:
        self._sources: dict[str, Callable[[], Plugin] | PluginSource] = {}
        if load_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._sources.setdefault(ep.name, ep.value)
        for name, source in (plugins or {}).items():
            self._check_new_name(name, allow_existing=True)
            self._sources[name] = source
        self._plugins: dict[str, Plugin] = {}
        self._actors: dict[str, Actor] = {}
        self._device_threads: dict[str, ThreadExecutor] = {}
        self._properties = PropertySet("Core", _CORE_PROPERTIES)
        self._cache_locks: dict[str, anyio.Lock] = {}
        self._task_group: TaskGroup | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> Core:
        if self._closed:
            raise ClosedError("this Core was closed; create a new one")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            await self.aclose()
        finally:
            task_group, self._task_group = self._task_group, None
            if task_group is not None:
                # The actors have stopped; the body's own exception, if any, propagates as is.
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        return None

    async def aclose(self) -> None:
        """Closes every compiled model and device actor; joins their threads."""
        if self._closed:
            return
        self._closed = True
        # virtual devices first: their requests drive the hardware devices' compiled models
        plugins = sorted(self._plugins.values(), key=lambda p: not isinstance(p, VirtualPlugin))
        with anyio.CancelScope(shield=True):
            for plugin in plugins:
                for compiled in plugin.compiled_models:
                    await compiled.aclose()
            for actor in self._actors.values():
                await actor.aclose()
            for executor in self._device_threads.values():
                executor.close()

    def _check_open(self) -> TaskGroup:
        if self._closed:
            raise ClosedError("the Core is closed")
        if self._task_group is None:
            raise ClosedError(
                "the Core is not open: use it as `async with aioplug.Core() as core:`"
            )
        return self._task_group

    # -- plugins -------------------------------------------------------------------------
    def _check_new_name(self, name: str, *, allow_existing: bool = False) -> None:
        if not isinstance(name, str) or not name or "." in name or ":" in name:
            raise DeviceNameError(
                f"plugin name {name!r} must be a non-empty name without '.' or ':'"
            )
        if not allow_existing and name in self._sources:
            raise DeviceError(f"a plugin named {name!r} is already registered")

    def register_plugin(
        self,
        plugin: PluginSource,
        device_name: str,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Registers a plugin under ``device_name``; raises DeviceError if the name is taken."""
        self._check_new_name(device_name)
        factory = _factory_of(plugin, device_name)
        self._sources[device_name] = factory
        if properties:
            self.get_plugin(device_name).set_property(properties)

    def unload_plugin(self, device_name: str) -> None:
        """Drops the loaded instance of a plugin (it is loaded again on next use)."""
        if device_name not in self._plugins:
            raise DeviceNotFound(f"plugin {device_name!r} is not loaded")
        del self._plugins[device_name]

    @property
    def registered_devices(self) -> list[str]:
        """Names of every registered plugin, loaded or not."""
        return sorted(self._sources)

    def get_plugin(self, device: str) -> Plugin:
        """Returns the plugin of ``device`` (``"CPU"``, ``"CPU.0"``), loading it on first use."""
        name = parse_device_name(device)
        return self._plugin(name.device)

    def _plugin(self, name: str) -> Plugin:
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        source = self._sources.get(name)
        if source is None:
            available = ", ".join(self.registered_devices) or "none"
            raise DeviceNotFound(f"no device named {name!r}; available devices: {available}")
        factory = _factory_of(source, name)
        try:
            plugin = factory()
        except AioplugError:
            raise
        except Exception as exc:
            raise DeviceError(f"plugin {name!r} failed to load: {exc}") from exc
        if not isinstance(plugin, Plugin):
            raise DeviceError(f"plugin {name!r}: create_plugin_engine() returned {plugin!r}")
        plugin.device_name = name
        plugin._attach(self)
        self._plugins[name] = plugin
        log.debug("loaded plugin %s (version %s)", name, plugin.version)
        return plugin

    @property
    def available_devices(self) -> list[str]:
        """Devices that can run models: ``NAME``, or ``NAME.id`` when a plugin has several."""
        devices: list[str] = []
        for name in self.registered_devices:
            try:
                plugin = self._plugin(name)
                ids = [str(i) for i in plugin.get_property("AVAILABLE_DEVICES")]
            except AioplugError as exc:
                log.warning("device %s is unavailable: %s", name, exc)
                continue
            if len(ids) > 1:
                devices.extend(f"{name}.{i}" for i in ids)
            elif ids:
                devices.append(name)
        return devices

    @property
    def default_device(self) -> str:
        """The device used when none is named: AUTO if registered, else CPU, else the first."""
        for name in ("AUTO", "CPU"):
            if name in self._sources:
                return name
        devices = self.available_devices
        if not devices:
            raise DeviceNotFound("no devices are registered")
        return devices[0]

    def _resolve(self, device: str | None, properties: Mapping[str, Any] | None) -> tuple[DeviceName, Plugin, dict[str, Any]]:
        name = parse_device_name(device or self.default_device)
        plugin = self._plugin(name.device)
        props = dict(properties or {})
        if name.virtual:
            self._check_targets(name)
            props["MULTI_DEVICE_PRIORITIES"] = ",".join(str(t) for t in name.targets)
        elif name.device_id is not None:
            plugin._check_device_id(name.device_id)
            props["DEVICE_ID"] = name.device_id
        return name, plugin, props

    def _check_targets(self, name: DeviceName) -> None:
        """Every device a virtual device names must exist, with the id it names."""
        for target in name.targets:
            inner = parse_device_name(target.name)
            plugin = self._plugin(inner.device)
            if inner.device_id is not None:
                plugin._check_device_id(inner.device_id)

    def _actor(self, name: DeviceName, plugin: Plugin) -> tuple[Actor, ThreadExecutor]:
        key = str(name)
        actor = self._actors.get(key)
        if actor is None:
            actor = self._actors[key] = Actor(f"device-{key}")
            actor.start(self._check_open())
            self._device_threads[key] = ThreadExecutor(f"device-{key}", 1)
        return actor, self._device_threads[key]

    # -- properties ----------------------------------------------------------------------
    def get_property(self, device: str | None, name: str | None = None) -> Any:
        """Returns a device property, or a Core property with ``get_property("CACHE_DIR")``."""
        if name is None:
            if device is None:
                raise PropertyError("name the property to read")
            return self._properties.get(device)
        dev, plugin, _ = self._resolve(device, None)
        if dev.device_id is not None:
            plugin._check_device_id(dev.device_id)
        return plugin.get_property(name)

    def set_property(
        self, device_or_properties: str | Mapping[str, Any], properties: Mapping[str, Any] | None = None
    ) -> None:
        """``set_property({"CACHE_DIR": d})`` for the Core, ``set_property("CPU", {...})`` for a device.

        A virtual device list (``"MULTI:CPU,TEMPLATE"``) sets the virtual device's properties.
        """
        if isinstance(device_or_properties, Mapping):
            self._properties.set(device_or_properties)
            return
        dev, plugin, _ = self._resolve(device_or_properties, None)
        props = dict(properties or {})
        if dev.device_id is not None:
            plugin._check_device_id(dev.device_id)
        plugin.set_property(props)

    def get_versions(self, device: str) -> dict[str, str]:
        """Returns ``{device: plugin version}``."""
        plugin = self.get_plugin(device)
        return {plugin.device_name: plugin.version}

    # -- models --------------------------------------------------------------------------
    def read_model(self, source: ModelSource) -> Model:
        """Reads, checks and shape-infers an ONNX model (path, bytes, ModelProto)."""
        return read_model(source)

    def query_model(
        self, model: ModelSource, device: str | None = None, properties: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """Returns ``{node name: device}`` for the nodes ``device`` can run."""
        _, plugin, props = self._resolve(device, properties)
        return plugin.query_model(read_model(model), props)

    def get_default_context(self, device: str) -> RemoteContext:
        """Returns the default remote context of ``device``."""
        _, plugin, _ = self._resolve(device, None)
        return plugin.get_default_context()

    async def compile_model(
        self,
        model: ModelSource,
        device: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> CompiledModel:
        """Compiles ``model`` on ``device`` (default: :attr:`default_device`).

        With ``CACHE_DIR`` set (on the Core or in ``properties``) and a device that can
        export, the compiled model is stored and later imported instead of compiled;
        ``LOADED_FROM_CACHE`` tells which happened.
        """
        self._check_open()
        name, plugin, props = self._resolve(device, properties)
        cache_dir = props.pop("CACHE_DIR", None)
        if cache_dir is None:
            cache_dir = self._properties.get("CACHE_DIR")
        else:
            cache_dir = self._properties.spec("CACHE_DIR").validate(cache_dir)
        actor, thread = self._actor(name, plugin)
        ir = model if isinstance(model, Model) else await thread.run(read_model, model)
        if cache_dir and "EXPORT_IMPORT" in plugin.get_property("OPTIMIZATION_CAPABILITIES"):
            return await self._compile_cached(actor, thread, plugin, ir, props, str(cache_dir))
        if cache_dir and name.virtual:
            props["CACHE_DIR"] = cache_dir  # the devices it drives cache their parts
        return await actor.call(plugin.compile_model_async, ir, props, thread.run)

    async def _compile_cached(
        self,
        actor: Actor,
        thread: ThreadExecutor,
        plugin: Plugin,
        model: Model,
        props: dict[str, Any],
        cache_dir: str,
    ) -> CompiledModel:
        config = plugin.compile_config(props)
        key = cache_key(
            model.content_hash, plugin.device_name, plugin.version, plugin.caching_key_values(config)
        )
        cache = ModelCache(cache_dir)
        lock = self._cache_locks.setdefault(key, anyio.Lock())
        async with lock:
            blob = cache.load(key)
            if blob is not None:
                try:
                    imported: CompiledModel = await actor.call(
                        plugin.import_model_async, blob, config, thread.run, True
                    )
                    log.debug("loaded %s from cache entry %s", model.name, key)
                    return imported
                except ImportExportError as exc:
                    log.warning("cache entry %s is unusable (%s); compiling again", key, exc)
                    cache.remove(key)
            compiled: CompiledModel = await actor.call(
                plugin.compile_model_async, model, props, thread.run
            )
            stream = io.BytesIO()
            try:
                compiled.export_model(stream)
                cache.store(key, stream.getvalue())
            except Exception as exc:
                cache.remove(key)
                log.warning("cannot cache %s: %s", model.name, exc)
            return compiled

    async def import_model(
        self,
        stream: BinaryIO | bytes,
        device: str,
        properties: Mapping[str, Any] | None = None,
    ) -> CompiledModel:
        """Imports a model exported by ``CompiledModel.export_model`` onto ``device``."""
        data = stream if isinstance(stream, (bytes, bytearray)) else stream.read()
        return await self._import_model(bytes(data), device, properties, from_cache=False)

    async def _import_model(
        self,
        data: bytes,
        device: str,
        properties: Mapping[str, Any] | None,
        *,
        from_cache: bool,
    ) -> CompiledModel:
        """Imports on ``device``'s actor; virtual devices import their parts through it, saying
        whether the whole came from the model cache."""
        self._check_open()
        name, plugin, props = self._resolve(device, properties)
        actor, thread = self._actor(name, plugin)
        imported: CompiledModel = await actor.call(
            plugin.import_model_async, data, props, thread.run, from_cache
        )
        return imported

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._task_group else "not entered"
        return f"<aioplug.Core {state} devices={self.registered_devices}>"
