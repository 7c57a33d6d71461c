"""The behaviour checks every aioplug device must pass (a port of OpenVINO's shared behaviour tests).

A device's test module instantiates the whole suite with::

    import pytest
    from aioplug.testing.conformance import *  # noqa: F401,F403

    @pytest.fixture(params=["MYDEVICE"])
    def conformance_device(request):
        return request.param

The async checks run under anyio's pytest plugin, once per ``anyio_backend`` the test session
defines (aioplug's own tests use asyncio and asyncio+uvloop). Outputs are compared with
``onnx.reference.ReferenceEvaluator`` run on the same inputs. A check is skipped only when the
device legitimately lacks the feature (no remote context, no export/import), and it says so.

Groups: callbacks, cancellation, wait, I/O tensors, multithreading and concurrency, profiling,
variable state, properties, export/import, holders and lifetimes, remote tensors, caching,
AsyncInferQueue, pool backpressure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug import (
    AsyncInferQueue,
    ClosedError,
    DeviceNameError,
    DeviceNotFound,
    ImportExportError,
    InferError,
    InputError,
    ModelError,
    PropertyError,
    QueueFull,
    RemoteTensorError,
    RequestBusy,
    RequestCancelled,
    RequestState,
)
from aioplug.plugin import parse_device_name
from aioplug.testing.models import (
    accumulator_model,
    add_model,
    dynamic_relu_model,
    matmul_chain_model,
    multi_io_model,
    small_cnn_model,
)

STREAMS = {"COMPUTE_EXECUTOR": "STREAMS"}
"""Compile option that puts compute on stream threads (so a running compute can be cancelled)."""

SLOW_RUN_TARGET_S = 0.4
"""How long one full run of the slow model should take on the device under test."""

SLOW_SHAPE = (1, 256, 256)
"""Tensor shape of the slow chain (with a batch axis, so that batching devices run it too) (Asinh nodes: a few ms each, single-threaded numpy, no BLAS)."""

SMALL_MATMUL = 64
"""Matrix size for matmul_chain_model: at 64 a BLAS call stays single-threaded (a multi-threaded
BLAS on a busy 2-core machine makes run times swing tenfold)."""

VIRTUAL_DEVICES = frozenset({"AUTO", "MULTI", "HETERO", "BATCH"})
"""Names of the bundled virtual devices (they drive other devices and have no ids)."""

BATCHING_DEVICES = frozenset({"BATCH"})
"""Devices that gather requests along axis 0, and so refuse models without a batch axis."""

_RTOL, _ATOL = 1e-5, 1e-6
_SLOW_RTOL, _SLOW_ATOL = 1e-4, 1e-5  # a long chain accumulates rounding


# -- helpers -----------------------------------------------------------------------------
def _reference(model: onnx.ModelProto, feeds: Mapping[str, Any]) -> list[np.ndarray]:
    """The outputs of ``model`` on ``feeds`` according to onnx's reference evaluator."""
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, dict(feeds))]


def _assert_close(actual: Any, expected: Any, rtol: float = _RTOL, atol: float = _ATOL) -> None:
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != expected {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def _add_inputs(seed: int, shape: tuple[int, ...] = (1, 4)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal(shape).astype(np.float32),
        "b": rng.standard_normal(shape).astype(np.float32),
    }


def _add_expected(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    return _reference(add_model(tuple(inputs["a"].shape)), inputs)[0]


async def _compile(
    core: aioplug.Core, model: onnx.ModelProto, device: str, config: Mapping[str, Any] | None = None
) -> aioplug.CompiledModel:
    return await core.compile_model(model, device, dict(config or {}))


def _is_virtual(device: str) -> bool:
    """True for a virtual device: a list such as ``MULTI:CPU,TEMPLATE``, or ``AUTO`` alone."""
    return parse_device_name(device).virtual or device in VIRTUAL_DEVICES


def _with_device_id(device: str, device_id: str) -> str:
    """``CPU`` -> ``CPU.7``; a virtual list gets the id on each device it names."""
    name = parse_device_name(device)
    if not name.virtual:
        return f"{device}.{device_id}"
    targets = []
    for t in name.targets:
        count = f"({t.count})" if t.count is not None else ""
        targets.append(f"{'-' if t.excluded else ''}{t.name}.{device_id}{count}")
    return f"{name.device}:{','.join(targets)}"


def _batches_requests(device: str) -> bool:
    """True for a batching device, which refuses models without a batch axis."""
    return parse_device_name(device).device in BATCHING_DEVICES


def _real_devices(core: aioplug.Core, device: str) -> set[str]:
    """The hardware devices ``device`` may run on (itself, for a hardware device)."""
    name = parse_device_name(device)
    if not _is_virtual(device):
        return {name.device}
    listed = {t.name.split(".")[0] for t in name.targets if not t.excluded}
    return listed or {d.split(".")[0] for d in core.available_devices}


def _can_export(core: aioplug.Core, device: str) -> bool:
    try:
        caps = core.get_property(device, "OPTIMIZATION_CAPABILITIES")
    except PropertyError:
        return False
    return "EXPORT_IMPORT" in caps


def _skip_unless_export(core: aioplug.Core, device: str) -> None:
    if not _can_export(core, device):
        pytest.skip(f"{device} does not list EXPORT_IMPORT in OPTIMIZATION_CAPABILITIES")


def slow_chain_model(nodes: int, shape: tuple[int, ...] = SLOW_SHAPE) -> onnx.ModelProto:
    """``y = asinh(asinh(...asinh(x)))``: ``nodes`` Asinh nodes on a float32 tensor of ``shape``.

    Each node costs a few milliseconds on a numpy device and its cost does not depend on BLAS
    threads, so a run can be sized in time and cancelled between any two nodes. (A long
    matmul_chain_model needs thousands of nodes for the same time: slow to compile.)
    """
    names = ["x", *(f"h{i}" for i in range(nodes - 1)), "y"]
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Asinh", [names[i]], [names[i + 1]], name=f"asinh_{i}")
            for i in range(nodes)
        ],
        "slow_chain",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(shape))],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(shape))],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@dataclass
class _SlowInfo:
    """The calibrated slow model of one device: an Asinh chain that runs ~SLOW_RUN_TARGET_S."""

    proto: onnx.ModelProto
    nodes: int
    full_run_s: float
    x: np.ndarray
    expected: np.ndarray | None = None


_SLOW_MODELS: dict[str, _SlowInfo] = {}


@dataclass
class SlowModel:
    """A compiled slow model with its input, measured full run time and reference output."""

    compiled: aioplug.CompiledModel
    info: _SlowInfo

    @property
    def x(self) -> np.ndarray:
        return self.info.x

    @property
    def full_run_s(self) -> float:
        return self.info.full_run_s

    @property
    def expected(self) -> np.ndarray:
        if self.info.expected is None:
            self.info.expected = _reference(self.info.proto, {"x": self.info.x})[0]
        return self.info.expected

    def check(self, y: Any) -> None:
        _assert_close(y, self.expected, _SLOW_RTOL, _SLOW_ATOL)


async def _calibrate_slow_model(core: aioplug.Core, device: str) -> _SlowInfo:
    x = (4 * np.random.default_rng(7).standard_normal(SLOW_SHAPE)).astype(np.float32)
    probe_nodes = 20
    probe = await _compile(core, slow_chain_model(probe_nodes), device, STREAMS)
    per_run = []
    for _ in range(3):
        start = time.perf_counter()
        await probe.infer({"x": x})
        per_run.append(time.perf_counter() - start)
    nodes = int(probe_nodes * SLOW_RUN_TARGET_S / max(min(per_run), 1e-6))
    nodes = max(probe_nodes, min(nodes, 2000))
    proto = slow_chain_model(nodes)
    compiled = await _compile(core, proto, device, STREAMS)
    await compiled.infer({"x": x})  # a first run may pay for lazy set-up: not measured
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        await compiled.infer({"x": x})
        runs.append(time.perf_counter() - start)
    # the shorter run: a deadline at a tenth of it must cut every run short
    return _SlowInfo(proto, nodes, min(runs), x)


