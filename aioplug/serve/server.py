"""The inference server's state: its Core, the served models, and the lifecycle around them.

:meth:`InferenceServer.lifespan` is the ASGI lifespan: on startup it opens a Core and
compiles every model; on shutdown it stops taking requests, lets those in flight finish
(up to ``drain_timeout_s``), then closes the Core, which cancels whatever still runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .._core import Core
from .errors import ModelNotFound, RepositoryError, ServerClosing
from .repository import ModelSpec
from .served import ServedModel
from .settings import ServerSettings
from .telemetry import ServerMetrics

__all__ = ["InferenceServer"]

log = logging.getLogger(__name__)


class InferenceServer:
    """Serves ``specs`` with ``settings``; use :meth:`lifespan` to run it."""

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        settings: ServerSettings | None = None,
        *,
        core_factory: Callable[[], Core] = Core,
    ) -> None:
        if not specs:
            raise RepositoryError("nothing to serve: give at least one model")
        seen: set[tuple[str, int]] = set()
        for spec in specs:
            key = (spec.name, spec.version)
            if key in seen:
                raise RepositoryError(f"model {spec.name!r} version {spec.version} is given twice")
            seen.add(key)
        self.specs = tuple(specs)
        self.settings = settings or ServerSettings()
        self._core_factory = core_factory
        self.core: Core | None = None
        self._models: dict[str, dict[str, ServedModel]] = {}
        self.metrics = ServerMetrics(self.served_models)
        self.ready = False
        self.closing = False
        self.pending = 0
        """Inference requests being read, queued or run right now."""
        self.startup_error: BaseException | None = None
        """Why the last startup failed, if it did."""

    # -- models ----------------------------------------------------------------------------
    def served_models(self) -> list[ServedModel]:
        """Every served model version."""
        return [m for versions in self._models.values() for m in versions.values()]

    def versions(self, name: str) -> list[str]:
        """The served versions of ``name``, lowest first."""
        return sorted(self._models.get(name, {}), key=int)

    def resolve(self, name: str, version: str | None = None) -> ServedModel:
        """Returns the model ``name`` at ``version`` (default: its highest); ModelNotFound if none."""
        versions = self._models.get(name)
        if not versions:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFound(f"no model named {name!r}; served models: {known}")
        if version is None:
            return versions[max(versions, key=int)]
        model = versions.get(version)
        if model is None:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r}; served versions: {', '.join(self.versions(name))}"
            )
        return model

    # -- lifecycle -------------------------------------------------------------------------
    async def _compile(self, core: Core, spec: ModelSpec) -> ServedModel:
        start = time.perf_counter()
        try:
            device, properties = spec.resolved(self.settings)
            compiled = await core.compile_model(spec.source, device, properties)
        except Exception as exc:
            raise RepositoryError(
                f"cannot serve model {spec.name!r} version {spec.version}: {type(exc).__name__}: {exc}"
            ) from exc
        log.info(
            "compiled %s version %d on %s in %.1f ms", spec.name, spec.version,
            compiled.device_name, (time.perf_counter() - start) * 1e3,
        )
        return ServedModel(spec, compiled)

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Opens the Core and compiles every model; on exit drains, then closes the Core."""
        async with self._core_factory() as core:
            self.core = core
            try:
                for spec in self.specs:
                    served = await self._compile(core, spec)
                    self._models.setdefault(spec.name, {})[served.version] = served
            except Exception as exc:
                self.startup_error = exc
                log.error("startup failed: %s", exc)
                raise
            self.ready = True
            log.info("serving %d model version(s): %s", len(self.specs),
                     ", ".join(f"{s.name}/{s.version}" for s in self.specs))
            try:
                yield
            finally:
                await self.drain()
                self.ready = False
        self.core = None

    def begin_shutdown(self) -> None:
        """Stops taking new inference requests (they get 503); those in flight go on."""
        if not self.closing:
            log.info("shutting down: %d request(s) in flight", self.pending)
        self.closing = True

    async def drain(self) -> None:
        """Stops taking requests and waits up to ``drain_timeout_s`` for those in flight."""
        self.begin_shutdown()
        with anyio.move_on_after(self.settings.drain_timeout_s):
            while self.pending:
                await anyio.sleep(0.005)
        if self.pending:
            log.warning("drain timeout: cancelling %d request(s) still in flight", self.pending)

    def check_accepting(self) -> None:
        """Raises ServerClosing once shutdown began."""
        if self.closing or not self.ready:
            raise ServerClosing("the server is shutting down and takes no new requests")
