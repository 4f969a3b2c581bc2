"""The per-key rate limit and every kind of injected fault, seen from a raw aiohttp client."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

TASK = "/mail/messages/1001/task"


# ----------------------------------------------------------------- rate limit
async def test_rate_limit_answers_429_with_retry_after(api, mail_emulator):
    mail_emulator.set_rate_limit(1, burst=3)
    statuses = [(await api.get("/mail/mailboxes/1")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = await api.get("/mail/mailboxes/1")
    assert limited.status == 429
    assert limited.error["code"] == "RATE_LIMITED"
    assert limited.error["retryAfter"] == 1  # whole seconds, like the gateway
    assert limited.headers["Retry-After"] == "1"
    assert mail_emulator.stats.rate_limited == 1
    assert mail_emulator.stats.by_status[200] == 3
    assert mail_emulator.stats.by_status[429] == 1


async def test_rate_limit_whole_seconds_rounds_up(api, mail_emulator):
    mail_emulator.set_rate_limit(0.4, burst=1)
    assert (await api.get("/mail/mailboxes/1")).status == 200
    limited = await api.get("/mail/mailboxes/1")
    assert limited.headers["Retry-After"] == "3"  # 2.5 s until the next token
    assert limited.error["retryAfter"] == 3


async def test_rate_limit_fractional_retry_after_and_refill(api, mail_emulator):
    mail_emulator.set_rate_limit(20, burst=2, retry_after=0.2)
    assert [(await api.get("/mail/mailboxes/1")).status for _ in range(2)] == [200, 200]
    limited = await api.get("/mail/mailboxes/1")
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "0.2"
    assert limited.error["retryAfter"] == 0.2
    await asyncio.sleep(0.12)  # 20/s refills two tokens in 0.1 s
    assert (await api.get("/mail/mailboxes/1")).status == 200


async def test_rate_limit_is_per_key_and_can_be_disabled(api, mail_emulator):
    mail_emulator.add_key("vibe_api_second")
    mail_emulator.set_rate_limit(1, burst=1)
    assert (await api.get("/mail/mailboxes/1")).status == 200
    assert (await api.get("/mail/mailboxes/1")).status == 429
    other = await api.request("GET", "/mail/mailboxes/1", key="vibe_api_second")
    assert other.status == 200
    mail_emulator.set_rate_limit(None)
    assert [(await api.get("/mail/mailboxes/1")).status for _ in range(5)] == [200] * 5


async def test_rate_limited_post_applies_nothing(api, mail_emulator):
    mail_emulator.set_rate_limit(1, burst=1)
    assert (await api.post(TASK, {})).status == 200
    assert (await api.post(TASK, {})).status == 429
    assert len(mail_emulator.state.tasks) == 1


def test_constructor_rate_arguments(mail_emulator_factory):
    emulator = mail_emulator_factory(rate=2.0, burst=5, retry_after=0.5)
    limiter = emulator.limiter
    assert (limiter.per_second, limiter.burst, limiter.retry_after) == (2.0, 5, 0.5)
    with pytest.raises(ValueError, match="positive"):
        emulator.set_rate_limit(0)


# ----------------------------------------------------------------- scheduled faults
@pytest.mark.parametrize(("kind", "status"), [("502", 502), ("503", 503)])
async def test_upstream_errors_apply_nothing(api, mail_emulator, kind, status):
    mail_emulator.faults.schedule(kind)
    reply = await api.post(TASK, {})
    assert reply.status == status
    assert reply.body["success"] is False
    if kind == "502":
        assert reply.error["code"] == "BITRIX_UNAVAILABLE"
    assert mail_emulator.state.tasks == []
    record = mail_emulator.requests.last
    assert (record.fault, record.status, record.applied) == (kind, status, False)
    assert (await api.post(TASK, {})).status == 200  # consumed: the next one goes through


async def test_504_and_429_carry_retry_after(api, mail_emulator):
    mail_emulator.faults.fault_retry_after = 0.05
    mail_emulator.faults.schedule("504", "429")
    timeout = await api.get("/mail/mailboxes/1")
    assert timeout.status == 504
    assert timeout.error["retryAfter"] == 0.05
    assert timeout.headers["Retry-After"] == "0.05"
    limited = await api.get("/mail/mailboxes/1")
    assert (limited.status, limited.error["code"]) == (429, "RATE_LIMITED")
    assert limited.headers["Retry-After"] == "0.05"
    assert mail_emulator.stats.faults == 2
    assert mail_emulator.stats.rate_limited == 1


async def test_html_proxy_page(api, mail_emulator):
    mail_emulator.faults.schedule("html")
    reply = await api.get("/mail/mailboxes")
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body is None
    assert "Bad Gateway" in reply.text


async def test_success_false_with_200(api, mail_emulator):
    mail_emulator.faults.schedule("success_false_200")
    reply = await api.post(TASK, {})
    assert reply.status == 200
    assert reply.body["success"] is False
    assert reply.error["code"] == "BITRIX_ERROR"
    assert mail_emulator.state.tasks == []


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("malformed", '{"success": true, "data": {"ite'),
        ("empty", ""),
        ("no_data", '{"success":true}'),
    ],
)
async def test_broken_200_bodies_after_the_action(api, mail_emulator, kind, raw):
    mail_emulator.faults.schedule(kind)
    reply = await api.post(TASK, {})
    assert reply.status == 200
    assert reply.text == raw
    # The action ran: only the answer is broken, so the caller cannot know the outcome.
    assert len(mail_emulator.state.tasks) == 1
    assert mail_emulator.requests.last.applied is True


async def test_drop_before_applies_nothing_and_disconnects(api, mail_emulator):
    mail_emulator.faults.schedule("drop_before")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(TASK, {})
    assert mail_emulator.state.tasks == []
    record = mail_emulator.requests.last
    assert (record.status, record.fault, record.applied, record.dropped) == (
        None,
        "drop_before",
        False,
        True,
    )
    assert mail_emulator.stats.dropped == 1
    assert (await api.post(TASK, {})).status == 200  # the client reconnects fine


async def test_drop_after_applies_the_side_effect(api, mail_emulator):
    mail_emulator.faults.schedule("drop_after")
    body = {"from": "a@b.c", "to": ["x@y.z"], "subject": "lost answer", "body": "b"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post("/mail/messages", body)
    [entry] = mail_emulator.state.sent
    assert entry["request"]["subject"] == "lost answer"
    record = mail_emulator.requests.last
    assert (record.status, record.fault, record.applied) == (None, "drop_after", True)


async def test_drop_on_a_fresh_connection_get(mail_emulator):
    # aiohttp resends an idempotent request once when the server disconnects, even on a fresh
    # socket; a second drop is what the caller finally sees.
    mail_emulator.faults.schedule("drop_before", "drop_before", methods=["GET"])
    connector = aiohttp.TCPConnector(force_close=True)
    headers = {"X-Api-Key": mail_emulator.api_key}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.get(mail_emulator.base_url + "/mail/mailboxes")
        assert [r.fault for r in mail_emulator.requests] == ["drop_before", "drop_before"]
        mail_emulator.faults.schedule("drop_before", methods=["GET"])
        async with http.get(mail_emulator.base_url + "/mail/mailboxes") as resp:
            assert resp.status == 200
    assert [r.status for r in mail_emulator.requests] == [None, None, None, 200]


async def test_slow_fault_and_latency(api, mail_emulator):
    mail_emulator.faults.schedule("slow:0.2")
    started = time.monotonic()
    assert (await api.get("/mail/mailboxes/1")).status == 200
    assert time.monotonic() - started >= 0.2
    mail_emulator.faults.latency = 0.1
    mail_emulator.faults.latency_jitter = 0.05
    started = time.monotonic()
    assert (await api.get("/mail/mailboxes/1")).status == 200
    # At least the latency (a lower bound holds on any machine); the upper one guards a hang.
    assert 0.1 <= time.monotonic() - started < 5.0
    mail_emulator.faults.reset()
    assert mail_emulator.faults.latency == 0


async def test_client_timeout_against_slow_fault(api, mail_emulator):
    mail_emulator.faults.schedule("slow:0.3")
    with pytest.raises(asyncio.TimeoutError):
        await api.session.get(
            mail_emulator.base_url + "/mail/mailboxes/1",
            headers={"X-Api-Key": mail_emulator.api_key},
            timeout=aiohttp.ClientTimeout(total=0.1),
        )


async def test_schedule_filters_and_ok(api, mail_emulator):
    faults = mail_emulator.faults
    faults.error_rate = 1.0  # "ok" must win over random faults
    faults.schedule("ok", methods=["GET"])
    assert (await api.get("/mail/mailboxes/1")).status == 200
    faults.error_rate = 0.0
    faults.schedule("503", methods=["POST"], paths="/mail/messages/1001/")
    assert (await api.get("/mail/messages/1001")).status == 200
    assert (await api.post("/mail/messages/1002/task", {})).status == 200
    assert faults.pending == ["503"]
    assert (await api.post(TASK, {})).status == 503
    assert faults.pending == []


async def test_schedule_is_fifo(api, mail_emulator):
    mail_emulator.faults.schedule("502", "ok", "504")
    statuses = [(await api.get("/mail/mailboxes/1")).status for _ in range(4)]
    assert statuses == [502, 200, 504, 200]


def test_schedule_rejects_unknown_kinds(mail_emulator):
    with pytest.raises(ValueError, match="unknown fault"):
        mail_emulator.faults.schedule("418")
    with pytest.raises(ValueError, match="unknown fault"):
        mail_emulator.faults.schedule("slow:soon")
    assert mail_emulator.faults.pending == []


async def test_random_error_rate_is_reproducible(make_api, mail_emulator_factory):
    runs = []
    for _ in range(2):
        emulator = mail_emulator_factory(seed=3)
        emulator.faults.error_rate = 0.5
        api = make_api(emulator)
        runs.append([(await api.get("/mail/mailboxes/1")).status for _ in range(30)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 502, 503, 504}
    assert emulator.stats.faults == sum(1 for s in runs[1] if s != 200)


async def test_random_drops(api, mail_emulator):
    faults = mail_emulator.faults
    faults.drop_before_rate = 0.5
    faults.drop_after_rate = 0.5
    outcomes = []
    for _ in range(12):
        try:
            await api.post(TASK, {})
            outcomes.append("ok")
        except aiohttp.ServerDisconnectedError:
            outcomes.append("dropped")
    assert outcomes == ["dropped"] * 12
    records = mail_emulator.requests.filter(method="POST", path=TASK)
    after = [r for r in records if r.fault == "drop_after"]
    assert after
    assert len(mail_emulator.state.tasks) == len(after)
    assert all(r.applied for r in after)
    assert not any(r.applied for r in records if r.fault == "drop_before")
