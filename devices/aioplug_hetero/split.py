"""How HETERO cuts a model into subgraphs, one device each.

Three steps, each a plain function of the model:

* :func:`assign` gives every node to the first device, in priority order, whose
  ``query_model`` supports it.
* :func:`plan_subgraphs` cuts the graph into acyclic subgraphs. Nodes are visited in
  topological order (the order ONNX requires) and get a stage: the largest stage of their
  producers, plus one where a producer runs on another device. A subgraph is one
  ``(stage, device)`` pair. A cross-device edge strictly increases the stage, so subgraphs
  ordered by stage are in topological order, and no path leaves a subgraph and comes back.
  Nodes that read nothing (Constant) are staged last, next to their consumers, so that a
  constant joins a subgraph its device runs anyway rather than forcing a cut.
* :func:`build_part` writes one subgraph as a valid ONNX model: its nodes, the initializers it
  reads, the values it consumes from outside as inputs, and the values a later subgraph or the
  graph output needs as outputs, each typed from the shape-inferred model.

A node with graph attributes (If, Loop, Scan) reads values of the outer scope inside its
bodies; those are implicit inputs of the node, so they cross cuts like any other input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from aioplug.plugin import ImportExportError, Model, ModelError

__all__ = ["Subgraph", "assign", "build_part", "node_inputs", "plan_subgraphs"]


@dataclass(frozen=True)
class Subgraph:
    """One part of a split model: the nodes one device runs and the values crossing its cut."""

    index: int
    """Position in execution order."""
    device: str
    """The device that runs it, e.g. ``TEMPLATE.0``."""
    stage: int
    """Its stage: subgraphs run in stage order; those of one stage are independent."""
    nodes: tuple[str, ...]
    """Node names, in the model's topological order."""
    inputs: tuple[str, ...]
    """Values it reads from graph inputs or earlier subgraphs (initializers excluded)."""
    outputs: tuple[str, ...]
    """Values it produces that later subgraphs or the graph outputs need."""
    initializers: tuple[str, ...]
    """Initializers of the model it reads (copied into the part)."""

    def to_json(self) -> dict[str, Any]:
        """The subgraph as a JSON object (the split plan of an export)."""
        return {
            "index": self.index, "device": self.device, "stage": self.stage,
            "nodes": list(self.nodes), "inputs": list(self.inputs),
            "outputs": list(self.outputs), "initializers": list(self.initializers),
        }

    @classmethod
    def from_json(cls, data: Any) -> Subgraph:
        """Reads :meth:`to_json`'s object back; ImportExportError when a field is missing or
        of the wrong type."""
        if not isinstance(data, dict):
            raise ImportExportError("a subgraph of the HETERO stream is not a JSON object")

        def integer(key: str) -> int:
            value = data.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ImportExportError(f"a subgraph of the HETERO stream has no integer {key!r}")
            return value

        def names(key: str) -> tuple[str, ...]:
            value = data.get(key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ImportExportError(f"a subgraph of the HETERO stream has no name list {key!r}")
            return tuple(value)

        device = data.get("device")
        if not isinstance(device, str) or not device:
            raise ImportExportError("a subgraph of the HETERO stream names no device")
        return cls(
            index=integer("index"), device=device, stage=integer("stage"), nodes=names("nodes"),
            inputs=names("inputs"), outputs=names("outputs"), initializers=names("initializers"),
        )

    def describe(self) -> str:
        """One line: ``#1 CPU.0 (stage 1): relu1 | in: c1 | out: r1``."""
        return (
            f"#{self.index} {self.device} (stage {self.stage}): {', '.join(self.nodes)} | "
            f"in: {', '.join(self.inputs) or '-'} | out: {', '.join(self.outputs) or '-'}"
        )


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _outer_scope_reads(graph: onnx.GraphProto) -> list[str]:
    """Names a (sub)graph reads that it does not define itself: values of the outer scope."""
    defined = {vi.name for vi in graph.input}
    defined.update(init.name for init in graph.initializer)
    defined.update(sparse.values.name for sparse in graph.sparse_initializer)
    reads: list[str] = []
    for node in graph.node:
        for name in node_inputs(node):
            if name not in defined:
                reads.append(name)
        defined.update(node.output)
    return _unique(reads)


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """The values a node reads: its inputs (optional empty ones left out), then the outer-scope
    values its graph attributes (If, Loop, Scan bodies) read."""
    names = [name for name in node.input if name]
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            names.extend(_outer_scope_reads(attr.g))
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for body in attr.graphs:
                names.extend(_outer_scope_reads(body))
    return _unique(names)


def assign(
    model: Model, placements: Sequence[Mapping[str, str]]
) -> tuple[dict[str, str], list[str]]:
    """Gives each node to the first placement (in priority order) that has it.

    ``placements`` are the devices' ``query_model`` answers, in priority order. Returns the
    assignment ``{node name: device}`` and the names of the nodes no device supports.
    """
    assignment: dict[str, str] = {}
    missing: list[str] = []
    for node in model.nodes:
        for placement in placements:
            device = placement.get(node.name)
            if device is not None:
                assignment[node.name] = device
                break
        else:
            missing.append(node.name)
    return assignment, missing


def plan_subgraphs(
    model: Model, assignment: Mapping[str, str], priority: Sequence[str]
) -> tuple[Subgraph, ...]:
    """Cuts the model into acyclic single-device subgraphs, in execution order.

    ``assignment`` maps every node to a device; ``priority`` orders the devices (subgraphs of
    one stage run in this order).
    """
    graph = model.proto.graph
    rank = {device: i for i, device in enumerate(priority)}
    initializers = {init.name for init in graph.initializer}
    initializers.update(sparse.values.name for sparse in graph.sparse_initializer)
    producer: dict[str, int] = {}  # value -> index of the node that produces it
    stages: list[int] = []
    reads: list[list[str]] = []
    for i, node in enumerate(graph.node):
        device = assignment[node.name]
        inputs = node_inputs(node)
        stage = 0
        for name in inputs:
            p = producer.get(name)
            if p is not None and reads[p]:  # nodes that read nothing are placed afterwards
                step = 0 if assignment[graph.node[p].name] == device else 1
                stage = max(stage, stages[p] + step)
        stages.append(stage)
        reads.append(inputs)
        for name in node.output:
            if name:
                producer[name] = i
    _place_sources(graph, assignment, stages, reads, producer)
    dense = {stage: n for n, stage in enumerate(sorted(set(stages)))}
    stages = [dense[stage] for stage in stages]
    keys = sorted(
        {(stages[i], assignment[n.name]) for i, n in enumerate(graph.node)},
        key=lambda key: (key[0], rank.get(key[1], len(rank)), key[1]),
    )
    part_of_key = {key: k for k, key in enumerate(keys)}
    part_of_node = [part_of_key[(stages[i], assignment[n.name])] for i, n in enumerate(graph.node)]
    # which parts read each value (beyond the part that makes it), and the graph outputs
    needed_later: set[str] = {vi.name for vi in graph.output}
    for i, inputs in enumerate(reads):
        for name in inputs:
            p = producer.get(name)
            if p is not None and part_of_node[p] != part_of_node[i]:
                needed_later.add(name)
    members_of: list[list[int]] = [[] for _ in keys]
    for i, part in enumerate(part_of_node):
        members_of[part].append(i)
    parts: list[Subgraph] = []
    for k, ((stage, device), members) in enumerate(zip(keys, members_of)):
        made = _unique(o for i in members for o in graph.node[i].output if o)
        made_set = set(made)
        external = _unique(
            name for i in members for name in reads[i] if name not in made_set
        )
        parts.append(
            Subgraph(
                index=k,
                device=device,
                stage=stage,
                nodes=tuple(graph.node[i].name for i in members),
                inputs=tuple(n for n in external if n not in initializers),
                outputs=tuple(n for n in made if n in needed_later),
                initializers=tuple(n for n in external if n in initializers),
            )
        )
    return tuple(parts)


def _place_sources(
    graph: onnx.GraphProto,
    assignment: Mapping[str, str],
    stages: list[int],
    reads: Sequence[Sequence[str]],
    producer: Mapping[str, int],
) -> None:
    """Stages the nodes that read nothing (Constant), which the first pass left out.

    Such a node may take any stage up to its consumers' (one less for a consumer on another
    device; stages may go below zero), so it takes the latest stage its device already has
    within that bound, joining a subgraph that runs anyway rather than making one."""
    devices = [assignment[node.name] for node in graph.node]
    consumers: dict[int, list[int]] = {}
    for i, inputs in enumerate(reads):
        for name in inputs:
            p = producer.get(name)
            if p is not None:
                consumers.setdefault(p, []).append(i)
    taken: dict[str, set[int]] = {}
    for i, inputs in enumerate(reads):
        if inputs:
            taken.setdefault(devices[i], set()).add(stages[i])
    for i, inputs in enumerate(reads):
        users = consumers.get(i)
        if inputs or not users:
            continue
        device = devices[i]
        limit = min(stages[c] - (devices[c] != device) for c in users)
        existing = [s for s in taken.get(device, ()) if s <= limit]
        stages[i] = max(existing) if existing else limit


def _value_infos(graph: onnx.GraphProto) -> dict[str, onnx.ValueInfoProto]:
    infos: dict[str, onnx.ValueInfoProto] = {}
    for vi in [*graph.value_info, *graph.output, *graph.input]:
        if vi.type.WhichOneof("value") is not None:
            infos[vi.name] = vi
    return infos


def build_part(model: Model, subgraph: Subgraph) -> onnx.ModelProto:
    """Writes ``subgraph`` as a standalone ONNX model with the model's opsets and IR version."""
    proto = model.proto
    graph = proto.graph
    infos = _value_infos(graph)

    def typed(name: str, role: str) -> onnx.ValueInfoProto:
        info = infos.get(name)
        if info is None:
            raise ModelError(
                f"cannot cut model {model.name!r} at value {name!r} (an {role} of the part on "
                f"{subgraph.device}): shape inference left its type unknown; give it a "
                "value_info entry with its type in the model"
            )
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(info)
        return copy

    wanted = set(subgraph.nodes)
    nodes = [node for node in graph.node if node.name in wanted]
    inits = set(subgraph.initializers)
    part_graph = helper.make_graph(
        nodes,
        f"{graph.name or 'model'}_part{subgraph.index}",
        [typed(name, "input") for name in subgraph.inputs],
        [typed(name, "output") for name in subgraph.outputs],
        [init for init in graph.initializer if init.name in inits],
        sparse_initializer=[s for s in graph.sparse_initializer if s.values.name in inits],
    )
    part = helper.make_model(
        part_graph,
        opset_imports=list(proto.opset_import),
        ir_version=proto.ir_version,
        producer_name="aioplug-hetero",
    )
    part.functions.extend(proto.functions)
    return part
