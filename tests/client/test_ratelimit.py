"""The client's token bucket, shared cooldown and adaptive rate, against the emulator's limit."""

from __future__ import annotations

import asyncio
import itertools
from typing import TypeVar

import pytest

from bitrix_mail_async import MailClient, RateLimit, errors
from bitrix_mail_async._ratelimit import AdaptiveRate, BucketShape, InProcessLimiter, Permit
from bitrix_mail_async.testing import MailEmulator

from .virtual_time import in_virtual_time

T = TypeVar("T")


async def _queue_calls(
    limiter: InProcessLimiter, n: int
) -> tuple[list[asyncio.Task[None]], list[float]]:
    """Start ``n`` acquires that must queue; each logs the loop time it got through."""
    loop = asyncio.get_running_loop()
    through: list[float] = []

    async def call() -> None:
        await limiter.acquire()
        through.append(loop.time())

    tasks = [asyncio.create_task(call()) for _ in range(n)]
    await asyncio.sleep(0)  # every one of them is queued in the bucket now
    return tasks, through


def test_adaptive_rate_decreases_once_per_episode_and_recovers() -> None:
    rate = AdaptiveRate(per_second=30.0, burst=30)
    assert rate.on_rate_limited(generation=0, now=10.0)
    assert rate.rate == pytest.approx(24.0)
    # A second 429 of a call admitted before the decrease belongs to the same episode.
    assert not rate.on_rate_limited(generation=0, now=10.1)
    assert rate.rate == pytest.approx(24.0)
    assert rate.on_rate_limited(generation=1, now=10.2)
    assert rate.rate == pytest.approx(19.2)
    assert rate.capacity == round(30 * 0.64)
    assert not rate.on_quiet(now=10.5)  # not quiet long enough
    assert rate.on_quiet(now=11.3)
    assert rate.rate == pytest.approx(19.2 * 1.05)
    for step in range(100):
        rate.on_quiet(now=12.5 + step * 1.1)
    assert rate.rate == 30.0  # never above the configured rate


def test_adaptive_bucket_hands_its_queued_calls_over() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = InProcessLimiter(per_second=10.0, burst=11, adaptive=True)  # capacity 10
        permits = [await limiter.acquire() for _ in range(10)]  # the whole burst at once
        assert loop.time() == pytest.approx(0.0, abs=1e-4)
        tasks, through = await _queue_calls(limiter, 4)  # 10/s would let them go every 0.1 s

        # A 429 of the current generation: 8/s and capacity 8. The level (10) is kept.
        await limiter.report_rate_limited(permits[-1], 0.0)
        assert (limiter.current_rate, limiter.current_burst) == (pytest.approx(8.0), 8)
        # Another 429 of a call admitted before the decrease belongs to the same episode.
        await limiter.report_rate_limited(permits[0], 0.0)
        assert limiter.current_rate == pytest.approx(8.0)
        await asyncio.gather(*tasks)
        # The queued calls moved to the new bucket and its rate, none lost: once the level
        # has drained to the new capacity (2 slots at 8/s), one every 1/8 s.
        assert through == pytest.approx([0.375, 0.5, 0.625, 0.75], abs=1e-4)

        # Quiet for the quiet period (1 s): the next success raises the rate by 5 %.
        await asyncio.sleep(0.5)  # half the bucket has drained
        permits = [await limiter.acquire() for _ in range(4)]
        assert loop.time() == pytest.approx(1.25, abs=1e-4)
        tasks, through = await _queue_calls(limiter, 4)
        limiter.report_success(permits[-1])
        assert limiter.current_rate == pytest.approx(8.4)
        await asyncio.gather(*tasks)
        # Not the old 1/8 s: the queued calls run at the raised rate, still from a full bucket.
        assert through == pytest.approx([1.25 + k / 8.4 for k in range(1, 5)], abs=1e-4)
        new = await limiter.acquire()
        assert new.generation == 1

    in_virtual_time(scenario)


def test_cancelled_calls_leave_no_trace_across_a_rate_change() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = InProcessLimiter(per_second=10.0, burst=11, adaptive=True)
        permits = [await limiter.acquire() for _ in range(10)]
        tasks, _ = await _queue_calls(limiter, 6)
        await limiter.report_rate_limited(permits[-1], 0.0)  # 8/s, capacity 8, level 10
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        await asyncio.sleep(0)  # let the cancelled waiters' own slot tasks finish
        assert asyncio.all_tasks() == {asyncio.current_task()}
        # The cancelled calls took no slot: the next call waits for the level to drain to
        # the new capacity (2 slots) and one slot more, at the new rate.
        started = loop.time()
        await limiter.acquire()
        assert loop.time() - started == pytest.approx(0.375, abs=1e-4)

    in_virtual_time(scenario)


