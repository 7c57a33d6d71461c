"""HTTP status codes and error bodies for every error the server may meet.

The rule: the client's mistakes are 4xx with a message saying what to fix; overload and
shutdown are 503; an expired deadline is 504; only a failure of the model or of the server
itself is 500. Bodies are ``{"error": "..."}``, the form tritonclient reads.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from ..errors import AioplugError, ClosedError, InputError, QueueFull, RequestCancelled
from .encode import encode_json
from .errors import ServeError

__all__ = ["error_response", "reason_of", "status_of"]

log = logging.getLogger(__name__)


def status_of(exc: BaseException) -> int:
    """The HTTP status code that answers ``exc``."""
    if isinstance(exc, ServeError):
        return exc.status
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, (QueueFull, ClosedError, RequestCancelled)):
        return 503
    if isinstance(exc, TimeoutError):
        return 504
    return 500


def reason_of(exc: BaseException) -> str:
    """The ``reason`` label of the failure metric for ``exc``."""
    if isinstance(exc, ServeError):
        return exc.reason
    return {400: "bad_request", 503: "queue_full" if isinstance(exc, QueueFull) else "shutting_down",
            504: "timeout"}.get(status_of(exc), "error")


def _message(exc: BaseException, status: int) -> str:
    if status < 500 or isinstance(exc, AioplugError):
        return str(exc) or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {exc}"


def error_response(exc: BaseException) -> Response:
    """The JSON error response of ``exc``; unexpected errors are logged with their traceback."""
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, (ServeError, QueueFull, ClosedError, RequestCancelled)):
        log.error("request failed: %r", exc, exc_info=exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(encode_json({"error": _message(exc, status)}), status, headers, "application/json")
