"""Fusions that pay on the CPU: BatchNormalization folded into Conv, MatMul + bias,
LayerNorm and Gelu patterns, a residual Add into the Conv that feeds it, activations applied
in place on their producer's output, an expand conv's bias and activation moved into the
depthwise conv that reads it, and then the expand conv itself.

Each pass matches only when every intermediate value has exactly one reader and is not a
graph output, so no value another node needs disappears.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...kernels.math.conv import DIRECT_CHANNELS
from ..fused_kernels import ACTIVATIONS, CPU_DOMAIN, EXPAND_PREFIX, FUSABLE_BASES
from ..graph import Graph, GraphNode
from .shape_folding import fold_shapes

__all__ = [
    "fold_batchnorm_into_conv",
    "fuse_activations",
    "fuse_conv_add",
    "fuse_expand_depthwise",
    "fuse_gelu",
    "move_activation_into_depthwise",
    "fuse_layernorm",
    "fuse_matmul_bias",
    "fusion_passes",
]


def fusion_passes() -> list[Any]:
    """The fusion passes, in the order they run."""
    return [
        fold_shapes,
        fold_batchnorm_into_conv,
        fuse_matmul_bias,
        fuse_layernorm,
        fuse_gelu,
        fuse_conv_add,
        fuse_activations,
        move_activation_into_depthwise,
        fuse_expand_depthwise,
    ]


class _Uses:
    def __init__(self, graph: Graph) -> None:
        self.readers = graph.consumers()
        self.outputs = set(graph.outputs)
        self.producer = graph.producers()

    def only_reader(self, name: str) -> GraphNode | None:
        """The single node reading ``name`` when nothing else needs it."""
        readers = self.readers.get(name, [])
        if len(readers) != 1 or name in self.outputs:
            return None
        return readers[0]


def _scalar(graph: Graph, name: str) -> float | None:
    value = graph.const(name)
    if value is None or np.asarray(value).size != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


def _replace(graph: Graph, remove: list[GraphNode], insert_at: GraphNode, new: GraphNode) -> None:
    gone = {id(n) for n in remove}
    nodes = []
    for node in graph.nodes:
        if node is insert_at:
            nodes.append(new)
        elif id(node) not in gone:
            nodes.append(node)
    graph.nodes = nodes


# -- BatchNormalization into Conv ----------------------------------------------------------
def fold_batchnorm_into_conv(graph: Graph) -> int:
    """Folds an inference BatchNormalization into the Conv that feeds it."""
    uses = _Uses(graph)
    count = 0
    for bn in list(graph.nodes):
        if bn.op_type != "BatchNormalization" or bn.domain or len([o for o in bn.outputs if o]) != 1:
            continue
        if bn.attr("training_mode", 0):
            continue
        conv = uses.producer.get(bn.inputs[0])
        if conv is None or conv.op_type != "Conv" or conv.domain or uses.only_reader(conv.outputs[0]) is not bn:
            continue
        w = graph.const(conv.inputs[1])
        params = [graph.const(n) for n in bn.inputs[1:5]]
        if w is None or any(p is None for p in params) or w.dtype.kind != "f":
            continue
        scale, bias, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        b = graph.const(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
        if len(conv.inputs) > 2 and conv.inputs[2] and b is None:
            continue
        factor = scale / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
        new_w = (w.astype(np.float64) * factor.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        old_b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        new_b = ((old_b - mean) * factor + bias).astype(w.dtype)
        w_name, b_name = graph.fresh_name(f"{conv.name}_w"), graph.fresh_name(f"{conv.name}_b")
        for name, value in ((w_name, new_w), (b_name, new_b)):
            v = graph.value(name)
            v.const, v.dtype, v.shape = value, value.dtype, tuple(value.shape)
        fused = GraphNode(
            conv.name, "Conv", "", [conv.inputs[0], w_name, b_name], [bn.outputs[0]],
            dict(conv.attrs), conv.original + bn.original,
        )
        _replace(graph, [bn], conv, fused)
        uses = _Uses(graph)
        count += 1
    return count


# -- MatMul + Add(bias) --------------------------------------------------------------------
def fuse_matmul_bias(graph: Graph) -> int:
    """``Add(MatMul(x, W), b)`` with constant 2-D ``W`` and 1-D ``b`` becomes MatMulBias."""
    uses = _Uses(graph)
    count = 0
    for mm in list(graph.nodes):
        if mm.op_type != "MatMul" or mm.domain:
            continue
        w = graph.const(mm.inputs[1])
        add = uses.only_reader(mm.outputs[0])
        if w is None or w.ndim != 2 or add is None or add.op_type != "Add" or add.domain:
            continue
        other = add.inputs[1] if add.inputs[0] == mm.outputs[0] else add.inputs[0]
        b = graph.const(other)
        if b is None or b.dtype != w.dtype or b.shape not in ((w.shape[1],), (1, w.shape[1])):
            continue
        b_name = graph.fresh_name(f"{mm.name}_bias")
        v = graph.value(b_name)
        v.const = b.reshape(-1)
        v.dtype, v.shape = b.dtype, (w.shape[1],)
        fused = GraphNode(
            mm.name, "MatMulBias", CPU_DOMAIN, [mm.inputs[0], mm.inputs[1], b_name],
            [add.outputs[0]], {}, mm.original + add.original,
        )
        _replace(graph, [add], mm, fused)
        uses = _Uses(graph)
        count += 1
    return count


# -- activations into their producer -------------------------------------------------------
def _activation_params(graph: Graph, act: GraphNode) -> tuple[float, float] | None:
    if act.op_type == "Clip":
        if "min" in act.attrs or "max" in act.attrs:
            return float(act.attr("min", -np.inf)), float(act.attr("max", np.inf))
        lo = _scalar(graph, act.inputs[1]) if len(act.inputs) > 1 and act.inputs[1] else -np.inf
        hi = _scalar(graph, act.inputs[2]) if len(act.inputs) > 2 and act.inputs[2] else np.inf
        if lo is None or hi is None:
            return None
        return lo, hi
    if act.op_type == "LeakyRelu":
        return float(act.attr("alpha", 0.01)), 0.0
    if act.op_type == "HardSigmoid":
        return float(act.attr("alpha", 0.2)), float(act.attr("beta", 0.5))
    return 0.0, 0.0


def fuse_activations(graph: Graph) -> int:
    """Applies an activation in place on the fresh output of Conv/Gemm/MatMul/Add/BN."""
    uses = _Uses(graph)
    count = 0
    for producer in list(graph.nodes):
        base = producer.op_type
        if base not in FUSABLE_BASES or producer.domain not in ("", CPU_DOMAIN):
            continue
        if base == "MatMulBias" and producer.domain != CPU_DOMAIN:
            continue
        if len([o for o in producer.outputs if o]) != 1:
            continue
        act = uses.only_reader(producer.outputs[0])
        if act is None or act.op_type not in ACTIVATIONS or act.domain:
            continue
        out = graph.values.get(producer.outputs[0])
        if out is None or out.dtype is None or out.dtype.kind != "f":
            continue
        params = _activation_params(graph, act)
        if params is None:
            continue
        attrs = dict(producer.attrs)
        attrs.update(activation=act.op_type, activation_alpha=params[0], activation_beta=params[1])
        fused = GraphNode(
            producer.name, f"Fused{base}", CPU_DOMAIN, list(producer.inputs), [act.outputs[0]],
            attrs, producer.original + act.original,
        )
        _replace(graph, [act], producer, fused)
        uses = _Uses(graph)
        count += 1
    return count


# -- Conv + Add(residual) -----------------------------------------------------------------
def fuse_conv_add(graph: Graph) -> int:
    """``Add(Conv(x, w, b), z)`` with constant ``w`` (and ``b``) and ``z`` of the conv
    output's static shape and dtype becomes ``ConvAdd(x, w, b, z)``: the residual sum of a
    ResNet or MobileNetV2 block is added as the conv stores its output, and a following Relu
    then fuses too. The fused node takes the Add's place, where ``z`` is sure to exist."""
    uses = _Uses(graph)
    count = 0
    for conv in list(graph.nodes):
        if conv.op_type != "Conv" or conv.domain or len([o for o in conv.outputs if o]) != 1:
            continue
        add = uses.only_reader(conv.outputs[0])
        if add is None or add.op_type != "Add" or add.domain or len(add.inputs) != 2:
            continue
        other = add.inputs[1] if add.inputs[0] == conv.outputs[0] else add.inputs[0]
        out, z = graph.values.get(conv.outputs[0]), graph.values.get(other)
        w = graph.const(conv.inputs[1])
        if (
            other == conv.outputs[0] or w is None or w.dtype.kind != "f" or out is None
            or z is None or out.static_shape is None or z.static_shape != out.static_shape
            or z.dtype != out.dtype
        ):
            continue
        b_name = conv.inputs[2] if len(conv.inputs) > 2 and conv.inputs[2] else None
        if b_name is not None and graph.const(b_name) is None:
            continue
        if b_name is None:
            b_name = graph.fresh_name(f"{conv.name}_b")
            zeros = np.zeros(w.shape[0], w.dtype)
            v = graph.value(b_name)
            v.const, v.dtype, v.shape = zeros, zeros.dtype, tuple(zeros.shape)
        fused = GraphNode(
            conv.name, "ConvAdd", CPU_DOMAIN, [conv.inputs[0], conv.inputs[1], b_name, other],
            [add.outputs[0]], dict(conv.attrs), conv.original + add.original,
        )
        _replace(graph, [conv], add, fused)
        uses = _Uses(graph)
        count += 1
    return count


