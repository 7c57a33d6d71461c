"""The ``aioplug`` command line: ``aioplug devices``, ``aioplug run MODEL``.

It runs on uvloop where that is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._core import Core
from ._table import format_table
from ._virtual import VirtualPlugin
from .errors import AioplugError, InputError
from .model import Model

__all__ = ["main"]


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


def _devices(args: argparse.Namespace) -> int:
    core = Core()
    rows = []
    for name in core.registered_devices:
        try:
            plugin = core.get_plugin(name)
            caps = ", ".join(plugin.get_property("OPTIMIZATION_CAPABILITIES"))
            ids = ", ".join(str(i) for i in plugin.get_property("AVAILABLE_DEVICES"))
            if isinstance(plugin, VirtualPlugin):
                ids = "virtual"
            rows.append([name, plugin.get_property("FULL_DEVICE_NAME"), ids, caps, plugin.version])
        except AioplugError as exc:
            rows.append([name, f"unavailable: {exc}", "", "", ""])
    print(format_table(["device", "full name", "ids", "capabilities", "version"], rows))
    print(f"default device: {core.default_device}")
    return 0


def _parse_inputs(model: Model, specs: Sequence[str], seed: int) -> tuple[dict[str, np.ndarray], list[str]]:
    inputs: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            if len(model.inputs) != 1:
                raise InputError(f"--input {spec!r}: write NAME=FILE.npy (the model has several inputs)")
            name, path = model.inputs[0].name, spec
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--input {spec!r}: cannot load {path!r} as .npy: {exc}") from exc
    generated = []
    rng = np.random.default_rng(seed)
    for port in model.inputs:
        if port.name in inputs:
            continue
        if port.is_dynamic or port.dtype is None:
            raise InputError(
                f"input {port.name!r} has {port.describe()}: give it with --input {port.name}=FILE.npy"
            )
        shape = tuple(int(d) for d in port.shape or ())  # type: ignore[arg-type]
        if port.dtype.kind == "f":
            value = rng.standard_normal(shape).astype(port.dtype)
        elif port.dtype.kind in "iu":
            value = rng.integers(0, 10, shape).astype(port.dtype)
        elif port.dtype.kind == "b":
            value = rng.integers(0, 2, shape).astype(bool)
        else:
            raise InputError(f"input {port.name!r} ({port.describe()}): give it with --input")
        inputs[port.name] = value
        generated.append(port.name)
    return inputs, generated


async def _run(args: argparse.Namespace) -> int:
    async with Core() as core:
        model = core.read_model(args.model)
        inputs, generated = _parse_inputs(model, args.input, args.seed)
        device = args.device or core.default_device
        start = time.perf_counter()
        compiled = await core.compile_model(model, device)
        compiled_in = time.perf_counter() - start
        start = time.perf_counter()
        out = await compiled.infer(inputs)
        ran_in = time.perf_counter() - start
    print(f"model {model.name!r} on {compiled.device_name}: compiled in {compiled_in * 1e3:.1f} ms, "
          f"inferred in {ran_in * 1e3:.2f} ms")
    if generated:
        print(f"random inputs (seed {args.seed}): {', '.join(generated)}")
    rows = []
    for name, value in out.items():
        arr = np.asarray(value)
        stats = (
            f"{arr.min():.4g} / {arr.mean():.4g} / {arr.max():.4g}"
            if arr.size and arr.dtype.kind in "fiu" else ""
        )
        rows.append([name, arr.dtype.name, "x".join(map(str, arr.shape)) or "scalar", stats])
    print(format_table(["output", "dtype", "shape", "min / mean / max"], rows))
    with np.printoptions(precision=4, suppress=True, threshold=40, edgeitems=4):
        for name, value in out.items():
            print(f"\n{name} =\n{np.asarray(value)}")
    return 0


async def _benchmark(args: argparse.Namespace) -> int:
    from ._benchmark import Budget, blas_info, format_results, run_benchmark

    budget = Budget(count=args.n, seconds=args.t) if args.n or args.t else Budget(seconds=10.0)
    print(f"BLAS: {blas_info()}")
    compare = [p for p in (args.compare or "").split(",") if p]
    results = await run_benchmark(
        args.model, args.device, hint=args.hint, budget=budget, requests=args.requests,
        shapes=args.shape, compare=compare, threads=args.threads,
        rounds=args.rounds if args.rounds else (3 if compare else 1),
    )
    print(format_results(results))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aioplug", description="aioplug inference runtime")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list devices and their key properties")
    run = sub.add_parser("run", help="compile a model and run it once, printing the outputs")
    run.add_argument("model", help="path of an .onnx model")
    run.add_argument("-d", "--device", help="device name (default: the Core's default device)")
    run.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                     help="an input from a .npy file; missing static inputs get random data")
    run.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    bench = sub.add_parser("benchmark", help="measure latency and throughput, optionally against peers")
    bench.add_argument("model", help="path of an .onnx model")
    bench.add_argument("-d", "--device", help="device name (default: the Core's default device)")
    bench.add_argument("--hint", choices=["latency", "throughput"], default="latency")
    budget = bench.add_mutually_exclusive_group()
    budget.add_argument("-n", type=int, help="number of inferences")
    budget.add_argument("-t", type=float, help="seconds to run (default 10)")
    bench.add_argument("--requests", type=int, help="concurrent requests (default: the device's optimum)")
    bench.add_argument("--threads", type=int, default=0, help="threads per inference budget (0: all cores)")
    bench.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2,...",
                       help="shape of a dynamic input")
    bench.add_argument("--compare", metavar="PEERS", help="comma list: onnxruntime,openvino")
    bench.add_argument("--rounds", type=int, default=0,
                       help="with --compare: interleaved rounds the budget is split into (default 3)")
    from .serve.cli import add_arguments as add_serve_arguments

    add_serve_arguments(sub.add_parser("serve", help="serve models over HTTP (KServe v2 protocol)"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        if args.command == "devices":
            return _devices(args)
        if args.command == "run":
            return int(_run_async(_run(args)))
        if args.command == "benchmark":
            return int(_run_async(_benchmark(args)))
        if args.command == "serve":
            from .serve.cli import run as serve

            return serve(args)
    except AioplugError as exc:
        print(f"aioplug: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
