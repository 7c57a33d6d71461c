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

__all__ = [
    "BenchmarkResult", "Budget", "blas_info", "latency_ratio", "make_inputs", "paired_ratios",
    "run_benchmark",
]


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
    rounds: tuple[tuple[float, ...], ...] = ()
    """The latencies of each interleaved round, in round order (``latencies`` joins them)."""

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


def paired_ratios(numerator: BenchmarkResult, denominator: BenchmarkResult) -> list[float]:
    """``numerator``'s median latency over ``denominator``'s in each round both ran, so each
    ratio compares the two at the same state of the machine (on a shared machine the speed
    drifts between rounds); empty without rounds in common."""
    return [
        statistics.median(a) / statistics.median(b)
        for a, b in zip(numerator.rounds, denominator.rounds)
        if a and b
    ]


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


def split_budget(budget: Budget, rounds: int) -> list[Budget]:
    """The budget of each of ``rounds`` slices: the inferences shared out (the first slices
    take the remainder), or the seconds divided evenly."""
    if budget.count is not None:
        base, extra = divmod(budget.count, rounds)
        return [Budget(count=base + (1 if i < extra else 0), warmup=0) for i in range(rounds)]
    seconds = budget.seconds or 10.0
    return [Budget(seconds=seconds / rounds, warmup=0)] * rounds


Slice = tuple[list[float], float]
"""The latencies (seconds) of one slice of a run, and its wall time."""


class _AioplugRuntime:
    """A compiled model and its request pool, measured a slice at a time."""

    def __init__(self, name: str, compiled: Any, pool: list[Any], inputs: Mapping[str, np.ndarray]) -> None:
        self.name = name
        self.requests = len(pool)
        self._compiled = compiled
        self._pool = pool
        self._inputs = inputs

    async def run_slice(self, budget: Budget, label: str) -> Slice:
        latencies: list[float] = []
        progress = _Progress(label, budget)
        start = time.perf_counter()

        async def loop(request: Any) -> None:
            while not _done(budget, len(latencies), start):
                t = time.perf_counter()
                await request.infer(self._inputs)
                latencies.append(time.perf_counter() - t)
                progress(len(latencies))

        await asyncio.gather(*(loop(r) for r in self._pool))
        progress(len(latencies), final=True)
        return latencies, time.perf_counter() - start

    async def close(self) -> None:
        await self._compiled.aclose()


class _ThreadRuntime:
    """A peer's sessions, one per concurrent request, each looping on its own thread."""

    def __init__(self, name: str, runners: list[Callable[[], Any]], warmup: int) -> None:
        self.name = name
        self.requests = len(runners)
        self._runners = runners
        for run in runners:
            for _ in range(warmup):
                run()

    async def run_slice(self, budget: Budget, label: str) -> Slice:
        latencies: list[float] = []
        lock = threading.Lock()
        progress = _Progress(label, budget)
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

        with ThreadPoolExecutor(self.requests) as pool:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: list(pool.map(loop, self._runners))
            )
        progress(len(latencies), final=True)
        return latencies, time.perf_counter() - start

    async def close(self) -> None:
        self._runners = []


