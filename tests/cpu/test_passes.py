"""Each CPU graph pass alone: it rewrites what it should, and outputs stay equal to onnx's
reference evaluator on the original model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug_cpu.compiler import Graph, PassManager, build_plan
from aioplug_cpu.compiler.passes import fold_constants, remove_dead_nodes
from aioplug_cpu.compiler.passes.fusions import (
    fold_batchnorm_into_conv,
    fuse_activations,
    fuse_conv_add,
    fuse_expand_depthwise,
    fuse_gelu,
    fuse_layernorm,
    fuse_matmul_bias,
    move_activation_into_depthwise,
)
from aioplug_cpu.compiler.passes.shape_folding import fold_shapes
from aioplug_cpu.kernels.math import _jit
from cpu_support import infer_at_threads

rng = np.random.default_rng(0)


def f32(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
          inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    m = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def run_graph(proto: onnx.ModelProto, passes: list[object], feeds: dict[str, np.ndarray]) -> tuple[Graph, list[np.ndarray]]:
    ir = aioplug.read_model(proto)
    graph = Graph.from_model(ir)
    PassManager(passes).run(graph)  # type: ignore[arg-type]
    plan = build_plan(graph, extra={"opsets": dict(graph.opsets)})
    return graph, plan.run([feeds[p.name] for p in ir.inputs])


def check(proto: onnx.ModelProto, passes: list[object], feeds: dict[str, np.ndarray]) -> Graph:
    graph, outs = run_graph(proto, passes, feeds)
    expected = ReferenceEvaluator(proto).run(None, feeds)
    for got, want in zip(outs, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return graph


def ops(graph: Graph) -> list[str]:
    return [n.op_type for n in graph.nodes]


def test_constant_folding_and_dead_nodes_remove_constant_subgraphs() -> None:
    proto = model(
        [
            helper.make_node("Add", ["c1", "c2"], ["c3"]),
            helper.make_node("Mul", ["c3", "c3"], ["c4"]),
            helper.make_node("Neg", ["x"], ["unused"]),
            helper.make_node("Add", ["x", "c4"], ["y"]),
        ],
        [f32("x", [2, 3])], [f32("y", [2, 3])],
        [const("c1", np.ones((2, 3), np.float32)), const("c2", np.full((2, 3), 2, np.float32))],
    )
    graph = check(proto, [fold_constants, remove_dead_nodes], {"x": rng.standard_normal((2, 3)).astype(np.float32)})
    assert ops(graph) == ["Add"]
    np.testing.assert_array_equal(graph.const("c4"), np.full((2, 3), 9, np.float32))


def test_shape_chains_of_static_values_fold_away() -> None:
    proto = model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["d0"], axis=0),
            helper.make_node("Unsqueeze", ["d0", "zero1"], ["d0u"]),
            helper.make_node("Concat", ["d0u", "minus1"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["y"]),
        ],
        [f32("x", [2, 3, 4])], [f32("y", [2, 12])],
        [const("zero", np.array(0, np.int64)), const("zero1", np.array([0], np.int64)),
         const("minus1", np.array([-1], np.int64))],
    )
    graph = check(proto, [fold_shapes, fold_constants, remove_dead_nodes],
                  {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})
    assert ops(graph) == ["Reshape"]


def conv_bn_relu() -> onnx.ModelProto:
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    stats = [rng.uniform(0.5, 1.5, 8), rng.standard_normal(8), rng.standard_normal(8), rng.uniform(0.5, 2, 8)]
    return model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c", "s", "bias", "mean", "var"], ["n"], epsilon=1e-3),
            helper.make_node("Relu", ["n"], ["y"]),
        ],
        [f32("x", [1, 3, 8, 8])], [f32("y", [1, 8, 8, 8])],
        [const("w", w), const("b", rng.standard_normal(8).astype(np.float32))]
        + [const(n, v.astype(np.float32)) for n, v in zip(["s", "bias", "mean", "var"], stats)],
    )


def test_batchnorm_folds_into_conv_and_relu_fuses_in_place() -> None:
    feeds = {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    proto = conv_bn_relu()
    graph = check(proto, [fold_batchnorm_into_conv, fuse_activations, remove_dead_nodes], feeds)
    assert ops(graph) == ["FusedConv"]
    assert graph.nodes[0].attrs["activation"] == "Relu"
    assert set(graph.nodes[0].original) == {n.name for n in aioplug.read_model(proto).nodes}


def test_a_conv_output_read_twice_is_not_fused() -> None:
    w = rng.standard_normal((4, 2, 1, 1)).astype(np.float32)
    proto = model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Add", ["c", "r"], ["y"]),
        ],
        [f32("x", [1, 2, 4, 4])], [f32("y", [1, 4, 4, 4])], [const("w", w)],
    )
    graph = check(proto, [fuse_activations], {"x": rng.standard_normal((1, 2, 4, 4)).astype(np.float32)})
    assert ops(graph) == ["Conv", "Relu", "Add"]


def test_matmul_add_becomes_matmul_bias_and_clip_fuses_as_relu6() -> None:
    proto = model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("Add", ["b", "m"], ["a"]),
            helper.make_node("Clip", ["a", "lo", "hi"], ["y"]),
        ],
        [f32("x", [2, 5, 8])], [f32("y", [2, 5, 6])],
        [const("w", rng.standard_normal((8, 6)).astype(np.float32)), const("b", rng.standard_normal(6).astype(np.float32)),
         const("lo", np.array(0, np.float32)), const("hi", np.array(6, np.float32))],
    )
    graph = check(proto, [fuse_matmul_bias, fuse_activations, remove_dead_nodes],
                  {"x": rng.standard_normal((2, 5, 8)).astype(np.float32) * 4})
    assert ops(graph) == ["FusedMatMulBias"]


def layernorm_model() -> onnx.ModelProto:
    return model(
        [
            helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
            helper.make_node("Sub", ["x", "mu"], ["d"]),
            helper.make_node("Pow", ["d", "two"], ["d2"]),
            helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
            helper.make_node("Add", ["var", "eps"], ["ve"]),
            helper.make_node("Sqrt", ["ve"], ["sd"]),
            helper.make_node("Div", ["d", "sd"], ["n"]),
            helper.make_node("Mul", ["n", "gamma"], ["g"]),
            helper.make_node("Add", ["g", "beta"], ["y"]),
        ],
        [f32("x", [2, 7, 16])], [f32("y", [2, 7, 16])],
        [const("two", np.array(2, np.float32)), const("eps", np.array(1e-5, np.float32)),
         const("gamma", rng.standard_normal(16).astype(np.float32)), const("beta", rng.standard_normal(16).astype(np.float32))],
    )


def test_decomposed_layernorm_is_matched() -> None:
    graph = check(layernorm_model(), [fuse_layernorm, remove_dead_nodes],
                  {"x": rng.standard_normal((2, 7, 16)).astype(np.float32) * 3 + 1})
    assert ops(graph) == ["LayerNorm"]


@pytest.mark.parametrize("half_first", [False, True])
def test_erf_gelu_is_matched_in_both_exporter_orders(half_first: bool) -> None:
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["s"]), helper.make_node("Erf", ["s"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"])]
    if half_first:
        nodes += [helper.make_node("Mul", ["x", "half"], ["xh"]), helper.make_node("Mul", ["xh", "e1"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", ["x", "e1"], ["xe"]), helper.make_node("Mul", ["xe", "half"], ["y"])]
    proto = model(nodes, [f32("x", [3, 10])], [f32("y", [3, 10])],
                  [const("sqrt2", np.array(np.sqrt(2), np.float32)), const("one", np.array(1, np.float32)),
                   const("half", np.array(0.5, np.float32))])
    graph = check(proto, [fuse_gelu, remove_dead_nodes], {"x": rng.standard_normal((3, 10)).astype(np.float32) * 2})
    assert ops(graph) == ["Gelu"]


@pytest.mark.parametrize("case", ["conv_bn_relu", "residual_block"])
async def test_fused_models_export_and_import_as_onnx(case: str) -> None:
    import io

    if case == "conv_bn_relu":
        proto, shape = conv_bn_relu(), (1, 3, 8, 8)
    else:
        proto, shape = residual_block("gemm", False, True, True), (2, 6, 7, 7)
    feeds = {"x": rng.standard_normal(shape).astype(np.float32)}
    async with aioplug.Core() as core:
        compiled = await core.compile_model(proto, "CPU")
        stream = io.BytesIO()
        compiled.export_model(stream)
        again = await core.import_model(io.BytesIO(stream.getvalue()), "CPU")
        a, b = await compiled.infer(feeds), await again.infer(feeds)
    name = proto.graph.output[0].name
    np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_allclose(b[name], ReferenceEvaluator(proto).run(None, feeds)[0], rtol=1e-4, atol=1e-4)


def inverted_residual(
    expand_bias: bool, dw_bias: bool, relu6: bool, stride: int, size: int = 9,
    channels: int = 12, pads: list[int] | str = "1111",
) -> onnx.ModelProto:
    """1x1 expand + Relu/Clip(0, 6) -> 3x3 depthwise + Relu, as in MobileNetV2's blocks, on
    ``(2, 4, size, size)``; ``pads`` as ONNX's list or an ``auto_pad`` mode."""
    inits = [const("we", rng.standard_normal((channels, 4, 1, 1)).astype(np.float32)),
             const("wd", rng.standard_normal((channels, 1, 3, 3)).astype(np.float32))]
    expand_in, dw_in = ["x", "we"], ["e", "wd"]
    if expand_bias:
        inits.append(const("be", rng.standard_normal(channels).astype(np.float32)))
        expand_in.append("be")
    if dw_bias:
        inits.append(const("bd", rng.standard_normal(channels).astype(np.float32)))
        dw_in.append("bd")
    act = helper.make_node("Relu", ["e"], ["a"])
    if relu6:
        inits += [const("lo", np.array(0, np.float32)), const("hi", np.array(6, np.float32))]
        act = helper.make_node("Clip", ["e", "lo", "hi"], ["a"])
    dw_in[0] = "a"
    padding: dict[str, object] = {"pads": [1, 1, 1, 1]} if pads == "1111" else (
        {"pads": pads} if isinstance(pads, list) else {"auto_pad": pads}
    )
    return model(
        [
            helper.make_node("Conv", expand_in, ["e"], name="expand"),
            act,
            helper.make_node("Conv", dw_in, ["d"], name="dw", group=channels,
                             strides=[stride, stride], **padding),
            helper.make_node("Relu", ["d"], ["y"]),
        ],
        [f32("x", [2, 4, size, size])], [f32("y", [2, channels, "h", "w"])], inits,
    )


