"""Callback-style inference: ``set_callback``, ``start_async``, then ``wait``.

A request runs in the background while the program continues; its callback runs when it
finishes (the request is already idle then, so the callback could start it again). For many
inputs, ``AsyncInferQueue`` keeps a set of requests busy and calls one callback per result.

    python examples/callbacks.py
"""

from __future__ import annotations

import asyncio

import numpy as np

import aioplug
from aioplug.testing.models import mlp_model


async def main() -> None:
    rng = np.random.default_rng(0)
    async with aioplug.Core() as core:
        compiled = await core.compile_model(mlp_model(), properties={"PERFORMANCE_HINT": "THROUGHPUT"})

        # One request, callback style.
        request = compiled.create_infer_request()
        request.set_callback(
            lambda req, error: print(
                "callback:", "failed: " + repr(error) if error else f"class {int(np.argmax(req.results['probs']))}"
            )
        )
        request.start_async({"x": rng.standard_normal((1, 784)).astype(np.float32)})
        print("start_async returned at once; the request is", request.state.value)
        await request.wait()

        # Many inputs through a queue of requests.
        queue = aioplug.AsyncInferQueue(compiled)
        predictions: dict[int, int] = {}
        queue.set_callback(lambda req, i: predictions.__setitem__(i, int(np.argmax(req.results["probs"]))))
        for i in range(100):
            await queue.start_async({"x": rng.standard_normal((1, 784)).astype(np.float32)}, userdata=i)
        await queue.wait_all()
        print(f"AsyncInferQueue with {len(queue)} requests classified {len(predictions)} inputs")


if __name__ == "__main__":
    asyncio.run(main())
