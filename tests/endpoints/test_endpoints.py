"""Each of the 17 endpoints: the exact request the emulator received, and the decoded model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bitrix_mail_async import (
    CalendarEventCreated,
    ChatCreated,
    Contact,
    CrmActivityCreated,
    Employee,
    FeedPostCreated,
    Mailbox,
    MailClient,
    Message,
    MoveResult,
    Sender,
    SendResult,
    TaskCreated,
    errors,
)
from bitrix_mail_async.testing import MailEmulator, RecordedRequest

SENDER = "Sales Team <sales@emulator.bitrix24.test>"


def last(emu: MailEmulator) -> RecordedRequest:
    return emu.requests[-1]


async def test_1_mailboxes_list(mail: MailClient, mail_emulator: MailEmulator) -> None:
    boxes = await mail.mailboxes.list()
    req = last(mail_emulator)
    assert (req.method, req.path, req.query) == (
        "GET",
        "/mail/mailboxes",
        {"limit": "100", "offset": "0"},
    )
    assert [b.id for b in boxes] == [1, 2, 3]
    assert all(isinstance(b, Mailbox) for b in boxes)
    assert boxes[0].email == "sales@emulator.bitrix24.test"
    assert boxes[0].sender_name == "Sales Team"


async def test_1_mailboxes_list_filters_and_items_shape(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.state.options.mailboxes_shape = "items"
    boxes = await mail.mailboxes.list(name="Supp", email="support@")
    assert last(mail_emulator).query == {
        "limit": "100",
        "offset": "0",
        "name": "Supp",
        "email": "support@",
    }
    assert [b.name for b in boxes] == ["Support"]


@pytest.mark.parametrize("shape", ["item", "bare"])
async def test_2_mailboxes_get(mail: MailClient, mail_emulator: MailEmulator, shape: str) -> None:
    mail_emulator.state.options.mailbox_get_shape = shape  # type: ignore[assignment]
    box = await mail.mailboxes.get(2)
    req = last(mail_emulator)
    assert (req.method, req.path, req.query, req.json) == ("GET", "/mail/mailboxes/2", {}, None)
    assert box == Mailbox(
        id=2,
        name="Support",
        email="support@emulator.bitrix24.test",
        sender_name="Support Desk",
    )


async def test_3_mailboxes_senders(mail: MailClient, mail_emulator: MailEmulator) -> None:
    senders = await mail.mailboxes.senders(1)
    assert last(mail_emulator).path == "/mail/mailboxes/1/senders"
    assert senders[0] == Sender(
        email="sales@emulator.bitrix24.test", name="Sales Team", sender=SENDER
    )
    assert len(senders) == 2


async def test_4_messages_list_passes_every_filter(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    since = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=3)))
    for seen, attached in ((False, True), (True, True), (False, False)):
        mail_emulator.state.add_message(
            subject="Demo follow-up", is_seen=seen, has_attachments=attached
        )
    page = await mail.messages.list(
        1,
        folder="INBOX",
        is_seen=False,
        has_attachments=True,
        search="demo",
        date_from=since,
        date_to="2026-12-31T00:00:00+03:00",
        page_size=7,
    )
    req = last(mail_emulator)
    assert (req.method, req.path) == ("GET", "/mail/messages")
    assert req.query == {
        "mailboxId": "1",
        "folder": "INBOX",
        "isSeen": "false",
        "hasAttachments": "true",
        "searchQuery": "demo",
        "dateFrom": "2026-01-01T00:00:00+03:00",
        "dateTo": "2026-12-31T00:00:00+03:00",
        "limit": "7",
        "offset": "0",
    }
    assert [m.subject for m in page.items].count("Demo follow-up") == 1
    for msg in page.items:
        assert msg.is_seen is False and msg.has_attachments is True
        assert msg.mailbox_id == 1 and msg.folder == "INBOX"
        assert msg.date is not None and msg.date.tzinfo is not None


async def test_4_messages_list_decodes_summary(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    page = await mail.messages.list(1, page_size=3)
    assert last(mail_emulator).query == {"mailboxId": "1", "limit": "3", "offset": "0"}
    wire = mail_emulator.state.summary(mail_emulator.state.messages[page.items[0].id])
    first = page.items[0]
    assert first.id == wire["id"]
    assert first.subject == wire["subject"]
    assert first.from_ == wire["from"]
    assert first.mailbox_email == wire["mailboxEmail"]
    assert first.url == wire["url"]
    assert first.date == datetime.fromisoformat(wire["date"])
    assert ",".join(first.to) == wire["to"].replace(", ", ",")
    assert page.has_more is True
    assert page.total == mail_emulator.state.mailbox_count(1)


async def test_5_messages_get(mail: MailClient, mail_emulator: MailEmulator) -> None:
    msg = await mail.messages.get(1001)
    req = last(mail_emulator)
    assert (req.method, req.path, req.query) == ("GET", "/mail/messages/1001", {})
    assert isinstance(msg, Message)
    assert msg.id == 1001
    assert msg.body == mail_emulator.state.message_body(mail_emulator.state.messages[1001])
    assert msg.subject == mail_emulator.state.messages[1001]["subject"]


@pytest.mark.parametrize("shape", ["list", "items"])
async def test_6_messages_thread(mail: MailClient, mail_emulator: MailEmulator, shape: str) -> None:
    mail_emulator.state.options.thread_shape = shape  # type: ignore[assignment]
    thread = await mail.messages.thread(1001, limit=10)
    req = last(mail_emulator)
    assert (req.path, req.query) == ("/mail/messages/1001/thread", {"limit": "10"})
    assert len(thread) >= 2
    assert all(isinstance(m, Message) for m in thread)
    assert 1001 in {m.id for m in thread}
    # The thread gives "Y-m-d H:i:s" without an offset: the dates stay naive.
    assert all(m.date is not None and m.date.tzinfo is None for m in thread)
    assert all(m.body for m in thread)


async def test_7_messages_send(mail: MailClient, mail_emulator: MailEmulator) -> None:
    result = await mail.messages.send(
        from_=SENDER,
        to="Bob <bob@example.com>, carol@example.com",
        subject="Quarterly report",
        body="<p>Hello</p>",
        cc=["dave@example.com"],
        bcc="eve@example.com",
    )
    req = last(mail_emulator)
    assert (req.method, req.path) == ("POST", "/mail/messages")
    assert req.json == {
        "from": SENDER,
        "to": ["Bob <bob@example.com>", "carol@example.com"],
        "subject": "Quarterly report",
        "body": "<p>Hello</p>",
        "cc": ["dave@example.com"],
        "bcc": ["eve@example.com"],
    }
    assert result == SendResult(success=True, to=("Bob <bob@example.com>", "carol@example.com"))
    assert [s["kind"] for s in mail_emulator.state.sent] == ["send"]


async def test_8_messages_reply(mail: MailClient, mail_emulator: MailEmulator) -> None:
    result = await mail.messages.reply(
        1001, from_=SENDER, to=["bob@example.com"], subject="Re: x", body="ok"
    )
    req = last(mail_emulator)
    assert (req.method, req.path) == ("POST", "/mail/messages/1001/reply")
    assert req.json == {
        "from": SENDER,
        "to": ["bob@example.com"],
        "subject": "Re: x",
        "body": "ok",
        "replyToMessageId": 1001,
    }
    assert result.to == ("bob@example.com",)
    assert mail_emulator.state.sent[-1]["kind"] == "reply"


async def test_9_messages_forward(mail: MailClient, mail_emulator: MailEmulator) -> None:
    result = await mail.messages.forward(
        1002, from_=SENDER, to="fwd@example.com", subject="Fwd: x", body="see below"
    )
    req = last(mail_emulator)
    assert (req.method, req.path) == ("POST", "/mail/messages/1002/forward")
    assert req.json["forwardMessageId"] == 1002
    assert req.json["to"] == ["fwd@example.com"]
    assert result.success is True
    assert mail_emulator.state.sent[-1]["kind"] == "forward"


async def test_10_messages_move(mail: MailClient, mail_emulator: MailEmulator) -> None:
    page = await mail.messages.list(1, folder="INBOX", page_size=2)
    ids = [m.id for m in page.items]
    result = await mail.messages.move(ids, folder="Archive")
    req = last(mail_emulator)
    assert (req.method, req.path) == ("POST", "/mail/messages/move")
    assert req.json == {"messageIds": ids, "action": "move", "folder": "Archive"}
    assert result == MoveResult(success=True, moved_count=2, action="move")
    assert all(mail_emulator.state.messages[i]["folder"] == "Archive" for i in ids)
    spam = await mail.messages.move(ids[:1], action="spam")
    assert last(mail_emulator).json == {"messageIds": ids[:1], "action": "spam"}
    assert spam.action == "spam"


async def test_11_create_task(mail: MailClient, mail_emulator: MailEmulator) -> None:
    task = await mail.messages.create_task(
        1001, title="Call back", responsible_id=7, description="asap"
    )
    req = last(mail_emulator)
    assert (req.method, req.path) == ("POST", "/mail/messages/1001/task")
    assert req.json == {
        "messageId": 1001,
        "title": "Call back",
        "responsibleId": 7,
        "description": "asap",
    }
    assert isinstance(task, TaskCreated)
    assert task.message_id == 1001 and task.task_id > 0
    assert mail_emulator.state.tasks[-1]["taskId"] == task.task_id


async def test_12_create_calendar_event(mail: MailClient, mail_emulator: MailEmulator) -> None:
    start = datetime(2026, 6, 1, 10, 30)  # naive: portal-local, sent as is
    event = await mail.messages.create_calendar_event(
        1001, date_from=start, date_to="2026-06-01 11:30:00", name="Sync"
    )
    req = last(mail_emulator)
    assert (req.method, req.path) == ("POST", "/mail/messages/1001/calendar-event")
    assert req.json == {
        "messageId": 1001,
        "dateFrom": "2026-06-01 10:30:00",
        "dateTo": "2026-06-01 11:30:00",
        "name": "Sync",
    }
    assert isinstance(event, CalendarEventCreated)
    assert event.event_id > 0 and event.message_id == 1001


async def test_13_create_chat_twice_reports_existing(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    first = await mail.messages.create_chat(1003)
    assert last(mail_emulator).json == {"messageId": 1003}
    again = await mail.messages.create_chat(1003)
    assert isinstance(first, ChatCreated)
    assert (first.existing, again.existing) == (False, True)
    assert first.chat_id == again.chat_id


async def test_14_create_feed_post(mail: MailClient, mail_emulator: MailEmulator) -> None:
    post = await mail.messages.create_feed_post(1001, title="FYI")
    req = last(mail_emulator)
    assert (req.path, req.json) == (
        "/mail/messages/1001/feed-post",
        {"messageId": 1001, "title": "FYI"},
    )
    assert isinstance(post, FeedPostCreated) and post.post_id > 0


@pytest.mark.parametrize("shape", ["bool", "object"])
async def test_15_create_crm_activity(
    mail: MailClient, mail_emulator: MailEmulator, shape: str
) -> None:
    mail_emulator.state.options.crm_activity_shape = shape  # type: ignore[assignment]
    result = await mail.messages.create_crm_activity(1001)
    req = last(mail_emulator)
    assert (req.path, req.json) == ("/mail/messages/1001/crm-activity", {"messageId": 1001})
    assert isinstance(result, CrmActivityCreated)
    assert result.success is True
    if shape == "object":
        assert result.activity_id is not None and result.message_id == 1001
    else:
        assert result.activity_id is None


async def test_16_recipients_contacts(mail: MailClient, mail_emulator: MailEmulator) -> None:
    latest = await mail.recipients.contacts()
    assert last(mail_emulator).json == {}
    assert latest and all(isinstance(c, Contact) for c in latest)
    name = mail_emulator.state.contacts[0]["name"].split()[0]
    found = await mail.recipients.contacts(name, limit=5, offset=0)
    assert last(mail_emulator).json == {"query": name, "limit": 5}
    assert found and all(name.lower() in (c.name or "").lower() + (c.email or "") for c in found)


async def test_17_recipients_employees(mail: MailClient, mail_emulator: MailEmulator) -> None:
    name = mail_emulator.state.employees[0]["name"].split()[0]
    found = await mail.recipients.employees(name)
    req = last(mail_emulator)
    assert (req.method, req.path, req.json) == (
        "POST",
        "/mail/recipients/employees",
        {"query": name},
    )
    assert found and all(isinstance(e, Employee) for e in found)
    assert found[0].email and "@" in found[0].email


async def test_recipient_pagers_cover_everything(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    contacts = [c async for c in mail.recipients.iter_contacts(page_size=7)]
    assert len(contacts) == len(mail_emulator.state.contacts)
    assert len({c.id for c in contacts}) == len(contacts)
    assert {r.json["limit"] for r in mail_emulator.requests} == {7}


async def test_recipient_searches_are_retried_like_gets(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("502", methods=["POST"])
    assert await mail.recipients.employees("a")
    assert len(mail_emulator.requests) == 2


async def test_unknown_ids_raise_not_found(mail: MailClient) -> None:
    with pytest.raises(errors.NotFoundError) as info:
        await mail.mailboxes.get(99)
    assert info.value.code == "ENTITY_NOT_FOUND"
    with pytest.raises(errors.NotFoundError):
        await mail.messages.create_task(5)


async def test_every_side_effect_records_its_request(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    await mail.messages.send(from_=SENDER, to="a@x.io", subject="s", body="b")
    await mail.messages.move([1001], action="spam")
    await mail.messages.create_task(1002)
    await mail.messages.create_calendar_event(
        1002, date_from="2026-06-01 10:00:00", date_to="2026-06-01 11:00:00"
    )
    await mail.messages.create_chat(1002)
    await mail.messages.create_feed_post(1002, title="t")
    await mail.messages.create_crm_activity(1002)
    effects = mail_emulator.state.side_effects()
    assert [e["kind"] for e in effects] == [
        "send",
        "move",
        "task",
        "event",
        "chat",
        "feed_post",
        "crm_activity",
    ]
    assert all(isinstance(e["request"], dict) for e in effects)
    assert effects[5]["request"] == {"messageId": 1002, "title": "t"}
