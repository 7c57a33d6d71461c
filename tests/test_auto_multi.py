"""AUTO and MULTI: device choice, runtime fallback, and requests spread over devices."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug import DeviceError, RequestCancelled, UnsupportedOp
from aioplug.plugin import CancelToken
from aioplug.testing.models import add_model, small_cnn_model
from aioplug_template.compiled_model import TemplateCompiledModel
from aioplug_template.plugin import TemplatePlugin
from aioplug_template.sync_infer_request import TemplateSyncInferRequest

pytestmark = pytest.mark.anyio


def _reference(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feed)]


def _cnn_input(seed: int = 0) -> dict[str, np.ndarray]:
    model = small_cnn_model()
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return {model.graph.input[0].name: x}


def _asinh_chain(nodes: int = 60, shape: tuple[int, ...] = (128, 128)) -> onnx.ModelProto:
    """A model that takes a few milliseconds on either device, with no BLAS in it."""
    names = ["x", *(f"h{i}" for i in range(nodes - 1)), "y"]
    graph = helper.make_graph(
        [helper.make_node("Asinh", [names[i]], [names[i + 1]]) for i in range(nodes)],
        "asinh_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class _LostRequest(TemplateSyncInferRequest):
    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        self.compiled_model.plugin.failures += 1  # type: ignore[attr-defined]
        raise DeviceError("the device was lost")


class _LostCompiledModel(TemplateCompiledModel):
    def _create_sync_infer_request(self) -> TemplateSyncInferRequest:
        return _LostRequest(self)


class FlakyPlugin(TemplatePlugin):
    """A device that compiles every model and fails every inference with a device error."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def _compile_model(self, model: aioplug.Model, config: dict[str, Any]) -> TemplateCompiledModel:
        return _LostCompiledModel(self, model, config)


# == AUTO ================================================================================
async def test_auto_is_the_default_device_and_prefers_cpu() -> None:
    async with aioplug.Core() as core:
        assert core.default_device == "AUTO"
        assert "AUTO" not in core.available_devices  # not a device of its own
        compiled = await core.compile_model(small_cnn_model())
        assert compiled.get_property("EXECUTION_DEVICES") == ["CPU.0"]
        feed = _cnn_input(1)
        out = await compiled.infer(feed)
        np.testing.assert_allclose(out[0], _reference(small_cnn_model(), feed)[0], rtol=1e-4, atol=1e-5)


async def test_auto_keeps_the_listed_priority_and_exclusions() -> None:
    async with aioplug.Core() as core:
        listed = await core.compile_model(add_model(), "AUTO:TEMPLATE,CPU")
        assert listed.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0"]
        excluded = await core.compile_model(add_model(), "AUTO:-CPU")
        assert excluded.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0"]
        with pytest.raises(aioplug.DeviceNameError, match="every candidate is excluded"):
            await core.compile_model(add_model(), "AUTO:-CPU,-TEMPLATE")


async def test_auto_skips_a_device_that_cannot_run_every_node() -> None:
    model = small_cnn_model()
    async with aioplug.Core() as core:
        core.set_property("CPU", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
        placement = core.query_model(model, "AUTO")
        assert set(placement.values()) == {"TEMPLATE.0"}
        compiled = await core.compile_model(model, "AUTO")
        assert compiled.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0"]
        feed = _cnn_input(2)
        np.testing.assert_allclose(
            (await compiled.infer(feed))[0], _reference(model, feed)[0], rtol=1e-4, atol=1e-5
        )
        core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Conv"]})
        with pytest.raises(UnsupportedOp, match="ai.onnx::Relu") as caught:
            await core.compile_model(model, "AUTO")
        assert "ai.onnx::Conv" in str(caught.value)


async def test_auto_falls_back_at_run_time_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    model = small_cnn_model()
    feed = _cnn_input(3)
    expected = _reference(model, feed)[0]
    async with aioplug.Core(plugins={"FLAKY": FlakyPlugin}) as core:
        compiled = await core.compile_model(model, "AUTO:FLAKY,CPU", {"PERF_COUNT": True})
        assert compiled.get_property("EXECUTION_DEVICES") == ["FLAKY.0"]
        flaky: Any = core.get_plugin("FLAKY")
        before = flaky.failures  # the compile-time warm-up run failed too
        request = compiled.create_infer_request()
        with caplog.at_level(logging.WARNING, logger="aioplug_auto"):
            out = await request.infer(feed)
        np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-5)
        assert flaky.failures == before + 1
        assert any("re-running it on CPU" in r.getMessage() for r in caplog.records)
        records = request.get_profiling_info()
        fallback = [r for r in records if r.node_type == "Fallback"]
        assert [r.exec_type for r in fallback] == ["FLAKY.0 -> CPU"]
        assert any(r.node_name == "conv1" for r in records), "the CPU's node records are missing"
        # the synchronous path falls back too
        sync = compiled.create_sync_infer_request()
        np.testing.assert_allclose(sync.infer(feed)[0], expected, rtol=1e-4, atol=1e-5)
        # with fallback off, the device error reaches the caller
        strict = await core.compile_model(
            model, "AUTO:FLAKY,CPU", {"ENABLE_RUNTIME_FALLBACK": False}
        )
        with pytest.raises(DeviceError, match="lost"):
            await strict.infer(feed)
        # the request stays usable
        with pytest.raises(DeviceError, match="lost"):
            await strict.infer(feed)


