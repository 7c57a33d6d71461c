"""Decoding an inference request: the JSON header, its binary tensors, checked field by field.

:func:`parse_infer_request` turns a request body into numpy inputs for one model. Every
field is checked against the protocol and the model before anything is allocated from it;
each problem raises :class:`~aioplug.serve.errors.ProtocolError` (400) saying which field is
wrong and what was expected, or :class:`~aioplug.serve.errors.PayloadTooLarge` (413) for a
tensor past the element limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Port
from .datatypes import datatype_of, numpy_dtype
from .errors import ProtocolError
from .tensors import bind_symbols, check_against_port, check_shape, from_binary, from_json, port_shape

__all__ = ["InferRequest", "RequestedOutput", "parse_infer_request"]

_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
_UNSUPPORTED_PARAMS = {
    "shared_memory_region": "shared memory is not supported: send the tensor in the body",
    "shared_memory_byte_size": "shared memory is not supported: send the tensor in the body",
    "shared_memory_offset": "shared memory is not supported: send the tensor in the body",
    "classification": "classification outputs are not supported: request the raw tensor",
}


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; ``binary`` None follows ``binary_data_output``."""

    name: str
    binary: bool | None = None


@dataclass
class InferRequest:
    """A decoded inference request: inputs by name and how to answer."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...] | None = None
    binary_data_output: bool = False
    timeout_us: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ProtocolError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} must be a JSON object, got {type(value).__name__}")
    for key in value:
        if key in _UNSUPPORTED_PARAMS:
            raise ProtocolError(f"{where}: {_UNSUPPORTED_PARAMS[key]}")
    return value


def _bool_param(params: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = params.get(key)
    if value is not None and not isinstance(value, bool):
        raise ProtocolError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _load_json(data: bytes | memoryview, framed: bool) -> Any:
    what = "the JSON header" if framed else "the request body"
    hint = "" if framed else " (binary tensors need the Inference-Header-Content-Length header)"
    try:
        return json.loads(bytes(data))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: it is not UTF-8 text ({exc}){hint}") from exc
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc}{hint}") from exc
    except RecursionError as exc:
        raise ProtocolError("the request JSON is nested too deeply") from exc


def _parse_outputs(value: Any, ports: Mapping[str, Port]) -> tuple[RequestedOutput, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ProtocolError(f"'outputs' must be a list of objects, got {type(value).__name__}")
    requested: list[RequestedOutput] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"outputs[{i}]"
        if not isinstance(item, dict):
            raise ProtocolError(f"{where} must be an object with a 'name', got {item!r}")
        _check_keys(item, _OUTPUT_KEYS, where)
        name = item.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"{where}.name must be a string, got {name!r}")
        if name not in ports:
            raise ProtocolError(f"{where}: the model has no output {name!r}; outputs: {', '.join(map(repr, ports))}")
        if name in seen:
            raise ProtocolError(f"{where}: output {name!r} is requested twice")
        seen.add(name)
        params = _object(item.get("parameters"), f"{where}.parameters")
        requested.append(RequestedOutput(name, _bool_param(params, "binary_data", f"{where}.parameters")))
    return tuple(requested)


def _describe_inputs(ports: Sequence[Port]) -> str:
    return ", ".join(
        f"{p.name!r} ({datatype_of(p.dtype) if p.dtype is not None else 'any'} {port_shape(p)})"
        for p in ports
    )


def parse_infer_request(
    body: bytes,
    header_length: int | None,
    inputs: Sequence[Port],
    outputs: Sequence[Port],
    *,
    max_elements: int,
) -> InferRequest:
    """Decodes a request body for a model with ``inputs`` and ``outputs``.

    ``header_length`` is the ``Inference-Header-Content-Length`` header: the JSON header's
    size, the binary tensors following it in input order. None means the body is all JSON.
    """
    view = memoryview(body)
    if header_length is None:
        header, binary = view, view[len(view):]
    else:
        if not 0 < header_length <= len(view):
            raise ProtocolError(
                f"Inference-Header-Content-Length is {header_length}, but the body has {len(view)} bytes"
            )
        header, binary = view[:header_length], view[header_length:]
    request = _load_json(header, header_length is not None)
    if not isinstance(request, dict):
        raise ProtocolError(f"the request must be a JSON object, got {type(request).__name__}")
    _check_keys(request, _REQUEST_KEYS, "request")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"'id' must be a string, got {request_id!r}")
    params = _object(request.get("parameters"), "parameters")
    binary_output = _bool_param(params, "binary_data_output", "parameters") or False
    timeout = params.get("timeout")
    if timeout is not None and (not _is_int(timeout) or timeout < 0):
        raise ProtocolError(f"parameters.timeout must be an integer >= 0 (microseconds), got {timeout!r}")
    sequence_id = params.get("sequence_id")
    if sequence_id not in (None, 0, ""):
        raise ProtocolError("sequence_id is not supported: this server has no sequence batcher")
    in_ports = {p.name: p for p in inputs}
    out_ports = {p.name: p for p in outputs}
    requested = _parse_outputs(request.get("outputs"), out_ports)
    items = request.get("inputs")
    if not isinstance(items, list) or not items:
        raise ProtocolError(f"'inputs' must be a non-empty list; the model takes {_describe_inputs(inputs)}")
    arrays: dict[str, np.ndarray] = {}
    symbols: dict[str, tuple[int, str, int]] = {}
    offset = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProtocolError(f"inputs[{i}] must be an object, got {type(item).__name__}")
        name = item.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"inputs[{i}].name must be a string, got {name!r}")
        where = f"input {name!r}"
        _check_keys(item, _INPUT_KEYS, where)
        port = in_ports.get(name)
        if port is None:
            raise ProtocolError(f"the model has no input {name!r}; it takes {_describe_inputs(inputs)}")
        if name in arrays:
            raise ProtocolError(f"{where} is given twice")
        datatype = item.get("datatype")
        if not isinstance(datatype, str):
            raise ProtocolError(f"{where}.datatype must be a string such as \"FP32\", got {datatype!r}")
        dtype = numpy_dtype(datatype, where)
        shape, count = check_shape(item.get("shape"), where, max_elements)
        check_against_port(port, datatype, shape, where)
        bind_symbols(port, shape, name, symbols)
        tensor_params = _object(item.get("parameters"), f"{where}.parameters")
        size = tensor_params.get("binary_data_size")
        if size is not None:
            if not _is_int(size) or size < 0:
                raise ProtocolError(f"{where}.parameters.binary_data_size must be an integer >= 0, got {size!r}")
            if "data" in item:
                raise ProtocolError(f"{where} has both 'data' and binary_data_size: send one")
            if header_length is None:
                raise ProtocolError(
                    f"{where} has binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if offset + size > len(binary):
                raise ProtocolError(
                    f"{where}: binary data ends at byte {offset + size}, past the {len(binary)} "
                    "bytes after the JSON header"
                )
            arrays[name] = from_binary(binary[offset:offset + size], shape, count, dtype, datatype, name)
            offset += size
        elif "data" in item:
            arrays[name] = from_json(item["data"], shape, count, dtype, datatype, where)
        else:
            raise ProtocolError(f"{where} has neither 'data' nor parameters.binary_data_size")
    if offset != len(binary):
        raise ProtocolError(
            f"the body has {len(binary)} bytes after the JSON header, but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    missing = [p for p in inputs if p.name not in arrays and p.kind != "optional"]
    if missing:
        raise ProtocolError(
            f"missing input(s) {', '.join(repr(p.name) for p in missing)}; the model takes "
            f"{_describe_inputs(inputs)}"
        )
    return InferRequest(request_id, arrays, requested, binary_output, timeout or None, params)

