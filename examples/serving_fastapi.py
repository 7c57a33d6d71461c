"""Serving a model from your own FastAPI app: the endpoint awaits ``compiled.infer``.

The Core is opened, and the model compiled, in the app's lifespan; every request then
borrows a pooled inference request with ``await compiled.infer(...)``, so the event loop
never blocks and concurrent requests overlap. Runtime errors become HTTP answers: a bad
input is 400, a full queue 503 (backpressure), a missed deadline 504.

The script starts the app with uvicorn on a free loopback port, sends it 32 concurrent
requests with httpx, checks each answer against a direct ``compiled.infer``, and stops.

    pip install -e ".[serve]" fastapi httpx
    python examples/serving_fastapi.py
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
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel
except ImportError as exc:  # the example needs the serve extra and FastAPI
    print(f"skipped: {exc.name} is not installed (pip install -e '.[serve]' fastapi httpx)")
    sys.exit(0)

FEATURES = 64


class Query(BaseModel):
    x: list[float]
    """One row of FEATURES numbers."""


class Answer(BaseModel):
    label: int
    probs: list[float]


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with aioplug.Core() as core:  # closed (and its requests stopped) at shutdown
        app.state.compiled = await core.compile_model(
            mlp_model((FEATURES, 128, 10)), properties={"PERFORMANCE_HINT": "THROUGHPUT",
                                                        "MAX_QUEUED_REQUESTS": 256}
        )
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/classify")
async def classify(query: Query) -> Answer:
    x = np.asarray(query.x, dtype=np.float32).reshape(1, -1)
    try:
        out = await app.state.compiled.infer({"x": x}, timeout=2.0)
    except aioplug.InputError as exc:
        raise HTTPException(400, str(exc)) from exc
    except aioplug.QueueFull as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    except TimeoutError as exc:
        raise HTTPException(504, "the inference missed its 2 s deadline") from exc
    probs = out["probs"][0]
    return Answer(label=int(np.argmax(probs)), probs=probs.tolist())


async def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, held until uvicorn takes it
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if serving.done():
            serving.result()  # startup failed: raise why
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((32, FEATURES)).astype(np.float32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        responses = await asyncio.gather(*(client.post("/classify", json={"x": r.tolist()}) for r in rows))
        bad = await client.post("/classify", json={"x": [1.0, 2.0]})
    compiled: Any = app.state.compiled
    for row, response in zip(rows, responses):
        direct = await compiled.infer({"x": row.reshape(1, -1)})
        answer = response.json()
        assert answer["label"] == int(np.argmax(direct["probs"][0]))
        np.testing.assert_allclose(answer["probs"], direct["probs"][0], rtol=1e-6)
    labels = [r.json()["label"] for r in responses]
    print(f"FastAPI on http://127.0.0.1:{port}: 32 concurrent requests answered, labels {labels[:8]}...")
    print(f"a malformed input gets {bad.status_code}: {bad.json()['detail'][:70]}...")
    print("every answer matches a direct compiled.infer: yes")
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
