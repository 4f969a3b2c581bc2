"""Broken answers from the gateway become typed errors; nothing crashes with a bare error."""

from __future__ import annotations

import pytest

from bitrix_mail_async import MailClient, RetryPolicy, errors
from bitrix_mail_async.testing import MailEmulator

S = "Sales Team <sales@emulator.bitrix24.test>"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("malformed", errors.DecodeError),
        ("empty", errors.DecodeError),
        ("no_data", errors.DecodeError),
        ("html", errors.UpstreamUnavailableError),
        ("success_false_200", errors.APIError),
    ],
)
async def test_broken_answers_to_gets(
    mail_emulator: MailEmulator, fault: str, expected: type[errors.MailError]
) -> None:
    mail_emulator.faults.schedule(fault, methods=["GET"])
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        retry=RetryPolicy.never(),
    ) as mail:
        with pytest.raises(expected) as info:
            await mail.messages.get(1001)
        assert "/mail/messages/1001" in str(info.value)


@pytest.mark.parametrize("fault", ["malformed", "empty", "no_data"])
async def test_broken_answer_to_send_is_not_resent(mail_emulator: MailEmulator, fault: str) -> None:
    # The gateway applied the send and then mangled the answer: resending would duplicate it.
    mail_emulator.faults.schedule(fault, methods=["POST"])
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=None
    ) as mail:
        # Outcome unknown, not a bare DecodeError a caller might retry: it was applied.
        with pytest.raises(errors.OutcomeUnknownDecodeError) as info:
            await mail.messages.send(from_=S, to="a@x.io", subject="mangled", body="b")
    assert isinstance(info.value, errors.DecodeError)
    assert info.value.request == {
        "method": "POST",
        "path": "/mail/messages",
        "json": {"from": S, "to": ["a@x.io"], "subject": "mangled", "body": "b"},
    }
    assert len(mail_emulator.state.sent) == 1
    assert len(mail_emulator.requests) == 1


async def test_html_answer_to_a_paged_list(mail_emulator: MailEmulator) -> None:
    mail_emulator.faults.schedule("ok", "html", "html", "html", "html", methods=["GET"])
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        retry=RetryPolicy(max_attempts=4, backoff_base=0.001),
    ) as mail:
        seen: list[int] = []

        async def walk() -> None:
            async for msg in mail.messages.list(1, page_size=5):
                seen.append(msg.id)

        with pytest.raises(errors.UpstreamUnavailableError) as info:
            await walk()
    assert len(seen) == 5  # the first page arrived; the second failed after its retries
    assert info.value.body_excerpt and "<" in info.value.body_excerpt
