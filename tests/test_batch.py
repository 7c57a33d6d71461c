"""The BATCH device: concurrent requests run in batches on the device it drives.

Outputs are compared with ``onnx.reference.ReferenceEvaluator`` run on the same inputs. What
ran is read from ``batch_statistics()`` (batches, their sizes, rows executed, dropped requests).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug import (
    ClosedError,
    DeviceNameError,
    InferError,
    ModelError,
    PropertyError,
    RequestCancelled,
    RequestState,
)
from aioplug.testing.models import accumulator_model, add_model, mlp_model

pytestmark = pytest.mark.anyio

LONG_MS = 5000
"""A timeout no test waits for: a batch that starts sooner started because it was full."""


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _f32(name: str, shape: Any) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _reference(model: onnx.ModelProto, feed: Mapping[str, Any]) -> list[np.ndarray]:
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, dict(feed))]


def _close(actual: Any, expected: Any, atol: float = 1e-5) -> None:
    actual = np.asarray(actual)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=atol)


def _relu_model() -> onnx.ModelProto:
    """``y = relu(x)`` for x of shape (N, T): batch and trailing size both dynamic."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "relu_nt",
        [_f32("x", ["N", "T"])],
        [_f32("y", ["N", "T"])],
    )
    return _model(graph)


def _lookup_model() -> onnx.ModelProto:
    """``y = table[idx]``: an index out of range fails inside the device's Gather."""
    table = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0, name="lookup")],
        "lookup",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"])],
        [_f32("y", ["N", 3])],
        [table],
    )
    return _model(graph)


def _slow_model(nodes: int = 40) -> onnx.ModelProto:
    """An Asinh chain on (1, 256, 256): a batch of it runs long enough to act during it."""
    names = ["x", *(f"h{i}" for i in range(nodes - 1)), "y"]
    graph = helper.make_graph(
        [helper.make_node("Asinh", [names[i]], [names[i + 1]], name=f"asinh_{i}") for i in range(nodes)],
        "slow_chain_b1",
        [_f32("x", [1, 256, 256])],
        [_f32("y", [1, 256, 256])],
    )
    return _model(graph)


def _add_feed(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal((1, 4)).astype(np.float32),
        "b": rng.standard_normal((1, 4)).astype(np.float32),
    }


@pytest.fixture
async def core() -> AsyncIterator[aioplug.Core]:
    async with aioplug.Core() as opened:
        yield opened


async def _compile(
    core: aioplug.Core, model: onnx.ModelProto, size: int, timeout_ms: int, **config: Any
) -> Any:
    return await core.compile_model(
        model, f"BATCH:CPU({size})", {"AUTO_BATCH_TIMEOUT": timeout_ms, **config}
    )


async def _until_waiting(compiled: Any, count: int) -> None:
    with anyio.fail_after(5):
        while compiled.batch_statistics().waiting != count:
            await asyncio.sleep(0.001)


# == batching ============================================================================
async def test_n_concurrent_requests_run_as_one_batch_with_their_own_outputs(core: aioplug.Core) -> None:
    model = mlp_model(sizes=(16, 32, 8))
    compiled = await _compile(core, model, 4, LONG_MS)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 16)).astype(np.float32)} for _ in range(4)]
    start = time.perf_counter()
    outs = await asyncio.gather(*(compiled.infer(feed) for feed in feeds))
    assert time.perf_counter() - start < 0.5 * LONG_MS / 1000, "a full batch must not wait"
    for feed, out in zip(feeds, outs):
        _close(out["probs"], _reference(model, feed)[0])
    stats = compiled.batch_statistics()
    assert (stats.batches, stats.requests, stats.rows) == (1, 4, 4)
    assert dict(stats.sizes) == {4: 1} and stats.timed_out_batches == 0
    assert stats.mean_batch_size == 4.0


async def test_many_concurrent_requests_fill_batches_of_n(core: aioplug.Core) -> None:
    model = mlp_model(sizes=(16, 32, 8))
    compiled = await _compile(core, model, 4, LONG_MS, PERFORMANCE_HINT="THROUGHPUT")
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.standard_normal((1, 16)).astype(np.float32)} for _ in range(64)]
    outs = await asyncio.gather(*(compiled.infer(feed) for feed in feeds))
    evaluator: Any = ReferenceEvaluator(model)
    for feed, out in zip(feeds, outs):
        _close(out["probs"], np.asarray(evaluator.run(None, feed)[0]))
    stats = compiled.batch_statistics()
    assert dict(stats.sizes) == {4: 16} and stats.rows == 64


