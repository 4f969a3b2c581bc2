"""mail.me(): GET /v1/me over loopback, decoded into KeyInfo; the key is never in it."""

from __future__ import annotations

from datetime import UTC, datetime

from bitrix_mail_async import KeyInfo, MailClient
from bitrix_mail_async.testing import MailEmulator


async def test_me_reports_scopes_portal_rate_and_expiry(mail_emulator: MailEmulator) -> None:
    key = "vibe_api_me_test_key_0123456789"
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    mail_emulator.add_key(
        key, scopes=("mail", "crm"), portal="acme.bitrix24.test", expires_at=expires
    )
    mail_emulator.set_portal_limit(per_second=7, portal="acme.bitrix24.test")
    async with MailClient(key, base_url=mail_emulator.base_url) as mail:
        info = await mail.me()
    assert isinstance(info, KeyInfo)
    assert info.scopes == ("mail", "crm")
    assert info.portal == "acme.bitrix24.test"
    assert info.rate_limit_per_second == 7
    assert info.expires_at == expires
    assert key not in repr(info)
    assert mail_emulator.requests[-1].path == "/me"
