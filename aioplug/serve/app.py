"""The ASGI application: KServe v2 endpoints over HTTP, on Starlette.

=========================================================  =====================================
``GET  /v2/health/live``, ``/v2/health/ready``             200 when live / ready, else 400
``GET  /v2``                                               server metadata
``GET  /v2/models/{m}[/versions/{v}]``                     model metadata
``GET  /v2/models/{m}[/versions/{v}]/ready``               200 when the model is ready
``GET  /v2/models/{m}[/versions/{v}]/config``              Triton-style model configuration
``POST /v2/models/{m}[/versions/{v}]/infer``               inference, JSON or binary tensors
``GET  /metrics``                                          Prometheus text
=========================================================  =====================================

Every handler answers errors itself, as ``{"error": "..."}`` with the status of
:func:`aioplug.serve.status.status_of`; nothing escapes to the ASGI server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .._version import __version__
from .body import choose_encoding, compress, decompress, read_body
from .decode import parse_infer_request
from .disconnect import cancel_on_disconnect
from .encode import encode_json, encode_response
from .errors import ClientDisconnected, DeadlineExceeded, ModelNotFound, ProtocolError, ServerBusy
from .metrics import CONTENT_TYPE
from .served import ServedModel
from .server import InferenceServer
from .status import error_response, reason_of

__all__ = ["EXTENSIONS", "TIMEOUT_HEADER", "create_app"]

log = logging.getLogger(__name__)

EXTENSIONS = ["binary_tensor_data", "model_configuration"]
TIMEOUT_HEADER = "Inference-Timeout-Ms"
"""The request header of a deadline in milliseconds (``parameters.timeout`` is in µs)."""
HEADER_LENGTH = "Inference-Header-Content-Length"

Handler = Callable[[Request], Awaitable[Response]]


def _json(obj: object, status: int = 200) -> Response:
    return Response(encode_json(obj), status, media_type="application/json")


def _guard(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return error_response(exc)

    guarded.__name__ = handler.__name__
    return guarded


def _timeout_header(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        ms = float(value)
    except ValueError:
        raise ProtocolError(f"{TIMEOUT_HEADER} must be a number of milliseconds, got {value!r}") from None
    if not ms > 0 or ms == float("inf"):
        raise ProtocolError(f"{TIMEOUT_HEADER} must be > 0 milliseconds, got {value!r}")
    return ms / 1e3


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ProtocolError(f"{HEADER_LENGTH} must be an integer, got {value!r}") from None


class _Endpoints:
    """The handlers of one server."""

    def __init__(self, server: InferenceServer) -> None:
        self.server = server
        self.settings = server.settings
        self.metrics = server.metrics

    def _model(self, request: Request) -> ServedModel:
        try:
            return self.server.resolve(request.path_params["name"], request.path_params.get("version"))
        except ModelNotFound:
            self.metrics.unknown_model.inc()
            raise

    async def live(self, request: Request) -> Response:
        return Response(status_code=200)

    async def ready(self, request: Request) -> Response:
        if self.server.ready and not self.server.closing:
            return Response(status_code=200)
        return _json({"error": "the server is not ready"}, 400)

    async def server_metadata(self, request: Request) -> Response:
        return _json({"name": "aioplug", "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(self, request: Request) -> Response:
        model = self._model(request)
        return _json(model.metadata(self.server.versions(model.name)))

    async def model_ready(self, request: Request) -> Response:
        model = self._model(request)
        if model.ready and not self.server.closing:
            return Response(status_code=200)
        return _json({"error": f"model {model.name!r} is not ready"}, 400)

    async def model_config(self, request: Request) -> Response:
        return _json(self._model(request).config())

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # -- inference -------------------------------------------------------------------------
    async def infer(self, request: Request) -> Response:
        arrived = time.perf_counter()
        model = self._model(request)
        labels = (model.name, model.version)
        self.metrics.requests.inc(*labels)
        try:
            response, stages = await self._infer(request, model, arrived)
        except Exception as exc:
            self.metrics.failures.inc(*labels, reason_of(exc))
            if isinstance(exc, ClientDisconnected):
                log.debug("%s: %s", model.name, exc)
            return error_response(exc)
        self.metrics.successes.inc(*labels)
        self.metrics.latency.observe(time.perf_counter() - arrived, *labels)
        for stage, seconds in stages.items():
            self.metrics.stages.observe(seconds, *labels, stage)
        return response

    def _admit(self, model: ServedModel) -> None:
        server = self.server
        server.check_accepting()
        if server.pending >= self.settings.max_pending_requests:
            raise ServerBusy(
                f"the server holds {server.pending} requests, its limit (max_pending_requests); retry later"
            )
        if model.queue_full():
            stats = model.compiled.pool.statistics()
            raise ServerBusy(
                f"model {model.name!r} version {model.version} is busy: all {stats.size} requests run "
                f"and {stats.waiting} callers wait (MAX_QUEUED_REQUESTS={stats.max_waiting}); retry later"
            )

    def _deadline(
        self, header_s: float | None, timeout_us: int | None, arrived: float
    ) -> tuple[float, float] | None:
        """The seconds left and the whole deadline in ms, from the header, the body or the default."""
        candidates = [t for t in (header_s, timeout_us / 1e6 if timeout_us else None) if t is not None]
        if not candidates and self.settings.default_timeout_ms is not None:
            candidates.append(self.settings.default_timeout_ms / 1e3)
        if not candidates:
            return None
        timeout = min(candidates)
        remaining = timeout - (time.perf_counter() - arrived)
        if remaining <= 0:
            raise DeadlineExceeded(
                f"the deadline of {timeout * 1e3:g} ms expired before the request was read"
            )
        return remaining, timeout * 1e3

    async def _infer(
        self, request: Request, model: ServedModel, arrived: float
    ) -> tuple[Response, dict[str, float]]:
        self._admit(model)
        headers = request.headers
        header_timeout = _timeout_header(headers.get(TIMEOUT_HEADER))
        header_length = _header_length(headers.get(HEADER_LENGTH))
        limit = self.settings.max_body_bytes
        server = self.server
        server.pending += 1
        try:
            try:
                raw = await read_body(headers, request.stream(), limit)
            except ClientDisconnect:
                raise ClientDisconnected("the client disconnected while sending the body") from None
            body = await decompress(raw, headers.get("content-encoding"), limit)
            parsed = parse_infer_request(
                body, header_length, model.inputs, model.outputs,
                max_elements=self.settings.max_tensor_elements,
            )
            deadline = self._deadline(header_timeout, parsed.timeout_us, arrived)
            remaining, deadline_ms = deadline if deadline is not None else (None, None)
            results, stages = await cancel_on_disconnect(
                request.receive, lambda: model.infer(parsed.inputs, remaining, deadline_ms=deadline_ms)
            )
            out, json_length = encode_response(
                model.name, model.version, parsed.id, results, parsed.outputs, parsed.binary_data_output
            )
        finally:
            server.pending -= 1
        response_headers: dict[str, str] = {}
        if json_length is not None:
            response_headers[HEADER_LENGTH] = str(json_length)
        encoding = choose_encoding(headers.get("accept-encoding"))
        if encoding is not None and len(out) >= self.settings.compress_min_bytes:
            out = await compress(out, encoding)
            response_headers["Content-Encoding"] = encoding
        media = "application/octet-stream" if json_length is not None else "application/json"
        return Response(out, 200, response_headers, media), stages


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 else f"no endpoint {request.method} {request.url.path}"
    return Response(encode_json({"error": detail}), exc.status_code, exc.headers, "application/json")


def create_app(server: InferenceServer) -> Starlette:
    """Returns the ASGI application of ``server``; its lifespan opens and closes the server."""
    e = _Endpoints(server)
    get, post = ["GET"], ["POST"]
    routes = [
        Route("/v2/health/live", _guard(e.live), methods=get),
        Route("/v2/health/ready", _guard(e.ready), methods=get),
        Route("/v2", _guard(e.server_metadata), methods=get),
        Route("/metrics", _guard(e.metrics_text), methods=get),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, _guard(e.model_metadata), methods=get),
            Route(prefix + "/ready", _guard(e.model_ready), methods=get),
            Route(prefix + "/config", _guard(e.model_config), methods=get),
            Route(prefix + "/infer", _guard(e.infer), methods=post),
        ]
    app = Starlette(routes=routes, lifespan=server.lifespan, exception_handlers={HTTPException: _http_error})
    app.state.server = server
    return app
