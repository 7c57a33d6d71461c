"""A bundle: a JSON manifest and numbered byte sections, the export payload of virtual devices.

A virtual device's compiled model exports what it needs to rebuild itself (a split plan, the
device it chose) and the blobs its parts export, each written by the part's own device. The
bundle frames them without pickle or anything executable: ``TAG`` (4 bytes), u32 manifest
length, the manifest as UTF-8 JSON (an object whose ``"sections"`` lists each section's length),
then the sections, back to back. The outer export blob (:mod:`aioplug._blob`) checksums the
whole, and every part blob carries its own header and checksum.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ImportExportError

__all__ = ["pack_bundle", "unpack_bundle"]

TAG = b"VBN\x01"


def pack_bundle(manifest: Mapping[str, Any], sections: Sequence[bytes]) -> bytes:
    """Frames ``manifest`` (JSON-serialisable, without a ``"sections"`` key) and ``sections``."""
    head = dict(manifest)
    if "sections" in head:
        raise ValueError("the manifest key 'sections' is reserved for the section lengths")
    head["sections"] = [len(s) for s in sections]
    head_bytes = json.dumps(head, sort_keys=True).encode("utf-8")
    return b"".join([TAG, struct.pack("<I", len(head_bytes)), head_bytes, *sections])


def unpack_bundle(payload: bytes, what: str = "virtual device") -> tuple[dict[str, Any], list[bytes]]:
    """Reads a bundle; returns (manifest, sections). Raises ImportExportError, naming ``what``
    the payload belongs to, when it is not a bundle or its lengths do not add up."""
    if payload[:4] != TAG:
        raise ImportExportError(f"the {what} stream's payload is not a virtual-device bundle")
    if len(payload) < 8:
        raise ImportExportError(f"the {what} stream's payload is truncated inside its manifest length")
    (head_len,) = struct.unpack("<I", payload[4:8])
    end = 8 + head_len
    if end > len(payload):
        raise ImportExportError(f"the {what} stream's payload is truncated inside its manifest")
    try:
        manifest = json.loads(payload[8:end].decode("utf-8"))
    except ValueError as exc:
        raise ImportExportError(f"the {what} stream's manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ImportExportError(f"the {what} stream's manifest is not a JSON object")
    lengths = manifest.pop("sections", None)
    if not isinstance(lengths, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths
    ):
        raise ImportExportError(f"the {what} stream's manifest has no valid section lengths")
    if end + sum(lengths) != len(payload):
        raise ImportExportError(
            f"the {what} stream's sections need {sum(lengths)} bytes after the manifest; "
            f"the payload has {len(payload) - end}"
        )
    sections = []
    for n in lengths:
        sections.append(payload[end : end + n])
        end += n
    return manifest, sections