# -- a conv's bias and Relu/Clip applied by the depthwise conv that reads it -----------------
def move_activation_into_depthwise(graph: Graph) -> int:
    """``FusedConv(act) -> FusedConv(depthwise)``, as in every inverted-residual block: the
    producer drops its bias and activation and the depthwise conv applies them as it copies
    each input channel into its padded plane. The producer's output, the largest tensor of
    the block, then takes one pass fewer through memory."""
    uses = _Uses(graph)
    count = 0
    for dw in list(graph.nodes):
        if dw.op_type != "FusedConv" or dw.domain != CPU_DOMAIN or dw.attr("input_activation"):
            continue
        producer = uses.producer.get(dw.inputs[0])
        if (
            producer is None or producer.op_type != "FusedConv" or producer.domain != CPU_DOMAIN
            or producer.attr("activation") not in ("Relu", "Clip")
            or producer.attr("input_activation") or uses.only_reader(producer.outputs[0]) is not dw
        ):
            continue
        w = graph.const(dw.inputs[1])
        value = graph.values.get(dw.inputs[0])
        if (
            w is None or w.ndim != 4 or w.shape[1] != 1 or int(dw.attr("group", 1)) != w.shape[0]
            or value is None or value.dtype != np.float32 or w.dtype != np.float32
        ):
            continue
        channels = w.shape[0]
        biases = []
        for node in (producer, dw):
            name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
            b = np.zeros(channels, np.float32) if name is None else graph.const(name)
            if b is None or b.size != channels:
                break
            if name is None:
                name = graph.fresh_name(f"{node.name}_b")
                v = graph.value(name)
                v.const, v.dtype, v.shape = b, b.dtype, tuple(b.shape)
            biases.append(name)
        if len(biases) != 2:
            continue
        plain = {k: v for k, v in producer.attrs.items() if not k.startswith("activation")}
        conv = GraphNode(
            producer.name, "Conv", "", list(producer.inputs[:2]), list(producer.outputs), plain,
            producer.original[:-1],
        )
        attrs = dict(dw.attrs)
        attrs.update(
            input_activation=producer.attr("activation"),
            input_activation_alpha=producer.attr("activation_alpha", 0.0),
            input_activation_beta=producer.attr("activation_beta", 0.0),
        )
        moved = GraphNode(
            dw.name, "FusedConv", CPU_DOMAIN, [dw.inputs[0], dw.inputs[1], biases[1], biases[0]],
            list(dw.outputs), attrs, dw.original + producer.original[-1:],
        )
        graph.nodes = [conv if n is producer else moved if n is dw else n for n in graph.nodes]
        uses = _Uses(graph)
        count += 1
    return count


