"""The public plugin API: everything a device package imports from aioplug.

A device is a module exporting ``create_plugin_engine() -> Plugin``, registered in the
``aioplug.devices`` entry-point group. It subclasses :class:`Plugin`, :class:`CompiledModel`
and :class:`SyncInferRequest` (and optionally :class:`AsyncInferRequest`,
:class:`RemoteContext`, :class:`RemoteTensor`), filling their small ``_holes``. See the
TEMPLATE device (``aioplug_template``) for a complete example. Virtual devices (AUTO, MULTI,
HETERO, BATCH) subclass :class:`VirtualPlugin`, :class:`VirtualCompiledModel` and
:class:`VirtualSyncInferRequest` and drive other devices through :attr:`Plugin.core`.
"""

from __future__ import annotations

from ._actor import Actor, ActorStatistics
from ._bundle import pack_bundle, unpack_bundle
from ._async_request import AsyncInferRequest, RequestState, Stage
from ._compiled_model import CompiledModel
from ._executors import (
    CancelToken,
    CoroutineExecutor,
    Executor,
    ExecutorStatistics,
    LoopExecutor,
    ThreadExecutor,
)
from ._naming import DeviceName, DeviceTarget, parse_device_name
from ._plugin import Plugin
from ._profiling import ProfilingInfo, ProfilingStatus
from ._remote import HostMemoryRemoteTensor, RemoteContext, RemoteTensor
from ._state import VariableState
from ._results import InferResults
from ._sync_request import SyncInferRequest, check_tensor
from ._virtual import (
    VirtualCompiledModel,
    VirtualImport,
    VirtualPlugin,
    VirtualSyncInferRequest,
    exported_bytes,
    part_records,
)
from .errors import (
    AioplugError,
    ClosedError,
    DeviceError,
    DeviceNameError,
    DeviceNotFound,
    ImportExportError,
    InferError,
    InputError,
    ModelError,
    PropertyError,
    RemoteTensorError,
    RequestBusy,
    RequestCancelled,
    UnsupportedOp,
)
from .model import Model, Node, Port, read_model
from .properties import Mutability, PropertySet, PropertySpec, well_known

__all__ = [
    "Actor",
    "ActorStatistics",
    "AioplugError",
    "AsyncInferRequest",
    "CancelToken",
    "ClosedError",
    "CompiledModel",
    "CoroutineExecutor",
    "DeviceError",
    "DeviceName",
    "DeviceNameError",
    "DeviceNotFound",
    "DeviceTarget",
    "Executor",
    "ExecutorStatistics",
    "HostMemoryRemoteTensor",
    "ImportExportError",
    "InferError",
    "InferResults",
    "InputError",
    "LoopExecutor",
    "Model",
    "ModelError",
    "Mutability",
    "Node",
    "Plugin",
    "Port",
    "ProfilingInfo",
    "ProfilingStatus",
    "PropertyError",
    "PropertySet",
    "PropertySpec",
    "RemoteContext",
    "RemoteTensor",
    "RemoteTensorError",
    "RequestBusy",
    "RequestCancelled",
    "RequestState",
    "Stage",
    "SyncInferRequest",
    "ThreadExecutor",
    "UnsupportedOp",
    "VariableState",
    "VirtualCompiledModel",
    "VirtualImport",
    "VirtualPlugin",
    "VirtualSyncInferRequest",
    "check_tensor",
    "exported_bytes",
    "pack_bundle",
    "parse_device_name",
    "part_records",
    "read_model",
    "unpack_bundle",
    "well_known",
]
