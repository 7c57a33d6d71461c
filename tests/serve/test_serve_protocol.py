"""The KServe v2 HTTP protocol, driven through ``httpx.ASGITransport`` (no sockets)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest

from aioplug.serve.datatypes import serialize_bytes
from serve_support import asgi_client, json_input, sample, ONNX_TYPES

pytestmark = pytest.mark.anyio

ADD_BODY = {
    "id": "req-1",
    "inputs": [
        {"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "b", "shape": [1, 4], "datatype": "FP32", "data": [[10, 20, 30, 40]]},
    ],
}


def _binary_body(inputs: list[tuple[str, np.ndarray, str]], extra: dict[str, Any] | None = None) -> tuple[bytes, int]:
    header: dict[str, Any] = {"inputs": [], **(extra or {})}
    chunks = []
    for name, array, datatype in inputs:
        data = serialize_bytes(array) if datatype == "BYTES" else array.tobytes()
        header["inputs"].append({
            "name": name, "shape": list(array.shape), "datatype": datatype,
            "parameters": {"binary_data_size": len(data)},
        })
        chunks.append(data)
    head = json.dumps(header).encode()
    return head + b"".join(chunks), len(head)


def _split(response: Any) -> tuple[dict[str, Any], bytes]:
    length = response.headers.get("inference-header-content-length")
    if length is None:
        return response.json(), b""
    return json.loads(response.content[: int(length)]), response.content[int(length):]


async def test_health_and_metadata_endpoints() -> None:
    async with asgi_client() as (client, _):
        assert (await client.get("/v2/health/live")).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 200
        meta = (await client.get("/v2")).json()
        assert meta["name"] == "aioplug" and "binary_tensor_data" in meta["extensions"]
        model = (await client.get("/v2/models/multi")).json()
        assert model["versions"] == ["1"] and model["platform"] == "aioplug_onnx"
        assert model["inputs"] == [
            {"name": "x", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "k", "datatype": "INT64", "shape": [1]},
        ]
        assert model["outputs"][1] == {"name": "total", "datatype": "FP32", "shape": []}
        assert (await client.get("/v2/models/add")).json()["versions"] == ["1", "2"]
        assert (await client.get("/v2/models/add/versions/2/ready")).status_code == 200
        assert (await client.get("/v2/models/add/ready")).status_code == 200
        config = (await client.get("/v2/models/multi/config")).json()
        assert config["input"][1] == {"name": "k", "data_type": "TYPE_INT64", "dims": [1]}


async def test_json_inference_echoes_the_id_and_matches_a_direct_infer() -> None:
    async with asgi_client() as (client, server):
        response = await client.post("/v2/models/add/infer", json=ADD_BODY)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == "req-1" and body["model_name"] == "add" and body["model_version"] == "2"
        direct = await server.resolve("add").compiled.infer({
            "a": np.array([[1, 2, 3, 4]], np.float32), "b": np.array([[10, 20, 30, 40]], np.float32)
        })
        assert body["outputs"] == [
            {"name": "y", "datatype": "FP32", "shape": [1, 4], "data": direct["y"].ravel().tolist()}
        ]
        versioned = await client.post("/v2/models/add/versions/1/infer", json=ADD_BODY)
        assert versioned.json()["model_version"] == "1"
        without_id = await client.post("/v2/models/add/infer", json={"inputs": ADD_BODY["inputs"]})
        assert "id" not in without_id.json()


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
async def test_every_datatype_round_trips(binary_in: bool, binary_out: bool) -> None:
    rng = np.random.default_rng(7)
    arrays = {dt: sample(dt, (3, 2), rng) for dt in ONNX_TYPES}
    if binary_in:
        body, length = _binary_body(
            [(f"in_{dt}", a, dt) for dt, a in arrays.items()],
            {"parameters": {"binary_data_output": binary_out}},
        )
        headers = {"Inference-Header-Content-Length": str(length)}
    else:
        request = {"inputs": [json_input(f"in_{dt}", a, dt) for dt, a in arrays.items()],
                   "parameters": {"binary_data_output": binary_out}}
        body, headers = json.dumps(request).encode(), {}
    async with asgi_client() as (client, server):
        response = await client.post("/v2/models/types/infer", content=body, headers=headers)
        assert response.status_code == 200, response.text
        direct = await server.resolve("types").compiled.infer({f"in_{dt}": a for dt, a in arrays.items()})
    header, tail = _split(response)
    offset = 0
    for out in header["outputs"]:
        dt = out["datatype"]
        assert out["name"] == f"out_{dt}" and out["shape"] == [3, 2]
        expected = direct[out["name"]]
        if binary_out:
            size = out["parameters"]["binary_data_size"]
            chunk = tail[offset:offset + size]
            offset += size
            want = serialize_bytes(expected) if dt == "BYTES" else expected.tobytes()
            assert chunk == want, dt
        elif dt == "BYTES":
            assert out["data"] == [bytes(b).decode() for b in expected.ravel()]
        else:
            got = np.array(out["data"], dtype=expected.dtype).reshape(3, 2)
            np.testing.assert_array_equal(got, expected, err_msg=dt)
    assert offset == len(tail)


async def test_per_output_binary_data_overrides_the_request_setting() -> None:
    request = {
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]},
                   {"name": "k", "shape": [1], "datatype": "INT64", "data": [2]}],
        "outputs": [{"name": "total", "parameters": {"binary_data": True}}, {"name": "scaled"}],
    }
    async with asgi_client() as (client, _):
        response = await client.post("/v2/models/multi/infer", json=request)
    header, tail = _split(response)
    assert [o["name"] for o in header["outputs"]] == ["total", "scaled"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 4}
    assert struct.unpack("<f", tail)[0] == 42.0
    assert header["outputs"][1]["data"] == [2, 4, 6, 8, 10, 12]
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_request_and_response_bodies(encoding: str) -> None:
    raw = json.dumps(ADD_BODY).encode()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    async with asgi_client() as (client, server):
        response = await client.post(
            "/v2/models/add/infer", content=body,
            headers={"Content-Encoding": encoding, "Accept-Encoding": f"{encoding}, identity"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [11, 22, 33, 44]
        big = {"inputs": [{"name": "x", "shape": [400, 3], "datatype": "FP32", "data": [1.5] * 1200},
                          {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]}]}
        response = await client.post("/v2/models/multi/infer", json=big, headers={"Accept-Encoding": encoding})
        assert response.headers["content-encoding"] == encoding
        assert response.json()["outputs"][0]["data"] == [1.5] * 1200  # httpx decodes it


def _multi(x: Any = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": x if x is not None else [1, 2, 3]},
        {"name": "k", "shape": [1], "datatype": "INT64", "data": [2]},
    ]}
    body.update(changes)
    return body


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("not json", b"{nope", 400, "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "must be a JSON object"),
    ("unknown field", _multi(extra=1), 400, "unknown field(s) 'extra'"),
    ("no inputs", {"inputs": []}, 400, "'inputs' must be a non-empty list"),
    ("unknown input", {"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}, 400,
     "no input 'z'"),
    ("missing input", {"inputs": [_multi()["inputs"][0]]}, 400, "missing input(s) 'k'"),
    ("wrong datatype", {"inputs": [{**_multi()["inputs"][0], "datatype": "FP64"}, _multi()["inputs"][1]]},
     400, "is FP32 in the model; got datatype FP64"),
    ("unknown datatype", {"inputs": [{**_multi()["inputs"][0], "datatype": "FLOAT"}]}, 400,
     "unknown datatype 'FLOAT'"),
    ("bf16", {"inputs": [{**_multi()["inputs"][0], "datatype": "BF16"}]}, 400, "BF16 is not supported"),
    ("shape/data mismatch", _multi([1, 2]), 400, "has 2 elements; shape [1, 3] needs 3"),
    ("wrong static axis", {"inputs": [{**_multi()["inputs"][0], "shape": [1, 4], "data": [1, 2, 3, 4]}]},
     400, "axis 1 is 3 in the model"),
    ("wrong rank", {"inputs": [{**_multi()["inputs"][0], "shape": [3], "data": [1, 2, 3]}]}, 400,
     "has rank 2 in the model"),
    ("negative dim", {"inputs": [{**_multi()["inputs"][0], "shape": [-1, 3]}]}, 400,
     "shape must be a list of integers >= 0"),
    ("string in FP32", _multi(["1", 2, 3]), 400, "FP32 elements must be numbers"),
    ("ragged", _multi([[1, 2], [3]]), 400, "ragged or mixed"),
    ("bool in FP32", _multi([True, False, True]), 400, "must be numbers, found true/false"),
    ("float in INT64", {"inputs": [_multi()["inputs"][0], {**_multi()["inputs"][1], "data": [1.5]}]}, 400,
     "INT64 elements must be integers"),
    ("int out of range", {"inputs": [_multi()["inputs"][0], {**_multi()["inputs"][1], "data": [2**64]}]}, 400,
     "18446744073709551616 is out of range for INT64"),
    ("int64 overflow", {"inputs": [_multi()["inputs"][0], {**_multi()["inputs"][1], "data": [2**63]}]}, 400,
     "9223372036854775808 is out of range for INT64 [-9223372036854775808, 9223372036854775807]"),
    ("null element", {"inputs": [_multi()["inputs"][0], {**_multi()["inputs"][1], "data": [None]}]}, 400,
     "INT64 elements must be integers, found non-numbers"),
    ("fp32 overflow", _multi([1e39, 0, 0]), 400, "out of range for FP32"),
    ("duplicate input", {"inputs": [_multi()["inputs"][0]] * 2}, 400, "is given twice"),
    ("id not a string", _multi(id=5), 400, "'id' must be a string"),
    ("bad timeout", _multi(parameters={"timeout": "soon"}), 400, "parameters.timeout must be an integer"),
    ("sequence", _multi(parameters={"sequence_id": 3}), 400, "sequence_id is not supported"),
    ("shared memory", {"inputs": [{**_multi()["inputs"][0], "parameters": {"shared_memory_region": "r"}}]},
     400, "shared memory is not supported"),
    ("unknown output", _multi(outputs=[{"name": "nope"}]), 400, "no output 'nope'"),
    ("classification", _multi(outputs=[{"name": "total", "parameters": {"classification": 2}}]), 400,
     "classification outputs are not supported"),
    ("binary_data not bool", _multi(outputs=[{"name": "total", "parameters": {"binary_data": 1}}]), 400,
     "binary_data must be true or false"),
    ("data is not a list", _multi(5), 400, "data must be a list"),
    ("too many elements", {"inputs": [{"name": "x", "shape": [100_000, 3], "datatype": "FP32", "data": []}]},
     413, "at most 20000 per tensor"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
async def test_bad_requests_get_a_4xx_with_a_precise_message(case: tuple[str, Any, int, str]) -> None:
    _, body, status, message = case
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with asgi_client() as (client, server):
        response = await client.post("/v2/models/multi/infer", content=content)
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
        # the model still answers afterwards
        assert (await client.post("/v2/models/multi/infer", json=_multi())).status_code == 200
        failures = server.metrics.failures.values
        assert sum(failures.values()) == 1


async def test_binary_framing_errors() -> None:
    x = np.ones((1, 3), np.float32)
    k = np.array([2], np.int64)
    body, length = _binary_body([("x", x, "FP32"), ("k", k, "INT64")])
    async with asgi_client() as (client, _):
        async def post(content: bytes, header: str | None) -> tuple[int, str]:
            headers = {} if header is None else {"Inference-Header-Content-Length": header}
            r = await client.post("/v2/models/multi/infer", content=content, headers=headers)
            return r.status_code, r.json().get("error", "")

        assert (await post(body, str(length)))[0] == 200
        status, error = await post(body[:-1], str(length))
        assert status == 400 and "binary data ends at byte 20, past the 19 bytes" in error
        status, error = await post(body + b"xx", str(length))
        assert status == 400 and "add up to 20" in error
        status, error = await post(body, "abc")
        assert status == 400 and "must be an integer" in error
        status, error = await post(body, str(len(body) + 5))
        assert status == 400 and "Inference-Header-Content-Length is" in error
        status, error = await post(body, None)
        assert status == 400 and "not valid JSON" in error
        bad_bool, blen = _binary_body([("in_BOOL", np.array([[2, 1]], np.uint8), "BOOL")])
        r = await client.post("/v2/models/types/infer", content=bad_bool,
                              headers={"Inference-Header-Content-Length": str(blen)})
        assert r.status_code == 400 and "BOOL bytes must be 0 or 1" in r.json()["error"]
        strings = np.array([b"ab", b"c"], dtype=object).reshape(1, 2)
        sbody, slen = _binary_body([("in_BYTES", strings, "BYTES")])
        truncated = sbody[:slen] + struct.pack("<I", 99) + b"ab"
        head = json.loads(sbody[:slen])
        head["inputs"][0]["parameters"]["binary_data_size"] = 6
        fixed = json.dumps(head).encode()
        r = await client.post("/v2/models/types/infer", content=fixed + truncated[slen:],
                              headers={"Inference-Header-Content-Length": str(len(fixed))})
        assert r.status_code == 400 and "declares 99 bytes" in r.json()["error"]


async def test_routing_and_transport_errors() -> None:
    async with asgi_client() as (client, server):
        r = await client.post("/v2/models/nope/infer", json=ADD_BODY)
        assert r.status_code == 404 and "no model named 'nope'; served models: add, cast, multi, types" in r.json()["error"]
        r = await client.get("/v2/models/add/versions/9")
        assert r.status_code == 404 and "served versions: 1, 2" in r.json()["error"]
        r = await client.get("/v2/nothing/here")
        assert r.status_code == 404 and "no endpoint GET /v2/nothing/here" in r.json()["error"]
        r = await client.get("/v2/models/add/infer")
        assert r.status_code == 405 and r.json()["error"]
        r = await client.post("/v2/models/add/infer", content=b"x" * 300_000)
        assert r.status_code == 413 and "at most 262144" in r.json()["error"]
        bomb = gzip.compress(b" " * 5_000_000)
        r = await client.post("/v2/models/add/infer", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413 and "decompresses past" in r.json()["error"]
        r = await client.post("/v2/models/add/infer", content=b"abc", headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400 and "not valid gzip data" in r.json()["error"]
        r = await client.post("/v2/models/add/infer", content=b"abc", headers={"Content-Encoding": "br"})
        assert r.status_code == 415 and "use gzip, deflate or identity" in r.json()["error"]
        r = await client.post("/v2/models/add/infer", json=ADD_BODY, headers={"Inference-Timeout-Ms": "-3"})
        assert r.status_code == 400 and "must be > 0 milliseconds" in r.json()["error"]
        assert server.metrics.unknown_model.get() == 2


async def test_metrics_count_requests_failures_and_stages() -> None:
    async with asgi_client() as (client, _):
        for _ in range(3):
            assert (await client.post("/v2/models/add/infer", json=ADD_BODY)).status_code == 200
        await client.post("/v2/models/add/infer", content=b"{")
        text = (await client.get("/metrics")).text
    assert 'aioplug_serve_requests_total{model="add",version="2"} 4' in text
    assert 'aioplug_serve_request_success_total{model="add",version="2"} 3' in text
    assert 'aioplug_serve_request_failures_total{model="add",version="2",reason="bad_request"} 1' in text
    assert 'aioplug_serve_queue_limit{model="add",version="2"} 8' in text
    for stage in ("queue", "preprocess", "compute", "postprocess"):
        assert f'aioplug_serve_stage_duration_seconds_count{{model="add",version="2",stage="{stage}"}} 3' in text
    assert 'aioplug_serve_request_duration_seconds_bucket{model="add",version="2",le="+Inf"} 3' in text


async def test_a_symbolic_dimension_must_agree_across_inputs() -> None:
    from onnx import TensorProto, helper

    from aioplug.serve import ModelSpec
    from aioplug.testing.models import OPSET

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"])], "pair",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in "xy"],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    body = {"inputs": [
        {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [0] * 6},
        {"name": "y", "shape": [3, 3], "datatype": "FP32", "data": [0] * 9},
    ]}
    async with asgi_client([ModelSpec("pair", model)]) as (client, _):
        response = await client.post("/v2/models/pair/infer", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == (
        "input 'y': axis 0 is 'N' in the model, which input 'x' (axis 0) sets to 2; got 3"
    )


def _mutations(rng: np.random.Generator, value: Any, depth: int = 0) -> Any:
    """``value`` with one random node replaced, deleted or duplicated."""
    junk = [None, -1, 0, 2**70, 1e308, "x", "", True, [], {}, [[1], [2, 3]], {"name": 1}, "FP32", [1.5]]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = list(value)[int(rng.integers(len(value)))]
        out = dict(value)
        choice = rng.random()
        if choice < 0.2:
            del out[key]
        elif choice < 0.3:
            out[key + "_x"] = out[key]
        else:
            out[key] = _mutations(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        out = list(value)
        i = int(rng.integers(len(out)))
        if rng.random() < 0.2:
            out.append(out[i])
        else:
            out[i] = _mutations(rng, out[i], depth + 1)
        return out
    return junk[int(rng.integers(len(junk)))]


async def test_mutated_requests_never_get_a_5xx() -> None:
    rng = np.random.default_rng(2024)
    arrays = {dt: sample(dt, (2, 2), rng) for dt in ONNX_TYPES}
    base = {"id": "f", "parameters": {"binary_data_output": True},
            "inputs": [json_input(f"in_{dt}", a, dt) for dt, a in arrays.items()],
            "outputs": [{"name": "out_FP32", "parameters": {"binary_data": False}}]}
    binary, length = _binary_body([(f"in_{dt}", a, dt) for dt, a in arrays.items()])
    statuses: list[int] = []
    async with asgi_client() as (client, _):
        for i in range(300):
            if i % 3 == 2:  # corrupt the binary framing or bytes
                data = bytearray(binary)
                for _ in range(int(rng.integers(1, 4))):
                    data[int(rng.integers(len(data)))] = int(rng.integers(256))
                cut = len(data) if rng.random() < 0.5 else int(rng.integers(len(data)))
                header = str(length + int(rng.integers(-3, 4)))
                response = await client.post("/v2/models/types/infer", content=bytes(data[:cut]),
                                             headers={"Inference-Header-Content-Length": header})
            else:
                response = await client.post("/v2/models/types/infer", content=json.dumps(_mutations(rng, base)))
            statuses.append(response.status_code)
            assert response.status_code < 500, response.text
            if response.status_code != 200:
                assert response.json()["error"]
    assert statuses.count(400) > 150 and statuses.count(200) > 10
