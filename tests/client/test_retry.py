"""Retry rules over real HTTP: GETs retried, POSTs never repeated once they may have landed."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest
from aiohttp import web

from bitrix_mail_async import MailClient, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

from .conftest import FAST_RETRY
from .virtual_time import in_virtual_time, with_virtual_emulator

SENDER = "Sales Team <sales@emulator.bitrix24.test>"


def posts(emu: MailEmulator, path: str) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == path)


@pytest.mark.parametrize("fault", ["502", "503", "504", "drop_before", "drop_after", "html"])
async def test_get_is_retried_after_transient_failure(
    mail: MailClient, mail_emulator: MailEmulator, fault: str
) -> None:
    mail_emulator.faults.schedule(fault, fault, methods=["GET"])
    box = await mail.mailboxes.get(1)
    assert box.id == 1
    gets = [r for r in mail_emulator.requests if r.path == "/mail/mailboxes/1"]
    assert len(gets) == 3
    assert [r.fault for r in gets] == [fault, fault, None]
    # aiohttp itself resends an idempotent request once when a pooled connection drops.
    assert mail.stats.retries == (2 if "drop" not in fault else 1)


async def test_get_gives_up_after_max_attempts(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule(*["502"] * 4, methods=["GET"])
    with pytest.raises(errors.UpstreamUnavailableError) as info:
        await mail.mailboxes.get(1)
    assert info.value.code == "BITRIX_UNAVAILABLE"
    assert info.value.status == 502
    assert not isinstance(info.value, errors.OutcomeUnknownError)
    assert len(mail_emulator.requests) == FAST_RETRY.max_attempts


@pytest.mark.parametrize("fault", ["502", "503", "504", "html"])
async def test_send_is_not_repeated_after_server_error(
    mail: MailClient, mail_emulator: MailEmulator, fault: str
) -> None:
    mail_emulator.faults.schedule(fault, methods=["POST"])
    with pytest.raises(errors.UpstreamOutcomeUnknownError) as info:
        await mail.messages.send(from_=SENDER, to="bob@example.com", subject="once", body="b")
    assert isinstance(info.value, errors.OutcomeUnknownError)
    assert isinstance(info.value, errors.UpstreamUnavailableError)
    assert info.value.request["json"]["subject"] == "once"
    assert info.value.request["path"] == "/mail/messages"
    assert posts(mail_emulator, "/mail/messages") == 1


@pytest.mark.parametrize(("fault", "applied"), [("drop_before", 0), ("drop_after", 1)])
async def test_send_after_dropped_connection_raises_outcome_unknown(
    mail: MailClient, mail_emulator: MailEmulator, fault: str, applied: int
) -> None:
    mail_emulator.faults.schedule(fault, methods=["POST"])
    with pytest.raises(errors.OutcomeUnknownError) as info:
        await mail.messages.reply(
            1001, from_=SENDER, to="bob@example.com", subject="dropped", body="b"
        )
    assert "not retried" in str(info.value)
    assert info.value.request["json"]["replyToMessageId"] == 1001
    assert posts(mail_emulator, "/mail/messages/1001/reply") == 1
    assert len(mail_emulator.state.sent) == applied
    assert mail.stats.outcome_unknown == 1


async def test_send_is_retried_after_429_and_lands_once(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.fault_retry_after = 0.05
    mail_emulator.faults.schedule("429", "429", methods=["POST"])
    result = await mail.messages.send(from_=SENDER, to=["a@x.io"], subject="s429", body="b")
    assert result.success
    assert posts(mail_emulator, "/mail/messages") == 3
    assert [s for s in mail_emulator.state.sent if s["request"]["subject"] == "s429"] != []
    assert len(mail_emulator.state.sent) == 1
    assert mail.stats.rate_limited == 2


async def test_post_is_retried_when_connection_was_refused() -> None:
    # Nothing listens on this port: the request provably never left, so a retry is safe.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with MailClient(
        "vibe_api_x", base_url=f"http://127.0.0.1:{port}/v1", rate_limit=None, retry=FAST_RETRY
    ) as mail:
        with pytest.raises(errors.TransportError) as info:
            await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="b")
        assert not isinstance(info.value, errors.OutcomeUnknownError)
        assert "cannot connect" in str(info.value)
        assert mail.stats.requests == FAST_RETRY.max_attempts


def test_get_timeout_raises_timeout_error() -> None:
    async def scenario(mail_emulator: MailEmulator) -> None:
        loop = asyncio.get_running_loop()
        mail_emulator.faults.schedule("slow:1", "slow:1", methods=["GET"])
        async with MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=None,
            retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
        ) as client:
            started = loop.time()
            with pytest.raises(errors.TimeoutError) as info:
                await client.mailboxes.get(1, timeout=0.2)
            assert loop.time() - started < 0.9
        assert isinstance(info.value, TimeoutError)
        assert not isinstance(info.value, errors.OutcomeUnknownError)

    with_virtual_emulator(scenario)


async def test_post_timeout_is_outcome_unknown(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("slow:1", methods=["POST"])
    with pytest.raises(errors.TimeoutOutcomeUnknownError) as info:
        await mail.messages.create_task(1001, timeout=0.2)
    assert isinstance(info.value, errors.TimeoutError)
    assert isinstance(info.value, errors.OutcomeUnknownError)
    assert posts(mail_emulator, "/mail/messages/1001/task") == 1


def test_retry_after_is_honoured() -> None:
    async def scenario(mail_emulator: MailEmulator) -> float:
        loop = asyncio.get_running_loop()
        mail_emulator.faults.fault_retry_after = 0.3
        mail_emulator.faults.schedule("429", methods=["GET"])
        async with MailClient(
            mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=None
        ) as mail:
            started = loop.time()
            await mail.mailboxes.get(1)
            assert mail.stats.rate_limited == 1
            return loop.time() - started

    # Retry-After plus at most 10 % jitter, on a clock shared with the emulator.
    elapsed = with_virtual_emulator(scenario)
    assert 0.3 <= elapsed <= 0.3 * 1.1 + 0.01


async def test_429_cooldown_is_shared_by_all_calls(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.faults.fault_retry_after = 0.4
    mail_emulator.faults.schedule("429", methods=["GET"])
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        max_concurrency=1,
        retry=FAST_RETRY,
    ) as mail:
        started = time.monotonic()
        boxes = await asyncio.gather(*(mail.mailboxes.get(1 + i % 3) for i in range(30)))
        elapsed = time.monotonic() - started
    assert len(boxes) == 30
    # One wait for everybody, not one per call.
    assert 0.4 <= elapsed < 1.2
    assert mail_emulator.stats.rate_limited == 1
    assert len(mail_emulator.requests) == 31
    times = sorted(r.time for r in mail_emulator.requests)
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap >= 0.35  # nobody went out during the cooldown


async def test_retry_after_above_cap_raises_at_once(
    scripted_client,
    scripted,  # type: ignore[no-untyped-def]
) -> None:
    scripted.push(
        429,
        {"success": False, "error": {"code": "RATE_LIMITED", "message": "m"}},
        {"Retry-After": "3600"},
    )
    async with scripted_client(retry=RetryPolicy(max_retry_after=10)) as mail:
        started = time.monotonic()
        with pytest.raises(errors.RateLimitedError) as info:
            await mail.mailboxes.get(1)
        # A wait this client will not honour is not imposed on its other calls either.
        assert await mail._pipeline.limiter.cooldown_remaining() == 0
    assert time.monotonic() - started < 1
    assert info.value.retry_after == 3600


async def test_rate_limit_budget_is_spent_then_raises(
    scripted_client,
    scripted,  # type: ignore[no-untyped-def]
) -> None:
    for _ in range(3):
        scripted.push(
            429,
            {
                "success": False,
                "error": {"code": "RATE_LIMITED", "message": "m", "retryAfter": 0.01},
            },
        )
    async with scripted_client(retry=RetryPolicy(rate_limit_attempts=2)) as mail:
        with pytest.raises(errors.RateLimitedError):
            await mail.mailboxes.get(1)
    assert len(scripted.hits) == 3


async def test_retry_after_from_body_when_header_absent(
    scripted_client,
    scripted,  # type: ignore[no-untyped-def]
) -> None:
    scripted.push(
        429,
        {"success": False, "error": {"code": "RATE_LIMITED", "message": "m", "retryAfter": 0.25}},
    )
    async with scripted_client() as mail:
        started = time.monotonic()
        await mail.mailboxes.get(1)
    assert 0.25 <= time.monotonic() - started < 0.25 * 1.1 + 0.15


def test_backoff_is_full_jitter_with_cap() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=5.0)
    samples = [policy.backoff(10) for _ in range(200)]
    assert all(0 <= s <= 5.0 for s in samples)
    assert max(samples) > 2.5  # spread over the range, not a constant
    assert RetryPolicy(jitter=False, backoff_base=0.5).backoff(3) == 2.0
    with pytest.raises(errors.ConfigurationError):
        RetryPolicy(max_attempts=-1)


async def test_504_with_retry_after_above_the_cap_is_not_waited_out(
    scripted_client,  # type: ignore[no-untyped-def]
    scripted,
) -> None:
    scripted.push(
        504,
        {"success": False, "error": {"code": "GATEWAY_TIMEOUT", "message": "queue"}},
        {"Retry-After": "600"},
    )
    async with scripted_client(retry=RetryPolicy(max_retry_after=5)) as mail:
        started = time.monotonic()
        with pytest.raises(errors.UpstreamUnavailableError) as info:
            await mail.mailboxes.get(1)
    assert time.monotonic() - started < 1
    assert info.value.retry_after == 600
    assert len(scripted.hits) == 1


def test_a_gateway_that_refuses_forever_ends_the_call_after_max_refused_time() -> None:
    # 429 with Retry-After: 0 on every call drives the learned rate down; without a bound on
    # the time a call spends refused it would wait ever longer at an ever lower rate.
    # Server and client share one virtual clock: no wall-clock wait, exact figures.
    async def scenario() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        hits = 0

        async def refuse(request: web.Request) -> web.Response:
            nonlocal hits
            hits += 1
            body = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}
            return web.json_response(body, status=429, headers={"Retry-After": "0"})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", refuse)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        policy = RetryPolicy(rate_limit_attempts=1000, max_refused_time=30)
        try:
            async with MailClient(
                "vibe_api_refused_forever_01", base_url=f"http://127.0.0.1:{port}/v1", retry=policy
            ) as mail:
                started = loop.time()
                with pytest.raises(errors.RateLimitedError):
                    await mail.mailboxes.get(1)
                return loop.time() - started, hits
        finally:
            await runner.cleanup()

    elapsed, hits = in_virtual_time(scenario)
    # Ends within the 30 s: a limiter wait that would end past them is cut at 30 s, or not
    # started when known in advance; one interval of the lowest learned rate (2/s x 0.25 =
    # one call per 2 s) is the most it can end early.
    assert 30 - 2 <= elapsed <= 30 + 1e-3, elapsed
    assert 2 <= hits < 1000


async def test_a_call_ended_by_refusals_counts_as_an_error(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    # stats.errors counts every call that raised, refusals included (as the breaker's do).
    mail_emulator.faults.fault_retry_after = 0.01
    mail_emulator.faults.schedule("429", "429", methods=["GET"])
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        retry=RetryPolicy(rate_limit_attempts=1),
    ) as client:
        with pytest.raises(errors.RateLimitedError):
            await client.mailboxes.get(1)
        assert client.stats.errors == 1
        assert client.stats.rate_limited == 2
