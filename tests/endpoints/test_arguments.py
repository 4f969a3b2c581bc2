"""Bad arguments raise InvalidArgumentError before anything is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.testing import MailEmulator

S = "Sales Team <sales@emulator.bitrix24.test>"
BAD_IDS: list[Any] = [0, -1, True, False, "1", 1.0, 2**63, None, "1/../2", [1]]


def calls(mail: MailClient, bad: Any) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: mail.mailboxes.get(bad),
        lambda: mail.mailboxes.senders(bad),
        lambda: mail.messages.get(bad),
        lambda: mail.messages.thread(bad),
        lambda: mail.messages.reply(bad, from_=S, to="a@x.io", subject="s", body="b"),
        lambda: mail.messages.forward(bad, from_=S, to="a@x.io", subject="s", body="b"),
        lambda: mail.messages.move([bad], action="delete"),
        lambda: mail.messages.create_task(bad),
        lambda: mail.messages.create_calendar_event(
            bad, date_from="2026-01-01 10:00:00", date_to="2026-01-01 11:00:00"
        ),
        lambda: mail.messages.create_chat(bad),
        lambda: mail.messages.create_feed_post(bad),
        lambda: mail.messages.create_crm_activity(bad),
    ]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_bad_ids_are_refused_locally(
    mail: MailClient, mail_emulator: MailEmulator, bad: Any
) -> None:
    for call in calls(mail, bad):
        with pytest.raises(errors.InvalidArgumentError):
            await call()
    with pytest.raises(errors.InvalidArgumentError):
        mail.messages.list(bad)
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"to": []}, "at least one"),
        ({"to": ""}, "at least one"),
        ({"to": None}, "required"),
        ({"to": 5}, "str or a sequence"),
        ({"to": ["ok@x.io", "bad\r\nBcc: evil@x.io"]}, "line breaks"),
        ({"subject": "hi\r\nBcc: evil@x.io"}, "line breaks"),
        ({"from_": ""}, "empty"),
        ({"from_": None}, "must be a str"),
        ({"body": b"bytes"}, "must be a str"),
        ({"body": "x" * (10 * 1024 * 1024 + 1)}, "refuses more"),
        ({"cc": [1]}, "must be a str"),
    ],
)
async def test_bad_send_arguments(
    mail: MailClient, mail_emulator: MailEmulator, kwargs: dict[str, Any], fragment: str
) -> None:
    args: dict[str, Any] = {"from_": S, "to": "a@x.io", "subject": "s", "body": "b", **kwargs}
    with pytest.raises(errors.InvalidArgumentError, match=fragment):
        await mail.messages.send(**args)
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda m: m.messages.move([], action="delete"), "empty"),
        (lambda m: m.messages.move(5, action="delete"), "list, tuple or set"),
        (lambda m: m.messages.move([1001], action="archive"), "one of"),
        (lambda m: m.messages.move([1001]), "folder is required"),
        (lambda m: m.messages.move([1001], action="spam", folder="X"), "only used"),
        (lambda m: m.messages.thread(1001, limit=51), "between 1 and 50"),
        (lambda m: m.recipients.employees(""), "required"),
        (lambda m: m.recipients.contacts(limit=0), "between 1 and 200"),
        (
            lambda m: m.messages.create_calendar_event(
                1001, date_from="tomorrow", date_to="2026-01-01 11:00:00"
            ),
            "YYYY-MM-DD",
        ),
        (lambda m: m.messages.create_task(1001, responsible_id=0), "positive"),
        (lambda m: m.mailboxes.get(1, timeout=-1), "timeout"),
        (lambda m: m.mailboxes.get(1, timeout=True), "timeout"),
        (lambda m: m.mailboxes.get(1, timeout=float("nan")), "timeout"),
    ],
)
async def test_other_bad_arguments(
    mail: MailClient, mail_emulator: MailEmulator, call: Any, fragment: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=fragment):
        await call(mail)
    assert len(mail_emulator.requests) == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"page_size": 0}, "between 1 and 200"),
        ({"page_size": 201}, "between 1 and 200"),
        ({"is_seen": "yes"}, "bool"),
        ({"date_from": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"date_to": "last week"}, "ISO 8601"),
        ({"folder": "a\nb"}, "line breaks"),
    ],
)
def test_bad_list_arguments_fail_at_call_time(
    mail: MailClient, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=fragment):
        mail.messages.list(1, **kwargs)
