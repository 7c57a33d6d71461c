"""TEMPLATE's remote context: tensors in memory the device owns.

The memory of a :class:`TemplateRemoteTensor` is held privately; the host reaches it only
through ``copy_from``/``copy_to``, while TEMPLATE's requests read and write it in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aioplug.plugin import RemoteContext, RemoteTensor


class TemplateRemoteTensor(RemoteTensor):
    """A tensor whose storage belongs to the TEMPLATE device."""

    def __init__(self, context: RemoteContext, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        super().__init__(context, dtype, shape)
        self.__memory = np.zeros(shape, dtype=dtype)

    def _device_array(self) -> np.ndarray:
        return self.__memory

    def get_properties(self) -> dict[str, Any]:
        return {"DEVICE_NAME": self.device_name, "MEMORY_TYPE": "TEMPLATE_DEVICE_BUFFER"}


class TemplateRemoteContext(RemoteContext):
    """The TEMPLATE device's one context."""

    def __init__(self, device_name: str) -> None:
        super().__init__(device_name, {"CONTEXT_TYPE": "TEMPLATE"})

    def _create_tensor(
        self, dtype: np.dtype[Any], shape: tuple[int, ...], params: dict[str, Any]
    ) -> RemoteTensor:
        return TemplateRemoteTensor(self, dtype, shape)
