"""Decoding one input tensor of a request: its shape, datatype and data, checked against the model.

A tensor's header (name, shape, datatype) is checked against the model's port before its
data is read; the data then comes from JSON (flat or nested lists, strings for BYTES) or
from its slice of the binary section. Every problem raises ProtocolError (400) naming the
input and what was expected; a tensor past the element limit raises PayloadTooLarge (413).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from ..model import Port
from .datatypes import datatype_of, deserialize_bytes
from .errors import PayloadTooLarge, ProtocolError

__all__ = ["bind_symbols", "check_against_port", "check_shape", "from_binary", "from_json", "port_shape"]

MAX_RANK = 32
_LITTLE = sys.byteorder == "little"


def port_shape(port: Port) -> list[int]:
    """The protocol shape of a port: -1 for every dimension that is not a fixed size."""
    if port.shape is None:
        return [-1]
    return [d if isinstance(d, int) else -1 for d in port.shape]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_shape(value: Any, where: str, max_elements: int) -> tuple[tuple[int, ...], int]:
    if not isinstance(value, list) or not all(_is_int(d) and d >= 0 for d in value):
        raise ProtocolError(f"{where}.shape must be a list of integers >= 0, got {value!r}")
    if len(value) > MAX_RANK:
        raise ProtocolError(f"{where}.shape has rank {len(value)}; at most {MAX_RANK} is supported")
    count = math.prod(value)
    if count > max_elements:
        raise PayloadTooLarge(
            f"{where} has {count} elements (shape {value}); this server takes at most "
            f"{max_elements} per tensor"
        )
    return tuple(value), count


def check_against_port(port: Port, datatype: str, shape: tuple[int, ...], where: str) -> None:
    if port.dtype is not None:
        expected = datatype_of(port.dtype)
        if expected != datatype:
            raise ProtocolError(f"{where} is {expected} in the model; got datatype {datatype}")
    if port.shape is None:
        return
    if len(shape) != len(port.shape):
        raise ProtocolError(
            f"{where} has rank {len(port.shape)} in the model (shape {port_shape(port)}); "
            f"got shape {list(shape)} of rank {len(shape)}"
        )
    for axis, (want, have) in enumerate(zip(port.shape, shape)):
        if isinstance(want, int) and want != have:
            raise ProtocolError(
                f"{where}: axis {axis} is {want} in the model (shape {port_shape(port)}); got "
                f"shape {list(shape)}"
            )


def bind_symbols(
    port: Port, shape: tuple[int, ...], name: str, bound: dict[str, tuple[int, str, int]]
) -> None:
    """Checks that a symbolic dimension (``N``) has one size across all inputs."""
    for axis, (dim, size) in enumerate(zip(port.shape or (), shape)):
        if not isinstance(dim, str):
            continue
        first = bound.setdefault(dim, (size, name, axis))
        if first[0] != size:
            raise ProtocolError(
                f"input {name!r}: axis {axis} is {dim!r} in the model, which input {first[1]!r} "
                f"(axis {first[2]}) sets to {first[0]}; got {size}"
            )


def _flatten_strings(data: Any, where: str) -> list[str]:
    out: list[str] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if not isinstance(item, str):
                raise ProtocolError(
                    f"{where}.data: BYTES elements in JSON must be strings, got "
                    f"{type(item).__name__} {item!r}; send raw bytes as binary data"
                )
            out.append(item)
        else:
            stack.pop()
    return out


def _numeric_from_json(data: list[Any], dtype: np.dtype[Any], datatype: str, where: str) -> np.ndarray:
    try:
        array = np.array(data)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"{where}.data is a ragged or mixed nested list: {exc}") from exc
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(dtype)
    if dtype.kind == "b":
        if kind != "b":
            raise ProtocolError(f"{where}.data: BOOL elements must be true or false")
        return array
    if dtype.kind in "iu":
        if kind not in "iu":
            array = _python_ints(data, array, datatype, where)
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise ProtocolError(f"{where}.data: {bad} is out of range for {datatype} [{info.min}, {info.max}]")
        return array.astype(dtype)
    if kind not in "iuf":
        raise ProtocolError(f"{where}.data: {datatype} elements must be numbers, found {_describe_kind(kind)}")
    with np.errstate(over="ignore"):
        cast = array.astype(dtype)
    if dtype.itemsize < array.dtype.itemsize or kind != "f":
        overflow = np.isinf(cast) & np.isfinite(array)
        if overflow.any():
            raise ProtocolError(
                f"{where}.data: {array[overflow].flat[0]} is out of range for {datatype}"
            )
    return cast


def _python_ints(data: list[Any], array: np.ndarray, datatype: str, where: str) -> np.ndarray:
    """Integers numpy did not keep as integers (mixing int64 and uint64 gives float64)."""
    values = np.array(data, dtype=object).ravel().tolist() if array.dtype.kind in "fO" else None
    if values is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ProtocolError(
            f"{where}.data: {datatype} elements must be integers, found {_describe_kind(array.dtype.kind)}"
        )
    low, high = min(values), max(values)
    if low < -(2**63) or high >= 2**64:
        raise ProtocolError(f"{where}.data: {low if low < 0 else high} is out of range for {datatype}")
    return np.array(values, dtype=np.uint64 if low >= 0 else np.int64).reshape(array.shape)


def _describe_kind(kind: str) -> str:
    return {
        "b": "true/false", "f": "floating-point numbers", "U": "strings",
        "O": "non-numbers or integers too large for 64 bits",
    }.get(kind, f"values of kind {kind!r}")


def from_json(
    data: Any, shape: tuple[int, ...], count: int, dtype: np.dtype[Any], datatype: str, where: str
) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"{where}.data must be a list (flat or nested, row-major), got {type(data).__name__}")
    if datatype == "BYTES":
        flat = _flatten_strings(data, where)
        if len(flat) != count:
            raise ProtocolError(f"{where}.data has {len(flat)} elements; shape {list(shape)} needs {count}")
        array = np.empty(count, dtype=object)
        array[:] = [s.encode("utf-8") for s in flat]
        return array.reshape(shape)
    array = _numeric_from_json(data, dtype, datatype, where)
    if array.size != count:
        raise ProtocolError(f"{where}.data has {array.size} elements; shape {list(shape)} needs {count}")
    if array.ndim > 1 and array.shape != shape:
        raise ProtocolError(
            f"{where}.data is nested as {list(array.shape)}, which is not its shape {list(shape)}: "
            "nest it as the shape says or send it flat"
        )
    return array.reshape(shape)


def from_binary(
    chunk: memoryview, shape: tuple[int, ...], count: int, dtype: np.dtype[Any], datatype: str, name: str
) -> np.ndarray:
    where = f"input {name!r}"
    if datatype == "BYTES":
        return deserialize_bytes(chunk, count, name).reshape(shape)
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise ProtocolError(
            f"{where}: binary_data_size is {len(chunk)} bytes; {count} {datatype} elements of shape "
            f"{list(shape)} take {expected}"
        )
    array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
    if dtype.kind == "b" and count and np.frombuffer(chunk, dtype=np.uint8).max() > 1:
        raise ProtocolError(f"{where}: BOOL bytes must be 0 or 1")
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        array = array.astype(dtype)
    elif not array.flags.aligned:
        array = array.copy()
    return array.reshape(shape)
