"""The CPU device on real architectures from ``aioplug.testing.zoo``, checked against oracles.

Each model is compiled on "CPU" through ``aioplug.Core``, run on seeded random inputs, and
every output is compared (dtype, shape and values) with ``onnx.reference.ReferenceEvaluator``
and with onnxruntime where it is importable, at rtol 1e-4 / atol 1e-5. Models are built at
small sizes so the reference evaluator (slow on convolutions) keeps the file fast; the
full-size models are checked against onnxruntime only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug.testing import zoo

Feeds = dict[str, npt.NDArray[np.float32]]

ORACLES = ["reference", "onnxruntime"]
RTOL = 1e-4
ATOL = 1e-5


@pytest.fixture
def anyio_backend() -> str:
    """These tests exercise the device, not the event loop: asyncio alone is enough."""
    return "asyncio"


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> npt.NDArray[np.float32]:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _expected(oracle: str, model: onnx.ModelProto, feeds: Feeds) -> list[Any]:
    """The outputs of ``model`` on ``feeds`` in graph order, as computed by ``oracle``."""
    if oracle == "reference":
        return list(ReferenceEvaluator(model).run(None, feeds))
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


async def _run_cpu(
    model: onnx.ModelProto, feeds_list: Sequence[Feeds], config: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Compiles ``model`` once on CPU and runs it on each of ``feeds_list`` in turn."""
    async with aioplug.Core() as core:
        compiled = await core.compile_model(model, "CPU", dict(config or {}))
        return [dict(await compiled.infer(feeds)) for feeds in feeds_list]


def _compare(
    oracle: str,
    model: onnx.ModelProto,
    feeds: Feeds,
    got: Mapping[str, Any],
    rtol: float = RTOL,
    atol: float = ATOL,
) -> None:
    names = [output.name for output in model.graph.output]
    assert sorted(got) == sorted(names)
    for name, want in zip(names, _expected(oracle, model, feeds)):
        value = np.asarray(got[name])
        assert value.dtype == want.dtype, name
        assert value.shape == want.shape, name
        np.testing.assert_allclose(value, want, rtol=rtol, atol=atol, err_msg=f"output {name!r}")


async def _check(
    oracle: str, model: onnx.ModelProto, feeds: Feeds, config: Mapping[str, Any] | None = None
) -> None:
    (got,) = await _run_cpu(model, [feeds], config)
    _compare(oracle, model, feeds, got)


def _image(batch: int, image: int, seed: int = 1) -> Feeds:
    return {"input": _randn(np.random.default_rng(seed), batch, 3, image, image)}


# -- convolutional networks ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
async def test_resnet18(oracle: str) -> None:
    await _check(oracle, zoo.resnet18(image=64), _image(1, 64))


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
async def test_resnet18_batch_of_two(oracle: str) -> None:
    await _check(oracle, zoo.resnet18(batch=2, image=32, num_classes=10), _image(2, 32))


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
async def test_mobilenet_v2(oracle: str) -> None:
    await _check(oracle, zoo.mobilenet_v2(image=64), _image(1, 64))


@pytest.mark.anyio
@pytest.mark.parametrize("builder", [zoo.resnet18, zoo.mobilenet_v2])
@pytest.mark.parametrize("threads", [0, 1], ids=["default_threads", "one_thread"])
async def test_full_size_cnn_against_onnxruntime(builder: Any, threads: int) -> None:
    """At 224x224 the reference evaluator is too slow; onnxruntime is the oracle. At one
    thread per stream the 1x1 convs run on the compiled tiles, otherwise on BLAS."""
    config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
    await _check("onnxruntime", builder(), _image(1, 224), config)


@pytest.mark.anyio
async def test_streams_run_the_compiled_kernels_at_once_and_agree() -> None:
    """Two streams of one thread each (the 1x1 convs on the tiles, which release the GIL),
    eight requests in flight on different images: every output matches the reference."""
    model = zoo.mobilenet_v2(image=64, num_classes=10)
    feeds = [_image(1, 64, seed=s) for s in range(8)]
    config = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2, "INFERENCE_NUM_THREADS": 2}
    async with aioplug.Core() as core:
        compiled = await core.compile_model(model, "CPU", config)
        outs = await asyncio.gather(*(compiled.infer(f) for f in feeds))
    evaluator = ReferenceEvaluator(model)
    name = model.graph.output[0].name
    for f, got in zip(feeds, outs):
        want = evaluator.run(None, f)[0]
        np.testing.assert_allclose(got[name], np.asarray(want), rtol=RTOL, atol=ATOL)


# -- transformer encoder ------------------------------------------------------------------


def _small_encoder(
    seq: int,
    batch: int = 1,
    dynamic: bool = False,
    with_mask: bool = False,
    fused_ops: bool = False,
) -> onnx.ModelProto:
    """Two layers, d_model 64 in 4 heads, d_ff 128."""
    return zoo.transformer_encoder(
        layers=2, d_model=64, heads=4, d_ff=128, seq=seq, batch=batch,
        dynamic=dynamic, with_mask=with_mask, fused_ops=fused_ops,
    )


