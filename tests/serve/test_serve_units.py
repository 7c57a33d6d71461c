"""Units of ``aioplug serve`` that need no server: datatypes, metrics text, settings, repository."""

from __future__ import annotations

import json
import math
import pathlib
import struct

import numpy as np
import onnx
import pytest

from aioplug import AioplugError
from aioplug.serve import (
    DATATYPES,
    ModelSpec,
    ProtocolError,
    RepositoryError,
    ServeError,
    ServerSettings,
    datatype_of,
    load_repository,
    numpy_dtype,
)
from aioplug.serve.body import choose_encoding
from aioplug.serve.datatypes import deserialize_bytes, serialize_bytes
from aioplug.serve.metrics import Registry
from aioplug.testing.models import add_model


def test_every_datatype_maps_to_numpy_and_back() -> None:
    for name, dtype in DATATYPES.items():
        assert numpy_dtype(name) == dtype
        assert datatype_of(dtype) == name
    assert datatype_of(np.dtype(">f4")) == "FP32"
    assert datatype_of(np.dtype("<U3")) == "BYTES" and datatype_of(np.dtype("S2")) == "BYTES"
    with pytest.raises(ProtocolError, match="has no KServe v2 datatype"):
        datatype_of(np.dtype(np.complex64))
    with pytest.raises(ProtocolError, match="unknown datatype 'INT128'; use one of BOOL, UINT8"):
        numpy_dtype("INT128")


def test_bytes_tensors_are_length_prefixed() -> None:
    array = np.array([b"ab", b"", "\u00e9"], dtype=object)
    data = serialize_bytes(array)
    assert data == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 2) + "\u00e9".encode()
    back = deserialize_bytes(data, 3, "s")
    assert back.tolist() == [b"ab", b"", "\u00e9".encode()]
    with pytest.raises(ProtocolError, match="ends after 3 of 4 elements"):
        deserialize_bytes(data, 4, "s")
    with pytest.raises(ProtocolError, match="bytes are left after the 2 BYTES elements"):
        deserialize_bytes(data, 2, "s")
    assert deserialize_bytes(b"", 0, "s").shape == (0,)


def test_the_error_tree_maps_to_status_codes() -> None:
    from aioplug.errors import InputError, QueueFull
    from aioplug.serve import ClientDisconnected, DeadlineExceeded, ModelNotFound, PayloadTooLarge, ServerBusy
    from aioplug.serve.status import reason_of, status_of

    assert issubclass(ServeError, AioplugError)
    cases = [(ProtocolError("x"), 400, "bad_request"), (ModelNotFound("x"), 404, "not_found"),
             (PayloadTooLarge("x"), 413, "too_large"), (ServerBusy("x"), 503, "queue_full"),
             (DeadlineExceeded("x"), 504, "timeout"), (ClientDisconnected("x"), 499, "cancelled"),
             (InputError("x"), 400, "bad_request"), (QueueFull("x"), 503, "queue_full"),
             (RuntimeError("x"), 500, "error")]
    for exc, status, reason in cases:
        assert (status_of(exc), reason_of(exc)) == (status, reason), exc


def test_accept_encoding_negotiation() -> None:
    assert choose_encoding(None) is None
    assert choose_encoding("gzip, deflate") == "gzip"
    assert choose_encoding("deflate;q=0.5, gzip;q=0") == "deflate"
    assert choose_encoding("br, identity") is None


