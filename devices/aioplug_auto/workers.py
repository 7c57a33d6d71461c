"""MULTI's shared pool of device requests: a request goes to whichever device frees one first.

Each device contributes up to its ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests, created on
first need. ``acquire`` hands out an idle request of the highest-priority device that has one;
when none is idle, callers wait in FIFO order and each gets the next request released, from
whichever device. A caller whose token is cancelled, or whose task is cancelled, leaves the
line; a request handed to it at that moment goes to the next caller.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from aioplug.plugin import AsyncInferRequest, CancelToken, ClosedError, CompiledModel, RequestCancelled


@dataclass(eq=False)
class Worker:
    """One device request, with the device it runs on."""

    rank: int
    device: str
    request: AsyncInferRequest
    runs: int = field(default=0)


class WorkerPool:
    """Lends device requests of several compiled models, best device first."""

    def __init__(self, parts: Sequence[CompiledModel]) -> None:
        self._parts = list(parts)
        self._capacity = [int(p.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) for p in parts]
        self._devices = [",".join(p.get_property("EXECUTION_DEVICES")) for p in parts]
        self._created = [0] * len(parts)
        self._idle: list[list[Worker]] = [[] for _ in parts]
        self._waiters: deque[asyncio.Future[Worker]] = deque()
        self._closed = False

    def device(self, rank: int) -> str:
        """The device of the ``rank``-th compiled model (0: the highest priority)."""
        return self._devices[rank]

    @property
    def size(self) -> int:
        """How many device requests the pool lends at most."""
        return sum(self._capacity)

    def _take(self) -> Worker | None:
        for rank, idle in enumerate(self._idle):
            if idle:
                return idle.pop()
            if self._created[rank] < self._capacity[rank]:
                self._created[rank] += 1
                request = self._parts[rank].create_infer_request()
                return Worker(rank, self._devices[rank], request)
        return None

    async def acquire(self, token: CancelToken) -> Worker:
        """Returns an idle device request, waiting in line when all are lent."""
        if self._closed:
            raise ClosedError("the compiled model is closed")
        worker = self._take()
        if worker is not None:
            return worker
        waiter: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)

        def cancel() -> None:
            if not waiter.done():
                waiter.set_exception(RequestCancelled("the request was cancelled while queued"))

        token.add_callback(cancel)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())
            raise
        finally:
            token.remove_callback(cancel)

    def release(self, worker: Worker) -> None:
        """Returns a device request: to the first caller in line, else to the idle list."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle[worker.rank].append(worker)

    def close(self) -> None:
        """Fails every caller in line with ClosedError."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ClosedError("the compiled model was closed"))
