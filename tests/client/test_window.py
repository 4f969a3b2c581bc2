"""The window budget from ``X-RateLimit-*`` headers, and one limiter state per API key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from multidict import CIMultiDict

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy, errors
from bitrix_mail_async._keys import REGISTRY
from bitrix_mail_async._window import (
    COLD_START,
    PROBE_HOLD,
    WindowBudget,
    WindowReading,
    read_window,
)
from bitrix_mail_async.testing import MailEmulator

from .conftest import ScriptedServer
from .virtual_time import in_virtual_time

OK = {"success": True, "data": {"item": {"id": 1, "email": "a@b.c"}}}
RESET = {"X-RateLimit-Reset": "0.3"}


def window(limit: int, remaining: int, reset: float) -> CIMultiDict[str]:
    """Answer headers as the gateway sends them (names looked up case-insensitively)."""
    return CIMultiDict(
        {"x-ratelimit-limit": str(limit), "X-RATELIMIT-REMAINING": str(remaining)}
        | {"X-RateLimit-Reset": str(reset)}
    )


def no_window_yet() -> WindowBudget:
    """A budget whose first answer came without headers (so calls are not gated)."""
    budget = WindowBudget()
    budget.try_admit()
    budget.settle(CIMultiDict())
    assert budget.budget is None
    return budget


# ------------------------------------------------------------------ the budget, in virtual time
def test_a_reading_budgets_remaining_less_the_calls_in_flight() -> None:
    async def scenario() -> None:
        budget = WindowBudget()
        # Before the first answer a few calls start, then one probe; the rest wait.
        admitted = [budget.try_admit() for _ in range(COLD_START + 2)]
        assert admitted == [True] * (COLD_START + 1) + [False]
        for _ in range(COLD_START):
            budget.settle(None)  # lost answers teach nothing
        budget.settle(CIMultiDict())  # no headers: this gateway has no window
        assert budget.budget is None
        assert budget.try_admit() and budget.try_admit() and budget.try_admit()
        budget.settle(window(300, 5, 10))  # two other calls are still in flight
        assert budget.budget == 3
        assert budget.reading == WindowReading(300, 5, 10.0)
        assert [budget.try_admit() for _ in range(4)] == [True, True, True, False]
        assert budget.in_flight == 5

    in_virtual_time(scenario)


def test_at_zero_calls_wait_for_reset_then_one_probe_per_hold() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        budget = WindowBudget()
        budget.try_admit()
        budget.settle(window(300, 0, 2))
        started: list[float] = []

        async def call() -> None:
            await budget.admit()
            started.append(loop.time())

        tasks = [asyncio.create_task(call()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not started  # nothing goes before Reset
        await asyncio.sleep(2.0 + PROBE_HOLD + 0.5)
        assert budget.in_flight == 2  # one probe at Reset, one more a hold later
        budget.settle(window(300, 4, 30))  # the probe's answer: the window freed up
        await asyncio.gather(*tasks)
        return started

    started = in_virtual_time(scenario)
    assert started[0] == pytest.approx(2.0, abs=1e-3)
    assert started[1] == pytest.approx(2.0 + PROBE_HOLD, abs=1e-3)
    assert started[2] == pytest.approx(2.0 + PROBE_HOLD + 0.5, abs=1e-3)  # woken by the reading


def test_a_late_generous_reading_counts_only_after_reset() -> None:
    async def scenario() -> list[int | None]:
        budget = no_window_yet()
        for _ in range(3):
            budget.try_admit()
        seen = []
        budget.settle(window(300, 10, 5))  # answered first, counted last
        seen.append(budget.budget)
        budget.settle(window(300, 12, 5))  # counted earlier, answered later: stale
        seen.append(budget.budget)
        await asyncio.sleep(6)
        budget.settle(window(300, 12, 5))  # the window has moved on since: believed
        seen.append(budget.budget)
        return seen

    assert in_virtual_time(scenario) == [8, 8, 12]


def test_headers_stop_coming_the_budget_is_dropped_after_reset() -> None:
    async def scenario() -> list[int | None]:
        budget = WindowBudget()
        budget.try_admit()
        budget.settle(window(300, 7, 3))
        seen = [budget.budget]
        budget.try_admit()
        budget.settle(CIMultiDict())  # before Reset: the reading still holds
        seen.append(budget.budget)
        await asyncio.sleep(3)
        budget.try_admit()
        budget.settle(CIMultiDict())
        seen.append(budget.budget)
        return seen

    assert in_virtual_time(scenario) == [7, 6, None]


@pytest.mark.parametrize(
    ("limit", "remaining", "reset"),
    [
        ("300", "abc", "10"),
        ("300", "-1", "10"),
        ("300", "301", "10"),
        ("0", "0", "10"),
        ("1e3", "5", "10"),
        ("300", "5", "-1"),
        ("300", "5", "nan"),
        ("300", "5", "inf"),
        ("300", "5", "1e308"),
        ("300", "5", "61"),
        ("300", "5", "soon"),
        ("9" * 40, "5", "10"),
    ],
)
def test_impossible_headers_drop_the_budget_and_say_so(
    limit: str, remaining: str, reset: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = CIMultiDict(
        {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}
    )
    with pytest.raises(ValueError, match=r"X-RateLimit|headers"):
        read_window(headers)

    async def scenario() -> tuple[int | None, bool]:
        budget = WindowBudget()
        budget.try_admit()
        budget.try_admit()
        budget.settle(window(300, 0, 30))  # a budget that would hold every call for 30 s
        assert not budget.try_admit()
        with caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.ratelimit"):
            budget.settle(headers)
        return budget.budget, budget.try_admit()

    assert in_virtual_time(scenario) == (None, True)
    assert "ignoring the gateway's window headers" in caplog.text


def test_partial_headers_are_wrong_and_absent_ones_are_none() -> None:
    assert read_window(CIMultiDict()) is None
    with pytest.raises(ValueError, match=r"X-RateLimit|headers"):
        read_window(CIMultiDict({"X-RateLimit-Remaining": "3"}))
    assert read_window(window(300, 0, 0.25)) == WindowReading(300, 0, 0.25)


# ------------------------------------------------------------------ over loopback
async def test_the_window_headers_prevent_every_refusal(mail_emulator: MailEmulator) -> None:
    # The client's own bucket is far above the window: only the headers can keep it below.
    mail_emulator.set_window(limit=20, period=1.0)
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=RateLimit(per_second=1000, burst=1000),
    ) as mail:
        boxes = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(50)))
        assert len(boxes) == 50
        assert mail.stats.window is not None and mail.stats.window.limit == 20
        assert mail.stats.window_wait > 0  # it did have to hold calls back
    assert mail_emulator.stats.rate_limited == 0
    assert len(mail_emulator.requests) == 50


async def test_remaining_zero_holds_new_calls_until_reset(
    scripted: ScriptedServer, scripted_client: Any
) -> None:
    scripted.push(200, OK, {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0"} | RESET)
    async with scripted_client() as mail:
        await mail.mailboxes.get(1)
        assert mail.stats.window_wait == 0
        await mail.mailboxes.get(1)
        # A lower bound only: a wait never ends early, however slow the machine.
        assert mail.stats.window_wait >= 0.3
    assert len(scripted.hits) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1e9"},
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "-5"},
        {"X-RateLimit-Limit": "x", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
        {"X-RateLimit-Remaining": "0"},
    ],
)
async def test_garbage_window_headers_never_stall_the_client(
    scripted: ScriptedServer,
    scripted_client: Any,
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted.default = (200, OK, headers)
    with caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.ratelimit"):
        async with scripted_client() as mail:
            # A guard against a hang, far above what the ten calls take.
            await asyncio.wait_for(asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10))), 20)
            assert mail.stats.window is None
    assert len(scripted.hits) == 10
    assert "ignoring the gateway's window headers" in caplog.text


@pytest.mark.parametrize("retry_after", ["-3", "1e12", "soon", "nan"])
async def test_garbage_retry_after_falls_back_to_the_clients_own_wait(
    scripted: ScriptedServer, scripted_client: Any, retry_after: str
) -> None:
    refusal = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}
    scripted.push(429, refusal, {"Retry-After": retry_after})
    loop = asyncio.get_running_loop()
    async with scripted_client(retry=RetryPolicy(default_retry_after=0.2)) as mail:
        started = loop.time()
        box = await asyncio.wait_for(mail.mailboxes.get(1), 20)
        # The client's own 0.2 s applied: not 0 (a negative value), not an error (a huge one).
        assert loop.time() - started >= 0.2
    assert box.id == 1
    assert len(scripted.hits) == 2


# ------------------------------------------------------------------ one state per key
async def test_clients_of_one_key_share_one_limiter_until_the_last_closes(
    mail_emulator: MailEmulator,
) -> None:
    url, key = mail_emulator.base_url, mail_emulator.api_key
    first = await MailClient(key, base_url=url).open()
    second = await MailClient(key, base_url=url).open()
    mail_emulator.add_key("vibe_api_other_key_0001")
    other = await MailClient("vibe_api_other_key_0001", base_url=url).open()
    shared = first._pipeline.limiter
    try:
        assert shared is second._pipeline.limiter
        assert first._pipeline.window is second._pipeline.window
        assert other._pipeline.limiter is not first._pipeline.limiter
        name = first._pipeline._scopes.portal
        assert REGISTRY.users(name) == 2
        await first.close()
        assert REGISTRY.users(name) == 1
        await second.mailboxes.get(1)  # still works on the shared state
    finally:
        await first.close()
        await second.close()
        await other.close()
    assert REGISTRY.users(name) == 0
    async with MailClient(key, base_url=url) as again:
        assert REGISTRY.users(name) == 1
        assert again._pipeline.limiter is not shared  # freed, then made anew


async def test_the_first_clients_rate_limit_wins_and_the_other_is_warned(
    mail_emulator: MailEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    url, key = mail_emulator.base_url, mail_emulator.api_key
    async with MailClient(key, base_url=url, rate_limit=RateLimit(per_second=7, burst=7)) as a:
        with caplog.at_level(logging.WARNING, logger="bitrix_mail_async.ratelimit"):
            async with MailClient(key, base_url=url, rate_limit=RateLimit(per_second=7, burst=7)):
                assert not caplog.records  # the same configuration: nothing to say
            async with MailClient(key, base_url=url, rate_limit=None) as b:
                assert b.stats.current_rate == a.stats.current_rate == 7
        assert "share one limiter" in caplog.text
        assert key not in caplog.text


def test_four_clients_of_one_key_stay_within_the_keys_limit() -> None:
    # A bot that makes a client per handler: four clients, each configured with the key's
    # full rate. With a bucket each they would spend four times the limit. Emulator and
    # clients run on one virtual clock, so the count does not depend on the machine's speed.
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        async with MailEmulator(clock=loop.time) as emulator:
            emulator.set_rate_limit(per_second=50, burst=10)
            url, key = emulator.base_url, emulator.api_key

            async def handler(n: int) -> int:
                async with MailClient(key, base_url=url, rate_limit=RateLimit(50, 10)) as mail:
                    boxes = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(50)))
                    return len(boxes)

            assert await asyncio.gather(*(handler(n) for n in range(4))) == [50] * 4
            return emulator.stats.rate_limited

    assert in_virtual_time(scenario) <= 4  # at most 2 % of the 200 calls


async def test_a_closed_clients_call_cannot_claim_the_key_again(
    mail_emulator: MailEmulator,
) -> None:
    mail = MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url)
    await mail.open()
    name = mail._pipeline._scopes.portal
    await mail.close()
    with pytest.raises(errors.ConfigurationError):
        await mail.mailboxes.get(1)
    assert REGISTRY.users(name) == 0
