"""HETERO: one model split over several devices, each subgraph on the first device that runs it.

Splits are forced with the test-only ``TEST_UNSUPPORTED_OPS`` property: TEMPLATE pretends it
cannot run some op types, so the nodes of those types go to CPU. Outputs are compared with
onnx's reference evaluator run on the same inputs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug import DeviceNameError, InferError, RequestCancelled, RequestState, UnsupportedOp
from aioplug.plugin import read_model
from aioplug.testing.models import accumulator_model, multi_io_model, small_cnn_model
from aioplug_hetero import HeteroCompiledModel, HeteroSyncInferRequest, Subgraph
from aioplug_hetero.split import build_part, node_inputs, plan_subgraphs

pytestmark = pytest.mark.anyio

HETERO = "HETERO:TEMPLATE,CPU"
STREAMS = {"COMPUTE_EXECUTOR": "STREAMS"}


# -- helpers -----------------------------------------------------------------------------
def _reference(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feed)]


def _assert_outputs(
    actual: Any, expected: Sequence[np.ndarray], rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    assert len(actual) == len(expected)
    for i, want in enumerate(expected):
        got = np.asarray(actual[i])
        assert (got.dtype, got.shape) == (want.dtype, want.shape), f"output {i}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _f32(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: Sequence[onnx.TensorProto] = (),
    name: str = "hetero_test",
) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(nodes, name, inputs, outputs, list(inits)),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _const(name: str, value: Any) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _cnn_feed(seed: int) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def _residual_model() -> onnx.ModelProto:
    """stem Conv -> h; h -> Conv -> Relu -> Conv -> Add(., h) -> Relu: a ResNet basic block."""
    rng = np.random.default_rng(3)

    def weight(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return _const(name, rng.standard_normal(shape) * 0.3)

    inits = [
        weight("stem_w", (4, 3, 3, 3)), weight("a_w", (4, 4, 3, 3)), weight("b_w", (4, 4, 3, 3)),
        weight("a_b", (4,)), weight("b_b", (4,)),
    ]
    pads = [1, 1, 1, 1]
    nodes = [
        helper.make_node("Conv", ["x", "stem_w"], ["h"], pads=pads, name="stem"),
        helper.make_node("Conv", ["h", "a_w", "a_b"], ["a"], pads=pads, name="conv_a"),
        helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
        helper.make_node("Conv", ["ra", "b_w", "b_b"], ["b"], pads=pads, name="conv_b"),
        helper.make_node("Add", ["b", "h"], ["s"], name="skip_add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu_out"),
    ]
    return _model(nodes, [_f32("x", [1, 3, 8, 8])], [_f32("y", [1, 4, 8, 8])], inits, "residual")


def _cut_both_sides_model() -> onnx.ModelProto:
    """``a`` is read by Sigmoid and Mul next to it (TEMPLATE) and by Relu and Add across the cut."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["a"], name="scale"),
        helper.make_node("Sigmoid", ["a"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["s", "a"], ["z"], name="gate"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "a"], ["y"], name="add"),
    ]
    return _model(
        nodes, [_f32("x", [2, 5])], [_f32("y", [2, 5]), _f32("z", [2, 5])], [_const("two", 2.0)]
    )


def _slow_split_model(segments: int = 3, per_segment: int = 25) -> onnx.ModelProto:
    """Asinh chains on TEMPLATE separated by Relu nodes (on CPU when TEMPLATE refuses Relu)."""
    nodes = []
    current = "x"
    for seg in range(segments):
        for i in range(per_segment):
            nodes.append(helper.make_node("Asinh", [current], [f"s{seg}_{i}"], name=f"asinh_{seg}_{i}"))
            current = f"s{seg}_{i}"
        if seg < segments - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{seg}"], name=f"relu_{seg}"))
            current = f"r{seg}"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="out"))
    return _model(nodes, [_f32("x", [256, 256])], [_f32("y", [256, 256])], name="slow_split")


