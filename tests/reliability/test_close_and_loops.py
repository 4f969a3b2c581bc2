"""close() ends every call in progress at once; a client belongs to one event loop.

The gateway stand-in here is a raw asyncio server that answers the first request (so the
client learns that no ``X-RateLimit-*`` headers come and lets every call start) and then
reads requests without ever answering: only close() can end those calls, since the client's
timeout (60 s) is far beyond the hang guard of each test.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

import aiohttp
import pytest

from bitrix_mail_async import Mailbox, MailClient, errors
from bitrix_mail_async.testing import MailEmulator

GUARD = 10.0  # a hang guard only: every call must end long before, or the test fails
MAILBOX = b'{"success": true, "data": {"item": {"id": 1, "name": "Sales", "email": "s@x.io"}}}'


class SilentGateway:
    """Answers its first request, then reads every later one and never answers."""

    def __init__(self) -> None:
        self.received = 0
        self.open_connections = 0
        self.changed = asyncio.Event()
        self.base_url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.received += 1
                self.changed.set()
                if self.received == 1:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(MAILBOX), MAILBOX)
                    )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away: what close() should make every connection do
        finally:
            self.open_connections -= 1
            self.changed.set()
            writer.close()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (hang-guarded) until ``condition()`` holds."""

        async def watch() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(watch(), GUARD)


@pytest.fixture
async def silent() -> AsyncIterator[SilentGateway]:
    """A SilentGateway on a free loopback port."""
    gateway = SilentGateway()
    server = await asyncio.start_server(gateway.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway.base_url = f"http://127.0.0.1:{port}/v1"
    yield gateway
    server.close()
    await server.wait_closed()


def _client(base_url: str, **kwargs: Any) -> MailClient:
    kwargs.setdefault("rate_limit", None)
    return MailClient("vibe_api_close_test_key", base_url=base_url, timeout=60.0, **kwargs)


async def test_close_ends_every_call_on_the_wire(silent: SilentGateway) -> None:
    mail = await _client(silent.base_url).open()
    assert (await mail.mailboxes.get(1)).id == 1
    gets = [asyncio.create_task(mail.mailboxes.get(1)) for _ in range(24)]
    send = asyncio.create_task(
        mail.messages.send(from_="a@x.io", to="b@x.io", subject="closing", body="b")
    )
    await silent.until(lambda: silent.received == 26)  # all 25 calls are on the wire
    await mail.close()
    results = await asyncio.wait_for(asyncio.gather(*gets, send, return_exceptions=True), GUARD)
    for get in results[:-1]:
        # A plain transport error, not the client's own 60 s timeout.
        assert type(get) is errors.TransportError, get
        assert "closed during the call" in str(get)
    # The send may have been applied: never a plain (retryable-looking) transport error.
    assert type(results[-1]) is errors.OutcomeUnknownError, results[-1]
    assert results[-1].request is not None and results[-1].request["path"] == "/mail/messages"
    assert mail.stats.outcome_unknown == 1
    await silent.until(lambda: silent.open_connections == 0)  # no connection left behind
    assert silent.received == 26  # nothing was retried


async def test_close_ends_calls_on_the_wire_and_waiting_for_a_slot(silent: SilentGateway) -> None:
    mail = await _client(silent.base_url, max_concurrency=4).open()
    await mail.mailboxes.get(1)
    tasks = [asyncio.create_task(mail.mailboxes.get(1)) for _ in range(12)]
    await silent.until(lambda: silent.received == 5)  # four on the wire, eight wait
    await mail.close()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), GUARD)
    kinds = [type(r) for r in results]
    assert kinds.count(errors.TransportError) == 4, results
    assert kinds.count(errors.ConfigurationError) == 8, results
    assert silent.received == 5  # the waiting calls were not sent after close()


async def test_a_cancel_of_the_callers_own_still_wins_over_close(silent: SilentGateway) -> None:
    mail = await _client(silent.base_url).open()
    await mail.mailboxes.get(1)
    task = asyncio.create_task(mail.mailboxes.get(1))
    await silent.until(lambda: silent.received == 2)
    task.cancel()
    await mail.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD)


async def test_caller_owned_session_calls_end_too(silent: SilentGateway) -> None:
    async with aiohttp.ClientSession() as session:
        mail = await _client(silent.base_url, session=session).open()
        await mail.mailboxes.get(1)
        task = asyncio.create_task(mail.mailboxes.get(1))
        await silent.until(lambda: silent.received == 2)
        await mail.close()
        with pytest.raises(errors.TransportError, match="closed during the call"):
            await asyncio.wait_for(task, GUARD)
        assert not session.closed