def test_a_call_cancelled_while_waiting_for_the_peak_gives_its_bucket_slot_back() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        # The bucket: 5 at once, then one per 2 s; the peak: one call per second.
        peak = BucketShape.of(1.0, 1)
        limiter = InProcessLimiter(per_second=0.5, burst=5, adaptive=False, peak=peak)
        await limiter.acquire()  # bucket 4 left, peak spent
        waiting = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
        await asyncio.sleep(0.1)  # each took a bucket slot and waits for the peak
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        through = []
        for _ in range(4):  # the bucket's 4 slots are all still there: peak-paced only
            await limiter.acquire()
            through.append(round(loop.time(), 3))
        return through

    through = in_virtual_time(scenario)
    # Paced by the peak (1 s apart), not by the bucket (2 s): its slots were all still there.
    # aiolimiter 1.0 counts the peak's second from the cancels (0.1 s), later ones from 0.
    assert through[0] == pytest.approx(1.0, abs=0.11)
    assert [b - a for a, b in itertools.pairwise(through)] == pytest.approx(
        [1.0, 1.0, 1.0], abs=1e-3
    )


def test_a_rate_change_keeps_the_level_of_the_bucket() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = InProcessLimiter(per_second=10.0, burst=11, adaptive=True)  # capacity 10
        permits = [await limiter.acquire() for _ in range(4)]
        await limiter.report_rate_limited(permits[-1], 0.0)  # 8/s, capacity 8, level 4
        through = []
        for _ in range(5):
            await limiter.acquire()
            through.append(loop.time())
        return through

    # Neither a fresh burst of 8 nor a full bucket: the 4 slots left, then 1/8 s.
    assert in_virtual_time(scenario) == pytest.approx([0, 0, 0, 0, 0.125], abs=1e-4)


def test_bucket_shape_is_the_one_check_and_default_of_a_limit() -> None:
    assert BucketShape.of(2, None) == BucketShape(2.0, 2)  # one second's worth
    assert BucketShape.of(0.5, None).capacity == 1
    assert BucketShape.of(2, 50).capacity == 49  # one slot of the gateway's bucket stays free
    assert BucketShape.of(100, 20).share(0.25) == BucketShape(25.0, 5)
    for per_second, burst in ((0, 1), (float("nan"), 1), (True, 1), (1, 0), (1, 2.0), (1, True)):
        with pytest.raises(errors.ConfigurationError):
            BucketShape.of(per_second, burst)


def test_rate_limit_validation() -> None:
    with pytest.raises(errors.ConfigurationError):
        RateLimit(per_second=0)
    with pytest.raises(errors.ConfigurationError):
        RateLimit(per_second=float("inf"))
    with pytest.raises(errors.ConfigurationError):
        RateLimit(per_second=1, burst=0)


def test_bucket_paces_calls() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        limiter = InProcessLimiter(per_second=50.0, burst=6, adaptive=False)
        started = loop.time()
        for _ in range(30):
            await limiter.acquire()
        return loop.time() - started

    elapsed = in_virtual_time(scenario)
    # Burst 6 keeps one slot free: 5 at once, then 25 at 50/s.
    assert 0.45 <= elapsed <= 0.8


def test_cooldown_blocks_every_caller() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = InProcessLimiter(per_second=None, burst=None, adaptive=False)
        permit = await limiter.acquire()
        await limiter.report_rate_limited(permit, 0.3)
        assert 0.25 < await limiter.cooldown_remaining() <= 0.3
        started = loop.time()
        await asyncio.gather(*(limiter.acquire() for _ in range(50)))
        assert 0.28 <= loop.time() - started < 0.45

    in_virtual_time(scenario)


async def _bulk_in_virtual_time(
    real: float, client_rate: float, client_burst: int, calls: int
) -> tuple[float, int, float | None]:
    """``calls`` gets at once against a key limited to ``real``/s, emulator and client on one
    virtual clock: (elapsed virtual seconds, 429s at the emulator, the client's learned rate)."""
    loop = asyncio.get_running_loop()
    async with MailEmulator(clock=loop.time) as emulator:
        emulator.set_rate_limit(real, burst=10, retry_after=0.2)
        async with MailClient(
            emulator.api_key,
            base_url=emulator.base_url,
            rate_limit=RateLimit(per_second=client_rate, burst=client_burst),
            max_concurrency=64,
        ) as mail:
            started = loop.time()
            results = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(calls)))
            elapsed = loop.time() - started
            learned = mail.stats.current_rate
        assert len(results) == calls
        return elapsed, emulator.stats.rate_limited, learned


