"""KServe v2 datatypes: the names the protocol uses, mapped to numpy dtypes both ways.

Fixed-size datatypes travel little-endian and row-major; BOOL takes one byte per element.
BYTES elements travel in binary as a 4-byte little-endian length followed by the bytes, and
in JSON as strings; in numpy they are an ``object`` array of ``bytes``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .errors import ProtocolError

__all__ = [
    "DATATYPES",
    "datatype_of",
    "deserialize_bytes",
    "numpy_dtype",
    "serialize_bytes",
]

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
"""Every datatype the server accepts, with its numpy dtype (native byte order)."""

_BY_DTYPE: dict[np.dtype[Any], str] = {dtype: name for name, dtype in DATATYPES.items()}
_LENGTH = struct.Struct("<I")


def numpy_dtype(datatype: str, where: str = "tensor") -> np.dtype[Any]:
    """Returns the numpy dtype of a protocol datatype; ProtocolError names the supported ones."""
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        hint = " (BF16 is not supported: send FP32 or FP16)" if datatype == "BF16" else ""
        raise ProtocolError(
            f"{where}: unknown datatype {datatype!r}{hint}; use one of {', '.join(DATATYPES)}"
        )
    return dtype


def datatype_of(dtype: np.dtype[Any]) -> str:
    """Returns the protocol datatype of a numpy dtype; strings and objects are BYTES.

    Raises ProtocolError for a dtype the protocol cannot carry (complex, datetime, void).
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    name = _BY_DTYPE.get(dtype.newbyteorder("=") if dtype.byteorder not in "=|" else dtype)
    if name is None:
        raise ProtocolError(f"numpy dtype {dtype.name} has no KServe v2 datatype")
    return name


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytearray, memoryview, np.bytes_)):
        return bytes(item)
    raise ProtocolError(f"a BYTES element must be bytes or str, got {type(item).__name__}")


def serialize_bytes(array: np.ndarray) -> bytes:
    """Returns the elements of a BYTES tensor, row-major, each as length + bytes."""
    parts: list[bytes] = []
    pack = _LENGTH.pack
    for item in array.ravel(order="C"):
        data = _as_bytes(item)
        parts.append(pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes(buffer: bytes | memoryview, count: int, name: str) -> np.ndarray:
    """Reads exactly ``count`` length-prefixed elements that fill ``buffer``; an object array.

    Raises ProtocolError when a length runs past the buffer, when fewer or more elements
    than ``count`` are present, or when bytes are left over.
    """
    view = memoryview(buffer)
    size = len(view)
    items: list[bytes] = []
    offset = 0
    unpack = _LENGTH.unpack_from
    for index in range(count):
        if offset + 4 > size:
            raise ProtocolError(
                f"input {name!r}: BYTES data ends after {index} of {count} elements; each "
                "element is a 4-byte little-endian length followed by that many bytes"
            )
        (length,) = unpack(view, offset)
        offset += 4
        if offset + length > size:
            raise ProtocolError(
                f"input {name!r}: BYTES element {index} declares {length} bytes but only "
                f"{size - offset} remain in its binary_data_size of {size}"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != size:
        raise ProtocolError(
            f"input {name!r}: {size - offset} bytes are left after the {count} BYTES elements "
            "its shape calls for: the shape or binary_data_size is wrong"
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array
