"""AUTO's export stream: the device it chose, its fallback candidates, and the original model.

The payload of AUTO's export blob is a bundle (``aioplug.plugin.pack_bundle``) whose manifest
is ``{"kind": "AUTO", "chosen": "CPU", "fallbacks": ["TEMPLATE"]}`` (device names as listed
when compiling). Section 0 holds the original model's ONNX bytes, which give the ports and
variable states and let a fallback candidate compile it on first need, as after a compile;
section 1 holds the blob the chosen device exported. MULTI (and AUTO under
``CUMULATIVE_THROUGHPUT``) does not export, as in OpenVINO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aioplug.plugin import (
    CompiledModel,
    DeviceNameError,
    DeviceTarget,
    ImportExportError,
    Model,
    exported_bytes,
    pack_bundle,
    parse_device_name,
)

__all__ = ["AutoStream", "read_stream", "write_stream"]

KIND = "AUTO"


@dataclass(frozen=True)
class AutoStream:
    """An AUTO export, read back."""

    model: bytes
    chosen: DeviceTarget
    fallbacks: tuple[DeviceTarget, ...]
    blob: bytes


def write_stream(
    model: Model, chosen: DeviceTarget, compiled: CompiledModel, fallbacks: Sequence[DeviceTarget]
) -> bytes:
    """The payload of an AUTO export."""
    manifest = {"kind": KIND, "chosen": chosen.name, "fallbacks": [t.name for t in fallbacks]}
    return pack_bundle(manifest, [model.serialize(), exported_bytes(compiled)])


def _target(value: Any, what: str) -> DeviceTarget:
    if not isinstance(value, str):
        raise ImportExportError(f"the AUTO stream's {what} is not a device name")
    try:
        name = parse_device_name(value)
    except DeviceNameError as exc:
        raise ImportExportError(f"the AUTO stream's {what}: {exc}") from exc
    if name.virtual:
        raise ImportExportError(f"the AUTO stream's {what} {value!r} is a virtual device")
    return DeviceTarget(value)


def read_stream(manifest: dict[str, Any], sections: list[bytes]) -> AutoStream:
    """Checks an AUTO manifest and its sections; raises ImportExportError saying what is wrong."""
    if manifest.get("kind") != KIND:
        raise ImportExportError(f"the stream's payload is not an AUTO export ({manifest.get('kind')!r})")
    if len(sections) != 2:
        raise ImportExportError(f"the AUTO stream holds {len(sections)} section(s), not 2")
    fallbacks = manifest.get("fallbacks")
    if not isinstance(fallbacks, list):
        raise ImportExportError("the AUTO stream has no list of fallback devices")
    return AutoStream(
        model=sections[0],
        chosen=_target(manifest.get("chosen"), "chosen device"),
        fallbacks=tuple(_target(f, "fallback device") for f in fallbacks),
        blob=sections[1],
    )