# -- an inverted-residual block's expand conv and its depthwise conv as one node -------------
def _pointwise_conv(graph: Graph, node: GraphNode) -> bool:
    """A plain float32 1x1 Conv of one group, unit strides, no padding, constant weights and
    no bias (as :func:`move_activation_into_depthwise` leaves an expand conv)."""
    w = graph.const(node.inputs[1]) if len(node.inputs) > 1 else None
    if (
        node.op_type != "Conv" or node.domain or len(node.inputs) != 2 or w is None
        or w.ndim != 4 or w.shape[2:] != (1, 1) or w.dtype != np.float32
        or int(node.attr("group", 1)) != 1
    ):
        return False
    if any(int(v) != 1 for v in node.attr("strides") or [1, 1]):
        return False
    pads = node.attr("pads") or [0, 0, 0, 0]
    return node.attr("auto_pad", "NOTSET") in ("NOTSET", "VALID", b"NOTSET", b"VALID") and not any(
        int(v) for v in pads
    )


def _stem_conv(graph: Graph, node: GraphNode) -> bool:
    """A plain float32 2-D Conv of one group over few input channels (a network's stem), no
    dilation, equal strides of 1 or 2, constant weights and no bias: the direct kernel's."""
    w = graph.const(node.inputs[1]) if len(node.inputs) > 1 else None
    if (
        node.op_type != "Conv" or node.domain or len(node.inputs) != 2 or w is None
        or w.ndim != 4 or w.dtype != np.float32 or w.shape[1] > DIRECT_CHANNELS
        or int(node.attr("group", 1)) != 1
    ):
        return False
    if any(int(v) != 1 for v in node.attr("dilations") or [1, 1]):
        return False
    return [int(v) for v in node.attr("strides") or [1, 1]] in ([1, 1], [2, 2])


