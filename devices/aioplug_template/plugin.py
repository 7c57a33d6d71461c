"""The TEMPLATE plugin: describes the device, compiles and imports models, answers query_model."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import onnx

from aioplug.plugin import Model, Node, Plugin, RemoteContext, UnsupportedOp

from . import config
from .compiled_model import TemplateCompiledModel
from .remote import TemplateRemoteContext


def _reference_loader(domain: str) -> Any:
    if domain in ("", "ai.onnx"):
        from onnx.reference.ops import load_op
    elif domain == "ai.onnx.ml":
        from onnx.reference.ops.aionnxml import load_op
    elif domain == "ai.onnx.preview.training":
        from onnx.reference.ops.aionnx_preview_training import load_op
    elif domain == "ai.onnx.preview":
        from onnx.reference.ops.aionnx_preview import load_op
    else:
        return None
    return load_op


@lru_cache(maxsize=None)
def _reference_op_exists(domain: str, op_type: str, opset: int) -> bool:
    """True when onnx's reference evaluator implements the op, directly or by its function body."""
    load = _reference_loader(domain)
    if load is None:
        return False
    try:
        load(domain, op_type, opset)
        return True
    except Exception:
        pass
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return False
    return bool(getattr(schema, "has_function", False) or getattr(schema, "has_context_dependent_function", False))


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
        return _reference_op_exists(node.domain, node.op_type, opset)

    def _create_default_context(self) -> RemoteContext:
        return TemplateRemoteContext(f"{self.device_name}.0")


__all__ = ["TemplatePlugin", "UnsupportedOp"]
