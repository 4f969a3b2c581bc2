"""Issue 21 item 4: the shared limiter and window against Redis's clock gone back.

Redis's clock stepping back (NTP, a failover to a replica behind) leaves every time the
scripts stored ahead of it. The tests make that happen the way it happens: state written by
the library itself, then every stored time (and every key's expiry, which Redis keeps as an
absolute time too) moved an hour ahead of Redis's clock. Each wait must stay bounded and the
state must heal, not be capped again on every call.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis
from multidict import CIMultiDict

from bitrix_mail_async import MailClient
from bitrix_mail_async._window import MAX_RESET
from bitrix_mail_async.redis import MAX_SLOT_WAIT, RedisLimiter, RedisRateLimit
from bitrix_mail_async.testing import MailEmulator

pytestmark = pytest.mark.redis

KEY = "vibe_api_super_secret_key_0123456789"
SKEW = 3600.0  # Redis's clock stepped back an hour
US = 1_000_000


def make(url: str, **kwargs: float) -> RedisLimiter:
    return RedisRateLimit(url, **kwargs).create_limiter(api_key=KEY)  # type: ignore[arg-type]


async def redis_now(client: aioredis.Redis) -> int:
    """Redis's clock, in µs (what the scripts read)."""
    seconds, micros = await client.time()
    return int(seconds) * US + int(micros)


async def step_back(client: aioredis.Redis, key: str, *fields: str) -> None:
    """Move ``key``'s stored times (its value, or these hash fields) and expiry SKEW ahead."""
    ahead = round(SKEW * US)
    if fields:
        for field in fields:
            value = await client.hget(key, field)
            assert value is not None, field
            await client.hset(key, field, str(int(value) + ahead))
    else:
        value = (await client.get(key)).decode()
        end, sep, length = value.partition(":")
        await client.set(key, f"{int(end) + ahead}{sep}{length}", keepttl=True)
    pttl = await client.pttl(key)
    if pttl > 0:
        await client.pexpire(key, pttl + round(SKEW * 1000))


