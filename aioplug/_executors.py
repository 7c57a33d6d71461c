"""Stage executors: where a pipeline stage runs.

* :class:`LoopExecutor` runs a stage inline on the event loop: no hop, for light work.
* :class:`ThreadExecutor` runs stages on its own worker threads (a "stream" each) and hands
  results back to the loop. Threads start on first use and stop in :meth:`ThreadExecutor.close`.
* :class:`CoroutineExecutor` awaits coroutine stages on the loop: the stages of virtual devices,
  which await the requests of the devices they drive.

``await executor.run(fn, *args, token=token)`` returns ``fn(*args)``. If the awaiting task is
cancelled, a job that has not started is dropped at once; a running job is asked to stop
through its :class:`CancelToken` (checked by the device between nodes) and awaited, so nothing
is left half-done when the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from .errors import ClosedError, RequestCancelled

__all__ = [
    "CancelToken",
    "CoroutineExecutor",
    "Executor",
    "ExecutorStatistics",
    "LoopExecutor",
    "ThreadExecutor",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class CancelToken:
    """A cooperative cancellation flag, read by running work between steps."""

    __slots__ = ("cancelled", "_callbacks")

    def __init__(self) -> None:
        self.cancelled = False
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        """Sets the flag and runs the registered callbacks once."""
        if self.cancelled:
            return
        self.cancelled = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` on cancellation (at once if already cancelled)."""
        if self.cancelled:
            callback()
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[], None]) -> None:
        """Forgets ``callback``."""
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def raise_if_cancelled(self, what: str = "request") -> None:
        """Raises RequestCancelled when the flag is set."""
        if self.cancelled:
            raise RequestCancelled(f"{what} was cancelled")


@dataclass(frozen=True)
class ExecutorStatistics:
    """A snapshot of an executor."""

    name: str
    threads: int
    queued: int
    running: int
    completed: int


class Executor:
    """Runs stage functions; subclasses decide where."""

    name: str
    inline: bool = False
    """True when stages run synchronously on the loop (the pipeline then calls them directly)."""

    async def run(
        self, fn: Callable[..., T], *args: Any, token: CancelToken | None = None
    ) -> T:
        """Returns ``fn(*args)`` run on this executor."""
        raise NotImplementedError

    def statistics(self) -> ExecutorStatistics:
        """Returns a snapshot."""
        raise NotImplementedError

    def close(self) -> None:
        """Stops the executor's threads, if any, after the running jobs finish."""


class LoopExecutor(Executor):
    """Runs stages inline on the event loop."""

    inline = True

    def __init__(self, name: str = "loop") -> None:
        self.name = name
        self._completed = 0

    async def run(
        self, fn: Callable[..., T], *args: Any, token: CancelToken | None = None
    ) -> T:
        if token is not None and token.cancelled:
            raise RequestCancelled("request was cancelled")
        result = fn(*args)
        self._completed += 1
        return result

    def statistics(self) -> ExecutorStatistics:
        """Counts only stages run through :meth:`run` (pipelines call inline stages directly)."""
        return ExecutorStatistics(self.name, 0, 0, 0, self._completed)


class CoroutineExecutor(Executor):
    """Awaits coroutine stages on the event loop.

    A stage run here is a coroutine function; it handles the request's :class:`CancelToken`
    itself (typically by cancelling the requests it awaits). Cancelling the awaiting task
    cancels the coroutine with it.
    """

    def __init__(self, name: str = "coroutine") -> None:
        self.name = name
        self._running = 0
        self._completed = 0

    async def run(
        self, fn: Callable[..., Any], *args: Any, token: CancelToken | None = None
    ) -> Any:
        if token is not None and token.cancelled:
            raise RequestCancelled("request was cancelled")
        self._running += 1
        try:
            return await fn(*args)
        finally:
            self._running -= 1
            self._completed += 1

    def statistics(self) -> ExecutorStatistics:
        return ExecutorStatistics(self.name, 0, 0, self._running, self._completed)


_PENDING, _RUNNING, _DONE, _DROPPED = range(4)


class _Job:
    __slots__ = ("fn", "args", "loop", "future", "state", "lock", "finished", "delivered")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future = future
        self.state = _PENDING
        self.lock = threading.Lock()
        self.finished: asyncio.Future[None] | None = None
        self.delivered = False

    def drop(self) -> bool:
        """Marks a job that has not started as dropped; False if it already runs."""
        with self.lock:
            if self.state == _PENDING:
                self.state = _DROPPED
                return True
            return False

    def deliver(self, result: Any, error: BaseException | None) -> None:
        """Runs on the loop: hands the outcome to the waiting task."""
        self.delivered = True
        if not self.future.done():
            if error is None:
                self.future.set_result(result)
            else:
                self.future.set_exception(error)
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


_STOP = object()


class ThreadExecutor(Executor):
    """Runs stages on ``threads`` dedicated worker threads, started on first use."""

    _ids = itertools.count()

    def __init__(self, name: str, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError("a ThreadExecutor needs at least one thread")
        self.name = name
        self._size = threads
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._queued = 0
        self._running = 0
        self._completed = 0

    def _ensure_threads(self) -> None:
        if len(self._threads) == self._size:
            return
        with self._lock:
            if self._closed:
                raise ClosedError(f"executor {self.name} is closed")
            while len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work,
                    name=f"aioplug-{self.name}-{next(self._ids)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            job = get()
            if job is _STOP:
                return
            with job.lock:
                if job.state == _DROPPED:
                    continue
                job.state = _RUNNING
            self._queued -= 1
            self._running += 1
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # delivered to the awaiting task
                error = exc
            finally:
                self._running -= 1
                self._completed += 1
                job.state = _DONE
            try:
                job.loop.call_soon_threadsafe(job.deliver, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                log.debug("executor %s: loop closed before delivery", self.name)

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Job:
        """Queues ``fn(*args)`` and returns its job (the loop must be running)."""
        if self._closed:
            raise ClosedError(f"executor {self.name} is closed")
        self._ensure_threads()
        loop = asyncio.get_running_loop()
        job = _Job(fn, args, loop, loop.create_future())
        self._queued += 1
        self._queue.put(job)
        return job

    async def run(
        self, fn: Callable[..., T], *args: Any, token: CancelToken | None = None
    ) -> T:
        job = self.submit(fn, *args)
        if token is None:
            return await self._await(job, None)  # type: ignore[no-any-return]

        def cancel_pending() -> None:
            if job.drop():
                self._queued -= 1
                job.deliver(None, RequestCancelled("request was cancelled before it started"))

        token.add_callback(cancel_pending)
        try:
            return await self._await(job, token)  # type: ignore[no-any-return]
        finally:
            token.remove_callback(cancel_pending)

    async def _await(self, job: _Job, token: CancelToken | None) -> Any:
        try:
            return await job.future
        except asyncio.CancelledError:
            # The awaiting task was cancelled (job.future with it). A queued job is dropped;
            # a running one is asked to stop and awaited, so nothing is left half-done.
            if job.drop():
                self._queued -= 1
                raise
            if token is not None:
                token.cancel()
            if not job.delivered:
                job.finished = job.loop.create_future()
                with anyio.CancelScope(shield=True):
                    await job.finished
            raise

    def statistics(self) -> ExecutorStatistics:
        return ExecutorStatistics(
            self.name, len(self._threads), max(self._queued, 0), self._running, self._completed
        )

    def close(self) -> None:
        """Stops the worker threads after the jobs already queued; waits for them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join()
