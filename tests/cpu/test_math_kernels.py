"""Math-family CPU kernels checked against onnx's node test cases and the reference evaluator.

Every onnx node case whose op belongs to the math family (and every ``_expanded`` variant of
such a case) runs through ``run_model`` and is compared with onnx's expected outputs at the
case's tolerances, dtype and shape exactly. A case whose graph needs an op that no numpy
kernel implements yet is skipped, naming the op. Randomised, larger graphs of Conv,
ConvTranspose, pooling and Gemm are compared with ``onnx.reference.ReferenceEvaluator``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

_DEVICES = Path(__file__).resolve().parents[2] / "devices"
if importlib.util.find_spec("aioplug_cpu") is None:
    sys.path.insert(0, str(_DEVICES))


def _import_kernels() -> types.ModuleType:
    """Imports the kernels package; stands in an empty data family if it is not written yet."""
    spec = importlib.util.find_spec("aioplug_cpu.kernels")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "data").is_dir() and not (root / "data.py").is_file():
        sys.modules["aioplug_cpu.kernels.data"] = types.ModuleType("aioplug_cpu.kernels.data")
    return importlib.import_module("aioplug_cpu.kernels")


_import_kernels()
from aioplug_cpu.kernels._registry import lookup, registered_ops  # noqa: E402
from aioplug_cpu.kernels._runner import run_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

MATH_OPS = frozenset(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Ceil Celu Clip Conv ConvInteger
    ConvTranspose Cos Cosh CumSum Det Div Dropout Einsum Elu Equal Erf Exp Floor Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GroupNormalization
    HardSigmoid HardSwish Hardmax InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu
    Less LessOrEqual Log LogSoftmax LpNormalization LpPool MatMul MatMulInteger Max MaxPool
    MaxRoiPool MaxUnpool Mean MeanVarianceNormalization Min Mish Mod Mul Neg Not Or PRelu Pow
    QLinearConv QLinearMatMul Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Round Selu Shrink Sigmoid Sign
    Sin Sinh Softmax Softplus Softsign Sqrt Sub Sum Swish Tan Tanh ThresholdedRelu Where
    Xor""".split()
)
"""The ops this family implements (the brief's split of work)."""


@cache
def _cases() -> dict[str, Any]:
    """Node cases of math ops and their expanded variants, collected once per module."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    base_op = {
        c.name: c.model.graph.node[0].op_type
        for c in cases
        if "_expanded" not in c.name and c.model is not None
    }
    return {
        c.name: c
        for c in cases
        if base_op.get(c.name.split("_expanded")[0]) in MATH_OPS
    }


def _numpy_kernel(domain: str, op_type: str, opset: int) -> bool:
    """Whether a numpy kernel (not the reference fallback) serves the op at ``opset``."""
    if (domain, op_type) not in registered_ops():
        return False
    try:
        factory = lookup(domain, op_type, opset)
    except LookupError:
        return False
    return ".fallback" not in (getattr(factory, "__module__", "") or "")


def _missing_ops(model: onnx.ModelProto) -> list[str]:
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    missing = set()
    for node in model.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        if not _numpy_kernel(domain, node.op_type, opsets.get(domain, 1)):
            missing.add(node.op_type)
    return sorted(missing)


def _to_value(item: Any) -> Any:
    return numpy_helper.to_array(item) if isinstance(item, onnx.TensorProto) else item


def assert_similar(ref: Any, out: Any, rtol: float, atol: float, where: str) -> None:
    """Compares like onnx's backend runner, with dtype and shape exactly."""
    ref = np.asarray(ref)
    assert isinstance(out, np.ndarray), f"{where}: expected ndarray, got {type(out)}"
    assert out.shape == ref.shape, f"{where}: shape {out.shape} != {ref.shape}"
    assert out.dtype == ref.dtype, f"{where}: dtype {out.dtype} != {ref.dtype}"
    if out.dtype.name == "bfloat16":
        rtol = max(rtol, 2**-6)
    if out.dtype.kind not in "biuf":
        out, ref = out.astype(np.float32), ref.astype(np.float32)
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol, err_msg=where)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_onnx_node_case(name: str) -> None:
    case = _cases()[name]
    missing = _missing_ops(case.model)
    if missing:
        pytest.skip(f"needs op(s) without a numpy kernel: {', '.join(missing)}")
    for inputs, expected in case.data_sets:
        outs = run_model(case.model, [_to_value(v) for v in inputs])
        assert len(outs) == len(expected)
        for i, (ref, out) in enumerate(zip(expected, outs)):
            assert_similar(_to_value(ref), out, case.rtol, case.atol, f"{name} output {i}")


