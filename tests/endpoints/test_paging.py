"""MessagePager over 1,000+ messages: every message once, lazily, whatever the meta says."""

from __future__ import annotations

import pytest

from bitrix_mail_async import MailClient, MessagePager, Page, RetryPolicy
from bitrix_mail_async.testing import MailEmulator


@pytest.fixture
def big(mail_emulator_factory) -> MailEmulator:  # type: ignore[no-untyped-def]
    emu: MailEmulator = mail_emulator_factory(messages=1800)
    assert emu.state.mailbox_count(1) > 1000
    return emu


def client(emu: MailEmulator) -> MailClient:
    return MailClient(
        emu.api_key, base_url=emu.base_url, rate_limit=None, retry=RetryPolicy(backoff_base=0.01)
    )


@pytest.mark.parametrize("page_size", [1, 50, 173, 200])
@pytest.mark.parametrize("meta", [True, False])
async def test_pager_yields_every_message_once(
    big: MailEmulator, page_size: int, meta: bool
) -> None:
    big.state.options.list_meta = meta
    expected = big.state.mailbox_count(1)
    if page_size == 1:
        expected = min(expected, 60)  # keep the one-per-page case short
    async with client(big) as mail:
        pager = mail.messages.list(1, page_size=page_size)
        assert isinstance(pager, MessagePager)
        ids = []
        async for msg in pager:
            ids.append(msg.id)
            if len(ids) == expected:
                break
    assert len(ids) == expected == len(set(ids))
    if page_size > 1:
        assert set(ids) == set(big.state.mailbox_message_ids(1))
    offsets = [int(r.query["offset"]) for r in big.requests]
    assert offsets == [i * page_size for i in range(len(offsets))]
    assert {r.query["limit"] for r in big.requests} == {str(page_size)}


async def test_pager_is_lazy(big: MailEmulator) -> None:
    async with client(big) as mail:
        pager = mail.messages.list(1, page_size=100)
        assert len(big.requests) == 0  # creating the pager sends nothing
        seen = 0
        async for _msg in pager:
            seen += 1
            if seen == 150:
                break
    assert len(big.requests) == 2


async def test_await_gives_first_page_and_pages_walks_all(big: MailEmulator) -> None:
    async with client(big) as mail:
        first = await mail.messages.list(1, page_size=200)
        assert isinstance(first, Page)
        assert len(first.items) == 200 and first.has_more
        assert first.total == big.state.mailbox_count(1)
        pages = [p async for p in mail.messages.list(1, page_size=200).pages()]
    assert sum(len(p.items) for p in pages) == big.state.mailbox_count(1)
    assert [p.has_more for p in pages] == [True] * (len(pages) - 1) + [False]
    assert [p.offset for p in pages] == [i * 200 for i in range(len(pages))]


async def test_filters_survive_every_page(big: MailEmulator) -> None:
    async with client(big) as mail:
        unseen = [m async for m in mail.messages.list(1, is_seen=False, page_size=40)]
    assert unseen and all(m.is_seen is False for m in unseen)
    queries = [r.query for r in big.requests]
    assert len(queries) >= 2
    assert all(q["isSeen"] == "false" and q["mailboxId"] == "1" for q in queries)
    expected = sum(
        1 for i in big.state.mailbox_message_ids(1) if not big.state.messages[i]["isSeen"]
    )
    assert len(unseen) == expected


async def test_exact_multiple_of_page_size_without_meta(mail_emulator: MailEmulator) -> None:
    mail_emulator.state.options.list_meta = False
    total = mail_emulator.state.mailbox_count(2)
    async with client(mail_emulator) as mail:
        ids = [m.id async for m in mail.messages.list(2, page_size=total)]
    assert len(ids) == total
    # A full last page forces one more (empty) request, then paging stops.
    assert len(mail_emulator.requests) == 2
