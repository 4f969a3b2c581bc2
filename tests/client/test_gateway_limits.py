"""The client against the emulator's gateway limits: circuit breaker and portal queue."""

from __future__ import annotations

import asyncio

import pytest

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy, TaskCreated, errors
from bitrix_mail_async.testing import EmulatorStats, MailEmulator

from .virtual_time import in_virtual_time


async def test_error_loop_detected_raises_at_once_and_blocks_nothing_else(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.set_circuit_breaker(threshold=3, period=60, retry_after=30, probe_every=50)
    async with MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url) as mail:
        for _ in range(3):  # the same failing request, three times: the breaker trips
            with pytest.raises(errors.NotFoundError):
                await mail.messages.get(999_999)
        with pytest.raises(errors.ErrorLoopDetectedError) as caught:
            await mail.messages.get(999_999)
        assert caught.value.retry_after == 30
        assert caught.value.code == "ERROR_LOOP_DETECTED"
        # No shared cooldown, no lower rate: healthy calls go straight through.
        assert await mail._pipeline.limiter.cooldown_remaining() == 0
        rate_before = mail.stats.current_rate
        boxes = await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(40)))
        assert len(boxes) == 40
        assert mail.stats.current_rate == rate_before
        assert mail.stats.retries == 0
    blocked = [r for r in mail_emulator.requests if r.status == 429]
    assert len(blocked) == 1  # raised at once, never repeated


async def test_queue_timeouts_are_retried_never_raised_never_duplicated(
    mail_emulator: MailEmulator,
) -> None:
    # Two calls at once per portal, each holding its slot 20 ms, and a queue that gives up
    # after 0.3 s: 120 calls at once overflow it until the client lowers its concurrency.
    mail_emulator.set_queue(concurrency=2, timeout=0.3, service_time=0.02, retry_after=0.05)
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        max_concurrency=64,
        retry=RetryPolicy(rate_limit_attempts=100),
    ) as mail:
        results = await asyncio.gather(
            *(mail.messages.create_task(1001, title=f"t{n}") for n in range(120)),
            return_exceptions=True,
        )
        limit_after = mail._pipeline.concurrency.limit
    assert all(isinstance(r, TaskCreated) for r in results), [
        r for r in results if not isinstance(r, TaskCreated)
    ]
    timeouts = [r for r in mail_emulator.requests if r.status == 504]
    assert timeouts, "the scenario must overflow the queue at least once"
    assert all(not r.applied for r in timeouts)
    titles = [t["title"] for t in mail_emulator.state.tasks]
    assert sorted(titles) == sorted(f"t{n}" for n in range(120))  # each exactly once
    assert limit_after < 64


async def test_a_queue_timeout_past_its_budget_is_a_queue_timeout_error(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.set_queue(concurrency=1, timeout=0.05, service_time=0.5, retry_after=0.01)
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        retry=RetryPolicy(rate_limit_attempts=1),
    ) as mail:
        slow = asyncio.create_task(mail.messages.create_chat(1001))
        await asyncio.sleep(0.02)
        with pytest.raises(errors.QueueTimeoutError) as caught:
            await mail.messages.create_task(1001)
        assert not isinstance(caught.value, errors.OutcomeUnknownError)
        await slow
    assert not mail_emulator.state.tasks


def test_every_limit_on_four_clients_of_one_key_lose_nothing_send_nothing_twice() -> None:
    # The documented figures, 20 times faster; the client's default limits scaled alike.
    # Emulator and clients share one virtual clock: the counts do not depend on the machine.
    scale = 0.05
    sender = "Sales <sales@example.com>"

    async def scenario() -> tuple[list[object], list[str], EmulatorStats]:
        loop = asyncio.get_running_loop()
        async with MailEmulator(clock=loop.time) as emulator:
            emulator.enable_gateway_limits(time_scale=scale)
            # A queue that overflows at the start: the first burst waits past its timeout.
            emulator.set_queue(concurrency=2, timeout=0.25, service_time=0.03, retry_after=0.05)
            url, key = emulator.base_url, emulator.api_key

            async def handler(n: int) -> list[object]:
                limit = RateLimit(2 / scale, 50, peak_per_second=10 / scale)
                async with MailClient(key, base_url=url, rate_limit=limit) as mail:
                    gets = [mail.messages.get(1001) for _ in range(40)]
                    sends = [
                        mail.messages.send(from_=sender, to="a@x.io", subject=f"s{n}-{i}", body="b")
                        for i in range(8)
                    ]
                    return await asyncio.gather(*gets, *sends, return_exceptions=True)

            batches = await asyncio.gather(*map(handler, range(4)))
            subjects = [m["request"]["subject"] for m in emulator.state.sent]
            return [r for batch in batches for r in batch], subjects, emulator.stats

    results, subjects, stats = in_virtual_time(scenario)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sorted(subjects) == sorted(f"s{n}-{i}" for n in range(4) for i in range(8))  # once
    assert stats.rate_limited <= 4, stats  # at most 2 % of the 192 calls
    assert stats.queue_timeouts > 0, "the scenario must overflow the portal queue"