def _reshape_model() -> onnx.ModelProto:
    """x -> Abs (TEMPLATE) -> Relu (CPU) -> Reshape to ``shape`` (TEMPLATE): fails on a bad shape."""
    nodes = [
        helper.make_node("Abs", ["x"], ["a"], name="abs"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["y"], name="reshape"),
    ]
    return _model(
        nodes,
        [_f32("x", [2, 6]), helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [_f32("y", ["A", "B"])],
    )


@pytest.fixture
async def core() -> AsyncIterator[aioplug.Core]:
    """A Core whose TEMPLATE refuses Relu: every Relu of a model goes to CPU."""
    async with aioplug.Core() as opened:
        opened.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
        yield opened


def _subgraphs(compiled: aioplug.CompiledModel) -> tuple[Subgraph, ...]:
    assert isinstance(compiled, HeteroCompiledModel)
    return compiled.subgraphs


def _plan(compiled: aioplug.CompiledModel) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.device, s.nodes) for s in _subgraphs(compiled)]


def _devices(compiled: aioplug.CompiledModel) -> list[str]:
    return [s.device for s in _subgraphs(compiled)]


# == splitting ===========================================================================
async def test_cnn_alternates_over_two_devices_and_matches_reference_and_cpu(core: aioplug.Core) -> None:
    model = small_cnn_model()
    compiled = await core.compile_model(model, HETERO)
    assert _plan(compiled) == [
        ("TEMPLATE.0", ("conv1",)),
        ("CPU.0", ("relu1",)),
        ("TEMPLATE.0", ("pool1", "conv2")),
        ("CPU.0", ("relu2",)),
        ("TEMPLATE.0", ("pool2", "flatten", "classifier", "softmax")),
    ]
    assert compiled.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0", "CPU.0"]
    cpu = await core.compile_model(model, "CPU")
    feed = _cnn_feed(1)
    out = await compiled.infer(feed)
    _assert_outputs(out, _reference(model, feed))
    np.testing.assert_allclose(out["probs"], (await cpu.infer(feed))["probs"], rtol=1e-5, atol=1e-6)


async def test_cut_tensor_consumed_on_both_sides(core: aioplug.Core) -> None:
    model = _cut_both_sides_model()
    compiled = await core.compile_model(model, HETERO)
    first, relu, last = _subgraphs(compiled)
    assert (first.device, first.nodes) == ("TEMPLATE.0", ("scale", "sigmoid", "gate"))
    assert (relu.device, relu.nodes, relu.inputs) == ("CPU.0", ("relu",), ("a",))
    assert (last.device, last.nodes) == ("TEMPLATE.0", ("add",))
    # ``a`` leaves the first part for both later parts; ``z``, a graph output, leaves it too
    assert set(first.outputs) == {"a", "z"} and first.initializers == ("two",)
    assert set(last.inputs) == {"r", "a"} and last.outputs == ("y",)
    feed = {"x": np.random.default_rng(2).standard_normal((2, 5)).astype(np.float32)}
    _assert_outputs(await compiled.infer(feed), _reference(model, feed))


