"""Cancelling calls or closing the client frees every slot and leaves nothing dangling."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
from client.virtual_time import with_virtual_emulator

from bitrix_mail_async import Mailbox, MailClient, RateLimit, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator


async def _cancel_all(tasks: list[asyncio.Task[object]]) -> int:
    """Cancel the tasks; return how many had already finished (the rest must be cancelled)."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert all(isinstance(r, asyncio.CancelledError | Mailbox) for r in results), results
    return len(results) - cancelled


def test_cancel_mid_request_frees_semaphore() -> None:
    async def scenario(mail_emulator: MailEmulator) -> None:
        loop = asyncio.get_running_loop()
        mail_emulator.faults.latency = 0.5
        async with MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=None,
            max_concurrency=4,
        ) as mail:
            tasks = [asyncio.create_task(mail.mailboxes.get(1)) for _ in range(12)]
            await asyncio.sleep(0.15)  # four are on the wire, eight wait for a slot
            await _cancel_all(tasks)  # type: ignore[arg-type]
            mail_emulator.faults.latency = 0.0
            started = loop.time()
            boxes = await asyncio.wait_for(
                asyncio.gather(*(mail.mailboxes.get(2) for _ in range(40))), 5
            )
            assert loop.time() - started < 1.0
            assert [b.id for b in boxes] == [2] * 40
            assert mail._pipeline.concurrency.in_flight == 0
            assert not mail._pipeline.transport._waiting

    with_virtual_emulator(scenario)


def test_cancel_mid_backoff_frees_everything() -> None:
    async def scenario(mail_emulator: MailEmulator) -> None:
        loop = asyncio.get_running_loop()
        mail_emulator.faults.schedule("502", "502", methods=["GET"])
        async with MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=None,
            max_concurrency=2,
            retry=RetryPolicy(backoff_base=5.0, jitter=False),
        ) as mail:
            tasks = [asyncio.create_task(mail.mailboxes.get(1)) for _ in range(2)]
            await asyncio.sleep(0.3)  # both failed once and sleep a 5 s backoff
            assert mail.stats.retries == 2
            await _cancel_all(tasks)  # type: ignore[arg-type]
            started = loop.time()
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
            assert loop.time() - started < 1.0
            assert mail._pipeline.concurrency.in_flight == 0

    with_virtual_emulator(scenario)


def test_cancel_while_queued_in_bucket_keeps_the_rate() -> None:
    async def scenario(mail_emulator: MailEmulator) -> None:
        loop = asyncio.get_running_loop()
        async with MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=RateLimit(per_second=20, burst=2, adaptive=False),
        ) as mail:
            tasks = [asyncio.create_task(mail.mailboxes.get(1)) for _ in range(30)]
            await asyncio.sleep(0.2)
            finished = await _cancel_all(tasks)  # type: ignore[arg-type]
            sent_before = len(mail_emulator.requests)
            assert finished <= sent_before < 10  # the rest were still queued for the bucket
            started = loop.time()
            await asyncio.gather(*(mail.mailboxes.get(1) for _ in range(10)))
            elapsed = loop.time() - started
        # Ten calls at 20/s: about half a second, not slowed by the cancelled waiters.
        assert 0.3 < elapsed < 0.9
        assert len(mail_emulator.requests) == sent_before + 10

    with_virtual_emulator(scenario)


def test_close_fails_in_flight_and_waiting_calls_cleanly() -> None:
    async def scenario(mail_emulator: MailEmulator) -> None:
        loop = asyncio.get_running_loop()
        mail_emulator.faults.latency = 0.5
        mail = MailClient(
            mail_emulator.api_key,
            base_url=mail_emulator.base_url,
            rate_limit=RateLimit(per_second=5, burst=3, adaptive=False),
            max_concurrency=10,
        )
        await mail.open()
        gets = [asyncio.create_task(mail.mailboxes.get(1)) for _ in range(8)]
        send = asyncio.create_task(
            mail.messages.send(from_="a@x.io", to="b@x.io", subject="closing", body="b")
        )
        await asyncio.sleep(0.2)
        started = loop.time()
        await mail.close()
        results = await asyncio.wait_for(asyncio.gather(*gets, send, return_exceptions=True), 3)
        assert loop.time() - started < 1.0
        assert all(isinstance(r, errors.MailError) for r in results), results
        # Calls on the wire fail as transport errors; calls still waiting say the client closed.
        kinds = {type(r) for r in results}
        assert errors.ConfigurationError in kinds
        assert errors.TransportError in kinds
        assert all("closed" in str(r) for r in results), results
        assert kinds <= {
            errors.ConfigurationError,
            errors.TransportError,
            errors.OutcomeUnknownError,
        }

    with_virtual_emulator(scenario)


async def test_no_unclosed_session_warnings(mail_emulator: MailEmulator) -> None:
    gc.collect()  # leftovers of earlier tests must not be blamed on this one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url) as mail:
            task = asyncio.create_task(mail.mailboxes.get(1))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await mail.mailboxes.get(1)
        del mail
        await asyncio.sleep(0.05)
        gc.collect()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "Unclosed" in m or "unclosed" in m], messages
