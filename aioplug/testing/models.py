"""Small, real ONNX models built with ``onnx.helper`` for tests, examples and benchmarks.

Every builder returns an ``onnx.ModelProto``; weights come from a seeded generator, so a
builder called twice gives the same model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "OPSET",
    "accumulator_model",
    "add_model",
    "dynamic_relu_model",
    "matmul_chain_model",
    "mlp_model",
    "multi_io_model",
    "small_cnn_model",
]

OPSET = 17


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _f32(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def add_model(shape: tuple[int, ...] = (1, 4)) -> onnx.ModelProto:
    """``y = a + b``: two float32 inputs of ``shape``."""
    dims = list(shape)
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        "add",
        [_f32("a", dims), _f32("b", dims)],
        [_f32("y", dims)],
    )
    return _model(graph)


def multi_io_model() -> onnx.ModelProto:
    """Inputs ``x`` float32 (N, 3) and ``k`` int64 (1,); outputs ``scaled`` and ``total``."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT, name="cast_k"),
            helper.make_node("Mul", ["x", "kf"], ["scaled"], name="scale"),
            helper.make_node("ReduceSum", ["scaled"], ["total"], keepdims=0, name="total"),
        ],
        "multi_io",
        [_f32("x", ["N", 3]), helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [_f32("scaled", ["N", 3]), _f32("total", [])],
    )
    return _model(graph)


def dynamic_relu_model() -> onnx.ModelProto:
    """``y = relu(x)`` for x of shape (N, 4), N dynamic."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "dynamic_relu",
        [_f32("x", ["N", 4])],
        [_f32("y", ["N", 4])],
    )
    return _model(graph)


def matmul_chain_model(
    nodes: int = 64, size: int = 128, seed: int = 0, batch_axis: bool = False
) -> onnx.ModelProto:
    """A chain of ``nodes`` MatMul+Tanh steps on (size, size), or (1, size, size) with
    ``batch_axis``: slow enough to cancel mid-run."""
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    node_list = []
    current = "x"
    for i in range(nodes):
        node_list.append(helper.make_node("MatMul", [current, "w"], [f"m{i}"], name=f"matmul_{i}"))
        current = f"t{i}" if i < nodes - 1 else "y"
        node_list.append(helper.make_node("Tanh", [f"m{i}"], [current], name=f"tanh_{i}"))
    graph = helper.make_graph(
        node_list,
        "matmul_chain",
        [_f32("x", [1, size, size] if batch_axis else [size, size])],
        [_f32("y", [1, size, size] if batch_axis else [size, size])],
        [numpy_helper.from_array(weight, "w")],
    )
    return _model(graph)


def accumulator_model() -> onnx.ModelProto:
    """A stateful model: ``acc_out = acc_in + x``, ``y = 2 * acc_out`` (state acc_in -> acc_out)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["acc_in", "x"], ["acc_out"], name="accumulate"),
            helper.make_node("Mul", ["acc_out", "two"], ["y"], name="double"),
        ],
        "accumulator",
        [_f32("x", [1, 4]), _f32("acc_in", [1, 4])],
        [_f32("y", [1, 4]), _f32("acc_out", [1, 4])],
        [numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    return _model(graph)


def mlp_model(
    sizes: tuple[int, ...] = (784, 512, 512, 10), batch: int | str = 1, seed: int = 0
) -> onnx.ModelProto:
    """A multilayer perceptron: Gemm+Relu layers, a final Gemm and Softmax."""
    rng = np.random.default_rng(seed)
    inits = []
    nodes = []
    current = "x"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"g{i}"], name=f"fc{i}"))
        last = i == len(sizes) - 2
        current = f"g{i}" if last else f"r{i}"
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [current], name=f"relu{i}"))
    nodes.append(helper.make_node("Softmax", [current], ["probs"], axis=-1, name="softmax"))
    graph = helper.make_graph(
        nodes, "mlp", [_f32("x", [batch, sizes[0]])], [_f32("probs", [batch, sizes[-1]])], inits
    )
    return _model(graph)


def small_cnn_model(seed: int = 0) -> onnx.ModelProto:
    """A small image classifier on 1x3x32x32: two Conv+Relu+MaxPool blocks, Flatten, Gemm, Softmax."""
    rng = np.random.default_rng(seed)

    def param(name: str, shape: tuple[int, ...], scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        param("c1_w", (16, 3, 3, 3), 0.2), param("c1_b", (16,), 0.01),
        param("c2_w", (32, 16, 3, 3), 0.08), param("c2_b", (32,), 0.01),
        param("fc_w", (10, 32 * 8 * 8), 0.02), param("fc_b", (10,), 0.01),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "c1_w", "c1_b"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "c2_w", "c2_b"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="classifier"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn", [_f32("image", [1, 3, 32, 32])], [_f32("probs", [1, 10])], inits
    )
    return _model(graph)
