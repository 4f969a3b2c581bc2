"""Escape hatches over real HTTP: ``request()``, ``with_raw_response``, ``with_options``."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from bitrix_mail_async import (
    KeyInfo,
    MailClient,
    Message,
    RawResponse,
    RetryPolicy,
    errors,
    from_dict,
    to_dict,
)
from bitrix_mail_async._keys import REGISTRY, key_id
from bitrix_mail_async.resources.mailboxes import Mailboxes
from bitrix_mail_async.resources.messages import Messages
from bitrix_mail_async.resources.recipients import Recipients
from bitrix_mail_async.testing import MailEmulator
from bitrix_mail_async.testing.limits.gateway import LimitSettings
from bitrix_mail_async.testing.limits.window import WindowSettings

from .conftest import FAST_RETRY, ScriptedServer
from .virtual_time import with_virtual_emulator

SENDER = "Sales Team <sales@emulator.bitrix24.test>"
OK_ITEM = {"success": True, "data": {"item": {"id": 7, "email": "a@b.c"}}}


def hits(emu: MailEmulator, method: str, path: str) -> int:
    return sum(1 for r in emu.requests if r.method == method and r.path == path)


# ------------------------------------------------------------------------------ request()
async def test_request_returns_the_data_of_an_unwrapped_route(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    data = await mail.request("GET", "/me")
    assert data["portal"] == "emulator.bitrix24.test"
    assert from_dict(data, KeyInfo) == await mail.me()
    assert hits(mail_emulator, "GET", "/me") == 2


async def test_request_sends_params_as_the_gateway_spells_them(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    params = {"mailboxId": 1, "isSeen": False, "limit": 2, "folder": None}
    data = await mail.request("get", "/mail/messages", params=params)
    assert len(data["items"]) == 2
    sent = mail_emulator.requests[-1]
    assert sent.query == {"mailboxId": "1", "isSeen": "false", "limit": "2"}
    assert all(item["isSeen"] is False for item in data["items"])


async def test_request_posts_its_json_body(mail: MailClient, mail_emulator: MailEmulator) -> None:
    data = await mail.request(
        "POST", "/mail/messages/1001/task", json={"messageId": 1001, "title": "Call back"}
    )
    assert data["taskId"] > 0
    assert mail_emulator.requests[-1].json == {"messageId": 1001, "title": "Call back"}
    await mail.request("POST", "/mail/messages/1001/chat")
    assert mail_emulator.requests[-1].json == {}  # a POST without json= sends an empty object


async def test_request_maps_errors_to_the_typed_ones(mail: MailClient) -> None:
    with pytest.raises(errors.NotFoundError) as info:
        await mail.request("GET", "/mail/messages/999999")
    assert info.value.code == "ENTITY_NOT_FOUND"
    assert (info.value.method, info.value.path) == ("GET", "/mail/messages/999999")


async def test_request_get_is_retried_like_every_get(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("502", "502", methods=["GET"])
    assert (await mail.request("GET", "/mail/mailboxes/1"))["item"]["id"] == 1
    assert hits(mail_emulator, "GET", "/mail/mailboxes/1") == 3


async def test_request_post_is_a_side_effect_never_repeated_after_a_5xx(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("502", methods=["POST"])
    body = {"from": SENDER, "to": ["a@x.io"], "subject": "once", "body": "b"}
    with pytest.raises(errors.UpstreamOutcomeUnknownError) as info:
        await mail.request("POST", "/mail/messages", json=body)
    assert info.value.request["json"] == body
    assert hits(mail_emulator, "POST", "/mail/messages") == 1


async def test_request_post_is_repeated_after_a_429_and_lands_once(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    mail_emulator.faults.schedule("429", methods=["POST"])
    body = {"from": SENDER, "to": ["a@x.io"], "subject": "s429", "body": "b"}
    data = await mail.request("POST", "/mail/messages", json=body)
    assert data["success"] is True
    assert hits(mail_emulator, "POST", "/mail/messages") == 2
    assert len(mail_emulator.state.sent) == 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "says"),
    [
        ("DELETE", "/me", {}, "'GET' or 'POST'"),
        (1, "/me", {}, "'GET' or 'POST'"),
        ("GET", "me", {}, "start with a single '/'"),
        ("GET", "//evil.example/v1/me", {}, "start with a single '/'"),
        ("GET", "https://evil.example/v1/me", {}, "start with a single '/'"),
        ("GET", b"/me", {}, "path must be a str"),
        ("GET", "/mail/../me", {}, "'..' segments"),
        ("GET", "/mail/%2e%2E/me", {}, "'..' segments"),
        ("GET", "/mail/%2F..%2Fme", {}, "'..' segments"),
        ("GET", "/me?limit=1", {}, "use params="),
        ("GET", "/me#top", {}, "use params="),
        ("GET", "/mail/a b", {}, "percent-encode"),
        ("GET", "/mail/\u00e9", {}, "percent-encode"),
        ("GET", "/mail\\..\\me", {}, "percent-encode"),
        ("GET", "/mail/%zz", {}, "percent-encode"),
        ("GET", "/mail\r\nX-Evil: 1", {}, "percent-encode"),
        ("GET", "/" + "a" * 3000, {}, "longer than"),
        ("GET", "/v1/me", {}, "pass '/me'"),
        ("GET", "/me", {"params": [("a", "b")]}, "params must be a mapping"),
        ("GET", "/me", {"params": {1: "x"}}, "non-empty strings"),
        ("GET", "/me", {"params": {"a": [1, 2]}}, "params['a'] must be"),
        ("GET", "/me", {"params": {"a": float("nan")}}, "params['a'] must be"),
        ("GET", "/me", {"json": {"a": 1}}, "a GET sends no body"),
        ("POST", "/mail/x", {"json": [1, 2]}, "json must be a mapping"),
        ("POST", "/mail/x", {"json": {"a": {1, 2}}}, "cannot be encoded"),
        ("GET", "/me", {"timeout": 0}, "timeout must be a positive"),
    ],
)
async def test_request_refuses_bad_input_before_sending(
    mail: MailClient,
    mail_emulator: MailEmulator,
    method: Any,
    path: Any,
    kwargs: dict[str, Any],
    says: str,
) -> None:
    with pytest.raises(errors.InvalidArgumentError) as info:
        await mail.request(method, path, **kwargs)
    assert says in str(info.value)
    assert len(mail_emulator.requests) == 0
    assert mail.stats.requests == 0


# ------------------------------------------------------------------------------ raw responses
async def test_raw_get_pairs_status_headers_and_data_with_the_model(
    mail_emulator_factory: Callable[..., MailEmulator],
) -> None:
    emulator = mail_emulator_factory(limits=LimitSettings(window=WindowSettings()))
    async with MailClient(emulator.api_key, base_url=emulator.base_url, rate_limit=None) as mail:
        raw = await mail.with_raw_response.messages.get(1001)
        assert isinstance(raw, RawResponse)
        assert raw.status == 200
        assert raw.parsed == await mail.messages.get(1001)
        assert isinstance(raw.parsed, Message)
        assert raw.data["item"]["id"] == 1001
        assert raw.data["item"]["mailboxId"] == raw.parsed.mailbox_id
        # The gateway's window headers, read case-insensitively.
        assert raw.headers["X-RateLimit-Limit"] == "300"
        assert int(raw.headers["x-ratelimit-remaining"]) < 300
        assert raw.request_id == raw.sent_request_id  # the emulator sends none: ours
        assert repr(raw) == "RawResponse(status=200)"
        assert emulator.api_key not in repr(raw)


async def test_raw_request_id_from_the_final_answer_after_a_retry(
    scripted: ScriptedServer, scripted_client: Callable[..., MailClient]
) -> None:
    scripted.push(502, {"success": False, "error": {"code": "BITRIX_UNAVAILABLE"}}, {})
    scripted.push(200, OK_ITEM, {"X-Request-Id": "req-final", "X-Extra": "1"})
    async with scripted_client() as mail:
        raw = await mail.with_raw_response.mailboxes.get(7)
        assert raw.parsed.id == 7
        assert raw.request_id == "req-final"
        assert raw.headers["x-extra"] == "1"
        scripted.push(200, OK_ITEM, {"x-correlation-id": "corr-1"})
        assert (await mail.with_raw_response.mailboxes.get(7)).request_id == "corr-1"
    assert len(scripted.hits) == 3


async def test_raw_request_and_me(mail: MailClient) -> None:
    raw = await mail.with_raw_response.request("GET", "/me")
    assert raw.parsed == raw.data
    assert raw.data["portal"] == "emulator.bitrix24.test"
    me = await mail.with_raw_response.me()
    assert me.parsed == from_dict(me.data, KeyInfo)


async def test_raw_list_is_the_first_page_and_checks_arguments_at_once(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        mail.with_raw_response.messages.list(0)  # not awaited: refused when called
    raw = await mail.with_raw_response.messages.list(1, page_size=5)
    assert [m.id for m in raw.parsed.items] == mail_emulator.state.mailbox_message_ids(1)[:5]
    assert [m["id"] for m in raw.data["items"]] == [m.id for m in raw.parsed.items]
    assert raw.parsed.has_more
    assert mail_emulator.requests[-1].query["limit"] == "5"
    contacts = await mail.with_raw_response.recipients.iter_contacts(page_size=2)
    assert len(contacts.parsed.items) == 2


async def test_raw_side_effects_and_errors(mail: MailClient, mail_emulator: MailEmulator) -> None:
    raw = mail.with_raw_response.messages
    sent = await raw.send(from_=SENDER, to=["a@x.io"], subject="raw", body="b")
    assert sent.parsed.success
    assert sent.data["success"] is True
    moved = await raw.move([1001], action="spam")
    assert moved.parsed.moved_count == moved.data["movedCount"] == 1
    with pytest.raises(errors.NotFoundError):
        await raw.get(999999)
    with pytest.raises(errors.InvalidArgumentError):
        await raw.move([1001], action="archive")  # type: ignore[arg-type]
    assert hits(mail_emulator, "POST", "/mail/messages/move") == 1


async def test_concurrent_raw_calls_each_get_their_own_answer(mail: MailClient) -> None:
    raw = mail.with_raw_response.messages
    ids = list(range(1001, 1011))
    results = await asyncio.gather(*(raw.get(i) for i in ids))
    assert [r.parsed.id for r in results] == ids
    assert [r.data["item"]["id"] for r in results] == ids


def _public_calls(cls: type[Any]) -> set[str]:
    """The coroutine methods and pager methods a raw view must offer."""
    names = set()
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        returns = str(inspect.signature(member).return_annotation)
        if not name.startswith("_") and (inspect.iscoroutinefunction(member) or "Pager" in returns):
            names.add(name)
    return names


@pytest.mark.parametrize(
    ("resource", "view"),
    [(Mailboxes, "mailboxes"), (Messages, "messages"), (Recipients, "recipients")],
)
async def test_every_call_has_its_raw_twin(
    mail: MailClient, resource: type[Any], view: str
) -> None:
    calls = _public_calls(resource)
    assert calls
    raw_view = getattr(mail.with_raw_response, view)
    assert {name for name in calls if callable(getattr(raw_view, name, None))} == calls


# ------------------------------------------------------------------------------ with_options
async def test_a_view_shares_counters_and_key_state_and_closing_it_closes_nothing(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    name = key_id(mail_emulator.api_key, mail.base_url)
    async with mail.with_options(timeout=5, retry=RetryPolicy.never()) as view:
        assert view is not mail
        assert (await view.mailboxes.get(1)).id == 1
        assert view.stats is mail.stats
        assert mail.stats.requests == 1
        assert REGISTRY.users(name) == 1  # the view claims nothing of its own
        await view.close()
    assert not mail.closed and not view.closed
    assert REGISTRY.users(name) == 1
    assert (await mail.mailboxes.get(1)).id == 1
    assert (await view.messages.get(1001)).id == 1001
    await mail.close()
    assert view.closed
    assert REGISTRY.users(name) == 0
    with pytest.raises(errors.ConfigurationError):
        await view.mailboxes.get(1)


async def test_a_views_retry_policy_applies_to_its_calls_only(
    mail: MailClient, mail_emulator: MailEmulator
) -> None:
    never = mail.with_options(retry=RetryPolicy.never())
    mail_emulator.faults.schedule("502", methods=["GET"])
    with pytest.raises(errors.UpstreamUnavailableError):
        await never.mailboxes.get(1)
    assert hits(mail_emulator, "GET", "/mail/mailboxes/1") == 1
    mail_emulator.faults.schedule("502", methods=["GET"])
    assert (await mail.mailboxes.get(1)).id == 1  # the parent still retries
    assert hits(mail_emulator, "GET", "/mail/mailboxes/1") == 3
    raw = await never.with_raw_response.mailboxes.get(1)
    assert raw.status == 200


def test_a_views_timeout_is_its_default_and_views_of_views_keep_it() -> None:
    async def scenario(emulator: MailEmulator) -> None:
        async with MailClient(
            emulator.api_key, base_url=emulator.base_url, rate_limit=None, retry=FAST_RETRY
        ) as mail:
            quick = mail.with_options(timeout=0.2).with_options(retry=RetryPolicy.never())
            emulator.faults.schedule("slow:1", "slow:1", methods=["GET"])
            with pytest.raises(errors.TimeoutError):
                await quick.mailboxes.get(1)
            assert (await mail.mailboxes.get(1)).id == 1  # 30 s default: waits the second out
            assert hits(emulator, "GET", "/mail/mailboxes/1") == 2

    with_virtual_emulator(scenario)


async def test_a_view_keeps_the_resources_settings(mail_emulator: MailEmulator) -> None:
    async with MailClient(
        mail_emulator.api_key,
        base_url=mail_emulator.base_url,
        rate_limit=None,
        portal_timezone="Europe/Moscow",
    ) as mail:
        view = mail.with_options(timeout=10)
        start = datetime(2026, 5, 25, 7, 0, tzinfo=UTC)
        await view.messages.create_calendar_event(
            1001, date_from=start, date_to=start + timedelta(hours=1)
        )
        sent = mail_emulator.requests[-1].json
        assert (sent["dateFrom"], sent["dateTo"]) == ("2026-05-25 10:00:00", "2026-05-25 11:00:00")


class GatedServer:
    """Answers each request once another one is in flight too (or after a short wait)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.company = asyncio.Event()
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= 2:
            self.company.set()
        try:
            # Only a lower bound: a lone request is answered after the wait, whatever the speed.
            await asyncio.wait_for(self.company.wait(), 0.2)
        except TimeoutError:
            pass
        finally:
            self.in_flight -= 1
        return web.Response(text=json.dumps(OK_ITEM), content_type="application/json")


