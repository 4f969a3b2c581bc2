"""Issue 21, waits that must stay bounded: the window budget after ``Remaining: 0`` answers,
``max_refused_time`` as a true bound with a floor under the learned rate, and error bodies
whose numbers the stdlib parser makes huge. Server and client share one virtual clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from bitrix_mail_async import MailClient, RetryPolicy, _jsonlib, errors
from bitrix_mail_async._ratelimit import AIMD, DEFAULT_PER_SECOND

from .conftest import ScriptedServer
from .virtual_time import in_virtual_time

KEY = "vibe_api_hardening_limits_key_01"
OK = {"success": True, "data": {"item": {"id": 1, "email": "a@b.c"}}}
SLOW_DOWN = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A loopback server answering every request with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ item 6: a probe's answer
@pytest.mark.parametrize("reset", ["0", "0.05"])
def test_a_probes_answer_wakes_the_calls_waiting_for_the_window(reset: str) -> None:
    # Every answer says the window is spent and frees up in `reset` seconds. Each answer is a
    # new reading: the calls waiting must follow its Reset, not sleep out PROBE_HOLD (1 s)
    # each, which made 20 calls take 11 s.
    async def scenario() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        hits = 0
        headers = {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        }

        async def spent(request: web.Request) -> web.Response:
            nonlocal hits
            hits += 1
            return web.json_response(OK, headers=headers)

        async with (
            serving(spent) as url,
            MailClient(KEY, base_url=url, rate_limit=None) as mail,
        ):
            started = loop.time()
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(20)))
            return loop.time() - started, hits

    elapsed, hits = in_virtual_time(scenario)
    assert hits == 20
    # 8 calls start cold, then one at a time, each after the previous answer's Reset.
    assert elapsed <= 12 * float(reset) + 0.1, elapsed


# ------------------------------------------------------------------ item 7: max_refused_time
def refusing(status: int, body: object, headers: dict[str, str], hits: list[float]) -> Handler:
    """A handler refusing every call alike, noting when each came (loop time)."""

    async def refuse(request: web.Request) -> web.Response:
        hits.append(asyncio.get_running_loop().time())
        return web.json_response(body, status=status, headers=headers)

    return refuse


def test_a_429_storm_ends_the_call_within_max_refused_time() -> None:
    # Retry-After: 0 on every answer: each retry lowers the learned rate, and the wait before
    # the refusal that ended the call began before the bound and ended 7 s past it (10.4 s).
    async def scenario() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        hits: list[float] = []
        handler = refusing(429, SLOW_DOWN, {"Retry-After": "0"}, hits)
        async with (
            serving(handler) as url,
            MailClient(KEY, base_url=url, retry=RetryPolicy(max_refused_time=3)) as mail,
        ):
            started = loop.time()
            with pytest.raises(errors.RateLimitedError):
                await mail.mailboxes.get(1)
            assert mail.stats.errors == 1
            return loop.time() - started, len(hits)

    elapsed, hits = in_virtual_time(scenario)
    assert elapsed <= 3.0 + 1e-3, elapsed
    assert hits >= 2


def test_a_wait_that_would_end_past_the_bound_is_not_started() -> None:
    # A 429 at 0 s and one at 5 s, each asking for 5 s: the wait after the second would end
    # at 10 s, past max_refused_time=8, so the second refusal is raised at once.
    async def scenario() -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        hits: list[float] = []
        handler = refusing(429, SLOW_DOWN, {"Retry-After": "5"}, hits)
        policy = RetryPolicy(max_refused_time=8)
        async with serving(handler) as url, MailClient(KEY, base_url=url, retry=policy) as mail:
            started = loop.time()
            with pytest.raises(errors.RateLimitedError):
                await mail.mailboxes.get(1)
            return loop.time() - started, [hit - started for hit in hits]

    elapsed, hits = in_virtual_time(scenario)
    assert len(hits) == 2, hits
    assert 5.0 <= elapsed <= 5.0 + 0.25 + 1e-3, elapsed  # Retry-After plus at most its jitter


def test_a_queue_timeout_wait_past_the_bound_is_not_started() -> None:
    # The same for 504 QUEUE_TIMEOUT (retryAfter 10 s) under max_refused_time=15: the send is
    # refused at 0 s and 10 s; the third try would start at 20 s. It was made; now it is not.
    body = {
        "success": False,
        "error": {"code": "QUEUE_TIMEOUT", "message": "portal queue saturated", "retryAfter": 10},
    }

    async def scenario() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        hits: list[float] = []
        policy = RetryPolicy(max_refused_time=15)
        async with (
            serving(refusing(504, body, {}, hits)) as url,
            MailClient(KEY, base_url=url, retry=policy) as mail,
        ):
            started = loop.time()
            with pytest.raises(errors.QueueTimeoutError):
                await mail.messages.send(from_="a@b.c", to="d@e.f", subject="s", body="b")
            return loop.time() - started, len(hits)

    elapsed, hits = in_virtual_time(scenario)
    assert hits == 2
    assert 10.0 <= elapsed <= 10.0 + 0.25 + 1e-3, elapsed


def test_the_learned_rate_stops_at_its_floor_and_the_next_call_goes_soon() -> None:
    # A long storm of Retry-After: 0 lowered the learned rate once per retry, to 2 % of the
    # configured rate (one call per 25 s at 2/s). The floor is a quarter: one call per 2 s.
    async def scenario() -> tuple[float | None, float]:
        loop = asyncio.get_running_loop()
        hits: list[float] = []
        storm = refusing(429, SLOW_DOWN, {"Retry-After": "0"}, hits)
        refuse = True

        async def handler(request: web.Request) -> web.StreamResponse:
            if refuse:
                return await storm(request)
            return web.json_response(OK)

        async with serving(handler) as url, MailClient(KEY, base_url=url) as mail:
            with pytest.raises(errors.RateLimitedError):
                await mail.mailboxes.get(1)
            assert len(hits) == 21  # rate_limit_attempts: far more than it takes to reach the floor
            rate = mail.stats.current_rate
            refuse = False
            started = loop.time()
            await mail.mailboxes.get(1)
            return rate, loop.time() - started

    rate, next_call = in_virtual_time(scenario)
    # The documented floor: a quarter of the configured rate, 0.5/s at the default 2/s.
    assert DEFAULT_PER_SECOND * AIMD.min_scale == 0.5
    assert rate == pytest.approx(0.5)
    assert next_call <= 2.0 + 1e-3, next_call


# ------------------------------------------------------------------ item 8: huge numbers
HUGE = "1" + "0" * 400  # 401 digits: the stdlib parser makes an int no float can hold


@pytest.fixture
def stdlib_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse answers with the standard library, as an install without orjson does."""
    monkeypatch.setattr(_jsonlib, "_loads", _jsonlib.std_loads)
    # Proof that the stdlib path is the one taken: orjson refuses integers past 64 bits.
    assert _jsonlib.loads(HUGE.encode()) == 10**400


