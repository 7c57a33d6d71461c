"""The asynchronous inference request: a pipeline of stages, each awaited on its executor.

State machine, as OpenVINO's: ``IDLE`` -> ``BUSY`` on start; back to ``IDLE`` when the last
stage ends, *before* the callback runs (so a callback may start the request again).
``cancel()`` moves a busy request to ``CANCELLED``: a stage still queued is dropped at once,
a running compute stops at the next node boundary, and the request returns to ``IDLE``,
reusable. ``STOP`` is final (the compiled model was closed). A stage's exception skips the
remaining stages, reaches the callback, and is re-raised by :meth:`AsyncInferRequest.wait`.
Awaiting :meth:`AsyncInferRequest.infer` never calls the callback.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._executors import CancelToken, Executor
from ._profiling import ProfilingInfo
from ._results import InferResults
from ._state import VariableState
from ._sync_request import SyncInferRequest
from .errors import ClosedError, InferError, RequestBusy, RequestCancelled
from .model import Port

if TYPE_CHECKING:
    from ._compiled_model import CompiledModel

__all__ = ["AsyncInferRequest", "RequestState", "Stage"]

Callback = Callable[["AsyncInferRequest", "BaseException | None"], Any]


class RequestState(str, enum.Enum):
    """Lifecycle of a request."""

    IDLE = "IDLE"
    BUSY = "BUSY"
    CANCELLED = "CANCELLED"
    STOP = "STOP"


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``fn`` run on ``executor``."""

    executor: Executor
    fn: Callable[[], Any]
    name: str = ""


