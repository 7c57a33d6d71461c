"""The HETERO plugin: assigns nodes to devices by priority, compiles each subgraph on its device."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aioplug.plugin import (
    CompiledModel,
    DeviceTarget,
    Model,
    UnsupportedOp,
    VirtualImport,
    VirtualPlugin,
)

from .compiled_model import HeteroCompiledModel
from .export import check_parts, read_stream
from .split import assign, build_part, plan_subgraphs

__all__ = ["HeteroPlugin"]

log = logging.getLogger(__name__)

DEVICE_NAME = "HETERO"
FULL_DEVICE_NAME = "aioplug HETERO device (a model split over several devices)"
VERSION = "0.1.0"

_NOT_FOR_QUERY = frozenset({"CACHE_DIR"})


class HeteroPlugin(VirtualPlugin):
    """HETERO: runs each node on the first listed device that supports it."""

    version = VERSION
    full_device_name = FULL_DEVICE_NAME

    def __init__(self) -> None:
        super().__init__(DEVICE_NAME)

    def _readonly_values(self) -> dict[str, Any]:
        values = super()._readonly_values()
        values["OPTIMIZATION_CAPABILITIES"] = lambda: ["EXPORT_IMPORT"]
        return values

    # -- placement -----------------------------------------------------------------------
    def _placements(
        self, model: Model, targets: list[DeviceTarget], forwarded: Mapping[str, Mapping[str, Any]]
    ) -> list[dict[str, str]]:
        """Each target's ``query_model`` answer, in priority order."""
        core = self.core
        placements = []
        for target in targets:
            props = {k: v for k, v in forwarded[str(target)].items() if k not in _NOT_FOR_QUERY}
            placements.append(core.query_model(model, target.name, props))
        return placements

    def query_model(
        self, model: Model, properties: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """``{node name: device}``: each node on the first listed device that supports it;
        nodes no listed device supports are left out."""
        _, targets, forwarded = self.query_setup(properties)
        assignment, _ = assign(model, self._placements(model, targets, forwarded))
        return assignment

    # -- compile -------------------------------------------------------------------------
    async def _compile_virtual(
        self,
        model: Model,
        config: dict[str, Any],
        targets: list[DeviceTarget],
        forwarded: dict[str, dict[str, Any]],
    ) -> HeteroCompiledModel:
        placements = self._placements(model, targets, forwarded)
        assignment, missing = assign(model, placements)
        if missing:
            raise self._unsupported(model, missing, targets)
        # the device string each target answers with ("CPU.0"), in priority order
        device_target: dict[str, DeviceTarget] = {}
        for target, placement in zip(targets, placements):
            for device in placement.values():
                device_target.setdefault(device, target)
        subgraphs = plan_subgraphs(model, assignment, list(device_target))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s splits %s into %d subgraph(s):\n  %s",
                self.device_name, model.name, len(subgraphs),
                "\n  ".join(s.describe() for s in subgraphs),
            )
        part_targets = [device_target[subgraph.device] for subgraph in subgraphs]
        parts = await self.gather_parts(
            self.compile_on(build_part(model, subgraph), target, forwarded[str(target)])
            for subgraph, target in zip(subgraphs, part_targets)
        )
        return HeteroCompiledModel(
            self, model, config, subgraphs, parts,
            targets=part_targets, optimal_requests=_optimal(parts),
        )

    # -- import --------------------------------------------------------------------------
    async def _import_virtual(
        self, manifest: dict[str, Any], sections: list[bytes], how: VirtualImport
    ) -> HeteroCompiledModel:
        """Imports every part on its device (through the Core: nothing is compiled) and rebuilds
        the split plan; the original model gives the ports and variable states."""
        stream = read_stream(manifest, sections)
        self.check_stream_devices(how.config, [t.name for t in stream.targets])
        model = await how.read_model(stream.model, self.device_name)
        parts = await self.gather_parts(
            self.import_on(blob, target, how) for blob, target in zip(stream.blobs, stream.targets)
        )
        try:
            check_parts(model, stream, parts)
            return HeteroCompiledModel(
                self, model, how.config, stream.subgraphs, parts, targets=stream.targets,
                optimal_requests=_optimal(parts), loaded_from_cache=how.from_cache,
            )
        except BaseException:
            for part in parts:
                await part.aclose()
            raise

    def _unsupported(
        self, model: Model, missing: list[str], targets: list[DeviceTarget]
    ) -> UnsupportedOp:
        nodes = {node.name: node for node in model.nodes}
        ops: dict[tuple[str, str, int], list[str]] = {}
        for name in missing:
            node = nodes[name]
            key = (node.domain or "ai.onnx", node.op_type, model.opsets.get(node.domain, 1))
            ops.setdefault(key, []).append(name)
        described = "; ".join(
            f"{d}::{op} (opset {v}) at node(s) {', '.join(repr(n) for n in names)}"
            for (d, op, v), names in ops.items()
        )
        tried = ", ".join(t.name for t in targets)
        return UnsupportedOp(
            f"{self.device_name} cannot place {len(missing)} node(s) of model {model.name!r}: "
            f"no listed device supports {described}. Devices tried, in priority order: {tried}; "
            "list a device that runs these ops too",
            tuple(ops),
        )


def _optimal(parts: list[CompiledModel]) -> int:
    """HETERO's optimal request count: that of its most parallel part."""
    return max((int(p.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) for p in parts), default=1)