def test_client_configured_at_the_gateway_limit_gets_no_429() -> None:
    # Emulator and client share one virtual clock: the figures do not depend on the machine.
    elapsed, rate_limited, _ = in_virtual_time(lambda: _bulk_in_virtual_time(50, 50, 10, 100))
    assert rate_limited == 0
    assert 100 / elapsed >= 0.9 * 50


def test_client_at_three_times_the_real_limit_converges() -> None:
    real, calls = 50.0, 300
    elapsed, rate_limited, learned = in_virtual_time(
        lambda: _bulk_in_virtual_time(real, 3 * real, 30, calls)
    )
    assert rate_limited <= 0.10 * calls, f"{rate_limited} of {calls} calls saw a 429"
    assert calls / elapsed >= 0.85 * real, f"{calls / elapsed:.1f}/s of {real}/s"
    assert learned is not None and learned < 3 * real


def test_a_waiting_call_costs_no_task_of_its_own() -> None:
    # Issue 23 item 4: the bucket's queue is futures and one timer, not a task per waiting call.
    async def scenario() -> tuple[int, int, float]:
        limiter = RateLimit(per_second=10, burst=1).create_limiter(api_key="k")
        calls = [asyncio.ensure_future(limiter.acquire()) for _ in range(200)]
        await asyncio.sleep(0)  # every call has asked; all but one wait
        tasks = len(asyncio.all_tasks())
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*calls)
        return tasks, len(calls), asyncio.get_running_loop().time() - start

    tasks, calls, elapsed = in_virtual_time(scenario)
    assert tasks <= calls + 1  # the callers and this scenario, nothing per waiting call
    assert elapsed == pytest.approx(19.9, abs=0.01)  # 1 at once, then 10/s


@pytest.mark.parametrize("seed", range(5))
def test_try_acquire_gives_a_permit_exactly_when_acquire_would_not_wait(seed: int) -> None:
    # The pipeline takes try_acquire()'s permit as a plain step (the flat road) and awaits
    # acquire() only when it says None: the two must agree, and neither may over-grant.
    import random

    async def scenario() -> tuple[int, int, list[float]]:
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        limiter = InProcessLimiter(per_second=4.0, burst=3, adaptive=True)
        granted: list[float] = []  # when each permit was given, whichever way

        async def acquire() -> None:
            await limiter.acquire()
            granted.append(loop.time())

        waiting: list[asyncio.Future[object]] = []
        at_once = checked = 0
        for _ in range(300):
            op = rng.random()
            if op < 0.2:
                waiting.append(asyncio.ensure_future(acquire()))
            elif op < 0.3 and waiting:
                waiting.pop(rng.randrange(len(waiting))).cancel()
            elif op < 0.35:
                await limiter.report_rate_limited(None, rng.choice([0.0, 0.1, 0.5]))
            elif op < 0.6:
                await asyncio.sleep(rng.choice([0.0, 0.05, 0.2, 0.6]))
            else:
                checked += 1
                if limiter.try_acquire() is not None:
                    at_once += 1
                    granted.append(loop.time())
                    assert await limiter.cooldown_remaining() == 0.0
                else:
                    # acquire() now, one step by hand: it must stop at a wait, not end.
                    step = limiter.acquire()
                    waits_for = step.send(None)
                    assert isinstance(waits_for, asyncio.Future)
                    waits_for.cancel()  # and leaves it as a cancelled caller would
                    with pytest.raises(asyncio.CancelledError):
                        step.throw(asyncio.CancelledError())
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        return at_once, checked, granted

    at_once, checked, granted = in_virtual_time(scenario)
    assert 0 < at_once < checked  # both kinds of state were seen
    # Never more than the bucket allows: at most burst + rate * T permits in any T seconds
    # (the learned rate only ever lowers it).
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            assert j - i + 1 <= 3 + 4.0 * (granted[j] - start) + 1e-3


def test_try_acquire_leaves_a_peak_to_acquire() -> None:
    # aiolimiter's peak bucket is asked only by awaiting it: no permit is taken past it.
    async def scenario() -> tuple[Permit | None, Permit]:
        limiter = InProcessLimiter(
            per_second=4.0, burst=3, adaptive=False, peak=BucketShape.of(6.0, 2)
        )
        return limiter.try_acquire(), await limiter.acquire()

    skipped, permit = in_virtual_time(scenario)
    assert skipped is None
    assert permit.waited == 0.0
