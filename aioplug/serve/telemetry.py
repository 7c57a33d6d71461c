"""The metrics one server exports at ``GET /metrics``.

Per model and version: requests, successes, failures by reason, queue depth and limit,
requests in flight, end-to-end latency, and latency per stage: ``queue`` (waiting for a
pooled request, measured here) and ``preprocess``/``compute``/``postprocess`` (read from
the request that served the call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .._version import __version__
from .metrics import Labels, Registry

if TYPE_CHECKING:
    from .served import ServedModel

__all__ = ["ServerMetrics", "STAGES"]

STAGES = ("queue", "preprocess", "compute", "postprocess")


class ServerMetrics:
    """Counters, gauges and histograms of a server; gauges read ``models()`` when scraped."""

    def __init__(self, models: Callable[[], Iterable[ServedModel]]) -> None:
        self._models = models
        r = self.registry = Registry()
        labels = ("model", "version")
        r.gauge("aioplug_serve_info", "The aioplug serve build.", ("version",), lambda: [((__version__,), 1.0)])
        self.requests = r.counter(
            "aioplug_serve_requests_total", "Inference requests received.", labels
        )
        self.successes = r.counter(
            "aioplug_serve_request_success_total", "Inference requests answered with outputs.", labels
        )
        self.failures = r.counter(
            "aioplug_serve_request_failures_total",
            "Inference requests that failed, by reason (bad_request, too_large, queue_full, "
            "timeout, cancelled, shutting_down, error).",
            (*labels, "reason"),
        )
        self.unknown_model = r.counter(
            "aioplug_serve_unknown_model_requests_total", "Requests that named no served model."
        )
        r.gauge("aioplug_serve_queue_depth", "Callers waiting for a free request.", labels,
                lambda: self._gauge(lambda m: m.compiled.pool.statistics().waiting))
        r.gauge("aioplug_serve_queue_limit", "The most callers that may wait (MAX_QUEUED_REQUESTS).",
                labels, lambda: self._gauge(lambda m: m.compiled.pool.statistics().max_waiting))
        r.gauge("aioplug_serve_in_flight", "Inference requests queued or running.", labels,
                lambda: self._gauge(lambda m: m.in_flight))
        r.gauge("aioplug_serve_requests_busy", "Pooled requests running now.", labels,
                lambda: self._gauge(lambda m: m.compiled.pool.statistics().lent))
        self.latency = r.histogram(
            "aioplug_serve_request_duration_seconds",
            "Server time per successful inference request, from arrival to the answer.", labels,
        )
        self.stages = r.histogram(
            "aioplug_serve_stage_duration_seconds",
            "Time per stage of successful requests: queue wait, preprocess, compute, postprocess.",
            (*labels, "stage"),
        )

    def _gauge(self, read: Callable[[ServedModel], float]) -> list[tuple[Labels, float]]:
        return [((m.name, m.version), float(read(m))) for m in self._models()]

    def render(self) -> str:
        """The Prometheus text of every metric."""
        return self.registry.render()