def test_metrics_render_in_the_prometheus_text_format() -> None:
    registry = Registry()
    counter = registry.counter("requests_total", "Requests.", ["model"])
    counter.inc('a"b\\c\nd')
    counter.inc("m", amount=2)
    histogram = registry.histogram("latency_seconds", "Latency.", ["model"], buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        histogram.observe(value, "m")
    registry.gauge("depth", "Depth.", ["model"], lambda: [(("m",), 3.0)])
    registry.counter("plain_total", "No labels.")
    text = registry.render()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert "# TYPE requests_total counter" in lines
    assert 'requests_total{model="a\\"b\\\\c\\nd"} 1' in lines
    assert 'requests_total{model="m"} 2' in lines
    assert [line for line in lines if line.startswith("latency_seconds")] == [
        'latency_seconds_bucket{model="m",le="0.1"} 2',
        'latency_seconds_bucket{model="m",le="1"} 3',
        'latency_seconds_bucket{model="m",le="+Inf"} 4',
        'latency_seconds_sum{model="m"} 7.65',
        'latency_seconds_count{model="m"} 4',
    ]
    assert 'depth{model="m"} 3' in lines and "plain_total 0" in lines
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc("a", "b")
    assert not math.isnan(histogram.series[("m",)].total)


def test_settings_validate_and_read_json(tmp_path: pathlib.Path) -> None:
    with pytest.raises(RepositoryError, match="max_body_bytes must be a positive integer"):
        ServerSettings(max_body_bytes=0)
    with pytest.raises(RepositoryError, match="port must be an integer in 0..65535"):
        ServerSettings(port=70000)
    with pytest.raises(RepositoryError, match="performance_hint must be LATENCY, THROUGHPUT"):
        ServerSettings(performance_hint="FAST")
    path = tmp_path / "server.json"
    path.write_text(json.dumps({"max_queued_requests": 5, "device": "TEMPLATE"}))
    settings = ServerSettings.from_file(path)
    assert settings.max_queued_requests == 5 and settings.device == "TEMPLATE"
    assert settings.replace(port=None, host="0.0.0.0").host == "0.0.0.0"
    path.write_text(json.dumps({"max_queue": 5}))
    with pytest.raises(RepositoryError, match="unknown server setting.s. max_queue; known:"):
        ServerSettings.from_file(path)
    path.write_text("{")
    with pytest.raises(RepositoryError, match="is not valid JSON"):
        ServerSettings.from_file(path)


def _repository(root: pathlib.Path) -> pathlib.Path:
    for name, versions in (("add", (1, 3)), ("other", (2,))):
        for version in versions:
            (root / name / str(version)).mkdir(parents=True)
            onnx.save(add_model(), root / name / str(version) / "model.onnx")
    (root / "add" / "notes").mkdir()
    (root / "add" / "config.json").write_text(json.dumps(
        {"device": "TEMPLATE", "properties": {"PERFORMANCE_HINT": "THROUGHPUT"}}
    ))
    return root


def test_a_repository_folder_serves_every_version(tmp_path: pathlib.Path) -> None:
    specs = load_repository(_repository(tmp_path))
    assert [(s.name, s.version, s.device) for s in specs] == [
        ("add", 1, "TEMPLATE"), ("add", 3, "TEMPLATE"), ("other", 2, None)
    ]
    settings = ServerSettings(device="CPU", properties={"PERF_COUNT": True}, max_queued_requests=7,
                              models={"other": {"properties": {"NUM_STREAMS": 2}}})
    device, props = specs[2].resolved(settings)
    assert device == "CPU" and props == {
        "PERF_COUNT": True, "NUM_STREAMS": 2, "MAX_QUEUED_REQUESTS": 7, "PERFORMANCE_HINT": "THROUGHPUT"
    }
    device, props = specs[0].resolved(settings)
    assert device == "TEMPLATE" and props["PERFORMANCE_HINT"] == "THROUGHPUT"
    (tmp_path / "add" / "config.json").write_text(json.dumps({"versions": [3]}))
    assert [s.version for s in load_repository(tmp_path) if s.name == "add"] == [3]


def test_a_single_model_file_is_served_as_its_stem(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "my-model.onnx"
    onnx.save(add_model(), path)
    [spec] = load_repository(path)
    assert (spec.name, spec.version, spec.source) == ("my-model", 1, str(path))


@pytest.mark.parametrize("config, message", [
    ({"device": 3}, "'device' must be a device name"),
    ({"propertys": {}}, "unknown key.s. propertys; allowed: device, properties, versions"),
    ({"versions": [0]}, "'versions' must be a list of integers >= 1"),
    ({"versions": [9]}, r"config asks for version\(s\) \[9\]"),
])
def test_bad_repositories_are_refused_with_a_reason(
    tmp_path: pathlib.Path, config: dict[str, object], message: str
) -> None:
    _repository(tmp_path)
    (tmp_path / "add" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RepositoryError, match=message):
        load_repository(tmp_path)


def test_missing_and_empty_repositories(tmp_path: pathlib.Path) -> None:
    with pytest.raises(RepositoryError, match="does not exist"):
        load_repository(tmp_path / "nope")
    with pytest.raises(RepositoryError, match="holds no model: expected NAME/VERSION/model.onnx"):
        load_repository(tmp_path)
    with pytest.raises(RepositoryError, match="must start with a letter or digit"):
        ModelSpec("bad name", add_model())
