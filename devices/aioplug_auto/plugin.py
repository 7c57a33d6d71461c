"""The AUTO and MULTI plugins: choose a device for a model, or spread requests over several."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aioplug.plugin import (
    AioplugError,
    CompiledModel,
    DeviceTarget,
    ImportExportError,
    Model,
    PropertySpec,
    UnsupportedOp,
    VirtualImport,
    VirtualPlugin,
    parse_device_name,
    well_known,
)

from .compiled_model import AutoCompiledModel, MultiCompiledModel
from .export import read_stream
from .selection import Verdict, judge, rank_available

log = logging.getLogger(__name__)

VERSION = "0.1.0"


class _Candidates(VirtualPlugin):
    """What AUTO and MULTI share: default candidates and per-candidate queries."""

    version = VERSION

    def default_targets(self) -> list[DeviceTarget]:
        """Every available hardware device, best first."""
        core = self.core
        devices = core.available_devices
        plugins = {d.split(".")[0]: core.get_plugin(d) for d in devices}
        hardware = [d for d in devices if not isinstance(plugins[d.split(".")[0]], VirtualPlugin)]
        return rank_available(hardware, plugins)

    def _query(self, model: Model, target: DeviceTarget, props: Mapping[str, Any]) -> dict[str, str]:
        return self.core.query_model(model, target.name, props)

    def _verdicts(
        self, model: Model, config: Mapping[str, Any], targets: list[DeviceTarget],
        forwarded: Mapping[str, dict[str, Any]],
    ) -> list[Verdict]:
        verdicts = []
        for target in targets:
            plugin = self.core.get_plugin(parse_device_name(target.name).device)
            placement = self._query(model, target, forwarded[str(target)])
            verdicts.append(judge(plugin, target, model, config, placement))
        return verdicts

    @staticmethod
    def _none_capable(model: Model, verdicts: list[Verdict], device: str) -> UnsupportedOp:
        reasons = "; ".join(f"{v.target.name} {v.reason}" for v in verdicts)
        ops = sorted(
            {
                (n.domain or "ai.onnx", n.op_type, model.opsets.get(n.domain, 1))
                for v in verdicts for n in model.nodes if n.name not in v.placement
            }
        )
        return UnsupportedOp(f"{device}: no candidate device can run {model.name!r}: {reasons}", tuple(ops))

    async def _compile_all(
        self, model: Model, targets: list[DeviceTarget], forwarded: Mapping[str, dict[str, Any]]
    ) -> list[CompiledModel]:
        """Compiles on every target at once (each device's own actor serialises its work)."""
        return await self.gather_parts(
            self.compile_on(model, t, forwarded[str(t)]) for t in targets
        )


class AutoPlugin(_Candidates):
    """AUTO: the best capable device for each model, with runtime fallback."""

    full_device_name = "aioplug AUTO device (chooses among the available devices)"

    def __init__(self) -> None:
        super().__init__("AUTO")

    def _property_specs(self) -> list[PropertySpec]:
        return [*super()._property_specs(), *well_known("ENABLE_RUNTIME_FALLBACK")]

    def _readonly_values(self) -> dict[str, Any]:
        values = super()._readonly_values()
        values["OPTIMIZATION_CAPABILITIES"] = lambda: ["EXPORT_IMPORT"]
        return values

    def caching_key_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The candidates' caching values, and whether the model is spread over all of them
        (``CUMULATIVE_THROUGHPUT``: such a model is never cached, and never taken from the cache)."""
        values = super().caching_key_values(config)
        values["cumulative"] = config.get("PERFORMANCE_HINT") == "CUMULATIVE_THROUGHPUT"
        return values

    def query_model(self, model: Model, properties: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The nodes of the device AUTO would choose; without one able to run all, each node
        goes to the first candidate that supports it."""
        config, targets, forwarded = self.query_setup(properties)
        verdicts = self._verdicts(model, config, targets, forwarded)
        for verdict in verdicts:
            if verdict.capable:
                return verdict.placement
        placement: dict[str, str] = {}
        for verdict in reversed(verdicts):
            placement.update(verdict.placement)
        return placement

    async def _compile_virtual(
        self,
        model: Model,
        config: dict[str, Any],
        targets: list[DeviceTarget],
        forwarded: dict[str, dict[str, Any]],
    ) -> AutoCompiledModel | MultiCompiledModel:
        verdicts = self._verdicts(model, config, targets, forwarded)
        capable = [v.target for v in verdicts if v.capable]
        for verdict in verdicts:
            if not verdict.capable:
                log.info("AUTO: %s is not a candidate for %s: %s", verdict.target.name, model.name, verdict.reason)
        if not capable:
            raise self._none_capable(model, verdicts, self.device_name)
        if config.get("PERFORMANCE_HINT") == "CUMULATIVE_THROUGHPUT" and len(capable) > 1:
            parts = await self._compile_all(model, capable, forwarded)
            log.info("AUTO: %s runs on %s (cumulative throughput)", model.name, [t.name for t in capable])
            return MultiCompiledModel(self, model, config, parts)
        errors: list[str] = []
        for i, target in enumerate(capable):
            try:
                chosen = await self.compile_on(model, target, forwarded[str(target)])
            except AioplugError as exc:  # a device that fails to compile: try the next one
                log.warning("AUTO: compiling %s on %s failed (%s); trying the next device", model.name, target.name, exc)
                errors.append(f"{target.name}: {exc}")
                continue
            log.info("AUTO: %s runs on %s", model.name, target.name)
            rest = [(t, forwarded[str(t)]) for t in capable[i + 1 :]]
            return AutoCompiledModel(self, model, config, chosen, rest, chosen_target=target)
        raise UnsupportedOp(
            f"AUTO could not compile {model.name!r} on any candidate: {'; '.join(errors)}", ()
        )

    async def _import_virtual(
        self, manifest: dict[str, Any], sections: list[bytes], how: VirtualImport
    ) -> AutoCompiledModel:
        """Imports the chosen device's part on that device (nothing is compiled); the fallback
        candidates that are still available compile the stored model on first need."""
        stream = read_stream(manifest, sections)
        self.check_stream_devices(how.config, [stream.chosen.name])
        model = await how.read_model(stream.model, self.device_name)
        chosen = await self.import_on(stream.blob, stream.chosen, how)
        if [p.name for p in chosen.inputs] != [p.name for p in model.inputs]:
            await chosen.aclose()
            raise ImportExportError(
                f"the AUTO stream's part on {stream.chosen.name} does not match its model's inputs"
            )
        rest = []
        for target in stream.fallbacks:
            try:
                self._target_plugin(target, {})
            except AioplugError as exc:
                log.info("AUTO: fallback candidate %s is not available here (%s)", target.name, exc)
                continue
            rest.append((target, self.forwarded_properties(target, how.config, how.explicit)))
        return AutoCompiledModel(
            self, model, how.config, chosen, rest,
            chosen_target=stream.chosen, loaded_from_cache=how.from_cache,
        )


class MultiPlugin(_Candidates):
    """MULTI: the model on every listed device; requests go to whichever frees first."""

    full_device_name = "aioplug MULTI device (spreads requests over several devices)"

    def __init__(self) -> None:
        super().__init__("MULTI")

    def query_model(self, model: Model, properties: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Nodes that every listed device supports, mapped to MULTI (they run on all of them)."""
        _, targets, forwarded = self.query_setup(properties)
        supported = [set(self._query(model, t, forwarded[str(t)])) for t in targets]
        everywhere = set.intersection(*supported) if supported else set()
        return {node.name: self.device_name for node in model.nodes if node.name in everywhere}

    async def _compile_virtual(
        self,
        model: Model,
        config: dict[str, Any],
        targets: list[DeviceTarget],
        forwarded: dict[str, dict[str, Any]],
    ) -> MultiCompiledModel:
        verdicts = self._verdicts(model, config, targets, forwarded)
        if not all(v.capable for v in verdicts):
            raise self._none_capable(model, [v for v in verdicts if not v.capable], self.device_name)
        parts = await self._compile_all(model, targets, forwarded)
        return MultiCompiledModel(self, model, config, parts)
