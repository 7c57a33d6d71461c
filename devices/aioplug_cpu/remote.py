"""The CPU's remote context: tensors in host memory that the CPU device reads in place."""

from __future__ import annotations

from typing import Any

import numpy as np

from aioplug.plugin import HostMemoryRemoteTensor, RemoteContext, RemoteTensor


class CpuRemoteContext(RemoteContext):
    """The CPU device's context; its tensors are host memory requests use without copies."""

    def __init__(self, device_name: str) -> None:
        super().__init__(device_name, {"CONTEXT_TYPE": "CPU"})

    def _create_tensor(
        self, dtype: np.dtype[Any], shape: tuple[int, ...], params: dict[str, Any]
    ) -> RemoteTensor:
        return HostMemoryRemoteTensor(self, dtype, shape)
