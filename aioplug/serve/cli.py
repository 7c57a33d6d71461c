"""The ``aioplug serve`` command: serve a model file or a model repository over HTTP.

``aioplug.cli`` adds a ``serve`` subparser, fills it with :func:`add_arguments` and calls
:func:`run`; ``python -m aioplug.serve`` runs the same command on its own (:func:`main`).
Flags override the ``--config`` file, which overrides the defaults of
:class:`~aioplug.serve.ServerSettings`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import AioplugError
from .errors import ServeError
from .repository import load_repository
from .settings import ServerSettings

__all__ = ["add_arguments", "main", "run"]

INSTALL_HINT = 'aioplug serve needs the serve extra: pip install "aioplug[serve]"'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the arguments of ``aioplug serve`` to ``parser``."""
    parser.add_argument("model", metavar="MODEL_OR_REPOSITORY",
                        help="an .onnx file (served as its file stem, version 1) or a repository "
                             "folder of NAME/VERSION/model.onnx")
    parser.add_argument("-d", "--device", help="device of models whose config names none "
                                               "(default: the Core's default device)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000; 0: a free port)")
    parser.add_argument("--config", metavar="FILE.json",
                        help="server settings: limits, defaults, per-model device and properties")
    parser.add_argument("--max-queued-requests", type=int, metavar="N",
                        help="callers each model lets wait; 503 past it (default 64)")
    parser.add_argument("--hint", choices=["latency", "throughput"],
                        help="PERFORMANCE_HINT of models whose config sets none (default throughput)")
    parser.add_argument("--max-body-bytes", type=int, metavar="N", help="largest request body (default 64 MiB)")
    parser.add_argument("--timeout-ms", type=float, metavar="MS", dest="default_timeout_ms",
                        help="deadline of requests that set none (default: none)")
    parser.add_argument("--drain-timeout", type=float, metavar="S", dest="drain_timeout_s",
                        help="on shutdown, seconds requests in flight may finish in (default 30)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level of the server (default info)")


def _settings(args: argparse.Namespace) -> ServerSettings:
    settings = ServerSettings.from_file(args.config) if args.config else ServerSettings()
    return settings.replace(
        host=args.host, port=args.port, device=args.device,
        max_queued_requests=args.max_queued_requests, max_body_bytes=args.max_body_bytes,
        default_timeout_ms=args.default_timeout_ms, drain_timeout_s=args.drain_timeout_s,
        performance_hint=args.hint.upper() if args.hint else None,
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``aioplug serve`` until SIGINT/SIGTERM; returns the exit status.

    Raises an AioplugError (printed by the caller) when the models cannot be served.
    """
    try:
        from .runner import serve
    except ImportError as exc:
        raise ServeError(f"{INSTALL_HINT} ({exc})") from exc
    level = getattr(logging, args.log_level.upper())
    logging.getLogger("aioplug").setLevel(level)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    specs = load_repository(args.model, settings)

    def started(url: str) -> None:
        names = ", ".join(f"{s.name}/{s.version}" for s in specs)
        print(f"aioplug serve: listening on {url} ({names}); Ctrl+C stops", flush=True)

    serve(specs, settings, log_level=args.log_level, on_start=started)
    print("aioplug serve: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aioplug.serve``: parses ``argv`` and runs the server; returns the exit status."""
    parser = argparse.ArgumentParser(prog="aioplug serve", description="KServe v2 inference server")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AioplugError as exc:
        print(f"aioplug serve: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl+C
        return 130
