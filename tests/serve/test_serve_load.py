"""A bounded load test on loopback: many concurrent clients, a fixed number of requests.

No request may be lost or answered with another's result (each input is unique and its
output checked), 503 may come only past the queue bound, and memory must stay flat. The
clients are ``tritonclient.http.aio`` (aiohttp), which keeps up with the server.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest

from aioplug.serve import ModelSpec, ServerSettings, ServerThread
from aioplug.testing.models import add_model
from serve_support import slow_model

aio = pytest.importorskip("tritonclient.http.aio")
from tritonclient.utils import InferenceServerException  # noqa: E402

CLIENTS = 48
PER_CLIENT = 15
B = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
T = TypeVar("T")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _unique(n: int) -> np.ndarray:
    return np.array([[n, n + 0.5, -n, 2 * n]], np.float32)


async def _drive(
    url: str, start: int, clients: int, per_client: int, send: Callable[[Any, int], Awaitable[T]]
) -> list[T]:
    """``clients`` concurrent callers, each sending ``per_client`` requests in turn."""
    async with aio.InferenceServerClient(url.removeprefix("http://"), conn_limit=clients) as client:
        async def worker(w: int) -> list[T]:
            return [await send(client, start + w * per_client + i) for i in range(per_client)]

        results = await asyncio.gather(*(worker(w) for w in range(clients)))
    return [r for batch in results for r in batch]


async def _send_add(client: Any, n: int) -> None:
    a = aio.InferInput("a", [1, 4], "FP32")
    a.set_data_from_numpy(_unique(n), binary_data=bool(n % 2))  # half JSON, half binary
    b = aio.InferInput("b", [1, 4], "FP32")
    b.set_data_from_numpy(B)
    outputs = [aio.InferRequestedOutput("y", binary_data=not n % 3)]
    result = await client.infer("add", [a, b], outputs=outputs, request_id=str(n))
    assert result.get_response()["id"] == str(n), "answered with another request's result"
    np.testing.assert_array_equal(result.as_numpy("y"), _unique(n) + B)


@pytest.fixture(scope="module")
def add_server() -> Iterator[ServerThread]:
    with ServerThread([ModelSpec("add", add_model())], ServerSettings(max_queued_requests=CLIENTS)) as thread:
        yield thread


def test_concurrent_clients_each_get_their_own_answer_and_memory_stays_flat(add_server: ServerThread) -> None:
    asyncio.run(_drive(add_server.url, 0, CLIENTS, 4, _send_add))  # warm-up: connections, caches
    gc.collect()
    before = _rss_bytes()
    for round_ in (1, 2):
        asyncio.run(_drive(add_server.url, 10_000 * round_, CLIENTS, PER_CLIENT, _send_add))
    gc.collect()
    grown = _rss_bytes() - before
    metrics = add_server.inference.metrics
    assert metrics.successes.get("add", "1") == CLIENTS * (4 + 2 * PER_CLIENT)  # none lost or refused
    assert sum(metrics.failures.values.values()) == 0
    assert grown < 24 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over {2 * CLIENTS * PER_CLIENT} requests"
    stats = add_server.inference.resolve("add").compiled.pool.statistics()
    assert stats.lent == 0 and stats.waiting == 0 and add_server.inference.pending == 0


def test_overload_gets_503_only_past_the_queue_bound() -> None:
    bound = 4
    spec = ModelSpec("slow", slow_model(nodes=2, size=128), properties={"COMPUTE_EXECUTOR": "STREAMS"})
    with ServerThread([spec], ServerSettings(max_queued_requests=bound)) as thread:
        pool = thread.inference.resolve("slow").compiled.pool

        async def send(client: Any, n: int) -> tuple[str, str]:
            x = aio.InferInput("x", [1, 1], "FP32")
            x.set_data_from_numpy(np.array([[n]], np.float32))
            try:
                result = await client.infer("slow", [x], request_id=str(n))
            except InferenceServerException as exc:
                return str(exc.status()), exc.message()
            assert result.get_response()["id"] == str(n)
            assert result.as_numpy("echo")[0, 0] == n
            return "200", ""

        calm = asyncio.run(_drive(thread.url, 0, pool.size + bound, 8, send))  # within the bound
        assert Counter(status for status, _ in calm) == {"200": (pool.size + bound) * 8}
        busy = asyncio.run(_drive(thread.url, 1000, 32, 8, send))  # far past it
        statuses = Counter(status for status, _ in busy)
        assert set(statuses) == {"200", "503"}, statuses
        assert all(f"MAX_QUEUED_REQUESTS={bound}" in msg for status, msg in busy if status == "503")
        metrics = thread.inference.metrics
        assert metrics.failures.get("slow", "1", "queue_full") == statuses["503"]
        assert metrics.successes.get("slow", "1") == statuses["200"] + len(calm)
        assert pool.statistics().waiting == 0