@pytest.fixture
async def gated() -> AsyncIterator[GatedServer]:
    server = GatedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    yield server
    await runner.cleanup()


async def test_a_views_max_concurrency_is_its_own_limit(gated: GatedServer) -> None:
    async with MailClient("vibe_api_gated", base_url=gated.base_url, rate_limit=None) as mail:
        single = mail.with_options(max_concurrency=1)
        await asyncio.gather(*(single.mailboxes.get(7) for _ in range(3)))
        assert gated.most == 1
        await asyncio.gather(*(mail.mailboxes.get(7) for _ in range(3)))
        assert gated.most >= 2


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": "5"},
        {"retry": 3},
        {"max_concurrency": 0},
        {"max_concurrency": True},
    ],
)
async def test_with_options_refuses_bad_options(mail: MailClient, options: dict[str, Any]) -> None:
    with pytest.raises(errors.ConfigurationError):
        mail.with_options(**options)


# ------------------------------------------------------------------------------ conversion, typing
async def test_to_dict_and_from_dict_round_trip_a_gateway_answer(mail: MailClient) -> None:
    raw = await mail.with_raw_response.messages.get(1001)
    msg = raw.parsed
    wire = to_dict(msg, wire=True)
    assert {k: wire[k] for k in raw.data["item"] if k not in ("to", "cc")} == {
        k: v for k, v in raw.data["item"].items() if k not in ("to", "cc")
    }
    assert from_dict(wire, Message) == msg
    plain = to_dict(msg)
    assert (plain["from_"], plain["mailbox_id"], plain["extra"]) == (msg.from_, msg.mailbox_id, {})
    assert msg.date is not None
    assert json.loads(json.dumps(plain))["date"] == msg.date.isoformat()


