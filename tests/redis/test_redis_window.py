"""The gateway's window budget shared through Redis: the rules of the in-process budget across
processes, against a real redis-server, the emulator's window and a gateway sending garbage.

Two limiters made from a ``RedisRateLimit`` stand for two processes (each process has its own
registry, so its own limiter and window); the multi-process test runs real processes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from mp_worker import run_workers
from multidict import CIMultiDict
from redisserver import RedisServer

from bitrix_mail_async import MailClient, RetryPolicy
from bitrix_mail_async._redis_window import RedisWindow
from bitrix_mail_async._window import COLD_START, MAX_RESET, PROBE_HOLD
from bitrix_mail_async.redis import RedisLimiter, RedisRateLimit
from bitrix_mail_async.testing import MailEmulator

pytestmark = pytest.mark.redis

KEY = "vibe_api_super_secret_key_0123456789"
# Far above any window in these tests: only the window budget can hold calls back.
RATE, BURST = 1000.0, 1000
FAST_RETRY = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_cap=0.05)


def config(url: str, **kwargs: float) -> RedisRateLimit:
    """A shared limit whose bucket never holds a call back in these tests."""
    return RedisRateLimit(url, per_second=RATE, burst=BURST, **kwargs)


def limiter(url: str, **kwargs: float) -> RedisLimiter:
    """One process's limiter of KEY (each test closes it)."""
    return config(url, **kwargs).create_limiter(api_key=KEY)


def window(limit: int | str, remaining: int | str, reset: float | str) -> CIMultiDict[str]:
    """Answer headers as the gateway sends them."""
    return CIMultiDict(
        {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }
    )


async def shared_budget(client: aioredis.Redis, win: RedisWindow) -> int | None:
    """The budget every process spends (None: the gateway sends no window, or nothing known)."""
    await win.drain()
    value = await client.hget(win.key, "budget")
    return None if value is None else int(value)


async def known(win: RedisWindow, remaining: int, reset: float = 30.0) -> None:
    """Make ``win``'s process learn a window: one call, then hear ``remaining`` (published)."""
    assert await win.admit() == 0.0  # the first call of a key starts (nothing is known)
    win.settle(window(300, remaining, reset))
    await win.drain()