def _run_in_thread(work: Callable[[], Any]) -> Future[Any]:
    """Run ``work()`` in a new thread; its result (or exception) comes back in a Future."""
    result: Future[Any] = Future()

    def target() -> None:
        try:
            result.set_result(work())
        except BaseException as exc:  # handed over to the test thread
            result.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return result


def test_two_threads_loops_at_once_never_hang(mail_emulator: MailEmulator) -> None:
    client = MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=None, timeout=2.0
    )
    started, finished = threading.Barrier(2), threading.Barrier(2)

    async def work() -> tuple[BaseException | None, list[object], BaseException | None]:
        await asyncio.to_thread(started.wait)
        try:
            await client.open()
            opened: BaseException | None = None
        except errors.ConfigurationError as exc:
            opened = exc
        calls = [client.mailboxes.get(1) for _ in range(10)]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), GUARD)
        closed: BaseException | None = None
        if opened is not None:
            try:
                await client.close()  # not from here: the owner's loop is still running
            except errors.ConfigurationError as exc:
                closed = exc
        await asyncio.to_thread(finished.wait)  # the owner closes only after both are done
        if opened is None:
            await client.close()
        return opened, results, closed

    futures = [_run_in_thread(lambda: asyncio.run(work())) for _ in range(2)]
    outcomes = [f.result(timeout=3 * GUARD) for f in futures]
    owners = [o for o in outcomes if o[0] is None]
    others = [o for o in outcomes if o[0] is not None]
    assert len(owners) == 1 and len(others) == 1, outcomes
    _, owned_results, owner_closed = owners[0]
    assert all(isinstance(r, Mailbox) for r in owned_results), owned_results
    assert owner_closed is None and client.closed
    refused_open, refused_results, refused_close = others[0]
    for exc in (refused_open, *refused_results, refused_close):
        assert isinstance(exc, errors.ConfigurationError), exc
        assert "one client per event loop" in str(exc)


def test_calls_from_a_second_loop_while_the_first_runs(mail_emulator: MailEmulator) -> None:
    home = asyncio.new_event_loop()
    runner = threading.Thread(target=home.run_forever, daemon=True)
    runner.start()
    client = MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=None)

    def at_home(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, home).result(timeout=GUARD)

    try:
        at_home(client.open())

        async def at_home_ten() -> list[Mailbox]:
            return await asyncio.gather(*(client.mailboxes.get(1) for _ in range(10)))

        home_calls = asyncio.run_coroutine_threadsafe(at_home_ten(), home)

        async def elsewhere() -> list[object]:
            calls = [client.mailboxes.get(2) for _ in range(10)]
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), GUARD)

        foreign = asyncio.run(elsewhere())
        assert [b.id for b in home_calls.result(timeout=GUARD)] == [1] * 10
        assert all(isinstance(r, errors.ConfigurationError) for r in foreign), foreign
        assert all("one client per event loop" in str(r) for r in foreign)
        with pytest.raises(errors.ConfigurationError, match="one client per event loop"):
            asyncio.run(client.close())  # its loop is alive: close it there
        assert not client.closed
        assert (at_home(client.mailboxes.get(3))).id == 3  # still fine at home
        at_home(client.close())
        assert client.closed
    finally:
        home.call_soon_threadsafe(home.stop)
        runner.join(GUARD)
        home.close()


def test_asyncio_run_twice_on_one_client(mail_emulator: MailEmulator) -> None:
    client = MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=None)

    async def first() -> int:
        await client.open()
        return (await client.mailboxes.get(1)).id

    async def second() -> None:
        with pytest.raises(errors.ConfigurationError, match="one client per event loop"):
            await asyncio.wait_for(client.mailboxes.get(1), GUARD)
        with pytest.raises(errors.ConfigurationError, match="that loop has ended"):
            await client.open()
        # The first loop is gone, and with it the session and every call: close() only
        # marks the client closed.
        await asyncio.wait_for(client.close(), GUARD)

    assert asyncio.run(first()) == 1
    with warnings.catch_warnings():
        # The first run ended with the client open: aiohttp may report that session.
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(second())
        gc.collect()
    assert client.closed
    assert "closed" in repr(client)
