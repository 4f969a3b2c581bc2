"""Hypothesis: the pager against random page sequences (its fetch seam, no HTTP needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bitrix_mail_async import MessageSummary, errors
from bitrix_mail_async._envelope import Call, Reply, decode_list
from bitrix_mail_async.pagination import Pager

CALL = Call("GET", "/mail/messages")
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
junk = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
good_item = st.builds(
    lambda i, s: {"id": i, "subject": s, "mailboxId": 1},
    st.integers(1, 10**9),
    st.text(max_size=10),
)
meta = st.none() | st.fixed_dictionaries(
    {},
    optional={"hasMore": st.booleans() | junk, "total": st.integers(-5, 500) | junk},
)


@st.composite
def page_sequences(draw: st.DrawFn) -> tuple[int, list[tuple[Any, Any]]]:
    size = draw(st.integers(1, 6))
    pages = draw(
        st.lists(
            st.tuples(
                st.lists(good_item, max_size=size + 1) | junk,
                meta,
                st.sampled_from(["list", "items"]),
            ),
            min_size=1,
            max_size=6,
        )
    )
    shaped = [({"items": items} if shape == "items" else items, m) for items, m, shape in pages]
    return size, shaped


def expected_ids(size: int, pages: list[tuple[Any, Any]]) -> list[int] | None:
    """The documented stop rule, written plainly; None when the walk must raise DecodeError
    (a page that cannot be decoded, or a full page of only the previous page's items)."""
    ids: list[int] = []
    offset = 0
    previous: set[int] | None = None
    for index in range(len(pages) + 1):
        data, meta = pages[index] if index < len(pages) else ([], {"hasMore": True})
        try:
            items = decode_list(CALL, data, MessageSummary)
        except errors.DecodeError:
            return None
        keys = {m.id for m in items}
        if previous is not None and items and keys <= previous:
            return None if len(items) >= size else ids  # no progress: offset ignored
        ids += [m.id for m in items if m.id not in (previous or set())]
        previous = keys
        has_more = meta.get("hasMore") if isinstance(meta, dict) else None
        total = meta.get("total") if isinstance(meta, dict) else None
        if not isinstance(has_more, bool):
            if isinstance(total, int) and not isinstance(total, bool):
                has_more = offset + len(items) < total
            else:
                has_more = len(items) >= size
        offset += len(items)
        if not items or not has_more:
            return ids
    raise AssertionError("unreachable: the tail page is empty")


@settings(max_examples=300, deadline=None)
@given(page_sequences())
def test_pager_follows_the_stop_rule_and_only_raises_decode_errors(
    case: tuple[int, list[tuple[Any, Any]]],
) -> None:
    size, pages = case
    calls: list[tuple[int, int]] = []

    async def fetch(offset: int, limit: int) -> Reply:
        calls.append((offset, limit))
        index = len(calls) - 1
        # Past the script the gateway keeps answering empty pages that claim more.
        return Reply(*pages[index]) if index < len(pages) else Reply([], {"hasMore": True})

    async def run() -> list[int]:
        pager = Pager(fetch, MessageSummary, page_size=size, call=CALL)
        return [m.id async for m in pager]

    expected = expected_ids(size, pages)
    if expected is None:
        try:
            asyncio.run(run())
        except errors.DecodeError:
            return
        raise AssertionError("a page that cannot be decoded (or a repeated full page) passed")
    assert asyncio.run(run()) == expected
    assert len(calls) <= len(pages) + 1  # never loops on pages that claim more
    assert all(limit == size for _, limit in calls)