async def _still_running_after(task: asyncio.Future[Any], seconds: float) -> None:
    """Waits ``seconds`` for ``task``; asserts that it is still running then."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    assert not done, "the slow model finished much earlier than its measured full run time"


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture
def conformance_properties() -> dict[str, dict[str, Any]]:
    """``{device: properties}`` set on the Core before each check; override it to configure the
    devices under test (e.g. to make TEMPLATE refuse ops, so HETERO really splits)."""
    return {}


@pytest.fixture
async def core(conformance_properties: dict[str, dict[str, Any]]) -> AsyncIterator[aioplug.Core]:
    """An opened Core, closed after the test."""
    async with aioplug.Core() as opened:
        for device, properties in conformance_properties.items():
            opened.set_property(device, properties)
        yield opened


@pytest.fixture
async def compiled_add(core: aioplug.Core, conformance_device: str) -> aioplug.CompiledModel:
    """``y = a + b`` on (1, 4) float32, compiled for the device under test."""
    return await _compile(core, add_model(), conformance_device)


@pytest.fixture
async def slow_model(core: aioplug.Core, conformance_device: str) -> SlowModel:
    """An Asinh chain sized to run about SLOW_RUN_TARGET_S on the device, compute on threads."""
    info = _SLOW_MODELS.get(conformance_device)
    if info is None:
        info = _SLOW_MODELS[conformance_device] = await _calibrate_slow_model(core, conformance_device)
    compiled = await _compile(core, info.proto, conformance_device, STREAMS)
    return SlowModel(compiled, info)


@pytest.fixture
async def compiled_accumulator(core: aioplug.Core, conformance_device: str) -> aioplug.CompiledModel:
    """The stateful accumulator (state acc_in -> acc_out)."""
    return await _compile(
        core, accumulator_model(), conformance_device, {"VARIABLE_STATES": {"acc_in": "acc_out"}}
    )


@pytest.fixture
def remote_context(core: aioplug.Core, conformance_device: str) -> aioplug.RemoteContext:
    """The device's default remote context; skips when the device has none."""
    try:
        return core.get_default_context(conformance_device)
    except NotImplementedError as exc:
        pytest.skip(f"{conformance_device} has no remote context: {exc}")


# == callbacks ===========================================================================
@pytest.mark.anyio
async def test_callback_runs_after_request_is_idle(compiled_add: aioplug.CompiledModel) -> None:
    inputs = _add_inputs(1)
    request = compiled_add.create_infer_request()
    calls: list[tuple[Any, Any, RequestState, np.ndarray]] = []
    request.set_callback(
        lambda req, exc: calls.append((req, exc, req.state, req.get_tensor("y").copy()))
    )
    request.start_async(inputs)
    await request.wait()
    assert len(calls) == 1, "the callback must have run once before wait() returned"
    req, exc, state, y = calls[0]
    assert req is request
    assert exc is None
    assert state is RequestState.IDLE
    _assert_close(y, _add_expected(inputs))
    assert request.state is RequestState.IDLE