def fuse_expand_depthwise(graph: Graph) -> int:
    """``Conv(1x1, or a stem over few channels) -> FusedConv(3x3 depthwise, input_activation)``
    becomes ``ExpandDepthwise(x, w_expand, w_depthwise, b_depthwise, b_expand)``, the expand
    conv's attributes kept with an ``expand_`` prefix: the kernel computes the expanded
    channels a group at a time and convolves each group while it is in cache, so the
    block's largest tensor never goes to memory (or falls back to the two kernels)."""
    uses = _Uses(graph)
    count = 0
    for dw in list(graph.nodes):
        if (
            dw.op_type != "FusedConv" or dw.domain != CPU_DOMAIN or not dw.attr("input_activation")
            or len(dw.inputs) != 4
        ):
            continue
        producer = uses.producer.get(dw.inputs[0])
        if producer is None or not (
            _pointwise_conv(graph, producer) or _stem_conv(graph, producer)
        ):
            continue
        if uses.only_reader(producer.outputs[0]) is not dw:
            continue
        w = graph.const(dw.inputs[1])
        x = graph.values.get(producer.inputs[0])
        if (
            w is None or w.ndim != 4 or w.shape[1:] != (1, 3, 3) or w.dtype != np.float32
            or x is None or x.dtype != np.float32 or (x.shape is not None and len(x.shape) != 4)
            or any(int(v) != 1 for v in dw.attr("dilations") or [1, 1])
            or [int(v) for v in dw.attr("strides") or [1, 1]] not in ([1, 1], [2, 2])
        ):
            continue
        attrs = dict(dw.attrs)
        attrs.update({EXPAND_PREFIX + k: v for k, v in producer.attrs.items()})
        fused = GraphNode(
            dw.name, "ExpandDepthwise", CPU_DOMAIN,
            [producer.inputs[0], producer.inputs[1], dw.inputs[1], dw.inputs[2], dw.inputs[3]],
            list(dw.outputs), attrs, producer.original + dw.original,
        )
        _replace(graph, [producer], dw, fused)
        uses = _Uses(graph)
        count += 1
    return count


