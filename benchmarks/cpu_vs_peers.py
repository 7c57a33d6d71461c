"""The CPU device against ONNX Runtime and OpenVINO on the repository's model builders.

Every runtime gets one intra-op thread and one request (latency mode); the table shows the
median latency of each and the ratios. The CNNs also run through
``onnx.reference.ReferenceEvaluator`` for the speed-up over it.

The runtimes are measured in interleaved rounds (each round gives every runtime, in a
rotating order, an equal slice of the time, and the reference evaluator one run), so a
machine that slows down for a while slows all of them alike and the ratios hold on a shared,
noisy machine; the medians are over all rounds.

    python benchmarks/cpu_vs_peers.py [-t SECONDS_PER_MODEL] [--rounds R] [--models resnet18,...]

This machine kind sets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which force an older OpenBLAS
kernel; the script re-runs itself with both unset (``--keep-blas-env`` keeps them) and prints
the BLAS kernel threadpoolctl sees. Peers need ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import onnx

import aioplug
from aioplug._benchmark import blas_info, make_inputs
from aioplug._table import format_table
from aioplug.model import Model
from aioplug.testing import zoo

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "resnet18": lambda: zoo.resnet18(),
    "mobilenet_v2": lambda: zoo.mobilenet_v2(),
    "transformer_4x256_s128": lambda: zoo.transformer_encoder(layers=4, d_model=256, heads=4, d_ff=1024, seq=128),
    "mlp_b1": lambda: zoo.mlp(batch=1),
    "mlp_b64": lambda: zoo.mlp(batch=64),
}
CNNS = {"resnet18", "mobilenet_v2"}


Slice = Callable[[float], Awaitable[list[float]]]
"""Runs one runtime for about the given seconds; returns the latencies (seconds)."""


def _timed(run: Callable[[], Any]) -> Slice:
    async def measure(seconds: float) -> list[float]:
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        while not latencies or time.perf_counter() < stop:
            t = time.perf_counter()
            run()
            latencies.append(time.perf_counter() - t)
        return latencies

    return measure


async def _aioplug_slice(core: aioplug.Core, model: Model, feeds: dict[str, np.ndarray]) -> Slice:
    compiled = await core.compile_model(
        model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
    )
    request = compiled.create_infer_request()
    for _ in range(3):
        await request.infer(feeds)

    async def measure(seconds: float) -> list[float]:
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        while not latencies or time.perf_counter() < stop:
            t = time.perf_counter()
            await request.infer(feeds)
            latencies.append(time.perf_counter() - t)
        return latencies

    return measure


def _onnxruntime_slice(model: Model, feeds: dict[str, np.ndarray]) -> Slice:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.serialize(), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feeds)
    return _timed(lambda: session.run(None, feeds))


def _openvino_slice(model: Model, feeds: dict[str, np.ndarray]) -> Slice:
    import openvino as ov

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
    request = core.compile_model(core.read_model(model.serialize(), b""), "CPU", config).create_infer_request()
    for _ in range(3):
        request.infer(feeds)
    return _timed(lambda: request.infer(feeds))


def _reference_slice(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Slice:
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(proto)

    async def once(seconds: float) -> list[float]:  # one run a round, however long it takes
        t = time.perf_counter()
        session.run(None, feeds)
        return [time.perf_counter() - t]

    return once


async def measure_model(
    name: str, proto: onnx.ModelProto, seconds: float, rounds: int, reference: bool
) -> dict[str, float]:
    """Median latency (seconds) of each runtime on one model, measured in interleaved rounds."""
    async with aioplug.Core() as core:
        model = core.read_model(proto)
        feeds = make_inputs(model, {})
        slices: dict[str, Slice] = {"aioplug": await _aioplug_slice(core, model, feeds)}
        for peer, make in (("onnxruntime", _onnxruntime_slice), ("openvino", _openvino_slice)):
            try:
                slices[peer] = make(model, feeds)
            except ImportError as exc:
                sys.stderr.write(f"skipping {peer}: {exc} (pip install -e '.[bench]')\n")
        if reference:
            slices["reference"] = _reference_slice(proto, feeds)
        latencies: dict[str, list[float]] = {key: [] for key in slices}
        order = list(slices)
        for r in range(rounds):
            shift = r % len(order)
            for key in order[shift:] + order[:shift]:
                latencies[key] += await slices[key](seconds / rounds)
            done = ", ".join(f"{k} {np.median(v) * 1e3:.2f} ms" for k, v in latencies.items())
            sys.stderr.write(f"{name} round {r + 1}/{rounds}: {done}\n")
    return {key: float(np.median(v)) for key, v in latencies.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU device vs ONNX Runtime and OpenVINO")
    parser.add_argument("-t", type=float, default=5.0, help="seconds per model and runtime")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per model")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of: " + ", ".join(MODELS))
    parser.add_argument("--no-reference", action="store_true", help="skip ReferenceEvaluator on the CNNs")
    parser.add_argument("--keep-blas-env", action="store_true", help="keep OPENBLAS_CORETYPE/L2_SIZE")
    args = parser.parse_args(argv)
    if not args.keep_blas_env and any(k in os.environ for k in BLAS_ENV):
        env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    print(f"BLAS: {blas_info()}")
    rows = []
    for name in args.models.split(","):
        proto = MODELS[name]()
        reference = name in CNNS and not args.no_reference
        by = asyncio.run(measure_model(name, proto, args.t, max(1, args.rounds), reference))
        ours, ort, ov = by.get("aioplug"), by.get("onnxruntime"), by.get("openvino")
        ref = by.get("reference")
        rows.append([
            name,
            f"{ours * 1e3:.2f}" if ours else "-",
            f"{ort * 1e3:.2f}" if ort else "-",
            f"{ov * 1e3:.2f}" if ov else "-",
            f"{ours / ort:.2f}x" if ours and ort else "-",
            f"{ours / ov:.2f}x" if ours and ov else "-",
            f"{ref / ours:.0f}x" if ref and ours else "-",
        ])
    print(format_table(
        ["model", "aioplug CPU ms", "onnxruntime ms", "openvino ms", "aioplug/ORT", "aioplug/OV",
         "reference/aioplug"],
        rows,
    ))
    print(
        f"median latency over {args.rounds} interleaved rounds, 1 intra-op thread, 1 request; "
        "lower ms is faster; targets: aioplug/ORT < 2x, reference/aioplug >= 20x on the CNNs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
