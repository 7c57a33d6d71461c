"""The CPU device's compiled kernels (numba) and their numpy counterparts: depthwise
convolution and Winograd 3x3 convolution against onnx's reference evaluator on strides,
dilations, pads, auto_pad, kernel sizes, bias and fused activations; Gelu against the C
library's erf."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug_cpu.kernels.math import _jit

pytestmark = pytest.mark.anyio


async def run_profiled(
    model: onnx.ModelProto, *feeds: np.ndarray
) -> tuple[list[dict[str, np.ndarray]], dict[str, str]]:
    """Runs ``model`` on the CPU device once per feed of input ``x``; returns the outputs of
    each run and the exec type of each node (from the first run)."""
    async with aioplug.Core() as core:
        compiled = await core.compile_model(model, "CPU", {"PERF_COUNT": True})
        request = compiled.create_infer_request()
        outs = [dict(await request.infer({"x": feeds[0]}))]
        records = {r.node_name: r.exec_type for r in request.get_profiling_info()}
        outs += [dict(await request.infer({"x": x})) for x in feeds[1:]]
    return outs, records

CASES = [
    # channels, height, width, kernel, strides, dilations, pads or auto_pad, bias, batch
    (8, 12, 12, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], True, 1),
    (8, 13, 11, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], False, 2),
    (4, 9, 10, (3, 3), (1, 2), (1, 1), [0, 1, 2, 0], True, 1),
    (6, 14, 14, (5, 5), (1, 1), (1, 1), [2, 2, 2, 2], True, 1),
    (6, 15, 15, (5, 5), (2, 2), (1, 1), "SAME_UPPER", False, 1),
    (5, 10, 10, (3, 3), (1, 1), (2, 2), [2, 2, 2, 2], True, 1),
    (3, 8, 9, (1, 3), (1, 1), (1, 1), [0, 1, 0, 1], False, 1),
    (4, 7, 7, (3, 3), (3, 3), (1, 1), "SAME_LOWER", True, 1),
    (4, 6, 6, (3, 3), (1, 1), (1, 1), "VALID", True, 3),
    (2, 3, 3, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], False, 1),  # every output touches a border
    # 3x3 at stride 1 and 2 run flat, phase-split kernels: odd and even sizes, uneven and
    # oversized pads, input rows and columns the stride never reaches
    (3, 9, 7, (3, 3), (2, 2), (1, 1), [0, 0, 1, 1], True, 1),
    (3, 10, 12, (3, 3), (2, 2), (1, 1), [1, 0, 0, 1], False, 2),
    (3, 8, 8, (3, 3), (2, 2), (1, 1), "SAME_UPPER", True, 1),
    (3, 11, 6, (3, 3), (2, 2), (1, 1), [2, 3, 2, 3], True, 1),
    (3, 12, 12, (3, 3), (2, 2), (1, 1), "VALID", False, 1),
    (2, 1, 1, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], True, 1),
    (3, 7, 5, (3, 3), (1, 1), (1, 1), [0, 2, 2, 0], True, 1),
    (3, 16, 17, (3, 3), (1, 1), (1, 1), "SAME_LOWER", False, 2),
    (3, 1, 9, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], True, 1),
    # one pixel of padding at stride 1, and even sizes at stride 2 with the padding before
    # 0 or 1, run without per-row loops: their border columns are computed again
    (4, 7, 7, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], True, 2),
    (2, 5, 2, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], True, 1),
    (3, 8, 10, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], True, 2),
    (3, 8, 6, (3, 3), (2, 2), (1, 1), "SAME_UPPER", False, 1),
    (3, 6, 8, (3, 3), (2, 2), (1, 1), [1, 0, 0, 1], True, 1),
    (3, 10, 4, (3, 3), (2, 2), (1, 1), [0, 1, 1, 0], True, 1),
    (2, 2, 2, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], False, 1),
]


def _conv_model(
    c_in: int, c_out: int, group: int, height: int, width: int, kernel: tuple[int, int],
    strides: tuple[int, int], dilations: tuple[int, int], pads: list[int] | str, bias: bool,
    batch: int, name: str, seed: int,
) -> onnx.ModelProto:
    """One Conv node ``name`` with random weights (and bias), shape-inferred."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((c_out, c_in // group, *kernel)).astype(np.float32)
    inits = [numpy_helper.from_array(weights, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
        inputs.append("b")
    attrs: dict[str, object] = {
        "group": group, "kernel_shape": list(kernel), "strides": list(strides),
        "dilations": list(dilations),
    }
    if isinstance(pads, str):
        attrs["auto_pad"] = pads
    else:
        attrs["pads"] = pads
    graph = helper.make_graph(
        [helper.make_node("Conv", inputs, ["y"], name=name, **attrs)],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c_in, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def _depthwise_model(
    channels: int, height: int, width: int, kernel: tuple[int, int], strides: tuple[int, int],
    dilations: tuple[int, int], pads: list[int] | str, bias: bool, batch: int,
) -> onnx.ModelProto:
    return _conv_model(
        channels, channels, channels, height, width, kernel, strides, dilations, pads, bias,
        batch, "dw", channels * 100 + height,
    )


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
async def test_depthwise_conv_matches_the_reference(case: tuple, kernel_kind: str) -> None:  # type: ignore[type-arg]
    model = _depthwise_model(*case)
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(7).standard_normal(x_shape).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    (out,), records = await run_profiled(model, x)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-5, atol=1e-5)
    assert records["dw"] == kernel_kind


def _numpy_depthwise3x3(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, begin: tuple[int, int],
    end: tuple[int, int], pre: _jit.PreActivation, low: float, high: float,
) -> np.ndarray:
    """The definition, in float64: the pre-activated input zero-padded, nine strided taps."""
    xa = np.clip(x.astype(np.float64) + pre.bias[None, :, None, None], pre.low, pre.high)
    xp = np.pad(xa, ((0, 0), (0, 0), (begin[0], end[0]), (begin[1], end[1])))
    out_h = (xp.shape[2] - 3) // stride + 1
    out_w = (xp.shape[3] - 3) // stride + 1
    y = np.broadcast_to(b[None, :, None, None], (x.shape[0], x.shape[1], out_h, out_w)).copy()
    for ky in range(3):
        for kx in range(3):
            window = xp[:, :, ky : ky + stride * out_h : stride, kx : kx + stride * out_w : stride]
            y += w[None, :, ky, kx, None, None] * window
    return np.clip(y, low, high)


@pytest.fixture(params=["small", "large"])
def plane_kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the small-plane 3x3 depthwise kernels for every plane, then with the
    large-plane ones (the test planes are small, so the threshold is moved)."""
    if not _jit.available():
        pytest.skip("numba is not installed")
    from aioplug_cpu.kernels.math import _jit_kernels

    monkeypatch.setattr(_jit_kernels, "SMALL_PLANE", 1 << 30 if request.param == "small" else 0)
    return str(request.param)


def test_the_depthwise_kernels_match_the_definition_on_random_geometries(
    plane_kernels: str,
) -> None:
    """Sizes, pads (explicit and auto), strides 1 and 2, batches, input activations and
    clips drawn at random: whichever 3x3 kernel ``depthwise2d`` picks must compute the
    definition."""
    from aioplug_cpu.kernels._registry import KernelNode
    from aioplug_cpu.kernels.math._spatial import window_attrs

    rng = np.random.default_rng(11)
    checked = 0
    while checked < 80:
        c, h, w = (int(v) for v in rng.integers(1, [6, 21, 21]))
        stride, n = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        attrs: dict[str, object] = {"group": c, "kernel_shape": [3, 3], "strides": [stride] * 2}
        if rng.random() < 0.6:
            attrs["pads"] = [int(v) for v in rng.integers(0, 3, 4)]
        else:
            attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        node = KernelNode(
            op_type="Conv", domain="", opset=17, attributes=attrs, num_inputs=3, num_outputs=1,
            name="dw",
        )
        window = window_attrs(node, 2, (3, 3))
        assert window is not None
        geom = window.geometry((h, w))
        if min(geom.out) <= 0:
            continue
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        weights = rng.standard_normal((c, 3, 3)).astype(np.float32)
        bias = rng.standard_normal(c).astype(np.float32)
        pre = _jit.PreActivation(np.zeros(c, np.float32), -np.inf, np.inf)
        if rng.random() < 0.5:
            pre = _jit.PreActivation(rng.standard_normal(c).astype(np.float32), -0.5, 1.5)
        low, high = (0.0, 6.0) if rng.random() < 0.5 else (-np.inf, np.inf)
        got = _jit.depthwise2d(x, weights, bias, window, geom, low, high, pre)
        expected = _numpy_depthwise3x3(
            x, weights, bias, stride, geom.begin, geom.end, pre, low, high
        )
        np.testing.assert_allclose(
            got, expected, rtol=1e-4, atol=1e-4, err_msg=f"{attrs} {x.shape}"
        )
        checked += 1


@pytest.mark.parametrize(
    "strides, pads", [((1, 1), [1, 1, 1, 1]), ((2, 2), [1, 1, 1, 1]), ((2, 2), "SAME_UPPER")]
)
async def test_infinities_at_row_ends_reach_only_their_neighbours(
    strides: tuple[int, int], pads: list[int] | str, kernel_kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flat kernels read a row's last input where the next row's first output has zero
    padding (and the reverse); that output is computed again, so an infinity there must
    not leak into it."""
    model = _depthwise_model(3, 8, 8, (3, 3), strides, (1, 1), pads, True, 1)
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    x[0, 0, 2, -1] = np.inf
    x[0, 1, 5, 0] = -np.inf
    x[0, 2, 3, -1] = np.nan
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert np.isfinite(expected).sum() > expected.size // 2
    # the compiled kernels for small planes, then those for large ones
    for small_plane in (1 << 30, 0) if kernel_kind == "depthwise_jit" else (None,):
        if small_plane is not None:
            from aioplug_cpu.kernels.math import _jit_kernels

            monkeypatch.setattr(_jit_kernels, "SMALL_PLANE", small_plane)
        (out,), _ = await run_profiled(model, x)
        np.testing.assert_allclose(out["y"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["Relu", "Clip", "Sigmoid"])
async def test_a_following_activation_is_fused_into_the_compiled_kernel(activation: str) -> None:
    if not _jit.available():
        pytest.skip("numba is not installed")
    model = _depthwise_model(8, 12, 12, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], True, 1)
    graph = model.graph
    inputs = ["y"]
    if activation == "Clip":
        graph.initializer.extend(
            [numpy_helper.from_array(np.float32(-0.5), "lo"), numpy_helper.from_array(np.float32(0.7), "hi")]
        )
        inputs += ["lo", "hi"]
    graph.node.append(helper.make_node(activation, inputs, ["z"], name="act"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 12, 12]))
    del graph.value_info[:]
    x = np.random.default_rng(8).standard_normal((1, 8, 12, 12)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    (out,), records = await run_profiled(model, x)
    np.testing.assert_allclose(out["z"], expected, rtol=1e-5, atol=1e-5)
    # Relu and Clip are applied as the kernel stores; others run after it, in place
    assert records["dw"] == f"depthwise_jit+{activation.lower()}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_gelu_matches_the_c_library_erf(dtype: type, kernel_kind: str) -> None:
    from aioplug_cpu.kernels.math._erf import gelu_erf

    x = np.concatenate(
        [np.linspace(-9, 9, 20001), np.random.default_rng(3).standard_normal(5000) * 4]
    ).astype(dtype)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    got = gelu_erf(x)
    assert got.dtype == x.dtype and got.shape == x.shape
    tol = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(got.astype(np.float64), exact, rtol=tol, atol=tol)


WINOGRAD_CASES = [
    # in channels, out channels, height, width, pads or auto_pad, bias, batch
    (8, 16, 12, 12, [1, 1, 1, 1], True, 1),
    (5, 7, 13, 11, [1, 1, 1, 1], False, 2),  # odd sizes: a partial last tile
    (4, 6, 9, 10, [0, 2, 1, 0], True, 1),
    (3, 4, 8, 8, [0, 0, 0, 0], True, 1),
    (6, 6, 7, 9, "SAME_UPPER", False, 1),
    (6, 3, 10, 6, "SAME_LOWER", True, 3),
    (2, 2, 2, 2, [1, 1, 1, 1], True, 1),  # a single tile, mostly padding
    (16, 8, 5, 5, [2, 2, 2, 2], True, 1),
    # 16 tiles or more across: the flat, phase-split input transform
    (3, 5, 34, 40, [1, 1, 1, 1], True, 1),
    (4, 3, 33, 37, [0, 2, 1, 0], False, 2),
    (2, 4, 31, 35, "SAME_UPPER", True, 1),
]


def _conv3x3_model(
    c_in: int, c_out: int, height: int, width: int, pads: list[int] | str, bias: bool, batch: int
) -> onnx.ModelProto:
    return _conv_model(
        c_in, c_out, 1, height, width, (3, 3), (1, 1), (1, 1), pads, bias, batch, "conv",
        c_in * 10 + c_out,
    )


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=[f"case{i}" for i in range(len(WINOGRAD_CASES))])
async def test_winograd_conv_matches_the_reference(case: tuple, kernel_kind: str) -> None:  # type: ignore[type-arg]
    model = _conv3x3_model(*case)
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(9).standard_normal(x_shape).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    (out,), records = await run_profiled(model, x)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-4, atol=1e-4)
    assert records["conv"] == ("winograd" if kernel_kind == "depthwise_jit" else "gemm_im2col")