@pytest.mark.anyio
async def test_infer_never_calls_callback(compiled_add: aioplug.CompiledModel) -> None:
    inputs = _add_inputs(2)
    request = compiled_add.create_infer_request()
    calls: list[Any] = []
    request.set_callback(lambda req, exc: calls.append(exc))
    out = await request.infer(inputs)
    await request.wait()  # never started: returns at once
    await anyio.sleep(0)  # give a wrongly scheduled callback a chance to run
    assert calls == []
    _assert_close(out["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_callback_can_restart_request_in_a_chain(compiled_add: aioplug.CompiledModel) -> None:
    restarts = 10
    feeds = [_add_inputs(100 + i) for i in range(restarts + 1)]
    request = compiled_add.create_infer_request()
    results: list[np.ndarray] = []
    errors: list[BaseException | None] = []
    finished = anyio.Event()

    def callback(req: aioplug.AsyncInferRequest, exc: BaseException | None) -> None:
        errors.append(exc)
        results.append(req.get_tensor("y").copy())
        if len(results) <= restarts:
            req.start_async(feeds[len(results)])
        else:
            finished.set()

    request.set_callback(callback)
    request.start_async(feeds[0])
    with anyio.fail_after(30):
        await finished.wait()
        await request.wait()
    assert errors == [None] * (restarts + 1)
    assert len(results) == restarts + 1
    for feed, y in zip(feeds, results):
        _assert_close(y, _add_expected(feed))


@pytest.mark.anyio
async def test_callback_exception_is_raised_by_wait(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    error = ValueError("raised by the conformance callback")

    def callback(req: aioplug.AsyncInferRequest, exc: BaseException | None) -> None:
        raise error

    request.set_callback(callback)
    request.start_async(_add_inputs(3))
    with pytest.raises(ValueError) as caught:
        await request.wait()
    assert caught.value is error
    # the request stays usable
    request.set_callback(None)
    inputs = _add_inputs(4)
    out = await request.infer(inputs)
    _assert_close(out["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_wait_for_zero_returns_false_while_running(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    request.start_async({"x": slow_model.x})
    try:
        assert await request.wait_for(0) is False
        assert request.state is RequestState.BUSY
    finally:
        request.cancel()
        with pytest.raises(RequestCancelled):
            await request.wait()


@pytest.mark.anyio
async def test_callback_object_is_not_copied(compiled_add: aioplug.CompiledModel) -> None:
    class Callback:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def __call__(self, req: aioplug.AsyncInferRequest, exc: BaseException | None) -> None:
            self.seen.append(id(self))

    callback = Callback()
    request = compiled_add.create_infer_request()
    request.set_callback(callback)
    for seed in range(3):
        request.start_async(_add_inputs(seed))
        await request.wait()
    assert callback.seen == [id(callback)] * 3


@pytest.mark.anyio
async def test_coroutine_callback_is_awaited_before_wait_returns(
    compiled_add: aioplug.CompiledModel,
) -> None:
    inputs = _add_inputs(40)
    request = compiled_add.create_infer_request()
    seen: list[tuple[Any, np.ndarray]] = []

    async def callback(req: aioplug.AsyncInferRequest, exc: BaseException | None) -> None:
        await anyio.sleep(0)
        seen.append((exc, req.get_tensor("y").copy()))

    request.set_callback(callback)
    request.start_async(inputs)
    assert await request.wait_for(30) is True
    assert len(seen) == 1 and seen[0][0] is None
    _assert_close(seen[0][1], _add_expected(inputs))


def _lookup_model() -> onnx.ModelProto:
    """``y = table[idx]``: a run with an index out of range fails inside compute."""
    table = onnx.numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Gather", ["table", "idx"], ["y"], axis=0, name="lookup")],
        "lookup",
        [onnx.helper.make_tensor_value_info("idx", onnx.TensorProto.INT64, ["N"])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
        [table],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.anyio
async def test_stage_error_reaches_callback_and_wait(core: aioplug.Core, conformance_device: str) -> None:
    model = _lookup_model()
    compiled = await _compile(core, model, conformance_device)
    bad = {"idx": np.array([2, 99], np.int64)}
    request = compiled.create_infer_request()
    outcomes: list[tuple[Any, RequestState]] = []
    request.set_callback(lambda req, exc: outcomes.append((exc, req.state)))
    request.start_async(bad)
    with pytest.raises(InferError) as caught:
        await request.wait()
    assert len(outcomes) == 1
    assert outcomes[0][0] is caught.value
    assert outcomes[0][1] is RequestState.IDLE
    with pytest.raises(InferError):
        await request.infer(bad)
    assert len(outcomes) == 1, "awaiting infer() must not call the callback"
    good = {"idx": np.array([3, 0], np.int64)}
    request.start_async(good)
    await request.wait()
    _assert_close(request.get_tensor("y"), _reference(model, good)[0])
    _assert_close((await request.infer(good))["y"], _reference(model, good)[0])


# == cancellation ========================================================================
@pytest.mark.anyio
async def test_cancel_running_request_raises_cancelled(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    outcomes: list[BaseException | None] = []
    request.set_callback(lambda req, exc: outcomes.append(exc))
    request.start_async({"x": slow_model.x})
    request.cancel()
    try:
        await request.wait()
    except RequestCancelled:
        assert len(outcomes) == 1 and isinstance(outcomes[0], RequestCancelled)
    else:  # it was already done: a legal outcome
        assert outcomes == [None]
    assert request.state is RequestState.IDLE


@pytest.mark.anyio
async def test_request_is_reusable_after_cancel(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    request.start_async({"x": slow_model.x})
    assert await request.wait_for(0.1 * slow_model.full_run_s) is False
    start = time.perf_counter()
    request.cancel()
    with pytest.raises(RequestCancelled):
        await request.wait()
    stopped_after = time.perf_counter() - start
    assert stopped_after < 0.5 * slow_model.full_run_s, (
        f"cancel() took {stopped_after:.3f} s to stop a run of {slow_model.full_run_s:.3f} s"
    )
    assert request.state is RequestState.IDLE
    out = await request.infer({"x": slow_model.x})
    slow_model.check(out["y"])


@pytest.mark.anyio
async def test_cancel_before_start_is_noop(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    request.cancel()
    assert request.state is RequestState.IDLE
    inputs = _add_inputs(5)
    out = await request.infer(inputs)
    _assert_close(out["y"], _add_expected(inputs))
    request.start_async(inputs)
    await request.wait()
    _assert_close(request.get_tensor("y"), _add_expected(inputs))


@pytest.mark.anyio
async def test_cancelling_infer_task_stops_running_request_promptly(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    task = asyncio.ensure_future(request.infer({"x": slow_model.x}))
    await _still_running_after(task, 0.1 * slow_model.full_run_s)
    start = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_after = time.perf_counter() - start
    assert stopped_after < 0.5 * slow_model.full_run_s, (
        f"cancelling the task took {stopped_after:.3f} s; a full run takes "
        f"{slow_model.full_run_s:.3f} s"
    )
    assert request.state is RequestState.IDLE
    out = await request.infer({"x": slow_model.x})
    slow_model.check(out["y"])


@pytest.mark.anyio
async def test_deadline_stops_running_infer_promptly(slow_model: SlowModel) -> None:
    compiled = slow_model.compiled
    # a first full run: a correct result, and the pool holds a ready request afterwards
    slow_model.check((await compiled.infer({"x": slow_model.x}))["y"])
    deadline = 0.1 * slow_model.full_run_s
    for how in ("fail_after", "timeout argument"):
        start = time.perf_counter()
        with pytest.raises(TimeoutError):
            if how == "fail_after":
                with anyio.fail_after(deadline):
                    await compiled.infer({"x": slow_model.x})
            else:
                await compiled.infer({"x": slow_model.x}, timeout=deadline)
        elapsed = time.perf_counter() - start
        assert elapsed < 0.6 * slow_model.full_run_s, (
            f"{how}: a deadline of {deadline:.3f} s returned after {elapsed:.3f} s; a full run "
            f"takes {slow_model.full_run_s:.3f} s"
        )
        # the pool and its requests stay usable
        assert all(r.state is RequestState.IDLE for r in compiled.pool.requests)
    slow_model.check((await compiled.infer({"x": slow_model.x}))["y"])


@pytest.mark.anyio
async def test_sync_request_in_thread_is_cancelled_from_loop(slow_model: SlowModel) -> None:
    loop = asyncio.get_running_loop()
    sync = slow_model.compiled.create_sync_infer_request()
    started: asyncio.Future[None] = loop.create_future()
    finished: asyncio.Future[Any] = loop.create_future()

    def deliver(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)

    def run() -> None:
        loop.call_soon_threadsafe(deliver, started, None, None)
        try:
            result = sync.infer({"x": slow_model.x})
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, finished, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, finished, result, None)

    thread = threading.Thread(target=run, name="conformance-sync-infer")
    thread.start()
    try:
        await started
        await _still_running_after(finished, 0.1 * slow_model.full_run_s)
        start = time.perf_counter()
        sync.cancel()
        with pytest.raises(RequestCancelled):
            await finished
        stopped_after = time.perf_counter() - start
    finally:
        sync.cancel()
        thread.join()
    assert stopped_after < 0.5 * slow_model.full_run_s, (
        f"cancel() took {stopped_after:.3f} s to stop a sync run of {slow_model.full_run_s:.3f} s"
    )
    out = sync.infer({"x": slow_model.x})
    slow_model.check(out["y"])


@pytest.mark.anyio
async def test_cancel_stops_awaited_infer(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    task = asyncio.ensure_future(request.infer({"x": slow_model.x}))
    await _still_running_after(task, 0.1 * slow_model.full_run_s)
    start = time.perf_counter()
    request.cancel()
    with pytest.raises(RequestCancelled):
        await task
    stopped_after = time.perf_counter() - start
    assert stopped_after < 0.5 * slow_model.full_run_s
    assert request.state is RequestState.IDLE
    slow_model.check((await request.infer({"x": slow_model.x}))["y"])


@pytest.mark.anyio
async def test_cancel_request_waiting_behind_others(slow_model: SlowModel) -> None:
    compiled = slow_model.compiled
    ahead = [
        compiled.create_infer_request()
        for _ in range(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    ]
    last = compiled.create_infer_request()
    for request in ahead:
        request.start_async({"x": slow_model.x})
    last.start_async({"x": slow_model.x})
    try:
        assert await last.wait_for(0.05 * slow_model.full_run_s) is False
        last.cancel()
        with anyio.fail_after(0.5 * slow_model.full_run_s):
            with pytest.raises(RequestCancelled):
                await last.wait()
        # the requests ahead were not disturbed
        assert [await r.wait_for(0) for r in ahead] == [False] * len(ahead)
    finally:
        for request in ahead:
            request.cancel()
        for request in ahead:
            with pytest.raises(RequestCancelled):
                await request.wait()
    assert last.state is RequestState.IDLE


@pytest.mark.anyio
async def test_cancelling_wait_does_not_cancel_request(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    request.start_async({"x": slow_model.x})
    with anyio.move_on_after(0.05 * slow_model.full_run_s) as scope:
        await request.wait()
    assert scope.cancelled_caught
    assert request.state is RequestState.BUSY
    assert await request.wait_for(0) is False
    request.cancel()
    with pytest.raises(RequestCancelled):
        await request.wait()


@pytest.mark.anyio
async def test_deadline_covers_waiting_for_a_free_request(slow_model: SlowModel) -> None:
    compiled = slow_model.compiled
    size = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    busy = [asyncio.ensure_future(compiled.infer({"x": slow_model.x})) for _ in range(size)]
    await asyncio.sleep(0)  # let them take every request of the pool
    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.1 * slow_model.full_run_s):
            await compiled.infer({"x": slow_model.x})
    elapsed = time.perf_counter() - start
    # well before the busy calls end (a full run); the margin allows for an event loop kept
    # from its timers by compute threads that hold the GIL (a device running Python kernels)
    assert elapsed < 0.8 * slow_model.full_run_s, (
        f"a deadline of {0.1 * slow_model.full_run_s:.3f} s fired after {elapsed:.3f} s while "
        f"every request was busy for {slow_model.full_run_s:.3f} s"
    )
    assert not any(task.done() for task in busy), "the running calls must not be disturbed"
    assert compiled.pool.statistics().waiting == 0
    for out in await asyncio.gather(*busy):
        slow_model.check(out["y"])
    slow_model.check((await compiled.infer({"x": slow_model.x}))["y"])


# == wait ================================================================================
@pytest.mark.anyio
async def test_wait_without_start_returns_at_once(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    with anyio.fail_after(5):
        await request.wait()
        assert await request.wait_for(0) is False
        assert await request.wait_for(10) is False


@pytest.mark.anyio
async def test_tensor_access_while_busy_raises_busy(slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    request.start_async({"x": slow_model.x})
    try:
        with pytest.raises(RequestBusy):
            request.get_tensor("x")
        with pytest.raises(RequestBusy):
            request.get_tensor("y")
        with pytest.raises(RequestBusy):
            request.set_tensor("x", np.zeros_like(slow_model.x))
        with pytest.raises(RequestBusy):
            request.start_async({"x": slow_model.x})
        with pytest.raises(RequestBusy):
            await request.infer({"x": slow_model.x})
    finally:
        request.cancel()
        with pytest.raises(RequestCancelled):
            await request.wait()


@pytest.mark.anyio
async def test_wait_for_negative_timeout_raises(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    with pytest.raises(InferError):
        await request.wait_for(-1)
    request.start_async(_add_inputs(6))
    with pytest.raises(InferError):
        await request.wait_for(-1)
    await request.wait()


# == I/O tensors =========================================================================
_BAD_TENSORS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    # case: (key, tensor, texts the message must contain)
    "none": ("a", None, ("'a'", "float32", "(1, 4)")),
    "wrong_name": ("nope", np.zeros((1, 4), np.float32), ("'nope'", "'a'", "'b'")),
    "wrong_shape": ("a", np.zeros((2, 4), np.float32), ("'a'", "(1, 4)", "(2, 4)")),
    "wrong_rank": ("a", np.zeros((4,), np.float32), ("'a'", "(1, 4)")),
    "wrong_dtype": ("a", np.zeros((1, 4), np.float64), ("'a'", "float32", "float64")),
}


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["set_tensor", "infer"])
@pytest.mark.parametrize("case", sorted(_BAD_TENSORS))
async def test_bad_input_tensor_is_rejected(
    compiled_add: aioplug.CompiledModel, case: str, path: str
) -> None:
    key, tensor, texts = _BAD_TENSORS[case]
    request = compiled_add.create_infer_request()
    with pytest.raises(InputError) as caught:
        if path == "set_tensor":
            request.set_tensor(key, tensor)
        else:
            feed = _add_inputs(7)
            feed.pop(key, None)
            feed[key] = tensor
            await request.infer(feed)
    message = str(caught.value)
    for text in texts:
        assert text in message, f"{text!r} missing from the error message {message!r}"
    assert request.state is RequestState.IDLE
    inputs = _add_inputs(8)
    out = await request.infer(inputs)
    _assert_close(out["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_unknown_tensor_name_and_bad_output_tensor_are_rejected(
    compiled_add: aioplug.CompiledModel,
) -> None:
    request = compiled_add.create_infer_request()
    with pytest.raises(InputError, match="nope"):
        request.get_tensor("nope")
    with pytest.raises(InputError) as caught:
        request.set_tensor("y", np.zeros((2, 4), np.float32))
    assert "'y'" in str(caught.value) and "(1, 4)" in str(caught.value)
    with pytest.raises(InputError):
        request.set_tensor("y", np.zeros((1, 4), np.int32))
    inputs = _add_inputs(41)
    _assert_close((await request.infer(inputs))["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_set_tensor_then_get_tensor_returns_same_object(
    compiled_add: aioplug.CompiledModel,
) -> None:
    request = compiled_add.create_infer_request()
    inputs = _add_inputs(9)
    request.set_tensor("a", inputs["a"])
    request.set_tensor("b", inputs["b"])
    assert request.get_tensor("a") is inputs["a"]
    assert request.get_tensor("b") is inputs["b"]
    out = await request.infer()
    _assert_close(out["y"], _add_expected(inputs))
    assert request.get_tensor("a") is inputs["a"]


@pytest.mark.anyio
async def test_get_tensor_returns_same_object_each_time(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    for name in ("a", "b", "y"):
        assert request.get_tensor(name) is request.get_tensor(name)
    a = request.get_tensor("a")
    await request.infer()
    assert request.get_tensor("a") is a
    assert request.get_tensor("y") is request.get_tensor("y")


@pytest.mark.anyio
async def test_infer_without_setting_inputs_uses_zeros(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    out = await request.infer()
    zeros = {"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 4), np.float32)}
    _assert_close(out["y"], _add_expected(zeros))
    pooled = await compiled_add.infer()
    _assert_close(pooled["y"], _add_expected(zeros))


@pytest.mark.anyio
async def test_static_model_rejects_other_shape_and_stays_usable(
    compiled_add: aioplug.CompiledModel,
) -> None:
    request = compiled_add.create_infer_request()
    with pytest.raises(InputError):
        await request.infer(_add_inputs(10, shape=(2, 4)))
    with pytest.raises(InputError):
        request.start_async(_add_inputs(10, shape=(1, 5)))
    with pytest.raises(InputError):
        await compiled_add.infer(_add_inputs(10, shape=(3, 4)))
    assert request.state is RequestState.IDLE
    inputs = _add_inputs(11)
    out = await request.infer(inputs)
    _assert_close(out["y"], _add_expected(inputs))
    pooled = await compiled_add.infer(inputs)
    _assert_close(pooled["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_input_array_is_untouched_by_infer(core: aioplug.Core, conformance_device: str) -> None:
    model = dynamic_relu_model()
    compiled = await _compile(core, model, conformance_device)
    x = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
    before = x.copy()
    out = await compiled.infer({"x": x})
    np.testing.assert_array_equal(x, before)
    _assert_close(out["y"], _reference(model, {"x": before})[0])
    inputs = _add_inputs(13)
    saved = {k: v.copy() for k, v in inputs.items()}
    add = await _compile(core, add_model(), conformance_device)
    request = add.create_infer_request()
    request.start_async(inputs)
    await request.wait()
    for name in inputs:
        np.testing.assert_array_equal(inputs[name], saved[name])


@pytest.mark.anyio
async def test_tensor_by_name_port_and_index_are_the_same(
    compiled_add: aioplug.CompiledModel,
) -> None:
    request = compiled_add.create_infer_request()
    inputs = _add_inputs(14)
    request.set_tensor(compiled_add.inputs[0], inputs["a"])
    request.set_tensor(compiled_add.input("b"), inputs["b"])
    for index, name in enumerate(("a", "b")):
        by_name = request.get_tensor(name)
        assert by_name is inputs[name]
        assert request.get_tensor(compiled_add.inputs[index]) is by_name
        assert request.get_tensor(compiled_add.input(name)) is by_name
        assert request.get_input_tensor(index) is by_name
    await request.infer()
    y = request.get_tensor("y")
    assert request.get_tensor(compiled_add.outputs[0]) is y
    assert request.get_output_tensor(0) is y
    _assert_close(y, _add_expected(inputs))


@pytest.mark.anyio
async def test_preallocated_output_receives_result(compiled_add: aioplug.CompiledModel) -> None:
    request = compiled_add.create_infer_request()
    target = np.full((1, 4), np.nan, np.float32)
    request.set_tensor("y", target)
    assert request.get_tensor("y") is target
    for seed in (15, 16):
        inputs = _add_inputs(seed)
        out = await request.infer(inputs)
        _assert_close(target, _add_expected(inputs))
        _assert_close(out["y"], _add_expected(inputs))
        assert request.get_tensor("y") is target


@pytest.mark.anyio
async def test_dynamic_batch_sizes(core: aioplug.Core, conformance_device: str) -> None:
    relu = dynamic_relu_model()
    multi = multi_io_model()
    compiled_relu = await _compile(core, relu, conformance_device)
    compiled_multi: aioplug.CompiledModel | None = None
    try:
        compiled_multi = await _compile(core, multi, conformance_device)
    except ModelError:
        if not _batches_requests(conformance_device):
            raise  # a batching device refuses multi_io's scalar output: it has no batch axis
    request = compiled_relu.create_infer_request()
    rng = np.random.default_rng(17)
    for batch in (1, 3, 8, 2):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        out = await request.infer({"x": x})
        _assert_close(out["y"], _reference(relu, {"x": x})[0])
        if compiled_multi is None:
            continue
        feed = {"x": rng.standard_normal((batch, 3)).astype(np.float32), "k": np.array([batch], np.int64)}
        got = await compiled_multi.infer(feed)
        expected = _reference(multi, feed)
        _assert_close(got["scaled"], expected[0])
        _assert_close(got["total"], expected[1], rtol=1e-5, atol=1e-5)
        _assert_close(got[0], expected[0])
    fresh = compiled_relu.create_infer_request()
    with pytest.raises(InputError):
        await fresh.infer()  # a dynamic input has no default: it must be given
    x = rng.standard_normal((5, 4)).astype(np.float32)
    _assert_close((await fresh.infer({"x": x}))["y"], _reference(relu, {"x": x})[0])


# == multithreading and concurrency ======================================================
@pytest.mark.anyio
async def test_parallel_requests_from_tasks(core: aioplug.Core, conformance_device: str) -> None:
    model = small_cnn_model()
    compiled = await _compile(core, model, conformance_device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    rng = np.random.default_rng(18)
    images = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(3)]
    expected = [_reference(model, {"image": image})[0] for image in images]
    requests = [compiled.create_infer_request() for _ in range(3)]
    results: dict[tuple[int, int], np.ndarray] = {}

    async def work(index: int) -> None:
        for j in range(len(images)):
            k = (index + j) % len(images)
            out = await requests[index].infer({"image": images[k]})
            results[(index, k)] = out["probs"]

    async with anyio.create_task_group() as tg:
        for index in range(3):
            tg.start_soon(work, index)
    assert len(results) == 3 * len(images)
    for (_, k), probs in results.items():
        _assert_close(probs, expected[k], atol=1e-6)


@pytest.mark.anyio
async def test_sync_requests_from_threads(core: aioplug.Core, conformance_device: str) -> None:
    model = small_cnn_model()
    compiled = await _compile(core, model, conformance_device)
    rng = np.random.default_rng(19)
    images = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(3)]
    expected = [_reference(model, {"image": image})[0] for image in images]
    barrier = threading.Barrier(3)

    def work(index: int) -> list[tuple[int, np.ndarray]]:
        request = compiled.create_sync_infer_request()
        barrier.wait(timeout=30)
        got = []
        for j in range(len(images)):
            k = (index + j) % len(images)
            got.append((k, request.infer({"image": images[k]})["probs"]))
        return got

    pool = concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="conformance")
    try:
        futures = [asyncio.wrap_future(pool.submit(work, i)) for i in range(3)]
        with anyio.fail_after(60):
            per_thread = await asyncio.gather(*futures)
    finally:
        pool.shutdown(wait=True)
    for got in per_thread:
        assert len(got) == len(images)
        for k, probs in got:
            _assert_close(probs, expected[k], atol=1e-6)


@pytest.mark.anyio
@pytest.mark.parametrize("executor", ["default", "streams"])
async def test_thousand_concurrent_infers_get_their_own_results(
    core: aioplug.Core, conformance_device: str, executor: str
) -> None:
    config = {} if executor == "default" else {**STREAMS, "PERFORMANCE_HINT": "THROUGHPUT"}
    compiled_add = await _compile(core, add_model(), conformance_device, config)
    n = 1000
    rng = np.random.default_rng(20)
    feeds = [
        {"a": np.full((1, 4), i, np.float32), "b": rng.standard_normal((1, 4)).astype(np.float32)}
        for i in range(n)
    ]
    evaluator: Any = ReferenceEvaluator(add_model())
    expected = [np.asarray(evaluator.run(None, dict(feed))[0]) for feed in feeds]
    with anyio.fail_after(60):
        outs = await asyncio.gather(*(compiled_add.infer(feed) for feed in feeds))
    assert len(outs) == n
    for out, want in zip(outs, expected):
        _assert_close(out["y"], want)


@pytest.mark.anyio
async def test_no_threads_left_after_core_close(conformance_device: str) -> None:
    before = set(threading.enumerate())
    count_before = threading.active_count()
    model = small_cnn_model()
    image = np.random.default_rng(21).standard_normal((1, 3, 32, 32)).astype(np.float32)
    async with aioplug.Core() as core:
        compiled = await _compile(
            core, model, conformance_device, {**STREAMS, "PERFORMANCE_HINT": "THROUGHPUT"}
        )
        outs = await asyncio.gather(*(compiled.infer({"image": image}) for _ in range(4)))
        request = compiled.create_infer_request()
        request.start_async({"image": image})
        await request.wait()
    expected = _reference(model, {"image": image})[0]
    for out in outs:
        _assert_close(out["probs"], expected, atol=1e-6)
    left = [t for t in threading.enumerate() if t not in before]
    assert left == [], f"threads still running after the Core closed: {left}"
    # threads that existed before may have ended meanwhile, never more
    assert threading.active_count() <= count_before


# == profiling ===========================================================================
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["infer", "start_async"])
async def test_profiling_info_after_inference(
    core: aioplug.Core, conformance_device: str, mode: str
) -> None:
    model = small_cnn_model()
    compiled = await _compile(core, model, conformance_device, {"PERF_COUNT": True})
    assert compiled.get_property("PERF_COUNT") is True
    image = np.random.default_rng(22).standard_normal((1, 3, 32, 32)).astype(np.float32)
    request = compiled.create_infer_request()
    if mode == "infer":
        out = await request.infer({"image": image})
        probs = out["probs"]
    else:
        request.start_async({"image": image})
        await request.wait()
        probs = request.get_tensor("probs")
    _assert_close(probs, _reference(model, {"image": image})[0], atol=1e-6)
    info = request.get_profiling_info()
    assert info, "profiling info is empty after an inference with PERF_COUNT on"
    names = [record.node_name for record in info]
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        assert any(node.name == name or node.name in name for name in names), (
            f"node {node.name!r} ({node.op_type}) missing from profiling records {names}"
        )
    for record in info:
        assert isinstance(record.real_time, timedelta)
        assert record.real_time >= timedelta(0), record
        assert record.cpu_time >= timedelta(0), record


@pytest.mark.anyio
async def test_profiling_without_perf_count_raises(compiled_add: aioplug.CompiledModel) -> None:
    assert compiled_add.get_property("PERF_COUNT") is False
    request = compiled_add.create_infer_request()
    await request.infer(_add_inputs(23))
    with pytest.raises(PropertyError):
        request.get_profiling_info()
    # PERF_COUNT can be switched on at run time
    compiled_add.set_property({"PERF_COUNT": True})
    assert compiled_add.get_property("PERF_COUNT") is True
    await request.infer(_add_inputs(24))
    names = [record.node_name for record in request.get_profiling_info()]
    assert any("add" in name for name in names), names


# == variable state ======================================================================
def _accumulate(model: onnx.ModelProto, acc: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One reference step of the accumulator: returns (y, new state)."""
    y, acc_out = _reference(model, {"x": x, "acc_in": acc})
    return y, acc_out


@pytest.mark.anyio
async def test_query_state_names_states(compiled_accumulator: aioplug.CompiledModel) -> None:
    request = compiled_accumulator.create_infer_request()
    states = request.query_state()
    assert [state.name for state in states] == ["acc_in"]
    assert [p.name for p in compiled_accumulator.inputs] == ["x"]
    assert [p.name for p in compiled_accumulator.outputs] == ["y"]
    initial = states[0].get_state()
    _assert_close(initial, np.zeros((1, 4), np.float32))


@pytest.mark.anyio
async def test_state_accumulates_across_infers(compiled_accumulator: aioplug.CompiledModel) -> None:
    model = accumulator_model()
    request = compiled_accumulator.create_infer_request()
    rng = np.random.default_rng(24)
    acc = np.zeros((1, 4), np.float32)
    for step in range(4):
        x = rng.standard_normal((1, 4)).astype(np.float32)
        if step % 2:
            out = await request.infer({"x": x})
            y = out["y"]
        else:
            request.start_async({"x": x})
            await request.wait()
            y = request.get_tensor("y")
        want_y, acc = _accumulate(model, acc, x)
        _assert_close(y, want_y)
        _assert_close(request.query_state()[0].get_state(), acc)


@pytest.mark.anyio
async def test_set_get_and_reset_state(compiled_accumulator: aioplug.CompiledModel) -> None:
    model = accumulator_model()
    request = compiled_accumulator.create_infer_request()
    (state,) = request.query_state()
    value = np.array([[1.5, -2.0, 3.25, 0.5]], np.float32)
    state.set_state(value)
    _assert_close(request.query_state()[0].get_state(), value)
    x = np.array([[0.25, 0.5, -1.0, 2.0]], np.float32)
    out = await request.infer({"x": x})
    want_y, acc = _accumulate(model, value, x)
    _assert_close(out["y"], want_y)
    _assert_close(state.get_state(), acc)
    with pytest.raises(InputError):
        state.set_state(np.zeros((2, 4), np.float32))
    state.reset()
    _assert_close(state.get_state(), np.zeros((1, 4), np.float32))
    out = await request.infer({"x": x})
    _assert_close(out["y"], _accumulate(model, np.zeros((1, 4), np.float32), x)[0])
    request.reset_state()
    _assert_close(request.query_state()[0].get_state(), np.zeros((1, 4), np.float32))


@pytest.mark.anyio
async def test_states_of_two_requests_are_independent(
    compiled_accumulator: aioplug.CompiledModel,
) -> None:
    model = accumulator_model()
    first = compiled_accumulator.create_infer_request()
    second = compiled_accumulator.create_infer_request()
    x1 = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    x2 = np.array([[-0.5, 0.25, 8.0, 1.0]], np.float32)
    zero = np.zeros((1, 4), np.float32)
    await first.infer({"x": x1})
    out1 = await first.infer({"x": x1})
    out2 = await second.infer({"x": x2})
    _, acc1 = _accumulate(model, zero, x1)
    want1, acc1 = _accumulate(model, acc1, x1)
    want2, acc2 = _accumulate(model, zero, x2)
    _assert_close(out1["y"], want1)
    _assert_close(out2["y"], want2)
    _assert_close(first.query_state()[0].get_state(), acc1)
    _assert_close(second.query_state()[0].get_state(), acc2)
    first.reset_state()
    _assert_close(second.query_state()[0].get_state(), acc2)


# == properties ==========================================================================
@pytest.mark.anyio
async def test_device_supported_properties_are_readable(
    core: aioplug.Core, conformance_device: str
) -> None:
    supported = core.get_property(conformance_device, "SUPPORTED_PROPERTIES")
    assert supported, "SUPPORTED_PROPERTIES is empty"
    assert "FULL_DEVICE_NAME" in supported
    for key in supported:
        core.get_property(conformance_device, key)
    assert isinstance(core.get_property(conformance_device, "FULL_DEVICE_NAME"), str)


@pytest.mark.anyio
async def test_compiled_model_supported_properties_are_readable(
    compiled_add: aioplug.CompiledModel,
) -> None:
    supported = compiled_add.get_property("SUPPORTED_PROPERTIES")
    assert supported, "SUPPORTED_PROPERTIES is empty"
    for key in ("NETWORK_NAME", "EXECUTION_DEVICES", "OPTIMAL_NUMBER_OF_INFER_REQUESTS"):
        assert key in supported
    for key in supported:
        compiled_add.get_property(key)
    assert compiled_add.get_property("NETWORK_NAME") == add_model().graph.name


@pytest.mark.anyio
async def test_rw_property_defaults_can_be_written_back(
    core: aioplug.Core, conformance_device: str
) -> None:
    supported = core.get_property(conformance_device, "SUPPORTED_PROPERTIES")
    rw = [key for key, mutability in supported.items() if mutability == aioplug.Mutability.RW]
    assert rw, f"{conformance_device} has no writable property"
    for key in rw:
        value = core.get_property(conformance_device, key)
        core.set_property(conformance_device, {key: value})
        assert core.get_property(conformance_device, key) == value, key
    # and the device still compiles and runs
    compiled = await _compile(core, add_model(), conformance_device)
    inputs = _add_inputs(25)
    _assert_close((await compiled.infer(inputs))["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_compiled_model_rw_properties_can_be_written_back(
    compiled_add: aioplug.CompiledModel,
) -> None:
    supported = compiled_add.get_property("SUPPORTED_PROPERTIES")
    refused = []
    for key, mutability in supported.items():
        if mutability != aioplug.Mutability.RW:
            continue
        value = compiled_add.get_property(key)
        try:
            compiled_add.set_property({key: value})
        except PropertyError:
            refused.append(key)
            continue
        assert compiled_add.get_property(key) == value, key
    assert refused == [], f"RW properties that cannot be written back: {refused}"


@pytest.mark.anyio
async def test_device_properties_round_trip_and_apply_to_compiled_models(
    core: aioplug.Core, conformance_device: str
) -> None:
    for hint in ("THROUGHPUT", "CUMULATIVE_THROUGHPUT", "LATENCY"):
        core.set_property(conformance_device, {"PERFORMANCE_HINT": hint})
        assert core.get_property(conformance_device, "PERFORMANCE_HINT") == hint
    for value in (True, False):
        core.set_property(conformance_device, {"PERF_COUNT": value})
        assert core.get_property(conformance_device, "PERF_COUNT") is value
    core.set_property(conformance_device, {"PERF_COUNT": True, "PERFORMANCE_HINT": "THROUGHPUT"})
    compiled = await _compile(core, add_model(), conformance_device)
    assert compiled.get_property("PERF_COUNT") is True
    assert compiled.get_property("PERFORMANCE_HINT") == "THROUGHPUT"
    # compile-time properties override the device's
    compiled = await _compile(core, add_model(), conformance_device, {"PERF_COUNT": False})
    assert compiled.get_property("PERF_COUNT") is False


@pytest.mark.anyio
async def test_unknown_property_raises(
    core: aioplug.Core, conformance_device: str, compiled_add: aioplug.CompiledModel
) -> None:
    key = "CONFORMANCE_NO_SUCH_PROPERTY"
    with pytest.raises(PropertyError):
        core.get_property(conformance_device, key)
    with pytest.raises(PropertyError):
        core.set_property(conformance_device, {key: 1})
    with pytest.raises(PropertyError):
        await _compile(core, add_model(), conformance_device, {key: 1})
    with pytest.raises(PropertyError):
        compiled_add.get_property(key)
    with pytest.raises(PropertyError):
        compiled_add.set_property({key: 1})


@pytest.mark.anyio
async def test_bad_property_value_raises(
    core: aioplug.Core, conformance_device: str, compiled_add: aioplug.CompiledModel
) -> None:
    for key, value in (("PERFORMANCE_HINT", "AS_FAST_AS_POSSIBLE"), ("PERF_COUNT", "sometimes")):
        before = core.get_property(conformance_device, key)
        with pytest.raises(PropertyError):
            core.set_property(conformance_device, {key: value})
        assert core.get_property(conformance_device, key) == before
        with pytest.raises(PropertyError):
            await _compile(core, add_model(), conformance_device, {key: value})
    with pytest.raises(PropertyError):
        core.set_property(conformance_device, {"FULL_DEVICE_NAME": "renamed"})  # read-only
    with pytest.raises(PropertyError):
        compiled_add.set_property({"PERF_COUNT": "sometimes"})
    with pytest.raises(PropertyError):
        compiled_add.set_property({"NETWORK_NAME": "renamed"})  # read-only


@pytest.mark.anyio
async def test_compiled_model_property_defaults(
    compiled_add: aioplug.CompiledModel, conformance_device: str
) -> None:
    assert compiled_add.get_property("PERF_COUNT") is False
    assert compiled_add.get_property("LOADED_FROM_CACHE") is False
    if not _is_virtual(conformance_device):
        assert compiled_add.get_property("DEVICE_ID") == "0"


@pytest.mark.anyio
async def test_execution_devices(
    core: aioplug.Core, compiled_add: aioplug.CompiledModel, conformance_device: str
) -> None:
    devices = compiled_add.get_property("EXECUTION_DEVICES")
    if not _is_virtual(conformance_device):
        assert devices == [f"{conformance_device}.0"]
        return
    # a virtual device reports the hardware devices it runs on, each with its id
    assert devices, "EXECUTION_DEVICES is empty"
    allowed = _real_devices(core, conformance_device)
    for device in devices:
        name = parse_device_name(device)
        assert not name.virtual and name.device_id is not None, devices
        assert name.device in allowed, f"{device} is not among {sorted(allowed)}"


@pytest.mark.anyio
async def test_optimal_number_of_infer_requests(compiled_add: aioplug.CompiledModel) -> None:
    n = compiled_add.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    assert isinstance(n, int) and not isinstance(n, bool)
    assert n >= 1


@pytest.mark.anyio
async def test_unknown_device_id_raises_device_not_found(
    core: aioplug.Core, conformance_device: str
) -> None:
    name = _with_device_id(conformance_device, "110")
    with pytest.raises(DeviceNotFound):
        await _compile(core, add_model(), name)
    with pytest.raises(DeviceNotFound):
        core.get_property(name, "FULL_DEVICE_NAME")
    with pytest.raises(DeviceNotFound):
        core.query_model(add_model(), name)


@pytest.mark.anyio
async def test_explicit_device_id_zero(core: aioplug.Core, conformance_device: str) -> None:
    virtual = _is_virtual(conformance_device)
    if virtual and not parse_device_name(conformance_device).targets:
        pytest.skip(f"{conformance_device} names no device, so there is no id to give")
    name = _with_device_id(conformance_device, "0")
    compiled = await _compile(core, add_model(), name)
    if virtual:
        named = {t.name for t in parse_device_name(name).targets}
        assert set(compiled.get_property("EXECUTION_DEVICES")) <= named
    else:
        assert compiled.get_property("EXECUTION_DEVICES") == [name]
        assert compiled.get_property("DEVICE_ID") == "0"
    assert core.get_property(name, "FULL_DEVICE_NAME") == core.get_property(
        conformance_device, "FULL_DEVICE_NAME"
    )
    inputs = _add_inputs(42)
    _assert_close((await compiled.infer(inputs))["y"], _add_expected(inputs))


@pytest.mark.anyio
async def test_query_model_covers_every_node(core: aioplug.Core, conformance_device: str) -> None:
    model = small_cnn_model()
    placement = core.query_model(model, conformance_device)
    assert set(placement) == {node.name for node in model.graph.node}
    if _is_virtual(conformance_device):
        # each node goes to a device the virtual device drives, or to the virtual device
        allowed = _real_devices(core, conformance_device) | {
            parse_device_name(conformance_device).device
        }
    else:
        allowed = {conformance_device}
    assert all(dev.split(".")[0] in allowed for dev in placement.values()), placement


@pytest.mark.anyio
async def test_malformed_device_id_raises_device_name_error(
    core: aioplug.Core, conformance_device: str
) -> None:
    name = _with_device_id(conformance_device, "l0")
    with pytest.raises(DeviceNameError):
        await _compile(core, add_model(), name)
    with pytest.raises(DeviceNameError):
        core.get_property(name, "FULL_DEVICE_NAME")
    with pytest.raises(DeviceNameError):
        core.query_model(add_model(), name)


# == export / import =====================================================================
async def _export(compiled: aioplug.CompiledModel) -> bytes:
    stream = io.BytesIO()
    try:
        compiled.export_model(stream)
    except NotImplementedError as exc:
        pytest.skip(f"{compiled.device_name} cannot export compiled models: {exc}")
    return stream.getvalue()


@pytest.mark.anyio
async def test_export_import_round_trip(core: aioplug.Core, conformance_device: str) -> None:
    _skip_unless_export(core, conformance_device)
    model = multi_io_model()
    compiled = await _compile(core, model, conformance_device)
    blob = await _export(compiled)
    imported = await core.import_model(io.BytesIO(blob), conformance_device)
    for ours, theirs in ((compiled.inputs, imported.inputs), (compiled.outputs, imported.outputs)):
        assert [(p.name, p.dtype, p.shape) for p in ours] == [(p.name, p.dtype, p.shape) for p in theirs]
    assert imported.get_property("NETWORK_NAME") == compiled.get_property("NETWORK_NAME")
    assert imported.get_property("LOADED_FROM_CACHE") is False
    feed = {
        "x": np.random.default_rng(26).standard_normal((5, 3)).astype(np.float32),
        "k": np.array([3], np.int64),
    }
    expected = _reference(model, feed)
    first = await compiled.infer(feed)
    second = await imported.infer(feed)
    for i, want in enumerate(expected):
        _assert_close(second[i], want, atol=1e-5)
        np.testing.assert_array_equal(second[i], first[i])
    # bytes work as a stream too
    again = await core.import_model(blob, conformance_device)
    _assert_close((await again.infer(feed))["scaled"], expected[0])


@pytest.mark.anyio
async def test_export_import_keeps_variable_states(
    core: aioplug.Core, conformance_device: str, compiled_accumulator: aioplug.CompiledModel
) -> None:
    _skip_unless_export(core, conformance_device)
    blob = await _export(compiled_accumulator)
    imported = await core.import_model(blob, conformance_device)
    request = imported.create_infer_request()
    assert [state.name for state in request.query_state()] == ["acc_in"]
    assert [p.name for p in imported.inputs] == ["x"]
    model = accumulator_model()
    acc = np.zeros((1, 4), np.float32)
    for x in (np.ones((1, 4), np.float32), np.arange(4, dtype=np.float32).reshape(1, 4)):
        out = await request.infer({"x": x})
        want, acc = _accumulate(model, acc, x)
        _assert_close(out["y"], want)


def _other_device_source(core: aioplug.Core, device: str) -> Any:
    for ep in entry_points(group="aioplug.devices"):
        if ep.name == device:
            return ep.value
    plugin_type: Any = type(core.get_plugin(device))
    return lambda: plugin_type()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "damage", ["truncated", "truncated_header", "corrupted_byte", "other_device", "random_bytes", "empty"]
)
async def test_import_rejects_bad_stream(
    core: aioplug.Core, conformance_device: str, damage: str
) -> None:
    _skip_unless_export(core, conformance_device)
    compiled = await _compile(core, add_model(), conformance_device)
    blob = await _export(compiled)
    if damage == "truncated":
        data = blob[: len(blob) - 7]
    elif damage == "truncated_header":
        data = blob[:10]
    elif damage == "corrupted_byte":
        corrupted = bytearray(blob)
        corrupted[len(blob) // 2] ^= 0xFF
        data = bytes(corrupted)
    elif damage == "other_device":
        other = "CONFORMANCEOTHER"
        core.register_plugin(_other_device_source(core, conformance_device), other)
        listed = conformance_device.partition(":")[2]  # a virtual device keeps its list
        foreign = await _compile(core, add_model(), f"{other}:{listed}" if listed else other)
        data = await _export(foreign)
    elif damage == "random_bytes":
        data = np.random.default_rng(27).integers(0, 256, len(blob), dtype=np.uint8).tobytes()
    else:
        data = b""
    with pytest.raises(ImportExportError):
        await core.import_model(io.BytesIO(data), conformance_device)
    # the device is still fine
    imported = await core.import_model(io.BytesIO(blob), conformance_device)
    inputs = _add_inputs(28)
    _assert_close((await imported.infer(inputs))["y"], _add_expected(inputs))


# == holders and lifetimes ===============================================================
@pytest.mark.anyio
async def test_results_tensors_states_and_context_outlive_core(conformance_device: str) -> None:
    inputs = _add_inputs(29)
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    context = remote = None
    async with aioplug.Core() as core:
        compiled = await _compile(core, add_model(), conformance_device)
        request = compiled.create_infer_request()
        out = await request.infer(inputs)
        a_tensor = request.get_tensor("a")
        y_tensor = request.get_tensor("y")
        acc = await _compile(
            core, accumulator_model(), conformance_device, {"VARIABLE_STATES": {"acc_in": "acc_out"}}
        )
        acc_request = acc.create_infer_request()
        await acc_request.infer({"x": x})
        states = acc_request.query_state()
        try:
            context = core.get_default_context(conformance_device)
        except NotImplementedError:
            context = None
        if context is not None:
            remote = context.create_tensor(np.float32, (1, 4))
            remote.copy_from(inputs["a"])
    expected = _add_expected(inputs)
    _assert_close(out["y"], expected)
    _assert_close(y_tensor, expected)
    np.testing.assert_array_equal(a_tensor, inputs["a"])
    _, want_state = _accumulate(accumulator_model(), np.zeros((1, 4), np.float32), x)
    _assert_close(states[0].get_state(), want_state)
    states[0].reset()
    _assert_close(states[0].get_state(), np.zeros((1, 4), np.float32))
    if context is not None and remote is not None:
        assert context.device_name.split(".")[0] == conformance_device
        host = np.zeros((1, 4), np.float32)
        remote.copy_to(host)
        np.testing.assert_array_equal(host, inputs["a"])


@pytest.mark.anyio
async def test_compiled_model_after_core_close_raises_closed(conformance_device: str) -> None:
    inputs = _add_inputs(30)
    async with aioplug.Core() as core:
        compiled = await _compile(core, add_model(), conformance_device)
        request = compiled.create_infer_request()
        await compiled.infer(inputs)
    with anyio.fail_after(10):
        with pytest.raises(ClosedError):
            await compiled.infer(inputs)
        with pytest.raises(ClosedError):
            compiled.create_infer_request()
        with pytest.raises(ClosedError):
            compiled.create_sync_infer_request()
        with pytest.raises(ClosedError):
            await request.infer(inputs)
        with pytest.raises(ClosedError):
            request.start_async(inputs)
        with pytest.raises(ClosedError):
            await core.compile_model(add_model(), conformance_device)
        if _can_export(core, conformance_device):
            with pytest.raises(ClosedError):
                compiled.export_model(io.BytesIO())


@pytest.mark.anyio
async def test_closing_core_stops_running_requests(core: aioplug.Core, slow_model: SlowModel) -> None:
    request = slow_model.compiled.create_infer_request()
    request.start_async({"x": slow_model.x})
    pooled = asyncio.ensure_future(slow_model.compiled.infer({"x": slow_model.x}))
    await _still_running_after(pooled, 0.1 * slow_model.full_run_s)
    start = time.perf_counter()
    with anyio.fail_after(10):
        await core.aclose()
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5 * slow_model.full_run_s, f"closing took {elapsed:.3f} s"
    with anyio.fail_after(10):
        with pytest.raises((RequestCancelled, ClosedError)):
            await request.wait()
        with pytest.raises((RequestCancelled, ClosedError)):
            await pooled
    with pytest.raises(ClosedError):
        request.start_async({"x": slow_model.x})
    with pytest.raises(ClosedError):
        await slow_model.compiled.infer({"x": slow_model.x})


# == remote tensors ======================================================================
@pytest.mark.anyio
async def test_remote_context_device_name(
    remote_context: aioplug.RemoteContext, conformance_device: str
) -> None:
    assert remote_context.device_name.split(".")[0] == conformance_device
    assert isinstance(remote_context.get_property(), dict)


@pytest.mark.anyio
async def test_remote_tensor_shape_and_dtype(
    remote_context: aioplug.RemoteContext, conformance_device: str
) -> None:
    tensor = remote_context.create_tensor(np.float32, (2, 3, 4))
    assert tensor.shape == (2, 3, 4)
    assert tensor.dtype == np.float32
    assert tensor.size == 24
    assert tensor.nbytes == 96
    assert tensor.device_name == remote_context.device_name
    ints = remote_context.create_tensor(np.int64, [5])
    assert ints.shape == (5,) and ints.dtype == np.int64


@pytest.mark.anyio
async def test_remote_tensor_has_no_host_data(remote_context: aioplug.RemoteContext) -> None:
    tensor = remote_context.create_tensor(np.float32, (1, 4))
    with pytest.raises(RemoteTensorError):
        tensor.data  # noqa: B018
    with pytest.raises(RemoteTensorError):
        np.asarray(tensor)


@pytest.mark.anyio
async def test_remote_tensor_copy_round_trip(remote_context: aioplug.RemoteContext) -> None:
    source = np.random.default_rng(31).standard_normal((2, 5)).astype(np.float32)
    first = remote_context.create_tensor(np.float32, (2, 5))
    second = remote_context.create_tensor(np.float32, (2, 5))
    first.copy_from(source)
    first.copy_to(second)
    host = np.zeros((2, 5), np.float32)
    second.copy_to(host)
    np.testing.assert_array_equal(host, source)
    with pytest.raises(RemoteTensorError):
        first.copy_to(np.zeros((5, 2), np.float32))
    with pytest.raises(RemoteTensorError):
        first.copy_from(np.zeros((2, 5), np.float64))


@pytest.mark.anyio
async def test_infer_with_remote_tensors(
    remote_context: aioplug.RemoteContext, compiled_add: aioplug.CompiledModel
) -> None:
    inputs = _add_inputs(32)
    expected = _add_expected(inputs)
    remote_a = remote_context.create_tensor(np.float32, (1, 4))
    remote_a.copy_from(inputs["a"])
    request = compiled_add.create_infer_request()
    request.set_tensor("a", remote_a)
    assert request.get_tensor("a") is remote_a
    out = await request.infer({"b": inputs["b"]})
    assert isinstance(out["y"], np.ndarray)
    _assert_close(out["y"], expected)
    # a remote input passed directly, and a remote output
    remote_y = remote_context.create_tensor(np.float32, (1, 4))
    request.set_tensor("y", remote_y)
    await request.infer({"a": remote_a, "b": inputs["b"]})
    host = np.zeros((1, 4), np.float32)
    remote_y.copy_to(host)
    _assert_close(host, expected)
    pooled = await compiled_add.infer({"a": remote_a, "b": inputs["b"]})
    _assert_close(pooled["y"], expected)


# == caching =============================================================================
@pytest.mark.anyio
async def test_second_compile_loads_from_cache(
    core: aioplug.Core, conformance_device: str, tmp_path: Path
) -> None:
    _skip_unless_export(core, conformance_device)
    model = small_cnn_model()
    config = {"CACHE_DIR": str(tmp_path)}
    image = np.random.default_rng(33).standard_normal((1, 3, 32, 32)).astype(np.float32)
    first = await _compile(core, model, conformance_device, config)
    assert first.get_property("LOADED_FROM_CACHE") is False
    assert any(tmp_path.iterdir()), "the first compile stored nothing in CACHE_DIR"
    second = await _compile(core, model, conformance_device, config)
    assert second.get_property("LOADED_FROM_CACHE") is True
    expected = _reference(model, {"image": image})[0]
    out1 = await first.infer({"image": image})
    out2 = await second.infer({"image": image})
    _assert_close(out2["probs"], expected, atol=1e-6)
    np.testing.assert_array_equal(out1["probs"], out2["probs"])
    # CACHE_DIR set on the Core works the same way
    core.set_property({"CACHE_DIR": str(tmp_path)})
    third = await _compile(core, model, conformance_device)
    assert third.get_property("LOADED_FROM_CACHE") is True


@pytest.mark.anyio
async def test_corrupted_cache_entry_is_recompiled(
    core: aioplug.Core, conformance_device: str, tmp_path: Path
) -> None:
    _skip_unless_export(core, conformance_device)
    model = small_cnn_model()
    config = {"CACHE_DIR": str(tmp_path)}
    image = np.random.default_rng(34).standard_normal((1, 3, 32, 32)).astype(np.float32)
    await _compile(core, model, conformance_device, config)
    entries = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert entries, "the first compile stored nothing in CACHE_DIR"
    damaged: dict[Path, bytes] = {}
    for path in entries:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        damaged[path] = bytes(data)
    recompiled = await _compile(core, model, conformance_device, config)
    assert recompiled.get_property("LOADED_FROM_CACHE") is False
    for path, bad in damaged.items():
        assert not path.exists() or path.read_bytes() != bad, f"corrupted entry {path} kept"
    out = await recompiled.infer({"image": image})
    _assert_close(out["probs"], _reference(model, {"image": image})[0], atol=1e-6)
    again = await _compile(core, model, conformance_device, config)
    assert again.get_property("LOADED_FROM_CACHE") is True


@pytest.mark.anyio
async def test_cache_hit_has_the_properties_of_a_fresh_compile(
    core: aioplug.Core, conformance_device: str, tmp_path: Path
) -> None:
    _skip_unless_export(core, conformance_device)
    core.set_property({"CACHE_DIR": str(tmp_path)})
    model = add_model()
    first = await _compile(core, model, conformance_device, {"PERF_COUNT": True})
    assert first.get_property("PERF_COUNT") is True
    # no explicit PERF_COUNT now: a cache hit must give the default, as a fresh compile does
    plain = await _compile(core, model, conformance_device)
    assert plain.get_property("LOADED_FROM_CACHE") is True
    problems = []
    if plain.get_property("PERF_COUNT") is not False:
        problems.append("PERF_COUNT from the cache entry's config leaked into a later compile")
    # device properties changed after the entry was written apply to a cache hit
    core.set_property(conformance_device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    hinted = await _compile(core, model, conformance_device)
    assert hinted.get_property("LOADED_FROM_CACHE") is True
    if hinted.get_property("PERFORMANCE_HINT") != "THROUGHPUT":
        problems.append(
            f"PERFORMANCE_HINT is {hinted.get_property('PERFORMANCE_HINT')} on a cache hit; "
            "the device says THROUGHPUT"
        )
    assert problems == []


# == AsyncInferQueue =====================================================================
@pytest.mark.anyio
async def test_async_infer_queue_collects_all_results(
    core: aioplug.Core, conformance_device: str
) -> None:
    compiled = await _compile(core, add_model(), conformance_device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    queue = AsyncInferQueue(compiled, jobs=0)
    assert len(queue) == compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    collected: list[tuple[Any, np.ndarray]] = []
    queue.set_callback(lambda req, userdata: collected.append((userdata, req.get_tensor("y").copy())))
    feeds = [_add_inputs(200 + i) for i in range(50)]
    with anyio.fail_after(60):
        for i, feed in enumerate(feeds):
            await queue.start_async(feed, userdata=i)
        await queue.wait_all()
    assert sorted(userdata for userdata, _ in collected) == list(range(50))
    for userdata, y in collected:
        _assert_close(y, _add_expected(feeds[userdata]))


@pytest.mark.anyio
async def test_async_infer_queue_wait_all_reraises_callback_error(
    compiled_add: aioplug.CompiledModel,
) -> None:
    queue = AsyncInferQueue(compiled_add, jobs=0)
    error = RuntimeError("raised by the conformance queue callback")
    seen: list[int] = []

    def callback(req: aioplug.AsyncInferRequest, userdata: int) -> None:
        seen.append(userdata)
        if userdata == 7:
            raise error

    queue.set_callback(callback)
    with anyio.fail_after(60):
        for i in range(10):
            await queue.start_async(_add_inputs(300 + i), userdata=i)
        with pytest.raises(RuntimeError) as caught:
            await queue.wait_all()
    assert caught.value is error
    assert sorted(seen) == list(range(10))
    # the error was reported once; the queue keeps working
    inputs = _add_inputs(311)
    queue.set_callback(None)
    await queue.start_async(inputs, userdata="last")
    await queue.wait_all()


@pytest.mark.anyio
async def test_async_infer_queue_reports_failed_inferences(
    core: aioplug.Core, conformance_device: str
) -> None:
    model = _lookup_model()
    compiled = await _compile(core, model, conformance_device)
    queue = AsyncInferQueue(compiled, jobs=0)
    done: list[Any] = []
    queue.set_callback(lambda req, userdata: done.append((userdata, req.get_tensor("y").copy())))
    good = {"idx": np.array([3, 1], np.int64)}
    with anyio.fail_after(60):
        await queue.start_async({"idx": np.array([99, 1], np.int64)}, userdata="bad")
        await queue.start_async(good, userdata="good")
        with pytest.raises(InferError):
            await queue.wait_all()
        # inputs rejected at start raise at once, and the request goes back to the queue
        with pytest.raises(InputError):
            await queue.start_async({"idx": np.zeros((2,), np.float32)})
        await queue.start_async(good, userdata="again")
        await queue.wait_all()
    assert [userdata for userdata, _ in done] == ["good", "again"]
    for _, y in done:
        _assert_close(y, _reference(model, good)[0])
    assert queue.is_ready()


# == pool backpressure ===================================================================
@pytest.mark.anyio
async def test_pool_backpressure_raises_queue_full(core: aioplug.Core, conformance_device: str) -> None:
    model = matmul_chain_model(nodes=64, size=SMALL_MATMUL, batch_axis=True)
    max_queued = 2
    compiled = await _compile(core, model, conformance_device, {**STREAMS, "MAX_QUEUED_REQUESTS": max_queued})
    assert compiled.get_property("MAX_QUEUED_REQUESTS") == max_queued
    size = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    accepted, extra = size + max_queued, 3
    rng = np.random.default_rng(35)
    shape = (1, SMALL_MATMUL, SMALL_MATMUL)
    feeds = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(accepted + extra)]
    finished: list[tuple[int, BaseException | None]] = []
    outputs: dict[int, np.ndarray] = {}

    async def call(i: int) -> None:
        try:
            out = await compiled.infer(feeds[i])
        except QueueFull as exc:
            finished.append((i, exc))
        else:
            outputs[i] = out["y"]
            finished.append((i, None))

    with anyio.fail_after(60):
        await asyncio.gather(*(call(i) for i in range(len(feeds))))
    rejected = [i for i, exc in finished if exc is not None]
    assert sorted(rejected) == list(range(accepted, accepted + extra))
    # the rejected calls failed at once: before any accepted call finished
    assert [exc is not None for _, exc in finished[:extra]] == [True] * extra
    assert sorted(outputs) == list(range(accepted))
    for i, y in outputs.items():
        _assert_close(y, _reference(model, feeds[i])[0], atol=1e-5)
    # with room again, the pool serves everyone
    outs = await asyncio.gather(*(compiled.infer(feeds[i]) for i in range(accepted)))
    for i, out in enumerate(outs):
        _assert_close(out["y"], outputs[i])


__all__ = [
    name
    for name in list(globals())
    if name.startswith("test_")
    or name in {"core", "compiled_add", "slow_model", "compiled_accumulator", "remote_context"}
]
