"""Data-family CPU kernels checked against onnx's node test cases and the reference evaluator.

Run with ``PYTHONPATH=devices``. Every onnx node case that uses an op of the data family
(numpy kernels or the reference fallback) runs through ``run_model`` and is compared with
onnx's expected outputs at the case's tolerances (dtype and shape exactly). Cases that need a
math-family op not yet registered are skipped, naming the op.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper


def _import_kernels() -> types.ModuleType:
    """Imports the kernels package; stands in an empty math family if it is not written yet."""
    if importlib.util.find_spec("aioplug_cpu") is None:  # run without PYTHONPATH=devices
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "devices"))
    spec = importlib.util.find_spec("aioplug_cpu.kernels")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "math").is_dir() and not (root / "math.py").is_file():
        sys.modules["aioplug_cpu.kernels.math"] = types.ModuleType("aioplug_cpu.kernels.math")
    return importlib.import_module("aioplug_cpu.kernels")


kernels = _import_kernels()
from aioplug_cpu.kernels import data as data_family  # noqa: E402
from aioplug_cpu.kernels._registry import lookup, registered_ops  # noqa: E402
from aioplug_cpu.kernels._runner import run_model  # noqa: E402
from aioplug_cpu.kernels.data.fallback import ReferenceKernelFactory  # noqa: E402

data_family.finalize()

MATH_OPS = frozenset(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Ceil Celu Clip Conv ConvInteger
    ConvTranspose Cos Cosh CumProd CumSum DeformConv Div Dropout Einsum Elu Equal Erf Exp Floor Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GroupNormalization
    HardSigmoid HardSwish Hardmax InstanceNormalization IsInf IsNaN LRN LayerNormalization LeakyRelu
    Less LessOrEqual Log LogSoftmax LpNormalization LpPool MatMul MatMulInteger Max MaxPool
    MaxRoiPool MaxUnpool Mean MeanVarianceNormalization Min Mish Mod Mul Neg Not Or PRelu Pow
    QLinearConv QLinearMatMul RMSNormalization Reciprocal ReduceL1 ReduceL2 ReduceLogSum
    ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Round
    Selu Shrink Sigmoid Sign Sin Sinh Softmax Softplus Softsign Sqrt Sub Sum Swish Tan Tanh
    ThresholdedRelu Where Xor""".split()
)
"""Ops of the math family (by the split of work); their fallbacks do not make a case ours."""


def _family(domain: str, op_type: str) -> str:
    """'data', 'reference', 'math' or 'missing' for the newest kernel of an op."""
    versions = registered_ops().get((domain, op_type))
    if not versions:
        return "missing"
    factory = lookup(domain, op_type, max(versions))
    if isinstance(factory, ReferenceKernelFactory):
        return "reference"
    module = getattr(factory, "__module__", "")
    return "data" if module.startswith("aioplug_cpu.kernels.data") else "math"


def _node_ops(model: onnx.ModelProto) -> set[tuple[str, str]]:
    return {("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in model.graph.node}


@cache
def _cases() -> dict[str, Any]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    ours: dict[str, Any] = {}
    for case in cases:
        assert case.model is not None
        ops = _node_ops(case.model)
        fams = {op: _family(*op) for op in ops}
        mine = any(f == "data" for f in fams.values()) or any(
            f == "reference" and op[1] not in MATH_OPS for op, f in fams.items()
        )
        if mine:
            ours[case.name] = case
    return ours


def _case_names() -> list[str]:
    return sorted(_cases())


def _to_value(item: Any) -> Any:
    if isinstance(item, onnx.TensorProto):
        return numpy_helper.to_array(item)
    if isinstance(item, list):
        return [_to_value(v) for v in item]
    return item


def assert_similar(ref: Any, out: Any, rtol: float, atol: float, where: str) -> None:
    """Compares like onnx's backend runner: lists element-wise, dtype and shape exactly."""
    if ref is None or out is None:
        assert ref is None and out is None, f"{where}: expected {ref!r}, got {out!r}"
        return
    if isinstance(ref, list):
        assert isinstance(out, list), f"{where}: expected a sequence, got {type(out)}"
        assert len(out) == len(ref), f"{where}: sequence length {len(out)} != {len(ref)}"
        for i, (r, o) in enumerate(zip(ref, out)):
            assert_similar(r, o, rtol, atol, f"{where}[{i}]")
        return
    ref = np.asarray(ref)
    assert isinstance(out, np.ndarray), f"{where}: expected ndarray, got {type(out)}"
    assert out.shape == ref.shape, f"{where}: shape {out.shape} != {ref.shape}"
    if ref.dtype == object:
        np.testing.assert_array_equal(out, ref, err_msg=where)
        return
    assert out.dtype == ref.dtype, f"{where}: dtype {out.dtype} != {ref.dtype}"
    if out.dtype.name == "bfloat16" or out.dtype.itemsize == 1 and out.dtype.kind == "V":
        rtol = max(rtol, 2**-6)
    if out.dtype.kind not in "biufc?":
        out, ref = out.astype(np.float32), ref.astype(np.float32)
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol, err_msg=where)


def _missing_ops(model: onnx.ModelProto) -> list[str]:
    missing = []
    for domain, op in sorted(_node_ops(model)):
        fam = _family(domain, op)
        if fam == "missing" or (fam == "reference" and op in MATH_OPS):
            missing.append(op)
    return missing


def _check_random(expected: Any, out: Any, where: str) -> None:
    """Random outputs: only shape, dtype and (for Bernoulli) the value set are checked."""
    ref = np.asarray(expected)
    assert out.shape == ref.shape and out.dtype == ref.dtype, where
    assert np.isin(out, [0, 1]).all(), f"{where}: Bernoulli values must be 0 or 1"


RANDOM_CASES = ("test_bernoulli",)
CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})


