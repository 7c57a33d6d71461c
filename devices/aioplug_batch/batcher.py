"""The batcher: gathers concurrent requests into batches and runs each on a device request.

Requests wait in arrival order, grouped by the trailing shapes of their inputs (requests of one
group can be stacked along axis 0). A batch is taken from the group of the oldest waiting
request (or from another group that is already full) when a device request is free and either
``size`` requests of that group wait or the oldest has waited ``timeout`` seconds; it then
takes up to ``size`` requests of the group, oldest first. While every device request is busy,
requests keep accumulating. Everything runs on the event loop: one ``loop.call_at`` timer, one
future per request, one task per batch; no threads.

A request abandoned before its batch starts (its task cancelled, its token cancelled, a
deadline) leaves the queue and never runs. Once its batch started, its slice is discarded
and the batch runs for the others; when no caller is left, the device request is cancelled.
When a batch of several requests fails, each is re-run alone, so a bad request (an index out
of range, say) fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
import copy
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import numpy as np

from aioplug.plugin import (
    AsyncInferRequest,
    ClosedError,
    InferError,
    ProfilingInfo,
    PropertyError,
    RequestCancelled,
    part_records,
)

__all__ = ["BatchStatistics", "Batcher"]

log = logging.getLogger(__name__)

_WAITING, _TAKEN, _GONE, _DONE = range(4)


@dataclass(frozen=True)
class BatchStatistics:
    """A snapshot of a BATCH compiled model's batcher.

    ``sizes`` maps a batch size to the number of batches of that size that started; a
    request ``dropped`` left before its batch started (never executed), a request
    ``discarded`` left after (its slice was thrown away).
    """

    batch_size: int
    timeout_s: float
    batches: int
    requests: int
    rows: int
    timed_out_batches: int
    failed_batches: int
    isolated_requests: int
    """Requests of failed batches re-run alone, so that only the requests at fault fail."""
    dropped: int
    discarded: int
    waiting: int
    running_batches: int
    idle_device_requests: int
    timer_armed: bool
    mean_wait_s: float
    max_wait_s: float
    sizes: Mapping[int, int] = field(default_factory=dict)

    @property
    def mean_batch_size(self) -> float:
        """Requests per batch, on average (0 before the first batch)."""
        return self.requests / self.batches if self.batches else 0.0


class _Entry:
    """One waiting request: its feed, its group, and the future its slice is delivered to.

    Calling it abandons the request (it is the cancel token's callback).
    """

    __slots__ = ("batcher", "feed", "key", "rows", "future", "since", "state", "batch", "wait")

    def __init__(
        self,
        batcher: Batcher,
        feed: Mapping[str, Any],
        key: Any,
        rows: int,
        future: asyncio.Future[Sequence[Any]],
        since: float,
    ) -> None:
        self.batcher = batcher
        self.feed = feed
        self.key = key
        self.rows = rows
        """Rows this request adds to a batch; -1 for a request that runs alone as given."""
        self.future = future
        self.since = since
        self.state = _WAITING
        self.batch: _Batch | None = None
        self.wait = 0.0

    def __call__(self) -> None:
        self.batcher.abandon(self, RequestCancelled("the request was cancelled"))


class _Group:
    __slots__ = ("key", "entries", "count")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.entries: deque[_Entry] = deque()
        self.count = 0


class _Batch:
    __slots__ = ("entries", "request", "live", "timed_out", "records", "run_s")

    def __init__(self, entries: list[_Entry], request: AsyncInferRequest, timed_out: bool) -> None:
        self.entries = entries
        self.request = request
        self.live = len(entries)
        self.timed_out = timed_out
        self.records: list[ProfilingInfo] = []
        self.run_s = 0.0


class Batcher:
    """Batches requests of one compiled model onto ``requests`` of the device it drives.

    ``names`` are the graph inputs in order; ``outputs`` the graph outputs (for errors);
    ``profiling()`` says whether to collect the device's profiling records; ``track``
    registers each batch's task with the compiled model (which cancels it on close).
    """

    def __init__(
        self,
        requests: Sequence[AsyncInferRequest],
        size: int,
        timeout_s: float,
        names: Sequence[str],
        outputs: Sequence[str],
        *,
        static: bool,
        uniform: bool,
        typed: bool,
        device: str,
        label: str,
        profiling: Callable[[], bool],
        track: Callable[[asyncio.Task[Any]], None],
    ) -> None:
        self.size = max(1, int(size))
        self.timeout = max(0.0, float(timeout_s))
        self._idle = list(requests)
        self._names = tuple(names)
        self._outputs = tuple(outputs)
        self._static = static
        self._uniform = uniform
        self._typed = typed
        self._device = device
        self._label = label
        self._profiling = profiling
        self._track = track
        self._groups: dict[Any, _Group] = {}
        self._order: deque[_Entry] = deque()
        self._waiting = 0
        self._running: set[_Batch] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # statistics
        self._batches = 0
        self._requests = 0
        self._rows = 0
        self._timed_out = 0
        self._failed = 0
        self._isolated = 0
        self._dropped = 0
        self._discarded = 0
        self._wait_total = 0.0
        self._wait_max = 0.0
        self._sizes: dict[int, int] = {}

    # -- submitting ----------------------------------------------------------------------
    def submit(self, feed: Mapping[str, Any]) -> _Entry:
        """Queues one request's feed; its slice of the outputs arrives on ``entry.future``."""
        if self._closed:
            raise ClosedError(f"the {self._device} compiled model is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if self._static:
            key: Any = None
            rows = 1
        elif self._uniform:
            key, rows = None, self._rows_of(feed)
        else:
            key, rows = self._key_of(feed)
        entry = _Entry(self, feed, key, rows, loop.create_future(), loop.time())
        if rows < 0:
            key = entry.key = entry  # runs alone: a group of its own
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key)
        group.entries.append(entry)
        group.count += 1
        self._order.append(entry)
        self._waiting += 1
        # with a device request free, a batch can start now only if this group just filled
        # up; otherwise the timer (armed by the first waiting request) starts it
        if self._idle and (group.count >= self.size or self._timer is None):
            self._pump()
        return entry

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._waiting or self._running:
            raise InferError(
                f"the {self._device} compiled model is in use on another event loop; use it "
                "from one loop at a time"
            )
        self._loop = loop
        self._timer = None

    def _rows_of(self, feed: Mapping[str, Any]) -> int:
        """The rows of a request whose inputs differ from others' only in their rows."""
        rows = -1
        for value in feed.values():
            first = value.shape[0]
            if rows == -1:
                rows = first
            elif first != rows:
                return -1  # inputs disagree on the batch: run it alone
        return rows

    def _key_of(self, feed: Mapping[str, Any]) -> tuple[Any, int]:
        """The group key (trailing shapes, and dtypes where a port has none) and the rows."""
        rows = -2
        parts: list[Any] = []
        typed = self._typed
        for value in feed.values():
            shape = getattr(value, "shape", None)
            if not shape:  # not an array, or rank 0: cannot be stacked
                return None, -1
            if rows == -2:
                rows = shape[0]
            elif shape[0] != rows:
                return None, -1  # inputs disagree on the batch: run it alone
            parts.append(shape[1:])
            if not typed:
                parts.append(value.dtype)
        return tuple(parts), max(rows, 0)

    # -- abandoning ----------------------------------------------------------------------
    def abandon(self, entry: _Entry, error: BaseException | None = None) -> None:
        """The caller left: drop a waiting request, or discard the slice of a running one."""
        state = entry.state
        if state == _WAITING:
            entry.state = _GONE
            self._dropped += 1
            self._waiting -= 1
            group = self._groups.get(entry.key)
            if group is not None:
                group.count -= 1
                if group.count == 0:
                    del self._groups[entry.key]
            if not self._waiting:
                self._cancel_timer()
                self._order.clear()
        elif state == _TAKEN:
            entry.state = _GONE
            self._discarded += 1
            batch = entry.batch
            if batch is not None:
                batch.live -= 1
                if batch.live == 0:
                    batch.request.cancel()  # nobody waits for it any more
        if error is not None and not entry.future.done():
            entry.future.set_exception(error)

    # -- forming batches -----------------------------------------------------------------
    def _pump(self) -> None:
        """Starts every batch that may start now; arms the timer for the next one."""
        order = self._order
        size = self.size
        while self._idle and self._waiting:
            head = order[0]
            while head.state != _WAITING:
                order.popleft()
                head = order[0]
            group = self._groups[head.key]
            if group.count >= size:
                self._start(group, False)
                continue
            if len(self._groups) > 1:
                full = self._full_group()
                if full is not None:
                    self._start(full, False)
                    continue
            assert self._loop is not None
            due = head.since + self.timeout
            if self._loop.time() >= due:
                self._start(group, True)
                continue
            if self._timer is None:
                self._timer = self._loop.call_at(due, self._on_timer)
            return

    def _full_group(self) -> _Group | None:
        size = self.size
        best: _Group | None = None
        for group in self._groups.values():
            if group.count >= size:
                if best is None or _oldest(group) < _oldest(best):
                    best = group
        return best

    def _on_timer(self) -> None:
        self._timer = None
        if not self._closed:
            self._pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self, group: _Group, timed_out: bool) -> None:
        assert self._loop is not None
        loop = self._loop
        now = loop.time()
        size = self.size
        queue = group.entries
        entries: list[_Entry] = []
        waits = 0.0
        longest = self._wait_max
        rows = 0
        while len(entries) < size and queue:
            entry = queue.popleft()
            if entry.state != _WAITING:
                continue
            entry.state = _TAKEN
            entry.wait = wait = now - entry.since
            waits += wait
            if wait > longest:
                longest = wait
            rows += entry.rows
            entries.append(entry)
        taken = len(entries)
        group.count -= taken
        if group.count <= 0:
            del self._groups[group.key]
        self._waiting -= taken
        if not self._waiting:
            self._cancel_timer()
        batch = _Batch(entries, self._idle.pop(), timed_out)
        for entry in entries:
            entry.batch = batch
        self._running.add(batch)
        self._batches += 1
        self._requests += taken
        self._rows += max(rows, 0)
        self._timed_out += timed_out
        self._wait_total += waits
        self._wait_max = longest
        self._sizes[taken] = self._sizes.get(taken, 0) + 1
        self._track(loop.create_task(self._run(batch)))

    # -- running a batch -----------------------------------------------------------------
    async def _run(self, batch: _Batch) -> None:
        entries = batch.entries
        request = batch.request
        try:
            if len(entries) == 1:
                feed: Mapping[str, Any] = entries[0].feed
            else:
                feed = {
                    name: np.concatenate([entry.feed[name] for entry in entries])
                    for name in self._names
                }
            start = time.perf_counter()
            results = await request.infer(feed)
            batch.run_s = time.perf_counter() - start
            outputs = results.to_tuple()
            if self._profiling():
                batch.records = self._device_records(request)
            self._deliver(batch, outputs)
        except asyncio.CancelledError:
            self._fail(batch, ClosedError(f"the {self._device} compiled model was closed"), None)
            raise
        except Exception as exc:
            if batch.live and not self._closed:  # not a batch cancelled for want of callers
                self._failed += 1
                if len(entries) > 1 and not isinstance(exc, (ClosedError, RequestCancelled)):
                    await self._isolate(batch, exc)
            self._fail(batch, exc, exc)
        finally:
            self._running.discard(batch)
            self._idle.append(request)
            if self._waiting and not self._closed:
                self._pump()

    async def _isolate(self, batch: _Batch, error: BaseException) -> None:
        """After a batch of several requests failed, runs each still waiting alone, so one bad
        request (an index out of range, say) fails only its own caller."""
        log.info(
            "%s: a batch of %d failed (%s); re-running its requests one by one",
            self._device, len(batch.entries), error,
        )
        request = batch.request
        for entry in batch.entries:
            if entry.state != _TAKEN:
                continue
            self._isolated += 1
            alone = _Batch([entry], request, batch.timed_out)
            try:
                results = await request.infer(entry.feed)
                self._deliver(alone, results.to_tuple())
            except asyncio.CancelledError:
                self._fail(batch, ClosedError(f"the {self._device} compiled model was closed"), None)
                raise
            except Exception as exc:
                self._fail(alone, exc, exc)

    def _device_records(self, request: AsyncInferRequest) -> list[ProfilingInfo]:
        try:
            return part_records(request.get_profiling_info(), self._label)
        except PropertyError:
            return []

    def _deliver(self, batch: _Batch, outputs: Sequence[Any]) -> None:
        entries = batch.entries
        if len(entries) == 1 and entries[0].rows < 0:  # ran alone, as given
            entry = entries[0]
            if entry.state == _TAKEN:
                entry.state = _DONE
                entry.future.set_result(outputs)
            return
        rows = sum(entry.rows for entry in entries)
        for name, value in zip(self._outputs, outputs):
            shape = getattr(value, "shape", None)
            if not shape or shape[0] != rows:
                got = f"shape {tuple(shape)}" if shape is not None else type(value).__name__
                raise InferError(
                    f"{self._device}: output {name!r} of a batch of {len(entries)} request(s) "
                    f"({rows} rows) came back with {got}; its first dimension must follow the "
                    "batch: the model does not keep axis 0 as its batch axis"
                )
        if len(entries) == 1:
            entry = entries[0]
            if entry.state == _TAKEN:
                entry.state = _DONE
                entry.future.set_result(outputs)
            return
        offset = 0
        for entry in entries:
            end = offset + entry.rows
            if entry.state == _TAKEN:
                entry.state = _DONE
                entry.future.set_result(tuple(value[offset:end] for value in outputs))
            offset = end

    def _fail(self, batch: _Batch, error: BaseException, cause: BaseException | None) -> None:
        """Fails every caller still waiting for ``batch``, each with its own copy of ``error``."""
        for entry in batch.entries:
            if entry.state != _TAKEN:
                continue
            entry.state = _DONE
            if not entry.future.done():
                entry.future.set_exception(_copy_error(error, cause))

    def records(self, entry: _Entry) -> list[ProfilingInfo]:
        """The profiling records of the batch ``entry`` ran in: its own, then the device's."""
        batch = entry.batch
        if batch is None:
            return []
        exec_type = f"batch {len(batch.entries)}/{self.size}"
        return [
            ProfilingInfo(
                f"{self._label} wait", "BatchWait", exec_type,
                _seconds(entry.wait), _seconds(0.0),
            ),
            ProfilingInfo(self._label, "Batch", exec_type, _seconds(batch.run_s), _seconds(0.0)),
            *batch.records,
        ]

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Fails every waiting and running request with ClosedError; stops the timer.

        Running device requests are cancelled; the compiled model awaits their tasks.
        """
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        error = ClosedError(f"the {self._device} compiled model was closed")
        for entry in self._order:
            if entry.state == _WAITING:
                entry.state = _DONE
                if not entry.future.done():
                    entry.future.set_exception(_copy_error(error, None))
        self._order.clear()
        self._groups.clear()
        self._waiting = 0
        for batch in list(self._running):
            self._fail(batch, error, None)
            batch.request.cancel()

    def statistics(self) -> BatchStatistics:
        """Returns a snapshot of the batcher."""
        return BatchStatistics(
            batch_size=self.size,
            timeout_s=self.timeout,
            batches=self._batches,
            requests=self._requests,
            rows=self._rows,
            timed_out_batches=self._timed_out,
            failed_batches=self._failed,
            isolated_requests=self._isolated,
            dropped=self._dropped,
            discarded=self._discarded,
            waiting=self._waiting,
            running_batches=len(self._running),
            idle_device_requests=len(self._idle),
            timer_armed=self._timer is not None,
            mean_wait_s=self._wait_total / self._requests if self._requests else 0.0,
            max_wait_s=self._wait_max,
            sizes=MappingProxyType(dict(sorted(self._sizes.items()))),
        )


def _oldest(group: _Group) -> float:
    for entry in group.entries:
        if entry.state == _WAITING:
            return entry.since
    return float("inf")


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _copy_error(error: BaseException, cause: BaseException | None) -> BaseException:
    """A copy of ``error`` for one caller (one exception object raised in many tasks would
    collect all their tracebacks), chained to ``cause``."""
    try:
        clone = copy.copy(error)
    except Exception:
        return error
    if not isinstance(clone, BaseException) or clone is error:
        return error
    clone.__traceback__ = None
    if cause is not None:
        clone.__cause__ = cause
    return clone