async def test_winograd_fuses_a_following_relu() -> None:
    if not _jit.available():
        pytest.skip("numba is not installed")
    model = _conv3x3_model(8, 8, 10, 10, [1, 1, 1, 1], True, 1)
    graph = model.graph
    graph.node.append(helper.make_node("Relu", ["y"], ["z"], name="act"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 10, 10]))
    del graph.value_info[:]
    x = np.random.default_rng(10).standard_normal((1, 8, 10, 10)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    (out,), records = await run_profiled(model, x)
    np.testing.assert_allclose(out["z"], expected, rtol=1e-4, atol=1e-4)
    assert records["conv"] == "winograd+relu"


POOL_CASES = [
    # height, width, kernel, strides, dilations, pads or auto_pad, ceil_mode
    (112, 112, (3, 3), (2, 2), (1, 1), [1, 1, 1, 1], 0),  # ResNet's stem pool
    (9, 11, (3, 3), (2, 2), (1, 1), [0, 0, 0, 0], 1),
    (10, 7, (2, 3), (1, 1), (1, 1), [1, 0, 0, 2], 0),
    (12, 13, (3, 2), (3, 2), (2, 1), [2, 1, 1, 0], 0),
    (8, 8, (2, 2), (2, 2), (1, 1), "SAME_UPPER", 0),
    (7, 9, (3, 3), (1, 3), (1, 2), "SAME_LOWER", 0),
    (5, 5, (5, 5), (1, 1), (1, 1), "VALID", 0),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"case{i}" for i in range(len(POOL_CASES))])
