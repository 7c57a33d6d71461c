"""Your first aioplug program: compile a small CNN and classify an image with it.

The model is a real (if small) image classifier built with ``onnx.helper``: two
Conv+Relu+MaxPool blocks, a fully connected layer and a softmax over 10 classes. We save it to
an .onnx file, compile it on the default device, run one inference, and check the answer
against onnx's reference evaluator.

    python examples/first_inference.py
"""

from __future__ import annotations

import asyncio
import pathlib
import tempfile

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug.testing.models import small_cnn_model


async def main() -> None:
    model_path = pathlib.Path(tempfile.gettempdir()) / "aioplug_small_cnn.onnx"
    onnx.save(small_cnn_model(), model_path)

    image = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)

    async with aioplug.Core() as core:
        print("devices:", ", ".join(core.available_devices), "| default:", core.default_device)
        compiled = await core.compile_model(str(model_path))
        out = await compiled.infer({"image": image})

    probs = out["probs"]
    expected = ReferenceEvaluator(str(model_path)).run(None, {"image": image})[0]
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)

    top = np.argsort(probs[0])[::-1][:3]
    print(f"model {compiled.get_property('NETWORK_NAME')!r} on {compiled.device_name}")
    print("top classes:", ", ".join(f"#{k} ({probs[0, k]:.3f})" for k in top))
    print("matches onnx.reference: yes")


if __name__ == "__main__":
    asyncio.run(main())
