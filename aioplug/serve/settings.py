"""The server's settings: where it listens, its limits, and its defaults for every model.

Settings come from keyword arguments, from a JSON file (``--config``) through
:meth:`ServerSettings.from_mapping`, and from command-line flags, later ones winning. Every
limit bounds memory: a request body is at most ``max_body_bytes`` (before and after
decompression), at most ``max_pending_requests`` requests are held at once, and each model
queues at most ``max_queued_requests`` callers (its ``MAX_QUEUED_REQUESTS``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import RepositoryError

__all__ = ["ServerSettings"]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and defaults of one server; every field is validated on construction."""

    host: str = "127.0.0.1"
    port: int = 8000
    device: str | None = None
    """Device of models whose config names none (None: the Core's default device)."""
    properties: Mapping[str, Any] = field(default_factory=dict)
    """Compile properties of every model, under each model's own."""
    performance_hint: str | None = "THROUGHPUT"
    """PERFORMANCE_HINT of models that set none: a server runs many requests at once (None: the device's default)."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body, compressed or not (413 past it)."""
    max_tensor_elements: int = 16 * 1024 * 1024
    """Largest element count of one input tensor (413 past it)."""
    max_queued_requests: int = 64
    """Callers a model lets wait for a free request (its MAX_QUEUED_REQUESTS; 503 past it)."""
    max_pending_requests: int = 1024
    """Inference requests the whole server holds at once, reading, queued or running (503 past it)."""
    default_timeout_ms: float | None = None
    """Deadline of requests that set none (None: no deadline)."""
    drain_timeout_s: float = 30.0
    """On shutdown, how long requests in flight may run before they are cancelled."""
    compress_min_bytes: int = 1024
    """Responses shorter than this are never compressed."""
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-model config (``device``, ``properties``, ``versions``), under the repository's own."""

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise RepositoryError(f"host must be a non-empty string, got {self.host!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise RepositoryError(f"port must be an integer in 0..65535, got {self.port!r}")
        for name in ("max_body_bytes", "max_tensor_elements", "max_queued_requests", "max_pending_requests"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RepositoryError(f"{name} must be a positive integer, got {value!r}")
        if self.compress_min_bytes < 0:
            raise RepositoryError(f"compress_min_bytes must be >= 0, got {self.compress_min_bytes}")
        if self.default_timeout_ms is not None and not self.default_timeout_ms > 0:
            raise RepositoryError(f"default_timeout_ms must be > 0, got {self.default_timeout_ms}")
        if not self.drain_timeout_s >= 0:
            raise RepositoryError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")
        if self.performance_hint not in (None, "LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"):
            raise RepositoryError(
                f"performance_hint must be LATENCY, THROUGHPUT or CUMULATIVE_THROUGHPUT, got {self.performance_hint!r}"
            )
        if not isinstance(self.properties, Mapping):
            raise RepositoryError("properties must be an object of compile properties")
        if not isinstance(self.models, Mapping) or not all(
            isinstance(v, Mapping) for v in self.models.values()
        ):
            raise RepositoryError('models must be an object: {"name": {"device": ..., ...}}')

    def replace(self, **changes: Any) -> ServerSettings:
        """Returns a copy with ``changes``; None values are ignored (unset flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: ServerSettings | None = None) -> ServerSettings:
        """Returns settings from a JSON object; unknown keys raise RepositoryError listing the known."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RepositoryError(
                f"unknown server setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            return (base or cls()).replace(**dict(data))
        except TypeError as exc:
            raise RepositoryError(f"bad server settings: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], base: ServerSettings | None = None) -> ServerSettings:
        """Reads settings from a JSON file."""
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise RepositoryError(f"cannot read server config {os.fspath(path)!r}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise RepositoryError(f"server config {os.fspath(path)!r} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise RepositoryError(f"server config {os.fspath(path)!r} must hold a JSON object")
        return cls.from_mapping(data, base)