def test_every_math_op_is_registered_for_every_version() -> None:
    """Each math op has a kernel registered under every since_version onnx defines."""
    history: dict[str, set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == "" and schema.name in MATH_OPS:
            history.setdefault(schema.name, set()).add(schema.since_version)
    ops = registered_ops()
    for op, since in sorted(history.items()):
        assert since <= set(ops.get(("", op), ())), f"{op}: {sorted(since)} vs {ops.get(('', op))}"


# --- randomised comparisons with the reference evaluator ------------------------------------

_RNG = np.random.default_rng(20240611)
_OPSET = 22


def _model(
    op: str,
    inputs: dict[str, np.ndarray],
    n_outputs: int = 1,
    consts: tuple[str, ...] = (),
    **attrs: Any,
) -> onnx.ModelProto:
    """One-node model; inputs named in ``consts`` become initializers."""
    names = list(inputs)
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for n, v in inputs.items()
        if n not in consts
    ]
    inits = [numpy_helper.from_array(inputs[n], n) for n in consts]
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs]
    graph = helper.make_graph([node], op, graph_inputs, graph_outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])


def _compare(
    op: str,
    inputs: dict[str, np.ndarray],
    n_outputs: int = 1,
    consts: tuple[str, ...] = (),
    rtol: float = 1e-4,
    atol: float = 1e-5,
    **attrs: Any,
) -> None:
    model = _model(op, inputs, n_outputs, consts, **attrs)
    feeds = {n: v for n, v in inputs.items() if n not in consts}
    expected = _reference(model, feeds)
    got = run_model(model, list(feeds.values()))
    for i, (ref, out) in enumerate(zip(expected, got)):
        assert_similar(ref, out, rtol, atol, f"{op} {attrs} output {i}")


def _reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[Any]:
    return list(ReferenceEvaluator(model).run(None, feeds))


def _randn(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return _RNG.standard_normal(shape).astype(dtype)


CONV_CASES = [
    # (x shape, w shape, attrs)
    ((2, 8, 17, 15), (12, 4, 3, 3), dict(group=2, strides=[2, 1], pads=[1, 0, 2, 1])),
    ((1, 16, 20, 20), (16, 1, 3, 3), dict(group=16, dilations=[2, 2], pads=[2, 2, 2, 2])),
    ((2, 6, 9, 11), (12, 1, 3, 2), dict(group=6, strides=[2, 2], auto_pad="SAME_UPPER")),
    ((2, 5, 31), (7, 5, 4), dict(strides=[3], dilations=[2], auto_pad="SAME_LOWER")),
    ((1, 4, 7, 8, 9), (6, 2, 3, 2, 3), dict(group=2, pads=[1, 0, 1, 1, 1, 0], strides=[1, 2, 2])),
    ((3, 8, 10, 10), (16, 8, 1, 1), dict()),
    ((1, 3, 12, 12), (5, 3, 5, 5), dict(auto_pad="VALID", strides=[3, 3])),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_CASES)
@pytest.mark.parametrize("const_w", [True, False], ids=["const_w", "input_w"])
def test_conv_random(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any], const_w: bool
) -> None:
    inputs = {"x": _randn(*x_shape), "w": _randn(*w_shape), "b": _randn(w_shape[0])}
    _compare("Conv", inputs, consts=("w", "b") if const_w else (), **attrs)


def test_conv_float16_and_float64() -> None:
    for dtype, rtol, atol in ((np.float16, 1e-2, 1e-2), (np.float64, 1e-10, 1e-10)):
        inputs = {"x": _randn(1, 4, 9, 9, dtype=dtype), "w": _randn(6, 2, 3, 3, dtype=dtype)}
        _compare("Conv", inputs, rtol=rtol, atol=atol, group=2, pads=[1, 1, 1, 1])


