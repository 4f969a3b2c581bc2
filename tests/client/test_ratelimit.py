"""The client's token bucket, shared cooldown and adaptive rate, against the emulator's limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from bitrix_mail_async import MailClient, RateLimit, errors
from bitrix_mail_async._ratelimit import AdaptiveRate, BucketShape, InProcessLimiter
from bitrix_mail_async.testing import MailEmulator


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


async def test_bucket_paces_calls() -> None:
    limiter = InProcessLimiter(per_second=50.0, burst=6, adaptive=False)
    started = time.monotonic()
    for _ in range(30):
        await limiter.acquire()
    elapsed = time.monotonic() - started
    # Burst 6 keeps one slot free: 5 at once, then 25 at 50/s.
    assert 0.45 <= elapsed <= 0.8


async def test_cooldown_blocks_every_caller() -> None:
    limiter = InProcessLimiter(per_second=None, burst=None, adaptive=False)
    permit = await limiter.acquire()
    await limiter.report_rate_limited(permit, 0.3)
    assert 0.25 < await limiter.cooldown_remaining() <= 0.3
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(50)))
    assert 0.28 <= time.monotonic() - started < 0.45


async def test_client_configured_at_the_gateway_limit_gets_no_429(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.set_rate_limit(50, burst=10, retry_after=0.2)
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=RateLimit(per_second=50, burst=10),
    ) as mail:
        started = time.monotonic()
        await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(100)))
        elapsed = time.monotonic() - started
    assert mail_emulator.stats.rate_limited == 0
    assert 100 / elapsed >= 0.9 * 50


async def test_client_at_three_times_the_real_limit_converges(
    mail_emulator: MailEmulator,
) -> None:
    real = 50.0
    calls = 300
    mail_emulator.set_rate_limit(real, burst=10, retry_after=0.2)
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=RateLimit(per_second=3 * real, burst=30),
        max_concurrency=64,
    ) as mail:
        started = time.monotonic()
        results = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(calls)))
        elapsed = time.monotonic() - started
        learned = mail.stats.current_rate
    assert len(results) == calls
    rate_limited = mail_emulator.stats.rate_limited
    assert rate_limited <= 0.10 * calls, f"{rate_limited} of {calls} calls saw a 429"
    assert calls / elapsed >= 0.85 * real, f"{calls / elapsed:.1f}/s of {real}/s"
    assert learned is not None and learned < 3 * real