@pytest.mark.parametrize("expand_bias,dw_bias,relu6,stride", [
    (True, True, True, 1), (False, True, False, 2), (True, False, True, 2), (False, False, False, 1),
])
def test_the_expand_convs_bias_and_activation_move_into_the_depthwise_conv(
    expand_bias: bool, dw_bias: bool, relu6: bool, stride: int, kernel_kind: str
) -> None:
    # numbers well away from zero, so a bias or a clip applied in the wrong place shows
    feeds = {"x": (rng.standard_normal((2, 4, 9, 9)) * 3).astype(np.float32)}
    proto = inverted_residual(expand_bias, dw_bias, relu6, stride)
    graph = check(proto, [fuse_activations, move_activation_into_depthwise, remove_dead_nodes], feeds)
    assert ops(graph) == ["Conv", "FusedConv"]
    expand, dw = graph.nodes
    assert len(expand.inputs) == 2 and "activation" not in expand.attrs
    assert dw.attrs["input_activation"] == ("Clip" if relu6 else "Relu")
    assert dw.attrs["activation"] == "Relu" and len(dw.inputs) == 4
    names = {n.name for n in aioplug.read_model(proto).nodes}
    assert set(expand.original) | set(dw.original) == names and "expand" not in dw.original


def test_a_depthwise_input_read_twice_keeps_its_activation() -> None:
    proto = inverted_residual(True, True, True, 1)
    proto.graph.output.append(f32("a", [2, 12, 9, 9]))
    graph = check(proto, [fuse_activations, move_activation_into_depthwise],
                  {"x": rng.standard_normal((2, 4, 9, 9)).astype(np.float32)})
    assert [n.attrs.get("input_activation") for n in graph.nodes] == [None, None]


