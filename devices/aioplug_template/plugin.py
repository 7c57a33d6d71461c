"""The TEMPLATE plugin: describes the device, compiles and imports models, answers query_model."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from aioplug.plugin import Model, Node, Plugin, RemoteContext, UnsupportedOp

from . import config
from .compiled_model import TemplateCompiledModel
from .remote import TemplateRemoteContext


@lru_cache(maxsize=None)
def _reference_op_exists(domain: str, op_type: str, opset: int) -> bool:
    from onnx.reference.ops import load_op

    try:
        load_op(domain, op_type, opset)
    except Exception:
        return False
    return True


class TemplatePlugin(Plugin):
    """The TEMPLATE device: one instance, id ``0``."""

    version = config.VERSION
    full_device_name = config.FULL_DEVICE_NAME

    def __init__(self) -> None:
        super().__init__(config.DEVICE_NAME)

    def _property_specs(self) -> list[Any]:
        return config.plugin_properties()

    def _compile_model(self, model: Model, config: dict[str, Any]) -> TemplateCompiledModel:
        return TemplateCompiledModel(self, model, config)

    def _import_model(
        self, payload: bytes, config: dict[str, Any], from_cache: bool
    ) -> TemplateCompiledModel:
        model = self._read_model_payload(payload)
        return TemplateCompiledModel(self, model, config, loaded_from_cache=from_cache)

    def _is_node_supported(self, node: Node, opset: int, config: Mapping[str, Any]) -> bool:
        if node.domain not in ("", "ai.onnx", "ai.onnx.ml"):
            return False
        return _reference_op_exists(node.domain, node.op_type, opset)

    def _create_default_context(self) -> RemoteContext:
        return TemplateRemoteContext(f"{self.device_name}.0")


__all__ = ["TemplatePlugin", "UnsupportedOp"]
