"""Talking to ``aioplug serve`` with NVIDIA's Triton client (KServe v2 over HTTP).

The script writes a model repository (an MLP and an image CNN), starts ``aioplug serve`` on
it as a separate process on a free loopback port, and then, with ``tritonclient.http``:
reads server and model metadata, runs inferences with binary and with JSON tensors, checks
them against ``onnx.reference``, sends 64 concurrent requests with ``tritonclient.http.aio``,
shows a server-side error, and reads ``/metrics``. SIGINT stops the server,
which drains its requests and closes its Core.

    pip install -e ".[serve]" "tritonclient[http]"
    python examples/serving_triton_client.py
"""

from __future__ import annotations

import asyncio
import pathlib
import signal
import subprocess
import sys
import tempfile
import urllib.request

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from aioplug.testing.models import mlp_model, small_cnn_model

try:
    import tritonclient.http as httpclient
    import tritonclient.http.aio as aioclient
    from tritonclient.utils import InferenceServerException
except ImportError as exc:
    print(f"skipped: {exc.name} is not installed (pip install 'tritonclient[http]')")
    sys.exit(0)


def write_repository(root: pathlib.Path) -> dict[str, onnx.ModelProto]:
    models = {"mlp": mlp_model((32, 64, 10), batch="N"), "cnn": small_cnn_model()}
    for name, model in models.items():
        (root / name / "1").mkdir(parents=True)
        onnx.save(model, root / name / "1" / "model.onnx")
    return models


def start_server(repository: pathlib.Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aioplug.serve", str(repository), "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "aioplug serve: listening on http://127.0.0.1:PORT (...)"
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"aioplug serve did not start: {line!r}")
    return process, line.split()[4].removeprefix("http://")


async def many_concurrent(url: str, batch: np.ndarray) -> int:
    async with aioclient.InferenceServerClient(url) as client:
        async def one(i: int) -> bool:
            x = aioclient.InferInput("x", [1, 32], "FP32")
            x.set_data_from_numpy(batch[i : i + 1])
            result = await client.infer("mlp", [x], request_id=str(i))
            return result.get_response()["id"] == str(i)

        return sum(await asyncio.gather(*(one(i) for i in range(len(batch)))))


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        models = write_repository(pathlib.Path(tmp))
        process, url = start_server(pathlib.Path(tmp))
        try:
            client = httpclient.InferenceServerClient(url)
            meta = client.get_server_metadata()
            print(f"{meta['name']} {meta['version']} at {url}, extensions: {', '.join(meta['extensions'])}")
            for name in models:
                m = client.get_model_metadata(name)
                print(f"  {name}: inputs {[(t['name'], t['datatype'], t['shape']) for t in m['inputs']]}")

            batch = rng.standard_normal((64, 32)).astype(np.float32)
            expected = ReferenceEvaluator(models["mlp"]).run(None, {"x": batch})[0]
            x = httpclient.InferInput("x", list(batch.shape), "FP32")
            x.set_data_from_numpy(batch)  # binary tensor data
            binary = client.infer("mlp", [x]).as_numpy("probs")
            x.set_data_from_numpy(batch, binary_data=False)  # JSON
            as_json = client.infer(
                "mlp", [x], outputs=[httpclient.InferRequestedOutput("probs", binary_data=False)]
            ).as_numpy("probs")
            np.testing.assert_allclose(binary, expected, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(as_json, expected, rtol=1e-4, atol=1e-6)
            print(f"mlp: a batch of 64 as binary and as JSON tensors matches onnx.reference "
                  f"(first labels {np.argmax(binary, axis=1)[:6].tolist()})")

            image = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
            img = httpclient.InferInput("image", [1, 3, 32, 32], "FP32")
            img.set_data_from_numpy(image)
            probs = client.infer("cnn", [img], request_compression_algorithm="gzip").as_numpy("probs")
            np.testing.assert_allclose(probs, ReferenceEvaluator(models["cnn"]).run(None, {"image": image})[0],
                                       rtol=1e-4, atol=1e-6)
            print(f"cnn: a gzip-compressed request classifies the image as #{int(np.argmax(probs))}")

            print(f"tritonclient.http.aio: {asyncio.run(many_concurrent(url, batch))}/64 concurrent "
                  "requests answered with their own id")

            wrong = httpclient.InferInput("image", [1, 32, 32, 3], "FP32")
            wrong.set_data_from_numpy(image.transpose(0, 2, 3, 1).copy())
            try:
                client.infer("cnn", [wrong])
            except InferenceServerException as exc:
                print(f"an NHWC image gets HTTP {exc.status()}: {exc.message()}")

            with urllib.request.urlopen(f"http://{url}/metrics") as response:
                lines = response.read().decode().splitlines()
            print("metrics:", *[line for line in lines if line.startswith("aioplug_serve_requests_total")],
                  sep="\n  ")
            client.close()
        finally:
            process.send_signal(signal.SIGINT)  # graceful: drain, then close the Core
            out, _ = process.communicate(timeout=60)
        print(out.strip() or f"server exited with {process.returncode}")


if __name__ == "__main__":
    main()
