"""Per-request overhead of ``await request.infer()`` on a trivial model, against peers.

The model is a single Add of two 1x4 float32 tensors, so nearly all the time measured is the
runtime's own: validation, the pipeline, the hops between loop and threads. Each line is the
median of several rounds of N sequential calls; peers are measured in the same run.

    python benchmarks/request_overhead.py [-n 20000] [--device CPU]

Peers (optional, `pip install -e ".[bench]"`): ONNX Runtime (`run`, and `run_async` awaited
through the event loop), OpenVINO (`InferRequest.infer`), and `loop.run_in_executor` around
ONNX Runtime's `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

import aioplug
from aioplug._table import format_table
from aioplug.testing.models import add_model

ROUNDS = 5


def _progress(text: str) -> None:
    sys.stderr.write(f"\r\033[K{text}")
    sys.stderr.flush()


async def _time_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(min(n, 1000)):
        await fn()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        rounds.append((time.perf_counter() - start) / n)
    return statistics.median(rounds)


def _time_sync(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n)
    return statistics.median(rounds)


async def _measure_aioplug(device: str, n: int, loop_name: str) -> list[tuple[str, float]]:
    a = np.ones((1, 4), np.float32)
    b = np.full((1, 4), 2.0, np.float32)
    inputs = {"a": a, "b": b}
    rows = []
    async with aioplug.Core() as core:
        for mode in ("LOOP", "STREAMS"):
            compiled = await core.compile_model(add_model(), device, {"COMPUTE_EXECUTOR": mode})
            request = compiled.create_infer_request()
            _progress(f"aioplug {device} {mode} on {loop_name}")
            per = await _time_async(lambda: request.infer(inputs), n)
            rows.append((f"aioplug await request.infer() [{device}, compute on {mode.lower()}, {loop_name}]", per))
            per = await _time_async(lambda: compiled.infer(inputs), n)
            rows.append((f"aioplug await compiled.infer() [{device}, compute on {mode.lower()}, {loop_name}]", per))
            if mode == "LOOP":
                sync = compiled.create_sync_infer_request()
                sync.set_inputs(inputs)
                sync.preprocess()
                feed, token = sync._feed, sync.token
                kernel = _time_sync(lambda: sync._infer(feed, token), n)
                rows.append((f"  of which the {device} kernels alone", kernel))
    return rows


async def _measure_peers(n: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    a = np.ones((1, 4), np.float32)
    b = np.full((1, 4), 2.0, np.float32)
    proto = add_model().SerializeToString()
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        sess = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
        feed = {"a": a, "b": b}
        _progress("onnxruntime run")
        rows.append(("onnxruntime session.run (sync)", _time_sync(lambda: sess.run(None, feed), n)))
        loop = asyncio.get_running_loop()
        # run_async needs an intra-op pool of its own (one thread means none in ORT)
        options2 = ort.SessionOptions()
        options2.intra_op_num_threads = 2
        async_sess = ort.InferenceSession(proto, options2, providers=["CPUExecutionProvider"])

        def run_async() -> asyncio.Future[Any]:
            fut = loop.create_future()

            def done(result: Any, user: Any, err: str) -> None:
                loop.call_soon_threadsafe(fut.set_result, result)

            async_sess.run_async(None, feed, done, None)
            return fut

        _progress("onnxruntime run_async")
        rows.append(("onnxruntime run_async awaited on the loop", await _time_async(run_async, n)))
        _progress("run_in_executor")
        rows.append((
            "await loop.run_in_executor(None, session.run)",
            await _time_async(lambda: loop.run_in_executor(None, sess.run, None, feed), n),
        ))
    try:
        import openvino as ov
    except ImportError:
        ov = None
    if ov is not None:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(proto, b""), "CPU", {"INFERENCE_NUM_THREADS": 1})
        request = compiled.create_infer_request()
        inputs = [a, b]
        _progress("openvino infer")
        rows.append(("openvino InferRequest.infer (sync)", _time_sync(lambda: request.infer(inputs), n)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=20000, help="calls per round")
    parser.add_argument("--device", default="CPU")
    args = parser.parse_args(argv)
    rows = asyncio.run(_measure_aioplug(args.device, args.n, "asyncio"))
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None:
        rows += uvloop.run(_measure_aioplug(args.device, args.n, "uvloop"))
    peers = asyncio.run(_measure_peers(args.n))
    _progress("")
    baseline = next((us for name, us in peers if name.startswith("openvino")), None)
    table = []
    for name, per in rows + peers:
        ratio = f"{per / baseline:.2f}x" if baseline else "-"
        table.append([name, f"{per * 1e6:.1f}", ratio])
    print(format_table(["per call (lower is faster)", "us", "ratio to OpenVINO infer"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