def residual_block(kind: str, bias: bool, relu: bool, z_after: bool, side: int = 7) -> onnx.ModelProto:
    """``Relu(Add(Conv(x), z))`` with ``z = Neg(x)`` on ``(2, 6, side, side)``: a 3x3
    (Winograd), 1x1 (GEMM) or depthwise conv; ``z_after`` lists z's node after the conv's."""
    shape = {"winograd": (6, 6, 3, 3), "gemm": (6, 6, 1, 1), "depthwise": (6, 1, 3, 3)}[kind]
    attrs: dict[str, object] = {"pads": [1, 1, 1, 1]} if shape[2] == 3 else {}
    if kind == "depthwise":
        attrs["group"] = 6
    inits = [const("w", rng.standard_normal(shape).astype(np.float32))]
    conv_in = ["x", "w"]
    if bias:
        inits.append(const("b", rng.standard_normal(6).astype(np.float32)))
        conv_in.append("b")
    conv = helper.make_node("Conv", conv_in, ["c"], name="conv", **attrs)
    neg = helper.make_node("Neg", ["x"], ["z"])
    nodes = [conv, neg] if z_after else [neg, conv]
    nodes.append(helper.make_node("Add", ["z", "c"], ["s"], name="add"))
    last = "s"
    if relu:
        nodes.append(helper.make_node("Relu", ["s"], ["y"]))
        last = "y"
    return model(nodes, [f32("x", [2, 6, side, side])], [f32(last, [2, 6, side, side])], inits)


