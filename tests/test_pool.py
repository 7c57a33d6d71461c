from __future__ import annotations

import itertools

import anyio
import pytest

from aioplug import ClosedError, QueueFull
from aioplug._pool import RequestPool

pytestmark = pytest.mark.anyio


def make_pool(size: int, max_waiting: int) -> RequestPool[int]:
    counter = itertools.count()
    return RequestPool(lambda: next(counter), size, max_waiting)


async def test_requests_are_created_lazily_up_to_the_size() -> None:
    pool = make_pool(2, 10)
    a = await pool.acquire()
    pool.release(a)
    assert await pool.acquire() == a
    b = await pool.acquire()
    assert b != a and pool.statistics().created == 2


async def test_waiters_are_served_in_fifo_order() -> None:
    pool = make_pool(1, 10)
    held = await pool.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        request = await pool.acquire()
        order.append(i)
        pool.release(request)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(waiter, i)
            await anyio.sleep(0)
        await anyio.sleep(0.01)
        assert pool.statistics().waiting == 5
        pool.release(held)
    assert order == [0, 1, 2, 3, 4]


async def test_past_the_wait_queue_bound_acquire_fails_at_once() -> None:
    pool = make_pool(1, 2)
    await pool.acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.acquire)
        tg.start_soon(pool.acquire)
        await anyio.sleep(0.01)
        with pytest.raises(QueueFull, match="MAX_QUEUED_REQUESTS=2"):
            await pool.acquire()
        assert pool.statistics().rejected == 1
        tg.cancel_scope.cancel()


async def test_a_cancelled_waiter_leaves_the_queue_and_loses_nothing() -> None:
    pool = make_pool(1, 10)
    held = await pool.acquire()
    with anyio.move_on_after(0.01):
        await pool.acquire()
    assert pool.statistics().waiting == 0
    pool.release(held)
    assert await pool.acquire() == held


async def test_closing_fails_the_waiters() -> None:
    pool = make_pool(1, 10)
    await pool.acquire()
    failures: list[BaseException] = []

    async def waiter() -> None:
        try:
            await pool.acquire()
        except ClosedError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        pool.close()
    assert len(failures) == 1
    with pytest.raises(ClosedError):
        await pool.acquire()
