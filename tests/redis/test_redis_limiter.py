"""RedisRateLimit against a real redis-server: the GCRA script, the shared cooldown and rate,
key hashing and redaction, and the in-process fallback while Redis is away."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from mp_worker import run_workers
from redisserver import RedisServer

from bitrix_mail_async import MailClient, RetryPolicy, errors
from bitrix_mail_async._ratelimit import AIMD
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit, redact_redis_url
from bitrix_mail_async.testing import MailEmulator

pytestmark = pytest.mark.redis

KEY = "vibe_api_super_secret_key_0123456789"
OTHER_KEY = "vibe_api_another_secret_key_9876543210"


def make(url_or_client: str | aioredis.Redis, key: str = KEY, **kwargs: object) -> RedisLimiter:
    return RedisRateLimit(url_or_client, **kwargs).create_limiter(api_key=key)  # type: ignore[arg-type]


async def slots(limiter: RedisLimiter, n: int, since: float) -> list[float]:
    """Reserve ``n`` slots at once; when each comes, in seconds after ``since``, sorted."""

    async def one() -> float:
        wait, _ = await limiter._reserve()
        # Each wait is relative to its own reply: anchor it to the local clock.
        return time.monotonic() + wait - since

    return sorted(await asyncio.gather(*(one() for _ in range(n))))


async def test_burst_minus_one_at_once_then_spaced_by_the_rate(redis_url: str) -> None:
    limiter = make(redis_url, per_second=10, burst=5)
    try:
        await limiter.cooldown_remaining()  # connect first: the test is about the arithmetic
        waits = sorted(w for w, _ in await asyncio.gather(*(limiter._reserve() for _ in range(12))))
        assert sum(w == 0 for w in waits) == 4, waits
        times = await slots(limiter, 3, since=0.0)
    finally:
        await limiter.aclose()
    # One slot of the burst stays free: 4 immediate, then one every 1/R = 100 ms.
    for k, wait in enumerate(waits[4:], start=1):
        assert wait == pytest.approx(0.1 * k, abs=0.03), waits
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.1, 0.1], abs=0.005)


async def test_acquire_paces_real_time(redis_url: str) -> None:
    limiter = make(redis_url, per_second=50, burst=6)
    started = time.monotonic()
    try:
        for _ in range(30):
            await limiter.acquire()
    finally:
        await limiter.aclose()
    # 5 at once, then 25 at 50/s: 0.5 s. A lower bound only (how fast the machine is does not
    # matter): the pace at full speed is benchmarks/redis_limiter.py's figure.
    assert time.monotonic() - started >= 0.45


async def test_cooldown_holds_every_client_of_the_key(redis_url: str) -> None:
    a, b = make(redis_url, per_second=100), make(redis_url, per_second=100)
    other = make(redis_url, OTHER_KEY, per_second=100)
    try:
        assert await b.cooldown_remaining() == 0.0
        started = time.monotonic()
        await a.report_rate_limited(None, 0.4)
        assert 0.3 < await b.cooldown_remaining() <= 0.4
        wait, _ = await b._reserve()
        assert time.monotonic() + wait - started >= 0.39
        await asyncio.gather(*(b.acquire() for _ in range(3)))
        assert time.monotonic() - started >= 0.4
        # Another key's bucket knows nothing of it.
        assert await other.cooldown_remaining() == 0.0
        assert (await other._reserve())[0] == 0.0
    finally:
        for limiter in (a, b, other):
            await limiter.aclose()


async def test_calls_resume_at_the_rate_after_a_cooldown(redis_url: str) -> None:
    limiter = make(redis_url, per_second=20, burst=10)
    try:
        started = time.monotonic()
        await limiter.report_rate_limited(None, 0.2)
        times = await slots(limiter, 4, since=started)
    finally:
        await limiter.aclose()
    # Not a burst of 9 when the cooldown ends: the gateway's bucket was full.
    assert 0.2 <= times[0] < 0.25, times
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.05] * 3, abs=0.005)


async def test_cooldown_is_only_extended(redis_url: str, redis_client: aioredis.Redis) -> None:
    limiter = make(redis_url)
    try:
        await limiter.report_rate_limited(None, 1.0)
        await limiter.report_rate_limited(None, 0.2)
        key = f"{limiter.bucket}:cooldown"
        assert 900 < await redis_client.pttl(key) <= 1000
        await limiter.report_rate_limited(None, 1.5)
        assert 1400 < await redis_client.pttl(key) <= 1500
    finally:
        await limiter.aclose()


async def test_keys_carry_a_hash_never_the_api_key(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    limiters = [make(redis_url), make(redis_url, prefix="tenant-7")]
    try:
        for limiter in limiters:
            permit = await limiter.acquire()
            await limiter.report_rate_limited(permit, 5.0)
    finally:
        for limiter in limiters:
            await limiter.aclose()
    keys = sorted([k.decode() async for k in redis_client.scan_iter("*")])
    assert len(keys) == 8, keys
    pattern = re.compile(r"^(bitrix-mail|tenant-7):\{[0-9a-f]{32}\}:(gcra|peak|cooldown|rate)$")
    assert all(pattern.match(k) for k in keys), keys
    assert len({k.split(":")[1] for k in keys}) == 1  # one key, one hash
    for k in keys:
        value = await redis_client.dump(k)
        assert value is not None
        assert KEY.encode() not in value
        assert KEY not in k
    # Every key expires, so idle buckets vanish.
    for k in keys:
        assert await redis_client.pttl(k) > 0, k


def test_repr_hides_the_key_and_the_password() -> None:
    config = RedisRateLimit("redis://app:hunter2@redis.local:6380/3", per_second=2, burst=50)
    limiter = config.create_limiter(api_key=KEY)
    client = MailClient(KEY, rate_limit=config)
    for text in (repr(config), repr(limiter), repr(client)):
        assert "hunter2" not in text
        assert KEY not in text
    assert "redis://app:***@redis.local:6380/3" in repr(config)
    assert redact_redis_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_redis_url("redis://h:1/0?password=pw&db=2") == "redis://h:1/0?password=***&db=2"
    assert redact_redis_url("unix:///run/redis.sock") == "unix:///run/redis.sock"
    given = aioredis.Redis(host="127.0.0.1", password="hunter2")
    assert "hunter2" not in repr(RedisRateLimit(given))


def test_configuration_is_checked() -> None:
    for bad in (
        {"per_second": 0},
        {"burst": 0},
        {"fallback_share": 1.5},
        {"redis_timeout": -1},
        {"prefix": ""},
    ):
        with pytest.raises(errors.ConfigurationError):
            RedisRateLimit("redis://localhost", **bad)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError):
        RedisRateLimit("http://localhost:6379")
    with pytest.raises(errors.ConfigurationError):
        RedisRateLimit(object())  # type: ignore[arg-type]


def test_import_without_redis_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "try:\n"
        "    import bitrix_mail_async.redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "bitrix-mail-async[redis]" in out


async def test_a_429_lowers_the_rate_for_every_client_of_the_key(redis_url: str) -> None:
    a, b = make(redis_url, per_second=30, burst=30), make(redis_url, per_second=30, burst=30)
    other = make(redis_url, OTHER_KEY, per_second=30, burst=30)
    try:
        await b.acquire()
        await other.acquire()
        assert b.current_rate == 30
        permit = await a.acquire()
        await a.report_rate_limited(permit, 0.01)
        assert a.current_rate == pytest.approx(24)
        await b.acquire()
        assert b.current_rate == pytest.approx(24)
        # A 429 of a call admitted before the decrease belongs to the same episode.
        stale = await b.acquire()
        await b.report_rate_limited(permit, 0.01)
        assert b.current_rate == pytest.approx(24)
        await b.report_rate_limited(stale, 0.01)
        assert b.current_rate == pytest.approx(19.2)
        await other.acquire()
        assert other.current_rate == 30
    finally:
        for limiter in (a, b, other):
            await limiter.aclose()


async def test_the_shared_rate_creeps_back_up_when_quiet(redis_url: str) -> None:
    a, b = make(redis_url, per_second=30, burst=30), make(redis_url, per_second=30, burst=30)
    try:
        await a.report_rate_limited(await a.acquire(), 0.01)
        await asyncio.sleep(AIMD.quiet_period + 0.05)
        await b.acquire()
        assert b.current_rate == pytest.approx(24 * 1.05)
        await a.acquire()
        assert a.current_rate == pytest.approx(24 * 1.05)
    finally:
        await a.aclose()
        await b.aclose()


async def test_non_adaptive_ignores_429s_for_the_rate(redis_url: str) -> None:
    limiter = make(redis_url, per_second=30, adaptive=False)
    try:
        await limiter.report_rate_limited(await limiter.acquire(), 0.01)
        await limiter.acquire()
        assert limiter.current_rate == 30
    finally:
        await limiter.aclose()


async def test_a_callers_client_is_left_open(redis_client: aioredis.Redis) -> None:
    limiter = make(redis_client)
    await limiter.acquire()
    await limiter.aclose()
    assert await redis_client.ping()


async def test_mail_client_over_redis(redis_url: str, mail_emulator: MailEmulator) -> None:
    config = RedisRateLimit(redis_url, per_second=50, burst=10)
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=config
    ) as mail:
        await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
        assert mail.stats.current_rate == 50
        limiter = mail._pipeline.limiter
        assert isinstance(limiter, RedisLimiter)
        assert limiter.redis_calls >= 10


FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05)


async def test_redis_outage_falls_back_and_recovers(
    own_redis_server: RedisServer,
    mail_emulator: MailEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bitrix_mail_async.ratelimit.redis")
    config = RedisRateLimit(
        own_redis_server.url, per_second=100, burst=20, redis_timeout=0.3, probe_interval=0.2
    )
    probe = aioredis.Redis.from_url(own_redis_server.url)
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=config, retry=FAST
    ) as mail:
        limiter = mail._pipeline.limiter
        assert isinstance(limiter, RedisLimiter)
        await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(5)))
        assert await probe.exists(f"{limiter.bucket}:gcra")

        own_redis_server.stop()
        async with asyncio.timeout(20):
            for _ in range(4):
                await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(5)))
                await asyncio.sleep(0.1)  # across several probe intervals
        assert limiter.in_fallback
        assert limiter.current_rate == pytest.approx(25)  # fallback_share 0.25
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "unreachable" in warnings[0].getMessage()

        own_redis_server.start()
        before = limiter.redis_calls
        await asyncio.sleep(0.25)
        async with asyncio.timeout(20):
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(5)))
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(5)))
        assert not limiter.in_fallback
        assert limiter.redis_calls > before
        # EVALSHA met an empty script cache after the restart and loaded the script again.
        await probe.aclose()
        probe = aioredis.Redis.from_url(own_redis_server.url)
        assert await probe.exists(f"{limiter.bucket}:gcra")
        assert mail.stats.errors == 0
    await probe.aclose()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_a_frozen_redis_times_out_into_the_fallback(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = make(own_redis_server.url, per_second=100, redis_timeout=0.25, probe_interval=0.5)
    try:
        await limiter.acquire()
        own_redis_server.pause()
        started = time.monotonic()
        async with asyncio.timeout(5):
            permits = [await limiter.acquire() for _ in range(6)]
        # One timeout, then the fallback answers until the next probe, instead of a 0.25 s
        # timeout per call (1.5 s for six): a bound with room for a slow machine.
        assert time.monotonic() - started < 1.2
        assert limiter.in_fallback
        await limiter.report_rate_limited(permits[-1], 0.05)  # goes to the fallback
        own_redis_server.resume()
        await asyncio.sleep(0.55)
        await limiter.acquire()
        assert not limiter.in_fallback
    finally:
        own_redis_server.resume()
        await limiter.aclose()
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


def test_four_processes_share_one_limit(
    redis_server: RedisServer, mail_emulator_factory: Callable[..., MailEmulator], tmp_path: Path
) -> None:
    rate, burst, processes, calls = 20.0, 5, 4, 50
    emu = mail_emulator_factory(rate=rate, burst=burst, retry_after=0.2)
    redis_server.flushall()
    started, results = run_workers(
        emu.base_url, redis_server.url, emu.api_key, tmp_path, processes, calls, rate, burst
    )
    total = sum(r["ok"] for r in results)
    assert total == processes * calls, results
    elapsed = max(r["end"] for r in results) - started
    achieved = total / elapsed
    print(
        f"{processes} processes: {achieved:.2f} req/s of {rate:g}, 429s: {emu.stats.rate_limited}"
    )
    # Within the key's limit: at most 1 % of the calls met a 429, where a bucket per process
    # would have drawn hundreds. How much of the limit was used is benchmarks/redis_limiter.py's
    # figure, not a test's: it depends on the machine's speed.
    assert emu.stats.rate_limited <= total // 100, (emu.stats.rate_limited, results)


async def test_a_fallback_starts_with_its_burst_spent(own_redis_server: RedisServer) -> None:
    # Every worker of a key falls back at the same moment; a full bucket each would add one
    # burst per worker on top of the shared rate.
    limiter = make(own_redis_server.url, per_second=20, burst=20, probe_interval=30)
    try:
        await limiter.acquire()
        own_redis_server.stop()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(4):
            await limiter.acquire()
        assert limiter.in_fallback
        # The fallback runs at 5/s (fallback_share 0.25) from an empty bucket: the four
        # calls wait their slots. A lower bound only: a wait never ends early.
        assert loop.time() - started >= 0.7
    finally:
        await limiter.aclose()


async def test_a_restart_costs_one_outage_not_one_per_pooled_connection(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py checks a pooled connection when it hands it out, so the dead ones of a
    # restarted server are replaced instead of failing (and flapping the limiter) one by one.
    caplog.set_level(logging.INFO, logger="bitrix_mail_async.ratelimit.redis")
    limiter = make(
        own_redis_server.url, per_second=1000, burst=1000, redis_timeout=2, probe_interval=0.05
    )
    try:
        # Many calls at once leave many connections in the pool.
        await asyncio.gather(*(limiter.acquire() for _ in range(20)))
        own_redis_server.restart()
        for _ in range(6):
            await asyncio.gather(*(limiter.acquire() for _ in range(10)))
            await asyncio.sleep(0.06)  # past the probe interval
        assert not limiter.in_fallback
    finally:
        await limiter.aclose()
    outages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(outages) == 1, outages