@pytest.mark.parametrize("kind,bias,relu,z_after,side", [
    ("winograd", True, True, False, 7), ("winograd", False, False, True, 7),
    ("winograd", True, True, False, 35),  # wide: the flat Winograd transforms
    ("gemm", True, True, True, 7), ("gemm", False, False, False, 7),
    ("depthwise", True, True, False, 7), ("depthwise", False, False, True, 7),
])
def test_a_residual_add_fuses_into_the_conv(
    kind: str, bias: bool, relu: bool, z_after: bool, side: int, kernel_kind: str
) -> None:
    feeds = {"x": rng.standard_normal((2, 6, side, side)).astype(np.float32)}
    proto = residual_block(kind, bias, relu, z_after, side)
    graph = check(proto, [fuse_conv_add, fuse_activations, remove_dead_nodes], feeds)
    assert ops(graph) == ["Neg", "FusedConvAdd" if relu else "ConvAdd"]
    fused = graph.nodes[1]
    assert fused.inputs[3] == "z" and "add" in fused.original


def test_a_broadcast_add_is_not_fused_into_the_conv() -> None:
    proto = residual_block("gemm", True, False, False)
    proto.graph.node[0].CopyFrom(helper.make_node("ReduceMean", ["x"], ["z"], axes=[2, 3], keepdims=1))
    graph = check(proto, [fuse_conv_add], {"x": rng.standard_normal((2, 6, 7, 7)).astype(np.float32)})
    assert ops(graph) == ["ReduceMean", "Conv", "Add"]


async def test_fused_residual_blocks_run_on_the_device_with_their_exec_types() -> None:
    feeds = {"x": rng.standard_normal((2, 6, 7, 7)).astype(np.float32)}
    proto = residual_block("winograd", True, True, False)
    async with aioplug.Core() as core:
        compiled = await core.compile_model(proto, "CPU", {"PERF_COUNT": True})
        request = compiled.create_infer_request()
        got = (await request.infer(feeds))["y"]
        records = {r.node_name: (r.exec_type, r.status) for r in request.get_profiling_info()}
    np.testing.assert_allclose(got, ReferenceEvaluator(proto).run(None, feeds)[0], rtol=1e-4, atol=1e-4)

    assert records["conv"][0] == ("winograd+add+relu" if _jit.available() else "gemm_im2col+add+relu")
    assert records["add"][1] == "OPTIMIZED_OUT"  # its work is done by the conv's record