async def test_max_pool_matches_the_reference_and_skips_nan(case: tuple, kernel_kind: str) -> None:  # type: ignore[type-arg]
    height, width, kernel, strides, dilations, pads, ceil_mode = case
    attrs: dict[str, object] = {
        "kernel_shape": list(kernel), "strides": list(strides), "dilations": list(dilations),
        "ceil_mode": ceil_mode,
    }
    if isinstance(pads, str):
        attrs["auto_pad"] = pads
    else:
        attrs["pads"] = pads
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)], "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    )
    x = np.random.default_rng(11).standard_normal((2, 3, height, width)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    nan = x.copy()
    nan[0, 0, 1, 1] = np.nan  # skipped like padding (numpy's fmax); the reference propagates it
    (out, with_nan), records = await run_profiled(model, x, nan)
    np.testing.assert_array_equal(out["y"], expected)
    assert records["pool"] == ("pool_jit" if kernel_kind == "depthwise_jit" else "pool_separable")
    masked = np.where(np.isnan(nan), -np.inf, nan)
    np.testing.assert_array_equal(with_nan["y"], ReferenceEvaluator(model).run(None, {"x": masked})[0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the masked row's LayerNorm is NaN
@pytest.mark.parametrize("shape", [(3, 7), (2, 4, 128), (5, 1)])
async def test_softmax_and_layer_norm_match_the_reference(shape: tuple[int, ...], kernel_kind: str) -> None:
    rng = np.random.default_rng(12)
    n = shape[-1]
    graph = helper.make_graph(
        [
            helper.make_node("Softmax", ["x"], ["s"], axis=-1),
            helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1, epsilon=1e-3),
        ],
        "rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(v, TensorProto.FLOAT, list(shape)) for v in ("s", "n")],
        [numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "g"),
         numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = (rng.standard_normal(shape) * 30).astype(np.float32)  # exp overflows without the max shift
    if n > 1:
        x.reshape(-1, n)[0, 0] = -np.inf  # a masked position: its probability is 0
    expected = ReferenceEvaluator(model).run(None, {"x": np.where(np.isinf(x), -1e30, x)})
    async with aioplug.Core() as core:
        compiled = await core.compile_model(model, "CPU")
        out = await compiled.infer({"x": x})
    np.testing.assert_allclose(out["s"], expected[0], rtol=1e-5, atol=1e-6)
    finite = np.isfinite(x).all(axis=-1)
    np.testing.assert_allclose(out["n"][finite], expected[1][finite], rtol=1e-4, atol=1e-4)
