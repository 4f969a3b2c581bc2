"""Checked by mypy --strict (see test_typing.py): the public methods return precise types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import assert_type

from bitrix_mail_async import (
    CalendarEventCreated,
    ChatCreated,
    ClientStats,
    Contact,
    CrmActivityCreated,
    Employee,
    FeedPostCreated,
    HookEvent,
    Hooks,
    KeyInfo,
    Mailbox,
    MailClient,
    Message,
    MessagePager,
    MessageSummary,
    MoveResult,
    Page,
    RateLimit,
    RateLimitedEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    Sender,
    SendResult,
    TaskCreated,
    errors,
    otel,
)
from bitrix_mail_async.pagination import Pager


async def usage() -> None:
    async with MailClient(
        "vibe_api_x", rate_limit=RateLimit(per_second=5, burst=250), retry=RetryPolicy()
    ) as mail:
        assert_type(mail, MailClient)
        assert_type(await mail.mailboxes.list(), list[Mailbox])
        assert_type(await mail.mailboxes.get(1), Mailbox)
        assert_type(await mail.mailboxes.senders(1), list[Sender])
        pager = mail.messages.list(1, is_seen=False, date_from=datetime.now(UTC))
        assert_type(pager, MessagePager)
        assert_type(await pager, Page[MessageSummary])
        async for msg in pager:
            assert_type(msg, MessageSummary)
            assert_type(msg.to, tuple[str, ...])
            assert_type(msg.date, datetime | None)
        async for page in pager.pages():
            assert_type(page, Page[MessageSummary])
            assert_type(page.items, list[MessageSummary])
        assert_type(await mail.messages.get(1), Message)
        assert_type(await mail.messages.thread(1, limit=5), list[Message])
        sent = await mail.messages.send(from_="a <a@x.io>", to=["b@x.io"], subject="s", body="b")
        assert_type(sent, SendResult)
        assert_type(
            await mail.messages.reply(1, from_="a", to="b@x.io", subject="s", body="b"), SendResult
        )
        assert_type(
            await mail.messages.forward(1, from_="a", to="b@x.io", subject="s", body="b"),
            SendResult,
        )
        assert_type(await mail.messages.move([1, 2], folder="Archive"), MoveResult)
        assert_type(await mail.messages.create_task(1), TaskCreated)
        assert_type(
            await mail.messages.create_calendar_event(
                1, date_from=datetime.now(UTC), date_to="2026-01-01 10:00:00"
            ),
            CalendarEventCreated,
        )
        assert_type(await mail.messages.create_chat(1), ChatCreated)
        assert_type(await mail.messages.create_feed_post(1), FeedPostCreated)
        assert_type(await mail.messages.create_crm_activity(1), CrmActivityCreated)
        assert_type(await mail.recipients.contacts(), list[Contact])
        assert_type(await mail.recipients.employees("a"), list[Employee])
        assert_type(mail.recipients.iter_contacts(), Pager[Contact])
        assert_type(mail.stats, ClientStats)
        info = await mail.me()
        assert_type(info, KeyInfo)
        assert_type(info.rate_limit_per_second, float | None)
        assert_type(info.scopes, tuple[str, ...])
        try:
            await mail.messages.get(1)
        except errors.APIError as exc:
            assert_type(exc.code, str | None)
            assert_type(exc.status, int)


async def hooks_usage() -> None:
    """Hooks and their events are precisely typed; otel.instrument() gives Hooks."""
    requests: list[RequestEvent] = []

    async def on_retry(event: RetryEvent) -> None:
        assert_type(event.reason, str)
        assert_type(event.wait, float)

    def on_response(event: ResponseEvent) -> None:
        assert_type(event.status, int | None)
        assert_type(event.elapsed, float)
        assert_type(event.error, str | None)
        assert_type(event.code, str | None)
        assert_type(event.retry_after, float | None)

    hooks = Hooks(
        on_request=requests.append,
        on_response=[on_response, lambda event: assert_type(event.route, str)],
        on_retry=on_retry,
        on_rate_limited=lambda event: assert_type(event.retry_after, float | None),
    )
    combined = otel.instrument() + hooks
    assert_type(combined, Hooks)
    event: HookEvent = requests[0]
    assert_type(event.attempt, int)
    assert_type(requests[0].waited, float)
    assert_type(RateLimitedEvent("GET", "/me", "/me", 1, None).retry_after, float | None)
    async with MailClient("vibe_api_x", hooks=combined) as mail:
        assert_type(await mail.mailboxes.get(1), Mailbox)
