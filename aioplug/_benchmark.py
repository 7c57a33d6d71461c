"""``aioplug benchmark``: latency and throughput of a model on a device, and on its peers.

In the spirit of OpenVINO's benchmark_app: random inputs of the model's shapes, a warm-up,
then ``requests`` concurrent loops until ``-n`` inferences or ``-t`` seconds, with progress on
stderr. With ``--compare``, the same model and inputs run on ONNX Runtime and/or OpenVINO in
the same process, configured for the same hint and thread budget, and the table shows ratios.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._core import Core
from ._table import format_table
from .errors import InputError
from .model import Model, Port

__all__ = ["BenchmarkResult", "Budget", "blas_info", "make_inputs", "run_benchmark"]


@dataclass(frozen=True)
class Budget:
    """How long to run: ``count`` inferences, or ``seconds`` of wall time."""

    count: int | None = None
    seconds: float | None = None
    warmup: int = 3


@dataclass(frozen=True)
class BenchmarkResult:
    """Latencies (seconds) of one runtime on one model."""

    name: str
    latencies: tuple[float, ...]
    wall: float
    requests: int

    @property
    def count(self) -> int:
        """Inferences measured."""
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Inferences per second."""
        return self.count / self.wall if self.wall > 0 else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th latency percentile in seconds."""
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    @property
    def median(self) -> float:
        """Median latency in seconds."""
        return statistics.median(self.latencies) if self.latencies else float("nan")


def blas_info() -> str:
    """The BLAS numpy uses, as threadpoolctl sees it, and the OpenBLAS overrides in effect."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return "threadpoolctl not installed"
    parts = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            parts.append(
                f"{pool.get('internal_api')} {pool.get('version')} "
                f"({pool.get('architecture', '?')}, {pool.get('num_threads')} threads)"
            )
    env = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    return "; ".join(parts) + (f" [env: {', '.join(env)}]" if env else "")


def _parse_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"--shape {spec!r}: write NAME=D1,D2,... e.g. input=1,3,224,224")
    return shapes