async def test_cut_inside_a_residual_block_carries_the_skip_connection(core: aioplug.Core) -> None:
    model = _residual_model()
    compiled = await core.compile_model(model, HETERO)
    stem, relu_a, block, relu_out = _subgraphs(compiled)
    assert _devices(compiled) == ["TEMPLATE.0", "CPU.0", "TEMPLATE.0", "CPU.0"]
    assert stem.nodes == ("stem", "conv_a") and set(stem.outputs) == {"h", "a"}
    assert relu_a.inputs == ("a",)
    # the skip connection ``h`` jumps over the CPU part into the Add
    assert block.nodes == ("conv_b", "skip_add") and set(block.inputs) == {"ra", "h"}
    assert relu_out.nodes == ("relu_out",)
    feed = {"x": np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    _assert_outputs(await compiled.infer(feed), _reference(model, feed), atol=1e-5)


async def test_cut_tensors_are_handed_over_without_copies(core: aioplug.Core) -> None:
    compiled = await core.compile_model(small_cnn_model(), HETERO)
    request = compiled.create_sync_infer_request()
    assert isinstance(request, HeteroSyncInferRequest)
    request.infer(_cnn_feed(5))
    parts = request.part_sync_requests
    assert parts[0].get_tensor("c1") is parts[1].get_tensor("c1")
    assert parts[1].get_tensor("r1") is parts[2].get_tensor("r1")


async def test_if_body_reading_outer_values_across_a_cut(core: aioplug.Core) -> None:
    then_branch = helper.make_graph(
        [helper.make_node("Add", ["r", "x"], ["t"], name="then_add")], "then", [], [_f32("t", [3])]
    )
    else_branch = helper.make_graph(
        [helper.make_node("Sub", ["r", "x"], ["e"], name="else_sub")], "else", [], [_f32("e", [3])]
    )
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch, name="branch"
            ),
        ],
        [_f32("x", [3]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [_f32("y", [3])],
    )
    compiled = await core.compile_model(model, HETERO)
    relu, branch = _subgraphs(compiled)
    assert (relu.device, branch.device) == ("CPU.0", "TEMPLATE.0")
    assert set(branch.inputs) == {"cond", "r", "x"}  # r and x are read only inside the bodies
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    for cond in (True, False):
        feed: dict[str, np.ndarray] = {"x": x, "cond": np.array(cond)}
        _assert_outputs(await compiled.infer(feed), _reference(model, feed))


async def test_constants_optional_inputs_and_outputs_no_part_computes() -> None:
    model = _model(
        [
            helper.make_node("Constant", [], ["hi"], value=_const("hi_value", 0.5), name="hi"),
            helper.make_node("Clip", ["x", "", "hi"], ["c"], name="clip"),  # no min: empty input
            helper.make_node("Neg", ["c"], ["y"], name="neg"),
        ],
        [_f32("x", [4])],
        [_f32("y", [4]), _f32("x", [4]), _f32("w", [2])],
        [_const("w", [3.0, 4.0])],
    )
    async with aioplug.Core() as core:
        core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Clip"]})
        compiled = await core.compile_model(model, HETERO)
        assert _plan(compiled) == [
            ("TEMPLATE.0", ("hi",)), ("CPU.0", ("clip",)), ("TEMPLATE.0", ("neg",))
        ]
        feed = {"x": np.array([-2.0, 0.25, 0.75, 3.0], np.float32)}
        out = await compiled.infer(feed)
        _assert_outputs(out, _reference(model, feed))
        again = await compiled.infer(feed)  # the initializer output is not shared between runs
        assert again["w"] is not out["w"]


async def test_one_device_runs_the_whole_model_in_one_part(core: aioplug.Core) -> None:
    compiled = await core.compile_model(small_cnn_model(), "HETERO:CPU,TEMPLATE")
    assert _plan(compiled) == [("CPU.0", tuple(n.name for n in small_cnn_model().graph.node))]
    assert compiled.get_property("EXECUTION_DEVICES") == ["CPU.0"]


async def test_state_and_dynamic_shapes_cross_cuts() -> None:
    async with aioplug.Core() as core:
        core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Mul"]})
        acc_model = accumulator_model()
        acc = await core.compile_model(acc_model, HETERO, {"VARIABLE_STATES": {"acc_in": "acc_out"}})
        assert _devices(acc) == ["TEMPLATE.0", "CPU.0"]
        request = acc.create_infer_request()
        state = np.zeros((1, 4), np.float32)
        for step in range(3):
            x = np.full((1, 4), step + 1.0, np.float32)
            y, state = _reference(acc_model, {"x": x, "acc_in": state})
            _assert_outputs([(await request.infer({"x": x}))["y"]], [y])
        np.testing.assert_allclose(request.query_state()[0].get_state(), state)

        dyn_model = multi_io_model()
        dyn = await core.compile_model(dyn_model, HETERO)
        assert _devices(dyn) == ["TEMPLATE.0", "CPU.0", "TEMPLATE.0"]
        for n in (2, 5):
            feed: dict[str, np.ndarray] = {
                "x": np.arange(3 * n, dtype=np.float32).reshape(n, 3),
                "k": np.array([3], np.int64),
            }
            _assert_outputs(await dyn.infer(feed), _reference(dyn_model, feed))


async def test_constant_joins_the_subgraph_of_its_consumer(core: aioplug.Core) -> None:
    model = _model(
        [
            helper.make_node("Constant", [], ["k"], value=_const("k_value", 3.0), name="k"),
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Mul", ["r", "k"], ["y"], name="scale"),
        ],
        [_f32("x", [4])],
        [_f32("y", [4])],
    )
    compiled = await core.compile_model(model, HETERO)
    assert _plan(compiled) == [("CPU.0", ("relu",)), ("TEMPLATE.0", ("k", "scale"))]
    feed = {"x": np.array([-1.0, 0.0, 1.0, 2.0], np.float32)}
    _assert_outputs(await compiled.infer(feed), _reference(model, feed))


def test_node_inputs_include_outer_values_read_in_nested_bodies() -> None:
    inner = helper.make_graph(
        [helper.make_node("Add", ["v", "w"], ["t"])], "inner", [], [_f32("t", [1])]
    )
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["c_in", "r"], ["v"]),  # r: outer; c_in: body input
            helper.make_node("If", ["cond"], ["c_out"], then_branch=inner, else_branch=inner),
            helper.make_node("Identity", ["cond"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            _f32("c_in", [1]),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _f32("c_out", [1])],
    )
    loop = helper.make_node("Loop", ["n", "", "c0"], ["c"], body=body)
    assert node_inputs(loop) == ["n", "c0", "r", "w"]  # v is defined inside the body


