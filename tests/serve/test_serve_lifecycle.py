"""Deadlines, client disconnects, backpressure, shutdown and startup, over real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from aioplug.serve import ModelSpec, RepositoryError, ServerSettings, ServerThread
from serve_support import TEST_SETTINGS, asgi_client, slow_model

SLOW = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [0.5]}]}
STREAMS = {"COMPUTE_EXECUTOR": "STREAMS"}


def _pool(thread: ServerThread, model: str = "slow") -> Any:
    return thread.inference.resolve(model).compiled.pool.statistics()


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> float:
    """Polls ``condition`` until true; returns when (perf_counter)."""
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)
    return time.perf_counter()


def _post(url: str, body: Any = SLOW, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/slow/infer", json=body, headers=headers, timeout=60)


def _raw_request(url: str, body: dict[str, Any]) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode() + data
    )
    return sock


@pytest.fixture(scope="module")
def slow_server() -> Iterator[ServerThread]:
    settings = ServerSettings(max_queued_requests=2, drain_timeout_s=20, performance_hint="LATENCY")
    with ServerThread([ModelSpec("slow", slow_model(), properties=STREAMS)], settings) as thread:
        yield thread


@pytest.fixture(scope="module")
def full_run(slow_server: ServerThread) -> float:
    """Seconds one undisturbed request to ``slow`` takes on this machine now (best of 2)."""
    times = []
    for _ in range(2):
        begin = time.perf_counter()
        assert _post(slow_server.url).status_code == 200
        times.append(time.perf_counter() - begin)
    return min(times)


@pytest.fixture
def pool_executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def _failures(thread: ServerThread, reason: str) -> float:
    return thread.inference.metrics.failures.get("slow", "1", reason)


def test_a_deadline_expires_in_the_queue_and_while_running(
    slow_server: ServerThread, pool_executor: ThreadPoolExecutor, full_run: float
) -> None:
    url = slow_server.url
    holder: Future[httpx.Response] = pool_executor.submit(_post, url)
    _wait_for(lambda: _pool(slow_server).lent == 1)
    deadline_ms = max(5, int(full_run * 1e3 / 5))  # well inside the run ahead of it
    queued = _post(url, headers={"Inference-Timeout-Ms": str(deadline_ms)})
    assert queued.status_code == 504
    assert queued.json()["error"] == (
        f"the deadline of {deadline_ms} ms expired while waiting in the queue; the work was stopped"
    )
    assert holder.result().status_code == 200
    begin = time.perf_counter()
    running = _post(url, {**SLOW, "parameters": {"timeout": deadline_ms * 1000}})  # µs
    elapsed = time.perf_counter() - begin
    assert running.status_code == 504, running.text
    assert f"deadline of {deadline_ms} ms expired while running" in running.json()["error"]
    # stopped at a node boundary, not run out: the deadline is a fifth of a full run, and the
    # HTTP round trip and the boundary add a few ms (on a fast machine a full run is ~0.1 s)
    assert elapsed < 0.75 * full_run, (elapsed, full_run)
    stats = _pool(slow_server)
    assert stats.lent == 0 and stats.waiting == 0
    assert _failures(slow_server, "timeout") >= 2
    assert _post(url).json()["outputs"][1]["data"] == [0.5]  # and the model still serves


def test_a_disconnected_client_cancels_its_request(
    slow_server: ServerThread, pool_executor: ThreadPoolExecutor, full_run: float
) -> None:
    before = _failures(slow_server, "cancelled")
    # running: the pooled request is freed long before the run would have ended
    sock = _raw_request(slow_server.url, SLOW)
    _wait_for(lambda: _pool(slow_server).lent == 1)
    started = time.perf_counter()
    sock.close()
    freed = _wait_for(lambda: _pool(slow_server).lent == 0)
    assert freed - started < full_run / 2, (freed - started, full_run)
    # queued: the waiter leaves the queue while the request ahead of it still runs
    holder = pool_executor.submit(_post, slow_server.url)
    _wait_for(lambda: _pool(slow_server).lent == 1)
    sock = _raw_request(slow_server.url, SLOW)
    _wait_for(lambda: _pool(slow_server).waiting == 1)
    sock.close()
    _wait_for(lambda: _pool(slow_server).waiting == 0)
    assert not holder.done()
    assert holder.result().status_code == 200
    _wait_for(lambda: _failures(slow_server, "cancelled") == before + 2)


def test_past_the_queue_bound_the_server_answers_503_at_once(
    slow_server: ServerThread, pool_executor: ThreadPoolExecutor
) -> None:
    futures = [pool_executor.submit(_post, slow_server.url)]
    _wait_for(lambda: _pool(slow_server).lent == 1)
    futures += [pool_executor.submit(_post, slow_server.url) for _ in range(2)]
    _wait_for(lambda: _pool(slow_server).waiting == 2)
    refused = _post(slow_server.url)
    assert not futures[0].done()  # answered at once, not after waiting for a turn
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "MAX_QUEUED_REQUESTS=2" in refused.json()["error"]
    assert [f.result().status_code for f in futures] == [200, 200, 200]


def test_shutdown_drains_requests_in_flight_then_closes_the_core(pool_executor: ThreadPoolExecutor) -> None:
    thread = ServerThread([ModelSpec("slow", slow_model(), properties=STREAMS)], ServerSettings(drain_timeout_s=20))
    thread.start()
    compiled = thread.inference.resolve("slow").compiled
    in_flight = pool_executor.submit(_post, thread.url)
    _wait_for(lambda: compiled.pool.statistics().lent == 1)
    stopper = threading.Thread(target=thread.stop)
    stopper.start()
    _wait_for(lambda: thread.inference.closing)
    assert in_flight.result().status_code == 200
    assert in_flight.result().json()["outputs"][1]["data"] == [0.5]
    stopper.join(30)
    assert compiled.closed and thread.inference.core is None
    with pytest.raises(httpx.ConnectError):
        _post(thread.url)


def test_a_model_that_cannot_compile_fails_startup_with_its_reason() -> None:
    thread = ServerThread([ModelSpec("m", slow_model(), device="NOPE")])
    with pytest.raises(RepositoryError, match="cannot serve model 'm' version 1: DeviceNotFound: no device named 'NOPE'"):
        thread.start()


@pytest.mark.anyio
async def test_while_draining_ready_is_false_and_new_requests_get_503() -> None:
    async with asgi_client(settings=TEST_SETTINGS) as (client, server):
        server.begin_shutdown()
        assert (await client.get("/v2/health/ready")).status_code == 400
        assert (await client.get("/v2/health/live")).status_code == 200
        assert (await client.get("/v2/models/add/ready")).status_code == 400
        response = await client.post("/v2/models/add/infer", json={"inputs": []})
        assert response.status_code == 503 and "shutting down" in response.json()["error"]
