"""Real model architectures built with ``onnx.helper``: ResNet-18, MobileNetV2, a BERT-style
encoder, a stacked LSTM and an MLP.

Every builder returns a checked float32 ``onnx.ModelProto`` at opset 17 whose topology is the
real one, written node for node the way exporters (torch.onnx in particular) emit it: Conv
without bias followed by BatchNormalization, Relu6 as ``Clip(0, 6)``, attention head splits
through a Reshape whose target is computed at run time by a Shape/Gather/Unsqueeze/Concat
chain, LayerNorm and Gelu decomposed into elementwise ops. Weights come from
``np.random.default_rng(seed)`` at sensible scales (He init for convs, 1/sqrt(fan_in) for
dense layers), so a builder called twice gives the same model; BatchNormalization statistics
are non-trivial so that folding them into convs is exercised. Every size is a parameter, so
tests can build small instances (``resnet18(image=64)``, ``transformer_encoder(layers=1,
seq=16)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from .models import _f32, _model, mlp_model

__all__ = [
    "MOBILENET_V2_SETTINGS",
    "lstm_model",
    "mlp",
    "mobilenet_v2",
    "resnet18",
    "transformer_encoder",
]

#: MobileNetV2's inverted-residual table: (expansion t, output channels c, repeats n, stride s).
MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class _Graph:
    """Accumulates nodes and initializers; node names are torch-style scope paths.

    Each node's outputs are named ``{name}_output_{i}`` unless given, so scoped names stay
    unique as long as node names are.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def node(
        self,
        op: str,
        inputs: Sequence[str],
        name: str,
        outputs: Sequence[str] | None = None,
        n_out: int = 1,
        **attrs: Any,
    ) -> list[str]:
        """Appends one node and returns its output names."""
        if outputs is None:
            outputs = [f"{name}_output_{i}" for i in range(n_out)]
        outs = list(outputs)
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs

    def op(self, op: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        """Appends a single-output node and returns its output name."""
        return self.node(op, inputs, name, **attrs)[0]

    def init(self, name: str, value: npt.NDArray[Any]) -> str:
        """Adds an initializer and returns its name."""
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def const(self, name: str, value: npt.NDArray[Any]) -> str:
        """Adds a Constant node (as exporters emit for shape pieces and scalars)."""
        return self.op("Constant", [], name, value=numpy_helper.from_array(value))

    def normal(self, shape: tuple[int, ...], scale: float) -> npt.NDArray[np.float32]:
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> npt.NDArray[np.float32]:
        return self.rng.uniform(low, high, shape).astype(np.float32)

    # -- convolutional pieces -------------------------------------------------------------

    def conv_bn(
        self,
        x: str,
        scope: str,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        group: int = 1,
    ) -> str:
        """Conv (no bias, He init, "same" padding) followed by BatchNormalization."""
        fan_in = (c_in // group) * kernel * kernel
        he = self.normal((c_out, c_in // group, kernel, kernel), math.sqrt(2.0 / fan_in))
        w = self.init(f"{scope}.conv.weight", he)
        pad = kernel // 2
        y = self.op(
            "Conv", [x, w], f"{scope}/Conv",
            kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
            dilations=[1, 1], group=group,
        )
        return self.batch_norm(y, scope, c_out)

    def batch_norm(self, x: str, scope: str, channels: int) -> str:
        """BatchNormalization in inference mode with non-trivial statistics and affine."""
        scale = self.init(f"{scope}.bn.weight", self.uniform((channels,), 0.5, 1.0))
        bias = self.init(f"{scope}.bn.bias", self.normal((channels,), 0.1))
        mean = self.init(f"{scope}.bn.running_mean", self.normal((channels,), 0.1))
        var = self.init(f"{scope}.bn.running_var", self.uniform((channels,), 0.5, 1.5))
        return self.op(
            "BatchNormalization", [x, scale, bias, mean, var], f"{scope}/BatchNormalization",
            epsilon=1e-5, momentum=0.9,
        )

    def relu6(self, x: str, scope: str) -> str:
        """Relu6 as torch exports it at opset >= 11: Clip with min/max constant inputs."""
        lo = self.const(f"{scope}/Constant_min", np.array(0.0, dtype=np.float32))
        hi = self.const(f"{scope}/Constant_max", np.array(6.0, dtype=np.float32))
        return self.op("Clip", [x, lo, hi], f"{scope}/Clip")

    def classifier(self, x: str, channels: int, num_classes: int, output: str) -> None:
        """GlobalAveragePool, Flatten and a Gemm (transB=1, as nn.Linear exports) to ``output``."""
        pooled = self.op("GlobalAveragePool", [x], "/avgpool/GlobalAveragePool")
        flat = self.op("Flatten", [pooled], "/Flatten", axis=1)
        bound = 1.0 / math.sqrt(channels)
        w = self.init("fc.weight", self.uniform((num_classes, channels), -bound, bound))
        b = self.init("fc.bias", self.uniform((num_classes,), -bound, bound))
        self.node("Gemm", [flat, w, b], "/fc/Gemm", outputs=[output], alpha=1.0, beta=1.0, transB=1)

    def graph(
        self,
        name: str,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
    ) -> onnx.ModelProto:
        return _model(helper.make_graph(self.nodes, name, list(inputs), list(outputs), self.inits))


def resnet18(
    batch: int = 1, image: int = 224, num_classes: int = 1000, seed: int = 0
) -> onnx.ModelProto:
    """ResNet-18 (He et al. 2015, torchvision topology) on ``input`` (batch, 3, image, image).

    Stem: Conv 7x7/2 (64) + BatchNormalization + Relu + MaxPool 3x3/2 (pad 1). Then four stages
    of two BasicBlocks with 64, 128, 256 and 512 channels; a BasicBlock is Conv3x3+BN+Relu,
    Conv3x3+BN, Add with the shortcut, Relu. The first block of stages 2-4 has stride 2 and a
    1x1/2 Conv+BN downsample on its shortcut. Head: GlobalAveragePool, Flatten, Gemm to
    ``logits`` (batch, num_classes). ``image`` should be a multiple of 32.
    """
    g = _Graph(seed)
    x = g.conv_bn("input", "/conv1", 3, 64, 7, stride=2)
    x = g.op("Relu", [x], "/relu/Relu")
    x = g.op(
        "MaxPool", [x], "/maxpool/MaxPool",
        kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=0, dilations=[1, 1],
    )
    c_in = 64
    for stage, c_out in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            scope = f"/layer{stage}/layer{stage}.{block}"
            y = g.conv_bn(x, f"{scope}/conv1", c_in, c_out, 3, stride=stride)
            y = g.op("Relu", [y], f"{scope}/relu/Relu")
            y = g.conv_bn(y, f"{scope}/conv2", c_out, c_out, 3)
            shortcut = x
            if stride != 1 or c_in != c_out:
                shortcut = g.conv_bn(x, f"{scope}/downsample", c_in, c_out, 1, stride=stride)
            y = g.op("Add", [y, shortcut], f"{scope}/Add")
            x = g.op("Relu", [y], f"{scope}/relu_1/Relu")
            c_in = c_out
    g.classifier(x, 512, num_classes, "logits")
    return g.graph(
        "resnet18",
        [_f32("input", [batch, 3, image, image])],
        [_f32("logits", [batch, num_classes])],
    )


def mobilenet_v2(
    batch: int = 1, image: int = 224, num_classes: int = 1000, seed: int = 0
) -> onnx.ModelProto:
    """MobileNetV2 (Sandler et al. 2018, torchvision topology) on ``input`` (batch, 3, image,
    image).

    Stem: Conv 3x3/2 (32) + BN + Relu6. Then the inverted residual blocks of
    ``MOBILENET_V2_SETTINGS`` (t, c, n, s): each block is a 1x1 expand Conv+BN+Relu6 (absent
    when t == 1), a 3x3 depthwise Conv (group = channels, stride s on the first of the n
    repeats)+BN+Relu6, a 1x1 project Conv+BN, and a residual Add when the stride is 1 and the
    input and output channels are equal. Relu6 is ``Clip(x, 0, 6)``. Head: 1x1 Conv to 1280 +
    BN + Relu6, GlobalAveragePool, Flatten, Gemm to ``logits`` (batch, num_classes).
    """
    g = _Graph(seed)
    stem = "/features/features.0"
    x = g.relu6(g.conv_bn("input", stem, 3, 32, 3, stride=2), stem)
    c_in = 32
    index = 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            scope = f"/features/features.{index}/conv"
            hidden = c_in * t
            y = x
            if t != 1:
                y = g.relu6(g.conv_bn(y, f"{scope}/expand", c_in, hidden, 1), f"{scope}/expand")
            dw = f"{scope}/depthwise"
            y = g.relu6(g.conv_bn(y, dw, hidden, hidden, 3, stride=stride, group=hidden), dw)
            y = g.conv_bn(y, f"{scope}/project", hidden, c, 1)
            if stride == 1 and c_in == c:
                y = g.op("Add", [x, y], f"/features/features.{index}/Add")
            x = y
            c_in = c
            index += 1
    last = f"/features/features.{index}"
    x = g.relu6(g.conv_bn(x, last, c_in, 1280, 1), last)
    g.classifier(x, 1280, num_classes, "logits")
    return g.graph(
        "mobilenet_v2",
        [_f32("input", [batch, 3, image, image])],
        [_f32("logits", [batch, num_classes])],
    )


def _i64(*values: int) -> npt.NDArray[np.int64]:
    return np.array(values, dtype=np.int64)


def _f(value: float) -> npt.NDArray[np.float32]:
    return np.array(value, dtype=np.float32)


def _dims(g: _Graph, x: str, scope: str, count: int) -> list[str]:
    """The first ``count`` dims of ``x`` as 1-D int64 tensors via Shape, Gather, Unsqueeze.

    This is how torch.onnx exports ``x.size(i)`` used in a shape computation.
    """
    shape = g.op("Shape", [x], f"{scope}/Shape")
    dims = []
    for i in range(count):
        index = g.const(f"{scope}/Constant_{i}", np.array(i, dtype=np.int64))
        scalar = g.op("Gather", [shape, index], f"{scope}/Gather_{i}", axis=0)
        axes = g.const(f"{scope}/Constant_axes_{i}", _i64(0))
        dims.append(g.op("Unsqueeze", [scalar, axes], f"{scope}/Unsqueeze_{i}"))
    return dims


def _dense(g: _Graph, x: str, scope: str, n_in: int, n_out: int) -> str:
    """nn.Linear on a 3-D tensor as exporters emit it: MatMul by the (in, out) weight, Add bias."""
    bound = 1.0 / math.sqrt(n_in)
    w = g.init(f"{scope}.weight", g.uniform((n_in, n_out), -bound, bound))
    b = g.init(f"{scope}.bias", g.uniform((n_out,), -bound, bound))
    return g.op("Add", [g.op("MatMul", [x, w], f"{scope}/MatMul"), b], f"{scope}/Add")


def _layer_norm(
    g: _Graph, x: str, scope: str, d_model: int, fused: bool, eps: float = 1e-12
) -> str:
    """LayerNorm over the last axis: LayerNormalization, or the pre-opset-17 decomposition."""
    gamma = g.init(f"{scope}.weight", (1.0 + g.normal((d_model,), 0.1)).astype(np.float32))
    beta = g.init(f"{scope}.bias", g.normal((d_model,), 0.1))
    if fused:
        return g.op(
            "LayerNormalization", [x, gamma, beta], f"{scope}/LayerNormalization",
            axis=-1, epsilon=eps,
        )
    mean = g.op("ReduceMean", [x], f"{scope}/ReduceMean", axes=[-1], keepdims=1)
    centred = g.op("Sub", [x, mean], f"{scope}/Sub")
    square = g.op("Pow", [centred, g.const(f"{scope}/Constant", _f(2.0))], f"{scope}/Pow")
    var = g.op("ReduceMean", [square], f"{scope}/ReduceMean_1", axes=[-1], keepdims=1)
    var_eps = g.op("Add", [var, g.const(f"{scope}/Constant_1", _f(eps))], f"{scope}/Add")
    std = g.op("Sqrt", [var_eps], f"{scope}/Sqrt")
    normed = g.op("Div", [centred, std], f"{scope}/Div")
    return g.op("Add", [g.op("Mul", [normed, gamma], f"{scope}/Mul"), beta], f"{scope}/Add_1")


def _gelu_erf(g: _Graph, x: str, scope: str) -> str:
    """Gelu in its exact Erf form as torch exports it: ``x * 0.5 * (1 + erf(x / sqrt(2)))``."""
    scaled = g.op("Div", [x, g.const(f"{scope}/Constant", _f(math.sqrt(2.0)))], f"{scope}/Div")
    erf = g.op("Erf", [scaled], f"{scope}/Erf")
    one_plus = g.op("Add", [erf, g.const(f"{scope}/Constant_1", _f(1.0))], f"{scope}/Add")
    prod = g.op("Mul", [x, one_plus], f"{scope}/Mul")
    return g.op("Mul", [prod, g.const(f"{scope}/Constant_2", _f(0.5))], f"{scope}/Mul_1")


def _split_heads(g: _Graph, x: str, scope: str, heads: int, head_dim: int, perm: list[int]) -> str:
    """(batch, seq, d_model) to heads: Reshape to (batch, seq, heads, head_dim) whose target is
    computed at run time from ``Shape(x)``, then Transpose by ``perm``."""
    batch, seq = _dims(g, x, scope, 2)
    target = g.op(
        "Concat",
        [
            batch,
            seq,
            g.const(f"{scope}/Constant_heads", _i64(heads)),
            g.const(f"{scope}/Constant_head_dim", _i64(head_dim)),
        ],
        f"{scope}/Concat", axis=0,
    )
    split = g.op("Reshape", [x, target], f"{scope}/Reshape")
    return g.op("Transpose", [split], f"{scope}/Transpose", perm=perm)


def transformer_encoder(
    layers: int = 4,
    d_model: int = 256,
    heads: int = 4,
    d_ff: int = 1024,
    seq: int = 128,
    batch: int = 1,
    dynamic: bool = False,
    with_mask: bool = False,
    fused_ops: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    """A BERT-style post-LN encoder of ``layers`` layers, written as torch.onnx exports it.

    Input ``input`` float32 (batch, seq, d_model), and with ``with_mask`` an additive attention
    mask ``mask`` float32 (batch, 1, 1, seq) (0 to attend, a large negative value to mask);
    with ``dynamic`` batch and seq are the symbolic dims "batch" and "seq". Output ``output``
    (batch, seq, d_model). Per layer: Q, K and V as MatMul + Add(bias); heads split by a
    Reshape whose target comes from a Shape -> Gather -> Unsqueeze -> Concat chain, then
    Transpose (K straight to (batch, heads, head_dim, seq)); scores MatMul, Div by the constant
    sqrt(head_dim), Add mask, Softmax(axis=-1), MatMul with V, Transpose and Reshape back (again
    through a Shape chain); output projection MatMul + Add; residual Add; LayerNorm; FFN
    MatMul + Add, Gelu in the Erf form, MatMul + Add; residual Add; LayerNorm. LayerNorm is the
    pre-opset-17 decomposition (ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul,
    Add), or with ``fused_ops`` one LayerNormalization node.
    """
    if d_model % heads:
        raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
    head_dim = d_model // heads
    g = _Graph(seed)
    b_dim: int | str = "batch" if dynamic else batch
    s_dim: int | str = "seq" if dynamic else seq
    inputs = [_f32("input", [b_dim, s_dim, d_model])]
    if with_mask:
        inputs.append(_f32("mask", [b_dim, 1, 1, s_dim]))
    x = "input"
    for layer in range(layers):
        scope = f"/encoder/layer.{layer}"
        att = f"{scope}/attention/self"
        q, k, v = (
            _split_heads(
                g, _dense(g, x, f"{att}/{part}", d_model, d_model), f"{att}/{part}_heads",
                heads, head_dim, perm,
            )
            for part, perm in (
                ("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])
            )
        )
        scores = g.op("MatMul", [q, k], f"{att}/MatMul")
        scale = g.const(f"{att}/Constant_scale", _f(math.sqrt(head_dim)))
        scores = g.op("Div", [scores, scale], f"{att}/Div")
        if with_mask:
            scores = g.op("Add", [scores, "mask"], f"{att}/Add_mask")
        probs = g.op("Softmax", [scores], f"{att}/Softmax", axis=-1)
        context = g.op("MatMul", [probs, v], f"{att}/MatMul_1")
        context = g.op("Transpose", [context], f"{att}/Transpose_ctx", perm=[0, 2, 1, 3])
        merge = f"{att}/merge_heads"
        batch_d, seq_d = _dims(g, context, merge, 2)
        width = g.const(f"{merge}/Constant_d", _i64(d_model))
        target = g.op("Concat", [batch_d, seq_d, width], f"{merge}/Concat", axis=0)
        context = g.op("Reshape", [context, target], f"{merge}/Reshape")
        attn_out = _dense(g, context, f"{scope}/attention/output/dense", d_model, d_model)
        resid = g.op("Add", [attn_out, x], f"{scope}/attention/output/Add")
        x = _layer_norm(g, resid, f"{scope}/attention/output/LayerNorm", d_model, fused_ops)
        hidden = _dense(g, x, f"{scope}/intermediate/dense", d_model, d_ff)
        hidden = _gelu_erf(g, hidden, f"{scope}/intermediate/intermediate_act_fn")
        ffn_out = _dense(g, hidden, f"{scope}/output/dense", d_ff, d_model)
        resid = g.op("Add", [ffn_out, x], f"{scope}/output/Add")
        x = _layer_norm(g, resid, f"{scope}/output/LayerNorm", d_model, fused_ops)
    g.node("Identity", [x], "/Identity_output", outputs=["output"])
    return g.graph("transformer_encoder", inputs, [_f32("output", [b_dim, s_dim, d_model])])


def lstm_model(
    seq: int = 16,
    batch: int = 4,
    input_size: int = 32,
    hidden: int = 64,
    layers: int = 2,
    bidirectional: bool = True,
    num_classes: int = 10,
    seed: int = 0,
) -> onnx.ModelProto:
    """A stacked (optionally bidirectional) LSTM, as torch exports nn.LSTM, with a Gemm head.

    Inputs: ``x`` (seq, batch, input_size), ``h0`` and ``c0`` (layers * dirs, batch, hidden).
    Each layer is one ONNX LSTM node whose initial states are Sliced from ``h0``/``c0``; its Y
    (seq, dirs, batch, hidden) is Transposed and Reshaped to (seq, batch, dirs * hidden) for the
    next layer. Outputs: ``logits`` (batch, num_classes), a Gemm on the last time step;
    ``hn`` and ``cn`` (layers * dirs, batch, hidden), the layers' final states concatenated.
    """
    dirs = 2 if bidirectional else 1
    g = _Graph(seed)
    bound = 1.0 / math.sqrt(hidden)
    x = "x"
    n_in = input_size
    final_h: list[str] = []
    final_c: list[str] = []
    for layer in range(layers):
        scope = f"/lstm/layer{layer}"
        w = g.init(f"lstm.W_l{layer}", g.uniform((dirs, 4 * hidden, n_in), -bound, bound))
        r = g.init(f"lstm.R_l{layer}", g.uniform((dirs, 4 * hidden, hidden), -bound, bound))
        b = g.init(f"lstm.B_l{layer}", g.uniform((dirs, 8 * hidden), -bound, bound))
        starts = g.const(f"{scope}/Constant_starts", _i64(layer * dirs))
        ends = g.const(f"{scope}/Constant_ends", _i64((layer + 1) * dirs))
        axes = g.const(f"{scope}/Constant_axes", _i64(0))
        h_init = g.op("Slice", ["h0", starts, ends, axes], f"{scope}/Slice_h")
        c_init = g.op("Slice", ["c0", starts, ends, axes], f"{scope}/Slice_c")
        y, y_h, y_c = g.node(
            "LSTM", [x, w, r, b, "", h_init, c_init], f"{scope}/LSTM", n_out=3,
            hidden_size=hidden, direction="bidirectional" if bidirectional else "forward",
        )
        final_h.append(y_h)
        final_c.append(y_c)
        y = g.op("Transpose", [y], f"{scope}/Transpose", perm=[0, 2, 1, 3])
        flat_shape = g.const(f"{scope}/Constant_shape", _i64(0, 0, -1))
        x = g.op("Reshape", [y, flat_shape], f"{scope}/Reshape")
        n_in = dirs * hidden
    g.node("Concat", final_h, "/lstm/Concat_h", outputs=["hn"], axis=0)
    g.node("Concat", final_c, "/lstm/Concat_c", outputs=["cn"], axis=0)
    last_step = g.const("/Constant_last", np.array(-1, dtype=np.int64))
    last = g.op("Gather", [x, last_step], "/Gather_last", axis=0)
    fc_bound = 1.0 / math.sqrt(n_in)
    fc_w = g.init("fc.weight", g.uniform((num_classes, n_in), -fc_bound, fc_bound))
    fc_b = g.init("fc.bias", g.uniform((num_classes,), -fc_bound, fc_bound))
    g.node("Gemm", [last, fc_w, fc_b], "/fc/Gemm", outputs=["logits"], transB=1)
    states = [layers * dirs, batch, hidden]
    return g.graph(
        "lstm",
        [_f32("x", [seq, batch, input_size]), _f32("h0", states), _f32("c0", states)],
        [_f32("logits", [batch, num_classes]), _f32("hn", states), _f32("cn", states)],
    )


def mlp(
    batch: int | str = 1, sizes: tuple[int, ...] = (784, 512, 512, 10), seed: int = 0
) -> onnx.ModelProto:
    """The multilayer perceptron of ``models.mlp_model``: input ``x`` (batch, sizes[0]), output
    ``probs`` (batch, sizes[-1]) from Gemm+Relu layers, a final Gemm and Softmax."""
    return mlp_model(sizes=sizes, batch=batch, seed=seed)


BUILDERS: dict[str, Any] = {
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
    "transformer_encoder": transformer_encoder,
    "lstm": lstm_model,
    "mlp": mlp,
}
"""The builders by name, for ``python -m aioplug.testing.zoo NAME PATH``."""


def main(argv: list[str] | None = None) -> int:
    """Writes one zoo model to an .onnx file: ``python -m aioplug.testing.zoo resnet18 r18.onnx``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m aioplug.testing.zoo", description=main.__doc__)
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("path", help="where to write the .onnx file")
    args = parser.parse_args(argv)
    onnx.save(BUILDERS[args.name](), args.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
