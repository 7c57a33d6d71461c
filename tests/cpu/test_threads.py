"""The CPU device's BLAS threads follow each compiled model's settings, whichever thread
computes (the loop, a stream thread, or the device's thread while it measures at compile)."""

from __future__ import annotations

import numpy as np
import pytest

import aioplug
from aioplug.testing import zoo

pytestmark = pytest.mark.anyio


def _blas_threads() -> set[int]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return {
        lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"
    }


async def test_each_model_computes_with_its_own_blas_threads() -> None:
    model = zoo.mlp(batch=4)
    x = np.random.default_rng(0).standard_normal((4, 784)).astype(np.float32)
    async with aioplug.Core() as core:
        one = await core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})
        two = await core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 2})
        requests = {1: one.create_infer_request(), 2: two.create_infer_request()}
        for wanted in (1, 2, 1, 2, 1):
            await requests[wanted].infer({"x": x})
            assert _blas_threads() == {wanted}
