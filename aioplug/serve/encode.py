"""Encoding an inference response: outputs as JSON data, or as binary after the JSON header.

An output goes binary when its requested ``binary_data`` parameter says so, or else when
the request's ``binary_data_output`` does. Binary outputs follow the JSON header in output
order; the header's length is returned for the ``Inference-Header-Content-Length`` header.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .datatypes import datatype_of, serialize_bytes
from .decode import RequestedOutput
from .errors import ProtocolError, ServeError

__all__ = ["encode_json", "encode_response", "tensor_bytes"]

_LITTLE = sys.byteorder == "little"


def encode_json(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def tensor_bytes(array: np.ndarray, datatype: str) -> bytes:
    """The binary form of a tensor: little-endian, row-major; BYTES length-prefixed."""
    if datatype == "BYTES":
        return serialize_bytes(array)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def _json_data(name: str, array: np.ndarray, datatype: str) -> list[Any]:
    if datatype != "BYTES":
        data: list[Any] = array.ravel().tolist()
        return data
    out: list[str] = []
    for item in array.ravel():
        if isinstance(item, str):
            out.append(item)
            continue
        try:
            out.append(bytes(item).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"output {name!r} holds bytes that are not UTF-8 text, which JSON cannot carry: "
                "request it with parameters.binary_data = true"
            ) from exc
    return out


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    results: Mapping[str, Any],
    requested: Sequence[RequestedOutput] | None,
    binary_default: bool,
) -> tuple[bytes, int | None]:
    """Returns the response body and, when any output is binary, the JSON header's length."""
    wanted = requested if requested is not None else [RequestedOutput(name) for name in results]
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for item in wanted:
        array = np.asarray(results[item.name])
        try:
            datatype = datatype_of(array.dtype)
        except ProtocolError as exc:
            raise ServeError(f"output {item.name!r}: {exc}") from exc
        entry: dict[str, Any] = {"name": item.name, "datatype": datatype, "shape": list(array.shape)}
        if item.binary if item.binary is not None else binary_default:
            data = tensor_bytes(array, datatype)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = _json_data(item.name, array, datatype)
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = outputs
    header = encode_json(response)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
