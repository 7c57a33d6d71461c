"""Helpers shared by the CPU device's tests."""

from __future__ import annotations

import numpy as np
import onnx

import aioplug


async def infer_at_threads(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Compiles ``model`` on the CPU device with ``threads`` intra-op threads per stream and
    profiling on, runs ``feeds`` once; returns the outputs and each node's exec type."""
    async with aioplug.Core() as core:
        config: dict[str, object] = {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads}
        compiled = await core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        out = dict(await request.infer(feeds))
        records = {r.node_name: r.exec_type for r in request.get_profiling_info()}
    return out, records