def _random_dag(seed: int, size: int = 24) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A random DAG of Add/Neg nodes (with a few Constants), each node on a random device."""
    rng = np.random.default_rng(seed)
    values = ["x0", "x1"]
    nodes, assignment = [], {}
    for i in range(size):
        name = f"n{i}"
        if rng.random() < 0.15:
            value = _const(f"{name}_v", [1.0])
            nodes.append(helper.make_node("Constant", [], [name], value=value, name=name))
        elif rng.random() < 0.5:
            a, b = rng.choice(len(values), 2)
            nodes.append(helper.make_node("Add", [values[a], values[b]], [name], name=name))
        else:
            source = values[rng.integers(len(values))]
            nodes.append(helper.make_node("Neg", [source], [name], name=name))
        assignment[name] = "TEMPLATE.0" if rng.random() < 0.5 else "CPU.0"
        values.append(name)
    outputs = [_f32(v, [1]) for v in values[-3:]] + [_f32("x0", [1])]
    return _model(nodes, [_f32("x0", [1]), _f32("x1", [1])], outputs), assignment


@pytest.mark.parametrize("seed", range(12))
def test_random_splits_are_acyclic_and_each_part_is_a_valid_model(seed: int) -> None:
    proto, assignment = _random_dag(seed)
    model = read_model(proto)
    parts = plan_subgraphs(model, assignment, ["TEMPLATE.0", "CPU.0"])
    placed = [n for part in parts for n in part.nodes]
    assert sorted(placed) == sorted(assignment)
    available = {"x0", "x1"}
    for part in parts:
        assert {assignment[n] for n in part.nodes} == {part.device}
        assert set(part.inputs) <= available, (part.describe(), available)  # only earlier values
        onnx.checker.check_model(build_part(model, part), full_check=True)
        available.update(part.outputs)
    assert {o.name for o in proto.graph.output} <= available
    # a feed through the parts, in order, gives the whole model's outputs
    feed = {"x0": np.array([0.5], np.float32), "x1": np.array([-2.0], np.float32)}
    values: dict[str, np.ndarray] = dict(feed)
    for part in parts:
        got = _reference(build_part(model, part), {n: values[n] for n in part.inputs})
        values.update(zip(part.outputs, got))
    for out, want in zip(proto.graph.output, _reference(proto, feed)):
        np.testing.assert_allclose(values[out.name], want)


# == query_model and unsupported ops =====================================================
async def test_query_model_assigns_each_node_to_the_first_device_that_supports_it(
    core: aioplug.Core,
) -> None:
    model = small_cnn_model()
    placement = core.query_model(model, HETERO)
    relus = {"relu1", "relu2"}
    assert placement == {
        n.name: ("CPU.0" if n.name in relus else "TEMPLATE.0") for n in model.graph.node
    }
    assert set(core.query_model(model, "HETERO:CPU,TEMPLATE").values()) == {"CPU.0"}
    # a device named alone that refuses Relu leaves the Relu nodes out
    assert set(core.query_model(model, "HETERO:TEMPLATE")) == {n.name for n in model.graph.node} - relus


async def test_op_no_listed_device_supports_raises_unsupported_op(core: aioplug.Core) -> None:
    core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu", "Softmax"]})
    core.set_property("CPU", {"TEST_UNSUPPORTED_OPS": ["Softmax", "Relu"]})
    model = small_cnn_model()
    assert set(core.query_model(model, HETERO)) == {
        n.name for n in model.graph.node if n.op_type not in ("Relu", "Softmax")
    }
    with pytest.raises(UnsupportedOp) as caught:
        await core.compile_model(model, HETERO)
    message = str(caught.value)
    assert "ai.onnx::Relu (opset 17)" in message and "ai.onnx::Softmax (opset 17)" in message
    assert "TEMPLATE, CPU" in message and "'relu1'" in message
    assert set(caught.value.ops) == {("ai.onnx", "Relu", 17), ("ai.onnx", "Softmax", 17)}


async def test_hetero_needs_a_device_list(core: aioplug.Core) -> None:
    with pytest.raises(DeviceNameError, match="HETERO:CPU"):
        await core.compile_model(small_cnn_model(), "HETERO")


async def test_device_list_set_on_hetero_itself_is_used(core: aioplug.Core) -> None:
    core.set_property("HETERO", {"MULTI_DEVICE_PRIORITIES": "CPU,TEMPLATE"})
    compiled = await core.compile_model(small_cnn_model(), "HETERO")
    assert compiled.get_property("EXECUTION_DEVICES") == ["CPU.0"]
    assert compiled.get_property("MULTI_DEVICE_PRIORITIES") == "CPU,TEMPLATE"
    assert set(core.query_model(small_cnn_model(), "HETERO").values()) == {"CPU.0"}
    # a list in the device name wins over the one set on the device
    assert _devices(await core.compile_model(small_cnn_model(), HETERO))[0] == "TEMPLATE.0"


async def test_parts_are_cached_by_their_devices(tmp_path: Path) -> None:
    model = small_cnn_model()
    for loaded in (False, True):
        async with aioplug.Core() as core:
            core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
            compiled = await core.compile_model(model, HETERO, {"CACHE_DIR": str(tmp_path)})
            assert isinstance(compiled, HeteroCompiledModel)
            assert [p.get_property("LOADED_FROM_CACHE") for p in compiled.parts] == [loaded] * 5
            feed = _cnn_feed(11)
            _assert_outputs(await compiled.infer(feed), _reference(model, feed))


# == requests: cancellation, errors, profiling, sync path ================================
async def _full_run_s(compiled: aioplug.CompiledModel, x: np.ndarray) -> float:
    """The best of two runs (the first one also warms up)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        await compiled.infer({"x": x})
        times.append(time.perf_counter() - start)
    return min(times)


