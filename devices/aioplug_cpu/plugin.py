"""The CPU plugin: describes the device, compiles and imports models, answers query_model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aioplug.plugin import Model, Node, Plugin, RemoteContext

from . import config
from .compiled_model import CpuCompiledModel
from .kernels import KernelNotFound, lookup
from .remote import CpuRemoteContext


class CpuPlugin(Plugin):
    """The CPU device: one instance, id ``0``."""

    version = config.VERSION

    def __init__(self) -> None:
        self.full_device_name = config.full_device_name()
        super().__init__(config.DEVICE_NAME)
        self.blas_threads: int | None = None
        """BLAS threads currently set for this process by this plugin (None: untouched)."""

    def _readonly_values(self) -> dict[str, Any]:
        values = super()._readonly_values()
        values["RANGE_FOR_STREAMS"] = lambda: (1, config.cores())
        values["OPTIMIZATION_CAPABILITIES"] = lambda: ["FP32", "FP16", "INT8", "EXPORT_IMPORT"]
        return values

    def _compile_model(self, model: Model, config: dict[str, Any]) -> CpuCompiledModel:
        return CpuCompiledModel(self, model, config)

    def _import_model(
        self, payload: bytes, config: dict[str, Any], from_cache: bool
    ) -> CpuCompiledModel:
        model = self._read_model_payload(payload)
        return CpuCompiledModel(self, model, config, loaded_from_cache=from_cache, transformed=True)

    def _is_node_supported(self, node: Node, opset: int, config: Mapping[str, Any]) -> bool:
        try:
            lookup(node.domain, node.op_type, opset)
        except KernelNotFound:
            return False
        return True

    def _create_default_context(self) -> RemoteContext:
        return CpuRemoteContext(f"{self.device_name}.0")