# ------------------------------------------------------------------ the rules, across processes
async def test_a_cold_start_for_every_process_together_then_one_budget(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    a, b = limiter(redis_url), limiter(redis_url)
    wa, wb = a.create_window(), b.create_window()
    try:
        assert not wa.try_admit()  # a window may exist: only Redis can say
        # Nothing known: COLD_START calls start, as in one process, but for both together.
        assert await wa.admit() == 0.0
        assert [await wb.admit() for _ in range(COLD_START - 1)] == [0.0] * (COLD_START - 1)
        assert await wb._take() > 0  # the rest wait for a reading
        # The first reading counts, less the other process's cold calls (which may not be
        # in it yet: a's own are not, and a has none left in flight).
        wa.settle(window(300, 12, 30))
        assert await shared_budget(redis_client, wa) == 12 - (COLD_START - 1)
        # The other process spends the budget a's answer left, and no more.
        left = 12 - (COLD_START - 1)
        assert [await wb.admit() for _ in range(left)] == [0.0] * left
        assert wb.local.in_flight == COLD_START - 1 + left
        assert 0 < await wb._take() <= 30  # until the reading's Reset
        assert await shared_budget(redis_client, wa) == 0
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_new_cold_start_counts_only_its_own_calls(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    a, b = limiter(redis_url), limiter(redis_url)
    wa, wb = a.create_window(), b.create_window()
    try:
        for _ in range(3):  # a's calls of a first cold start, answered and settled
            await wa.admit()
            wa.settle(window(300, 250, 30))
        await wa.drain()
        await redis_client.delete(wa.key)  # the window state expired: nothing known again
        for _ in range(3):
            await wb.admit()
        await wa.admit()
        wa.settle(window(300, 100, 30))
        # b's three calls of this cold start are subtracted; a's of the first one are not
        # taken for b's.
        assert await shared_budget(redis_client, wa) == 100 - 3
    finally:
        await a.aclose()
        await b.aclose()


async def test_calls_waiting_for_a_reading_ask_again_soon_at_first(redis_url: str) -> None:
    # Another process's answer wakes nobody here: these calls learn of it by asking again.
    # Asked after as long as the cold start has been out (it usually answers within a round
    # trip), never more than a tenth of the probe hold: so they do not all start a poll late,
    # together, on limiter slots long due.
    a = limiter(redis_url)
    win = a.create_window()
    try:
        for _ in range(COLD_START):
            await win.admit()
        first = await win._take()
        await asyncio.sleep(0.05)
        second = await win._take()
    finally:
        await a.aclose()
    assert 0 < first < second <= PROBE_HOLD / 10, (first, second)
    assert second >= 0.05


async def test_a_reading_counts_only_when_lower_until_reset(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    a, b = limiter(redis_url), limiter(redis_url)
    wa, wb = a.create_window(), b.create_window()
    try:
        await known(wa, 10)
        for _ in range(4):
            await wb.admit()
        assert await shared_budget(redis_client, wa) == 6
        # Answered later but counted earlier: more generous than the budget, so stale.
        wb.settle(window(300, 10, 30))
        assert await shared_budget(redis_client, wb) == 6
        # Lower: believed, less this process's 2 calls still in flight.
        wb.settle(window(300, 4, 0.3))
        assert await shared_budget(redis_client, wb) == 2
        await asyncio.sleep(0.3)  # the window has moved on since (a lower bound on time)
        wb.settle(window(300, 12, 30))
        assert await shared_budget(redis_client, wb) == 11
    finally:
        await a.aclose()
        await b.aclose()


async def test_remaining_zero_holds_every_process_until_reset_then_one_probe(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    a, b = limiter(redis_url), limiter(redis_url)
    wa, wb = a.create_window(), b.create_window()
    loop = asyncio.get_running_loop()
    try:
        assert await wa.admit() == 0.0
        settled = loop.time()
        wa.settle(window(300, 0, 0.3))
        await wa.drain()
        assert await wb.admit() > 0  # the other process's call: the probe after Reset
        # Reset counts from when Redis heard the reading, never before the answer.
        assert loop.time() - settled >= 0.29
        # The budget is still 0 and that probe was marked for every process: the next call
        # waits for its answer (or a probe hold).
        assert await shared_budget(redis_client, wa) == 0
        fields = await redis_client.hmget(wa.key, ["reset_at", "next_probe"])
        reset_at, next_probe = (int(v) for v in fields)
        assert next_probe - reset_at >= PROBE_HOLD * 1_000_000
    finally:
        await a.aclose()
        await b.aclose()


async def test_garbage_drops_the_shared_budget_at_once(
    redis_url: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = limiter(redis_url), limiter(redis_url)
    wa, wb = a.create_window(), b.create_window()
    try:
        await known(wa, 1)
        await wa.admit()
        wa.settle(window(300, 0, 30))  # a budget that would hold every call for 30 s
        await wa.drain()
        assert await wb._take() > 0
        with caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.ratelimit"):
            wa.settle(window(300, "many", 30))
        assert "ignoring the gateway's window headers" in caplog.text
        assert await shared_budget(redis_client, wa) is None
        assert await redis_client.hget(wa.key, "none") == b"1"
        assert 0 < await redis_client.pttl(wa.key) <= MAX_RESET * 1000
        # Own bucket only, for every process: nothing waits.
        assert wa.try_admit()
        assert await asyncio.wait_for(wb.admit(), 5) == 0.0
    finally:
        await a.aclose()
        await b.aclose()


async def test_absent_headers_drop_the_shared_budget_only_after_reset(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    a, b = limiter(redis_url), limiter(redis_url)
    wa, wb = a.create_window(), b.create_window()
    try:
        await known(wa, 4)
        await wa.admit()
        wa.settle(CIMultiDict())  # before Reset: the reading still holds
        assert await shared_budget(redis_client, wa) == 3
        await wb.admit()
        wb.settle(window(300, 1, 0.2))
        assert await shared_budget(redis_client, wb) == 1
        await asyncio.sleep(0.2)
        await wb.admit()
        wb.settle(CIMultiDict())  # after Reset: no window any more
        assert await shared_budget(redis_client, wb) is None
        assert await redis_client.hget(wb.key, "none") == b"1"
    finally:
        await a.aclose()
        await b.aclose()


async def test_without_a_window_no_call_waits_for_redis(
    redis_url: str, redis_client: aioredis.Redis, mail_emulator: MailEmulator
) -> None:
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=config(redis_url)
    ) as mail:
        await mail.mailboxes.get(1)  # the probe: the emulator sends no X-RateLimit-* headers
        limiter, win = mail._pipeline.limiter, mail._pipeline.window
        assert isinstance(limiter, RedisLimiter) and isinstance(win, RedisWindow)
        await win.drain()
        assert await redis_client.hget(win.key, "none") == b"1"
        before = limiter.redis_calls
        await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
        await win.drain()
        # One round trip per call, the bucket's: the window asks nothing.
        assert limiter.redis_calls == before + 10
        assert mail.stats.window is None and mail.stats.window_wait == 0


# ------------------------------------------------------------------ over loopback
async def test_the_shared_window_prevents_every_refusal(
    redis_url: str, redis_client: aioredis.Redis, mail_emulator: MailEmulator
) -> None:
    mail_emulator.set_window(limit=20, period=1.0)
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=config(redis_url)
    ) as mail:
        boxes = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(50)))
        assert len(boxes) == 50
        assert mail.stats.window is not None and mail.stats.window.limit == 20
        assert mail.stats.window_wait > 0  # it did have to hold calls back
        win = mail._pipeline.window
        assert isinstance(win, RedisWindow)
        await win.drain()
        assert re.fullmatch(r"bitrix-mail:\{[0-9a-f]{32}\}:window", win.key)
        assert await redis_client.pttl(win.key) > 0
        stored = await redis_client.hgetall(win.key)
        assert KEY.encode() not in b"".join(stored) + b"".join(stored.values())
    assert mail_emulator.stats.rate_limited == 0
    assert len(mail_emulator.requests) == 50


def test_three_processes_never_overrun_the_window(
    redis_server: RedisServer, mail_emulator_factory: Callable[..., MailEmulator], tmp_path: Path
) -> None:
    processes, calls = 3, 24
    emu = mail_emulator_factory()
    emu.set_window(limit=15, period=1.0)
    redis_server.flushall()
    limits = (calls, RATE, BURST)
    _started, results = run_workers(
        emu.base_url, redis_server.url, emu.api_key, tmp_path, processes, *limits
    )
    assert sum(r["ok"] for r in results) == processes * calls, results
    # Each bucket allows 1000/s: only the window, shared through Redis, kept them apart.
    assert emu.stats.rate_limited == 0, results
    assert len(emu.requests) == processes * calls
    assert sum(r["window_wait"] for r in results) > 0


# ------------------------------------------------------------------ faults
async def test_redis_down_mid_run_calls_still_complete(
    own_redis_server: RedisServer,
    mail_emulator: MailEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bitrix_mail_async.ratelimit.redis")
    mail_emulator.set_window(limit=20, period=1.0)
    shared = config(own_redis_server.url, redis_timeout=0.3, probe_interval=0.2)
    probe = aioredis.Redis.from_url(own_redis_server.url)
    try:
        async with MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=shared,
            retry=FAST_RETRY,
        ) as mail:
            win = mail._pipeline.window
            assert isinstance(win, RedisWindow)
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
            await win.drain()
            assert await probe.exists(win.key)

            own_redis_server.stop()
            async with asyncio.timeout(30):
                boxes = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(30)))
            assert len(boxes) == 30
            assert mail._pipeline.limiter.in_fallback  # type: ignore[attr-defined]
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]

            own_redis_server.start()
            await asyncio.sleep(0.25)  # past the probe interval
            async with asyncio.timeout(30):
                await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
            await win.drain()
            await probe.aclose()
            probe = aioredis.Redis.from_url(own_redis_server.url)
            # Back in Redis: the restarted (empty) server holds the window again.
            assert await probe.exists(win.key)
            assert mail.stats.errors == 0
    finally:
        await probe.aclose()
    assert len(mail_emulator.requests) >= 50


