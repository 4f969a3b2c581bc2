"""API-key checks, scopes and per-mailbox permissions."""

from __future__ import annotations

import pytest


async def expect(reply, status, code):
    assert reply.status == status, reply.text
    assert reply.body["success"] is False
    assert reply.error["code"] == code
    assert reply.error["message"]


async def test_missing_key(api):
    await expect(await api.request("GET", "/mail/mailboxes", key=None), 401, "MISSING_API_KEY")


async def test_unknown_key(api):
    await expect(
        await api.request("GET", "/mail/mailboxes", key="vibe_api_nope"), 401, "INVALID_API_KEY"
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [("inactive", "KEY_INACTIVE"), ("expired", "KEY_EXPIRED"), ("no_tokens", "TOKEN_MISSING")],
)
async def test_key_states(api, mail_emulator, status, code):
    mail_emulator.add_key("vibe_api_other", status=status)
    await expect(await api.request("GET", "/mail/mailboxes", key="vibe_api_other"), 401, code)


async def test_scope_denied(api, mail_emulator):
    mail_emulator.add_key("vibe_api_crm_only", scopes=("crm", "tasks"))
    reply = await api.request("GET", "/mail/mailboxes", key="vibe_api_crm_only")
    await expect(reply, 403, "SCOPE_DENIED")


async def test_app_keys_need_a_bearer_token(api, mail_emulator):
    mail_emulator.add_key("vibe_app_x", app=True, tokens=("session-1",))
    ok = await api.request(
        "GET", "/mail/mailboxes", key="vibe_app_x", headers={"Authorization": "Bearer session-1"}
    )
    assert ok.status == 200
    missing = await api.request("GET", "/mail/mailboxes", key="vibe_app_x")
    await expect(missing, 401, "INVALID_API_KEY")
    wrong = await api.request(
        "GET", "/mail/mailboxes", key="vibe_app_x", headers={"Authorization": "Bearer other"}
    )
    await expect(wrong, 401, "INVALID_API_KEY")


async def test_auth_failures_apply_nothing(api, mail_emulator):
    body = {"from": "a@b.c", "to": ["x@y.z"], "subject": "s", "body": "b"}
    await expect(
        await api.request("POST", "/mail/messages", json=body, key=None), 401, "MISSING_API_KEY"
    )
    assert mail_emulator.state.side_effects() == []
    assert mail_emulator.requests.last.applied is False


async def test_denied_mailbox(api, mail_emulator):
    state = mail_emulator.state
    state.denied_mailboxes.add(2)
    message_id = state.mailbox_message_ids(2)[0]
    for reply in (
        await api.get("/mail/mailboxes/2"),
        await api.get("/mail/mailboxes/2/senders"),
        await api.get("/mail/messages", mailboxId=2),
        await api.get(f"/mail/messages/{message_id}"),
        await api.get(f"/mail/messages/{message_id}/thread"),
        await api.post(f"/mail/messages/{message_id}/task", {}),
        await api.post("/mail/messages/move", {"messageIds": [message_id], "action": "spam"}),
    ):
        await expect(reply, 403, "BITRIX_ACCESS_DENIED")
    assert (await api.get("/mail/mailboxes/1")).status == 200
    assert state.side_effects() == []
