"""AdaptiveConcurrency: FIFO slots, halving on a queue timeout, one slot back per quiet period."""

from __future__ import annotations

import asyncio

from bitrix_mail_async._concurrency import AdaptiveConcurrency


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_waiters_are_served_in_order_and_cancellation_leaves_nothing() -> None:
    limit = AdaptiveConcurrency(2)
    await limit.acquire()
    await limit.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        await limit.acquire()
        order.append(n)

    tasks = [asyncio.create_task(wait(n)) for n in range(4)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    await asyncio.sleep(0)
    limit.release()
    limit.release()
    await asyncio.sleep(0)
    assert order == [0, 2]
    assert limit.in_flight == 2
    limit.release()
    await asyncio.sleep(0)
    assert order == [0, 2, 3]
    limit.release()
    limit.release()
    assert limit.in_flight == 0
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_all_waiters_cancelled_then_a_new_call_gets_a_slot_at_once() -> None:
    limit = AdaptiveConcurrency(1)
    await limit.acquire()
    tasks = [asyncio.create_task(limit.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    limit.release()
    assert limit.in_flight == 0
    await asyncio.wait_for(limit.acquire(), 1.0)
    assert limit.in_flight == 1


async def test_an_overload_halves_once_per_episode_and_quiet_periods_add_slots_back() -> None:
    clock = Clock()
    limit = AdaptiveConcurrency(32, quiet_period=1.0, clock=clock)
    generation = await limit.acquire()
    assert limit.overloaded(generation)
    assert limit.limit == 16
    # Other calls of the same episode (admitted before the decrease) do not halve again.
    assert not limit.overloaded(generation)
    assert limit.limit == 16
    assert limit.overloaded(limit.generation)
    assert limit.limit == 8
    limit.succeeded()
    assert limit.limit == 8  # not quiet long enough
    clock.now += 1.0
    limit.succeeded()
    assert limit.limit == 9
    for _ in range(100):
        clock.now += 1.0
        limit.succeeded()
    assert limit.limit == 32  # never above the configured maximum
    for _ in range(10):
        limit.overloaded(limit.generation)
    assert limit.limit == 1  # never below one