@pytest.mark.parametrize("name", _case_names())
def test_onnx_node_case(name: str) -> None:
    case = _cases()[name]
    flow = sorted({op for _, op in _node_ops(case.model)} & CONTROL_FLOW)
    if flow:
        pytest.skip(f"control flow ({', '.join(flow)}) needs the device compiler's captured "
                    "values; tests/test_node_suite_devices.py runs this case on the CPU device")
    missing = _missing_ops(case.model)
    if missing:
        pytest.skip(f"needs math-family op(s) not registered yet: {', '.join(missing)}")
    for inputs, expected in case.data_sets:
        try:
            outs = run_model(case.model, [_to_value(v) for v in inputs])
        except ImportError as exc:  # a reference fallback whose optional dependency is absent
            pytest.skip(f"reference implementation needs a missing package: {exc}")
        assert len(outs) == len(expected)
        for i, (ref, out) in enumerate(zip(expected, outs)):
            where = f"{name} output {i}"
            if name.startswith(RANDOM_CASES):
                _check_random(_to_value(ref), out, where)
            else:
                assert_similar(_to_value(ref), out, case.rtol, case.atol, where)


# --- randomized comparisons at realistic sizes -------------------------------------------


def _single_node_model(node: onnx.NodeProto, inputs: Sequence[tuple[str, Any]],
                       n_out: int, opset: int) -> onnx.ModelProto:
    def vi(name: str, arr: np.ndarray) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape
        )

    graph = helper.make_graph(
        [node],
        "g",
        [vi(n, a) for n, a in inputs if a is not None],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in node.output[:n_out]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _compare_with(engine: str, node: onnx.NodeProto, feeds: Sequence[tuple[str, Any]],
                  opset: int, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    present = [(n, a) for n, a in feeds if a is not None]
    model = _single_node_model(node, feeds, len(node.output), opset)
    ours = run_model(model, [a for _, a in present])
    if engine == "reference":
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(model).run(None, dict(present))
    else:
        ort = pytest.importorskip("onnxruntime")
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ref = sess.run(None, dict(present))
    for i, (r, o) in enumerate(zip(ref, ours)):
        assert o.dtype == r.dtype and o.shape == r.shape, f"output {i}: {o.dtype}{o.shape} vs {r.dtype}{r.shape}"
        np.testing.assert_allclose(o, r, rtol=rtol, atol=atol, err_msg=f"output {i}")


def _rnn_feeds(op: str, seq: int, batch: int, inp: int, hidden: int, dirs: int, layout: int,
               rng: np.random.Generator, lens: bool = False, peep: bool = True
               ) -> list[tuple[str, np.ndarray | None]]:
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    f32 = np.float32
    x_shape = (batch, seq, inp) if layout else (seq, batch, inp)
    h_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    feeds: list[tuple[str, np.ndarray | None]] = [
        ("X", rng.standard_normal(x_shape).astype(f32)),
        ("W", (rng.standard_normal((dirs, gates * hidden, inp)) * 0.2).astype(f32)),
        ("R", (rng.standard_normal((dirs, gates * hidden, hidden)) * 0.2).astype(f32)),
        ("B", (rng.standard_normal((dirs, 2 * gates * hidden)) * 0.1).astype(f32)),
        ("sequence_lens", rng.integers(1, seq + 1, batch).astype(np.int32) if lens else None),
        ("initial_h", rng.standard_normal(h_shape).astype(f32)),
    ]
    if op == "LSTM":
        feeds.append(("initial_c", rng.standard_normal(h_shape).astype(f32)))
        feeds.append(("P", (rng.standard_normal((dirs, 3 * hidden)) * 0.1).astype(f32) if peep else None))
    return feeds


def _rnn_node(op: str, feeds: list[tuple[str, np.ndarray | None]], hidden: int, **attrs: Any) -> onnx.NodeProto:
    outs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    return helper.make_node(op, [n if a is not None else "" for n, a in feeds], outs,
                            hidden_size=hidden, **attrs)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_recurrent_vs_reference(op: str, direction: str) -> None:
    rng = np.random.default_rng(7)
    dirs = 2 if direction == "bidirectional" else 1
    feeds = _rnn_feeds(op, 16, 4, 32, 64, dirs, 0, rng)
    _compare_with("reference", _rnn_node(op, feeds, 64, direction=direction), feeds, 14)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_recurrent_layout1_vs_reference(op: str) -> None:
    rng = np.random.default_rng(8)
    feeds = _rnn_feeds(op, 12, 3, 16, 32, 2, 1, rng)
    node = _rnn_node(op, feeds, 32, direction="bidirectional", layout=1)
    _compare_with("reference", node, feeds, 14)


def test_gru_linear_before_reset_vs_reference() -> None:
    rng = np.random.default_rng(9)
    feeds = _rnn_feeds("GRU", 16, 4, 32, 64, 2, 0, rng)
    node = _rnn_node("GRU", feeds, 64, direction="bidirectional", linear_before_reset=1)
    _compare_with("reference", node, feeds, 14)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_recurrent_lens_clip_activations_vs_onnxruntime(op: str) -> None:
    rng = np.random.default_rng(10)
    feeds = _rnn_feeds(op, 16, 4, 32, 64, 2, 0, rng, lens=True)
    acts = {"LSTM": ["HardSigmoid", "Tanh", "Tanh", "Sigmoid", "Tanh", "Tanh"],
            "GRU": ["Sigmoid", "Tanh", "HardSigmoid", "Tanh"], "RNN": ["Tanh", "Relu"]}[op]
    node = _rnn_node(op, feeds, 64, direction="bidirectional", clip=2.5, activations=acts,
                     activation_alpha=[0.3], activation_beta=[0.4])
    if op == "GRU":
        node.attribute.append(helper.make_attribute("linear_before_reset", 1))
    _compare_with("onnxruntime", node, feeds, 14)


_RESIZE_CASES = [
    ("nearest", "half_pixel", "round_prefer_floor", (9, 40), 0),
    ("nearest", "asymmetric", "floor", (34, 11), 0),
    ("nearest", "align_corners", "round_prefer_ceil", (20, 30), 0),
    ("nearest", "pytorch_half_pixel", "ceil", (1, 46), 0),
    ("linear", "half_pixel", "", (9, 40), 0),
    ("linear", "align_corners", "", (30, 12), 0),
    ("linear", "half_pixel_symmetric", "", (25, 31), 0),
    ("linear", "pytorch_half_pixel", "", (7, 5), 1),
    ("cubic", "half_pixel", "", (31, 19), 0),
    ("cubic", "asymmetric", "", (8, 60), 1),
    ("cubic", "half_pixel", "", (6, 9), 1),
]


@pytest.mark.parametrize("mode,ctm,nearest,sizes,antialias", _RESIZE_CASES)
def test_resize_vs_reference(mode: str, ctm: str, nearest: str, sizes: tuple[int, int],
                             antialias: int) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 17, 23)).astype(np.float32)
    attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": ctm,
                             "antialias": antialias}
    if nearest:
        attrs["nearest_mode"] = nearest
    if mode == "cubic":
        attrs.update(cubic_coeff_a=-0.5, exclude_outside=1)
    node = helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], **attrs)
    feeds = [("X", x), ("sizes", np.array([2, 3, *sizes], dtype=np.int64))]
    _compare_with("reference", node, feeds, 19)


