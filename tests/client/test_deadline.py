"""Deadlines (issue 23 item 5): ``deadline=`` bounds a whole call, waits and attempts included.

Everything runs with the emulator on one virtual clock, so the bounds are exact and no test
waits for real time.
"""

from __future__ import annotations

import asyncio

import pytest

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

from .virtual_time import with_virtual_emulator

SENDER = "Sales <sales@example.com>"


def client(emulator: MailEmulator, **kwargs: object) -> MailClient:
    kwargs.setdefault("rate_limit", None)
    return MailClient(emulator.api_key, base_url=emulator.base_url, **kwargs)  # type: ignore[arg-type]


def test_a_retry_after_past_the_deadline_fails_at_once() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[float, errors.MailError]:
        loop = asyncio.get_running_loop()
        emulator.faults.fault_retry_after = 5.0
        emulator.faults.schedule("429")
        async with client(emulator, deadline=2.0) as mail:
            start = loop.time()
            with pytest.raises(errors.DeadlineExceededError) as caught:
                await mail.messages.get(1001)
            assert mail.stats.errors == 1
            return loop.time() - start, caught.value

    elapsed, err = with_virtual_emulator(scenario)
    assert elapsed < 0.5  # it did not sit out the 5 s first
    assert isinstance(err, TimeoutError)
    assert err.deadline == 2.0
    assert "RATE_LIMITED" in str(err) or "429" in str(err) or "rate" in str(err).lower()


def test_a_send_refused_past_its_deadline_is_not_outcome_unknown() -> None:
    async def scenario(emulator: MailEmulator) -> int:
        emulator.faults.fault_retry_after = 5.0
        emulator.faults.schedule("429")
        async with client(emulator, deadline=2.0) as mail:
            with pytest.raises(errors.DeadlineExceededError) as caught:
                await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
            assert not isinstance(caught.value, errors.OutcomeUnknownError)
            assert mail.stats.outcome_unknown == 0
        return len(emulator.state.side_effects())

    assert with_virtual_emulator(scenario) == 0


def test_calls_waiting_for_the_limiter_end_at_their_deadline() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[list[object], list[float]]:
        loop = asyncio.get_running_loop()
        ends: list[float] = []
        async with client(
            emulator, rate_limit=RateLimit(per_second=1, burst=1), deadline=2.5
        ) as mail:
            start = loop.time()

            async def one() -> object:
                try:
                    return await mail.messages.get(1001)
                finally:
                    ends.append(loop.time() - start)

            results = await asyncio.gather(*(one() for _ in range(10)), return_exceptions=True)
        return results, ends

    results, ends = with_virtual_emulator(scenario)
    done = [r for r in results if not isinstance(r, BaseException)]
    late = [r for r in results if isinstance(r, BaseException)]
    assert 2 <= len(done) <= 4  # 1/s with a burst of 1 within 2.5 s
    assert late and all(isinstance(r, errors.DeadlineExceededError) for r in late)
    assert max(ends) <= 2.5 + 1e-6


def test_a_get_on_the_wire_at_its_deadline_is_deadline_exceeded() -> None:
    async def scenario(emulator: MailEmulator) -> float:
        loop = asyncio.get_running_loop()
        emulator.faults.schedule("slow:10")
        async with client(emulator, deadline=1.5, timeout=30) as mail:
            start = loop.time()
            with pytest.raises(errors.DeadlineExceededError):
                await mail.messages.get(1001)
            return loop.time() - start

    assert with_virtual_emulator(scenario) == pytest.approx(1.5, abs=0.01)


def test_a_send_on_the_wire_at_its_deadline_is_outcome_unknown_with_what_was_sent() -> None:
    async def scenario(emulator: MailEmulator) -> errors.OutcomeUnknownError:
        emulator.faults.schedule("slow:10")
        async with client(emulator, deadline=1.5) as mail:
            with pytest.raises(errors.OutcomeUnknownError) as caught:
                await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
            assert mail.stats.outcome_unknown == 1
            return caught.value

    err = with_virtual_emulator(scenario)
    assert isinstance(err, TimeoutError)
    assert err.request["json"]["subject"] == "s"


def test_a_backoff_past_the_deadline_fails_at_once_and_a_short_one_is_taken() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        emulator.faults.schedule("502", "502")
        retry = RetryPolicy(max_attempts=4, backoff_base=3.0, backoff_cap=3.0, jitter=False)
        async with client(emulator, deadline=2.0, retry=retry) as mail:
            start = loop.time()
            with pytest.raises(errors.DeadlineExceededError, match=r"wait before the next attempt"):
                await mail.messages.get(1001)
            elapsed = loop.time() - start
            fast = RetryPolicy(max_attempts=4, backoff_base=0.1, backoff_cap=0.1, jitter=False)
            await mail.with_options(retry=fast).messages.get(1001)  # one 502 left, then ok
            return elapsed, mail.stats.requests

    elapsed, requests = with_virtual_emulator(scenario)
    assert elapsed < 0.5
    assert requests == 3


def test_with_options_sets_a_deadline_and_bad_ones_are_refused() -> None:
    async def scenario(emulator: MailEmulator) -> None:
        emulator.faults.schedule("slow:10")
        async with client(emulator) as mail:
            with pytest.raises(errors.DeadlineExceededError):
                await mail.with_options(deadline=0.5).messages.get(1001)
            with pytest.raises(errors.ConfigurationError):
                mail.with_options(deadline=-1)
        for bad in (0, float("nan"), "2"):
            with pytest.raises(errors.ConfigurationError):
                client(emulator, deadline=bad)

    with_virtual_emulator(scenario)


def test_a_deadline_that_is_not_reached_changes_nothing() -> None:
    async def scenario(emulator: MailEmulator) -> str:
        async with client(emulator, deadline=30.0) as mail:
            message = await mail.messages.get(1001)
            return message.subject

    assert with_virtual_emulator(scenario)
