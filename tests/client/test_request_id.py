"""``X-Request-Id`` (issue 26 item 3): one id per logical call, the same on every retry, on
hook events, the DEBUG line, ``RawResponse.request_id`` and every error."""

from __future__ import annotations

import json
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


async def test_extras_reach_the_wire_on_typed_methods_and_request(
    scripted: ScriptedServer,
) -> None:
    scripted.default = (200, {"success": True, "data": {"item": {"id": 5}, "success": True}}, {})
    async with MailClient(KEY, base_url=scripted.base_url, rate_limit=None) as mail:
        extra = mail.with_options(
            extra_headers={"X-Trace": "t-1"}, extra_query={"lang": "en"}, extra_body={"b": 1}
        ).with_options(extra_query={"debug": True})
        await extra.messages.get(5)
        await extra.messages.send(from_="a@example.com", to="b@example.com", subject="s", body="b")
        await extra.request("POST", "/x", json={"a": 2})
        await mail.messages.get(5)  # the client itself is untouched
    get, send, custom, plain = scripted.hits
    assert custom.headers["X-Trace"] == "t-1"
    assert get.headers["X-Trace"] == "t-1"
    assert (get.query["lang"], get.query["debug"]) == ("en", "true")
    assert send.headers["X-Api-Key"] == KEY  # never replaced
    sent_body = json.loads(scripted.bodies[1])
    assert (sent_body["b"], sent_body["subject"]) == (1, "s")
    assert json.loads(scripted.bodies[2]) == {"a": 2, "b": 1}
    assert "X-Trace" not in plain.headers and "lang" not in plain.query


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra_headers": {"X-Api-Key": "other"}},
        {"extra_headers": {"authorization": "Bearer x"}},
        {"extra_headers": {"Content-Type": "text/plain"}},
        {"extra_headers": {"X-Request-Id": "mine"}},
        {"extra_headers": {"Bad Name": "x"}},
        {"extra_headers": {"X-A": "line\r\nX-B: injected"}},
        {"extra_headers": {"X-A": "é"}},
        {"extra_query": {"q": "ab\ud800"}},
        {"extra_body": {"a": float("nan")}},
        {"extra_body": ["not", "a", "mapping"]},
    ],
)
def test_extras_that_would_replace_the_clients_own_or_break_the_wire_are_refused(
    kwargs: dict[str, object],
) -> None:
    mail = MailClient(KEY, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(errors.InvalidArgumentError):
        mail.with_options(**kwargs)  # type: ignore[arg-type]


def test_request_ids_are_canonical_version_4_uuids_and_differ() -> None:
    from bitrix_mail_async._pipeline import new_request_id

    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == rid  # lower-case 8-4-4-4-12, as str(uuid4()) writes it
    # The variant keeps its two random bits: all four of its digits occur.
    assert {rid[19] for rid in ids} == set("89ab")