async def test_fewer_than_n_run_as_one_smaller_batch_after_the_timeout(core: aioplug.Core) -> None:
    compiled = await _compile(core, add_model(), 8, 50)
    feeds = [_add_feed(i) for i in range(3)]
    start = time.perf_counter()
    outs = await asyncio.gather(*(compiled.infer(feed) for feed in feeds))
    elapsed = time.perf_counter() - start
    assert elapsed >= 0.04, f"the partial batch started after {elapsed:.3f} s, before the timeout"
    for feed, out in zip(feeds, outs):
        _close(out["y"], _reference(add_model(), feed)[0])
    stats = compiled.batch_statistics()
    assert dict(stats.sizes) == {3: 1}, "a partial batch runs its requests together"
    assert stats.timed_out_batches == 1 and not stats.timer_armed


async def test_zero_timeout_runs_what_is_waiting_at_once(core: aioplug.Core) -> None:
    compiled = await _compile(core, add_model(), 8, 0)
    feed = _add_feed(3)
    with anyio.fail_after(1):
        out = await compiled.infer(feed)
    _close(out["y"], _reference(add_model(), feed)[0])
    assert dict(compiled.batch_statistics().sizes) == {1: 1}


async def test_requests_accumulate_while_the_device_is_busy(core: aioplug.Core) -> None:
    model = _slow_model()
    compiled = await _compile(core, model, 2, 50)
    assert compiled.batcher.statistics().idle_device_requests == 1
    x = [np.full((1, 256, 256), 0.1 * i, np.float32) for i in range(5)]
    requests = [compiled.create_infer_request() for _ in range(5)]
    outs = await asyncio.gather(*(r.infer({"x": xi}) for r, xi in zip(requests, x)))
    for xi, out in zip(x, outs):
        _close(out["y"], _reference(model, {"x": xi})[0], atol=1e-4)
    # two at once; three more wait for the device: two of them fill the next batch
    assert dict(compiled.batch_statistics().sizes) == {1: 1, 2: 2}


async def test_mixed_trailing_shapes_are_batched_by_group(core: aioplug.Core) -> None:
    model = _relu_model()
    compiled = await _compile(core, model, 2, LONG_MS)
    rng = np.random.default_rng(4)
    shapes = [(1, 3), (1, 5), (2, 3), (1, 5)]
    feeds = [{"x": rng.standard_normal(shape).astype(np.float32)} for shape in shapes]
    requests = [compiled.create_infer_request() for _ in feeds]
    with anyio.fail_after(0.5 * LONG_MS / 1000):
        outs = await asyncio.gather(*(r.infer(f) for r, f in zip(requests, feeds)))
    for feed, out in zip(feeds, outs):
        _close(out["y"], _reference(model, feed)[0])
    stats = compiled.batch_statistics()
    assert dict(stats.sizes) == {2: 2} and stats.rows == 5


async def test_batch_one_model_keeps_its_ports_and_runs_a_symbolic_batch(core: aioplug.Core) -> None:
    compiled = await _compile(core, add_model(), 4, 10)
    assert [p.shape for p in compiled.inputs] == [(1, 4), (1, 4)]
    assert [p.shape for p in compiled.outputs] == [(1, 4)]
    device_shape = compiled.device_model.inputs[0].shape
    assert isinstance(device_shape[0], str) and device_shape[1:] == (4,)
    with pytest.raises(aioplug.InputError):
        await compiled.infer({"a": np.zeros((2, 4), np.float32), "b": np.zeros((2, 4), np.float32)})


