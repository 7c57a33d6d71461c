"""The CPU's remote context: tensors in host memory that the CPU device reads in place."""

from __future__ import annotations

from typing import Any

import numpy as np

from aioplug.plugin import RemoteContext, RemoteTensor


class CpuRemoteTensor(RemoteTensor):
    """A tensor whose (host) memory belongs to the CPU device: requests use it without copies."""

    def __init__(self, context: RemoteContext, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        super().__init__(context, dtype, shape)
        self.__memory = np.zeros(shape, dtype=dtype)

    def _device_array(self) -> np.ndarray:
        return self.__memory

    def get_properties(self) -> dict[str, Any]:
        return {"DEVICE_NAME": self.device_name, "MEMORY_TYPE": "HOST"}


class CpuRemoteContext(RemoteContext):
    """The CPU device's context."""

    def __init__(self, device_name: str) -> None:
        super().__init__(device_name, {"CONTEXT_TYPE": "CPU"})

    def _create_tensor(
        self, dtype: np.dtype[Any], shape: tuple[int, ...], params: dict[str, Any]
    ) -> RemoteTensor:
        return CpuRemoteTensor(self, dtype, shape)
