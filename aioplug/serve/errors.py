"""The errors of ``aioplug serve``: one branch of aioplug's error tree, each with its HTTP status.

Every error here is an :class:`aioplug.AioplugError`; ``status`` is the HTTP status code the
server answers with, and the message is the ``{"error": ...}`` body::

    AioplugError
    └── ServeError                    500 unless a subclass says otherwise
        ├── ProtocolError             400 a body or field that breaks the KServe v2 protocol
        ├── ModelNotFound             404 no such model or version
        ├── PayloadTooLarge           413 a body or tensor past the server's limits
        ├── UnsupportedEncoding       415 a Content-Encoding other than gzip, deflate, identity
        ├── ServerBusy                503 the model's queue or the server is full; retry later
        ├── ServerClosing             503 the server is shutting down
        ├── DeadlineExceeded          504 the request's deadline expired (queued or running)
        ├── ClientDisconnected        499 the client went away; nobody reads the answer
        └── RepositoryError           a model repository or config that cannot be served

Errors of the runtime keep their own classes; :func:`aioplug.serve.status_of` maps them.
"""

from __future__ import annotations

from ..errors import AioplugError

__all__ = [
    "ClientDisconnected",
    "DeadlineExceeded",
    "ModelNotFound",
    "PayloadTooLarge",
    "ProtocolError",
    "RepositoryError",
    "ServeError",
    "ServerBusy",
    "ServerClosing",
    "UnsupportedEncoding",
]


class ServeError(AioplugError):
    """An error of the inference server; ``status`` is its HTTP status code."""

    status = 500
    reason = "error"
    """The ``reason`` label of the failure metric."""


class ProtocolError(ServeError, ValueError):
    """The request breaks the KServe v2 protocol: a malformed body, field, datatype or shape."""

    status = 400
    reason = "bad_request"


class ModelNotFound(ServeError, LookupError):
    """No model, or no version of it, has the requested name."""

    status = 404
    reason = "not_found"


class PayloadTooLarge(ServeError):
    """A body, decompressed body or tensor is larger than the server's limits allow."""

    status = 413
    reason = "too_large"


class UnsupportedEncoding(ServeError):
    """The request's Content-Encoding is not gzip, deflate or identity."""

    status = 415
    reason = "bad_request"


class ServerBusy(ServeError):
    """The model's wait queue (or the server) is full: retry later (backpressure)."""

    status = 503
    reason = "queue_full"


class ServerClosing(ServeError):
    """The server is shutting down and takes no new work."""

    status = 503
    reason = "shutting_down"


class DeadlineExceeded(ServeError, TimeoutError):
    """The request's deadline expired while it waited in the queue or ran; the work was stopped."""

    status = 504
    reason = "timeout"


class ClientDisconnected(ServeError):
    """The client disconnected before the answer was ready; the work was stopped."""

    status = 499
    reason = "cancelled"


class RepositoryError(ServeError):
    """A model repository, model file or configuration that cannot be served."""
