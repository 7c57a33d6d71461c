"""A plain node-by-node runner over the kernel registry, for kernel tests.

It builds a :class:`KernelNode` for each node (attributes decoded, initializers as constant
inputs, dtypes and shapes from onnx shape inference) and calls the kernels in graph order.
The device's real compiler adds the graph passes, buffer planning and profiling on top; this
runner exists so that kernels can be checked against onnx's node cases on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._registry import Dim, KernelNode, lookup

__all__ = ["decode_attributes", "run_model", "value_type"]


def decode_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """Returns the node's attributes as plain Python / numpy values."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8") for v in value]
        elif isinstance(value, list) and value and isinstance(value[0], onnx.TensorProto):
            value = [numpy_helper.to_array(v) for v in value]
        out[attr.name] = value
    return out


def value_type(
    type_proto: onnx.TypeProto,
) -> tuple[np.dtype[Any] | None, tuple[Dim, ...] | None]:
    """Returns (dtype, shape) of a tensor type; (None, None) for other types."""
    if not type_proto.HasField("tensor_type"):
        return None, None
    tt = type_proto.tensor_type
    dtype = (
        np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
    )
    if not tt.HasField("shape"):
        return dtype, None
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dtype, tuple(dims)


def run_model(model: onnx.ModelProto, inputs: Sequence[Any]) -> list[Any]:
    """Runs ``model`` on ``inputs`` (graph input order) and returns the graph outputs."""
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape information is a hint for kernels, not a requirement
        pass
    graph = model.graph
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    types: dict[str, onnx.TypeProto] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        types[vi.name] = vi.type
    values: dict[str, Any] = {"": None}
    consts: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        consts[init.name] = numpy_helper.to_array(init)
    values.update(consts)
    feeds = [vi.name for vi in graph.input]
    for name, value in zip(feeds, inputs):
        values[name] = value
        consts.pop(name, None)

    def info(name: str) -> tuple[np.dtype[Any] | None, tuple[Dim, ...] | None]:
        t = types.get(name)
        return value_type(t) if t is not None else (None, None)

    for node in graph.node:
        domain = node.domain or ""
        in_infos = [info(n) for n in node.input]
        out_infos = [info(n) for n in node.output]
        kn = KernelNode(
            op_type=node.op_type,
            domain=domain,
            opset=opsets.get(domain, opsets.get("", 1)),
            attributes=decode_attributes(node),
            num_inputs=len(node.input),
            num_outputs=len(node.output),
            name=node.name,
            const_inputs=tuple(consts.get(n) if n else None for n in node.input),
            input_dtypes=tuple(d for d, _ in in_infos),
            input_shapes=tuple(s for _, s in in_infos),
            output_dtypes=tuple(d for d, _ in out_infos),
            output_shapes=tuple(s for _, s in out_infos),
        )
        kernel = lookup(domain, node.op_type, kn.opset)(kn)
        results = kernel(*(values[n] if n else None for n in node.input))
        for name, value in zip(node.output, results):
            if name:
                values[name] = value
    return [values[vi.name] for vi in graph.output]