async def test_close_waits_for_readings_on_their_way_and_leaves_nothing_running(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    lim = limiter(own_redis_server.url, redis_timeout=0.25)
    win = lim.create_window()
    try:
        await win.admit()
        own_redis_server.pause()  # the reading's script gets no answer
        win.settle(window(300, 5, 30))
        ours = asyncio.all_tasks() - {asyncio.current_task()}
        assert ours  # the reading is on its way
        await asyncio.wait_for(lim.aclose(), 5)
        assert all(task.done() for task in ours)
        assert lim.in_fallback
        win.settle(None)  # a late call ends after close: nothing is sent
        assert asyncio.all_tasks() == {asyncio.current_task()}
    finally:
        own_redis_server.resume()
        await lim.aclose()
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


# ------------------------------------------------------------------ a gateway sending garbage
@pytest.fixture
async def garbage_gateway() -> AsyncIterator[str]:
    """A gateway stand-in whose every answer carries impossible X-RateLimit-* headers."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(
            {"success": True, "data": {"item": {"id": 1, "email": "a@b.c"}}},
            headers={
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "1e9",
            },
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


async def test_garbage_window_headers_never_stall_the_client(
    redis_url: str, garbage_gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.ratelimit"):
        async with MailClient(KEY, base_url=garbage_gateway, rate_limit=config(redis_url)) as mail:
            # A guard against a hang, far above what the calls take.
            async with asyncio.timeout(20):
                await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
                await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
            assert mail.stats.window is None
    assert "ignoring the gateway's window headers" in caplog.text
    assert KEY not in caplog.text
