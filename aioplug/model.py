"""The model IR: an ONNX model read, checked and shape-inferred into explicit values.

:func:`read_model` accepts a path, bytes or an ``onnx.ModelProto`` and returns a
:class:`Model`: its ports (name, dtype, possibly symbolic shape), nodes (with decoded
attributes), opset imports and a content hash. Every node gets a unique name. The ONNX proto
stays available to devices as :attr:`Model.proto`; nothing here mutates the caller's proto.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import MalformedModel, ShapeInferenceError, UnsupportedOp

__all__ = ["Dim", "Model", "ModelSource", "Node", "Port", "read_model"]

Dim = Union[int, str, None]
"""A dimension: a size, a symbolic name, or unknown."""

ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray, onnx.ModelProto, "Model"]


@dataclass(frozen=True)
class Port:
    """A model input or output: its name, element type, shape and position."""

    name: str
    dtype: np.dtype[Any] | None
    shape: tuple[Dim, ...] | None
    index: int
    kind: str = "tensor"
    """``tensor``, ``sequence``, ``optional`` or ``map``."""

    @property
    def is_dynamic(self) -> bool:
        """True when the rank or some dimension is not a fixed size."""
        return self.shape is None or any(not isinstance(d, int) for d in self.shape)

    def describe(self) -> str:
        """Returns ``float32 of shape (1, 3, 'N')`` style text."""
        dtype = self.dtype.name if self.dtype is not None else "any type"
        shape = "unknown shape" if self.shape is None else f"shape {_fmt_shape(self.shape)}"
        return f"{dtype} of {shape}"


def _fmt_shape(shape: Sequence[Dim]) -> str:
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


@dataclass(frozen=True)
class Node:
    """One graph node with decoded attributes."""

    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)


def _decode_attribute(attr: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", errors="replace") for v in value]
    return value


def _port(vi: onnx.ValueInfoProto, index: int) -> Port:
    t = vi.type
    which = t.WhichOneof("value")
    if which != "tensor_type":
        kind = {"sequence_type": "sequence", "optional_type": "optional", "map_type": "map"}
        return Port(vi.name, None, None, index, kind.get(which or "", "tensor"))
    tt = t.tensor_type
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
    shape: tuple[Dim, ...] | None = None
    if tt.HasField("shape"):
        dims: list[Dim] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return Port(vi.name, dtype, shape, index)


class Model:
    """A checked, shape-inferred ONNX model. Build one with :func:`read_model`."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self._proto = proto
        graph = proto.graph
        initializer_names = {init.name for init in graph.initializer}
        self.name: str = graph.name or "model"
        self.inputs: tuple[Port, ...] = tuple(
            _port(vi, i)
            for i, vi in enumerate(vi for vi in graph.input if vi.name not in initializer_names)
        )
        self.outputs: tuple[Port, ...] = tuple(_port(vi, i) for i, vi in enumerate(graph.output))
        self.opsets: dict[str, int] = {
            (imp.domain or ""): imp.version for imp in proto.opset_import
        }
        self.nodes: tuple[Node, ...] = tuple(
            Node(
                n.name,
                n.op_type,
                n.domain or "",
                tuple(n.input),
                tuple(n.output),
                {a.name: _decode_attribute(a) for a in n.attribute},
            )
            for n in graph.node
        )
        self._value_ports = {
            vi.name: _port(vi, -1) for vi in [*graph.value_info, *graph.input, *graph.output]
        }

    @property
    def proto(self) -> onnx.ModelProto:
        """The checked, shape-inferred ONNX model (treat it as read-only)."""
        return self._proto

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the model's deterministic serialisation (graph and weights)."""
        data = self._proto.SerializeToString(deterministic=True)
        return hashlib.sha256(data).hexdigest()

    @cached_property
    def initializers(self) -> dict[str, np.ndarray]:
        """Initializer values by name."""
        return {init.name: numpy_helper.to_array(init) for init in self._proto.graph.initializer}

    def value_port(self, name: str) -> Port | None:
        """Returns what shape inference knows of the value ``name``."""
        return self._value_ports.get(name)

    def input(self, key: str | int | None = None) -> Port:
        """Returns the input named ``key`` or at index ``key``; the only one when ``key`` is None."""
        return _select(self.inputs, key, "input", self.name)

    def output(self, key: str | int | None = None) -> Port:
        """Returns the output named ``key`` or at index ``key``; the only one when ``key`` is None."""
        return _select(self.outputs, key, "output", self.name)

    def serialize(self) -> bytes:
        """Returns the ONNX bytes of the model."""
        data: bytes = self._proto.SerializeToString()
        return data

    def __repr__(self) -> str:
        ins = ", ".join(f"{p.name}: {p.describe()}" for p in self.inputs)
        return f"<Model {self.name!r} inputs=[{ins}] nodes={len(self.nodes)}>"