async def test_auto_cumulative_throughput_runs_on_every_capable_device() -> None:
    async with aioplug.Core() as core:
        compiled = await core.compile_model(
            add_model(), "AUTO:CPU,TEMPLATE", {"PERFORMANCE_HINT": "CUMULATIVE_THROUGHPUT"}
        )
        assert compiled.get_property("EXECUTION_DEVICES") == ["CPU.0", "TEMPLATE.0"]
        parts = [p.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") for p in compiled.parts]  # type: ignore[attr-defined]
        assert compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") == sum(parts)


# == MULTI ===============================================================================
async def test_multi_spreads_concurrent_requests_over_both_devices() -> None:
    model = _asinh_chain()
    async with aioplug.Core() as core:
        compiled = await core.compile_model(
            model, "MULTI:CPU,TEMPLATE", {"PERF_COUNT": True, "COMPUTE_EXECUTOR": "STREAMS"}
        )
        parts = [p.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") for p in compiled.parts]  # type: ignore[attr-defined]
        assert compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") == sum(parts) >= 2
        assert compiled.get_property("EXECUTION_DEVICES") == ["CPU.0", "TEMPLATE.0"]
        requests = [compiled.create_infer_request() for _ in range(sum(parts))]
        rng = np.random.default_rng(4)
        feeds = [{"x": rng.standard_normal((128, 128)).astype(np.float32)} for _ in requests]
        devices: Counter[str] = Counter()

        async def run(request: aioplug.AsyncInferRequest, feed: dict[str, np.ndarray]) -> None:
            for _ in range(3):
                out = await request.infer(feed)
                np.testing.assert_allclose(out["y"], _reference(model, feed)[0], rtol=1e-5, atol=1e-6)
                dispatch = [r for r in request.get_profiling_info() if r.node_type == "Dispatch"]
                devices[dispatch[0].exec_type] += 1

        async with anyio.create_task_group() as tg:
            for request, feed in zip(requests, feeds):
                tg.start_soon(run, request, feed)
        assert set(devices) == {"CPU.0", "TEMPLATE.0"}, devices


async def test_multi_query_model_keeps_nodes_every_device_supports() -> None:
    model = small_cnn_model()
    async with aioplug.Core() as core:
        core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
        placement = core.query_model(model, "MULTI:CPU,TEMPLATE")
        relus = {n.name for n in model.graph.node if n.op_type == "Relu"}
        assert relus and not relus & set(placement)
        assert set(placement) == {n.name for n in model.graph.node} - relus
        assert set(placement.values()) == {"MULTI"}
        with pytest.raises(UnsupportedOp, match="TEMPLATE cannot run"):
            await core.compile_model(model, "MULTI:CPU,TEMPLATE")


async def test_multi_request_cancelled_while_waiting_for_a_device() -> None:
    # busy for about 0.1 s on a fast machine (200 x 768 x 768 asinh), well past the 10 ms
    # after which the queued request, still waiting for the device, is cancelled
    model = _asinh_chain(nodes=200, shape=(768, 768))
    x = np.ones((768, 768), np.float32)
    async with aioplug.Core() as core:
        compiled = await core.compile_model(model, "MULTI:CPU", {"COMPUTE_EXECUTOR": "STREAMS"})
        busy = [compiled.create_infer_request() for _ in range(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))]
        for request in busy:
            request.start_async({"x": x})
        queued = compiled.create_infer_request()
        queued.start_async({"x": x})
        await anyio.sleep(0.01)
        queued.cancel()
        with anyio.fail_after(10), pytest.raises(RequestCancelled):
            await queued.wait()
        with anyio.fail_after(30):
            for request in busy:
                await request.wait()
            out = await queued.infer({"x": x})  # reusable afterwards
        np.testing.assert_allclose(out["y"], _reference(model, {"x": x})[0], rtol=1e-4, atol=1e-5)
        assert compiled.workers.size == len(busy)  # type: ignore[attr-defined]


async def test_virtual_devices_cannot_drive_virtual_devices() -> None:
    async with aioplug.Core() as core:
        with pytest.raises(aioplug.DeviceNameError, match="virtual"):
            await core.compile_model(add_model(), "MULTI:AUTO,CPU")
