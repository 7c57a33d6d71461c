"""AsyncInferQueue: a fixed set of requests fed in turn, with one completion callback."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ._async_request import AsyncInferRequest
from ._compiled_model import CompiledModel
from .errors import InferError

__all__ = ["AsyncInferQueue"]

QueueCallback = Callable[[AsyncInferRequest, Any], Any]


class AsyncInferQueue:
    """Runs inferences on ``jobs`` requests (0: the model's optimal number).

    ``await start_async(inputs, userdata)`` waits for an idle request (backpressure), starts
    it, and returns. The callback set with :meth:`set_callback` gets ``(request, userdata)``;
    errors of inferences and callbacks are collected and re-raised by :meth:`wait_all`.
    """

    def __init__(self, compiled_model: CompiledModel, jobs: int = 0) -> None:
        if jobs < 0:
            raise InferError(f"jobs must be >= 0, got {jobs}")
        n = jobs or int(compiled_model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._requests = [compiled_model.create_infer_request() for _ in range(n)]
        self._userdata: list[Any] = [None] * n
        self._idle: deque[int] = deque(range(n))
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._errors: list[BaseException] = []
        self._callback: QueueCallback | None = None
        self._all_idle = asyncio.Event()
        self._all_idle.set()
        for i, request in enumerate(self._requests):
            request.set_callback(self._make_callback(i))

    def _make_callback(self, index: int) -> Callable[[AsyncInferRequest, BaseException | None], Any]:
        async def done(request: AsyncInferRequest, error: BaseException | None) -> None:
            try:
                if error is not None:
                    self._errors.append(error)
                elif self._callback is not None:
                    result = self._callback(request, self._userdata[index])
                    if asyncio.iscoroutine(result):
                        await result
            except Exception as exc:
                self._errors.append(exc)
            finally:
                self._idle.append(index)
                while self._waiters:
                    waiter = self._waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(None)
                        break
                if len(self._idle) == len(self._requests):
                    self._all_idle.set()

        return done

    def set_callback(self, callback: QueueCallback | None) -> None:
        """Calls ``callback(request, userdata)`` after each successful inference."""
        self._callback = callback

    async def start_async(self, inputs: Any = None, userdata: Any = None) -> None:
        """Starts an inference on the next idle request, waiting for one if all are busy."""
        while not self._idle:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and self._waiters:
                    nxt = self._waiters.popleft()
                    if not nxt.done():
                        nxt.set_result(None)
                raise
        index = self._idle.popleft()
        self._userdata[index] = userdata
        self._all_idle.clear()
        try:
            self._requests[index].start_async(inputs)
        except BaseException:
            self._idle.appendleft(index)
            if len(self._idle) == len(self._requests):
                self._all_idle.set()
            raise

    def _raise_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            if len(errors) == 1:
                raise errors[0]
            raise ExceptionGroup("inferences in the AsyncInferQueue failed", errors)  # type: ignore[type-var]

    async def wait_all(self) -> None:
        """Waits until every request is idle; re-raises errors collected meanwhile."""
        await self._all_idle.wait()
        self._raise_errors()

    def is_ready(self) -> bool:
        """True when a request is idle; re-raises collected errors."""
        self._raise_errors()
        return bool(self._idle)

    def get_idle_request_id(self) -> int:
        """Index of an idle request, or -1 when all are busy."""
        self._raise_errors()
        return self._idle[0] if self._idle else -1

    @property
    def userdata(self) -> list[Any]:
        """The userdata of each request's last start."""
        return list(self._userdata)

    def __len__(self) -> int:
        return len(self._requests)

    def __iter__(self) -> Iterator[AsyncInferRequest]:
        return iter(self._requests)

    def __getitem__(self, index: int) -> AsyncInferRequest:
        return self._requests[index]