async def test_a_moved_activation_survives_export_and_import() -> None:
    import io

    feeds = {"x": rng.standard_normal((2, 4, 9, 9)).astype(np.float32) * 3}
    proto = inverted_residual(True, False, True, 2)
    async with aioplug.Core() as core:
        config = {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": 1}  # 1x1 convs on the tiles
        compiled = await core.compile_model(proto, "CPU", config)
        stream = io.BytesIO()
        compiled.export_model(stream)
        again = await core.import_model(io.BytesIO(stream.getvalue()), "CPU")
        a, b = await compiled.infer(feeds), await again.infer(feeds)
        request = again.create_infer_request()
        await request.infer(feeds)
        records = {r.node_name: r.exec_type for r in request.get_profiling_info()}
    np.testing.assert_array_equal(a["y"], b["y"])
    np.testing.assert_allclose(b["y"], ReferenceEvaluator(proto).run(None, feeds)[0], rtol=1e-4, atol=1e-4)
    # a 9x9 plane at stride 2 is not the fused kernel's geometry: the two convs' kernels run
    assert records["dw"].split("|")[0] == ("pointwise_jit" if _jit.available() else "gemm_im2col")


def test_the_expand_conv_fuses_into_its_depthwise_conv(kernel_kind: str) -> None:
    feeds = {"x": (rng.standard_normal((2, 4, 8, 8)) * 3).astype(np.float32)}
    proto = inverted_residual(True, False, True, 2, size=8)
    passes = [fuse_activations, move_activation_into_depthwise, fuse_expand_depthwise,
              remove_dead_nodes]
    graph = check(proto, passes, feeds)
    assert ops(graph) == ["ExpandDepthwise"]
    (fused,) = graph.nodes
    assert fused.inputs[:3] == ["x", "we", "wd"] and fused.attrs["input_activation"] == "Clip"
    names = {n.name for n in aioplug.read_model(proto).nodes}
    assert set(fused.original) == names


async def test_a_fused_block_with_a_dynamic_plane_runs_the_two_kernels_where_it_must() -> None:
    """An unknown plane size decides per run: 8x8 at stride 2 fits the fused kernel, 9x9 does
    not and runs on the two convs' kernels; both match the reference."""
    proto = inverted_residual(True, True, True, 2, size=8)
    proto.graph.input[0].CopyFrom(f32("x", [2, 4, "h", "w"]))
    async with aioplug.Core() as core:
        config = {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": 1}
        compiled = await core.compile_model(proto, "CPU", config)
        for size in (8, 9, 8):
            feeds = {"x": (rng.standard_normal((2, 4, size, size)) * 3).astype(np.float32)}
            got = (await compiled.infer(feeds))["y"]
            np.testing.assert_allclose(
                got, ReferenceEvaluator(proto).run(None, feeds)[0], rtol=1e-4, atol=1e-4
            )


def stem_block(stride: int, dw_stride: int, size: int, pads: list[int] | str) -> onnx.ModelProto:
    """A stem (3 -> 10 channels, 3x3) + Clip(0, 6) -> 3x3 depthwise + Relu, as MobileNetV2
    begins; ``pads`` the stem's, as a list or an ``auto_pad`` mode."""
    inits = [const("ws", rng.standard_normal((10, 3, 3, 3)).astype(np.float32)),
             const("bs", rng.standard_normal(10).astype(np.float32)),
             const("wd", rng.standard_normal((10, 1, 3, 3)).astype(np.float32)),
             const("lo", np.array(0, np.float32)), const("hi", np.array(6, np.float32))]
    padding: dict[str, object] = {"pads": pads} if isinstance(pads, list) else {"auto_pad": pads}
    return model(
        [
            helper.make_node("Conv", ["x", "ws", "bs"], ["s"], name="stem",
                             strides=[stride, stride], **padding),
            helper.make_node("Clip", ["s", "lo", "hi"], ["a"]),
            helper.make_node("Conv", ["a", "wd"], ["d"], name="dw", group=10,
                             pads=[1, 1, 1, 1], strides=[dw_stride, dw_stride]),
            helper.make_node("Relu", ["d"], ["y"]),
        ],
        [f32("x", [2, 3, size, size])], [f32("y", [2, 10, "h", "w"])], inits,
    )


@pytest.mark.parametrize("stride, dw_stride, size, pads, fused", [
    (2, 1, 32, [1, 1, 1, 1], True),  # MobileNetV2's stem and first depthwise conv
    (1, 1, 19, "SAME_UPPER", True),
    (2, 2, 36, [0, 0, 1, 1], True),  # a stride-2 depthwise conv after the stem
    (2, 2, 34, [1, 1, 1, 1], False),  # 17x17 between them: not the fused geometry
])
async def test_a_stem_fuses_with_its_depthwise_conv(
    stride: int, dw_stride: int, size: int, pads: list[int] | str, fused: bool
) -> None:
    feeds = {"x": rng.standard_normal((2, 3, size, size)).astype(np.float32)}
    proto = stem_block(stride, dw_stride, size, pads)
    passes = [fuse_activations, move_activation_into_depthwise, fuse_expand_depthwise,
              remove_dead_nodes]
    graph = check(proto, passes, feeds)
    assert ops(graph) == ["ExpandDepthwise"]
    expected = ReferenceEvaluator(proto).run(None, feeds)[0]
    for threads in (1, 2):
        out, records = await infer_at_threads(proto, feeds, threads)
        np.testing.assert_allclose(out["y"], expected, rtol=1e-4, atol=1e-4)
        one_kernel = fused and threads == 1 and _jit.available()
        assert (records["dw"] == "direct_depthwise_jit+relu") == one_kernel
        assert ("|" in records["dw"]) != one_kernel  # else the two convs' kernels


@pytest.mark.parametrize("size, channels, stride, pads, fused", [
    (8, 12, 1, "1111", True),
    (8, 12, 2, "1111", True),  # top and left pads of 1
    (8, 14, 2, "SAME_UPPER", True),  # top and left pads of 0; a partial tile of channels
    (48, 14, 1, "1111", True),  # large planes, a group of channels at a time
    (48, 14, 2, [0, 1, 1, 0], True),  # split as stored, rows of 24 summed in place
    (6, 12, 2, "1111", True),  # 36 pixels, not whole strips: the depthwise kernel splits
    (34, 8, 2, "1111", True),  # the same on a large plane
    (9, 12, 2, "1111", False),  # an odd plane at stride 2: the two kernels
    (8, 12, 1, [0, 1, 2, 1], False),  # not the same size out: the two kernels
])
async def test_fused_blocks_match_the_reference_on_one_and_two_threads(
    size: int, channels: int, stride: int, pads: list[int] | str, fused: bool
) -> None:
    """At one thread per stream the block runs as one compiled kernel where its geometry
    allows, else (and at two threads) as the expand conv's and the depthwise conv's kernels."""
    feeds = {"x": (rng.standard_normal((2, 4, size, size)) * 3).astype(np.float32)}
    proto = inverted_residual(True, True, True, stride, size, channels, pads)
    expected = ReferenceEvaluator(proto).run(None, feeds)[0]
    for threads in (1, 2):
        out, records = await infer_at_threads(proto, feeds, threads)
        np.testing.assert_allclose(out["y"], expected, rtol=1e-4, atol=1e-4)
        one_kernel = fused and threads == 1 and _jit.available()
        assert (records["dw"] == "expand_depthwise_jit+relu") == one_kernel
        assert records["expand"].startswith("fused into")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


test_fused_models_export_and_import_as_onnx = pytest.mark.anyio(test_fused_models_export_and_import_as_onnx)
test_fused_residual_blocks_run_on_the_device_with_their_exec_types = pytest.mark.anyio(
    test_fused_residual_blocks_run_on_the_device_with_their_exec_types
)
test_a_moved_activation_survives_export_and_import = pytest.mark.anyio(
    test_a_moved_activation_survives_export_and_import
)
test_fused_blocks_match_the_reference_on_one_and_two_threads = pytest.mark.anyio(
    test_fused_blocks_match_the_reference_on_one_and_two_threads
)
test_a_stem_fuses_with_its_depthwise_conv = pytest.mark.anyio(
    test_a_stem_fuses_with_its_depthwise_conv
)
test_a_fused_block_with_a_dynamic_plane_runs_the_two_kernels_where_it_must = pytest.mark.anyio(
    test_a_fused_block_with_a_dynamic_plane_runs_the_two_kernels_where_it_must
)
