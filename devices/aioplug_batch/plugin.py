"""The BATCH plugin: compiles a model with a batch axis on one device, ``BATCH:CPU(8)``.

The device list names exactly one device and the batch size in parentheses. The model must
have a batch axis (see :mod:`aioplug_batch.batch_axis`); it is compiled on the device with a
symbolic batch dimension, and the requests of the compiled model run there in batches.
``AUTO_BATCH_TIMEOUT`` (milliseconds) bounds how long a partial batch waits for more requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aioplug.plugin import (
    DeviceNameError,
    DeviceTarget,
    Model,
    PropertySpec,
    VirtualPlugin,
)

from . import config as batch_config
from .batch_axis import batch_layout
from .compiled_model import BatchCompiledModel


class BatchPlugin(VirtualPlugin):
    """The BATCH virtual device: automatic batching of concurrent requests on one device."""

    version = batch_config.VERSION
    full_device_name = batch_config.FULL_DEVICE_NAME

    def __init__(self) -> None:
        super().__init__(batch_config.DEVICE_NAME)

    def _property_specs(self) -> list[PropertySpec]:
        return batch_config.plugin_properties(super()._property_specs())

    def default_targets(self) -> list[DeviceTarget]:
        raise DeviceNameError(
            f"{self.device_name} needs one device and a batch size, e.g. "
            f"'{self.device_name}:CPU(8)'"
        )

    def target(self, targets: list[DeviceTarget]) -> tuple[DeviceTarget, int]:
        """The one device to batch on, without its count, and the batch size."""
        if len(targets) != 1:
            listed = ",".join(str(t) for t in targets)
            raise DeviceNameError(
                f"{self.device_name} batches on one device; got {len(targets)} ({listed}): "
                f"name one, e.g. '{self.device_name}:CPU(8)'"
            )
        target = targets[0]
        if target.count is None or target.count < 1:
            got = "no batch size" if target.count is None else f"batch size {target.count}"
            raise DeviceNameError(
                f"{self.device_name}:{target} has {got}: give the batch size in parentheses, "
                f"e.g. '{self.device_name}:{target.name}(8)'"
            )
        return DeviceTarget(target.name), target.count

    async def _compile_virtual(
        self,
        model: Model,
        config: dict[str, Any],
        targets: list[DeviceTarget],
        forwarded: dict[str, dict[str, Any]],
    ) -> BatchCompiledModel:
        device, size = self.target(targets)
        layout = batch_layout(model, self.device_name)
        device_model = await self.compile_on(layout.model, device, forwarded[str(targets[0])])
        try:
            return BatchCompiledModel(
                self,
                model,
                config,
                device_model,
                layout,
                batch_size=size,
                timeout_ms=int(config["AUTO_BATCH_TIMEOUT"]),
            )
        except BaseException:
            await device_model.aclose()
            raise

    def query_model(self, model: Model, properties: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The device's answer: BATCH runs every node where the device it batches on does."""
        config = self.compile_config(properties or {})
        device, _ = self.target(self.targets(config))
        return self.core.query_model(model, device.name)


__all__ = ["BatchPlugin"]