async def test_variable_states_batch_like_inputs(core: aioplug.Core) -> None:
    model = accumulator_model()
    compiled = await _compile(core, model, 4, LONG_MS, VARIABLE_STATES={"acc_in": "acc_out"})
    requests = [compiled.create_infer_request() for _ in range(4)]
    xs = [np.full((1, 4), i + 1, np.float32) for i in range(4)]
    accs = [np.zeros((1, 4), np.float32) for _ in range(4)]
    for _ in range(2):
        outs = await asyncio.gather(*(r.infer({"x": x}) for r, x in zip(requests, xs)))
        for i, out in enumerate(outs):
            want_y, accs[i] = _reference(model, {"x": xs[i], "acc_in": accs[i]})
            _close(out["y"], want_y)
    for request, acc in zip(requests, accs):
        _close(request.query_state()[0].get_state(), acc)
    assert dict(compiled.batch_statistics().sizes) == {4: 2}


# == cancellation ========================================================================
@pytest.mark.parametrize("how", ["task_cancel", "timeout_argument", "fail_after", "request_cancel"])
async def test_request_abandoned_before_its_batch_starts_never_runs(
    core: aioplug.Core, how: str
) -> None:
    compiled = await _compile(core, add_model(), 2, LONG_MS)
    request = compiled.create_infer_request()
    if how == "task_cancel":
        task = asyncio.ensure_future(compiled.infer(_add_feed(10)))
        await _until_waiting(compiled, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif how == "timeout_argument":
        with pytest.raises(TimeoutError):
            await compiled.infer(_add_feed(10), timeout=0.02)
    elif how == "fail_after":
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.02):
                await compiled.infer(_add_feed(10))
    else:
        request.start_async(_add_feed(10))
        await _until_waiting(compiled, 1)
        request.cancel()
        with pytest.raises(RequestCancelled):
            await request.wait()
        assert request.state is RequestState.IDLE
    stats = compiled.batch_statistics()
    assert (stats.waiting, stats.dropped, stats.batches) == (0, 1, 0)
    assert not stats.timer_armed
    # the abandoned request does not count towards the next batch: two others fill it at once
    feeds = [_add_feed(11), _add_feed(12)]
    with anyio.fail_after(0.5 * LONG_MS / 1000):
        outs = await asyncio.gather(request.infer(feeds[0]), compiled.infer(feeds[1]))
    for feed, out in zip(feeds, outs):
        _close(out["y"], _reference(add_model(), feed)[0])
    stats = compiled.batch_statistics()
    assert (stats.batches, stats.rows, dict(stats.sizes)) == (1, 2, {2: 1})


async def test_caller_leaving_a_running_batch_does_not_stop_the_others(core: aioplug.Core) -> None:
    model = _slow_model()
    compiled = await _compile(core, model, 2, LONG_MS)
    x = [np.full((1, 256, 256), v, np.float32) for v in (0.5, 2.0)]
    leaving = asyncio.ensure_future(compiled.infer({"x": x[0]}))
    staying = asyncio.ensure_future(compiled.infer({"x": x[1]}))
    with anyio.fail_after(5):
        while compiled.batch_statistics().running_batches == 0:
            await asyncio.sleep(0.001)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    out = await staying
    _close(out["y"], _reference(model, {"x": x[1]})[0], atol=1e-4)
    stats = compiled.batch_statistics()
    assert (stats.batches, stats.discarded, stats.dropped) == (1, 1, 0)


async def test_batch_without_callers_is_cancelled_on_the_device(core: aioplug.Core) -> None:
    model = _slow_model(nodes=200)
    compiled = await _compile(core, model, 1, LONG_MS)
    x = np.ones((1, 256, 256), np.float32)
    start = time.perf_counter()
    await compiled.infer({"x": x})
    full_run = time.perf_counter() - start
    request = compiled.create_infer_request()
    request.start_async({"x": x})
    await asyncio.sleep(0.1 * full_run)
    start = time.perf_counter()
    request.cancel()
    with pytest.raises(RequestCancelled):
        await request.wait()
    with anyio.fail_after(5):
        while compiled.batch_statistics().running_batches:
            await asyncio.sleep(0.001)
    stopped_after = time.perf_counter() - start
    assert stopped_after < 0.5 * full_run, f"the batch ran {stopped_after:.3f} s of {full_run:.3f} s"
    stats = compiled.batch_statistics()
    assert (stats.discarded, stats.failed_batches) == (1, 0)
    _close((await request.infer({"x": x}))["y"], _reference(model, {"x": x})[0], atol=1e-4)