def _threads_per_request(hint: str, requests: int, threads: int) -> int:
    cores = os.cpu_count() or 1
    total = threads or cores
    return total if hint == "LATENCY" else max(1, total // max(1, requests))


def prepare_onnxruntime(
    model: Model, inputs: Mapping[str, np.ndarray], hint: str, requests: int, threads: int,
    warmup: int,
) -> _ThreadRuntime:
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

    return _ThreadRuntime("onnxruntime", [make() for _ in range(requests)], warmup)


def prepare_openvino(
    model: Model, inputs: Mapping[str, np.ndarray], hint: str, requests: int, threads: int,
    warmup: int,
) -> _ThreadRuntime:
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

    return _ThreadRuntime("openvino", [make() for _ in range(requests)], warmup)


def prepare_reference(
    model: Model, inputs: Mapping[str, np.ndarray], hint: str, requests: int, threads: int,
    warmup: int,
) -> _ThreadRuntime:
    """onnx's ``ReferenceEvaluator``: the yardstick the CPU device's speed-up is quoted
    against (one request, no warm-up: a run can take seconds)."""
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(model.proto)
    feed = dict(inputs)
    return _ThreadRuntime("reference", [lambda: session.run(None, feed)], 0)


PEERS: dict[str, Callable[..., _ThreadRuntime]] = {
    "onnxruntime": prepare_onnxruntime, "openvino": prepare_openvino,
    "reference": prepare_reference,
}


async def _prepare_aioplug(
    core: Core, model: Model, device: str, config: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray], requests: int | None, warmup: int,
) -> _AioplugRuntime:
    compiled = await core.compile_model(model, device, dict(config))
    n = requests or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    pool = [compiled.create_infer_request() for _ in range(n)]
    for request in pool:
        for _ in range(warmup):
            await request.infer(inputs)
    return _AioplugRuntime(f"aioplug {device}", compiled, pool, inputs)


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
    rounds: int = 1,
) -> list[BenchmarkResult]:
    """Benchmarks the model on ``device`` and on the ``compare`` peers; returns every result.

    With several runtimes and ``rounds`` > 1, the budget is split into that many rounds, each
    giving every runtime (in a rotating order) one slice: a machine whose speed drifts then
    slows them all alike, and the ratios hold."""
    hint = hint.upper()
    runtimes: list[_AioplugRuntime | _ThreadRuntime] = []
    async with Core() as core:
        model = core.read_model(model_source)
        inputs = make_inputs(model, _parse_shapes(shapes))
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if requests and hint != "LATENCY":
            config["NUM_STREAMS"] = requests
        device = device or core.default_device
        try:
            runtimes.append(
                await _prepare_aioplug(core, model, device, config, inputs, requests, budget.warmup)
            )
            n = runtimes[0].requests
            for peer in compare:
                prepare = PEERS.get(peer.strip().lower())
                if prepare is None:
                    raise InputError(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
                try:
                    runtimes.append(prepare(model, inputs, hint, n, threads, budget.warmup))
                except ImportError as exc:
                    sys.stderr.write(f"skipping {peer}: {exc} (pip install 'aioplug[bench]')\n")
            rounds = max(1, rounds if len(runtimes) > 1 else 1)
            per_round: dict[str, list[tuple[float, ...]]] = {r.name: [] for r in runtimes}
            walls: dict[str, float] = {r.name: 0.0 for r in runtimes}
            for index, part in enumerate(split_budget(budget, rounds)):
                shift = index % len(runtimes)
                for runtime in runtimes[shift:] + runtimes[:shift]:
                    label = runtime.name if rounds == 1 else f"{runtime.name} [{index + 1}/{rounds}]"
                    latencies, wall = await runtime.run_slice(part, label)
                    per_round[runtime.name].append(tuple(latencies))
                    walls[runtime.name] += wall
        finally:
            for runtime in runtimes:
                await runtime.close()
    return [
        BenchmarkResult(
            r.name, tuple(t for part in per_round[r.name] for t in part), walls[r.name],
            r.requests, tuple(per_round[r.name]),
        )
        for r in runtimes
    ]


def latency_ratio(result: BenchmarkResult, base: BenchmarkResult) -> float:
    """``result``'s latency over ``base``'s: the median of the rounds' ratios when both ran
    in interleaved rounds (see :func:`paired_ratios`), else the ratio of the medians."""
    paired = paired_ratios(result, base)
    if len(paired) > 1:
        return statistics.median(paired)
    return result.median / base.median


def format_results(results: Sequence[BenchmarkResult]) -> str:
    """The comparison table: latency percentiles in ms, throughput, ratios to the first row
    (latency: :func:`latency_ratio`)."""
    base = results[0]
    rows = []
    for r in results:
        rows.append([
            r.name, r.requests, r.count, f"{r.median * 1e3:.3f}", f"{r.percentile(90) * 1e3:.3f}",
            f"{r.percentile(99) * 1e3:.3f}", f"{r.throughput:.1f}",
            f"{latency_ratio(r, base):.2f}x", f"{r.throughput / base.throughput:.2f}x",
        ])
    headers = ["runtime", "requests", "count", "median ms", "p90 ms", "p99 ms", "infer/s",
               "latency vs first", "throughput vs first"]
    return format_table(headers, rows)
