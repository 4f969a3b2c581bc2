"""``X-Request-Id`` (issue 26 item 3): one id per logical call, the same on every retry, on
hook events, the DEBUG line, ``RawResponse.request_id`` and every error."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from bitrix_mail_async import Hooks, MailClient, errors
from bitrix_mail_async._hooks import HookEvent

from .conftest import FAST_RETRY, ScriptedServer

KEY = "vibe_api_request_id_test_01"
OK = {"success": True, "data": {"item": {"id": 5, "subject": "x"}}}
BUSY = {"success": False, "error": {"code": "BITRIX_UNAVAILABLE", "message": "busy"}}


async def test_one_id_per_call_the_same_on_every_attempt_and_in_every_event(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.push(502, BUSY)
    scripted.push(200, OK)
    seen: list[HookEvent] = []
    hooks = Hooks(on_request=seen.append, on_response=seen.append, on_retry=seen.append)
    async with MailClient(
        KEY, base_url=scripted.base_url, retry=FAST_RETRY, rate_limit=None, hooks=hooks
    ) as mail:
        with caplog.at_level(logging.DEBUG, logger="bitrix_mail_async.transport"):
            await mail.messages.get(5)
            raw = await mail.with_raw_response.messages.get(5)
    sent = [hit.headers["X-Request-Id"] for hit in scripted.hits]
    assert sent[0] == sent[1] != sent[2]
    assert uuid.UUID(sent[0]).version == 4
    assert {event.request_id for event in seen} == {sent[0], sent[2]}
    assert len(seen) == 2 + 1 + 2 + 2  # requests, a retry, responses of both calls
    lines = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert [sent[0] in line for line in lines] == [True, True, False]
    assert sent[2] in lines[2]
    assert raw.request_id == sent[2]  # the gateway sent none: the one we sent


async def test_the_gateways_own_id_wins_on_raw_responses_and_errors(
    scripted: ScriptedServer,
) -> None:
    scripted.push(200, OK, {"X-Request-Id": "gw-1"})
    scripted.push(404, {"success": False, "error": {"code": "ENTITY_NOT_FOUND", "message": "no"}},
                  {"X-Request-Id": "gw-2"})  # fmt: skip
    scripted.push(404, {"success": False, "error": {"code": "ENTITY_NOT_FOUND", "message": "no"}})
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        raw = await mail.with_raw_response.messages.get(5)
        with pytest.raises(errors.NotFoundError) as theirs:
            await mail.messages.get(6)
        with pytest.raises(errors.NotFoundError) as ours:
            await mail.messages.get(7)
    assert raw.request_id == "gw-1"
    assert theirs.value.request_id == "gw-2"
    assert ours.value.request_id == scripted.hits[2].headers["X-Request-Id"]


async def test_transport_and_outcome_unknown_errors_name_the_call() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with MailClient(
        KEY, base_url=f"http://127.0.0.1:{port}/v1", retry=FAST_RETRY, rate_limit=None
    ) as mail:
        with pytest.raises(errors.TransportError) as caught:
            await mail.messages.get(5)
    assert caught.value.request_id is not None
    assert uuid.UUID(caught.value.request_id).version == 4


async def test_a_send_that_may_have_been_applied_keeps_the_calls_id(
    scripted: ScriptedServer,
) -> None:
    scripted.push(502, BUSY)
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        with pytest.raises(errors.OutcomeUnknownError) as caught:
            await mail.messages.send(
                from_="a@example.com", to="b@example.com", subject="s", body="b"
            )
    assert caught.value.request_id == scripted.hits[0].headers["X-Request-Id"]


async def test_raw_responses_carry_meta_and_pages_truncated(scripted: ScriptedServer) -> None:
    page = {
        "success": True,
        "data": {"items": [{"id": 1, "subject": "a"}]},
        "meta": {"total": 9, "hasMore": False, "truncated": True},
    }
    scripted.push(200, page)
    scripted.push(200, page)
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        raw = await mail.with_raw_response.request("GET", "/mail/messages", params={"a": 1})
        first = await mail.messages.list(1)
    assert raw.meta == {"total": 9, "hasMore": False, "truncated": True}
    assert (first.truncated, first.total, first.has_more) == (True, 9, False)
