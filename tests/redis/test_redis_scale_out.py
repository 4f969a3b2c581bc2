"""Workers and tenants on one Redis (issue 23 item 3): the shared peak, keys by scope, and the
documented settings, against a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from mp_worker import run_workers
from redisserver import RedisServer

from bitrix_mail_async import Hooks, MailClient, RateLimit, errors
from bitrix_mail_async._redis_window import RedisWindow
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit, bucket_name
from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.limits import LimitSettings, WindowSettings

pytestmark = pytest.mark.redis

KEY = "vibe_api_scale_out_secret_0123456789"
OTHER_KEY = "vibe_api_same_portal_secret_9876543210"
# Scopes as the client names them (``_keys.Scopes``): digests naming a portal.
PORTAL_A = "a" * 64
PORTAL_B = "b" * 64


#: Redis timeout of the limiters whose slot arithmetic is tested: up to 30 scripts at once
#: open new connections, which on a loaded machine can outlast the default 0.5 s; these tests
#: are about the arithmetic, not about a slow Redis (the fault tests with redis_timeout are).
PATIENT = 10.0


class Slots(list[float]):
    """Slot times in seconds after the first, sorted, with the error their anchoring allows."""

    tolerance: float


async def slot_times(limiters: list[RedisLimiter], n: int) -> Slots:
    """Reserve ``n`` slots at once, taken in turn from ``limiters``: each slot's time, sorted.

    Each wait is relative to when Redis ran its script, so it is anchored at its reply's
    arrival: off by at most the time all replies took to arrive (more on a loaded machine),
    which is the tolerance, plus 10 ms.
    """

    async def one(limiter: RedisLimiter) -> float:
        wait, generation = await limiter._reserve()
        assert generation is not None
        return time.monotonic() + wait

    for limiter in limiters:
        await limiter.cooldown_remaining()  # connected first: the test is about the arithmetic
    turns = itertools.islice(itertools.cycle(limiters), n)
    started = time.monotonic()
    times = sorted(await asyncio.gather(*(one(limiter) for limiter in turns)))
    slots = Slots(t - times[0] for t in times)
    slots.tolerance = 0.01 + (time.monotonic() - started)
    return slots


async def close(*limiters: RedisLimiter) -> None:
    for limiter in limiters:
        await limiter.aclose()


# ---------------------------------------------------------------- the peak, shared
async def test_workers_spend_one_burst_at_the_peak_rate(redis_url: str) -> None:
    # Two workers (two configs, two clients) of one key at the defaults: 2/s, burst 50, the
    # burst spent at the portal's 10/s (burst 10). Not 49 at once.
    workers = [
        RedisRateLimit(redis_url, redis_timeout=PATIENT).create_limiter(api_key=KEY)
        for _ in range(2)
    ]
    try:
        times = await slot_times(workers, 30)
    finally:
        await close(*workers)
    # One slot of each bucket stays free: 9 at once, then one per 100 ms, for both together.
    expected = [0.0] * 9 + [0.1 * k for k in range(1, 22)]
    assert times == pytest.approx(expected, abs=times.tolerance), times


async def test_the_slot_is_the_later_of_the_bucket_and_the_peak(redis_url: str) -> None:
    # 20/s with 9 free slots (burst 10), the peak 50/s with 4 (burst 5): 4 at once, one per
    # 20 ms while the bucket has room, then the bucket's 50 ms once its burst is spent.
    config = RedisRateLimit(
        redis_url, redis_timeout=PATIENT, per_second=20, burst=10, peak_per_second=50, peak_burst=5
    )
    limiter = config.create_limiter(api_key=KEY)
    try:
        times = await slot_times([limiter], 15)
    finally:
        await close(limiter)
    expected = [0, 0, 0, 0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.20, 0.25, 0.30]
    assert times == pytest.approx(expected, abs=times.tolerance), times


async def test_after_a_cooldown_the_burst_left_goes_at_the_peak_rate(redis_url: str) -> None:
    # A 429 in a burst (the portal's peak overflowed, say by network jitter): when the
    # cooldown ends, what is left of the burst goes at the peak rate, as in one process; it
    # is not thrown away for the sustained 2/s.
    config = RedisRateLimit(
        redis_url, redis_timeout=PATIENT, adaptive=False
    )  # 2/s, burst 50, peak 10/s, burst 10
    limiter = config.create_limiter(api_key=KEY)
    try:
        await slot_times([limiter], 5)
        started = time.monotonic()
        await limiter.report_rate_limited(None, 0.3)
        waits = sorted(w for w, _ in await asyncio.gather(*(limiter._reserve() for _ in range(6))))
        elapsed = time.monotonic() - started
    finally:
        await close(limiter)
    # From the cooldown's end, one per 100 ms (the peak), not one per 500 ms (the bucket).
    expected = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert waits == pytest.approx(expected, abs=0.01 + elapsed), waits


async def test_no_peak_when_off_or_not_above_the_rate(redis_url: str) -> None:
    configs = [
        RedisRateLimit(
            redis_url, redis_timeout=PATIENT, per_second=2, burst=20, peak_per_second=None
        ),
        RedisRateLimit(
            redis_url, redis_timeout=PATIENT, per_second=20, burst=20
        ),  # at or above the default 10/s
    ]
    for index, config in enumerate(configs):
        assert config.settings.peak is None
        limiter = config.create_limiter(api_key=f"{KEY}{index}")
        try:
            times = await slot_times([limiter], 19)
        finally:
            await close(limiter)
        assert times == pytest.approx([0.0] * 19, abs=times.tolerance), (config, times)


async def test_the_peak_key_is_a_hash_and_expires(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    limiter = RedisRateLimit(redis_url).create_limiter(api_key=KEY)
    try:
        await limiter.acquire()
    finally:
        await limiter.aclose()
    peak = f"{limiter.bucket}:peak"
    assert limiter.bucket == bucket_name("bitrix-mail", KEY)
    assert KEY not in peak
    assert 0 < await redis_client.pttl(peak) <= 2000


async def test_the_fallback_keeps_a_share_of_the_peak(own_redis_server: RedisServer) -> None:
    # While Redis is away each worker paces itself at a quarter of the rate and of the peak.
    config = RedisRateLimit(own_redis_server.url, per_second=8, burst=40, probe_interval=30)
    limiter = config.create_limiter(api_key=KEY)
    try:
        await limiter.acquire()
        own_redis_server.stop()
        await limiter.acquire()  # meets the outage: the fallback starts with its burst spent
        assert limiter.in_fallback
        fallback = limiter._fallback
        assert fallback.current_rate == pytest.approx(2.0)
        assert fallback._peak is not None
    finally:
        await limiter.aclose()


# ---------------------------------------------------------------- keys by scope
async def test_tenants_of_one_key_share_the_window_and_nothing_else(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    config = RedisRateLimit(redis_url, per_second=10, burst=5, peak_per_second=None)
    a = config.create_limiter(api_key=KEY, scope=PORTAL_A)
    b = config.create_limiter(api_key=KEY, scope=PORTAL_B)
    own = config.create_limiter(api_key=KEY)  # the key's own portal, keyed as before
    try:
        assert len({a.bucket, b.bucket, own.bucket}) == 3
        assert own.bucket == bucket_name("bitrix-mail", KEY)
        # One window for every tenant of the key, under the key's hash.
        windows = {lim.create_window().key for lim in (a, b, own)}
        assert windows == {f"{bucket_name('bitrix-mail', KEY)}:window"}
        # A 429 on portal a: a cools down, b does not.
        await a.report_rate_limited(await a.acquire(), 30.0)
        assert await a.cooldown_remaining() > 29
        assert await b.cooldown_remaining() == 0.0
        assert await own.cooldown_remaining() == 0.0
        assert a.current_rate < 10  # a's learned rate went down ...
        await b.acquire()
        assert b.current_rate == 10  # ... b's did not
        # a's burst is spent (and its cooldown runs); b still has all of its own.
        waits = [(await b._reserve())[0] for _ in range(3)]
        assert waits == [0.0, 0.0, 0.0]
        assert (await a._reserve())[0] > 29
    finally:
        await close(a, b, own)
    keys = sorted([k.decode() async for k in redis_client.scan_iter("*")])
    for secret in (KEY, PORTAL_A, PORTAL_B):
        assert not any(secret in k for k in keys), keys


async def test_two_configs_of_one_scope_share_the_bucket_cooldown_and_rate(
    redis_url: str,
) -> None:
    # Two keys of one portal (two processes, two configs): one portal bucket.
    first = RedisRateLimit(
        redis_url, redis_timeout=PATIENT, per_second=10, burst=5, peak_per_second=None
    )
    second = RedisRateLimit(
        redis_url, redis_timeout=PATIENT, per_second=10, burst=5, peak_per_second=None
    )
    a = first.create_limiter(api_key=KEY, scope=PORTAL_A)
    b = second.create_limiter(api_key=OTHER_KEY, scope=PORTAL_A)
    try:
        assert a.bucket == b.bucket
        # Their windows stay their keys'.
        assert a.create_window().key != b.create_window().key
        times = await slot_times([a, b], 8)
        # 4 at once for both together, then one per 100 ms.
        expected = [0, 0, 0, 0, 0.1, 0.2, 0.3, 0.4]
        assert times == pytest.approx(expected, abs=times.tolerance), times
        await a.report_rate_limited(await a.acquire(), 30.0)
        assert await b.cooldown_remaining() > 29
        assert b.current_rate == 10
        await b._reserve()
        assert b.current_rate < 10
    finally:
        await close(a, b)


async def test_mail_client_tenants_key_redis_by_portal(
    redis_url: str, mail_emulator_factory: Callable[..., MailEmulator]
) -> None:
    emulator = mail_emulator_factory()
    app_key = "vibe_app_redis_tenants_secret_77"
    emulator.add_key(app_key, app=True, tokens=("tok_a", "tok_b"))
    emulator.add_session(app_key, "tok_a", portal="a.bitrix24.test")
    emulator.add_session(app_key, "tok_b", portal="b.bitrix24.test")
    # Portal a refuses at once, with a Retry-After long enough to look at.
    emulator.set_portal_limit(1, 1, rest_per_second=None, retry_after=20, portal="a.bitrix24.test")
    config = RedisRateLimit(redis_url, per_second=50, burst=10)
    retried = asyncio.Event()  # told after the 429's cooldown went to Redis
    hooks = Hooks(on_retry=lambda _event: retried.set())
    async with MailClient(
        app_key, base_url=emulator.base_url, rate_limit=config, hooks=hooks
    ) as mail:
        a = mail.for_session("tok_a", portal="a.bitrix24.test")
        b = mail.for_session("tok_b", portal="b.bitrix24.test")
        await a.messages.get(1001)
        await b.messages.get(1001)
        la, lb = a._pipeline.limiter, b._pipeline.limiter
        assert isinstance(la, RedisLimiter) and isinstance(lb, RedisLimiter)
        assert la.bucket != lb.bucket
        assert a._pipeline.window is b._pipeline.window
        refused = asyncio.create_task(a.messages.get(1001))
        async with asyncio.timeout(10):
            await retried.wait()
        assert a.stats.rate_limited == 1
        assert await la.cooldown_remaining() > 10
        assert await lb.cooldown_remaining() == 0.0
        async with asyncio.timeout(10):  # b goes on while a waits out its 20 s
            await asyncio.gather(*(b.messages.get(1001) for _ in range(5)))
        assert b.stats.rate_limited == 0
        refused.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refused


# ---------------------------------------------------------------- documented settings
@pytest.mark.parametrize("time_scale", [1.0, 0.1, 0.5])
def test_documented_settings_match_the_emulators(time_scale: float) -> None:
    portal = LimitSettings.documented(time_scale).portal
    assert portal is not None and portal.rest_per_second is not None
    for limit in (
        RateLimit.documented(time_scale=time_scale),
        RedisRateLimit.documented("redis://localhost", time_scale=time_scale).settings,
    ):
        assert limit.per_second == pytest.approx(portal.rest_per_second)
        assert limit.burst == portal.rest_burst
        assert limit.peak_per_second == pytest.approx(portal.per_second)
        assert limit.peak_burst == portal.burst
        assert limit.adaptive


def test_documented_plans_are_the_contracts() -> None:
    assert RateLimit.documented() == RateLimit(
        per_second=2, burst=50, peak_per_second=10, peak_burst=10
    )
    assert RateLimit.documented() == RateLimit()  # the defaults are the standard plan
    assert RateLimit.documented("enterprise") == RateLimit(
        per_second=5, burst=250, peak_per_second=10, peak_burst=10
    )
    redis = RedisRateLimit.documented("redis://localhost", plan="enterprise", time_scale=0.5)
    assert redis.settings == RateLimit.documented("enterprise", 0.5)
    assert (redis.per_second, redis.burst, redis.peak_per_second) == (10, 250, 20)
    for bad in ({"plan": "gold"}, {"plan": 5}, {"time_scale": 0}, {"time_scale": -1}):
        with pytest.raises(errors.ConfigurationError):
            RateLimit.documented(**bad)  # type: ignore[arg-type]
        with pytest.raises(errors.ConfigurationError):
            RedisRateLimit.documented("redis://localhost", **bad)  # type: ignore[arg-type]


def test_redis_settings_are_checked_as_rate_limits_are() -> None:
    for bad in (
        {"per_second": 0},
        {"burst": 0},
        {"peak_per_second": 0},
        {"peak_per_second": "10"},
        {"peak_burst": 0},
    ):
        with pytest.raises(errors.ConfigurationError) as in_process:
            RateLimit(**bad)  # type: ignore[arg-type]
        with pytest.raises(errors.ConfigurationError) as shared:
            RedisRateLimit("redis://localhost", **bad)  # type: ignore[arg-type]
        assert str(shared.value) == str(in_process.value)
    with pytest.raises(TypeError):
        RedisRateLimit("redis://localhost", 2, 50)  # type: ignore[misc]


# ---------------------------------------------------------------- processes
def test_four_processes_spend_one_burst_at_the_peak(
    redis_server: RedisServer, mail_emulator_factory: Callable[..., MailEmulator], tmp_path: Path
) -> None:
    # The emulator with every documented limit on, ten times faster; four workers at the
    # documented settings scaled alike. Each with the burst at once would send 4 x 49 calls
    # into the portal's bucket of 10.
    scale, processes, calls = 0.1, 4, 30
    emu = mail_emulator_factory(limits=LimitSettings.documented(scale))
    limit = RateLimit.documented(time_scale=scale)
    assert limit.peak_per_second is not None
    redis_server.flushall()
    args = (calls, limit.per_second, limit.burst, limit.peak_per_second, limit.peak_burst)
    _, results = run_workers(
        emu.base_url, redis_server.url, emu.api_key, tmp_path, processes, *args
    )
    total = sum(r["ok"] for r in results)
    assert total == processes * calls, results
    # At most 2 % met a 429 (a loaded machine may bunch a few calls; benchmarks/redis_workers.py
    # has the figures), where a burst per worker draws dozens.
    assert emu.stats.rate_limited <= total // 50, (emu.stats.rate_limited, results)


async def test_a_tenant_closing_leaves_the_keys_window_shared(
    redis_url: str,
    redis_client: aioredis.Redis,
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    # Every tenant's answers reach the key's one window in Redis, also after another tenant
    # of the key closed.
    emulator = mail_emulator_factory(limits=LimitSettings(window=WindowSettings()))
    app_key = "vibe_app_redis_window_secret_42"
    portals = {"tok_a": "a.bitrix24.test", "tok_b": "b.bitrix24.test", "tok_c": "c.bitrix24.test"}
    emulator.add_key(app_key, app=True, tokens=tuple(portals))
    for token, portal in portals.items():
        emulator.add_session(app_key, token, portal=portal)
    config = RedisRateLimit(redis_url, per_second=100, burst=100)
    window_key = f"{bucket_name('bitrix-mail', app_key)}:window"
    async with MailClient(app_key, base_url=emulator.base_url, rate_limit=config) as mail:
        a = mail.for_session("tok_a", portal=portals["tok_a"])
        b = mail.for_session("tok_b", portal=portals["tok_b"])
        await a.messages.get(1001)  # a's limiter makes the key's window
        await b.messages.get(1001)
        window = b._pipeline.window
        assert isinstance(window, RedisWindow)
        await a.close()
        # Another process of the key spends 20 calls of the window.
        headers = {"X-Api-Key": app_key, "Authorization": "Bearer tok_c"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for _ in range(20):
                async with http.get(f"{emulator.base_url}/mail/messages/1001") as resp:
                    assert resp.status == 200
        await b.messages.get(1001)
        await window.drain()
        # b's answer told Redis of them: the shared budget is the gateway's Remaining.
        budget = int(await redis_client.hget(window_key, "budget") or -1)
        assert 0 <= budget <= 300 - 23, budget