# == failures ============================================================================
async def test_a_failed_batch_fails_only_the_requests_at_fault(core: aioplug.Core) -> None:
    model = _lookup_model()
    compiled = await _compile(core, model, 4, LONG_MS)
    feeds = [{"idx": np.array([i], np.int64)} for i in (1, 99, 2, 77)]  # 99, 77: out of range
    results = await asyncio.gather(*(compiled.infer(f) for f in feeds), return_exceptions=True)
    for feed, result in zip(feeds, results):
        if int(feed["idx"][0]) < 10:
            _close(result["y"], _reference(model, feed)[0])  # type: ignore[index]
        else:
            assert isinstance(result, InferError) and "lookup" in str(result), result
    assert results[1] is not results[3], "each caller gets its own exception object"
    stats = compiled.batch_statistics()
    assert (stats.batches, stats.failed_batches, stats.isolated_requests) == (1, 1, 4)
    # the model stays usable, and batches again
    good = [{"idx": np.array([i], np.int64)} for i in (1, 2, 9, 0)]
    outs = await asyncio.gather(*(compiled.infer(f) for f in good))
    for feed, out in zip(good, outs):
        _close(out["y"], _reference(model, feed)[0])
    stats = compiled.batch_statistics()
    assert (stats.batches, stats.failed_batches) == (2, 1)


async def test_a_batch_where_every_request_is_at_fault_fails_them_all(core: aioplug.Core) -> None:
    model = _lookup_model()
    compiled = await _compile(core, model, 3, LONG_MS)
    feeds = [{"idx": np.array([i], np.int64)} for i in (11, 99, 12)]
    results = await asyncio.gather(*(compiled.infer(f) for f in feeds), return_exceptions=True)
    assert all(isinstance(r, InferError) and "lookup" in str(r) for r in results), results
    assert len({id(r) for r in results}) == 3


async def test_output_not_following_the_batch_at_run_time_raises_infer_error(
    core: aioplug.Core,
) -> None:
    shape = numpy_helper.from_array(np.array([-1, 2], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="flatten_pairs")],
        "pairs", [_f32("x", ["N", 4])], [_f32("y", ["M", 2])], [shape],
    )
    compiled = await _compile(core, _model(graph), 2, LONG_MS)
    feed = {"x": np.ones((1, 4), np.float32)}
    results = await asyncio.gather(compiled.infer(feed), compiled.infer(feed), return_exceptions=True)
    for result in results:
        assert isinstance(result, InferError) and "'y'" in str(result) and "batch" in str(result)


# == what BATCH refuses ==================================================================
def _fixed_batch_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "fixed3", [_f32("x", [3, 4])], [_f32("y", [3, 4])]
    )
    return _model(graph)


def _scalar_input_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"])],
        "scaled", [_f32("x", [1, 4]), _f32("scale", [])], [_f32("y", [1, 4])],
    )
    return _model(graph)


def _pinned_output_model() -> onnx.ModelProto:
    """A Reshape to the constant shape (1, 4): with a symbolic batch the output stays 1."""
    shape = numpy_helper.from_array(np.array([1, 4], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["y"])],
        "pinned", [_f32("x", [1, 4])], [_f32("y", [1, 4])], [shape],
    )
    return _model(graph)


def _scalar_output_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)],
        "total", [_f32("x", ["N", 4])], [_f32("total", [])],
    )
    return _model(graph)


@pytest.mark.parametrize(
    ("build", "texts"),
    [
        (_fixed_batch_model, ("'x'", "fixed first dimension 3", "expected 1 or a symbolic")),
        (_scalar_input_model, ("'scale'", "scalar")),
        (_pinned_output_model, ("'y'", "does not follow the batch")),
        (_scalar_output_model, ("'total'", "does not follow the batch")),
    ],
    ids=["fixed_first_dim", "scalar_input", "pinned_output", "scalar_output"],
)
async def test_model_without_a_batch_axis_is_refused(
    core: aioplug.Core, build: Any, texts: tuple[str, ...]
) -> None:
    with pytest.raises(ModelError) as caught:
        await _compile(core, build(), 4, 10)
    message = str(caught.value)
    for text in texts:
        assert text in message, f"{text!r} missing from {message!r}"
    assert core.get_plugin("CPU").compiled_models == [], "nothing is left compiled on the device"


