"""A small actor on anyio: a bounded mailbox processed in order by one task.

``await actor.call(fn, *args)`` puts a message in the mailbox (waiting while it is full: that
is the backpressure) and waits for its reply. Messages run one at a time in arrival order;
a message that raises fails only its own caller. A caller cancelled before its message starts
removes the message. ``aclose`` stops accepting, fails what is still queued with
:class:`~aioplug.errors.ClosedError` and lets the running message finish.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import anyio
from anyio.abc import TaskGroup

from .errors import ClosedError

__all__ = ["Actor", "ActorStatistics"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ActorStatistics:
    """A snapshot of an actor's mailbox."""

    name: str
    queued: int
    processed: int
    failed: int
    mailbox_size: int


class _Message:
    __slots__ = ("fn", "args", "done", "result", "error", "started", "abandoned")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = False
        self.abandoned = False


class Actor:
    """Processes messages one at a time, in order, from a bounded mailbox."""

    def __init__(self, name: str, mailbox_size: int = 64) -> None:
        self.name = name
        self._send, self._receive = anyio.create_memory_object_stream[_Message](mailbox_size)
        self._mailbox_size = mailbox_size
        self._processed = 0
        self._failed = 0
        self._closed = False
        self._stopped = anyio.Event()
        self._started = False

    def start(self, task_group: TaskGroup) -> None:
        """Starts processing in ``task_group``."""
        if self._started:
            return
        self._started = True
        task_group.start_soon(self._run, name=f"aioplug-actor-{self.name}")

    @overload
    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    @overload
    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs ``fn(*args)`` (awaiting it if it is a coroutine function) in turn; returns its result."""
        if self._closed:
            raise ClosedError(f"actor {self.name} is closed")
        message = _Message(fn, args)
        try:
            await self._send.send(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ClosedError(f"actor {self.name} is closed") from None
        try:
            await message.done.wait()
        except BaseException:
            if not message.started:
                message.abandoned = True
            raise
        if message.error is not None:
            raise message.error
        return message.result

    async def _run(self) -> None:
        try:
            async with self._receive:
                async for message in self._receive:
                    if message.abandoned:
                        continue
                    if self._closed:
                        message.error = ClosedError(f"actor {self.name} is closed")
                        message.done.set()
                        continue
                    message.started = True
                    try:
                        result = message.fn(*message.args)
                        if inspect.isawaitable(result):
                            result = await result
                        message.result = result
                        self._processed += 1
                    except Exception as exc:  # a failure fails only its caller
                        self._failed += 1
                        message.error = exc
                        log.debug("actor %s: message failed: %r", self.name, exc)
                    finally:
                        message.done.set()
        finally:
            self._stopped.set()

    async def aclose(self) -> None:
        """Stops accepting messages, fails the queued ones, waits for the running one."""
        if self._closed:
            return
        self._closed = True
        await self._send.aclose()
        if self._started:
            await self._stopped.wait()
        else:
            await self._receive.aclose()

    def statistics(self) -> ActorStatistics:
        """Returns a snapshot of the mailbox."""
        stats = self._send.statistics()
        return ActorStatistics(
            self.name, stats.current_buffer_used, self._processed, self._failed, self._mailbox_size
        )
