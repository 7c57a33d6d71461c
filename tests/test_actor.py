from __future__ import annotations

import anyio
import pytest

from aioplug import ClosedError
from aioplug.plugin import Actor

pytestmark = pytest.mark.anyio


async def test_messages_run_one_at_a_time_in_arrival_order() -> None:
    seen: list[int] = []
    running = 0

    async def work(i: int) -> int:
        nonlocal running
        running += 1
        assert running == 1
        await anyio.sleep(0)
        seen.append(i)
        running -= 1
        return i * 10

    async with anyio.create_task_group() as tg:
        actor = Actor("ordered", mailbox_size=4)
        actor.start(tg)
        results: dict[int, int] = {}

        async def call(i: int) -> None:
            results[i] = await actor.call(work, i)

        for i in range(20):
            tg.start_soon(call, i)
            await anyio.sleep(0)
        while len(results) < 20:
            await anyio.sleep(0.001)
        await actor.aclose()
    assert seen == list(range(20))
    assert results == {i: i * 10 for i in range(20)}
    assert actor.statistics().processed == 20


async def test_a_failing_message_fails_only_its_caller() -> None:
    def boom() -> None:
        raise ValueError("boom")

    async with anyio.create_task_group() as tg:
        actor = Actor("failing")
        actor.start(tg)
        with pytest.raises(ValueError, match="boom"):
            await actor.call(boom)
        assert await actor.call(lambda: 42) == 42
        assert actor.statistics().failed == 1
        await actor.aclose()


async def test_a_full_mailbox_makes_callers_wait() -> None:
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        actor = Actor("bounded", mailbox_size=1)
        actor.start(tg)
        tg.start_soon(actor.call, gate.wait)  # occupies the actor
        await anyio.sleep(0.01)
        tg.start_soon(actor.call, lambda: None)  # fills the mailbox
        await anyio.sleep(0.01)
        with anyio.move_on_after(0.05) as scope:
            await actor.call(lambda: None)  # must wait: the mailbox is full
        assert scope.cancelled_caught
        gate.set()
        while actor.statistics().processed < 2:
            await anyio.sleep(0.001)
        await actor.aclose()


async def test_a_caller_cancelled_before_its_turn_removes_its_message() -> None:
    gate = anyio.Event()
    ran: list[str] = []
    async with anyio.create_task_group() as tg:
        actor = Actor("cancel")
        actor.start(tg)
        tg.start_soon(actor.call, gate.wait)
        await anyio.sleep(0.01)
        with anyio.move_on_after(0.02):
            await actor.call(lambda: ran.append("late"))
        gate.set()
        await actor.call(lambda: ran.append("next"))
        await actor.aclose()
    assert ran == ["next"]


async def test_closing_fails_queued_messages_with_closed_error() -> None:
    gate = anyio.Event()
    outcome: list[BaseException] = []

    async def queued() -> None:
        try:
            await actor.call(lambda: None)
        except ClosedError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        actor = Actor("draining")
        actor.start(tg)
        tg.start_soon(actor.call, gate.wait)
        await anyio.sleep(0.01)
        tg.start_soon(queued)
        await anyio.sleep(0.01)
        tg.start_soon(actor.aclose)
        await anyio.sleep(0.01)
        gate.set()
    assert len(outcome) == 1


async def test_closed_actor_refuses_messages() -> None:
    async with anyio.create_task_group() as tg:
        actor = Actor("closed")
        actor.start(tg)
        await actor.aclose()
        with pytest.raises(ClosedError):
            await actor.call(lambda: None)