def test_resize_scales_axes_and_crop_vs_reference() -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 17, 23)).astype(np.float32)
    node = helper.make_node("Resize", ["X", "roi", "scales"], ["Y"], mode="linear",
                            coordinate_transformation_mode="tf_crop_and_resize",
                            extrapolation_value=3.0, axes=[3, 2])
    feeds = [("X", x), ("roi", np.array([-0.2, 0.1, 1.1, 0.8], dtype=np.float32)),
             ("scales", np.array([1.7, 0.6], dtype=np.float32))]
    _compare_with("reference", node, feeds, 19)
    node = helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], mode="nearest",
                            keep_aspect_ratio_policy="not_larger", axes=[2, 3])
    _compare_with("reference", node, [("X", x), ("sizes", np.array([30, 30], dtype=np.int64))], 19)


# --- registration and the reference fallback ---------------------------------------------

DATA_NUMPY_OPS = """Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather GatherElements
GatherND ScatterElements ScatterND Scatter Expand Tile Pad Resize Upsample Shape Size Cast CastLike
Constant ConstantOfShape Identity Range OneHot NonZero Trilu DepthToSpace SpaceToDepth EyeLike
ReverseSequence Compress Unique TopK CenterCropPad Col2Im GridSample RoiAlign NonMaxSuppression
Bernoulli RandomNormal RandomNormalLike RandomUniform RandomUniformLike StringNormalizer
RegexFullMatch StringConcat StringSplit QuantizeLinear DequantizeLinear DynamicQuantizeLinear
Optional OptionalHasElement OptionalGetElement SequenceConstruct SequenceEmpty SequenceInsert
SequenceAt SequenceErase SequenceLength SplitToSequence ConcatFromSequence LSTM GRU RNN""".split()


