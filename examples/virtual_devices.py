"""Virtual devices: AUTO chooses, MULTI spreads, HETERO splits, BATCH gathers.

Each compiles the same small CNN and checks its output against onnx's reference evaluator:

* ``AUTO`` (the default device) picks the best device that can run every node;
* ``MULTI:CPU,TEMPLATE`` sends each request to whichever device frees a request first;
* ``HETERO:TEMPLATE,CPU`` runs each node on the first listed device that supports it (here
  TEMPLATE is told it cannot run ReLU, so the graph is cut into parts over both devices);
* ``BATCH:CPU(8)`` gathers concurrent requests into batches of up to 8 along axis 0.

Run: ``python examples/virtual_devices.py``
"""

from __future__ import annotations

import asyncio

import numpy as np
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug.testing.models import small_cnn_model


async def main() -> None:
    model = small_cnn_model()
    name = model.graph.input[0].name
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    images = [rng.standard_normal(shape).astype(np.float32) for _ in range(16)]
    reference = ReferenceEvaluator(model)
    expected = [reference.run(None, {name: x})[0] for x in images]

    async with aioplug.Core() as core:
        for device in ("AUTO", "MULTI:CPU,TEMPLATE", "HETERO:TEMPLATE,CPU", "BATCH:CPU(8)"):
            if device.startswith("HETERO"):  # TEMPLATE refuses ReLU from now on: a real split
                core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
            compiled = await core.compile_model(model, device)
            outputs = await asyncio.gather(*(compiled.infer({name: x}) for x in images))
            worst = max(
                float(np.max(np.abs(out[0] - want))) for out, want in zip(outputs, expected)
            )
            assert worst < 1e-4, f"{device}: max abs difference {worst}"
            runs_on = ", ".join(compiled.get_property("EXECUTION_DEVICES"))
            print(f"{device:22s} runs on {runs_on:20s} 16 requests, max |diff| {worst:.1e}")


if __name__ == "__main__":
    asyncio.run(main())
