"""The actor's mailbox: order, deadlines, backpressure, on both backends."""

from __future__ import annotations

import anyio
import anyio.lowlevel
from interlock.actors._mailbox import Mailbox


async def test_items_leave_in_order_and_a_passed_deadline_loses_nothing() -> None:
    mailbox: Mailbox[int] = Mailbox(limit=4)
    assert await mailbox.get(anyio.current_time() + 0.01) is None  # nothing came: the deadline passed
    assert await mailbox.get(anyio.current_time() - 1) is None  # already passed
    mailbox.put_nowait(1)
    await mailbox.put(2)
    assert len(mailbox) == 2
    assert await mailbox.get(anyio.current_time() + 10) == 1
    assert await mailbox.get() == 2


async def test_a_waiting_get_wakes_for_an_item_after_an_earlier_wait_timed_out() -> None:
    mailbox: Mailbox[str] = Mailbox()
    assert await mailbox.get(anyio.current_time() + 0.01) is None
    got: list[str | None] = []

    async def consume() -> None:
        got.append(await mailbox.get())
        got.append(await mailbox.get(anyio.current_time() + 10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            mailbox.put_nowait("first")
            await anyio.wait_all_tasks_blocked()
            mailbox.put_nowait("second")
    assert got == ["first", "second"]


async def test_a_cancelled_get_leaves_the_mailbox_usable() -> None:
    mailbox: Mailbox[str] = Mailbox()
    with anyio.move_on_after(0.01):
        await mailbox.get()
    mailbox.put_nowait("after")
    with anyio.fail_after(5):
        assert await mailbox.get() == "after"


async def test_a_full_mailbox_makes_producers_wait() -> None:
    mailbox: Mailbox[int] = Mailbox(limit=2)
    done: list[int] = []

    async def produce() -> None:
        for n in range(4):
            await mailbox.put(n)
            done.append(n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(produce)
            await anyio.wait_all_tasks_blocked()
            assert done == [0, 1]  # the third waits for room
            assert [await mailbox.get() for _ in range(4)] == [0, 1, 2, 3]
    assert done == [0, 1, 2, 3]


async def test_a_waiting_producer_is_not_starved_by_put_nowait() -> None:
    """Layer tokens posted past the limit must not keep a client frame out for ever."""
    mailbox: Mailbox[str] = Mailbox(2)
    mailbox.put_nowait("token")
    mailbox.put_nowait("token")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(mailbox.put, "frame")
        await anyio.sleep(0.01)  # the producer waits: the mailbox is full
        seen = []
        for _ in range(5):  # each take is followed by a new token, as a busy room does
            seen.append(await mailbox.get())
            mailbox.put_nowait("token")
            await anyio.lowlevel.checkpoint()
            if "frame" in mailbox.items:
                break
        assert "frame" in mailbox.items, "the frame never got in"


async def test_arrival_wakes_for_the_next_item_and_a_cancelled_one_leaves_no_trace() -> None:
    mailbox: Mailbox[str] = Mailbox()
    with anyio.move_on_after(0.01) as waited:
        await mailbox.arrival()
    assert waited.cancelled_caught  # nothing came
    got: list[str] = []

    async def consume() -> None:
        while not mailbox:
            await mailbox.arrival()
        got.append(mailbox.get_nowait())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            mailbox.put_nowait("first")
    assert got == ["first"]
    assert len(mailbox) == 0
