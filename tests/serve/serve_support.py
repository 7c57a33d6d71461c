"""Models, inputs and server helpers shared by the tests of ``aioplug serve``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from aioplug.serve import InferenceServer, ModelSpec, ServerSettings, create_app
from aioplug.testing.models import OPSET, add_model, multi_io_model

ONNX_TYPES: dict[str, int] = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}
"""Every datatype of the protocol that a model can use, with its ONNX element type."""

CAST_TARGETS = ("FP16", "FP64", "INT32", "INT64", "UINT8", "BOOL")


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def types_model() -> onnx.ModelProto:
    """Identity per datatype: input ``in_DT`` (N, 2) -> output ``out_DT``."""
    nodes, inputs, outputs = [], [], []
    for name, elem in ONNX_TYPES.items():
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"], name=f"id_{name}"))
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["N", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["N", 2]))
    return _finish(helper.make_graph(nodes, "types", inputs, outputs))


def cast_model() -> onnx.ModelProto:
    """Casts FP32 ``x`` (N,) to each of CAST_TARGETS: outputs ``to_DT``."""
    nodes = [
        helper.make_node("Cast", ["x"], [f"to_{dt}"], to=ONNX_TYPES[dt], name=f"cast_{dt}")
        for dt in CAST_TARGETS
    ]
    outputs = [helper.make_tensor_value_info(f"to_{dt}", ONNX_TYPES[dt], ["N"]) for dt in CAST_TARGETS]
    return _finish(helper.make_graph(
        nodes, "cast", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])], outputs
    ))


def slow_model(nodes: int = 60, size: int = 512) -> onnx.ModelProto:
    """Little data in and out, much compute: x (1, 1) expanded to (size, size), then ``nodes``
    MatMul+Tanh steps (a node boundary every few ms), summed to y (1, 1); ``echo`` is x."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    nodes_list = [helper.make_node("Expand", ["x", "shape"], ["t_in"], name="expand")]
    current = "t_in"
    for i in range(nodes):
        nodes_list.append(helper.make_node("MatMul", [current, "w"], [f"m{i}"], name=f"matmul_{i}"))
        nodes_list.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"], name=f"tanh_{i}"))
        current = f"t{i}"
    nodes_list.append(helper.make_node("ReduceSum", [current], ["y"], keepdims=1, name="sum"))
    nodes_list.append(helper.make_node("Identity", ["x"], ["echo"], name="echo"))
    graph = helper.make_graph(
        nodes_list, "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("echo", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([size, size], np.int64), "shape")],
    )
    return _finish(graph)


def sample(datatype: str, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Random data of ``datatype``, spanning its range (BYTES: utf-8 text, empty included)."""
    from aioplug.serve import numpy_dtype

    dtype = numpy_dtype(datatype)
    if datatype == "BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    if datatype == "BYTES":
        words = [b"", b"a", b"hello", "caf\u00e9 \u2713".encode(), b"x" * 40, b"tab\tnl\n"]
        out = np.empty(int(np.prod(shape)), dtype=object)
        out[:] = [words[int(i)] for i in rng.integers(0, len(words), out.size)]
        return out.reshape(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 100).astype(dtype)


def serving_specs() -> list[ModelSpec]:
    """The models most tests serve."""
    return [
        ModelSpec("types", types_model()),
        ModelSpec("cast", cast_model()),
        ModelSpec("add", add_model()),
        ModelSpec("add", add_model(), version=2),
        ModelSpec("multi", multi_io_model()),
        ModelSpec("slow", slow_model(), properties={"COMPUTE_EXECUTOR": "STREAMS"}),
    ]


TEST_SETTINGS = ServerSettings(
    performance_hint="LATENCY",  # one request per model: queues form after one caller
    max_body_bytes=256 * 1024,
    max_tensor_elements=20_000,
    max_queued_requests=8,
    drain_timeout_s=10.0,
)


@contextlib.asynccontextmanager
async def asgi_client(
    specs: Sequence[ModelSpec] | None = None, settings: ServerSettings = TEST_SETTINGS
) -> AsyncIterator[tuple[httpx.AsyncClient, InferenceServer]]:
    """An httpx client on the ASGI app in this task, its lifespan run around the block."""
    server = InferenceServer(specs or serving_specs()[:5], settings)
    app = create_app(server)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://aioplug.test") as client:
            yield client, server


def json_input(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    """A KServe v2 JSON input tensor."""
    data: list[Any]
    if datatype == "BYTES":
        data = [bytes(b).decode() for b in array.ravel()]
    else:
        data = array.ravel().tolist()
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}
