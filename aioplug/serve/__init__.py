"""``aioplug serve``: a KServe v2 (Open Inference Protocol) server over HTTP, on the runtime.

::

    aioplug serve model.onnx --port 8000          # or a repository: NAME/VERSION/model.onnx

Or from Python::

    from aioplug.serve import InferenceServer, ModelSpec, create_app
    app = create_app(InferenceServer([ModelSpec("mlp", "mlp.onnx")]))   # any ASGI server

Every model is a compiled model whose request pool bounds its queue (503 past
``MAX_QUEUED_REQUESTS``); deadlines, client disconnects and shutdown cancel the work. The
HTTP parts need the ``serve`` extra (``pip install "aioplug[serve]"``: starlette, uvicorn);
the names that use them are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .datatypes import DATATYPES, datatype_of, numpy_dtype
from .errors import (
    ClientDisconnected,
    DeadlineExceeded,
    ModelNotFound,
    PayloadTooLarge,
    ProtocolError,
    RepositoryError,
    ServeError,
    ServerBusy,
    ServerClosing,
    UnsupportedEncoding,
)
from .repository import ModelSpec, load_repository
from .settings import ServerSettings

if TYPE_CHECKING:
    from .app import create_app
    from .runner import ServerThread, serve
    from .server import InferenceServer

__all__ = [
    "DATATYPES",
    "ClientDisconnected",
    "DeadlineExceeded",
    "InferenceServer",
    "ModelNotFound",
    "ModelSpec",
    "PayloadTooLarge",
    "ProtocolError",
    "RepositoryError",
    "ServeError",
    "ServerBusy",
    "ServerClosing",
    "ServerSettings",
    "ServerThread",
    "UnsupportedEncoding",
    "create_app",
    "datatype_of",
    "load_repository",
    "numpy_dtype",
    "serve",
]

_LAZY = {
    "create_app": ".app",
    "InferenceServer": ".server",
    "ServerThread": ".runner",
    "serve": ".runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