async def test_a_bucket_an_hour_ahead_is_repaired_not_waited_out(
    redis_url: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = make(redis_url, per_second=10, burst=5)
    gcra = f"{limiter.bucket}:gcra"
    try:
        for _ in range(4):
            await limiter._reserve()  # the burst spent: the TAT lies ahead of Redis's clock
        await step_back(redis_client, gcra)
        with caplog.at_level(logging.WARNING, logger="bitrix_mail_async.ratelimit.redis"):
            first, _ = await limiter._reserve()
            second, _ = await limiter._reserve()
        # Taken as a full bucket: one slot per 100 ms from now, not an hour from now.
        assert 0 < first <= 0.1 + 0.01, first
        assert 0 < second <= 0.2 + 0.01, second
        # Healed: the state is within its bounds again, and was repaired once.
        assert int(await redis_client.get(gcra)) - await redis_now(redis_client) < 2 * US
        assert caplog.text.count("has its clock gone back?") == 1
        assert KEY not in caplog.text
    finally:
        await limiter.aclose()


async def test_a_peak_an_hour_ahead_is_repaired_not_waited_out(
    redis_url: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = make(redis_url, per_second=2, burst=50, peak_per_second=10, peak_burst=10)
    peak = f"{limiter.bucket}:peak"
    try:
        for _ in range(9):
            await limiter._reserve()  # the peak's burst spent, the bucket's not
        await step_back(redis_client, peak)
        with caplog.at_level(logging.WARNING, logger="bitrix_mail_async.ratelimit.redis"):
            first, _ = await limiter._reserve()
            second, _ = await limiter._reserve()
        # Taken as a full peak bucket: one slot per 100 ms from now, not an hour from now.
        assert 0 < first <= 0.1 + 0.01, first
        assert 0 < second <= 0.2 + 0.01, second
        assert int(await redis_client.get(peak)) - await redis_now(redis_client) < 2 * US
        assert caplog.text.count("has its clock gone back?") == 1
    finally:
        await limiter.aclose()


async def test_a_cooldown_an_hour_ahead_restarts_at_its_length(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    limiter = make(redis_url, per_second=100)
    cooldown = f"{limiter.bucket}:cooldown"
    try:
        await limiter.report_rate_limited(None, 0.3)
        await step_back(redis_client, cooldown)
        assert await limiter.cooldown_remaining() <= 0.3
        assert 0 < await redis_client.pttl(cooldown) <= 300  # the key's expiry healed too
        wait, _ = await limiter._reserve()
        assert wait <= 0.3 + 0.01
        await asyncio.wait_for(limiter.acquire(), 10)  # a guard far above the 0.3 s
    finally:
        await limiter.aclose()


async def test_a_rate_change_an_hour_ahead_lets_the_rate_creep_back(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    limiter = make(redis_url, per_second=30, burst=30)
    try:
        await limiter.report_rate_limited(await limiter.acquire(), 0.01)
        assert limiter.current_rate == pytest.approx(24)
        await step_back(redis_client, f"{limiter.bucket}:rate", "last_change")
        await limiter.acquire()  # the quiet period counts from now, not from an hour ahead
        await asyncio.sleep(1.05)
        await limiter.acquire()
        assert limiter.current_rate == pytest.approx(24 * 1.05)
    finally:
        await limiter.aclose()


async def test_a_window_an_hour_ahead_is_dropped_and_probed(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    a, b = make(redis_url, per_second=1000, burst=1000), make(redis_url, per_second=1000)
    wa, wb = a.create_window(), b.create_window()
    spent = CIMultiDict(
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}
    )
    try:
        assert await wa.admit() == 0.0  # the probe
        wa.settle(spent)
        await wa.drain()
        assert 0 < await wb._take() <= 30
        await step_back(redis_client, wa.key, "reset_at")
        # Not an hour: the budget Redis holds is void, so this call is the probe.
        assert await wb._take() == 0.0
        fields = await redis_client.hmget(wa.key, ["reset_at", "next_probe"])
        reset_at, next_probe = (int(v) for v in fields)
        now = await redis_now(redis_client)
        assert reset_at <= now and next_probe - now <= 1.0 * US
        assert await wa._take() <= MAX_RESET  # the probe's hold, or a probe of its own
    finally:
        await a.aclose()
        await b.aclose()


async def test_no_slot_is_reserved_past_the_horizon(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    # 200 calls in a row at 2/s: the last slots would lie 100 s ahead. They are not reserved
    # (their callers ask again when within reach), so no state lies past the horizon.
    limiter = make(redis_url, per_second=2, burst=2)
    try:
        replies = [await limiter._reserve() for _ in range(200)]
        reserved = [wait for wait, generation in replies if generation is not None]
        deferred = [wait for wait, generation in replies if generation is None]
        assert len(reserved) + len(deferred) == 200
        # One slot per 0.5 s up to 60 s ahead (more if the loop itself took a while).
        assert MAX_SLOT_WAIT * 2 <= len(reserved) < 200
        assert max(reserved) <= MAX_SLOT_WAIT
        assert deferred and min(deferred) > 0
        tat = int(await redis_client.get(f"{limiter.bucket}:gcra"))
        assert tat - await redis_now(redis_client) <= (MAX_SLOT_WAIT + 1.5) * US
    finally:
        await limiter.aclose()


async def test_mail_calls_go_on_after_the_clock_went_back(
    redis_url: str, redis_client: aioredis.Redis, mail_emulator: MailEmulator
) -> None:
    limit = RedisRateLimit(redis_url, per_second=20, burst=5)
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=limit
    ) as mail:
        await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(6)))
        limiter = mail._pipeline.limiter
        assert isinstance(limiter, RedisLimiter)
        await limiter.report_rate_limited(None, 0.2)
        await step_back(redis_client, f"{limiter.bucket}:gcra")
        await step_back(redis_client, f"{limiter.bucket}:cooldown")
        # A guard far above what ten calls at 20/s take; an hour without the repair.
        boxes = await asyncio.wait_for(
            asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10))), 20
        )
    assert len(boxes) == 10