CONV_TRANSPOSE_CASES = [
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(strides=[2, 2], output_padding=[1, 0], pads=[1, 0, 0, 1])),
    ((1, 6, 4, 4), (6, 2, 3, 3), dict(group=3, strides=[2, 3], dilations=[1, 2])),
    ((1, 3, 5, 5), (3, 4, 3, 3), dict(strides=[2, 2], output_padding=[1, 1], pads=[2, 1, 1, 0])),
    ((2, 2, 7), (2, 3, 4), dict(strides=[3], auto_pad="SAME_UPPER")),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), dict(strides=[2, 1, 2], pads=[0, 1, 0, 1, 0, 1])),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_TRANSPOSE_CASES)
def test_conv_transpose_random(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any]
) -> None:
    group = attrs.get("group", 1)
    inputs = {"x": _randn(*x_shape), "w": _randn(*w_shape), "b": _randn(w_shape[1] * group)}
    if group == 1:
        _compare("ConvTranspose", inputs, consts=("w",), **attrs)
        return
    # onnx's reference mishandles groups with several output channels each: the expected
    # result is built from one ungrouped reference run per group.
    model = _model("ConvTranspose", inputs, consts=("w",), **attrs)
    (got,) = run_model(model, [inputs["x"], inputs["b"]])
    single = {k: v for k, v in attrs.items() if k != "group"}
    cg, mg = x_shape[1] // group, w_shape[1]
    parts = []
    for g in range(group):
        sub = {
            "x": inputs["x"][:, g * cg : (g + 1) * cg],
            "w": inputs["w"][g * cg : (g + 1) * cg],
            "b": inputs["b"][g * mg : (g + 1) * mg],
        }
        parts.append(_reference(_model("ConvTranspose", sub, **single), sub)[0])
    assert_similar(np.concatenate(parts, axis=1), got, 1e-4, 1e-5, "grouped ConvTranspose")


POOL_CASES = [
    ("MaxPool", (2, 3, 11, 12), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", (1, 2, 10, 9), dict(kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", (1, 2, 13, 13), dict(kernel_shape=[3, 3], dilations=[2, 2], strides=[1, 1])),
    ("MaxPool", (2, 2, 9), dict(kernel_shape=[4], strides=[2], auto_pad="SAME_UPPER")),
    ("MaxPool", (1, 2, 6, 7, 5), dict(kernel_shape=[2, 2, 2], strides=[2, 2, 1])),
    ("AveragePool", (2, 3, 11, 12), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    (
        "AveragePool",
        (2, 3, 11, 12),
        dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], count_include_pad=1),
    ),
    ("AveragePool", (1, 2, 10, 9), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", (1, 2, 9, 8), dict(kernel_shape=[3, 3], auto_pad="SAME_LOWER")),
    ("AveragePool", (1, 2, 6, 7, 5), dict(kernel_shape=[2, 3, 2], pads=[1, 1, 0, 0, 1, 1])),
    ("LpPool", (2, 3, 9, 10), dict(kernel_shape=[3, 3], strides=[2, 2], p=3)),
    ("LpPool", (1, 2, 8, 8), dict(kernel_shape=[2, 2], pads=[1, 1, 1, 1], p=2)),
]


