"""Paging against gateways that lie: every walk ends, bounded, and says so (issue 21 item 3).

The servers are raw asyncio servers on 127.0.0.1 writing HTTP by hand (keep-alive, so a long
walk stays cheap). Each one answers from a function of the query, so it can ignore
``offset``, claim ``hasMore: true`` forever, cap ``limit`` lower than asked, or invent new
items without end. A hang guard turns a walk that would never end into a failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from bitrix_mail_async import MailClient, RetryPolicy, errors, pagination

HANG_GUARD = 30.0
DATE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: (path, query) -> (data, meta) of a successful answer.
Answer = Callable[[str, dict[str, str]], tuple[Any, Any]]


class LyingGateway:
    """Answers every request with ``answer(path, query)``; counts the requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.queries: list[dict[str, str]] = []
        self.base_url = ""

    async def __aenter__(self) -> LyingGateway:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                _method, target, _ = head[0].split(" ", 2)
                fields = dict(line.lower().split(":", 1) for line in head[1:] if line)
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                url = urlsplit(target)
                query = dict(parse_qsl(url.query))
                if body:
                    query.update({k: str(v) for k, v in json.loads(body).items()})
                self.queries.append(query)
                data, meta = self.answer(url.path.removeprefix("/v1"), query)
                envelope: dict[str, Any] = {"success": True, "data": data}
                if meta is not None:
                    envelope["meta"] = meta
                raw = json.dumps(envelope).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(raw), raw)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def message(msg_id: int) -> dict[str, Any]:
    date = DATE + timedelta(seconds=msg_id)
    return {"id": msg_id, "mailboxId": 1, "subject": f"m{msg_id}", "date": date.isoformat()}


def mailbox(box_id: int) -> dict[str, Any]:
    return {"id": box_id, "name": f"Box {box_id}", "email": f"box{box_id}@example.com"}


def client(gateway: LyingGateway) -> MailClient:
    retry = RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_cap=0.01)
    key = "vibe_api_paging_key"
    return MailClient(key, base_url=gateway.base_url, rate_limit=None, retry=retry)


def ignores_offset(items: list[dict[str, Any]], *, has_more: bool | None = True) -> Answer:
    """The same items whatever the offset (sliced to ``limit``), claiming more."""

    def answer(_path: str, query: dict[str, str]) -> tuple[Any, Any]:
        page = items[: int(query["limit"])]
        return {"items": page}, None if has_more is None else {"hasMore": has_more}

    return answer


async def guarded(coro: Any) -> Any:
    try:
        async with asyncio.timeout(HANG_GUARD):
            return await coro
    except TimeoutError:
        pytest.fail("the walk did not end")


async def test_mailboxes_list_ends_when_offset_is_ignored_on_a_short_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boxes = [mailbox(i) for i in range(1, 4)]
    async with LyingGateway(ignores_offset(boxes)) as gateway, client(gateway) as mail:
        got = await guarded(mail.mailboxes.list())
    assert [b.id for b in got] == [1, 2, 3]  # nothing lost: the short page was all of it
    assert len(gateway.queries) == 2  # the repeat is seen at once
    assert "holds only items of the previous page" in caplog.text


async def test_mailboxes_list_raises_when_a_full_page_repeats() -> None:
    boxes = [mailbox(i) for i in range(1, 101)]  # always a full page of 100
    async with LyingGateway(ignores_offset(boxes)) as gateway, client(gateway) as mail:
        with pytest.raises(errors.DecodeError, match="ignores offset") as caught:
            await guarded(mail.mailboxes.list())
    assert len(gateway.queries) == 2
    assert caught.value.path == "/mail/mailboxes"
    assert "vibe_api_paging_key" not in str(caught.value)


@pytest.mark.parametrize("has_more", [True, None])
async def test_async_for_over_messages_never_repeats_an_item(has_more: bool | None) -> None:
    items = [message(i) for i in range(1, 26)]  # a full page at the default size (25)
    gateway = LyingGateway(ignores_offset(items, has_more=has_more))
    async with gateway, client(gateway) as mail:
        got: list[int] = []

        async def walk() -> None:
            async for msg in mail.messages.list(1):
                got.append(msg.id)

        with pytest.raises(errors.DecodeError, match="ignores offset"):
            await guarded(walk())
    assert got == list(range(1, 26))  # each once, then the typed error: more may exist
    assert len(gateway.queries) == 2


async def test_has_more_true_forever_ends_at_the_empty_page() -> None:
    items = [message(i) for i in range(1, 61)]

    def answer(_path: str, query: dict[str, str]) -> tuple[Any, Any]:
        offset, limit = int(query["offset"]), int(query["limit"])
        return {"items": items[offset : offset + limit]}, {"hasMore": True}

    async with LyingGateway(answer) as gateway, client(gateway) as mail:
        got = await guarded(mail.messages.list(1, page_size=25).collect())
    assert [m.id for m in got] == list(range(1, 61))
    assert [q["offset"] for q in gateway.queries] == ["0", "25", "50", "60"]