class _Run:
    """One ``start_async`` run: its completion event and outcome."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.error: BaseException | None = None


class AsyncInferRequest:
    """Runs a :class:`SyncInferRequest`'s stages as a coroutine pipeline."""

    def __init__(self, sync_request: SyncInferRequest, pipeline: list[Stage]) -> None:
        self._sync = sync_request
        self._pipeline = pipeline
        self._state = RequestState.IDLE
        self._callback: Callback | None = None
        self._run: _Run | None = None
        self._latency = 0.0
        self.userdata: Any = None

    # -- introspection -------------------------------------------------------------------
    @property
    def state(self) -> RequestState:
        """The request's lifecycle state."""
        return self._state

    @property
    def pipeline(self) -> list[Stage]:
        """The stages, in order (data: devices may replace it)."""
        return self._pipeline

    @property
    def compiled_model(self) -> CompiledModel:
        """The compiled model this request belongs to."""
        return self._sync.compiled_model

    @property
    def inputs(self) -> tuple[Port, ...]:
        """Input ports."""
        return self._sync.inputs

    @property
    def outputs(self) -> tuple[Port, ...]:
        """Output ports."""
        return self._sync.outputs

    @property
    def latency(self) -> float:
        """Seconds the last inference took from start to results."""
        return self._latency

    @property
    def results(self) -> InferResults | None:
        """Outputs of the last finished inference."""
        self._check_not_busy()
        return self._sync.results

    @property
    def stage_times(self) -> dict[str, float]:
        """Seconds spent in each stage of the last inference."""
        return self._sync.stage_times

    def _check_not_busy(self) -> None:
        state = self._state
        if state is RequestState.BUSY:
            raise RequestBusy("the request is running; wait() for it first")
        if state is RequestState.CANCELLED:
            raise RequestCancelled("the request was cancelled and is stopping")

    # -- tensors, state, profiling -------------------------------------------------------
    def set_tensor(self, key: str | Port, tensor: Any) -> None:
        """Sets an input tensor (no copy) or a preallocated output tensor."""
        self._check_not_busy()
        self._sync.set_tensor(key, tensor)

    def get_tensor(self, key: str | Port) -> Any:
        """Returns an input or output tensor."""
        self._check_not_busy()
        return self._sync.get_tensor(key)

    def get_input_tensor(self, index: int = 0) -> Any:
        """Returns the tensor of input ``index``."""
        self._check_not_busy()
        return self._sync.get_input_tensor(index)

    def get_output_tensor(self, index: int = 0) -> Any:
        """Returns the tensor of output ``index``."""
        self._check_not_busy()
        return self._sync.get_output_tensor(index)

    def query_state(self) -> list[VariableState]:
        """Returns the request's variable states."""
        self._check_not_busy()
        return self._sync.query_state()

    def reset_state(self) -> None:
        """Resets every variable state."""
        self._check_not_busy()
        self._sync.reset_state()

    def get_profiling_info(self) -> list[ProfilingInfo]:
        """Returns the last inference's profiling records (needs ``PERF_COUNT``)."""
        self._check_not_busy()
        return self._sync.get_profiling_info()

    def set_callback(self, callback: Callback | None) -> None:
        """Calls ``callback(request, exception_or_None)`` after each ``start_async`` run.

        The request is IDLE when the callback runs, so the callback may start it again. A
        coroutine function is awaited. An exception raised by the callback replaces the
        run's outcome and is re-raised by :meth:`wait`.
        """
        self._callback = callback

    # -- running -------------------------------------------------------------------------
    def _begin(self, inputs: Any) -> CancelToken:
        state = self._state
        if state is not RequestState.IDLE:
            if state is RequestState.BUSY:
                raise RequestBusy("the request is already running; wait for it or use another")
            if state is RequestState.STOP:
                raise ClosedError("the request's compiled model is closed")
            raise RequestCancelled("the request was cancelled and is stopping")
        if inputs is not None:
            self._sync.set_inputs(inputs)
        token = self._sync.token = CancelToken()
        self._state = RequestState.BUSY
        return token

    async def _run_stages(self, token: CancelToken) -> None:
        for stage in self._pipeline:
            executor = stage.executor
            if executor.inline:  # on the loop: call it, no coroutine per stage
                if token.cancelled:
                    raise RequestCancelled("the request was cancelled")
                stage.fn()
            else:
                await executor.run(stage.fn, token=token)
        if token.cancelled:
            raise RequestCancelled("the request was cancelled")

    def _finish(self) -> None:
        if self._state is not RequestState.STOP:
            self._state = RequestState.IDLE

    async def infer(self, inputs: Any = None) -> InferResults:
        """Runs one inference and returns its outputs; never calls the callback.

        ``inputs``: ``{name: array}``, a list in input order, or one array. Cancelling the
        awaiting task (or a deadline around it) stops the run: a queued stage is dropped, a
        running compute stops at the next node boundary; the request stays usable.
        """
        token = self._begin(inputs)
        start = time.perf_counter()
        try:
            await self._run_stages(token)
        finally:
            self._finish()
        self._latency = time.perf_counter() - start
        results = self._sync.results
        assert results is not None
        return results

    def start_async(self, inputs: Any = None, userdata: Any = None) -> None:
        """Starts an inference and returns at once; the callback runs when it finishes."""
        loop = asyncio.get_running_loop()
        token = self._begin(inputs)
        if userdata is not None:
            self.userdata = userdata
        run = self._run = _Run()
        task = loop.create_task(self._run_async(token, run))
        self._sync.compiled_model._track(task)

    async def _run_async(self, token: CancelToken, run: _Run) -> None:
        error: BaseException | None = None
        start = time.perf_counter()
        try:
            await self._run_stages(token)
            self._latency = time.perf_counter() - start
        except asyncio.CancelledError:
            error = RequestCancelled("the request was cancelled")
        except Exception as exc:
            error = exc
        finally:
            self._finish()
        callback = self._callback
        if callback is not None:
            try:
                result = callback(self, error)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                error = exc
        run.error = error
        run.done.set()

    async def wait(self) -> None:
        """Waits until the last started inference finishes; re-raises its error.

        Returns at once if the request was never started. Cancelling ``wait`` does not
        cancel the request.
        """
        run = self._run
        if run is None:
            return
        await run.done.wait()
        if run.error is not None:
            raise run.error

    async def wait_for(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds; True if finished (re-raising its error), else False."""
        if timeout < 0:
            raise InferError(f"wait_for timeout must be >= 0 seconds, got {timeout}")
        run = self._run
        if run is None:
            return False
        if not run.done.is_set():
            with anyio.move_on_after(timeout):
                await run.done.wait()
            if not run.done.is_set():
                return False
        if run.error is not None:
            raise run.error
        return True

    def cancel(self) -> None:
        """Cancels a running inference; a no-op when the request is not running."""
        if self._state is RequestState.BUSY:
            self._state = RequestState.CANCELLED
            self._sync.token.cancel()

    def _stop(self) -> None:
        """Moves the request to STOP: it will not start again."""
        if self._state is RequestState.BUSY:
            self._sync.token.cancel()
        self._state = RequestState.STOP

    def __repr__(self) -> str:
        return f"<AsyncInferRequest {self._state.value} on {self._sync.compiled_model.device_name}>"