@pytest.mark.parametrize("op, x_shape, attrs", POOL_CASES)
def test_pool_random(op: str, x_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
    _compare(op, {"x": _randn(*x_shape)}, **attrs)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices_random(storage_order: int) -> None:
    x = _randn(2, 3, 9, 8)
    _compare(
        "MaxPool",
        {"x": x},
        n_outputs=2,
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        storage_order=storage_order,
    )


def test_conv_transpose_output_shape_matches_explicit_pads() -> None:
    """output_shape [10, 11] from a 5x5 input (full size 11x11) means pads [1, 0, 0, 0]."""
    inputs = {"x": _randn(1, 3, 5, 5), "w": _randn(3, 4, 3, 3)}
    model = _model("ConvTranspose", inputs, strides=[2, 2], output_shape=[10, 11])
    (got,) = run_model(model, list(inputs.values()))
    ref = _model("ConvTranspose", inputs, strides=[2, 2], pads=[1, 0, 0, 0])
    assert_similar(_reference(ref, inputs)[0], got, 1e-4, 1e-5, "output_shape")


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_random(op: str) -> None:
    _compare(op, {"x": _randn(2, 5, 6, 7)})


@pytest.mark.parametrize("shape", [(3, 4, 9), (1, 2, 3, 4, 5), (1, 3, 150, 140)])
def test_global_average_pool_of_any_rank(shape: tuple[int, ...]) -> None:
    # (onnx's reference GlobalMaxPool reduces the wrong axes below and above rank 4)
    _compare("GlobalAveragePool", {"x": _randn(*shape)})


def test_global_average_pool_float64_and_a_strided_input() -> None:
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 10))
    (y,) = run_model(_model("GlobalAveragePool", {"x": x}), [x])
    np.testing.assert_allclose(y, x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    assert y.dtype == np.float64
    xs = _randn(2, 6, 8, 10)[:, ::2, :, ::2]
    (y,) = run_model(_model("GlobalAveragePool", {"x": xs}), [xs])
    np.testing.assert_allclose(y, xs.astype(np.float64).mean(axis=(2, 3), keepdims=True), rtol=1e-5)


def test_global_lp_pool() -> None:
    x = _randn(2, 5, 6, 7)
    (y,) = run_model(_model("GlobalLpPool", {"x": x}, p=3), [x])
    expected = (np.abs(x.astype(np.float64)) ** 3).sum(axis=(2, 3), keepdims=True) ** (1 / 3)
    assert_similar(expected.astype(np.float32), y, 1e-5, 1e-6, "GlobalLpPool")


GEMM_CASES = [
    ((7, 5), (5, 9), (9,), dict()),
    ((5, 7), (9, 5), (7, 1), dict(transA=1, transB=1, alpha=0.5, beta=2.0)),
    ((6, 4), (3, 4), (6, 3), dict(transB=1, alpha=1.5)),
    ((4, 6), (4, 3), (), dict(transA=1, beta=0.25)),
]


@pytest.mark.parametrize("a_shape, b_shape, c_shape, attrs", GEMM_CASES)
@pytest.mark.parametrize("consts", [(), ("b", "c")], ids=["inputs", "const_bc"])
def test_gemm_random(
    a_shape: tuple[int, ...],
    b_shape: tuple[int, ...],
    c_shape: tuple[int, ...],
    attrs: dict[str, Any],
    consts: tuple[str, ...],
) -> None:
    inputs = {"a": _randn(*a_shape), "b": _randn(*b_shape), "c": _randn(*c_shape)}
    _compare("Gemm", inputs, consts=consts, **attrs)


def test_matmul_batched_const_weight() -> None:
    inputs = {"a": _randn(2, 3, 5, 4), "b": _randn(4, 6)}
    _compare("MatMul", inputs, consts=("b",))
    _compare("MatMul", {"a": _randn(2, 1, 5, 4), "b": _randn(3, 4, 6)})


def test_integer_division_truncates() -> None:
    a = np.array([7, -7, 7, -7, 0, 9], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 3, -4], dtype=np.int32)
    (y,) = run_model(_model("Div", {"a": a, "b": b}), [a, b])
    np.testing.assert_array_equal(y, np.array([3, -3, -3, 3, 0, -2], dtype=np.int32))


def test_float32_stays_float32() -> None:
    x = _randn(3, 4)
    for op in ("Gelu", "Sigmoid", "Erf", "Softplus", "Mish", "HardSwish"):
        model = _model(op, {"x": x})
        (y,) = run_model(model, [x])
        assert y.dtype == np.float32, op
        ref = _reference(model, {"x": x})[0]
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=op)


def test_legacy_broadcast_axis() -> None:
    """Opset 6 Add with broadcast=1, axis=1 aligns B's dims with A's from axis 1."""
    a, b = _randn(2, 3, 4, 5), _randn(3, 4)
    model = _model("Add", {"a": a, "b": b}, broadcast=1, axis=1)
    model.opset_import[0].version = 6
    (y,) = run_model(model, [a, b])
    assert_similar(a + b[None, :, :, None], y, 1e-6, 1e-7, "legacy Add")