def error_body(code: str, retry_after: str) -> str:
    return (
        f'{{"success": false, "error": {{"code": "{code}", "message": "no",'
        f' "retryAfter": {retry_after}}}}}'
    )


@pytest.mark.usefixtures("stdlib_json")
@pytest.mark.parametrize("retry_after", [HUGE, "-" + HUGE, "1e400", "-1e400", "NaN"])
async def test_a_huge_retry_after_in_an_error_body_is_just_unusable(
    scripted: ScriptedServer,
    scripted_client: Callable[..., MailClient],
    caplog: pytest.LogCaptureFixture,
    retry_after: str,
) -> None:
    json_type = {"Content-Type": "application/json"}
    scripted.push(400, error_body("INVALID_PARAMS", retry_after), json_type)
    with caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.transport"):
        async with scripted_client() as mail:
            with pytest.raises(errors.InvalidParamsError) as info:
                await mail.mailboxes.get(1)
    assert info.value.retry_after is None
    assert "ignoring an unusable Retry-After" in caplog.text


@pytest.mark.usefixtures("stdlib_json")
@pytest.mark.parametrize("retry_after", [HUGE, "-" + HUGE])
async def test_a_send_answered_500_with_a_huge_retry_after_is_outcome_unknown(
    scripted: ScriptedServer, scripted_client: Callable[..., MailClient], retry_after: str
) -> None:
    json_type = {"Content-Type": "application/json"}
    scripted.push(500, error_body("INTERNAL_ERROR", retry_after), json_type)
    async with scripted_client() as mail:
        with pytest.raises(errors.UpstreamOutcomeUnknownError) as info:
            await mail.messages.send(from_="a@b.c", to="d@e.f", subject="s", body="b")
        assert mail.stats.outcome_unknown == 1
    assert info.value.status == 500
    assert info.value.retry_after is None
    assert len(scripted.hits) == 1  # never repeated