async def test_cancel_and_task_cancellation_leave_the_request_reusable(core: aioplug.Core) -> None:
    model = _slow_split_model()
    compiled = await core.compile_model(model, HETERO, STREAMS)
    assert _devices(compiled) == ["TEMPLATE.0", "CPU.0"] * 2 + ["TEMPLATE.0"]
    x = np.random.default_rng(6).standard_normal((256, 256)).astype(np.float32)
    expected = _reference(model, {"x": x})
    full = await _full_run_s(compiled, x)
    request = compiled.create_infer_request()

    task = asyncio.ensure_future(request.infer({"x": x}))
    await asyncio.sleep(0.4 * full)
    assert not task.done()
    request.cancel()
    with pytest.raises(RequestCancelled):
        await task
    assert request.state is RequestState.IDLE
    _assert_outputs(await request.infer({"x": x}), expected, rtol=1e-4, atol=1e-5)

    task = asyncio.ensure_future(request.infer({"x": x}))
    await asyncio.sleep(0.4 * full)
    start = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - start < 0.6 * full
    assert request.state is RequestState.IDLE
    _assert_outputs(await request.infer({"x": x}), expected, rtol=1e-4, atol=1e-5)


async def test_sync_request_is_cancelled_from_another_thread_and_stays_usable(
    core: aioplug.Core,
) -> None:
    model = _slow_split_model()
    compiled = await core.compile_model(model, HETERO, STREAMS)
    x = np.random.default_rng(7).standard_normal((256, 256)).astype(np.float32)
    full = await _full_run_s(compiled, x)
    sync = compiled.create_sync_infer_request()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            sync.infer({"x": x})
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    await asyncio.sleep(0.4 * full)
    sync.cancel()
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], RequestCancelled)
    _assert_outputs(sync.infer({"x": x}), _reference(model, {"x": x}), rtol=1e-4, atol=1e-5)


