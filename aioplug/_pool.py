"""The request pool of a compiled model: requests are lent with awaitable backpressure.

``acquire`` returns an idle request, creating one while fewer than ``size`` exist. When all
are lent, callers wait in FIFO order; past ``max_waiting`` waiting callers, ``acquire``
raises :class:`~aioplug.errors.QueueFull` at once. A caller cancelled while waiting leaves the
queue; a request handed to it at that very moment goes to the next waiter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ClosedError, QueueFull

__all__ = ["PoolStatistics", "RequestPool"]

R = TypeVar("R")


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a request pool."""

    size: int
    created: int
    idle: int
    lent: int
    waiting: int
    max_waiting: int
    rejected: int


class RequestPool(Generic[R]):
    """Lends up to ``size`` requests; at most ``max_waiting`` callers wait for one."""

    def __init__(self, factory: Callable[[], R], size: int, max_waiting: int) -> None:
        self._factory = factory
        self._size = max(1, size)
        self.max_waiting = max_waiting
        self._idle: list[R] = []
        self._all: list[R] = []
        self._waiters: deque[asyncio.Future[R]] = deque()
        self._waiting = 0
        self._lent = 0
        self._rejected = 0
        self._closed = False

    @property
    def size(self) -> int:
        """The most requests the pool lends at once."""
        return self._size

    @property
    def requests(self) -> list[R]:
        """Every request the pool has created."""
        return list(self._all)

    async def acquire(self) -> R:
        """Returns an idle request, waiting in line when all are lent."""
        if self._closed:
            raise ClosedError("the compiled model is closed")
        if self._idle:
            self._lent += 1
            return self._idle.pop()
        if len(self._all) < self._size:
            request = self._factory()
            self._all.append(request)
            self._lent += 1
            return request
        if self._waiting >= self.max_waiting:
            self._rejected += 1
            raise QueueFull(
                f"all {self._size} requests are busy and {self._waiting} callers are waiting "
                f"(MAX_QUEUED_REQUESTS={self.max_waiting}); retry later or raise the limit"
            )
        waiter: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._waiting += 1
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise
        finally:
            self._waiting -= 1

    def release(self, request: R) -> None:
        """Returns a lent request: to the first live waiter, else to the idle list."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(request)
                return
        self._lent -= 1
        self._idle.append(request)

    def close(self) -> None:
        """Fails every waiter with ClosedError; later acquires fail too."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ClosedError("the compiled model was closed"))

    def statistics(self) -> PoolStatistics:
        """Returns a snapshot."""
        return PoolStatistics(
            self._size, len(self._all), len(self._idle), self._lent, self._waiting,
            self.max_waiting, self._rejected,
        )
