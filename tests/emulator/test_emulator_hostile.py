"""Hostile requests: the emulator answers the gateway's envelope, never a 500, and stays bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bitrix_mail_async.testing import MailEmulator, RecordedRequest, RequestLog
from bitrix_mail_async.testing.log import DEFAULT_MAX_BYTES, MAX_BODY_BYTES_KEPT
from bitrix_mail_async.testing.wire import MAX_BODY_BYTES

HUGE = "9" * 5000  # past the 4,300 digits int() takes from a string
CONTACTS = "/mail/recipients/contacts"


def assert_invalid(reply: Any, field: str | None = None) -> None:
    assert reply.status == 400, reply.text
    assert reply.error["code"] == "INVALID_PARAMS"
    if field is not None:
        assert reply.error["validation"][0]["field"] == field


async def test_deeply_nested_json_is_invalid_params(api: Any) -> None:
    depth = 100_000
    reply = await api.request("POST", CONTACTS, data="[" * depth + "]" * depth)
    assert_invalid(reply)
    assert reply.error["message"] == "request body must be JSON"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (f"/mail/messages/{HUGE}", None, "id"),
        (f"/mail/mailboxes/{HUGE}", None, "id"),
        (f"/mail/messages/{2**63}", None, "id"),
        ("/mail/messages", {"mailboxId": HUGE}, "mailboxId"),
        ("/mail/messages", {"mailboxId": "1", "offset": HUGE}, "offset"),
        ("/mail/mailboxes", {"offset": HUGE}, "offset"),
    ],
)
async def test_numbers_too_big_for_an_id_are_invalid_params(
    api: Any, path: str, params: dict[str, str] | None, field: str
) -> None:
    assert_invalid(await api.request("GET", path, params=params), field)


async def test_huge_ids_in_a_json_body_are_invalid_params(api: Any) -> None:
    body = '{"messageId": ' + "9" * 4000 + "}"  # json.loads takes up to 4,300 digits
    reply = await api.request(
        "POST", "/mail/messages/1001/task", data=body, headers={"Content-Type": "application/json"}
    )
    assert_invalid(reply, "messageId")
    reply = await api.request("POST", CONTACTS, data='{"offset": ' + "9" * 4000 + "}")
    assert_invalid(reply, "offset")


async def test_a_huge_limit_is_capped_like_any_oversized_one(api: Any) -> None:
    reply = await api.get("/mail/messages", mailboxId=1, limit=HUGE)
    assert reply.status == 200, reply.text
    assert len(reply.data["items"]) > 25  # the default page; the cap (200) applied instead


async def test_a_body_over_the_limit_is_413_in_the_envelope(
    api: Any, mail_emulator: MailEmulator
) -> None:
    body = '{"query": "' + "a" * MAX_BODY_BYTES + '"}'
    reply = await api.request("POST", CONTACTS, data=body)
    assert reply.status == 413, reply.text[:300]
    assert reply.body["success"] is False
    assert reply.error["code"] == "PAYLOAD_TOO_LARGE"
    assert str(MAX_BODY_BYTES) in reply.error["message"]
    record = mail_emulator.requests.last
    assert record.status == 413
    assert not record.applied
    assert len(record.json) < 200  # not the body
    # And it goes on serving.
    assert (await api.get("/mail/mailboxes")).status == 200


def _kept_bytes(records: list[RecordedRequest]) -> int:
    return sum(len(json.dumps(r.json)) for r in records)


async def test_the_request_log_is_bounded_in_bytes(api: Any, mail_emulator: MailEmulator) -> None:
    big = "a" * (3 * 1024 * 1024)
    sent = 16  # 48 MiB of bodies in all
    for number in range(sent):
        reply = await api.post(CONTACTS, json={"query": f"{number}-{big}"})
        assert reply.status == 200, reply.text[:300]
    records = mail_emulator.requests.snapshot()
    assert _kept_bytes(records) <= DEFAULT_MAX_BYTES
    assert len(records) < sent
    # The oldest went; the newest is kept whole.
    assert records[-1].json["query"].startswith(f"{sent - 1}-")
    assert mail_emulator.requests.retained_bytes <= DEFAULT_MAX_BYTES


async def test_a_body_that_parses_into_much_memory_is_logged_as_an_excerpt(
    api: Any, mail_emulator: MailEmulator
) -> None:
    items = ",".join(["{}"] * 1_000_000)  # 3 MB of text; about 64 MB as a million dicts
    reply = await api.request("POST", CONTACTS, data='{"query": "a", "x": [' + items + "]}")
    assert reply.status == 200, reply.text[:300]
    record = mail_emulator.requests.last
    assert isinstance(record.json, str)
    assert record.json.startswith('{"query": "a", "x": [{},')
    assert "too big to keep whole" in record.json
    assert len(record.json) < 2000
    assert mail_emulator.requests.retained_bytes < MAX_BODY_BYTES_KEPT


def _record(body: object) -> RecordedRequest:
    return RecordedRequest("POST", "/mail/messages", {}, body, {})


def test_request_log_drops_the_oldest_past_its_byte_bound() -> None:
    one = RequestLog.entry_size(_record("x" * 10_000))
    log = RequestLog(max_bytes=3 * one)
    for number in range(10):
        log.append(_record(f"{number}" + "x" * 9_999))
    assert len(log) == 3
    assert [r.json[0] for r in log] == ["7", "8", "9"]
    assert log.retained_bytes <= 3 * one
    # One entry bigger than the whole bound is still kept: the newest always is.
    log.append(_record("y" * 100_000))
    assert len(log) == 1
    assert log.last.json.startswith("y")
    log.clear()
    assert log.retained_bytes == 0
    assert len(log) == 0


def test_request_log_still_bounds_entries() -> None:
    log = RequestLog(max_entries=5)
    for number in range(8):
        log.append(_record(number))
    assert [r.json for r in log] == [3, 4, 5, 6, 7]
