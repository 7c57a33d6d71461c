"""The one error tree of aioplug.

Every error aioplug raises on purpose is a subclass of :class:`AioplugError`::

    AioplugError
    ├── DeviceError                 a device cannot be found, loaded or used
    │   ├── DeviceNotFound          unknown device name; lists the available ones
    │   └── DeviceNameError         a malformed device name such as "CPU:" or "BATCH:CPU(x)"
    ├── ModelError                  a model that cannot be read or compiled
    │   ├── MalformedModel          bytes or proto that are not a valid ONNX model
    │   ├── UnsupportedOp           an op (named with its domain and opset) the device cannot run
    │   └── ShapeInferenceError     shapes or types that do not agree
    ├── PropertyError               an unknown property key, a bad value, a read-only key
    ├── InferError                  a request that cannot run
    │   ├── InputError              wrong input name, shape, dtype or tensor; says what was expected
    │   ├── RequestBusy             the request is already running
    │   ├── RequestCancelled        the request was cancelled
    │   └── QueueFull               the compiled model's wait queue is full (backpressure)
    ├── ImportExportError           an exported stream that is truncated, corrupt, or from
    │                               another device, format or version
    ├── CacheError                  the model cache directory cannot be used
    ├── RemoteTensorError           host access to device memory, or a tensor of another device
    └── ClosedError                 the Core, compiled model or request has been closed

Errors crossing a layer are translated with ``raise ... from exc``, so the original cause stays
attached.
"""

from __future__ import annotations

__all__ = [
    "AioplugError",
    "CacheError",
    "ClosedError",
    "DeviceError",
    "DeviceNameError",
    "DeviceNotFound",
    "ImportExportError",
    "InferError",
    "InputError",
    "MalformedModel",
    "ModelError",
    "PropertyError",
    "QueueFull",
    "RemoteTensorError",
    "RequestBusy",
    "RequestCancelled",
    "ShapeInferenceError",
    "UnsupportedOp",
]


class AioplugError(Exception):
    """Base class of every error aioplug raises on purpose."""


class DeviceError(AioplugError):
    """A device cannot be found, loaded or used."""


class DeviceNotFound(DeviceError, LookupError):
    """The device name names no registered device."""


class DeviceNameError(DeviceError, ValueError):
    """The device name is malformed."""


class ModelError(AioplugError):
    """The model cannot be read or compiled."""


class MalformedModel(ModelError, ValueError):
    """The bytes or proto are not a valid ONNX model."""


class UnsupportedOp(ModelError):
    """The device cannot run one or more ops of the model.

    ``ops`` lists ``(domain, op_type, opset)`` for each op that is not supported.
    """

    def __init__(self, message: str, ops: tuple[tuple[str, str, int], ...] = ()) -> None:
        super().__init__(message)
        self.ops = ops


class ShapeInferenceError(ModelError):
    """Shapes or element types in the model do not agree."""


class PropertyError(AioplugError, KeyError):
    """An unknown property key, a bad value, or an attempt to write a read-only key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InferError(AioplugError):
    """An inference request cannot run or failed while running."""


class InputError(InferError, ValueError):
    """A wrong input or output name, shape, dtype or tensor."""


class RequestBusy(InferError):
    """The request is already running; wait for it or create another request."""


class RequestCancelled(InferError):
    """The request was cancelled before it finished."""


class QueueFull(InferError):
    """Every request of the compiled model is busy and the wait queue is full."""


class ImportExportError(AioplugError):
    """An exported stream is truncated, corrupt, or from another device, format or version."""


class CacheError(AioplugError):
    """The model cache cannot be used."""


class RemoteTensorError(AioplugError):
    """Host access to device memory, or a remote tensor used on the wrong device."""


class ClosedError(AioplugError):
    """The object has been closed and can no longer run work."""