def test_to_dict_and_from_dict_refuse_what_is_not_a_model() -> None:
    with pytest.raises(errors.InvalidArgumentError, match="takes a model"):
        to_dict({"id": 1})
    with pytest.raises(TypeError):  # also a TypeError, as Python's own conversions raise
        to_dict(Message)
    with pytest.raises(errors.InvalidArgumentError, match="model class"):
        from_dict({"id": 1}, dict)
    with pytest.raises(errors.DecodeError, match="Message"):
        from_dict({"subject": "no id"}, Message)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({"email": "ann@x.io", "name": "Ann", "sender": "Ann <ann@x.io>"}, "Ann <ann@x.io>"),
        ({"email": "ann@x.io", "name": "Ann"}, "Ann <ann@x.io>"),
        ({"email": "ann@x.io", "name": "Ann", "sender": None}, "Ann <ann@x.io>"),
        ({"email": "ann@x.io", "name": "Doe, Ann", "sender": ""}, '"Doe, Ann" <ann@x.io>'),
        ({"email": "ann@x.io"}, "ann@x.io"),
        ({"name": "Ann"}, ""),
    ],
)
async def test_a_sender_always_has_a_from_string(
    scripted: ScriptedServer,
    scripted_client: Callable[..., MailClient],
    wire: dict[str, Any],
    expected: str,
) -> None:
    scripted.push(200, {"success": True, "data": {"items": [wire]}})
    async with scripted_client() as mail:
        sender = (await mail.mailboxes.senders(1))[0]
        assert sender.sender == expected
        if not expected:
            # Refused before sending, with the argument named.
            with pytest.raises(errors.InvalidArgumentError, match="from_"):
                await mail.messages.send(from_=sender.sender, to="b@x.io", subject="s", body="b")
    assert len(scripted.hits) == 1


async def test_request_refuses_absurdly_deep_data(
    scripted: ScriptedServer, scripted_client: Any
) -> None:
    # Typed calls check what they keep untyped; request() hands out all of data untyped.
    deep: Any = []
    for _ in range(150):
        deep = [deep]
    scripted.push(200, {"success": True, "data": {"x": deep}})
    scripted.push(200, {"success": True, "data": {"x": deep}})
    async with scripted_client() as mail:
        with pytest.raises(errors.DecodeError, match="nested deeper than 100") as got:
            await mail.request("GET", "/custom")
        assert not isinstance(got.value, errors.OutcomeUnknownError)
        with pytest.raises(errors.OutcomeUnknownDecodeError, match="nested"):
            await mail.request("POST", "/custom", json={"a": 1})
    assert len(scripted.hits) == 2  # neither repeated