# -- LayerNorm -----------------------------------------------------------------------------
def _last_axis_mean(graph: Graph, node: GraphNode | None) -> bool:
    if node is None or node.op_type != "ReduceMean" or node.domain:
        return False
    axes = node.attr("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        const = graph.const(node.inputs[1])
        axes = None if const is None else [int(a) for a in np.asarray(const).reshape(-1)]
    source = graph.values.get(node.inputs[0])
    rank = len(source.shape) if source is not None and source.shape is not None else None
    if axes is None or len(axes) != 1 or not node.attr("keepdims", 1):
        return False
    return bool(axes[0] == -1 or (rank is not None and axes[0] == rank - 1))


def fuse_layernorm(graph: Graph) -> int:
    """Matches the decomposed LayerNorm exporters emit and replaces it by one node."""
    uses = _Uses(graph)
    count = 0
    for div in list(graph.nodes):
        if div.op_type != "Div" or div.domain:
            continue
        sub = uses.producer.get(div.inputs[0])
        sqrt = uses.producer.get(div.inputs[1])
        if sub is None or sub.op_type != "Sub" or sqrt is None or sqrt.op_type != "Sqrt":
            continue
        mean = uses.producer.get(sub.inputs[1])
        if not _last_axis_mean(graph, mean) or mean is None or mean.inputs[0] != sub.inputs[0]:
            continue
        add_eps = uses.producer.get(sqrt.inputs[0])
        if add_eps is None or add_eps.op_type != "Add":
            continue
        eps = _scalar(graph, add_eps.inputs[1])
        var = uses.producer.get(add_eps.inputs[0])
        if eps is None or not _last_axis_mean(graph, var) or var is None:
            continue
        pow_node = uses.producer.get(var.inputs[0])
        if pow_node is None or pow_node.op_type != "Pow" or pow_node.inputs[0] != sub.outputs[0]:
            continue
        if _scalar(graph, pow_node.inputs[1]) != 2.0:
            continue
        mul = uses.only_reader(div.outputs[0])
        add = uses.only_reader(mul.outputs[0]) if mul is not None and mul.op_type == "Mul" else None
        if mul is None or add is None or add.op_type != "Add":
            continue
        gamma = mul.inputs[1] if mul.inputs[0] == div.outputs[0] else mul.inputs[0]
        beta = add.inputs[1] if add.inputs[0] == mul.outputs[0] else add.inputs[0]
        if graph.const(gamma) is None or graph.const(beta) is None:
            continue
        readers_ok = (
            {id(n) for n in uses.readers.get(sub.outputs[0], [])} <= {id(pow_node), id(div)}
            and uses.only_reader(mean.outputs[0]) is sub
            and uses.only_reader(pow_node.outputs[0]) is var
            and uses.only_reader(var.outputs[0]) is add_eps
            and uses.only_reader(add_eps.outputs[0]) is sqrt
            and uses.only_reader(sqrt.outputs[0]) is div
            and sub.outputs[0] not in uses.outputs
        )
        if not readers_ok:
            continue
        chain = [mean, sub, pow_node, var, add_eps, sqrt, div, mul, add]
        fused = GraphNode(
            div.name, "LayerNorm", CPU_DOMAIN, [mean.inputs[0], gamma, beta], [add.outputs[0]],
            {"epsilon": eps}, tuple(n for c in chain for n in c.original),
        )
        _replace(graph, [n for n in chain if n is not add], add, fused)
        uses = _Uses(graph)
        count += 1
    return count


# -- Gelu ------------------------------------------------------------------------------------
def fuse_gelu(graph: Graph) -> int:
    """Matches ``x * 0.5 * (1 + erf(x / sqrt(2)))`` in the orders exporters emit."""
    uses = _Uses(graph)
    count = 0
    for erf in list(graph.nodes):
        if erf.op_type != "Erf" or erf.domain:
            continue
        scale_node = uses.producer.get(erf.inputs[0])
        if scale_node is None or scale_node.op_type not in ("Div", "Mul"):
            continue
        k = _scalar(graph, scale_node.inputs[1])
        if k is None:
            continue
        k = 1.0 / k if scale_node.op_type == "Div" else k
        if abs(k - 1.0 / np.sqrt(2.0)) > 1e-4:
            continue
        x = scale_node.inputs[0]
        add1 = uses.only_reader(erf.outputs[0])
        if add1 is None or add1.op_type != "Add" or _scalar(graph, add1.inputs[1]) != 1.0:
            continue
        m1 = uses.only_reader(add1.outputs[0])
        if m1 is None or m1.op_type != "Mul":
            continue
        other = m1.inputs[0] if m1.inputs[1] == add1.outputs[0] else m1.inputs[1]
        half = None
        if other == x:  # (x * (1 + erf)) * 0.5
            m2 = uses.only_reader(m1.outputs[0])
            if m2 is None or m2.op_type != "Mul":
                continue
            c = m2.inputs[1] if m2.inputs[0] == m1.outputs[0] else m2.inputs[0]
            half, last = _scalar(graph, c), m2
        else:  # (x * 0.5) * (1 + erf)
            pre = uses.producer.get(other)
            if pre is None or pre.op_type != "Mul" or pre.inputs[0] != x or uses.only_reader(other) is not m1:
                continue
            half, last = _scalar(graph, pre.inputs[1]), m1
            m2 = pre
        if half != 0.5 or uses.only_reader(scale_node.outputs[0]) is not erf:
            continue
        chain = [scale_node, erf, add1, m1] + ([m2] if m2 is not m1 else [])
        fused = GraphNode(
            erf.name, "Gelu", CPU_DOMAIN, [x], [last.outputs[0]], {},
            tuple(n for c in chain for n in c.original),
        )
        _replace(graph, [n for n in chain if n is not last], last, fused)
        uses = _Uses(graph)
        count += 1
    return count
