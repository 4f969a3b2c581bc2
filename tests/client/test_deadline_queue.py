"""Deadlines against a slow portal queue: a side effect waits on this side, never queued there.

The gateway runs two calls of a portal at once and queues the rest (contract 1a.3); a send
queued there is on the wire, so a deadline reaching it would leave its outcome unknown. Here
the emulator's queue holds every call 0.4 s, on one virtual clock with the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async._portal_queue import PortalQueue
from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.limits import LimitSettings, QueueSettings

from .virtual_time import in_virtual_time

SENDER = "Sales <sales@example.com>"
SERVICE = 0.4


async def with_queue(scenario: Any) -> Any:
    """``scenario(emulator)`` against an emulator whose portal queue holds each call 0.4 s."""
    loop = asyncio.get_running_loop()
    limits = LimitSettings(queue=QueueSettings(service_time=SERVICE))
    async with MailEmulator(clock=loop.time, limits=limits) as emulator:
        return await scenario(emulator)


def run(scenario: Any) -> Any:
    async def main() -> Any:
        return await with_queue(scenario)

    return in_virtual_time(main)


def client(emulator: MailEmulator, **kwargs: Any) -> MailClient:
    kwargs.setdefault("rate_limit", None)
    return MailClient(emulator.api_key, base_url=emulator.base_url, **kwargs)


async def sends(mail: MailClient, count: int) -> list[object]:
    def one(i: int) -> Coroutine[Any, Any, object]:
        return mail.messages.send(from_=SENDER, to="a@example.com", subject=f"s{i}", body="b")

    return await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)


def test_sends_past_what_the_queue_runs_by_the_deadline_end_clean_not_outcome_unknown() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[list[object], set[str], float]:
        loop = asyncio.get_running_loop()
        async with client(emulator, deadline=2.0) as mail:
            start = loop.time()
            results = await sends(mail, 20)
            elapsed = loop.time() - start
            assert mail.stats.outcome_unknown == 0
        applied = {e["request"]["subject"] for e in emulator.state.sent}
        return results, applied, elapsed

    results, applied, elapsed = run(scenario)
    done = {f"s{i}" for i, r in enumerate(results) if not isinstance(r, BaseException)}
    failed = [r for r in results if isinstance(r, BaseException)]
    assert all(type(r) is errors.DeadlineExceededError for r in failed), failed
    # Two at a time, 0.4 s each: 10 fit in 2 s; at least 8 of them are taken.
    assert 8 <= len(done) <= 10
    assert applied == done  # nothing applied that the caller was told failed, nor lost
    assert elapsed <= 2.0 + 1e-6


def test_sends_without_a_deadline_are_not_held_on_this_side() -> None:
    # Without a deadline nothing can cut a queued send: all go on the wire at once and the
    # gateway's queue runs them two by two.
    async def scenario(emulator: MailEmulator) -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        async with client(emulator) as mail:
            start = loop.time()
            results = await sends(mail, 12)
            elapsed = loop.time() - start
        assert not [r for r in results if isinstance(r, BaseException)]
        return len(emulator.state.sent), elapsed

    sent, elapsed = run(scenario)
    assert sent == 12
    assert elapsed == pytest.approx(6 * SERVICE, abs=0.05)


def test_a_send_with_less_time_left_than_calls_take_is_not_started() -> None:
    async def scenario(emulator: MailEmulator) -> tuple[object, int]:
        async with client(emulator, deadline=10.0) as mail:
            await sends(mail, 2)  # the portal's calls take 0.4 s: learned
            short = mail.with_options(deadline=0.3)
            with pytest.raises(errors.DeadlineExceededError) as caught:
                await short.messages.send(from_=SENDER, to="a@example.com", subject="x", body=".")
            requests = mail.stats.requests
            assert mail.stats.outcome_unknown == 0
            return caught.value, requests

    err, requests = run(scenario)
    assert requests == 2  # the short call never went on the wire
    assert not isinstance(err, errors.OutcomeUnknownError)


def test_gets_with_a_deadline_are_not_held_by_the_gate() -> None:
    async def scenario(emulator: MailEmulator) -> float:
        loop = asyncio.get_running_loop()
        async with client(emulator, deadline=5.0) as mail:
            start = loop.time()
            await asyncio.gather(*(mail.messages.get(1001) for _ in range(6)))
            return loop.time() - start

    # All six on the wire at once; the gateway's queue runs them two by two: 3 x 0.4 s.
    assert run(scenario) == pytest.approx(3 * SERVICE, abs=0.05)


def test_a_place_handed_to_a_cancelled_waiter_passes_on() -> None:
    async def scenario() -> list[str]:
        queue = PortalQueue(size=1)
        order: list[str] = []
        await queue.reserve()

        async def waiter(name: str) -> None:
            await queue.reserve()
            order.append(name)
            queue.leave()

        first = asyncio.ensure_future(waiter("first"))
        second = asyncio.ensure_future(waiter("second"))
        await asyncio.sleep(0)
        queue.leave(0.5)  # hands the place to "first"...
        first.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(first, second, return_exceptions=True)
        assert queue.in_flight == 0
        assert queue.typical == 0.5
        return order

    assert in_virtual_time(scenario) == ["second"]


def test_waiters_cancelled_in_any_order_leave_the_queue_usable() -> None:
    async def scenario() -> int:
        queue = PortalQueue(size=1)
        await queue.reserve()
        waiting = [asyncio.ensure_future(queue.reserve()) for _ in range(5)]
        await asyncio.sleep(0)
        for task in (waiting[3], waiting[0], waiting[4]):
            task.cancel()
        queue.leave()  # to waiting[1]...
        waiting[1].cancel()  # ...cancelled before it ran: the place passes to waiting[2]
        await asyncio.gather(*waiting, return_exceptions=True)
        assert waiting[2].done() and not waiting[2].cancelled()
        queue.leave()
        assert queue.in_flight == 0
        await asyncio.wait_for(queue.reserve(), 1.0)  # a newcomer gets the free place at once
        return queue.in_flight

    assert in_virtual_time(scenario) == 1