@pytest.mark.parametrize("meta", ["hasMore", "total"])
async def test_a_gateway_capping_limit_lower_than_asked_loses_nothing(meta: str) -> None:
    items = [message(i) for i in range(1, 131)]

    def answer(_path: str, query: dict[str, str]) -> tuple[Any, Any]:
        offset = int(query["offset"])
        page = items[offset : offset + min(int(query["limit"]), 50)]  # silently capped at 50
        more = offset + len(page) < len(items)
        return {"items": page}, {"hasMore": more} if meta == "hasMore" else {"total": len(items)}

    async with LyingGateway(answer) as gateway, client(gateway) as mail:
        got = await guarded(mail.messages.list(1, page_size=200).collect())
    assert [m.id for m in got] == list(range(1, 131))  # short pages, yet "more": read on
    assert [q["offset"] for q in gateway.queries] == ["0", "50", "100"]


async def test_endless_distinct_pages_end_at_the_documented_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pagination.MAX_PAGES == 10_000  # the documented bound (README, docstring)
    monkeypatch.setattr(pagination, "MAX_PAGES", 40)  # the same rule, reached sooner

    def answer(_path: str, query: dict[str, str]) -> tuple[Any, Any]:
        offset, limit = int(query["offset"]), int(query["limit"])
        return {"items": [message(offset + i + 1) for i in range(limit)]}, {"hasMore": True}

    async with LyingGateway(answer) as gateway, client(gateway) as mail:
        seen = 0

        async def walk() -> None:
            nonlocal seen
            async for _msg in mail.messages.list(1, page_size=200):
                seen += 1

        with pytest.raises(errors.DecodeError, match="read 40 pages"):
            await guarded(walk())
    assert seen == 40 * 200 and len(gateway.queries) == 40


async def test_a_long_walk_holds_one_page_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagination, "MAX_PAGES", 150)

    def answer(_path: str, query: dict[str, str]) -> tuple[Any, Any]:
        offset, limit = int(query["offset"]), int(query["limit"])
        return {"items": [message(offset + i + 1) for i in range(limit)]}, {"hasMore": True}

    async with LyingGateway(answer) as gateway, client(gateway) as mail:
        peaks: list[int] = []

        async def walk() -> None:
            pages = 0
            async for _page in mail.messages.list(1, page_size=200).pages():
                pages += 1
                if pages in (20, 140):
                    peaks.append(tracemalloc.get_traced_memory()[0])

        tracemalloc.start()
        try:
            with pytest.raises(errors.DecodeError):
                await guarded(walk())
        finally:
            tracemalloc.stop()
    assert len(gateway.queries) == 150
    assert peaks[1] - peaks[0] < 1024 * 1024  # 24,000 more items, no growth of note


async def test_pages_shifted_by_new_mail_give_each_item_once() -> None:
    items = [message(i) for i in range(1, 51)]
    calls = 0

    def answer(_path: str, query: dict[str, str]) -> tuple[Any, Any]:
        nonlocal calls
        calls += 1
        offset, limit = int(query["offset"]), int(query["limit"])
        # Newest first; two messages arrive between the first and the second page.
        shown = items[::-1] if calls == 1 else [message(52), message(51), *items[::-1]]
        page = shown[offset : offset + limit]
        return {"items": page}, {"hasMore": offset + len(page) < len(shown)}

    async with LyingGateway(answer) as gateway, client(gateway) as mail:
        got = [m.id async for m in mail.messages.list(1, page_size=20)]
    assert len(got) == len(set(got))  # the two items shifted into page 2 are not repeated
    assert set(range(1, 51)) <= set(got)
    assert len(gateway.queries) == 3


async def test_watch_yields_against_a_gateway_that_ignores_offset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = [message(i) for i in range(1, 4)]
    caplog.set_level(logging.WARNING)
    async with LyingGateway(ignores_offset(items)) as gateway, client(gateway) as mail:
        watcher = mail.messages.watch(1, poll_interval=0.01, since=DATE)
        got = [(await guarded(anext(watcher))).id for _ in range(3)]
        await watcher.aclose()
    assert got == [1, 2, 3]
    assert len(gateway.queries) == 2  # one poll: a page and its repeat


async def test_recipients_iterators_end_too() -> None:
    people = [{"id": i, "name": f"P{i}"} for i in range(1, 8)]
    async with LyingGateway(ignores_offset(people)) as gateway, client(gateway) as mail:
        got = await guarded(mail.recipients.iter_contacts().collect())
    assert [c.id for c in got] == list(range(1, 8))
    assert len(gateway.queries) == 2
