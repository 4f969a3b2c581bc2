"""Refusals that must cost nothing: no limiter slot, no wait, no request; and sends whose
answer cannot be decoded into their model are outcome unknown."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from bitrix_mail_async import MailClient, RateLimit, errors
from bitrix_mail_async.testing import MailEmulator

from .conftest import ScriptedServer


async def test_an_oversized_body_is_refused_before_the_limiter(
    mail_emulator: MailEmulator,
) -> None:
    # A bucket of one slot per 100 s: a refused call that queued for it would hang here.
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=RateLimit(per_second=0.01, burst=1, peak_per_second=None),
        max_request_bytes=4096,
    ) as mail:
        await mail.mailboxes.get(1)  # spends the only slot
        with pytest.raises(errors.InvalidArgumentError, match="max_request_bytes"):
            await asyncio.wait_for(
                mail.messages.send(from_="a@x.io", to="b@x.io", subject="big", body="x" * 8192),
                10,  # a hang guard only
            )
        assert mail.stats.requests == 1
    assert len(mail_emulator.requests) == 1


async def test_a_recipient_iterator_is_read_only_up_to_the_cap(
    mail_emulator: MailEmulator,
) -> None:
    taken = itertools.count()

    def addresses() -> Iterator[str]:
        # Finite, so that a regression fails instead of hanging; an endless one works alike.
        for n in range(10**6):
            next(taken)
            yield f"b{n}@x.io"

    async with MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url) as mail:
        with pytest.raises(errors.InvalidArgumentError, match=r"^to names more than 1000"):
            await mail.messages.send(from_="a@x.io", to=addresses(), subject="s", body="b")
    assert next(taken) <= 1001
    assert not mail_emulator.requests


async def test_a_send_answer_that_does_not_fit_its_model_is_outcome_unknown(
    scripted: ScriptedServer, scripted_client: Any
) -> None:
    # 2xx and a proper envelope, but not a chat: the chat was most likely created.
    scripted.push(200, {"success": True, "data": {"chatId": "not a number"}})
    async with scripted_client() as mail:
        with pytest.raises(errors.OutcomeUnknownDecodeError) as caught:
            await mail.messages.create_chat(1001)
    assert caught.value.request == {
        "method": "POST",
        "path": "/mail/messages/1001/chat",
        "json": {"messageId": 1001},
    }
    assert isinstance(caught.value, errors.DecodeError)
    assert len(scripted.hits) == 1  # never repeated
