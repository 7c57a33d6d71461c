"""Every virtual device gives the plain CPU device's outputs, on real models and concurrent load."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import onnx
import pytest

import aioplug
from aioplug.testing import zoo
from aioplug.testing.models import small_cnn_model

pytestmark = pytest.mark.anyio

RESTRICT_CPU = {"CPU": {"TEST_UNSUPPORTED_OPS": ["Relu", "Add"]}}

CONFIGURATIONS: list[tuple[str, dict[str, dict[str, Any]], bool]] = [
    # (device, device properties set first, runs on CPU alone so outputs are bit-identical)
    ("AUTO", {}, True),
    ("AUTO:CPU,TEMPLATE", {}, True),
    ("MULTI:CPU", {}, True),
    ("MULTI:CPU,TEMPLATE", {}, False),
    ("HETERO:CPU,TEMPLATE", {}, True),
    ("HETERO:CPU,TEMPLATE", RESTRICT_CPU, False),  # a real split: CPU refuses Relu and Add
    ("BATCH:CPU(4)", {}, False),  # a batch of 4 may take other BLAS paths than a batch of 1
]


def _models() -> list[tuple[str, onnx.ModelProto]]:
    return [
        ("small_cnn", small_cnn_model()),
        ("resnet", zoo.resnet18(image=32)),
        ("transformer", zoo.transformer_encoder(layers=1, d_model=32, heads=2, d_ff=64, dynamic=True)),
    ]


def _feed(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        # a symbolic batch is 1, other symbolic dimensions (a sequence) 8
        shape = [d.dim_value if d.dim_value > 0 else (1 if i == 0 else 8) for i, d in enumerate(dims)]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        feed[vi.name] = rng.standard_normal(shape).astype(dtype)
    return feed


@pytest.mark.parametrize("device, properties, cpu_only", CONFIGURATIONS, ids=[c[0] + ("-split" if c[1] else "") for c in CONFIGURATIONS])
async def test_virtual_device_outputs_equal_the_cpu_device(
    device: str, properties: dict[str, dict[str, Any]], cpu_only: bool
) -> None:
    async with aioplug.Core() as core, aioplug.Core() as plain_core:
        for name, props in properties.items():
            core.set_property(name, props)
        for model_name, model in _models():
            plain = await plain_core.compile_model(model, "CPU")
            virtual = await core.compile_model(model, device)
            feeds = [_feed(model, seed) for seed in range(6)]
            expected = [await plain.infer(feed) for feed in feeds]
            results: list[Any] = [None] * len(feeds)

            async def run(i: int) -> None:
                results[i] = await virtual.infer(feeds[i])

            async with anyio.create_task_group() as tg:  # concurrent, so BATCH really batches
                for i in range(len(feeds)):
                    tg.start_soon(run, i)
            for want, got in zip(expected, results):
                assert len(got) == len(want)
                for i in range(len(want)):
                    if cpu_only:
                        np.testing.assert_array_equal(got[i], want[i], err_msg=model_name)
                    else:
                        np.testing.assert_allclose(got[i], want[i], rtol=1e-4, atol=1e-5, err_msg=model_name)