def make_inputs(model: Model, shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every model input, using ``shapes`` for dynamic ones."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for port in model.inputs:
        shape = shapes.get(port.name) or _static(port)
        if port.dtype is None:
            raise InputError(f"input {port.name!r} is not a tensor; benchmark needs tensor inputs")
        if port.dtype.kind == "f":
            inputs[port.name] = rng.standard_normal(shape).astype(port.dtype)
        elif port.dtype.kind in "iu":
            inputs[port.name] = rng.integers(0, 2, shape).astype(port.dtype)
        else:
            inputs[port.name] = rng.integers(0, 2, shape).astype(port.dtype)
    return inputs


def _static(port: Port) -> tuple[int, ...]:
    if port.shape is None or port.is_dynamic:
        raise InputError(
            f"input {port.name!r} has {port.describe()}: give its shape with "
            f"--shape {port.name}=D1,D2,..."
        )
    return tuple(int(d) for d in port.shape)  # type: ignore[arg-type]


class _Progress:
    def __init__(self, name: str, budget: Budget) -> None:
        self._name = name
        self._budget = budget
        self._start = time.perf_counter()
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._last < 0.25:
            return
        self._last = now
        elapsed = now - self._start
        if self._budget.count:
            progress = f"{done}/{self._budget.count} inferences"
        else:
            progress = f"{done} inferences, {elapsed:.1f} of {self._budget.seconds:g} s"
        line = f"{self._name}: {progress}, {done / max(elapsed, 1e-9):.1f}/s"
        if self._tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
        elif final:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _done(budget: Budget, count: int, start: float) -> bool:
    if budget.count is not None:
        return count >= budget.count
    return time.perf_counter() - start >= (budget.seconds or 10.0)


async def _run_aioplug(
    core: Core, model: Model, device: str, config: Mapping[str, Any], inputs: Mapping[str, np.ndarray],
    requests: int | None, budget: Budget,
) -> BenchmarkResult:
    compiled = await core.compile_model(model, device, dict(config))
    n = requests or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    pool = [compiled.create_infer_request() for _ in range(n)]
    for request in pool:
        for _ in range(budget.warmup):
            await request.infer(inputs)
    latencies: list[float] = []
    progress = _Progress(f"aioplug {compiled.device_name}", budget)
    start = time.perf_counter()

    async def loop(request: Any) -> None:
        while not _done(budget, len(latencies), start):
            t = time.perf_counter()
            await request.infer(inputs)
            latencies.append(time.perf_counter() - t)
            progress(len(latencies))

    await asyncio.gather(*(loop(r) for r in pool))
    wall = time.perf_counter() - start
    progress(len(latencies), final=True)
    await compiled.aclose()
    return BenchmarkResult(f"aioplug {device}", tuple(latencies), wall, n)


def _run_threads(
    name: str, make_runner: Callable[[], Callable[[], Any]], requests: int, budget: Budget
) -> BenchmarkResult:
    runners = [make_runner() for _ in range(requests)]
    for run in runners:
        for _ in range(budget.warmup):
            run()
    latencies: list[float] = []
    lock = threading.Lock()
    progress = _Progress(name, budget)
    start = time.perf_counter()

    def loop(run: Callable[[], Any]) -> None:
        while True:
            with lock:
                if _done(budget, len(latencies), start):
                    return
            t = time.perf_counter()
            run()
            elapsed = time.perf_counter() - t
            with lock:
                latencies.append(elapsed)
            progress(len(latencies))

    with ThreadPoolExecutor(requests) as pool:
        list(pool.map(loop, runners))
    wall = time.perf_counter() - start
    progress(len(latencies), final=True)
    return BenchmarkResult(name, tuple(latencies), wall, requests)


def _threads_per_request(hint: str, requests: int, threads: int) -> int:
    cores = os.cpu_count() or 1
    total = threads or cores
    return total if hint == "LATENCY" else max(1, total // max(1, requests))


def run_onnxruntime(
    model: Model, inputs: Mapping[str, np.ndarray], hint: str, requests: int, threads: int, budget: Budget
) -> BenchmarkResult:
    """ONNX Runtime on the CPU: one session per request, intra-op threads from the hint."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads_per_request(hint, requests, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    data = model.serialize()
    feed = dict(inputs)

    def make() -> Callable[[], Any]:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, feed)

    return _run_threads("onnxruntime", make, requests, budget)


def run_openvino(
    model: Model, inputs: Mapping[str, np.ndarray], hint: str, requests: int, threads: int, budget: Budget
) -> BenchmarkResult:
    """OpenVINO on the CPU: one compiled model, one infer request per concurrent request."""
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY" if hint == "LATENCY" else "THROUGHPUT"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if hint != "LATENCY":
        config["NUM_STREAMS"] = requests
    compiled = core.compile_model(core.read_model(model.serialize(), b""), "CPU", config)
    feed = dict(inputs)

    def make() -> Callable[[], Any]:
        request = compiled.create_infer_request()
        return lambda: request.infer(feed)

    return _run_threads("openvino", make, requests, budget)


PEERS: dict[str, Callable[..., BenchmarkResult]] = {"onnxruntime": run_onnxruntime, "openvino": run_openvino}


async def run_benchmark(
    model_source: Any,
    device: str | None,
    *,
    hint: str = "LATENCY",
    budget: Budget = Budget(count=100),
    requests: int | None = None,
    shapes: Sequence[str] = (),
    compare: Sequence[str] = (),
    threads: int = 0,
) -> list[BenchmarkResult]:
    """Benchmarks the model on ``device`` and on the ``compare`` peers; returns every result."""
    hint = hint.upper()
    async with Core() as core:
        model = core.read_model(model_source)
        inputs = make_inputs(model, _parse_shapes(shapes))
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if requests and hint != "LATENCY":
            config["NUM_STREAMS"] = requests
        device = device or core.default_device
        results = [await _run_aioplug(core, model, device, config, inputs, requests, budget)]
    n = results[0].requests
    for peer in compare:
        runner = PEERS.get(peer.strip().lower())
        if runner is None:
            raise InputError(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
        try:
            results.append(runner(model, inputs, hint, n, threads, budget))
        except ImportError as exc:
            sys.stderr.write(f"skipping {peer}: {exc} (pip install 'aioplug[bench]')\n")
    return results


def format_results(results: Sequence[BenchmarkResult]) -> str:
    """The comparison table: latency percentiles in ms, throughput, ratios to the first row."""
    base = results[0]
    rows = []
    for r in results:
        rows.append([
            r.name, r.requests, r.count, f"{r.median * 1e3:.3f}", f"{r.percentile(90) * 1e3:.3f}",
            f"{r.percentile(99) * 1e3:.3f}", f"{r.throughput:.1f}",
            f"{r.median / base.median:.2f}x", f"{r.throughput / base.throughput:.2f}x",
        ])
    headers = ["runtime", "requests", "count", "median ms", "p90 ms", "p99 ms", "infer/s",
               "latency vs first", "throughput vs first"]
    return format_table(headers, rows)
