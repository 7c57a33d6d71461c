"""Remote contexts and remote tensors: device memory that requests use without host copies.

A :class:`RemoteTensor` lives in memory its device owns. The host reaches it only through
:meth:`RemoteTensor.copy_from` and :meth:`RemoteTensor.copy_to`; ``data`` and ``np.asarray``
raise :class:`~aioplug.errors.RemoteTensorError`. A device's own requests read and write it
directly through the protected :meth:`RemoteTensor._device_array` hole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import RemoteTensorError

__all__ = ["HostMemoryRemoteTensor", "RemoteContext", "RemoteTensor"]


class RemoteTensor:
    """A tensor in device memory; subclasses provide :meth:`_device_array`."""

    def __init__(self, context: RemoteContext, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        self._context = context
        self._dtype = np.dtype(dtype)
        self._shape = tuple(int(d) for d in shape)

    @property
    def device_name(self) -> str:
        """The device that owns the memory."""
        return self._context.device_name

    @property
    def context(self) -> RemoteContext:
        """The context that created the tensor."""
        return self._context

    @property
    def dtype(self) -> np.dtype[Any]:
        """Element type."""
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """Dimensions."""
        return self._shape

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return self.size * self._dtype.itemsize

    @property
    def data(self) -> np.ndarray:
        """Always raises: device memory has no host address; use copy_to."""
        raise RemoteTensorError(
            f"a remote tensor of {self.device_name} has no host data; "
            "use tensor.copy_to(host_array) to read it"
        )

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise RemoteTensorError(
            f"a remote tensor of {self.device_name} cannot be converted to a numpy array; "
            "use tensor.copy_to(host_array)"
        )

    def get_properties(self) -> dict[str, Any]:
        """Device-specific properties of the tensor."""
        return {"DEVICE_NAME": self.device_name}

    def _check_peer(self, other: np.ndarray | RemoteTensor, what: str) -> None:
        if tuple(other.shape) != self._shape or np.dtype(other.dtype) != self._dtype:
            raise RemoteTensorError(
                f"cannot copy {what}: remote tensor is {self._dtype.name}{list(self._shape)}, "
                f"other is {np.dtype(other.dtype).name}{list(other.shape)}"
            )

    def copy_from(self, source: np.ndarray | RemoteTensor) -> None:
        """Copies ``source`` (host array or remote tensor of equal dtype and shape) in."""
        self._check_peer(source, "from")
        if isinstance(source, RemoteTensor):
            np.copyto(self._device_array(), source._device_array())
        else:
            np.copyto(self._device_array(), np.asarray(source))

    def copy_to(self, target: np.ndarray | RemoteTensor) -> None:
        """Copies the contents out into ``target`` (host array or remote tensor)."""
        self._check_peer(target, "to")
        if isinstance(target, RemoteTensor):
            np.copyto(target._device_array(), self._device_array())
        else:
            np.copyto(target, self._device_array())

    def _device_array(self) -> np.ndarray:
        """The device-side memory; for the owning device's code only."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._dtype.name}{list(self._shape)} on {self.device_name}>"


class HostMemoryRemoteTensor(RemoteTensor):
    """A remote tensor whose device memory is a private host array, allocated zeroed.

    For devices whose memory the host process owns (a CPU, a simulated accelerator): the
    device's requests use the array in place, the host reaches it only by copying.
    """

    memory_type = "HOST"
    """Reported as ``MEMORY_TYPE`` by :meth:`get_properties`."""

    def __init__(self, context: RemoteContext, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        super().__init__(context, dtype, shape)
        self.__memory = np.zeros(shape, dtype=dtype)

    def _device_array(self) -> np.ndarray:
        return self.__memory

    def get_properties(self) -> dict[str, Any]:
        return {"DEVICE_NAME": self.device_name, "MEMORY_TYPE": self.memory_type}


class RemoteContext:
    """A device's memory context; creates remote tensors and host tensors for it."""

    def __init__(self, device_name: str, properties: Mapping[str, Any] | None = None) -> None:
        self._device_name = device_name
        self._properties = dict(properties or {})

    @property
    def device_name(self) -> str:
        """The device this context belongs to."""
        return self._device_name

    def get_property(self) -> dict[str, Any]:
        """Device-specific handles and parameters of the context."""
        return dict(self._properties)

    def create_tensor(
        self, dtype: Any, shape: tuple[int, ...] | list[int], params: Mapping[str, Any] | None = None
    ) -> RemoteTensor:
        """Allocates a tensor in device memory."""
        try:
            np_dtype = np.dtype(dtype)
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError) as exc:
            raise RemoteTensorError(f"bad dtype or shape for a remote tensor: {exc}") from exc
        if any(d < 0 for d in dims):
            raise RemoteTensorError(f"remote tensor shape must not be negative, got {dims}")
        return self._create_tensor(np_dtype, dims, dict(params or {}))

    def create_host_tensor(self, dtype: Any, shape: tuple[int, ...] | list[int]) -> np.ndarray:
        """Allocates a host array the device reads efficiently (aligned, contiguous)."""
        return np.zeros(tuple(int(d) for d in shape), dtype=np.dtype(dtype))

    def _create_tensor(
        self, dtype: np.dtype[Any], shape: tuple[int, ...], params: dict[str, Any]
    ) -> RemoteTensor:
        raise NotImplementedError(f"{self._device_name} has no remote tensors")
