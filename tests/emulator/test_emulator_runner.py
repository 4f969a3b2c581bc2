"""The runners, the fixtures, the request log, the seeded state and the tolerance knobs."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
import warnings
from datetime import datetime

import aiohttp
import pytest

from bitrix_mail_async.testing import (
    DEFAULT_API_KEY,
    Faults,
    KeyInfo,
    MailEmulator,
    PortalState,
    RecordedRequest,
    create_app,
)
from bitrix_mail_async.testing.server import serve_forever
from bitrix_mail_async.testing.state import MSK


# ----------------------------------------------------------------- request log
async def test_request_log_redacts_secrets(api, mail_emulator):
    mail_emulator.add_key("vibe_app_secret", app=True, tokens=("tok-123",))
    await api.request(
        "POST",
        "/mail/messages/1001/task",
        json={"title": "T"},
        key="vibe_app_secret",
        headers={"Authorization": "Bearer tok-123", "X-Trace": "abc"},
    )
    record = mail_emulator.requests.last
    assert isinstance(record, RecordedRequest)
    assert (record.method, record.path, record.json, record.status) == (
        "POST",
        "/mail/messages/1001/task",
        {"title": "T"},
        200,
    )
    assert record.headers["X-Api-Key"] == "***"
    assert record.headers["Authorization"] == "***"
    assert record.headers["X-Trace"] == "abc"
    assert "vibe_app_secret" not in repr(list(mail_emulator.requests))
    assert "tok-123" not in repr(list(mail_emulator.requests))
    assert record.applied is True
    assert record.time <= time.time()


async def test_request_log_query_and_filters(api, mail_emulator):
    await api.get("/mail/messages", mailboxId=1, limit=5)
    await api.get("/mail/messages/1001")
    await api.post("/mail/recipients/contacts", {"query": "a"})
    await api.request("POST", "/mail/messages", data="{bad", headers={"Content-Type": "text/plain"})
    log = mail_emulator.requests
    assert len(log) == 4
    assert log[0].query == {"mailboxId": "1", "limit": "5"}
    assert log[0].path == "/mail/messages"
    assert [r.path for r in log.filter(method="get")] == ["/mail/messages", "/mail/messages/1001"]
    assert len(log.filter(path_prefix="/mail/messages")) == 3
    assert log.filter(status=400)[0].json == "{bad"
    assert [r.method for r in log[1:3]] == ["GET", "POST"]
    log.clear()
    assert len(log) == 0
    assert mail_emulator.stats.requests == 4
    assert mail_emulator.stats.by_status == {200: 3, 400: 1}
    mail_emulator.reset()
    assert mail_emulator.stats.requests == 0


# ----------------------------------------------------------------- runners
async def test_async_runner_serves_and_shuts_down_cleanly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with MailEmulator(messages=10, seed=1) as emulator:
            assert emulator.started
            assert emulator.base_url.startswith("http://127.0.0.1:")
            assert emulator.base_url.endswith("/v1")
            async with (
                aiohttp.ClientSession(headers={"X-Api-Key": emulator.api_key}) as http,
                http.get(emulator.base_url + "/mail/mailboxes/1") as resp,
            ):
                assert resp.status == 200
                assert (await resp.json())["data"]["item"]["id"] == 1
            port = emulator.port
        assert not emulator.started
        gc.collect()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more


async def test_async_runner_closes_open_keepalive_connections():
    emulator = MailEmulator()
    await emulator.start()
    http = aiohttp.ClientSession(headers={"X-Api-Key": emulator.api_key})
    try:
        async with http.get(emulator.base_url + "/mail/mailboxes") as resp:
            assert resp.status == 200
        started = time.monotonic()
        await emulator.close()
        # Not aiohttp's keep-alive wait (75 s) for the idle connection; room for a slow machine.
        assert time.monotonic() - started < 10.0
    finally:
        await http.close()


def test_thread_runner_without_any_event_loop():
    with MailEmulator(api_key="vibe_api_thread").in_thread() as emulator:
        base_url = emulator.base_url

        async def fetch() -> int:
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    base_url + "/mail/mailboxes", headers={"X-Api-Key": "vibe_api_thread"}
                ) as r,
            ):
                return r.status

        assert asyncio.run(fetch()) == 200
        assert emulator.stats.requests == 1
    assert not emulator.started
    emulator.stop()  # stopping twice is harmless


def test_start_twice_is_an_error():
    emulator = MailEmulator().start_in_thread()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            emulator.start_in_thread()
    finally:
        emulator.stop()


def test_base_url_needs_a_started_emulator():
    with pytest.raises(RuntimeError, match="not started"):
        _ = MailEmulator().base_url


def test_busy_port_fails_fast(mail_emulator):
    with pytest.raises(OSError):  # noqa: PT011 - the errno differs by platform
        MailEmulator(port=mail_emulator.port).start_in_thread()


def test_fixture_gives_a_started_default_emulator(mail_emulator):
    assert mail_emulator.started
    assert mail_emulator.api_key == DEFAULT_API_KEY == "vibe_api_emulator_test_key"
    assert len(mail_emulator.state.messages) == 60
    assert mail_emulator.limiter.per_second is None


def test_factory_starts_customised_emulators(mail_emulator_factory):
    big = mail_emulator_factory(messages=1500, rate=5, burst=10)
    other = mail_emulator_factory(seed=9, api_key="vibe_api_k2")
    assert big.started
    assert other.started
    assert big.port != other.port
    assert len(big.state.messages) == 1500
    assert big.limiter.per_second == 5
    assert other.api_key == "vibe_api_k2"


async def test_serve_forever_prints_url_and_key(capsys):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    task = asyncio.create_task(serve_forever(port=port, messages=5))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if "API key" in capsys.readouterr().out + "":
            break
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": DEFAULT_API_KEY}) as http,
        http.get(f"http://127.0.0.1:{port}/v1/mail/mailboxes") as resp,
    ):
        assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_create_app_alone():
    from aiohttp.test_utils import TestClient, TestServer

    app = create_app(PortalState(messages=3), keys=["vibe_api_a", KeyInfo("vibe_api_b")])
    async with TestClient(TestServer(app)) as client:
        for key in ("vibe_api_a", "vibe_api_b"):
            resp = await client.get("/v1/mail/messages/1001", headers={"X-Api-Key": key})
            assert resp.status == 200
        resp = await client.get("/v1/mail/messages/1001")
        assert resp.status == 401


# ----------------------------------------------------------------- state
def test_seeding_is_deterministic():
    first, second, other = PortalState(seed=5), PortalState(seed=5), PortalState(seed=6)
    dump = lambda s: json.dumps([s.full(m) for m in s.messages.values()])  # noqa: E731
    assert dump(first) == dump(second)
    assert dump(first) != dump(other)
    assert first.contacts == second.contacts


def test_seeded_portal_shape():
    state = PortalState()
    assert sorted(state.mailboxes) == [1, 2, 3]
    assert all(1 <= len(state.senders[i]) <= 2 for i in state.mailboxes)
    assert min(state.messages) == 1001
    assert max(state.messages) == 1060
    counts = {i: state.mailbox_count(i) for i in state.mailboxes}
    assert counts[1] > counts[2] + counts[3]
    assert any(len(ids) > 1 for ids in state.threads.values())
    assert state.folders == ("INBOX", "Sent", "Spam", "Trash", "Archive")
    assert 25 <= len(state.contacts) <= 35
    assert len(state.employees) == 20


def test_seeding_100k_messages_is_fast():
    started = time.perf_counter()
    state = PortalState(messages=100_000)
    assert time.perf_counter() - started < 2.0
    assert len(state.messages) == 100_000
    page = state.page_ids(1, 50_000, 200)
    assert len(page) == 200


def test_add_message_orders_by_date():
    state = PortalState(messages=10)
    newest = state.add_message(subject="fresh")
    assert state.mailbox_message_ids(1)[0] == newest["id"]
    old = state.add_message(subject="old", date=datetime(2001, 1, 1, tzinfo=MSK))
    assert state.mailbox_message_ids(1)[-1] == old["id"]
    naive = state.add_message(subject="naive", date=datetime(2002, 1, 1))
    assert naive["date"].tzinfo is MSK
    reply = state.add_message(subject="Re: fresh", thread_of=newest["id"])
    assert state.threads[newest["threadId"]] == [newest["id"], reply["id"]]
    with pytest.raises(KeyError):
        state.add_message(mailbox_id=42)


async def test_added_message_is_served(api, mail_emulator):
    msg = mail_emulator.state.add_message(
        mailbox_id=2, subject="Injected", to=["a@x.test", "b@x.test"], cc="c@x.test"
    )
    items = (await api.get("/mail/messages", mailboxId=2, limit=1)).data["items"]
    assert items[0]["id"] == msg["id"]
    assert items[0]["to"] == "a@x.test, b@x.test"
    assert items[0]["cc"] == "c@x.test"
    assert items[0]["isSeen"] is False
    unseen = await api.get("/mail/messages", mailboxId=2, isSeen="false", limit=200)
    assert msg["id"] in [i["id"] for i in unseen.data["items"]]  # filter cache invalidated


# ----------------------------------------------------------------- tolerance knobs
async def test_options_knobs(api, mail_emulator):
    options = mail_emulator.state.options
    options.mailboxes_shape = "items"
    options.mailbox_get_shape = "bare"
    options.thread_shape = "items"
    options.list_meta = False
    mailboxes = await api.get("/mail/mailboxes")
    assert [m["id"] for m in mailboxes.data["items"]] == [1, 2, 3]
    assert "meta" not in mailboxes.body
    assert (await api.get("/mail/mailboxes/1")).data["id"] == 1
    thread = await api.get("/mail/messages/1001/thread")
    assert thread.data["items"][0]["id"] in mail_emulator.state.threads[1]
    messages = await api.get("/mail/messages", mailboxId=1)
    assert set(messages.body) == {"success", "data"}


def test_faults_reset():
    faults = Faults(seed=1)
    first = [faults.rng.random() for _ in range(3)]
    faults.error_rate = 0.3
    faults.schedule("502", "html")
    faults.reset()
    assert faults.error_rate == 0
    assert faults.pending == []
    assert [faults.rng.random() for _ in range(3)] == first
