"""How AUTO ranks candidate devices and decides which can run a model.

Without a list, the candidates are every available hardware device, ranked by device type
(discrete accelerators first), then by how many optimisations the device offers
(``OPTIMIZATION_CAPABILITIES``), then by name. A listed order is kept as the user's priority.
A candidate qualifies when it offers the precision the hint asks for and its ``query_model``
covers every node of the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aioplug.plugin import AioplugError, DeviceTarget, Model, Plugin

_TYPE_RANK = {"discrete": 0, "integrated": 1}
_PRECISION_CAPABILITY = {"f32": "FP32", "f16": "FP16", "bf16": "BF16", "i8": "INT8"}


def rank_available(core_devices: Sequence[str], plugins: Mapping[str, Plugin]) -> list[DeviceTarget]:
    """Every available hardware device, best first."""

    def key(device: str) -> tuple[int, int, str]:
        plugin = plugins[device.split(".")[0]]
        kind = str(plugin.get_property("DEVICE_TYPE")) if "DEVICE_TYPE" in plugin.properties.specs else ""
        caps = plugin.get_property("OPTIMIZATION_CAPABILITIES")
        return (_TYPE_RANK.get(kind, len(_TYPE_RANK)), -len(caps), device)

    return [DeviceTarget(device) for device in sorted(core_devices, key=key)]


@dataclass(frozen=True)
class Verdict:
    """Whether one candidate can run the model, and why not."""

    target: DeviceTarget
    placement: dict[str, str]
    reason: str = ""

    @property
    def capable(self) -> bool:
        return not self.reason


def judge(
    plugin: Plugin, target: DeviceTarget, model: Model, config: Mapping[str, Any], placement: dict[str, str]
) -> Verdict:
    """Checks precision and node coverage of one candidate."""
    precision = str(config.get("INFERENCE_PRECISION_HINT", "f32"))
    wanted = _PRECISION_CAPABILITY.get(precision)
    try:
        caps = plugin.get_property("OPTIMIZATION_CAPABILITIES")
    except AioplugError:
        caps = []
    if wanted is not None and wanted not in caps:
        return Verdict(target, placement, f"does not offer {wanted} ({', '.join(caps) or 'nothing'})")
    missing = [node for node in model.nodes if node.name not in placement]
    if missing:
        ops = sorted({f"{n.domain or 'ai.onnx'}::{n.op_type}" for n in missing})
        return Verdict(target, placement, f"cannot run {len(missing)} node(s): {', '.join(ops)}")
    return Verdict(target, placement)
