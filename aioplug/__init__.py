"""aioplug: an asyncio-native, actor-based inference runtime with a plugin architecture.

::

    import aioplug

    async with aioplug.Core() as core:
        compiled = await core.compile_model("model.onnx", "CPU")
        out = await compiled.infer({"x": x})
        out["y"], out[0]

This module is the public facade: every public name is exported here once. Device authors
use :mod:`aioplug.plugin`.
"""

from __future__ import annotations

from ._async_request import AsyncInferRequest, RequestState
from ._compiled_model import CompiledModel, CompiledModelStatistics
from ._core import Core
from ._naming import DeviceName, DeviceTarget, parse_device_name
from ._pool import PoolStatistics
from ._profiling import ProfilingInfo, ProfilingStatus
from ._queue import AsyncInferQueue
from ._remote import RemoteContext, RemoteTensor
from ._results import InferResults
from ._state import VariableState
from ._sync_request import SyncInferRequest
from ._version import __version__
from .errors import (
    AioplugError,
    CacheError,
    ClosedError,
    DeviceError,
    DeviceNameError,
    DeviceNotFound,
    ImportExportError,
    InferError,
    InputError,
    MalformedModel,
    ModelError,
    PropertyError,
    QueueFull,
    RemoteTensorError,
    RequestBusy,
    RequestCancelled,
    ShapeInferenceError,
    UnsupportedOp,
)
from .model import Model, Node, Port, read_model
from .properties import Mutability, PerformanceMode

__all__ = [
    "AioplugError",
    "AsyncInferQueue",
    "AsyncInferRequest",
    "CacheError",
    "ClosedError",
    "CompiledModel",
    "CompiledModelStatistics",
    "Core",
    "DeviceError",
    "DeviceName",
    "DeviceNameError",
    "DeviceNotFound",
    "DeviceTarget",
    "ImportExportError",
    "InferError",
    "InferResults",
    "InputError",
    "MalformedModel",
    "Model",
    "ModelError",
    "Mutability",
    "Node",
    "PerformanceMode",
    "PoolStatistics",
    "Port",
    "ProfilingInfo",
    "ProfilingStatus",
    "PropertyError",
    "QueueFull",
    "RemoteContext",
    "RemoteTensor",
    "RemoteTensorError",
    "RequestBusy",
    "RequestCancelled",
    "RequestState",
    "ShapeInferenceError",
    "SyncInferRequest",
    "UnsupportedOp",
    "VariableState",
    "__version__",
    "parse_device_name",
    "read_model",
]
