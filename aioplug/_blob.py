"""The export format of compiled models: framed, checksummed, no code execution.

Layout: ``MAGIC`` (8 bytes), u32 header length, the header as UTF-8 JSON, u64 payload
length, the payload (device-specific bytes, e.g. an ONNX model), and the SHA-256 of
everything before it. The header records the format, aioplug's version, the device and its
plugin version, the model name and the compile configuration, so import can refuse a stream
from another device or version with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, BinaryIO

from ._version import __version__
from .errors import ImportExportError

__all__ = ["FORMAT_VERSION", "read_blob", "write_blob"]

MAGIC = b"AIOPLUG\x01"
FORMAT_VERSION = 1


def write_blob(stream: BinaryIO, header: dict[str, Any], payload: bytes) -> None:
    """Writes one framed blob to ``stream``."""
    head = dict(header)
    head["format"] = FORMAT_VERSION
    head["aioplug"] = __version__
    head_bytes = json.dumps(head, sort_keys=True).encode("utf-8")
    body = b"".join(
        [MAGIC, struct.pack("<I", len(head_bytes)), head_bytes, struct.pack("<Q", len(payload)), payload]
    )
    stream.write(body)
    stream.write(hashlib.sha256(body).digest())


def _take(data: bytes, offset: int, n: int, what: str) -> bytes:
    if offset + n > len(data):
        raise ImportExportError(
            f"the stream is truncated: it ends inside the {what} "
            f"(needs {offset + n} bytes, has {len(data)})"
        )
    return data[offset : offset + n]


def read_blob(stream: BinaryIO | bytes, device: str) -> tuple[dict[str, Any], bytes]:
    """Reads and verifies one blob exported for ``device``; returns (header, payload)."""
    try:
        data = stream if isinstance(stream, (bytes, bytearray)) else stream.read()
    except Exception as exc:
        raise ImportExportError(f"cannot read the stream: {exc}") from exc
    if not isinstance(data, (bytes, bytearray)):
        raise ImportExportError("the stream must be opened in binary mode")
    data = bytes(data)
    if not data.startswith(MAGIC[:7]):
        raise ImportExportError("not an aioplug compiled-model export (bad magic bytes)")
    if data[:8] != MAGIC:
        raise ImportExportError(
            f"unsupported aioplug export framing {data[7]}; this aioplug reads {MAGIC[7]}"
        )
    offset = 8
    (head_len,) = struct.unpack("<I", _take(data, offset, 4, "header length"))
    offset += 4
    head_bytes = _take(data, offset, head_len, "header")
    offset += head_len
    (payload_len,) = struct.unpack("<Q", _take(data, offset, 8, "payload length"))
    offset += 8
    payload = _take(data, offset, payload_len, "payload")
    offset += payload_len
    digest = _take(data, offset, 32, "checksum")
    if hashlib.sha256(data[:offset]).digest() != digest:
        raise ImportExportError("the stream is corrupt: its checksum does not match")
    try:
        header = json.loads(head_bytes.decode("utf-8"))
    except ValueError as exc:
        raise ImportExportError(f"the stream's header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ImportExportError("the stream's header is not a JSON object")
    if header.get("format") != FORMAT_VERSION:
        raise ImportExportError(
            f"export format {header.get('format')!r} is not supported; this aioplug reads "
            f"format {FORMAT_VERSION}"
        )
    if header.get("aioplug") != __version__:
        raise ImportExportError(
            f"the stream was exported by aioplug {header.get('aioplug')}; this is "
            f"aioplug {__version__}: compile the model again"
        )
    if header.get("device") != device:
        raise ImportExportError(
            f"the stream was exported for device {header.get('device')!r}, not {device!r}"
        )
    return header, payload
