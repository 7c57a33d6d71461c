"""The execution plan: prepared kernels in order, values in numbered slots.

Every value gets a slot index; constants are pre-filled once. A :class:`Step` names its
kernel and the slots it reads and writes, and the slots whose last reader it is, which are
cleared after it runs so memory is released as early as the graph allows. Running a plan is
a tight loop with a cancellation check between steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aioplug.plugin import CancelToken, InferError, RequestCancelled, UnsupportedOp

from ..kernels import Kernel, KernelNotFound, lookup
from .graph import Graph, captured_names
from .kernel_node import kernel_node

__all__ = ["ExecutionPlan", "Step", "build_plan"]

Recorder = Callable[[str, str, str, float, float], None]


@dataclass(frozen=True)
class Step:
    """One prepared kernel call."""

    name: str
    op_type: str
    kernel: Kernel
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    frees: tuple[int, ...]
    original: tuple[str, ...]


class ExecutionPlan:
    """Runs the steps over a slot list; built by :func:`build_plan`."""

    def __init__(
        self,
        steps: Sequence[Step],
        slots: list[Any],
        input_slots: Sequence[int],
        output_slots: Sequence[int],
        names: Sequence[str],
    ) -> None:
        self.steps = tuple(steps)
        self._initial = slots
        self.input_slots = tuple(input_slots)
        self.output_slots = tuple(output_slots)
        self.slot_names = tuple(names)

    def run(
        self,
        inputs: Sequence[Any],
        token: CancelToken | None = None,
        record: Recorder | None = None,
    ) -> list[Any]:
        """Computes the outputs from ``inputs`` (in graph input order)."""
        slots = list(self._initial)
        for index, value in zip(self.input_slots, inputs):
            slots[index] = value
        perf_counter, thread_time = time.perf_counter, time.thread_time
        for step in self.steps:
            if token is not None and token.cancelled:
                raise RequestCancelled(f"cancelled before node {step.name!r}")
            args = [slots[i] for i in step.inputs]
            if record is not None:
                start, cpu = perf_counter(), thread_time()
            try:
                results = step.kernel(*args)
            except RequestCancelled:
                raise
            except Exception as exc:
                raise InferError(
                    f"node {step.name!r} ({step.op_type}) failed: {type(exc).__name__}: {exc}"
                ) from exc
            if record is not None:
                record(step.name, step.op_type, step.kernel.exec_type,
                       perf_counter() - start, thread_time() - cpu)
            for index, value in zip(step.outputs, results):
                slots[index] = value
            for index in step.frees:
                slots[index] = None
        return [slots[i] for i in self.output_slots]


def build_plan(graph: Graph, extra: dict[str, Any] | None = None) -> ExecutionPlan:
    """Prepares a kernel for every node of ``graph`` and lays out the slots.

    Raises UnsupportedOp naming each op (with its opset) that has no kernel.
    """
    index: dict[str, int] = {"": 0}
    names = [""]

    def slot(name: str) -> int:
        i = index.get(name)
        if i is None:
            i = index[name] = len(names)
            names.append(name)
        return i

    for name in graph.inputs:
        slot(name)
    prepared = []
    missing: dict[tuple[str, str, int], None] = {}
    for node in graph.nodes:
        opset = graph.opset(node.domain)
        try:
            factory = lookup(node.domain, node.op_type, opset)
        except KernelNotFound:
            missing[(node.domain or "ai.onnx", node.op_type, opset)] = None
            continue
        captured = tuple(sorted(captured_names(node)))
        node_extra = dict(extra or {})
        if captured:
            node_extra["captured"] = captured
        prepared.append((node, captured, factory(kernel_node(graph, node, node_extra))))
    if missing:
        ops = ", ".join(f"{d}::{op} (opset {v})" for d, op, v in missing)
        raise UnsupportedOp(f"the CPU device has no kernel for: {ops}", tuple(missing))

    last_use: dict[int, int] = {}
    steps_io = []
    for position, (node, captured, kernel) in enumerate(prepared):
        # a node with subgraphs gets the outer values they read as extra trailing inputs
        reads = [slot(n) if n else 0 for n in (*node.inputs, *captured)]
        writes = [slot(n) if n else 0 for n in node.outputs]
        for i in reads:
            last_use[i] = position
        steps_io.append((node, kernel, reads, writes))
    outputs = [slot(name) for name in graph.outputs]
    keep = set(outputs) | {0}
    slots: list[Any] = [None] * len(names)
    for name, i in index.items():
        const = graph.const(name)
        if const is not None:
            slots[i] = const
            keep.add(i)
    frees_at: dict[int, list[int]] = {}
    for i, position in last_use.items():
        if i not in keep:
            frees_at.setdefault(position, []).append(i)
    steps = [
        Step(node.name, node.op_type, kernel, tuple(reads), tuple(writes),
             tuple(frees_at.get(position, ())), node.original)
        for position, (node, kernel, reads, writes) in enumerate(steps_io)
    ]
    return ExecutionPlan(steps, slots, [index[n] for n in graph.inputs], outputs, names)
