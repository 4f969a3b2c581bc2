"""reply()/forward() defaults (issue 26 item 1): ``to``, subject and ``from_`` follow from the
original message and its mailbox; the senders are asked once per mailbox and client."""

from __future__ import annotations

import pytest

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.resources._replies import prefixed
from bitrix_mail_async.testing import MailEmulator


def paths(emulator: MailEmulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests.snapshot()]


async def test_a_reply_with_only_a_body_answers_the_sender_from_the_mailbox(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    original = await mail.messages.get(1001)
    senders = await mail.mailboxes.senders(original.mailbox_id or 0)
    mail_emulator.requests.clear()
    await mail.messages.reply(1001, body="Thanks")
    await mail.messages.reply(1001, body="Again")
    sent = [e["request"] for e in mail_emulator.state.sent[-2:]]
    assert sent[0]["to"] == [original.from_]
    assert sent[0]["subject"] == prefixed("Re:", original.subject)
    own = [s.sender for s in senders if s.email == original.mailbox_email] or [senders[0].sender]
    assert sent[0]["from"] == own[0]
    # One senders call for both replies; one get per reply.
    assert paths(mail_emulator).count(f"GET /mail/mailboxes/{original.mailbox_id}/senders") == 1
    assert paths(mail_emulator).count("GET /mail/messages/1001") == 2


async def test_given_values_win_and_cost_no_lookup(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.requests.clear()
    await mail.messages.reply(
        1001, body="b", to="x@example.com", subject="Custom", from_="Sales <sales@example.com>"
    )
    await mail.messages.forward(
        1001, to="y@example.com", subject="S", from_="Sales <sales@example.com>"
    )
    assert [p for p in paths(mail_emulator) if p.startswith("GET")] == []
    assert mail_emulator.state.sent[-1]["request"]["subject"] == "S"


async def test_a_forward_prefixes_fwd_once(mail: MailClient, mail_emulator: MailEmulator) -> None:
    original = await mail.messages.get(1002)
    await mail.messages.forward(1002, to="boss@example.com", body="FYI")
    assert mail_emulator.state.sent[-1]["request"]["subject"] == prefixed("Fwd:", original.subject)


@pytest.mark.parametrize(
    ("prefix", "subject", "expected"),
    [
        ("Re:", "Invoice", "Re: Invoice"),
        ("Re:", "RE: Invoice", "RE: Invoice"),
        ("Re:", "Ответ: Счёт", "Ответ: Счёт"),
        ("Fwd:", "Fw: Invoice", "Fw: Invoice"),
        ("Fwd:", "Re: Invoice", "Fwd: Re: Invoice"),
        ("Re:", None, "Re:"),
    ],
)
def test_prefixes_are_never_doubled(prefix: str, subject: str | None, expected: str) -> None:
    assert prefixed(prefix, subject) == expected


async def test_bad_given_values_are_refused_before_any_lookup(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.requests.clear()
    with pytest.raises(errors.InvalidArgumentError):
        await mail.messages.reply(1001, body="b", subject="a\nBcc: x@evil.example")
    with pytest.raises(errors.InvalidArgumentError):
        await mail.messages.forward(1001, to=[], body="b")
    assert paths(mail_emulator) == []
