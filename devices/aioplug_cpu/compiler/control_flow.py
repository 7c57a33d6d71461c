"""Control flow (If, Loop, Scan): subgraphs compiled into plans of their own.

A subgraph is compiled with the same passes and plan machinery as the main graph. The values
it reads from enclosing scopes arrive as extra trailing inputs of the node (the plan builder
appends them, in the order of ``extra["captured"]``), and are the subgraph plan's last inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..kernels import KernelNode, kernel
from ..kernels._runner import decode_attributes, value_type
from .graph import Graph, GraphNode, Value
from .plan import ExecutionPlan, build_plan

__all__ = ["compile_subgraph"]


def compile_subgraph(
    proto: onnx.GraphProto, opsets: dict[str, int], captured: Sequence[str], extra: dict[str, Any]
) -> ExecutionPlan:
    """Compiles a subgraph whose inputs are its declared inputs, then ``captured`` outer values."""
    from .passes import PassManager

    values: dict[str, Value] = {}
    for vi in [*proto.input, *proto.value_info, *proto.output]:
        dtype, shape = value_type(vi.type)
        values[vi.name] = Value(vi.name, dtype, shape)
    for init in proto.initializer:
        array = numpy_helper.to_array(init)
        values[init.name] = Value(init.name, array.dtype, tuple(array.shape), array)
    nodes = []
    for i, node in enumerate(proto.node):
        name = node.name or f"{node.op_type}_{i}"
        nodes.append(
            GraphNode(name, node.op_type, node.domain or "", list(node.input), list(node.output),
                      decode_attributes(node), (name,))
        )
    inputs = [vi.name for vi in proto.input] + [n for n in captured if n not in
                                                 {vi.name for vi in proto.input}]
    for name in inputs:
        values.setdefault(name, Value(name)).const = None
    graph = Graph(nodes, values, inputs, [vi.name for vi in proto.output], opsets)
    PassManager().run(graph)
    return build_plan(graph, extra)


def _opsets(node: KernelNode) -> dict[str, int]:
    opsets = dict(node.extra.get("opsets") or {})
    opsets.setdefault(node.domain, node.opset)
    return opsets


@kernel("If", 1)
class IfKernel:
    """Runs the then- or else-branch plan."""

    exec_type = "if_subgraph"

    def __init__(self, node: KernelNode) -> None:
        captured = tuple(node.extra.get("captured", ()))
        extra = dict(node.extra)
        self._then = compile_subgraph(node.attr("then_branch"), _opsets(node), captured, extra)
        self._else = compile_subgraph(node.attr("else_branch"), _opsets(node), captured, extra)
        self._n_then = len(node.attr("then_branch").input)

    def __call__(self, cond: Any, *captured: Any) -> tuple[Any, ...]:
        plan = self._then if bool(np.asarray(cond).reshape(-1)[0]) else self._else
        return tuple(plan.run(captured))


@kernel("Loop", 1)
class LoopKernel:
    """Runs the body plan while the trip count and the condition allow."""

    exec_type = "loop_subgraph"

    def __init__(self, node: KernelNode) -> None:
        body: onnx.GraphProto = node.attr("body")
        self._carried = node.num_inputs - 2
        self._scans = len(body.output) - 1 - self._carried
        captured = tuple(node.extra.get("captured", ()))
        self._plan = compile_subgraph(body, _opsets(node), captured, dict(node.extra))
        self._scan_dtypes = [
            value_type(vi.type)[0] for vi in list(body.output)[1 + self._carried :]
        ]

    def __call__(self, trip: Any, cond: Any, *rest: Any) -> tuple[Any, ...]:
        carried = list(rest[: self._carried])
        captured = rest[self._carried :]
        max_trip = int(np.asarray(trip).reshape(-1)[0]) if trip is not None else None
        keep = bool(np.asarray(cond).reshape(-1)[0]) if cond is not None else True
        scans: list[list[Any]] = [[] for _ in range(self._scans)]
        i = 0
        while keep and (max_trip is None or i < max_trip):
            outs = self._plan.run(
                [np.array(i, dtype=np.int64), np.array(keep), *carried, *captured]
            )
            keep = bool(np.asarray(outs[0]).reshape(-1)[0])
            carried = list(outs[1 : 1 + self._carried])
            for k, value in enumerate(outs[1 + self._carried :]):
                scans[k].append(value)
            i += 1
        stacked = []
        for k, items in enumerate(scans):
            if items:
                stacked.append(np.stack([np.asarray(v) for v in items]))
            else:
                stacked.append(np.empty((0,), dtype=self._scan_dtypes[k] or np.float32))
        return (*carried, *stacked)


@kernel("Scan", 9)
class ScanKernel:
    """Runs the body plan over slices of the scan inputs, carrying states."""

    exec_type = "scan_subgraph"

    def __init__(self, node: KernelNode) -> None:
        body: onnx.GraphProto = node.attr("body")
        self._m = int(node.attr("num_scan_inputs"))
        self._n = node.num_inputs - self._m
        self._k = len(body.output) - self._n
        self._in_axes = list(node.attr("scan_input_axes") or [0] * self._m)
        self._in_dirs = list(node.attr("scan_input_directions") or [0] * self._m)
        self._out_axes = list(node.attr("scan_output_axes") or [0] * self._k)
        self._out_dirs = list(node.attr("scan_output_directions") or [0] * self._k)
        captured = tuple(node.extra.get("captured", ()))
        self._plan = compile_subgraph(body, _opsets(node), captured, dict(node.extra))

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        states = list(inputs[: self._n])
        scan_inputs = inputs[self._n : self._n + self._m]
        captured = inputs[self._n + self._m :]
        seqs = []
        for x, axis, direction in zip(scan_inputs, self._in_axes, self._in_dirs):
            x = np.moveaxis(np.asarray(x), axis % x.ndim, 0)
            seqs.append(x[::-1] if direction else x)
        length = seqs[0].shape[0] if seqs else 0
        collected: list[list[Any]] = [[] for _ in range(self._k)]
        for t in range(length):
            outs = self._plan.run([*states, *(s[t] for s in seqs), *captured])
            states = list(outs[: self._n])
            for k, value in enumerate(outs[self._n :]):
                collected[k].append(np.asarray(value))
        results = []
        for items, axis, direction in zip(collected, self._out_axes, self._out_dirs):
            if direction:
                items = items[::-1]
            stacked = np.stack(items) if items else np.empty((0,), np.float32)
            results.append(np.moveaxis(stacked, 0, axis % stacked.ndim))
        return (*states, *results)


@kernel("Scan", 8)
class Scan8Kernel:
    """Scan as opset 8 defines it: a leading batch axis and optional sequence lengths."""

    exec_type = "scan_subgraph"

    def __init__(self, node: KernelNode) -> None:
        body: onnx.GraphProto = node.attr("body")
        self._m = int(node.attr("num_scan_inputs"))
        self._n = node.num_inputs - 1 - self._m
        self._dirs = list(node.attr("directions") or [0] * self._m)
        captured = tuple(node.extra.get("captured", ()))
        self._plan = compile_subgraph(body, _opsets(node), captured, dict(node.extra))

    def __call__(self, lens: Any, *inputs: Any) -> tuple[Any, ...]:
        states = [np.asarray(s) for s in inputs[: self._n]]
        scans = [np.asarray(x) for x in inputs[self._n : self._n + self._m]]
        captured = inputs[self._n + self._m :]
        batch = (states[0] if states else scans[0]).shape[0]
        out_states: list[list[Any]] = [[] for _ in states]
        out_scans: list[list[Any]] = []
        for b in range(batch):
            length = int(lens[b]) if lens is not None else scans[0].shape[1]
            carried = [s[b] for s in states]
            seqs = [x[b, :length][::-1] if d else x[b, :length] for x, d in zip(scans, self._dirs)]
            collected: list[list[Any]] = []
            for t in range(length):
                outs = self._plan.run([*carried, *(s[t] for s in seqs), *captured])
                carried = list(outs[: self._n])
                extra = outs[self._n :]
                if not collected:
                    collected = [[] for _ in extra]
                for k, value in enumerate(extra):
                    collected[k].append(np.asarray(value))
            for k, value in enumerate(carried):
                out_states[k].append(np.asarray(value))
            if not out_scans:
                out_scans = [[] for _ in collected]
            for k, items in enumerate(collected):
                out_scans[k].append(np.stack(items))
        return (*(np.stack(s) for s in out_states), *(np.stack(s) for s in out_scans))


@kernel("SequenceMap", 17)
class SequenceMapKernel:
    """Applies the body to each position of the input sequences."""

    exec_type = "sequence_map_subgraph"

    def __init__(self, node: KernelNode) -> None:
        body: onnx.GraphProto = node.attr("body")
        self._count = node.num_inputs
        captured = tuple(node.extra.get("captured", ()))
        self._plan = compile_subgraph(body, _opsets(node), captured, dict(node.extra))
        self._outputs = len(body.output)

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        args = inputs[: self._count]
        captured = inputs[self._count :]
        length = len(args[0])
        results: list[list[Any]] = [[] for _ in range(self._outputs)]
        for i in range(length):
            items = [a[i] if isinstance(a, list) else a for a in args]
            for k, value in enumerate(self._plan.run([*items, *captured])):
                results[k].append(value)
        return tuple(results)
