"""The public plugin API: everything a device package imports from aioplug.

A device is a module exporting ``create_plugin_engine() -> Plugin``, registered in the
``aioplug.devices`` entry-point group. It subclasses :class:`Plugin`, :class:`CompiledModel`
and :class:`SyncInferRequest` (and optionally :class:`AsyncInferRequest`,
:class:`RemoteContext`, :class:`RemoteTensor`), filling their small ``_holes``. See the
TEMPLATE device (``aioplug_template``) for a complete example.
"""

from __future__ import annotations

from ._actor import Actor, ActorStatistics
from ._async_request import AsyncInferRequest, RequestState, Stage
from ._compiled_model import CompiledModel
from ._executors import (
    CancelToken,
    Executor,
    ExecutorStatistics,
    LoopExecutor,
    ThreadExecutor,
)
from ._plugin import Plugin
from ._profiling import ProfilingInfo, ProfilingStatus
from ._remote import HostMemoryRemoteTensor, RemoteContext, RemoteTensor
from ._state import VariableState
from ._sync_request import SyncInferRequest, check_tensor
from .errors import (
    AioplugError,
    DeviceError,
    ImportExportError,
    InferError,
    InputError,
    ModelError,
    PropertyError,
    RemoteTensorError,
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
    "CompiledModel",
    "DeviceError",
    "Executor",
    "ExecutorStatistics",
    "HostMemoryRemoteTensor",
    "ImportExportError",
    "InferError",
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
    "RequestCancelled",
    "RequestState",
    "Stage",
    "SyncInferRequest",
    "ThreadExecutor",
    "UnsupportedOp",
    "VariableState",
    "check_tensor",
    "read_model",
    "well_known",
]
