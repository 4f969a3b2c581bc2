"""A client bound to the emulator for endpoint tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bitrix_mail_async import MailClient, RetryPolicy
from bitrix_mail_async.testing import MailEmulator


@pytest.fixture
async def mail(mail_emulator: MailEmulator) -> AsyncIterator[MailClient]:
    """A client against the emulator: no client bucket, fast retries."""
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.05),
    ) as client:
        yield client
