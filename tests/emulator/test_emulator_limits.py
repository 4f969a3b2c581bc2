"""The gateway's limit system over loopback: window headers, portal bucket, breaker, /v1/me."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bitrix_mail_async.testing import (
    DEFAULT_PORTAL,
    LimitSettings,
    ManualClock,
    WindowSettings,
)

TASK = "/mail/messages/1001/task"
OTHER_PORTAL = "other.bitrix24.test"


def window_headers(reply):
    return tuple(
        reply.headers.get(f"X-RateLimit-{name}") for name in ("Limit", "Remaining", "Reset")
    )


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def emu(mail_emulator_factory, clock):
    return mail_emulator_factory(clock=clock)


@pytest.fixture
def emu_api(make_api, emu):
    return make_api(emu)


# ----------------------------------------------------------------- per-key window
async def test_every_answer_of_a_key_carries_the_window_headers(emu, emu_api):
    emu.set_window(limit=100, period=60)
    emu.state.denied_mailboxes.add(3)
    emu.faults.schedule("502", "html", "success_false_200", paths="/mail/mailboxes")
    replies = [
        await emu_api.get("/mail/mailboxes/1"),  # 502 fault
        await emu_api.get("/mail/mailboxes/1"),  # HTML fault
        await emu_api.get("/mail/mailboxes/1"),  # 200 with an error envelope
        await emu_api.get("/mail/messages/999999"),  # 404 ENTITY_NOT_FOUND
        await emu_api.get("/mail/messages", mailboxId="x"),  # 400 INVALID_PARAMS
        await emu_api.get("/mail/nothing"),  # 404 NOT_FOUND
        await emu_api.get("/mail/mailboxes/3"),  # 403 BITRIX_ACCESS_DENIED
        await emu_api.get("/me"),
        await emu_api.get("/mail/mailboxes/2"),
    ]
    assert [r.status for r in replies] == [502, 502, 200, 404, 400, 404, 403, 200, 200]
    assert [window_headers(r) for r in replies] == [
        ("100", str(99 - n), "60") for n in range(len(replies))
    ]
    emu.set_rate_limit(1, burst=1)  # the key's own bucket refuses the second one
    limited = [await emu_api.get("/mail/mailboxes/1") for _ in range(2)]
    assert [r.status for r in limited] == [200, 429]
    assert window_headers(limited[1]) == ("100", "89", "60")
    # An unknown key or a missing one is nobody's request: no window to tell about.
    anonymous = await emu_api.request("GET", "/mail/mailboxes/1", key=None)
    assert anonymous.status == 401 and window_headers(anonymous) == (None, None, None)


async def test_window_refuses_with_the_reset_as_retry_after(emu, emu_api, clock):
    emu.set_window(limit=3, period=10)
    seen = []
    for step in (0, 2, 2):
        clock.advance(step)
        reply = await emu_api.post(TASK, {})
        seen.append((reply.status, *window_headers(reply)))
    assert seen == [(200, "3", "2", "10"), (200, "3", "1", "8"), (200, "3", "0", "6")]
    clock.advance(1)  # t=5; the first request leaves the window at t=10
    refused = await emu_api.post(TASK, {})
    assert refused.status == 429
    assert refused.error["code"] == "RATE_LIMITED"
    assert refused.error["retryAfter"] == 5
    assert refused.headers["Retry-After"] == "5"
    assert window_headers(refused) == ("3", "0", "5")
    assert len(emu.state.tasks) == 3  # the refused one was not applied
    record = emu.requests.last
    assert (record.applied, record.limited_by, record.portal) == (False, "window", DEFAULT_PORTAL)
    assert emu.stats.window_limited == 1 and emu.stats.rate_limited == 1
    clock.advance(5)  # t=10
    again = await emu_api.post(TASK, {})
    assert (again.status, *window_headers(again)) == (200, "3", "0", "2")


async def test_window_counts_requests_a_later_limit_refuses(emu, emu_api):
    emu.set_window(limit=5, period=60)
    emu.set_portal_limit(per_second=1, burst=1, rest_per_second=None)
    first, second = [await emu_api.get("/mail/mailboxes/1") for _ in range(2)]
    assert (first.status, second.status) == (200, 429)
    assert window_headers(second)[1] == "3"


async def test_limits_argument_of_the_factory(mail_emulator_factory, make_api):
    emu = mail_emulator_factory(limits=LimitSettings(window=WindowSettings(limit=2)))
    api = make_api(emu)
    statuses = [(await api.get("/mail/mailboxes")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    emu.reset()  # every limit off again
    reply = await api.get("/mail/mailboxes")
    assert reply.status == 200 and "X-RateLimit-Limit" not in reply.headers


async def test_documented_limits_time_scaled(emu, emu_api):
    emu.enable_gateway_limits(time_scale=0.1)
    reply = await emu_api.get("/mail/mailboxes")
    assert window_headers(reply) == ("300", "299", "6")
    me = await emu_api.get("/me")
    assert me.data["rateLimit"] == {"requestsPerSecond": 100}
    emu.disable_gateway_limits()
    assert "X-RateLimit-Limit" not in (await emu_api.get("/mail/mailboxes")).headers


# ----------------------------------------------------------------- portal bucket
async def test_keys_of_one_portal_share_its_bucket(emu, emu_api, clock):
    emu.add_key("vibe_api_same_portal")
    emu.add_key("vibe_api_other_portal", portal=OTHER_PORTAL)
    emu.set_portal_limit(per_second=1, burst=2, rest_per_second=None)

    async def status(key):
        return (await emu_api.request("GET", "/mail/mailboxes/1", key=key)).status

    assert await status(emu.api_key) == 200
    assert await status("vibe_api_same_portal") == 200
    refused = await emu_api.request("GET", "/mail/mailboxes/1", key="vibe_api_same_portal")
    assert refused.status == 429
    assert refused.error["code"] == "RATE_LIMITED"
    assert refused.error["message"] == "QUERY_LIMIT_EXCEEDED"
    assert refused.error["retryAfter"] == 2 and refused.headers["Retry-After"] == "2"
    assert await status(emu.api_key) == 429
    assert await status("vibe_api_other_portal") == 200  # its own portal, its own bucket
    assert emu.stats.portal_limited == 2
    assert emu.requests.last.portal == OTHER_PORTAL
    clock.advance(1)
    assert await status(emu.api_key) == 200


async def test_portal_figures_per_portal(emu, emu_api):
    emu.add_key("vibe_api_other_portal", portal=OTHER_PORTAL)
    emu.set_portal_limit(per_second=1, burst=1, rest_per_second=None, retry_after=0.5)
    emu.set_portal_limit(None, portal=OTHER_PORTAL)
    assert [(await emu_api.get("/mail/mailboxes")).status for _ in range(2)] == [200, 429]
    assert emu.requests.last.limited_by == "portal"
    assert (await emu_api.get("/mail/mailboxes")).error["retryAfter"] == 0.5
    other = [
        (await emu_api.request("GET", "/mail/mailboxes", key="vibe_api_other_portal")).status
        for _ in range(5)
    ]
    assert other == [200] * 5


# ----------------------------------------------------------------- circuit breaker
async def test_breaker_blocks_only_the_looping_request(emu, emu_api):
    emu.add_key("vibe_api_second")
    emu.set_circuit_breaker(threshold=3, period=3600, retry_after=1, probe_every=4)
    looping = [await emu_api.get("/mail/messages/999999") for _ in range(3)]
    assert {r.error["code"] for r in looping} == {"ENTITY_NOT_FOUND"}
    blocked = await emu_api.get("/mail/messages/999999")
    assert blocked.status == 429
    assert blocked.error["code"] == "ERROR_LOOP_DETECTED"
    assert blocked.error["retryAfter"] == 1 and blocked.headers["Retry-After"] == "1"
    assert emu.requests.last.limited_by == "breaker"
    # Other requests of the key, the same path with another query, another key: unaffected.
    assert (await emu_api.get("/mail/messages/1001")).status == 200
    assert (await emu_api.get("/mail/messages/999999", limit=1)).status == 404
    second = await emu_api.request("GET", "/mail/messages/999999", key="vibe_api_second")
    assert second.status == 404
    # Blocked twice more, then the 4th blocked request goes through as a probe (and fails).
    statuses = [(await emu_api.get("/mail/messages/999999")).status for _ in range(4)]
    assert statuses == [429, 429, 404, 429]
    assert emu.stats.loop_detected == 4


async def test_blocked_request_is_not_executed_and_a_probe_recovers(emu, emu_api):
    emu.set_circuit_breaker(threshold=3, retry_after=1, probe_every=2)
    emu.faults.schedule("502", "502", "502", paths=TASK)
    assert [(await emu_api.post(TASK, {})).status for _ in range(3)] == [502] * 3
    blocked = await emu_api.post(TASK, {})
    assert blocked.error["code"] == "ERROR_LOOP_DETECTED"
    assert emu.state.tasks == []  # would have succeeded: it never ran
    assert emu.requests.last.applied is False
    assert (await emu_api.post(TASK, {})).status == 200  # the probe, now healthy
    assert (await emu_api.post(TASK, {})).status == 200  # the success reset the breaker
    assert len(emu.state.tasks) == 2


# ----------------------------------------------------------------- GET /v1/me
async def test_me_describes_the_default_key(api, mail_emulator):
    reply = await api.get("/me")
    assert reply.status == 200
    assert reply.data == {
        "scopes": ["mail"],
        "rateLimit": {"requestsPerSecond": 10},
        "portal": DEFAULT_PORTAL,
        "expiresAt": None,
        "accessMode": "FULL",
        "status": "ACTIVE",
    }
    assert mail_emulator.requests.last.path == "/me"


async def test_me_needs_a_valid_key_but_no_mail_scope(emu, emu_api):
    expires = datetime(2099, 1, 1, tzinfo=UTC)
    emu.add_key("vibe_api_crm", scopes=("crm",), portal=OTHER_PORTAL, expires_at=expires)
    emu.set_portal_limit(per_second=5, burst=250, portal=OTHER_PORTAL)
    me = await emu_api.request("GET", "/me", key="vibe_api_crm")
    assert me.data == {
        "scopes": ["crm"],
        "rateLimit": {"requestsPerSecond": 5},
        "portal": OTHER_PORTAL,
        "expiresAt": "2099-01-01T00:00:00+00:00",
        "accessMode": "FULL",
        "status": "ACTIVE",
    }
    mail = await emu_api.request("GET", "/mail/mailboxes", key="vibe_api_crm")
    assert mail.error["code"] == "SCOPE_DENIED"
    assert (await emu_api.request("GET", "/me", key="vibe_api_nobody")).status == 401
    emu.add_key("vibe_api_old", expires_at=datetime.now(UTC) - timedelta(days=1))
    expired = await emu_api.request("GET", "/me", key="vibe_api_old")
    assert expired.error["code"] == "KEY_EXPIRED"
