"""Each limit mechanism of the emulator on its own, with a clock that moves only when told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bitrix_mail_async.testing.limits import (
    BreakerSettings,
    CircuitBreaker,
    LimitSettings,
    ManualClock,
    PortalBucket,
    PortalQueue,
    PortalRate,
    QueueSettings,
    QueueTimeout,
    SlidingWindow,
    TokenBucketLimiter,
    WindowSettings,
    fingerprint,
)
from bitrix_mail_async.testing.limits.base import round_up


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (a count of turns, not a duration)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_round_up_to_whole_steps():
    assert round_up(0.0) == 0.0
    assert round_up(5.0) == 5.0
    assert round_up(2.01) == 3.0
    assert round_up(0.3, 0.1) == 0.3
    assert round_up(0.35, 0.1) == 0.4


# ----------------------------------------------------------------- sliding window
def test_window_counts_per_key_and_tells_the_reset():
    clock = ManualClock()
    window = SlidingWindow(clock)
    assert window.take("k") is None  # off
    window.configure(WindowSettings(limit=3, period=10))
    seen = []
    for step in (0, 2, 2.5):
        clock.advance(step)
        quota = window.take("k")
        assert quota is not None and quota.allowed
        seen.append((quota.remaining, quota.reset))
    assert seen == [(2, 10), (1, 8), (0, 6)]  # 5.5 s rounds up to 6

    clock.advance(0.5)  # t=5: full until the request of t=0 leaves at t=10
    refused = window.take("k")
    assert refused is not None and not refused.allowed
    assert (refused.remaining, refused.reset) == (0, 5)
    other = window.take("other")
    assert other is not None and other.remaining == 2  # per key

    clock.advance(5)  # t=10: the refused request was not counted, the first one left
    quota = window.take("k")
    assert quota is not None and quota.allowed
    assert (quota.remaining, quota.reset) == (0, 2)
    assert quota.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2",
    }


def test_window_reset_rounds_to_a_scaled_step():
    clock = ManualClock()
    window = SlidingWindow(clock)
    window.configure(WindowSettings(limit=1, period=0.6, step=0.1))
    assert window.take("k") is not None
    clock.advance(0.25)
    refused = window.take("k")
    assert refused is not None and not refused.allowed
    assert refused.headers()["X-RateLimit-Reset"] == "0.4"


# ----------------------------------------------------------------- buckets
def test_key_bucket_reads_the_injected_clock():
    clock = ManualClock()
    bucket = TokenBucketLimiter(clock)
    bucket.configure(1, burst=1)
    assert bucket.acquire("k").allowed
    assert bucket.acquire("k").retry_after == 1
    clock.advance(1)
    assert bucket.acquire("k").allowed


def test_portal_bucket_is_per_portal():
    clock = ManualClock()
    bucket = PortalBucket(clock)
    assert bucket.acquire("p").allowed  # off
    bucket.configure(PortalRate(per_second=10, burst=2, rest_per_second=None, retry_after=2))
    assert [bucket.acquire("p").allowed for _ in range(3)] == [True, True, False]
    assert bucket.acquire("p").retry_after == 2
    assert bucket.acquire("q").allowed
    clock.advance(0.1)
    assert bucket.acquire("p").allowed
    assert not bucket.acquire("p").allowed


def test_portal_bucket_rest_stage_holds_the_sustained_rate():
    clock = ManualClock()
    bucket = PortalBucket(clock)
    bucket.configure(PortalRate(per_second=10, burst=10, rest_per_second=2, rest_burst=5))
    assert [bucket.acquire("p").allowed for _ in range(6)] == [True] * 5 + [False]
    clock.advance(0.5)  # the REST bucket drains one request in 0.5 s
    assert bucket.acquire("p").allowed
    assert not bucket.acquire("p").allowed


def test_portal_bucket_override_refund_and_reset():
    clock = ManualClock()
    bucket = PortalBucket(clock)
    bucket.configure(PortalRate(per_second=1, burst=1, rest_per_second=None))
    bucket.configure(PortalRate(per_second=5, burst=3, rest_per_second=None), portal="big")
    assert (bucket.rate("x"), bucket.rate("big")) == (
        PortalRate(per_second=1, burst=1, rest_per_second=None),
        PortalRate(per_second=5, burst=3, rest_per_second=None),
    )
    assert bucket.acquire("x").allowed
    assert not bucket.acquire("x").allowed
    bucket.refund("x")
    assert bucket.acquire("x").allowed
    assert [bucket.acquire("big").allowed for _ in range(4)] == [True, True, True, False]
    bucket.configure(None, portal="x")
    assert all(bucket.acquire("x").allowed for _ in range(5))
    bucket.reset()
    assert bucket.rate("big") is None and bucket.acquire("big").allowed


# ----------------------------------------------------------------- circuit breaker
def test_fingerprint_ignores_query_order_and_method_case():
    one = fingerprint("k", "get", "/x", [("b", "2"), ("a", "1")], {"y": 1, "x": 2})
    assert one == fingerprint("k", "GET", "/x", [("a", "1"), ("b", "2")], {"x": 2, "y": 1})
    assert one != fingerprint("other", "GET", "/x", [("a", "1"), ("b", "2")], {"x": 2, "y": 1})
    assert one != fingerprint("k", "GET", "/x", [("a", "1"), ("b", "2")], {"x": 3, "y": 1})


def test_breaker_trips_lets_probes_through_and_recovers():
    clock = ManualClock()
    breaker = CircuitBreaker(clock)
    looping = fingerprint("k", "GET", "/mail/messages/9", [], None)
    other = fingerprint("k", "GET", "/mail/messages/8", [], None)
    breaker.observe(looping, failed=True)  # off: nothing is remembered
    assert breaker.check(looping).allowed
    breaker.configure(BreakerSettings(threshold=3, period=60, retry_after=1, probe_every=4))
    for _ in range(3):
        assert breaker.check(looping).allowed
        breaker.observe(looping, failed=True)
    decisions = [breaker.check(looping) for _ in range(8)]
    assert [d.allowed for d in decisions] == [False, False, False, True] * 2
    assert {d.retry_after for d in decisions if not d.allowed} == {1}
    assert breaker.check(other).allowed
    breaker.observe(looping, failed=False)  # a probe succeeded
    assert breaker.check(looping).allowed


def test_breaker_failures_age_out_of_the_period():
    clock = ManualClock()
    breaker = CircuitBreaker(clock)
    breaker.configure(BreakerSettings(threshold=2, period=60, retry_after=1, probe_every=50))
    request = fingerprint("k", "POST", "/mail/messages", [], {"to": []})
    breaker.observe(request, failed=True)
    clock.advance(30)
    breaker.observe(request, failed=True)
    assert not breaker.check(request).allowed
    clock.advance(30)  # the first failure leaves the hour (scaled to a minute here)
    assert breaker.check(request).allowed


# ----------------------------------------------------------------- settings
def test_documented_figures_and_time_scale():
    documented = LimitSettings.documented()
    assert documented == LimitSettings(
        window=WindowSettings(limit=300, period=60, step=1),
        portal=PortalRate(per_second=10, burst=10, rest_per_second=2, rest_burst=50),
        queue=QueueSettings(concurrency=2, timeout=30, service_time=0, retry_after=10),
        breaker=BreakerSettings(threshold=12, period=3600, retry_after=60, probe_every=50),
    )
    assert PortalRate().retry_after == 2
    fast = LimitSettings.documented(time_scale=0.1)
    assert fast == LimitSettings(
        window=WindowSettings(limit=300, period=6, step=0.1),
        portal=PortalRate(per_second=100, burst=10, rest_per_second=20, retry_after=0.2),
        queue=QueueSettings(concurrency=2, timeout=3, retry_after=1),
        breaker=BreakerSettings(threshold=12, period=360, retry_after=6, probe_every=50),
    )
    with pytest.raises(ValueError, match="time_scale"):
        LimitSettings.documented(time_scale=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: WindowSettings(limit=0),
        lambda: WindowSettings(period=0),
        lambda: PortalRate(per_second=0),
        lambda: PortalRate(rest_burst=0),
        lambda: QueueSettings(concurrency=0),
        lambda: QueueSettings(timeout=-1),
        lambda: BreakerSettings(threshold=0),
        lambda: BreakerSettings(period=0),
    ],
)
def test_settings_refuse_impossible_figures(build):
    with pytest.raises(ValueError, match="must"):
        build()


# ----------------------------------------------------------------- portal queue
async def test_queue_hands_slots_in_arrival_order():
    queue = PortalQueue()
    queue.configure(QueueSettings(concurrency=2))
    await queue.enter("p")
    await queue.enter("p")
    order: list[int] = []

    async def call(n: int) -> None:
        await queue.enter("p")
        order.append(n)

    tasks = []
    for n in range(3):
        tasks.append(asyncio.create_task(call(n)))
        await until(lambda n=n: queue.waiting("p") == n + 1)
    assert queue.executing("p") == 2
    for expected in ([0], [0, 1], [0, 1, 2]):
        queue.leave("p")
        await until(lambda expected=expected: order == expected)
        assert queue.executing("p") == 2
    await asyncio.gather(*tasks)
    assert queue.waiting("p") == 0


async def test_queue_timeout_leaves_no_trace():
    queue = PortalQueue()
    queue.configure(QueueSettings(concurrency=1, timeout=0.01, retry_after=10))
    await queue.enter("p")
    with pytest.raises(QueueTimeout) as timed_out:
        await queue.enter("p")  # nobody leaves: it times out however fast the machine is
    assert timed_out.value.retry_after == 10
    assert (queue.executing("p"), queue.waiting("p")) == (1, 0)
    assert await queue.enter("q") == 0.0  # another portal has its own slots
    queue.leave("p")
    assert queue.executing("p") == 0


async def test_cancelled_waiter_gives_its_turn_to_the_next():
    queue = PortalQueue()
    queue.configure(QueueSettings(concurrency=1))
    await queue.enter("p")
    first = asyncio.create_task(queue.enter("p"))
    await until(lambda: queue.waiting("p") == 1)
    second = asyncio.create_task(queue.enter("p"))
    await until(lambda: queue.waiting("p") == 2)
    first.cancel()
    await until(lambda: queue.waiting("p") == 1)
    queue.leave("p")
    await second
    assert queue.executing("p") == 1


async def test_queue_off_still_counts_executing_calls():
    queue = PortalQueue()
    for _ in range(3):
        assert await queue.enter("p") == 0.0
    assert queue.executing("p") == 3
    queue.leave("p")
    assert queue.executing("p") == 2