async def test_a_failing_part_raises_its_error_and_the_request_stays_usable(core: aioplug.Core) -> None:
    model = _reshape_model()
    compiled = await core.compile_model(model, HETERO)
    assert _devices(compiled) == ["TEMPLATE.0", "CPU.0", "TEMPLATE.0"]
    alone = await core.compile_model(model, "TEMPLATE", {"TEST_UNSUPPORTED_OPS": []})
    x = np.arange(12, dtype=np.float32).reshape(2, 6) - 6
    bad: dict[str, np.ndarray] = {"x": x, "shape": np.array([5, 5], np.int64)}
    with pytest.raises(InferError) as on_device:
        await alone.infer(bad)
    request = compiled.create_infer_request()
    errors: list[BaseException | None] = []
    request.set_callback(lambda req, exc: errors.append(exc))
    with pytest.raises(type(on_device.value), match="reshape"):
        await request.infer(bad)
    request.start_async(bad)
    with pytest.raises(type(on_device.value), match="reshape"):
        await request.wait()
    assert len(errors) == 1 and isinstance(errors[0], type(on_device.value))
    good: dict[str, np.ndarray] = {"x": x, "shape": np.array([3, 4], np.int64)}
    _assert_outputs(await request.infer(good), _reference(model, good))
    _assert_outputs(compiled.create_sync_infer_request().infer(good), _reference(model, good))


async def test_profiling_lists_every_part_node(core: aioplug.Core) -> None:
    model = small_cnn_model()
    compiled = await core.compile_model(model, HETERO, {"PERF_COUNT": True})
    for request in (compiled.create_infer_request(), compiled.create_sync_infer_request()):
        if isinstance(request, aioplug.AsyncInferRequest):
            await request.infer(_cnn_feed(8))
        else:
            request.infer(_cnn_feed(8))
        records = request.get_profiling_info()
        names = [r.node_name for r in records]
        for node in model.graph.node:
            assert node.name in names, (node.name, names)
        assert "part 1 on CPU.0: input preprocessing" in names
        by_name = {r.node_name: r for r in records}
        assert by_name["relu1"].exec_type != by_name["conv1"].exec_type  # CPU's and TEMPLATE's


async def test_sync_request_matches_reference(core: aioplug.Core) -> None:
    model = _residual_model()
    compiled = await core.compile_model(model, HETERO)
    request = compiled.create_sync_infer_request()
    for seed in (9, 10):
        feed = {"x": np.random.default_rng(seed).standard_normal((1, 3, 8, 8)).astype(np.float32)}
        _assert_outputs(request.infer(feed), _reference(model, feed), atol=1e-5)


# == concurrency =========================================================================
async def test_requests_in_flight_together_get_their_own_results(core: aioplug.Core) -> None:
    model = small_cnn_model()
    compiled = await core.compile_model(model, HETERO, {"PERFORMANCE_HINT": "THROUGHPUT", **STREAMS})
    assert compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") >= 2
    feeds = [_cnn_feed(100 + i) for i in range(8)]
    outs = await asyncio.gather(*(compiled.infer(feed) for feed in feeds))
    for out, feed in zip(outs, feeds):
        _assert_outputs(out, _reference(model, feed))
    queue = aioplug.AsyncInferQueue(compiled, jobs=3)
    results: dict[int, np.ndarray] = {}
    queue.set_callback(lambda req, i: results.__setitem__(i, req.get_tensor("probs").copy()))
    for i, feed in enumerate(feeds):
        await queue.start_async(feed, userdata=i)
    await queue.wait_all()
    for i, feed in enumerate(feeds):
        _assert_outputs([results[i]], _reference(model, feed))