@pytest.mark.parametrize("name", ["BATCH:CPU", "BATCH:CPU(0)", "BATCH:CPU(2),TEMPLATE(2)"])
async def test_device_list_needs_one_device_and_a_batch_size(core: aioplug.Core, name: str) -> None:
    with pytest.raises(DeviceNameError) as caught:
        await core.compile_model(add_model(), name)
    assert "BATCH:" in str(caught.value)


# == observability and properties ========================================================
async def test_profiling_shows_the_batch_and_the_device_nodes(core: aioplug.Core) -> None:
    compiled = await _compile(core, add_model(), 2, LONG_MS, PERF_COUNT=True)
    requests = [compiled.create_infer_request() for _ in range(2)]
    await asyncio.gather(*(r.infer(_add_feed(20 + i)) for i, r in enumerate(requests)))
    for request in requests:
        info = request.get_profiling_info()
        by_name = {record.node_name: record for record in info}
        assert by_name["batch"].exec_type == "batch 2/2"
        assert by_name["batch"].node_type == "Batch"
        assert by_name["batch wait"].real_time.total_seconds() >= 0
        assert any("add" in record.node_name for record in info), list(by_name)
        assert any(name.startswith("batch: ") for name in by_name), "the device's own stages"


async def test_properties_of_the_compiled_model(core: aioplug.Core) -> None:
    assert core.get_property("BATCH:CPU(4)", "AUTO_BATCH_TIMEOUT") == 10
    compiled = await _compile(core, add_model(), 4, 25, PERFORMANCE_HINT="THROUGHPUT")
    device = compiled.device_model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    assert compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") == 4 * device
    assert compiled.get_property("EXECUTION_DEVICES") == ["CPU.0"]
    assert compiled.get_property("AUTO_BATCH_TIMEOUT") == 25
    assert compiled.batch_statistics().timeout_s == 0.025
    with pytest.raises(PropertyError):
        compiled.set_property({"AUTO_BATCH_TIMEOUT": 5})
    assert core.get_property("BATCH:CPU(4)", "OPTIMIZATION_CAPABILITIES") == []


async def test_sync_path_runs_the_device_alone(core: aioplug.Core) -> None:
    compiled = await _compile(core, add_model(), 4, LONG_MS)
    sync = compiled.create_sync_infer_request()
    feed = _add_feed(30)
    with anyio.fail_after(2):
        out = await anyio.to_thread.run_sync(sync.infer, feed)
    _close(out["y"], _reference(add_model(), feed)[0])
    assert compiled.batch_statistics().batches == 0


# == closing =============================================================================
async def test_closing_fails_waiters_with_closed_error_and_leaves_no_timer(core: aioplug.Core) -> None:
    compiled = await _compile(core, add_model(), 4, LONG_MS)
    pooled = [asyncio.ensure_future(compiled.infer(_add_feed(40 + i))) for i in range(2)]
    request = compiled.create_infer_request()
    request.start_async(_add_feed(42))
    await _until_waiting(compiled, 3)
    assert compiled.batch_statistics().timer_armed
    with anyio.fail_after(2):
        await compiled.aclose()
    for task in pooled:
        with pytest.raises(ClosedError):
            await task
    with pytest.raises(ClosedError):
        await request.wait()
    stats = compiled.batch_statistics()
    assert (stats.waiting, stats.batches, stats.timer_armed) == (0, 0, False)
    assert compiled.device_model.closed
    with pytest.raises(ClosedError):
        await compiled.infer(_add_feed(43))


async def test_no_threads_left_after_the_core_closes() -> None:
    before = set(threading.enumerate())
    async with aioplug.Core() as core:
        compiled = await _compile(core, add_model(), 2, LONG_MS, PERFORMANCE_HINT="THROUGHPUT")
        await asyncio.gather(*(compiled.infer(_add_feed(50 + i)) for i in range(6)))
        waiting = asyncio.ensure_future(compiled.infer(_add_feed(60)))
        await _until_waiting(compiled, 1)
    with pytest.raises(ClosedError):
        await waiting
    assert not compiled.batch_statistics().timer_armed
    left = [t for t in threading.enumerate() if t not in before]
    assert left == [], f"threads still running: {left}"
