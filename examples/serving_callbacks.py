"""A callback-style serving pipeline: ``AsyncInferQueue`` callbacks feed HTTP responses.

Some code is written around callbacks rather than ``await`` (ported OpenVINO code, or a
pipeline that post-processes results as they complete). Here one ``AsyncInferQueue`` is
shared by every HTTP request of a Starlette app. The endpoint starts one inference per item
of its batch with ``start_async(inputs, userdata)``; the queue's callback copies the result
out of the request and resolves that item's future; the endpoint awaits the futures and
answers. ``start_async`` waits for an idle request, so a flood of items is throttled
instead of growing a backlog.

The script serves the app with uvicorn on a free loopback port, posts 8 concurrent batches
of 16 rows with httpx, checks every answer against a direct ``compiled.infer``, and stops.

    pip install -e ".[serve]" httpx
    python examples/serving_callbacks.py
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

import aioplug
from aioplug.testing.models import mlp_model

try:
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ImportError as exc:
    print(f"skipped: {exc.name} is not installed (pip install -e '.[serve]' httpx)")
    sys.exit(0)

FEATURES = 32


def on_done(request: aioplug.AsyncInferRequest, userdata: tuple[asyncio.Future[np.ndarray], int]) -> None:
    """The queue's callback: hand a copy of the result to whoever waits for it."""
    future, _row = userdata
    if not future.done():  # the HTTP request may have been cancelled meanwhile
        future.set_result(np.array(request.results["probs"][0]))  # copy: the request is reused


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with aioplug.Core() as core:
        compiled = await core.compile_model(mlp_model((FEATURES, 64, 10)),
                                            properties={"PERFORMANCE_HINT": "THROUGHPUT"})
        queue = aioplug.AsyncInferQueue(compiled)
        queue.set_callback(on_done)
        app.state.compiled, app.state.queue = compiled, queue
        yield
        await queue.wait_all()  # let the started inferences finish before the Core closes


async def classify_batch(request: Request) -> JSONResponse:
    rows = np.asarray((await request.json())["rows"], dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != FEATURES:
        return JSONResponse({"error": f"rows must be N x {FEATURES}, got {list(rows.shape)}"}, 400)
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[np.ndarray]] = []
    queue: aioplug.AsyncInferQueue = request.app.state.queue
    for i, row in enumerate(rows):
        future: asyncio.Future[np.ndarray] = loop.create_future()
        futures.append(future)
        await queue.start_async({"x": row.reshape(1, -1)}, userdata=(future, i))  # waits for an idle request
    try:
        probs = await asyncio.wait_for(asyncio.gather(*futures), timeout=10)
    except TimeoutError:
        queue.is_ready()  # re-raises an inference error collected by the queue, if any
        raise
    return JSONResponse({"labels": [int(np.argmax(p)) for p in probs], "probs": [p.tolist() for p in probs]})


app = Starlette(routes=[Route("/classify_batch", classify_batch, methods=["POST"])], lifespan=lifespan)


async def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((16, FEATURES)).astype(np.float32) for _ in range(8)]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/classify_batch", json={"rows": b.tolist()}) for b in batches)
        )
    compiled: Any = app.state.compiled
    for batch, response in zip(batches, responses):
        answer = response.json()
        for row, probs in zip(batch, answer["probs"]):
            direct = await compiled.infer({"x": row.reshape(1, -1)})
            np.testing.assert_allclose(probs, direct["probs"][0], rtol=1e-6)
    print(f"{len(batches)} concurrent batches of 16 rows went through one AsyncInferQueue of "
          f"{len(app.state.queue)} requests; callbacks resolved {16 * len(batches)} futures")
    print("first labels:", responses[0].json()["labels"][:8])
    print("every answer matches a direct compiled.infer: yes")
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
