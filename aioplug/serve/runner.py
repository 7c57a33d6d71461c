"""Running the server with uvicorn: in the foreground (the CLI) or on a background thread.

The listening socket is bound here, before uvicorn starts, so port 0 picks a free port with
no race and the real address is known. On SIGINT/SIGTERM uvicorn stops accepting
connections; the server then refuses new requests on open connections (503), lets those in
flight finish, and closes its Core.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn

from .app import create_app
from .errors import RepositoryError
from .repository import ModelSpec
from .server import InferenceServer
from .settings import ServerSettings

__all__ = ["ServerThread", "bind_socket", "serve"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def bind_socket(host: str, port: int) -> socket.socket:
    """Returns a listening TCP socket on ``host:port`` (port 0: a free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise RepositoryError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


class _Uvicorn(uvicorn.Server):
    """uvicorn, telling the inference server when shutdown begins and when it started."""

    def __init__(self, config: uvicorn.Config, inference: InferenceServer, on_start: Callable[[], None]) -> None:
        super().__init__(config)
        self._inference = inference
        self._on_start = on_start

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM start a graceful shutdown; the process then exits normally."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._inference.begin_shutdown()
        await super().shutdown(sockets)


def _config(app: Any, settings: ServerSettings, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="on",
        log_level=log_level,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.drain_timeout_s)),
        server_header=False,
    )


def serve(
    specs: Sequence[ModelSpec],
    settings: ServerSettings | None = None,
    *,
    log_level: str = "warning",
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Serves ``specs`` until SIGINT or SIGTERM; ``on_start(url)`` runs once it listens.

    Raises RepositoryError when a model cannot be compiled or the address is taken.
    """
    settings = settings or ServerSettings()
    inference = InferenceServer(specs, settings)
    sock = bind_socket(settings.host, settings.port)
    url = _url(sock)
    server = _Uvicorn(
        _config(create_app(inference), settings, log_level), inference,
        lambda: on_start(url) if on_start is not None else None,
    )
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(server.serve(sockets=[sock]))
    except SystemExit as exc:  # uvicorn exits when the lifespan startup fails
        if inference.startup_error is not None:
            raise inference.startup_error from None
        raise RepositoryError(f"the server failed to start (exit status {exc.code})") from None
    finally:
        sock.close()


class ServerThread:
    """Runs a server on a background thread with its own event loop; for tests and examples.

    ``with ServerThread(specs) as thread:`` returns once the models are compiled and the
    socket listens on ``port`` (0: a free one; see ``thread.url``); leaving the block shuts the server down gracefully.
    :meth:`call` runs a coroutine on the server's loop (to reach its compiled models).
    """

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        settings: ServerSettings | None = None,
        *,
        port: int = 0,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.settings = (settings or ServerSettings()).replace(port=port)
        self.inference = InferenceServer(specs, self.settings)
        self._sock = bind_socket(self.settings.host, self.settings.port)
        self.url = _url(self._sock)
        self.port: int = self._sock.getsockname()[1]
        self._started = threading.Event()
        self._timeout = startup_timeout_s
        config = _config(create_app(self.inference), self.settings, "warning")
        self._server = _Uvicorn(config, self.inference, self._started.set)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="aioplug-serve", daemon=True)

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                self.loop = runner.get_loop()
                runner.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._sock.close()
            self._started.set()

    def start(self) -> ServerThread:
        """Starts the thread; returns once the server listens, or raises why it did not."""
        self._thread.start()
        if not self._started.wait(self._timeout):
            self.stop()
            raise RepositoryError(f"the server did not start within {self._timeout} s")
        if not self._server.started:
            self._thread.join()
            error = self.inference.startup_error or self._error
            raise RepositoryError(f"the server failed to start: {error}") from error
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Runs ``coro`` on the server's event loop and returns its result."""
        assert self.loop is not None, "the server is not running"
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self, timeout: float | None = 60.0) -> None:
        """Shuts the server down gracefully and joins the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