def _encoder_feeds(batch: int, seq: int, d_model: int, with_mask: bool, seed: int = 2) -> Feeds:
    """Inputs of scale 1 and a BERT-style additive mask: 0 to attend, -10000 on padding."""
    rng = np.random.default_rng(seed)
    feeds = {"input": _randn(rng, batch, seq, d_model)}
    if with_mask:
        lengths = [seq - (3 * b) % seq for b in range(batch)]
        keep = np.arange(seq)[None, :] < np.array(lengths)[:, None]
        feeds["mask"] = np.where(keep, 0.0, -10000.0).astype(np.float32).reshape(batch, 1, 1, seq)
    return feeds


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("fused_ops", [False, True], ids=["decomposed", "fused"])
async def test_transformer_encoder(oracle: str, fused_ops: bool) -> None:
    model = _small_encoder(seq=16, batch=2, fused_ops=fused_ops)
    await _check(oracle, model, _encoder_feeds(2, 16, 64, with_mask=False))


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
async def test_transformer_encoder_masked(oracle: str) -> None:
    model = _small_encoder(seq=16, batch=3, with_mask=True)
    await _check(oracle, model, _encoder_feeds(3, 16, 64, with_mask=True))


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("with_mask", [False, True], ids=["unmasked", "masked"])
async def test_dynamic_transformer_shapes_share_one_compiled_model(
    oracle: str, with_mask: bool
) -> None:
    """One compilation serves every (batch, seq): the Shape chains are evaluated per call."""
    model = _small_encoder(seq=16, dynamic=True, with_mask=with_mask)
    shapes = [(2, 16), (1, 7), (2, 16)]
    feeds_list = [_encoder_feeds(b, s, 64, with_mask, seed=i) for i, (b, s) in enumerate(shapes)]
    results = await _run_cpu(model, feeds_list)
    for (batch, seq), feeds, got in zip(shapes, feeds_list, results):
        assert got["output"].shape == (batch, seq, 64)
        _compare(oracle, model, feeds, got)


@pytest.mark.anyio
async def test_full_size_transformer_against_onnxruntime() -> None:
    model = zoo.transformer_encoder(with_mask=True)
    await _check("onnxruntime", model, _encoder_feeds(1, 128, 256, with_mask=True))


# -- recurrent and dense ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "forward"])
async def test_lstm_with_states(oracle: str, bidirectional: bool) -> None:
    model = zoo.lstm_model(bidirectional=bidirectional)
    dirs = 2 if bidirectional else 1
    rng = np.random.default_rng(3)
    feeds = {
        "x": _randn(rng, 16, 4, 32),
        "h0": _randn(rng, 2 * dirs, 4, 64, scale=0.5),
        "c0": _randn(rng, 2 * dirs, 4, 64, scale=0.5),
    }
    await _check(oracle, model, feeds)


@pytest.mark.anyio
@pytest.mark.parametrize("oracle", ORACLES)
async def test_mlp(oracle: str) -> None:
    model = zoo.mlp(batch=3)
    await _check(oracle, model, {"x": _randn(np.random.default_rng(4), 3, 784)})


# -- the builders themselves --------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "inputs", "outputs"),
    [
        (lambda: zoo.resnet18(image=32), {"input": [1, 3, 32, 32]}, {"logits": [1, 1000]}),
        (
            lambda: zoo.mobilenet_v2(batch=2, image=32, num_classes=5),
            {"input": [2, 3, 32, 32]},
            {"logits": [2, 5]},
        ),
        (
            lambda: zoo.transformer_encoder(layers=1, seq=8, dynamic=True, with_mask=True),
            {"input": ["batch", "seq", 256], "mask": ["batch", 1, 1, "seq"]},
            {"output": ["batch", "seq", 256]},
        ),
        (
            lambda: zoo.lstm_model(layers=3, bidirectional=False),
            {"x": [16, 4, 32], "h0": [3, 4, 64], "c0": [3, 4, 64]},
            {"logits": [4, 10], "hn": [3, 4, 64], "cn": [3, 4, 64]},
        ),
        (lambda: zoo.mlp(sizes=(8, 4)), {"x": [1, 8]}, {"probs": [1, 4]}),
    ],
    ids=["resnet18", "mobilenet_v2", "transformer", "lstm", "mlp"],
)
def test_builder_signature_and_determinism(
    build: Any, inputs: dict[str, list[int | str]], outputs: dict[str, list[int | str]]
) -> None:
    def dims(values: Sequence[onnx.ValueInfoProto]) -> dict[str, list[int | str]]:
        return {
            v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in values
        }

    model = build()
    assert model.opset_import[0].version == 17
    assert dims(model.graph.input) == inputs
    assert dims(model.graph.output) == outputs
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer)
    assert build().SerializeToString() == model.SerializeToString()


def test_architectures_have_their_real_shape() -> None:
    """Layer counts of the real networks: 20 convs in ResNet-18, 52 in MobileNetV2."""
    def count(model: onnx.ModelProto, op: str) -> int:
        return sum(node.op_type == op for node in model.graph.node)

    resnet = zoo.resnet18(image=32)
    assert count(resnet, "Conv") == count(resnet, "BatchNormalization") == 20
    assert count(resnet, "Add") == 8
    mobilenet = zoo.mobilenet_v2(image=32)
    assert count(mobilenet, "Conv") == count(mobilenet, "BatchNormalization") == 52
    assert count(mobilenet, "Add") == 10
    depthwise = [
        n for n in mobilenet.graph.node
        if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
    ]
    assert len(depthwise) == 17
    decomposed = zoo.transformer_encoder(layers=2)
    assert count(decomposed, "LayerNormalization") == 0 and count(decomposed, "ReduceMean") == 8
    assert count(decomposed, "Erf") == 2 and count(decomposed, "Shape") == 8
    fused = zoo.transformer_encoder(layers=2, fused_ops=True)
    assert count(fused, "LayerNormalization") == 4 and count(fused, "ReduceMean") == 0