def _select(ports: Sequence[Port], key: str | int | None, what: str, owner: str) -> Port:
    from .errors import InputError

    if key is None:
        if len(ports) != 1:
            names = ", ".join(repr(p.name) for p in ports)
            raise InputError(f"{owner} has {len(ports)} {what}s ({names}); name one")
        return ports[0]
    if isinstance(key, int) and not isinstance(key, bool):
        if 0 <= key < len(ports):
            return ports[key]
        raise InputError(f"{owner} has no {what} #{key}; it has {len(ports)}")
    for port in ports:
        if port.name == key:
            return port
    names = ", ".join(repr(p.name) for p in ports)
    raise InputError(f"{owner} has no {what} {key!r}; {what}s are: {names}")


def _load_proto(source: ModelSource) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(source)
        return proto
    if isinstance(source, (bytes, bytearray, memoryview)):
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(source))
        except Exception as exc:
            raise MalformedModel(f"bytes are not an ONNX model: {exc}") from exc
        return proto
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MalformedModel(f"model file {path!r} does not exist")
        try:
            return onnx.load(path)
        except Exception as exc:
            raise MalformedModel(f"{path!r} is not an ONNX model: {exc}") from exc
    raise MalformedModel(
        f"cannot read a model from {type(source).__name__}: pass a path, bytes, "
        "an onnx.ModelProto or an aioplug.Model"
    )


def _unknown_ops(proto: onnx.ModelProto) -> list[tuple[str, str, int]]:
    opsets = {(imp.domain or ""): imp.version for imp in proto.opset_import}
    unknown: dict[tuple[str, str, int], None] = {}
    for node in proto.graph.node:
        domain = node.domain or ""
        if domain not in ("", "ai.onnx", "ai.onnx.ml"):
            continue
        version = opsets.get(domain, 1)
        try:
            onnx.defs.get_schema(node.op_type, version, domain)
        except onnx.defs.SchemaError:
            unknown[(domain, node.op_type, version)] = None
    return list(unknown)


def read_model(source: ModelSource) -> Model:
    """Reads, checks and shape-infers an ONNX model from a path, bytes or ModelProto.

    Raises MalformedModel for bytes that are not a valid model and ShapeInferenceError for
    shapes or types that do not agree.
    """
    if isinstance(source, Model):
        return source
    proto = _load_proto(source)
    if not proto.HasField("graph") or not proto.opset_import:
        raise MalformedModel("not an ONNX model: it has no graph or no opset_import")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        unknown = _unknown_ops(proto)
        if unknown:
            ops = ", ".join(f"{d or 'ai.onnx'}::{op} (opset {v})" for d, op, v in unknown)
            raise UnsupportedOp(
                f"the model uses op(s) that its opset does not define: {ops}", tuple(unknown)
            ) from exc
        raise MalformedModel(f"invalid ONNX model: {first}") from exc
    except Exception as exc:  # the checker raises C++ errors of other types too
        raise MalformedModel(f"invalid ONNX model: {exc}") from exc
    seen: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{i}"
            name, k = base, 1
            while name in seen:
                name, k = f"{base}_{k}", k + 1
            node.name = name
        seen.add(node.name)
    return Model(_infer_shapes(proto))


def _infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Strict shape inference; lenient only where onnx fails inside a function op's own body."""
    try:
        inferred: onnx.ModelProto = onnx.shape_inference.infer_shapes(
            proto, strict_mode=True, data_prop=True
        )
        return inferred
    except Exception as exc:
        if not _fails_inside_function_body(str(exc), proto):
            raise ShapeInferenceError(f"shape inference failed: {exc}") from exc
    try:
        lenient: onnx.ModelProto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
        return lenient
    except Exception as exc:
        raise ShapeInferenceError(f"shape inference failed: {exc}") from exc


def _fails_inside_function_body(message: str, proto: onnx.ModelProto) -> bool:
    import re

    match = re.search(r"\(op_type:(\w+)", message)
    if match is None or message.count("Inference error(s)") < 2:
        return False
    opsets = {(imp.domain or ""): imp.version for imp in proto.opset_import}
    try:
        schema = onnx.defs.get_schema(match.group(1), opsets.get("", 1), "")
    except onnx.defs.SchemaError:
        return False
    return bool(getattr(schema, "has_function", False) or getattr(schema, "has_context_dependent_function", False))
