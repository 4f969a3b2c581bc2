"""Gateway facts of contract §1b (issue 26 items 7-10): read-only keys, the key's access mode
and status, the gateway's ``warning`` on repeated errors, management-scope refusals."""

from __future__ import annotations

import pytest

from bitrix_mail_async import MailClient, errors
from bitrix_mail_async.testing import MailEmulator

READ_ONLY = "vibe_api_read_only_key_0001"
SENDER = "Sales <sales@example.com>"


async def test_a_send_on_a_read_only_key_is_refused_never_outcome_unknown(
    mail_emulator: MailEmulator,
) -> None:
    mail_emulator.add_key(READ_ONLY, read_only=True)
    async with MailClient(READ_ONLY, base_url=mail_emulator.base_url, rate_limit=None) as mail:
        with pytest.raises(errors.ReadOnlyKeyError) as caught:
            await mail.messages.send(from_=SENDER, to="a@example.com", subject="s", body="b")
        assert isinstance(caught.value, errors.PermissionDeniedError)
        assert not isinstance(caught.value, errors.OutcomeUnknownError)
        assert caught.value.code == "WRITE_BLOCKED_READONLY_KEY"
        assert mail.stats.outcome_unknown == 0
        # Reads, recipient searches included, still work.
        assert (await mail.messages.get(1001)).id == 1001
        await mail.recipients.contacts()
        info = await mail.me()
    assert (info.access_mode, info.status) == ("READONLY", "ACTIVE")
    assert mail_emulator.state.sent == []


async def test_the_gateways_warning_on_repeated_errors_is_kept(
    mail_emulator: MailEmulator,
) -> None:
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=None
    ) as mail:
        warnings = []
        for _ in range(3):
            with pytest.raises(errors.NotFoundError) as caught:
                await mail.messages.get(999_999)
            warnings.append(caught.value.warning)
    assert warnings[:2] == [None, None]
    assert warnings[2] is not None and "bug" in warnings[2]


def test_management_scope_and_read_only_codes_map_to_permission_errors() -> None:
    assert errors.error_class_for("MANAGEMENT_SCOPE_REQUIRED", 403) is errors.PermissionDeniedError
    assert errors.error_class_for("WRITE_BLOCKED_READONLY_KEY", 403) is errors.ReadOnlyKeyError
