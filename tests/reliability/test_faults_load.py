"""Thousands of calls through faults: nothing hangs, nothing is lost, nothing is sent twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client.virtual_time import with_virtual_emulator

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

S = "Sales Team <sales@emulator.bitrix24.test>"


def faulty(emu: MailEmulator) -> None:
    """20 % 502/503/504, 5 % dropped connections (before or after the action)."""
    emu.faults.error_rate = 0.20
    emu.faults.drop_before_rate = 0.025
    emu.faults.drop_after_rate = 0.025
    emu.faults.fault_retry_after = 0.01
    emu.set_rate_limit(800, burst=40, retry_after=0.05)


async def _get_all(mail: MailClient, emu: MailEmulator, n: int) -> list[Any]:
    ids = sorted(emu.state.messages)[:50]

    async def one(i: int) -> Any:
        if i % 2:
            msg = await mail.messages.get(ids[i % len(ids)])
            assert msg.id == ids[i % len(ids)]
            assert msg.subject == emu.state.messages[msg.id]["subject"]
            return msg
        box = await mail.mailboxes.get(1 + i % 3)
        assert box.id == 1 + i % 3
        return box

    return await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True), 60
    )


async def test_2000_gets_all_succeed_with_a_large_retry_budget(
    mail_emulator: MailEmulator,
) -> None:
    faulty(mail_emulator)
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=RateLimit(per_second=800, burst=40),
        max_concurrency=100,
        retry=RetryPolicy(max_attempts=30, backoff_base=0.005, backoff_cap=0.05),
    ) as mail:
        results = await _get_all(mail, mail_emulator, 2000)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert mail_emulator.stats.faults > 300  # the faults really happened


async def test_small_retry_budget_gives_data_or_typed_errors(mail_emulator: MailEmulator) -> None:
    faulty(mail_emulator)
    mail_emulator.faults.error_rate = 0.5
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=RateLimit(per_second=800, burst=40),
        max_concurrency=100,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.005, backoff_cap=0.02),
    ) as mail:
        results = await _get_all(mail, mail_emulator, 1000)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures, "with half the answers failing and two attempts, some calls must fail"
    assert len(failures) < len(results)
    # Only the typed errors of the retry rules: no AssertionError (wrong data), no bare errors.
    assert {type(f) for f in failures} <= {
        errors.UpstreamUnavailableError,
        errors.TransportError,
    }, {type(f) for f in failures}


async def test_side_effects_never_duplicate(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    emu.faults.error_rate = 0.15
    emu.faults.drop_before_rate = 0.05
    emu.faults.drop_after_rate = 0.10  # the action is applied, the answer is lost
    emu.faults.fault_retry_after = 0.01
    emu.set_rate_limit(400, burst=20, retry_after=0.05)  # 429s too: those must be retried
    outcomes: dict[str, str] = {}

    async def one(mail: MailClient, i: int) -> None:
        tag = f"unique-{i:04d}"
        try:
            match i % 4:
                case 0:
                    await mail.messages.send(from_=S, to="a@x.io", subject=tag, body="b")
                case 1:
                    await mail.messages.reply(1001, from_=S, to="a@x.io", subject=tag, body="b")
                case 2:
                    await mail.messages.forward(1002, from_=S, to="a@x.io", subject=tag, body="b")
                case _:
                    await mail.messages.create_task(1003, title=tag)
        except errors.OutcomeUnknownError as exc:
            sent = exc.request["json"]
            assert tag in (sent.get("subject"), sent.get("title"))
            outcomes[tag] = "unknown"
        else:
            outcomes[tag] = "ok"

    async with MailClient(
        emu.api_key,
        base_url=emu.base_url,
        rate_limit=RateLimit(per_second=800, burst=40),
        max_concurrency=50,
        retry=RetryPolicy(backoff_base=0.005, backoff_cap=0.02),
    ) as mail:
        await asyncio.wait_for(asyncio.gather(*(one(mail, i) for i in range(200))), 60)

    applied: dict[str, int] = {}
    for effect in emu.state.side_effects():
        request = effect["request"]
        tag = request.get("subject") or request.get("title")
        applied[tag] = applied.get(tag, 0) + 1
    assert max(applied.values()) == 1, "a side effect was applied twice"
    ok = [t for t, o in outcomes.items() if o == "ok"]
    unknown = [t for t, o in outcomes.items() if o == "unknown"]
    assert len(ok) + len(unknown) == 200
    assert all(applied.get(t) == 1 for t in ok), "a call reported as sent is missing"
    assert unknown, "with 30 % faults some outcomes must be unknown"
    # Unknown outcomes really are unknown: some landed (drop_after), some did not.
    landed = sum(1 for t in unknown if t in applied)
    assert 0 < landed < len(unknown)
    assert emu.stats.rate_limited > 0


@pytest.mark.parametrize("client_factor", [1, 2])
def test_429_storm_finishes_near_the_ideal_time(client_factor: int) -> None:
    async def scenario(mail_emulator: MailEmulator) -> None:
        loop = asyncio.get_running_loop()
        # The storm is 1,000 tasks at 10/s (100 s), here at 100/s on a virtual clock
        # shared with the emulator; benchmarks/storm.py runs the full-size one in real time.
        rate, burst, tasks = 100, 10, 1000
        mail_emulator.set_rate_limit(rate, burst=burst, retry_after=0.1)
        async with MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=RateLimit(per_second=rate * client_factor, burst=burst * client_factor),
            max_concurrency=200,
        ) as mail:
            started = loop.time()
            await asyncio.wait_for(
                asyncio.gather(*(mail.mailboxes.get(1) for _ in range(tasks))), 60
            )
            elapsed = loop.time() - started
        ideal = tasks / rate
        rate_limited = mail_emulator.stats.rate_limited
        print(f"storm x{client_factor}: {elapsed:.2f}s vs ideal {ideal:.1f}s, 429s: {rate_limited}")
        assert elapsed <= ideal * 1.15
        assert rate_limited <= 0.05 * tasks

    with_virtual_emulator(scenario)
