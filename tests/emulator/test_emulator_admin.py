"""The admin API under /_emulator/ over loopback, raw and through ``EmulatorAdmin``; the
counters and /v1/me as a user sizing a client reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bitrix_mail_async import MailClient, RateLimit
from bitrix_mail_async.testing import (
    AdminAPIError,
    EmulatorAdmin,
    LimitSettings,
    MailEmulator,
    RecordedRequest,
)

SALES = "Sales Team <sales@emulator.bitrix24.test>"


async def admin(
    session: aiohttp.ClientSession, emu: MailEmulator, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """One raw admin call: no key, as curl from another language sends it."""
    async with session.request(method, emu.admin_url + path, **kwargs) as answer:
        return answer.status, await answer.json(content_type=None)


# ----------------------------------------------------------------- beside the gateway
async def test_admin_needs_no_key_and_leaves_the_gateway_as_it_was(session, api, mail_emulator):
    status, info = await admin(session, mail_emulator, "GET", "")
    assert status == 200
    assert info["gateway"] == "/v1"
    assert [m["id"] for m in info["mailboxes"]] == [1, 2, 3]
    assert "POST /_emulator/messages" in info["routes"]
    # The gateway's routes still want the key, and the admin API is not under /v1.
    assert (await api.request("GET", "/mail/mailboxes", key=None)).error["code"] == (
        "MISSING_API_KEY"
    )
    assert (await api.get("/_emulator/effects")).error["code"] == "NOT_FOUND"
    # Admin calls are not gateway requests: neither logged nor counted.
    assert [r.path for r in mail_emulator.requests] == ["/mail/mailboxes", "/_emulator/effects"]
    assert mail_emulator.stats.requests == 2


async def test_admin_meets_no_limit_and_no_fault(session, api, mail_emulator):
    mail_emulator.faults.error_rate = 1.0
    mail_emulator.set_rate_limit(0.001, burst=1)
    assert (await api.get("/mail/mailboxes")).status in (502, 503, 504)
    for _ in range(3):
        status, _body = await admin(session, mail_emulator, "GET", "/stats")
        assert status == 200


# ----------------------------------------------------------------- deliver
async def test_deliver_any_mailbox_folder_date_and_sender(session, api, mail_emulator):
    future = "2099-12-31T23:59:00+03:00"
    status, message = await admin(
        session,
        mail_emulator,
        "POST",
        "/messages",
        json={
            "mailboxId": 2,
            "folder": "Archive",
            "date": future,
            "from": "Robot <robot@example.com>",
            "to": ["support@emulator.bitrix24.test", "boss@example.com"],
            "subject": "From the future",
            "body": "<p>hello</p>",
            "isSeen": True,
            "hasAttachments": True,
        },
    )
    assert status == 201
    assert message["mailboxId"] == 2 and message["folder"] == "Archive"
    assert message["date"] == future and message["body"] == "<p>hello</p>"
    listed = await api.get("/mail/messages", mailboxId=2, folder="Archive")
    assert listed.data["items"][0]["id"] == message["id"]
    got = await api.get(f"/mail/messages/{message['id']}")
    assert got.data["item"]["from"] == "Robot <robot@example.com>"
    assert got.data["item"]["to"] == "support@emulator.bitrix24.test, boss@example.com"
    assert got.data["item"]["isSeen"] is True

    # No date: "now" by the gateway's wall clock; a date without offset is the portal's zone.
    _, now = await admin(session, mail_emulator, "POST", "/messages", json={"subject": "now"})
    assert abs(datetime.fromisoformat(now["date"]) - datetime.now(UTC)) < timedelta(minutes=5)
    _, old = await admin(
        session, mail_emulator, "POST", "/messages", json={"date": "2001-02-03T04:05:06"}
    )
    assert old["date"] == "2001-02-03T04:05:06+03:00"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"mailboxId": 9}, 404, "no mailbox 9; the portal has 1, 2, 3"),
        ({"mailboxId": "1"}, 400, "mailboxId must be a mailbox id"),
        ({"mailboxId": True}, 400, "mailboxId must be a mailbox id"),
        ({"date": "yesterday"}, 400, "date must be an ISO 8601 date, got 'yesterday'"),
        ({"subjct": "typo"}, 400, "unknown field(s) subjct; known: body, cc, date"),
        ({"to": [1]}, 400, "to must be a string or a list of strings"),
        ({"isSeen": "yes"}, 400, "isSeen must be true or false"),
        ({"folder": ""}, 400, "folder and from must not be empty"),
        ({"threadOf": 5}, 404, "no message 5 to thread the new one under"),
    ],
)
async def test_deliver_refuses_what_it_cannot_use(session, mail_emulator, body, status, says):
    got, answer = await admin(session, mail_emulator, "POST", "/messages", json=body)
    assert got == status
    assert answer["error"].startswith(says)
    assert len(mail_emulator.state.messages) == 60


async def test_bad_requests_say_what_is_wrong(session, mail_emulator):
    assert await admin(session, mail_emulator, "GET", "/nothing") == (
        404,
        {"error": "no admin route GET /_emulator/nothing; GET /_emulator/ lists them"},
    )
    assert await admin(session, mail_emulator, "GET", "/reset") == (
        405,
        {"error": "GET is not allowed here; use POST"},
    )
    assert (await admin(session, mail_emulator, "POST", "/messages", data=b"{"))[1] == {
        "error": "request body must be JSON"
    }
    assert (await admin(session, mail_emulator, "GET", "/requests?limit=x"))[0] == 400
    assert (await admin(session, mail_emulator, "GET", "/requests?colour=red"))[1] == {
        "error": "unknown filter(s) colour"
    }


# ----------------------------------------------------------------- effects and the log
async def test_effects_list_every_kind_of_side_effect(session, mail_emulator):
    async with MailClient(mail_emulator.api_key, base_url=mail_emulator.base_url) as mail:
        await mail.messages.send(from_=SALES, to="client@example.com", subject="Hi", body="B")
        await mail.messages.reply(1001, body="Thanks")
        await mail.messages.create_task(1001)
        await mail.messages.create_calendar_event(
            1001, date_from="2026-06-01 10:00:00", date_to="2026-06-01 11:00:00"
        )
        await mail.messages.create_chat(1001)
        await mail.messages.create_feed_post(1001)
        await mail.messages.create_crm_activity(1001)
        await mail.messages.move([1002], folder="Archive")
    status, effects = await admin(session, mail_emulator, "GET", "/effects")
    assert status == 200
    assert [e["kind"] for e in effects["sent"]] == ["send", "reply"]
    assert effects["sent"][0]["request"]["to"] == ["client@example.com"]
    assert effects["tasks"][0]["taskId"] == 501
    assert [len(effects[k]) for k in ("events", "chats", "feedPosts", "crmActivities")] == [
        1,
        1,
        1,
        1,
    ]
    assert effects["crmActivities"][0]["messageId"] == 1001
    assert effects["moves"][0]["messageIds"] == [1002]


async def test_the_request_log_filters_and_hides_the_key(session, api, mail_emulator):
    await api.get("/mail/mailboxes")
    await api.get("/mail/messages/1001")
    await api.get("/mail/messages/999999")
    status, log = await admin(session, mail_emulator, "GET", "/requests")
    assert status == 200
    assert [(r["method"], r["path"], r["status"]) for r in log["items"]] == [
        ("GET", "/mail/mailboxes", 200),
        ("GET", "/mail/messages/1001", 200),
        ("GET", "/mail/messages/999999", 404),
    ]
    assert log["items"][0]["headers"]["X-Api-Key"] == "***"
    assert mail_emulator.api_key not in str(log)
    _, missing = await admin(session, mail_emulator, "GET", "/requests?status=404")
    assert [r["path"] for r in missing["items"]] == ["/mail/messages/999999"]
    _, last = await admin(
        session, mail_emulator, "GET", "/requests?pathPrefix=/mail/messages&limit=1"
    )
    assert [r["path"] for r in last["items"]] == ["/mail/messages/999999"]
    assert set(log["items"][0]) >= {"limitedBy", "queueWait", "applied", "fault", "query"}


# ----------------------------------------------------------------- reset
async def test_reset_starts_afresh_with_the_same_configuration(
    session, make_api, mail_emulator_factory
):
    emu = mail_emulator_factory(limits=LimitSettings.documented(time_scale=0.1))
    emu.faults.latency = 0.001
    api = make_api(emu)
    _, delivered = await admin(session, emu, "POST", "/messages", json={"subject": "gone soon"})
    first = await api.get("/mail/mailboxes")
    assert first.headers["X-RateLimit-Remaining"] == "299"
    await api.post("/mail/messages/1001/task", {})

    assert await admin(session, emu, "POST", "/reset") == (200, {"reset": True, "portal": True})
    assert len(emu.requests) == 0 and emu.stats.requests == 0
    assert (await admin(session, emu, "GET", "/effects"))[1]["tasks"] == []
    # The limits are still on, with an empty window; the latency stays.
    again = await api.get("/mail/mailboxes")
    assert again.headers["X-RateLimit-Remaining"] == "299"
    assert (await api.get(f"/mail/messages/{delivered['id']}")).status == 404
    assert emu.faults.latency == 0.001
    assert (await admin(session, emu, "GET", ""))[1]["limits"]["window"]["limit"] == 300

    _, kept = await admin(session, emu, "POST", "/messages", json={"subject": "stays"})
    assert (await admin(session, emu, "POST", "/reset", json={"portal": False}))[0] == 200
    assert (await api.get(f"/mail/messages/{kept['id']}")).status == 200


# ----------------------------------------------------------------- the Python helper
async def test_the_helper_is_typed_and_accepts_any_of_the_emulators_urls(api, mail_emulator):
    for url in (mail_emulator.base_url, mail_emulator.admin_url, mail_emulator.admin_url + "/"):
        async with EmulatorAdmin(url) as helper:
            assert (await helper.info())["gateway"] == "/v1"
    async with EmulatorAdmin(mail_emulator.base_url) as helper:
        when = datetime(2001, 1, 1, 9, 0, tzinfo=UTC)
        message = await helper.deliver(
            mailbox_id=3, subject="Old", from_="a@example.com", to=["b@example.com"], date=when
        )
        assert message.mailbox_id == 3 and message.date == when and message.body == "Test body"
        await api.post(f"/mail/messages/{message.id}/task", {})
        effects = await helper.wait_for(lambda e: len(e.tasks) == 1, timeout=10)
        assert effects.tasks[0]["messageId"] == message.id and effects.sent == ()
        log = await helper.requests(method="POST")
        assert [type(r) for r in log] == [RecordedRequest]
        assert log[0].path == f"/mail/messages/{message.id}/task" and log[0].applied
        counters = await helper.stats()
        assert counters.requests == 1 and counters.by_status == {200: 1}
        with pytest.raises(AdminAPIError) as refused:
            await helper.deliver(mailbox_id=42)
        assert refused.value.status == 404 and "no mailbox 42" in refused.value.message
        await helper.reset()
        assert await helper.requests() == []
        with pytest.raises(TimeoutError):
            await helper.wait_for(lambda e: bool(e.chats), timeout=0.2)


# ----------------------------------------------------------------- counters and /v1/me
async def test_refused_is_a_counter_of_every_limit(make_api, mail_emulator_factory):
    emu = mail_emulator_factory()
    emu.set_rate_limit(0.001, burst=1, retry_after=5)
    api = make_api(emu)
    statuses = [(await api.get("/mail/mailboxes")).status for _ in range(3)]
    assert statuses == [200, 429, 429]
    assert (emu.stats.refused, emu.stats.key_limited, emu.stats.rate_limited) == (2, 2, 2)
    emu.set_rate_limit(None)
    emu.set_window(limit=1, period=60)
    assert (await api.get("/mail/mailboxes")).status == 200
    assert (await api.get("/mail/mailboxes")).status == 429
    assert (emu.stats.refused, emu.stats.window_limited) == (3, 1)


async def test_me_reports_the_rate_the_key_is_given(api, mail_emulator):
    assert (await api.get("/me")).data["rateLimit"] == {"requestsPerSecond": 10}
    mail_emulator.set_rate_limit(2, burst=5)
    assert (await api.get("/me")).data["rateLimit"] == {"requestsPerSecond": 2}
    mail_emulator.set_rate_limit(None)
    mail_emulator.enable_gateway_limits(time_scale=0.5)
    assert (await api.get("/me")).data["rateLimit"] == {"requestsPerSecond": 20}
    async with MailClient(
        mail_emulator.api_key, base_url=mail_emulator.base_url, rate_limit=RateLimit.documented()
    ) as mail:
        info = await mail.me()
    # The figure is the portal's short-term rate: the client's peak, not its sustained rate.
    assert info.rate_limit_per_second == 20
    assert RateLimit.documented(time_scale=0.5).peak_per_second == info.rate_limit_per_second
