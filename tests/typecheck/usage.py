"""Checked by mypy --strict (see test_typing.py): the public methods return precise types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, assert_type

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
    RateLimitConfig,
    RateLimitedEvent,
    RawResponse,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    Sender,
    SendResult,
    TaskCreated,
    errors,
    from_dict,
    otel,
    to_dict,
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
        senders = await mail.mailboxes.senders(1)
        # The README's flow: a sender's string goes straight into from_.
        assert_type(senders[0].sender, str)
        await mail.messages.send(from_=senders[0].sender, to="b@x.io", subject="s", body="b")
        assert_type(await mail.messages.move([1], action="spam"), MoveResult)


async def escape_hatches(mail: MailClient) -> None:
    config: RateLimitConfig = RateLimit(per_second=2, burst=50)
    assert_type(config, RateLimitConfig)
    assert_type(await mail.request("GET", "/me"), Any)
    assert_type(
        await mail.request("POST", "/mail/messages/1/chat", json={"messageId": 1}, timeout=5), Any
    )
    await mail.request("GET", "/mail/messages", params={"mailboxId": 1, "isSeen": False})
    view = mail.with_options(timeout=5, retry=RetryPolicy.never(), max_concurrency=2)
    assert_type(view, MailClient)
    assert_type(await view.messages.get(1), Message)
    msg = await mail.messages.get(1)
    assert_type(to_dict(msg), dict[str, Any])
    assert_type(to_dict(msg, wire=True), dict[str, Any])
    assert_type(from_dict(to_dict(msg, wire=True), Message), Message)
    assert_type(from_dict({"id": 1}, Mailbox), Mailbox)


async def raw_responses(mail: MailClient) -> None:
    raw = mail.with_raw_response
    got = await raw.messages.get(1)
    assert_type(got, RawResponse[Message])
    assert_type(got.parsed, Message)
    assert_type(got.status, int)
    assert_type(got.headers, Mapping[str, str])
    assert_type(got.data, Any)
    assert_type(got.request_id, str | None)
    assert_type(await raw.mailboxes.list(), RawResponse[list[Mailbox]])
    assert_type(await raw.mailboxes.get(1), RawResponse[Mailbox])
    assert_type(await raw.mailboxes.senders(1), RawResponse[list[Sender]])
    assert_type(await raw.messages.list(1, is_seen=False), RawResponse[Page[MessageSummary]])
    assert_type(await raw.messages.thread(1, limit=5), RawResponse[list[Message]])
    sent = await raw.messages.send(from_="a <a@x.io>", to=["b@x.io"], subject="s", body="b")
    assert_type(sent, RawResponse[SendResult])
    assert_type(
        await raw.messages.reply(1, from_="a", to="b@x.io", subject="s", body="b"),
        RawResponse[SendResult],
    )
    assert_type(
        await raw.messages.forward(1, from_="a", to="b@x.io", subject="s", body="b"),
        RawResponse[SendResult],
    )
    assert_type(await raw.messages.move([1], action="delete"), RawResponse[MoveResult])
    assert_type(await raw.messages.create_task(1, title="t"), RawResponse[TaskCreated])
    assert_type(
        await raw.messages.create_calendar_event(
            1, date_from="2026-01-01 10:00:00", date_to="2026-01-01 11:00:00"
        ),
        RawResponse[CalendarEventCreated],
    )
    assert_type(await raw.messages.create_chat(1), RawResponse[ChatCreated])
    assert_type(await raw.messages.create_feed_post(1), RawResponse[FeedPostCreated])
    assert_type(await raw.messages.create_crm_activity(1), RawResponse[CrmActivityCreated])
    assert_type(await raw.recipients.contacts("a"), RawResponse[list[Contact]])
    assert_type(await raw.recipients.employees("a"), RawResponse[list[Employee]])
    assert_type(await raw.recipients.iter_contacts(), RawResponse[Page[Contact]])
    assert_type(await raw.recipients.iter_employees("a"), RawResponse[Page[Employee]])
    assert_type(await raw.me(), RawResponse[KeyInfo])
    assert_type(await raw.request("GET", "/me"), RawResponse[Any])
    assert_type(await mail.with_options(timeout=1).with_raw_response.me(), RawResponse[KeyInfo])


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
