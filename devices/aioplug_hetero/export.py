"""HETERO's export stream: the split plan, the original model, and each part's own blob.

The payload of HETERO's export blob is a bundle (``aioplug.plugin.pack_bundle``) whose
manifest is::

    {"kind": "HETERO", "parts": [{"target": "TEMPLATE", "subgraph": {...}}, ...]}

``target`` is the device name the part was compiled on (as listed, e.g. ``TEMPLATE`` or
``CPU.1``), ``subgraph`` the part's :class:`~.split.Subgraph` (device, nodes, the values
crossing its cut). Section 0 holds the original model's ONNX bytes (its ports, variable states
and constant outputs); section ``i + 1`` holds the blob that part ``i`` exported on its own
device. Nothing is pickled; every length is checked before use.
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

from .split import Subgraph

__all__ = ["HeteroStream", "check_parts", "read_stream", "write_stream"]

KIND = "HETERO"


@dataclass(frozen=True)
class HeteroStream:
    """A HETERO export, read back: the original model's bytes, and each part's plan entry."""

    model: bytes
    targets: tuple[DeviceTarget, ...]
    subgraphs: tuple[Subgraph, ...]
    blobs: tuple[bytes, ...]


def write_stream(
    model: Model,
    targets: Sequence[DeviceTarget],
    subgraphs: Sequence[Subgraph],
    parts: Sequence[CompiledModel],
) -> bytes:
    """The payload of a HETERO export."""
    manifest = {
        "kind": KIND,
        "parts": [
            {"target": target.name, "subgraph": subgraph.to_json()}
            for target, subgraph in zip(targets, subgraphs)
        ],
    }
    return pack_bundle(manifest, [model.serialize(), *(exported_bytes(p) for p in parts)])


def read_stream(manifest: dict[str, Any], sections: list[bytes]) -> HeteroStream:
    """Checks a HETERO manifest and its sections; raises ImportExportError saying what is wrong."""
    if manifest.get("kind") != KIND:
        raise ImportExportError(f"the stream's payload is not a HETERO plan ({manifest.get('kind')!r})")
    entries = manifest.get("parts")
    if not isinstance(entries, list) or not entries:
        raise ImportExportError("the HETERO stream has no parts")
    if len(sections) != len(entries) + 1:
        raise ImportExportError(
            f"the HETERO stream lists {len(entries)} part(s) but holds {len(sections) - 1} blob(s)"
        )
    targets = []
    subgraphs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
            raise ImportExportError(f"part {i} of the HETERO stream names no target device")
        try:
            name = parse_device_name(entry["target"])
        except DeviceNameError as exc:
            raise ImportExportError(f"part {i} of the HETERO stream: {exc}") from exc
        if name.virtual:
            raise ImportExportError(f"part {i} of the HETERO stream targets a virtual device")
        subgraph = Subgraph.from_json(entry.get("subgraph"))
        if subgraph.index != i:
            raise ImportExportError(f"part {i} of the HETERO stream says it is part {subgraph.index}")
        targets.append(DeviceTarget(entry["target"]))
        subgraphs.append(subgraph)
    return HeteroStream(sections[0], tuple(targets), tuple(subgraphs), tuple(sections[1:]))


def check_parts(model: Model, stream: HeteroStream, parts: Sequence[CompiledModel]) -> None:
    """Each imported part reads and makes the values its plan entry says, and the plan covers
    the model's nodes exactly: a stream that disagrees with itself is refused."""
    planned = [n for s in stream.subgraphs for n in s.nodes]
    if sorted(planned) != sorted(node.name for node in model.nodes):
        raise ImportExportError("the HETERO stream's plan does not cover the model's nodes exactly")
    for subgraph, part in zip(stream.subgraphs, parts):
        inputs = {p.name for p in part.inputs}
        outputs = {p.name for p in part.outputs}
        if inputs != set(subgraph.inputs) or not set(subgraph.outputs) <= outputs:
            raise ImportExportError(
                f"part {subgraph.index} of the HETERO stream ({subgraph.device}) does not match its "
                f"plan: it reads {sorted(inputs)} and makes {sorted(outputs)}"
            )
