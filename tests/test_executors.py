from __future__ import annotations

import threading
import time

import anyio
import pytest

from aioplug import ClosedError, RequestCancelled
from aioplug.plugin import CancelToken, LoopExecutor, ThreadExecutor

pytestmark = pytest.mark.anyio


async def test_thread_executor_runs_work_off_the_loop_and_returns_it() -> None:
    executor = ThreadExecutor("t", threads=2)
    try:
        loop_thread = threading.get_ident()
        ident = await executor.run(threading.get_ident)
        assert ident != loop_thread
        assert await executor.run(pow, 2, 10) == 1024
    finally:
        executor.close()


async def test_exceptions_reach_the_awaiting_task() -> None:
    executor = ThreadExecutor("t")
    try:
        with pytest.raises(ZeroDivisionError):
            await executor.run(lambda: 1 / 0)
        assert await executor.run(lambda: "still works") == "still works"
    finally:
        executor.close()


async def test_threads_start_on_first_use_and_stop_on_close() -> None:
    before = threading.active_count()
    executor = ThreadExecutor("t", threads=3)
    assert threading.active_count() == before
    await executor.run(lambda: None)
    assert threading.active_count() == before + 3
    executor.close()
    assert threading.active_count() == before
    with pytest.raises(ClosedError):
        await executor.run(lambda: None)


async def test_a_queued_job_is_dropped_when_its_token_is_cancelled() -> None:
    executor = ThreadExecutor("t", threads=1)
    gate = threading.Event()
    ran: list[str] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(executor.run, gate.wait)
            await anyio.sleep(0.01)
            token = CancelToken()

            async def queued() -> None:
                with pytest.raises(RequestCancelled):
                    await executor.run(ran.append, "queued", token=token)

            tg.start_soon(queued)
            await anyio.sleep(0.01)
            token.cancel()
            await anyio.sleep(0.01)
            gate.set()
        assert ran == []
    finally:
        executor.close()


async def test_cancelling_the_awaiting_task_stops_a_running_job_cooperatively() -> None:
    executor = ThreadExecutor("t")
    token = CancelToken()
    steps: list[int] = []

    def long_job() -> None:
        for i in range(1000):
            if token.cancelled:
                return
            steps.append(i)
            time.sleep(0.001)

    try:
        with anyio.move_on_after(0.05) as scope:
            await executor.run(long_job, token=token)
        assert scope.cancelled_caught
        # the job had finished (stopped) before the cancellation propagated
        done = len(steps)
        time.sleep(0.01)
        assert len(steps) == done < 1000
        assert token.cancelled
    finally:
        executor.close()


async def test_loop_executor_runs_inline_and_honours_a_cancelled_token() -> None:
    executor = LoopExecutor()
    assert await executor.run(threading.get_ident) == threading.get_ident()
    token = CancelToken()
    token.cancel()
    with pytest.raises(RequestCancelled):
        await executor.run(lambda: None, token=token)
    assert executor.statistics().completed == 1
