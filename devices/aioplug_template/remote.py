"""TEMPLATE's remote context: tensors in memory the device owns.

The memory of a :class:`TemplateRemoteTensor` is held privately by its base class; the host
reaches it only through ``copy_from``/``copy_to``, while TEMPLATE's requests read and write it
in place (through ``_device_array``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aioplug.plugin import HostMemoryRemoteTensor, RemoteContext, RemoteTensor


class TemplateRemoteTensor(HostMemoryRemoteTensor):
    """A tensor whose storage belongs to the TEMPLATE device."""

    memory_type = "TEMPLATE_DEVICE_BUFFER"


class TemplateRemoteContext(RemoteContext):
    """The TEMPLATE device's one context."""

    def __init__(self, device_name: str) -> None:
        super().__init__(device_name, {"CONTEXT_TYPE": "TEMPLATE"})

    def _create_tensor(
        self, dtype: np.dtype[Any], shape: tuple[int, ...], params: dict[str, Any]
    ) -> RemoteTensor:
        return TemplateRemoteTensor(self, dtype, shape)
