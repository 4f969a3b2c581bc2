"""messages.get_many over loopback: input order, a bounded window, typed errors in place."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from bitrix_mail_async import MailClient, Message, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

SEEDED = list(range(1001, 1061))  # the 60 messages of the default emulator
HANG_GUARD = 30.0


def client(emu: MailEmulator | str, key: str = "", **options: Any) -> MailClient:
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(backoff_base=0.01, backoff_cap=0.05))
    if isinstance(emu, MailEmulator):
        return MailClient(emu.api_key, base_url=emu.base_url, **options)
    return MailClient(key, base_url=emu, **options)


async def settle() -> None:
    """Let finalizers and cancellations run; then only the test's own task may be left."""
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)


async def test_results_keep_input_order_under_random_latency(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    emu.faults.latency_jitter = 0.01
    ids = SEEDED * 4
    random.Random(3).shuffle(ids)
    async with client(emu, max_concurrency=8) as mail:
        async with asyncio.timeout(HANG_GUARD):
            got = [msg async for msg in mail.messages.get_many(ids)]
    assert [m.id for m in got] == ids
    assert all(isinstance(m, Message) and m.body for m in got)
    assert len(emu.requests) == len(ids)


def _counting_gateway(stats: dict[str, int]) -> web.Application:
    """A raw gateway answering GET /v1/mail/messages/{id} after a random pause."""
    rng = random.Random(5)

    async def get_message(request: web.Request) -> web.Response:
        stats["now"] += 1
        stats["max"] = max(stats["max"], stats["now"])
        try:
            await asyncio.sleep(rng.uniform(0.0, 0.01))
        finally:
            stats["now"] -= 1
        msg_id = int(request.match_info["id"])
        item = {"id": msg_id, "subject": f"s{msg_id}", "body": "b", "bindings": []}
        return web.json_response({"success": True, "data": {"item": item}})

    app = web.Application()
    app.router.add_get("/v1/mail/messages/{id}", get_message)
    return app


async def test_at_most_max_concurrency_in_flight() -> None:
    stats = {"now": 0, "max": 0}
    runner = web.AppRunner(_counting_gateway(stats))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        base = f"http://127.0.0.1:{port}/v1"
        async with client(base, "vibe_api_test", max_concurrency=5) as mail:
            got = [m.id async for m in mail.messages.get_many(range(1, 301))]
    finally:
        await runner.cleanup()
    assert got == list(range(1, 301))
    assert stats["max"] == 5  # the window was used, never exceeded


async def test_return_exceptions_yields_typed_errors_in_place(
    mail_emulator: MailEmulator,
) -> None:
    emu = mail_emulator
    denied = next(i for i in SEEDED if emu.state.messages[i]["mailboxId"] == 2)
    emu.state.denied_mailboxes.add(2)
    emu.faults.schedule("502", "502", "502", "502", paths="/mail/messages/1003")
    ids = [1001, 999_999, 1002, denied, 1003, 1004]
    async with client(emu) as mail:
        got = [r async for r in mail.messages.get_many(ids, return_exceptions=True)]
    kinds = [type(r) for r in got]
    assert kinds == [
        Message,
        errors.NotFoundError,
        Message,
        errors.PermissionDeniedError,
        errors.UpstreamUnavailableError,
        Message,
    ]
    assert [getattr(r, "id", None) for r in got] == [1001, None, 1002, None, None, 1004]
    assert isinstance(got[1], errors.APIError) and got[1].path == "/mail/messages/999999"


async def test_without_return_exceptions_the_first_failure_raises_in_place(
    mail_emulator: MailEmulator,
) -> None:
    got: list[int] = []

    async def drain(mail: MailClient) -> None:
        async for msg in mail.messages.get_many([1001, 1002, 999_999, 1003]):
            got.append(msg.id)

    async with client(mail_emulator) as mail:
        with pytest.raises(errors.NotFoundError):
            await drain(mail)
        await settle()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert mail._pipeline.concurrency.in_flight == 0
    assert got == [1001, 1002]


async def test_an_endless_async_source_is_read_only_as_room_frees(
    mail_emulator: MailEmulator,
) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal pulled
        for msg_id in itertools.cycle(SEEDED):
            pulled += 1
            await asyncio.sleep(0)
            yield msg_id

    got = 0
    async with client(mail_emulator, max_concurrency=4) as mail:
        async for _msg in mail.messages.get_many(endless()):
            got += 1
            assert pulled <= got + 2 * 4 + 1  # the window and one pull ahead, never more
            if got == 200:
                break
        await settle()
        assert asyncio.all_tasks() == {asyncio.current_task()}
    assert len(mail_emulator.requests) <= 200 + 2 * 4


async def test_an_endless_sync_source_is_read_lazily(mail_emulator: MailEmulator) -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for msg_id in itertools.cycle(SEEDED):
            pulled += 1
            yield msg_id

    async with client(mail_emulator, max_concurrency=3) as mail:
        stream = mail.messages.get_many(endless())
        async with contextlib.aclosing(stream):
            got = 0
            async for _msg in stream:
                got += 1
                if got == 100:
                    break
        assert asyncio.all_tasks() == {asyncio.current_task()}
    assert pulled <= 100 + 2 * 3


async def test_a_slow_async_source_does_not_hold_back_ready_results(
    mail_emulator: MailEmulator,
) -> None:
    release = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        yield 1001
        yield 1002
        await release.wait()  # e.g. ids arriving from a queue
        yield 1003

    async with client(mail_emulator) as mail:
        stream = mail.messages.get_many(source())
        async with asyncio.timeout(HANG_GUARD):
            assert (await anext(stream)).id == 1001
            assert (await anext(stream)).id == 1002
            release.set()
            assert [m.id async for m in stream] == [1003]


async def test_break_leaves_no_call_running(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    emu.faults.latency = 0.2
    async with client(emu, max_concurrency=6) as mail:
        async for _msg in mail.messages.get_many(SEEDED):
            break
        await settle()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert mail._pipeline.concurrency.in_flight == 0
        emu.faults.latency = 0.0
        assert (await mail.messages.get(1001)).id == 1001


async def test_cancelling_the_consumer_cancels_the_calls(mail_emulator: MailEmulator) -> None:
    emu = mail_emulator
    emu.faults.latency = 5.0
    async with client(emu, max_concurrency=4) as mail:

        async def consume() -> None:
            async for _msg in mail.messages.get_many(SEEDED):
                pass

        task = asyncio.create_task(consume())
        async with asyncio.timeout(HANG_GUARD):  # four calls wait for answers, the rest for room
            while True:
                if mail._pipeline.concurrency.in_flight == 4:
                    break
                await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert mail._pipeline.concurrency.in_flight == 0


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([1001, 0], r"ids\[1\]"),
        ((1001, "1002"), r"ids\[1\]"),
        ({1001, -5}, "ids"),
        (range(0, 10**9), r"ids\[min\]"),
        (range(10**6, 2**64, 10**17), r"ids\[max\]"),
        ([True], r"ids\[0\]"),
        ("1001", "iterable"),
        (b"12", "iterable"),
        ({1001: "a"}, "iterable"),
        (1001, "iterable"),
        (None, "iterable"),
    ],
)
async def test_bad_ids_are_refused_before_anything_is_sent(
    mail: MailClient, mail_emulator: MailEmulator, ids: Any, message: str
) -> None:
    for return_exceptions in (False, True):
        with pytest.raises(errors.InvalidArgumentError, match=message):
            mail.messages.get_many(ids, return_exceptions=return_exceptions)
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize("return_exceptions", [False, True])
async def test_a_lazy_source_fails_at_its_place(
    mail: MailClient, mail_emulator: MailEmulator, return_exceptions: bool
) -> None:
    def ids() -> Iterator[Any]:
        yield 1001
        yield 1002
        yield "bad"
        yield 1003

    async def failing() -> AsyncIterator[int]:
        yield 1001
        yield 1002
        raise RuntimeError("the source broke")

    async def drain(source: Any, got: list[Any]) -> None:
        async for msg in mail.messages.get_many(source, return_exceptions=return_exceptions):
            got.append(msg.id)  # type: ignore[union-attr]

    for source, error in ((ids(), errors.InvalidArgumentError), (failing(), RuntimeError)):
        got: list[int] = []
        with pytest.raises(error):
            await drain(source, got)
        assert got == [1001, 1002]
    assert all(r.path != "/mail/messages/1003" for r in mail_emulator.requests)


async def test_empty_sources_yield_nothing(mail: MailClient, mail_emulator: MailEmulator) -> None:
    async def nothing() -> AsyncIterator[int]:
        return
        yield  # pragma: no cover

    assert [m async for m in mail.messages.get_many([])] == []
    assert [m async for m in mail.messages.get_many(nothing())] == []
    assert len(mail_emulator.requests) == 0


async def test_works_with_tqdm_for_progress(mail: MailClient) -> None:
    from tqdm.asyncio import tqdm  # in the test extra: the README's progress example

    ids = SEEDED[:20]
    got = [m.id async for m in tqdm(mail.messages.get_many(ids), total=len(ids))]
    assert got == ids
