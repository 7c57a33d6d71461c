"""Serving throughput and latency: ``aioplug serve`` against FastAPI + ONNX Runtime.

Both servers run as separate processes on loopback, under uvicorn, and serve the same small
model through the same KServe v2 JSON request. The baseline is the minimal FastAPI app most
people write: parse the JSON, ``await loop.run_in_executor(None, session.run, ...)``,
answer JSON. The load is a fixed number of requests from N concurrent aiohttp clients
(httpx's connection pool slows down with many connections, so it would measure itself);
each server gets the same warm-up first. Prints one table: requests/s, p50 and p99.

    pip install -e ".[serve,dev]"        # onnxruntime, fastapi, aiohttp
    python benchmarks/serving_load.py [-n 4000] [-c 32] [--model mlp|add] [--binary]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import onnx

from aioplug._table import format_table
from aioplug.testing.models import add_model, mlp_model

MODELS = {
    "mlp": (lambda: mlp_model((784, 512, 512, 10)), {"x": (1, 784)}),
    "add": (lambda: add_model(), {"a": (1, 4), "b": (1, 4)}),
}


# -- the baseline server, run in its own process ---------------------------------------------
def run_fastapi_baseline(model_path: str) -> None:
    """FastAPI + ONNX Runtime through run_in_executor, on a free port; prints its URL."""
    import onnxruntime as ort
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    dtypes = {"FP32": np.float32, "INT64": np.int64}
    app = FastAPI()

    async def infer(request: Any) -> JSONResponse:
        name = request.path_params["name"]
        body = await request.json()
        feed = {t["name"]: np.asarray(t["data"], dtypes[t["datatype"]]).reshape(t["shape"])
                for t in body["inputs"]}
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(None, session.run, None, feed)
        return JSONResponse({"model_name": name, "outputs": [
            {"name": meta.name, "datatype": "FP32", "shape": list(out.shape), "data": out.ravel().tolist()}
            for meta, out in zip(session.get_outputs(), outputs)
        ]})

    app.router.add_route("/v2/models/{name}/infer", infer, methods=["POST"])  # plain request, no pydantic
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await task

    try:
        import uvloop
    except ImportError:
        uvloop = None
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT after uvicorn's graceful shutdown
        uvloop.run(serve()) if uvloop is not None else asyncio.run(serve())


# -- the load ------------------------------------------------------------------------------
def _start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"server did not start: {' '.join(command)}")
    url = next(word for word in line.split() if word.startswith("http://"))
    return process, url


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _bodies(inputs: dict[str, tuple[int, ...]], count: int, binary: bool) -> list[tuple[bytes, dict[str, str]]]:
    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(count):
        arrays = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in inputs.items()}
        if not binary:
            request = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": "FP32", "data": a.ravel().tolist()}
                                  for n, a in arrays.items()]}
            bodies.append((json.dumps(request).encode(), {"Content-Type": "application/json"}))
            continue
        header = json.dumps({"inputs": [
            {"name": n, "shape": list(a.shape), "datatype": "FP32", "parameters": {"binary_data_size": a.nbytes}}
            for n, a in arrays.items()], "parameters": {"binary_data_output": True}}).encode()
        payload = b"".join(a.tobytes() for a in arrays.values())
        bodies.append((header + payload, {"Inference-Header-Content-Length": str(len(header))}))
    return bodies


async def _load(url: str, bodies: list[tuple[bytes, dict[str, str]]], total: int, clients: int) -> tuple[float, list[float], int]:
    import aiohttp

    latencies: list[float] = []
    failures = 0
    target = f"{url}/v2/models/model/infer"
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal failures
            for i in counter:
                body, headers = bodies[i % len(bodies)]
                start = time.perf_counter()
                async with session.post(target, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, failures


def _measure(name: str, url: str, bodies: list[tuple[bytes, dict[str, str]]], n: int, clients: int) -> list[Any]:
    asyncio.run(_load(url, bodies, min(n // 4, 1000), clients))  # warm-up
    elapsed, latencies, failures = asyncio.run(_load(url, bodies, n, clients))
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return [name, f"{n / elapsed:.0f}", f"{q[49] * 1e3:.2f}", f"{q[98] * 1e3:.2f}", failures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=4000, help="requests per server (default 4000)")
    parser.add_argument("-c", "--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--binary", action="store_true", help="aioplug gets binary tensors (extra row)")
    parser.add_argument("--fastapi-server", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fastapi_server:
        run_fastapi_baseline(args.fastapi_server)
        return 0
    build, inputs = MODELS[args.model]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.onnx"
        onnx.save(build(), path)
        json_bodies = _bodies(inputs, 64, binary=False)
        servers = [
            ("aioplug serve (JSON)", [sys.executable, "-m", "aioplug.serve", str(path), "--port", "0",
                                      "--log-level", "warning", "--max-queued-requests", str(4 * args.clients)],
             json_bodies),
            ("FastAPI + ORT run_in_executor (JSON)", [sys.executable, __file__, "--fastapi-server", str(path)],
             json_bodies),
        ]
        if args.binary:
            servers.insert(1, ("aioplug serve (binary tensors)", servers[0][1], _bodies(inputs, 64, binary=True)))
        for name, command, bodies in servers:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            process, url = _start(command)
            try:
                rows.append(_measure(name, url.replace("/model", ""), bodies, args.n, args.clients))
            finally:
                _stop(process)
    print(f"model {args.model!r}, {args.n} requests from {args.clients} concurrent aiohttp clients, "
          f"loopback, {os.cpu_count()} CPUs")
    print(format_table(["server", "req/s", "p50 ms", "p99 ms", "failed"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
