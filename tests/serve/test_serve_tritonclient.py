"""Real clients over real sockets: ``tritonclient.http`` and ``tritonclient.http.aio``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aioplug.serve import ServerThread
from serve_support import CAST_TARGETS, ONNX_TYPES, sample

httpclient = pytest.importorskip("tritonclient.http")
aioclient = pytest.importorskip("tritonclient.http.aio")
from tritonclient.utils import InferenceServerException  # noqa: E402


def _direct(thread: ServerThread, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    compiled = thread.inference.resolve(model).compiled
    return dict(thread.call(compiled.infer(inputs)))


def _same(got: np.ndarray, want: np.ndarray, name: str) -> None:
    if want.dtype == object:  # BYTES: tritonclient gives str for JSON, bytes for binary
        got = np.array([g.encode() if isinstance(g, str) else bytes(g) for g in got.ravel()], dtype=object)
        want = want.ravel()
    else:
        assert got.dtype == want.dtype, name
    np.testing.assert_array_equal(got, want, err_msg=name)


def _inputs(module: Any, arrays: dict[str, np.ndarray], binary: bool) -> list[Any]:
    items = []
    for dt, array in arrays.items():
        item = module.InferInput(f"in_{dt}", list(array.shape), dt)
        item.set_data_from_numpy(array, binary_data=binary)
        items.append(item)
    return items


@pytest.fixture(scope="module")
def client(server_thread: ServerThread) -> Any:
    with httpclient.InferenceServerClient(server_thread.url.removeprefix("http://")) as c:
        yield c


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("add") and client.is_model_ready("add", "1")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("types")
    assert {t["datatype"] for t in meta["inputs"]} == set(ONNX_TYPES)
    assert client.get_model_config("multi")["input"][0]["dims"] == [-1, 3]


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_every_datatype_equals_a_direct_infer(
    client: Any, server_thread: ServerThread, binary_in: bool, binary_out: bool
) -> None:
    rng = np.random.default_rng(11)
    arrays = {dt: sample(dt, (4, 2), rng) for dt in ONNX_TYPES}
    outputs = [httpclient.InferRequestedOutput(f"out_{dt}", binary_data=binary_out) for dt in ONNX_TYPES]
    result = client.infer("types", _inputs(httpclient, arrays, binary_in), outputs=outputs, request_id="r-7")
    assert result.get_response()["id"] == "r-7"
    direct = _direct(server_thread, "types", {f"in_{dt}": a for dt, a in arrays.items()})
    for dt in ONNX_TYPES:
        _same(result.as_numpy(f"out_{dt}"), direct[f"out_{dt}"], dt)
        np.testing.assert_array_equal(direct[f"out_{dt}"], arrays[dt])


def test_cast_outputs_default_to_binary(client: Any, server_thread: ServerThread) -> None:
    x = np.array([0.0, 1.5, -2.0, 300.0, 7.25], np.float32)
    item = httpclient.InferInput("x", [5], "FP32")
    item.set_data_from_numpy(x)
    result = client.infer("cast", [item])  # no outputs named: the client asks for binary
    direct = _direct(server_thread, "cast", {"x": x})
    for dt in CAST_TARGETS:
        assert result.get_output(f"to_{dt}")["parameters"]["binary_data_size"] > 0
        _same(result.as_numpy(f"to_{dt}"), direct[f"to_{dt}"], dt)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(client: Any, algorithm: str) -> None:
    x = np.arange(300, dtype=np.float32).reshape(100, 3)
    items = [httpclient.InferInput("x", [100, 3], "FP32"), httpclient.InferInput("k", [1], "INT64")]
    items[0].set_data_from_numpy(x)
    items[1].set_data_from_numpy(np.array([3], np.int64))
    result = client.infer(
        "multi", items, request_compression_algorithm=algorithm, response_compression_algorithm=algorithm
    )
    np.testing.assert_array_equal(result.as_numpy("scaled"), x * 3)
    assert result.as_numpy("total") == pytest.approx(float((x * 3).sum()))


def test_errors_reach_the_client_as_messages(client: Any) -> None:
    item = httpclient.InferInput("x", [2, 4], "FP32")
    item.set_data_from_numpy(np.zeros((2, 4), np.float32))
    with pytest.raises(InferenceServerException, match=r"axis 1 is 3 in the model") as info:
        client.infer("multi", [item, _k()])
    assert info.value.status() == "400"
    with pytest.raises(InferenceServerException, match="no model named 'nope'") as info:
        client.infer("nope", [item])
    assert info.value.status() == "404"
    wrong = httpclient.InferInput("k", [1], "INT32")
    wrong.set_data_from_numpy(np.array([1], np.int32))
    with pytest.raises(InferenceServerException, match="is INT64 in the model; got datatype INT32"):
        client.infer("multi", [_x(), wrong])


def _x() -> Any:
    item = httpclient.InferInput("x", [1, 3], "FP32")
    item.set_data_from_numpy(np.ones((1, 3), np.float32))
    return item


def _k() -> Any:
    item = httpclient.InferInput("k", [1], "INT64")
    item.set_data_from_numpy(np.array([2], np.int64))
    return item


def test_a_deadline_from_the_client_stops_the_work(client: Any) -> None:
    x = httpclient.InferInput("x", [1, 1], "FP32")
    x.set_data_from_numpy(np.ones((1, 1), np.float32))
    with pytest.raises(InferenceServerException, match=r"deadline of 5 ms expired while") as info:
        client.infer("slow", [x], timeout=5_000)  # microseconds, as tritonclient documents
    assert info.value.status() == "504"


@pytest.mark.anyio
async def test_the_asyncio_client(server_thread: ServerThread) -> None:
    rng = np.random.default_rng(3)
    arrays = {dt: sample(dt, (2, 2), rng) for dt in ONNX_TYPES}
    direct = _direct(server_thread, "types", {f"in_{dt}": a for dt, a in arrays.items()})
    async with aioclient.InferenceServerClient(server_thread.url.removeprefix("http://")) as client:
        assert await client.is_server_ready()
        assert (await client.get_model_metadata("add", "2"))["versions"] == ["1", "2"]
        for binary in (True, False):
            outputs = [aioclient.InferRequestedOutput(f"out_{dt}", binary_data=binary) for dt in ONNX_TYPES]
            result = await client.infer("types", _inputs(aioclient, arrays, binary), outputs=outputs)
            for dt in ONNX_TYPES:
                _same(result.as_numpy(f"out_{dt}"), direct[f"out_{dt}"], dt)
        with pytest.raises(InferenceServerException, match="missing input"):
            await client.infer("types", _inputs(aioclient, {"FP32": arrays["FP32"]}, True))
