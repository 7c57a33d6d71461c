"""The CPU device's compiled 1x1 convolution (``_jit_pointwise``): tile remainders in output
channels and pixels, both loop orders, inputs read in place and copied strip by strip,
residual sums, clips and NaN against the definition in float64 numpy, and 1x1 convs in
models against onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from aioplug_cpu.kernels.math import _jit
from cpu_support import infer_at_threads

needs_numba = pytest.mark.skipif(not _jit.available(), reason="numba is not installed")


def _definition(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, low: float, high: float,
    z: np.ndarray | None,
) -> np.ndarray:
    y = np.einsum("mk,nkp->nmp", w.astype(np.float64), x.astype(np.float64))
    y += b[None, :, None]
    if z is not None:
        y += z
    clipped: np.ndarray = np.clip(y, low, high)
    return clipped


@needs_numba
@pytest.mark.parametrize(
    "m, k, pixels",
    [
        (6, 4, 16),  # one full tile
        (7, 5, 37),  # one channel past a tile, a partial pixel strip
        (13, 3, 300),  # more pixels than the small-plane order takes
        (1, 1, 1),
        (5, 17, 15),  # fewer channels than a tile, fewer pixels than a strip
        (24, 40, 49),  # MobileNet's 7x7 planes (copied strip by strip): 3 strips, 1 pixel
        (10, 20, 100),  # a small plane, read in place
        (8, 600, 100),  # a deep input on a small plane, read in place
        (32, 16, 257),
        (6, 9, 18),  # two pixels past the strips, on the column kernel: k in two unrolled steps
        (11, 70, 35),  # three past; k = 70 leaves two for the unrolled loop's tail
        (13, 33, 196),  # MobileNet's 14x14 planes: four past
    ],
)
@pytest.mark.parametrize("residual", [False, True])
def test_the_tiles_compute_the_definition(m: int, k: int, pixels: int, residual: bool) -> None:
    rng = np.random.default_rng(m * 1000 + k * 10 + pixels)
    x = rng.standard_normal((2, k, pixels)).astype(np.float32)
    w = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    z = rng.standard_normal((2, m, pixels)).astype(np.float32) if residual else None
    tiles = _jit.pointwise_weights(w)
    for low, high in ((-np.inf, np.inf), (0.0, 6.0), (-0.5, 0.25)):
        got = _jit.pointwise_conv(x, tiles, m, b, low, high, z)
        # float32 sums of k products: the rounding grows with k
        np.testing.assert_allclose(
            got, _definition(x, w, b, low, high, z), rtol=1e-5, atol=1e-5 * max(1, k / 16)
        )


@needs_numba
def test_nan_and_infinity_reach_the_outputs_they_feed() -> None:
    """The clip is a compare-and-select, which keeps NaN as Relu and Clip do, and an
    infinity in one pixel stays in that pixel's column."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 8, 40)).astype(np.float32)
    x[0, 3, 7] = np.nan
    x[0, 5, 33] = np.inf
    w = np.abs(rng.standard_normal((9, 8))).astype(np.float32) + 0.1
    b = np.zeros(9, np.float32)
    tiles = _jit.pointwise_weights(w)
    for low, high in ((-np.inf, np.inf), (0.0, 6.0)):
        got = _jit.pointwise_conv(x, tiles, 9, b, low, high)
        expected = _definition(x, w, b, low, high, None)
        assert np.isnan(got[0, :, 7]).all() and np.isnan(expected[0, :, 7]).all()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@needs_numba
@pytest.mark.parametrize("residual", [False, True])
def test_nan_in_the_last_pixels_survives_the_column_kernel(residual: bool) -> None:
    """The pixels past the last full strip (here 2 of 34) take the column kernel, whose
    clip must keep NaN too; a NaN residual reaches only its own output."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 8, 34)).astype(np.float32)
    x[0, 2, 33] = np.nan
    w = np.abs(rng.standard_normal((9, 8))).astype(np.float32) + 0.1
    b = rng.standard_normal(9).astype(np.float32)
    z = rng.standard_normal((1, 9, 34)).astype(np.float32) if residual else None
    if z is not None:
        z[0, 4, 32] = np.nan
    tiles = _jit.pointwise_weights(w)
    for low, high in ((-np.inf, np.inf), (0.0, 6.0)):
        got = _jit.pointwise_conv(x, tiles, 9, b, low, high, z)
        expected = _definition(x, w, b, low, high, z)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert np.isnan(got[0, :, 33]).all()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _pointwise_model(
    c_in: int, c_out: int, height: int, width: int, activation: str | None, residual: bool,
    pads: list[int] | str,
) -> onnx.ModelProto:
    rng = np.random.default_rng(c_in * 31 + c_out)
    attrs: dict[str, object] = {"kernel_shape": [1, 1]}
    if isinstance(pads, str):
        attrs["auto_pad"] = pads
    else:
        attrs["pads"] = pads
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="pw", **attrs)]
    last = "c"
    if residual:
        nodes.append(helper.make_node("Add", ["c", "x"], ["s"], name="add"))
        last = "s"
    if activation == "Relu":
        nodes.append(helper.make_node("Relu", [last], ["y"], name="act"))
    elif activation == "Clip":
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["y"], name="act"))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"], name="act"))
    out_hw = [height, width]
    if isinstance(pads, list):
        out_hw = [height + pads[0] + pads[2], width + pads[1] + pads[3]]
    graph = helper.make_graph(
        nodes,
        "pw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c_in, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, c_out, *out_hw])],
        [
            numpy_helper.from_array(
                rng.standard_normal((c_out, c_in, 1, 1)).astype(np.float32), "w"
            ),
            numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"),
            numpy_helper.from_array(np.array(-0.5, np.float32), "lo"),
            numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "c_in, c_out, height, width, activation, residual, pads, exec_type",
    [
        (16, 24, 7, 7, "Clip", False, [0, 0, 0, 0], "pointwise_jit+clip"),
        (8, 8, 9, 5, "Relu", True, "SAME_UPPER", "pointwise_jit+add+relu"),
        (12, 7, 20, 20, None, False, "VALID", "pointwise_jit"),
        (600, 8, 9, 9, None, False, [0, 0, 0, 0], "pointwise_jit"),  # deep
        (8, 6, 5, 5, None, False, [1, 0, 0, 1], "gemm_im2col"),  # padded: im2col
    ],
)
async def test_one_by_one_convs_in_models_match_the_reference(
    c_in: int, c_out: int, height: int, width: int, activation: str | None, residual: bool,
    pads: list[int] | str, exec_type: str,
) -> None:
    """On one thread per stream, 1x1 convs run on the tiles; on two, on BLAS, which uses
    them (the tiles run on one)."""
    model = _pointwise_model(c_in, c_out, height, width, activation, residual, pads)
    x = np.random.default_rng(1).standard_normal((2, c_in, height, width)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    for threads in (1, 2):
        out, records = await infer_at_threads(model, {"x": x}, threads)
        np.testing.assert_allclose(out["y"], expected, rtol=1e-4, atol=1e-4)
        if _jit.available():
            tiles = threads == 1 or not exec_type.startswith("pointwise_jit")
            expected_type = exec_type if tiles else exec_type.replace("pointwise_jit", "gemm_im2col")
            assert records["pw"] == expected_type
