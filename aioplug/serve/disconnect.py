"""Cancelling work whose client went away: watch ``http.disconnect`` while the work runs.

Once the request body has been read, the next message on the ASGI receive channel arrives
only when the client disconnects (or after the response is sent). :func:`cancel_on_disconnect`
awaits that message beside the work and cancels the work when it comes, so a queued
request leaves the queue and a running one stops at the next node boundary.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from .errors import ClientDisconnected

__all__ = ["cancel_on_disconnect"]

T = TypeVar("T")
Receive = Callable[[], Awaitable[Any]]


async def cancel_on_disconnect(receive: Receive, work: Callable[[], Awaitable[T]]) -> T:
    """Returns ``await work()``; raises ClientDisconnected (after cancelling it) if the client leaves.

    Call it only after the whole request body has been received.
    """
    disconnected = False
    outcome: list[T] = []
    error: BaseException | None = None

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal disconnected
            while True:
                message = await receive()
                if message.get("type") == "http.disconnect":
                    disconnected = True
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        try:
            outcome.append(await work())
        except Exception as exc:  # re-raised below, once the watcher has stopped
            error = exc
        tg.cancel_scope.cancel()
    if outcome:
        return outcome[0]
    if disconnected:
        raise ClientDisconnected("the client disconnected; its request was cancelled") from error
    assert error is not None
    raise error