def test_clip_attributes_before_opset_11() -> None:
    x = _randn(4, 5)
    model = _model("Clip", {"x": x}, min=-0.5, max=0.25)
    model.opset_import[0].version = 6
    (y,) = run_model(model, [x])
    assert_similar(np.clip(x, -0.5, 0.25), y, 0, 0, "Clip-6")


def test_erf_accuracy() -> None:
    import math

    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 1e-30, -1e-12, np.inf, -np.inf]])
    ref = np.array([math.erf(v) for v in x])
    for dtype, tol in ((np.float64, 1e-15), (np.float32, 3e-7)):
        (y,) = run_model(_model("Erf", {"x": x.astype(dtype)}), [x.astype(dtype)])
        assert y.dtype == dtype
        np.testing.assert_allclose(y, ref.astype(dtype), rtol=tol, atol=tol)


try:
    import onnxruntime as ort
except ImportError:  # the comparisons below skip
    ort = None


def _ort_compare(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = 1e-5) -> None:
    """Compares with onnxruntime for ops the reference evaluator lacks."""
    if ort is None:
        pytest.skip("onnxruntime is not installed")
    got = run_model(model, list(feeds.values()))
    typed = onnx.ModelProto()
    typed.CopyFrom(model)
    del typed.graph.output[:]
    typed.graph.output.extend(
        helper.make_tensor_value_info(f"y{i}", helper.np_dtype_to_tensor_dtype(g.dtype), None)
        for i, g in enumerate(got)
    )
    session = ort.InferenceSession(typed.SerializeToString(), providers=["CPUExecutionProvider"])
    for i, (ref, out) in enumerate(zip(session.run(None, feeds), got)):
        assert_similar(ref, out, rtol, 1e-6, f"{model.graph.node[0].op_type} output {i}")


def test_max_roi_pool_against_onnxruntime() -> None:
    x = _randn(2, 3, 12, 10)
    rois = np.array(
        [[0, 1, 1, 7, 8], [1, 0.4, 2.6, 9.5, 11], [0, 3, 3, 3, 3], [1, -2, -1, 4, 20]], np.float32
    )
    model = _model("MaxRoiPool", {"x": x, "rois": rois}, pooled_shape=[3, 4], spatial_scale=0.8)
    model.opset_import[0].version = 21  # onnxruntime registers MaxRoiPool-1 only
    _ort_compare(model, {"x": x, "rois": rois})


def test_qlinear_conv_against_onnxruntime() -> None:
    """Weights kept within +-60 so onnxruntime's u8s8 kernel cannot saturate int16 pairs."""
    rng = np.random.default_rng(3)
    feeds: dict[str, np.ndarray] = {
        "x": rng.integers(0, 255, (1, 3, 7, 7)).astype(np.uint8),
        "xs": np.array(0.02, np.float32),
        "xz": np.array(128, np.uint8),
        "w": rng.integers(-60, 60, (4, 3, 3, 3)).astype(np.int8),
        "ws": (rng.random(4) * 0.01 + 0.001).astype(np.float32),
        "wz": np.zeros(4, np.int8),
        "ys": np.array(0.05, np.float32),
        "yz": np.array(120, np.uint8),
        "b": rng.integers(-500, 500, 4).astype(np.int32),
    }
    model = _model("QLinearConv", feeds, pads=[1, 1, 1, 1], strides=[2, 1])
    model.opset_import[0].version = 10
    _ort_compare(model, feeds, rtol=0)


def test_pool_ceil_mode_large_stride_against_onnxruntime() -> None:
    """Windows that ceil_mode adds must start inside the input (onnx's reference shifts them)."""
    x = _randn(1, 2, 11, 13)
    for op in ("MaxPool", "AveragePool"):
        attrs: dict[str, Any] = {
            "kernel_shape": [3, 2],
            "strides": [3, 4],
            "ceil_mode": 1,
            "pads": [1, 0, 1, 1],
        }
        model = _model(op, {"x": x}, **attrs)
        _ort_compare(model, {"x": x})
