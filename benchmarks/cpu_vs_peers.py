"""The CPU device against ONNX Runtime and OpenVINO on the repository's model builders.

Every runtime gets one intra-op thread (``--threads`` to change it) and one request (latency
mode); the table shows the median latency of each and the ratios. The CNNs also run through
``onnx.reference.ReferenceEvaluator`` for the speed-up over it.

The runtimes are measured in interleaved rounds (each round gives every runtime, in a
rotating order, an equal slice of the time, at least one run), so a machine that slows down
for a while slows all of them alike and the ratios hold on a shared, noisy machine; the
medians are over all rounds.

    python benchmarks/cpu_vs_peers.py [-t SECONDS] [--rounds R] [--threads N] [--models resnet18,...]

This machine kind sets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which force an older OpenBLAS
kernel; the script re-runs itself with both unset (``--keep-blas-env`` keeps them) and prints
the BLAS kernel threadpoolctl sees. Peers need ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

import onnx

from aioplug._benchmark import Budget, blas_info, latency_ratio, paired_ratios, run_benchmark
from aioplug._table import format_table
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU device vs ONNX Runtime and OpenVINO")
    parser.add_argument("-t", type=float, default=5.0, help="seconds per model and runtime")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per model")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of: " + ", ".join(MODELS))
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every runtime")
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
        sys.stderr.write(f"== {name}\n")
        peers = ["onnxruntime", "openvino"]
        if name in CNNS and not args.no_reference:
            peers.append("reference")
        results = asyncio.run(run_benchmark(
            proto, "CPU", hint="LATENCY", budget=Budget(seconds=args.t),
            requests=1, compare=peers, threads=max(1, args.threads), rounds=max(1, args.rounds),
        ))
        by = {r.name.split()[0]: r for r in results}

        def ms(runtime: str) -> str:
            return f"{by[runtime].median * 1e3:.2f}" if runtime in by else "-"

        def ratio(num: str, den: str, fmt: str, spread: bool = False) -> str:
            if num not in by or den not in by:
                return "-"
            text = fmt.format(latency_ratio(by[num], by[den]))
            paired = paired_ratios(by[num], by[den])
            if spread and len(paired) > 1:
                text += f" ({fmt.format(min(paired))}-{fmt.format(max(paired))})"
            return text

        rows.append([
            name, ms("aioplug"), ms("onnxruntime"), ms("openvino"),
            ratio("aioplug", "onnxruntime", "{:.2f}x"), ratio("aioplug", "openvino", "{:.2f}x"),
            ratio("reference", "aioplug", "{:.0f}x", spread=True),
        ])
    print(format_table(
        ["model", "aioplug CPU ms", "onnxruntime ms", "openvino ms", "aioplug/ORT", "aioplug/OV",
         "reference/aioplug"],
        rows,
    ))
    print(
        f"median latency over {args.rounds} interleaved rounds, {max(1, args.threads)} intra-op "
        "thread(s), 1 request; "
        "ratios: the median of the rounds' ratios (each round measures every runtime at the "
        "same state of the machine), the reference's lowest-highest in brackets; lower ms is "
        "faster; targets: aioplug/ORT < 2x, reference/aioplug >= 20x on the CNNs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
