"""The CPU device's direct convolution on the compiled tiles (``_jit_pointwise.direct``), which
runs convs of one group over few input channels (a network's stem): strides 1 and 2, kernel
sizes 1 to 7, asymmetric padding, output rows of whole and partial strips, residual sums,
clips and NaN against the definition in float64 numpy, and stems in models against onnx's
reference evaluator."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from aioplug_cpu.kernels.math import _jit
from aioplug_cpu.kernels.math._spatial import Geometry
from cpu_support import infer_at_threads

needs_numba = pytest.mark.skipif(not _jit.available(), reason="numba is not installed")


def _definition(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pads: tuple[int, int, int, int],
    low: float, high: float, z: np.ndarray | None,
) -> np.ndarray:
    """The conv computed tap by tap in float64 (``pads`` as ONNX orders them)."""
    top, left, bottom, right = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    m, _, kh, kw = w.shape
    out_h = (xp.shape[2] - kh) // stride + 1
    out_w = (xp.shape[3] - kw) // stride + 1
    y = np.zeros((x.shape[0], m, out_h, out_w))
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky : ky + (out_h - 1) * stride + 1 : stride,
                       kx : kx + (out_w - 1) * stride + 1 : stride]
            y += np.einsum("mc,ncij->nmij", w[:, :, ky, kx].astype(np.float64), patch)
    y += b[None, :, None, None]
    if z is not None:
        y += z
    clipped: np.ndarray = np.clip(y, low, high)
    return clipped


def _run(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pads: tuple[int, int, int, int],
    low: float, high: float, z: np.ndarray | None,
) -> np.ndarray:
    m, _, kh, kw = w.shape
    top, left, bottom, right = pads
    out = (
        (x.shape[2] + top + bottom - kh) // stride + 1,
        (x.shape[3] + left + right - kw) // stride + 1,
    )
    packed = _jit.pointwise_weights(w.reshape(m, -1))
    geom = Geometry(out, (top, left), (bottom, right))
    return _jit.direct_conv(x, packed, m, (kh, kw), stride, geom, b, low, high, z)


CASES = [
    # batch, channels, height, width, outputs, kernel, stride, pads (top, left, bottom, right)
    (1, 3, 32, 32, 32, (3, 3), 2, (1, 1, 1, 1)),  # MobileNet's stem: rows of one strip
    (2, 3, 30, 36, 13, (7, 7), 2, (3, 3, 3, 3)),  # ResNet's: a partial strip of 2 vectors
    (1, 1, 9, 9, 1, (3, 3), 1, (1, 1, 1, 1)),  # one channel, one output: a row of 9
    (2, 2, 11, 21, 7, (5, 3), 1, (2, 0, 1, 2)),  # asymmetric kernel and pads
    (1, 4, 17, 40, 6, (3, 3), 2, (0, 1, 1, 0)),  # odd height, stride 2 from a pad of 0
    (1, 3, 8, 8, 12, (1, 1), 2, (0, 0, 0, 0)),  # a strided 1x1
    (1, 2, 5, 70, 5, (2, 4), 2, (1, 2, 0, 3)),  # even kernel, four strips and 3 pixels
]


@needs_numba
@pytest.mark.parametrize("batch, channels, height, width, outputs, kernel, stride, pads", CASES)
@pytest.mark.parametrize("residual", [False, True])
def test_the_direct_conv_computes_the_definition(
    batch: int, channels: int, height: int, width: int, outputs: int, kernel: tuple[int, int],
    stride: int, pads: tuple[int, int, int, int], residual: bool,
) -> None:
    rng = np.random.default_rng(height * 100 + width + outputs)
    x = rng.standard_normal((batch, channels, height, width)).astype(np.float32)
    w = rng.standard_normal((outputs, channels, *kernel)).astype(np.float32)
    b = rng.standard_normal(outputs).astype(np.float32)
    expected_shape = _definition(x, w, b, stride, pads, -np.inf, np.inf, None).shape
    z = rng.standard_normal(expected_shape).astype(np.float32) if residual else None
    for low, high in ((-np.inf, np.inf), (0.0, 6.0)):
        got = _run(x, w, b, stride, pads, low, high, z)
        expected = _definition(x, w, b, stride, pads, low, high, z)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@needs_numba
def test_nan_reaches_exactly_the_outputs_whose_window_holds_it() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    x[0, 1, 7, 18] = np.nan
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = np.zeros(8, np.float32)
    for low, high in ((-np.inf, np.inf), (0.0, 6.0)):
        got = _run(x, w, b, 2, (1, 1, 1, 1), low, high, None)
        expected = _definition(x, w, b, 2, (1, 1, 1, 1), low, high, None)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert np.isnan(got).any()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def _stem_model(
    channels: int, outputs: int, size: int, kernel: int, stride: int, pads: list[int] | str
) -> onnx.ModelProto:
    rng = np.random.default_rng(kernel * 10 + stride)
    attrs: dict[str, object] = {"kernel_shape": [kernel, kernel], "strides": [stride, stride]}
    if isinstance(pads, str):
        attrs["auto_pad"] = pads
    else:
        attrs["pads"] = pads
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="stem", **attrs),
            helper.make_node("Relu", ["c"], ["y"], name="act"),
        ],
        "stem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, outputs, "h", "w"])],
        [
            numpy_helper.from_array(
                rng.standard_normal((outputs, channels, kernel, kernel)).astype(np.float32), "w"
            ),
            numpy_helper.from_array(rng.standard_normal(outputs).astype(np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "channels, outputs, size, kernel, stride, pads",
    [
        (3, 32, 64, 3, 2, [1, 1, 1, 1]),
        (3, 16, 45, 7, 2, [3, 3, 3, 3]),
        (1, 8, 30, 5, 1, "SAME_UPPER"),
        (4, 6, 33, 3, 2, "SAME_LOWER"),
    ],
)
async def test_stems_in_models_match_the_reference(
    channels: int, outputs: int, size: int, kernel: int, stride: int, pads: list[int] | str
) -> None:
    """On one thread per stream, a conv over few input channels runs directly on the tiles
    (with its Relu as it stores); on two, on im2col and BLAS."""
    model = _stem_model(channels, outputs, size, kernel, stride, pads)
    x = np.random.default_rng(2).standard_normal((2, channels, size, size)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    for threads in (1, 2):
        out, records = await infer_at_threads(model, {"x": x}, threads)
        np.testing.assert_allclose(out["y"], expected, rtol=1e-4, atol=1e-4)
        if _jit.available():
            kind = "direct_jit" if threads == 1 else "gemm_im2col"
            assert records["stem"] == f"{kind}+relu"
