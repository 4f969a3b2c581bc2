"""The streams: page walks, ``get_many`` and ``watch`` against generated answers.

A walk makes as many requests as there are pages, so its bound is the one-call bound times
the pages the server can give before it repeats itself (the script, then one repeated or
empty page). ``get_many`` yields every id's message or its typed error in place. ``watch``
never ends by itself: it runs for a short window, and within it raises only typed errors
with no secret reachable, and does not flood the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bitrix_mail_async import MailClient, errors

from .answers import ok_answer, scripts, stuck_page
from .calls import fallback_body
from .harness import SECRETS, check, run, settings_strategy
from .leaks import printed_leaks, reachable_leaks
from .profiles import profile

Walk = Callable[[MailClient, int], Awaitable[int]]
WALKS: dict[str, tuple[str, Walk]] = {
    "messages.list": (
        "messages",
        lambda mail, size: _collect(mail.messages.list(1, page_size=size)),
    ),
    "recipients.iter_contacts": (
        "people",
        lambda mail, size: _collect(mail.recipients.iter_contacts("a", page_size=size)),
    ),
    "messages.list.pages": (
        "messages",
        lambda mail, size: _collect(mail.messages.list(1, page_size=size).pages()),
    ),
}


async def _collect(stream: Any) -> int:
    return len([item async for item in stream])


@profile(share=1.0)
@given(walk=st.sampled_from(sorted(WALKS)), size=st.sampled_from([1, 2, 4, 25]), data=st.data())
def test_page_walks_end_within_their_bound(walk: str, size: int, data: Any) -> None:
    route, action = WALKS[walk]
    settings = data.draw(settings_strategy(), label="settings")
    script, repeat = data.draw(
        scripts(route, settings.max_response_bytes, settings.timeout), label="script"
    )
    if data.draw(st.integers(0, 2), label="stuck") == 0:
        meta = data.draw(st.sampled_from([{"hasMore": True}, None, {"total": 10**6}]))
        script, repeat = [*script, stuck_page(route, size, meta)], True
    pages = len(script) + 2
    outcome = run(
        settings,
        lambda mail: action(mail, size),
        script,
        fallback=ok_answer(fallback_body(route)),
        repeat_last=repeat,
        requests=pages,
        held=2,
    )
    check(outcome, side_effect=False, stream=True)


@profile(share=0.4)
@given(
    ids=st.lists(st.integers(1, 10**6), min_size=1, max_size=4),
    return_exceptions=st.booleans(),
    data=st.data(),
)
def test_get_many_yields_messages_or_typed_errors(
    ids: list[int], return_exceptions: bool, data: Any
) -> None:
    settings = data.draw(settings_strategy(), label="settings")
    script, repeat = data.draw(
        scripts("message", settings.max_response_bytes, settings.timeout), label="script"
    )
    yielded: list[Any] = []

    async def fetch(mail: MailClient) -> list[Any]:
        async for one in mail.messages.get_many(ids, return_exceptions=return_exceptions):
            yielded.append(one)
        return yielded

    outcome = run(
        settings,
        fetch,
        script,
        fallback=ok_answer(fallback_body("message")),
        repeat_last=repeat,
        requests=len(ids),
        held=len(ids),
    )
    check(outcome, side_effect=False, stream=True)
    for one in yielded:
        if isinstance(one, BaseException):
            assert isinstance(one, errors.MailError), f"get_many yielded {one!r:.200}"
            leaks = printed_leaks(one, SECRETS) + reachable_leaks(one, SECRETS)
            assert not leaks, f"the key is reachable from a yielded error: {leaks[:4]}"
    if outcome.error is None:
        assert len(yielded) == len(ids), f"{len(ids)} ids, {len(yielded)} yielded"


WATCH_WINDOW = 0.3
POLL = 0.03


@profile(share=0.25)
@given(data=st.data())
def test_watch_raises_only_typed_errors_and_does_not_flood(data: Any) -> None:
    settings = data.draw(settings_strategy(), label="settings")
    script, repeat = data.draw(
        scripts("messages", settings.max_response_bytes, settings.timeout), label="script"
    )
    attempts = settings.max_attempts + settings.rate_limit_attempts + 1
    if data.draw(st.integers(0, 2), label="stuck") == 0:
        # Only good answers, so no retries: each poll reads the page a few times at most.
        script, repeat, attempts = [stuck_page("messages", 3, {"hasMore": True})], True, 1
    seen: list[int] = []

    async def watch(mail: MailClient) -> list[int]:
        since = datetime(2026, 5, 1, tzinfo=UTC)
        window = asyncio.timeout(WATCH_WINDOW)
        try:
            async with window:
                async for msg in mail.messages.watch(1, poll_interval=POLL, since=since):
                    seen.append(msg.id)
        except TimeoutError:
            if not window.expired():
                raise  # the client's own errors.TimeoutError, not the end of the window
        return seen

    outcome = run(
        settings,
        watch,
        script,
        fallback=ok_answer(fallback_body("messages")),
        repeat_last=repeat,
        requests=2,
        max_requests=_most_while_watching(attempts, len(script)),
    )
    check(outcome, side_effect=False, stream=True)


def _most_while_watching(attempts: int, pages: int) -> int:
    """Each poll reads its pages (at most the script's, then a repeated or empty one), each
    within the client's attempts; polls come no faster than ``POLL``."""
    polls = WATCH_WINDOW / POLL + 2
    return int(polls * (pages + 3) * attempts)