@pytest.mark.parametrize("op", DATA_NUMPY_OPS)
def test_data_op_has_numpy_kernel(op: str) -> None:
    assert _family("", op) == "data", f"{op} is served by {_family('', op)}"


def test_fallback_registration() -> None:
    from aioplug_cpu.kernels.data.fallback import reference_kernel_factory

    assert data_family.finalize() == []  # idempotent: everything is registered already
    for op in ("If", "Loop", "Scan", "SequenceMap"):  # never wrapped: the compiler owns them
        versions = registered_ops().get(("", op))
        if versions:
            assert not isinstance(lookup("", op, max(versions)), ReferenceKernelFactory), op
    node = kernels.KernelNode(op_type="HannWindow", domain="", opset=17, attributes={"periodic": 1},
                              num_inputs=1, num_outputs=1)
    k = reference_kernel_factory("HannWindow")(node)
    assert k.exec_type == "reference"
    (out,) = k(np.array(8, dtype=np.int64))
    assert out.shape == (8,) and out.dtype == np.float32


# --- small randomized checks of corners the node cases touch lightly ---------------------


def test_slice_negative_steps_and_clamping() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 9, 5)).astype(np.float32)
    node = helper.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"])
    for starts, ends, steps in [([-1, 100], [-100, 2], [-2, -3]), ([8, 0], [-9, 9], [-1, 2]),
                                ([2, -20], [2, 20], [1, 4])]:
        feeds = [("x", x), ("s", np.array(starts, np.int64)), ("e", np.array(ends, np.int64)),
                 ("a", np.array([1, 0], np.int64)), ("p", np.array(steps, np.int64))]
        _compare_with("reference", node, feeds, 13, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes_with_axes_and_negative_pads(mode: str) -> None:
    x = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    node = helper.make_node("Pad", ["x", "pads", "v", "axes"], ["y"], mode=mode)
    feeds = [("x", x), ("pads", np.array([2, -1, 1, 3], np.int64)), ("v", np.array(7.5, np.float32)),
             ("axes", np.array([-1, 1], np.int64))]
    _compare_with("onnxruntime", node, feeds, 19, rtol=0, atol=0)  # reference lacks negative pads


def test_topk_ties_and_gather_scatter_nd() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, (5, 12)).astype(np.float32)
    for largest in (0, 1):
        node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)
        _compare_with("reference", node, [("x", x), ("k", np.array([5], np.int64))], 11, 0, 0)
    data = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    idx = rng.integers(-3, 3, (2, 6, 2)).astype(np.int64)
    node = helper.make_node("GatherND", ["d", "i"], ["y"], batch_dims=1)
    _compare_with("reference", node, [("d", data), ("i", idx)], 13, 0, 0)
    for red in ("add", "mul", "max", "min"):
        upd = rng.standard_normal((3, 4, 5)).astype(np.float32)
        ind = np.array([[0, 1], [1, 2], [0, 1]], np.int64)
        node = helper.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction=red)
        _compare_with("reference", node, [("d", data), ("i", ind), ("u", upd)], 18)
