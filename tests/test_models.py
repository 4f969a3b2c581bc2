"""Decoding of every payload shape of the contract (shared/api/vibe-mail.md, section 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from bitrix_mail_async import errors, models
from bitrix_mail_async._addresses import split_recipients
from bitrix_mail_async._convert import (
    structure,
    structure_list,
    to_dict,
    unstructure,
    wire_name,
)
from bitrix_mail_async._envelope import Call, unwrap_item, unwrap_items
from bitrix_mail_async.models import (
    CalendarEventCreated,
    ChatCreated,
    Contact,
    CrmActivityCreated,
    Employee,
    FeedPostCreated,
    Mailbox,
    Message,
    MessageSummary,
    MoveResult,
    Page,
    Sender,
    SendResult,
    TaskCreated,
)

MSK = timezone(timedelta(hours=3))

# Every attrs class of the models module, found rather than listed: a new model is covered.
MODELS: list[type[Any]] = [
    obj
    for obj in vars(models).values()
    if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == models.__name__
]

CALL = Call("GET", "/mail/messages")
SUMMARY: dict[str, Any] = {
    "id": 1001,
    "mailboxId": 5,
    "mailboxEmail": "team@example.com",
    "subject": "Quarterly report",
    "from": "Anna Petrova <anna@example.com>",
    "to": "team@example.com, boss@example.com",
    "cc": None,
    "date": "2026-05-25T10:00:00+03:00",
    "isSeen": False,
    "hasAttachments": True,
    "url": "https://portal.bitrix24.ru/mail/message/1001",
    "bindings": [{"type": "CRM_ACTIVITY", "id": 7}],
}


# --- each model, its contract shape ---------------------------------------------------------


def test_mailbox() -> None:
    wire = {"id": 5, "name": "Team", "email": "team@example.com", "senderName": "Team Inbox"}
    assert structure(wire, Mailbox) == Mailbox(
        id=5, name="Team", email="team@example.com", sender_name="Team Inbox"
    )


def test_sender() -> None:
    wire = {"email": "anna@example.com", "name": "Anna", "sender": "Anna <anna@example.com>"}
    sender = structure(wire, Sender)
    assert sender.sender == "Anna <anna@example.com>"
    assert (sender.email, sender.name) == ("anna@example.com", "Anna")


def test_message_summary() -> None:
    msg = structure(SUMMARY, MessageSummary)
    assert msg == MessageSummary(
        id=1001,
        mailbox_id=5,
        mailbox_email="team@example.com",
        subject="Quarterly report",
        from_="Anna Petrova <anna@example.com>",
        to=("team@example.com", "boss@example.com"),
        cc=(),
        date=datetime(2026, 5, 25, 10, 0, tzinfo=MSK),
        is_seen=False,
        has_attachments=True,
        url="https://portal.bitrix24.ru/mail/message/1001",
        bindings=({"type": "CRM_ACTIVITY", "id": 7},),
    )
    assert msg.body is None
    assert msg.extra == {}


def test_message_summary_with_body_and_folder() -> None:
    msg = structure({**SUMMARY, "body": "<p>Hi</p>", "folder": "INBOX"}, MessageSummary)
    assert (msg.body, msg.folder) == ("<p>Hi</p>", "INBOX")


def test_message_get_is_aware() -> None:
    msg = structure(unwrap_item(CALL, {"item": {**SUMMARY, "body": "Hello"}}), Message)
    assert isinstance(msg, Message)
    assert isinstance(msg, MessageSummary)
    assert msg.body == "Hello"
    assert msg.date is not None
    assert msg.date.utcoffset() == timedelta(hours=3)


def test_thread_item_is_naive_and_sparse() -> None:
    wire = {
        "id": 1002,
        "subject": "Re: Quarterly report",
        "from": "boss@example.com",
        "to": "anna@example.com",
        "cc": "",
        "date": "2026-05-25 11:30:00",
        "body": "Thanks",
    }
    [msg] = structure_list(unwrap_items(CALL, [wire]), Message)
    assert msg.date == datetime(2026, 5, 25, 11, 30)
    assert msg.date.tzinfo is None
    assert msg.mailbox_id is None
    assert msg.is_seen is None
    assert msg.bindings == ()
    assert msg.cc == ()
    assert msg.to == ("anna@example.com",)


def test_send_result() -> None:
    result = structure({"success": True, "to": ["a@example.com", "b@example.com"]}, SendResult)
    assert result == SendResult(success=True, to=("a@example.com", "b@example.com"))


def test_move_result() -> None:
    result = structure({"success": True, "movedCount": 3, "action": "spam"}, MoveResult)
    assert result == MoveResult(success=True, moved_count=3, action="spam")


def test_task_created() -> None:
    result = structure({"success": True, "taskId": 42, "messageId": 1001}, TaskCreated)
    assert result == TaskCreated(success=True, task_id=42, message_id=1001)


def test_calendar_event_created() -> None:
    result = structure({"success": True, "eventId": "77", "messageId": 1001}, CalendarEventCreated)
    assert result == CalendarEventCreated(event_id=77, message_id=1001)


def test_chat_created() -> None:
    wire = {"success": True, "chatId": 9, "messageId": 1001, "existing": True}
    assert structure(wire, ChatCreated) == ChatCreated(chat_id=9, message_id=1001, existing=True)
    assert structure({"chatId": 9}, ChatCreated).existing is False


def test_feed_post_created() -> None:
    result = structure({"success": True, "postId": 12, "messageId": 1001}, FeedPostCreated)
    assert result == FeedPostCreated(post_id=12, message_id=1001)


@pytest.mark.parametrize(("wire", "success"), [(True, True), (False, False), ("Y", True)])
def test_crm_activity_bare_boolean(wire: object, success: bool) -> None:
    assert structure(wire, CrmActivityCreated) == CrmActivityCreated(success=success)


def test_crm_activity_object() -> None:
    wire = {"success": True, "activityId": "15", "messageId": 1001, "ownerType": "DEAL"}
    result = structure(wire, CrmActivityCreated)
    assert (result.success, result.activity_id, result.message_id) == (True, 15, 1001)
    assert result.extra == {"ownerType": "DEAL"}


@pytest.mark.parametrize("wire", [None, 3, "maybe", [True]])
def test_crm_activity_rejects_other_values(wire: object) -> None:
    with pytest.raises(errors.DecodeError, match="CrmActivityCreated"):
        structure(wire, CrmActivityCreated)


@pytest.mark.parametrize("cls", [Contact, Employee])
def test_recipient_suggestions(cls: type[Contact] | type[Employee]) -> None:
    wire = {"items": [{"id": 1, "email": "a@example.com", "name": "A"}, {"id": "2"}]}
    first, second = structure_list(unwrap_items(CALL, wire), cls)
    assert first == cls(id=1, email="a@example.com", name="A")
    assert second == cls(id=2)


# --- renames ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "wire"),
    [
        ("from_", "from"),
        ("mailbox_id", "mailboxId"),
        ("sender_name", "senderName"),
        ("moved_count", "movedCount"),
        ("task_id", "taskId"),
        ("event_id", "eventId"),
        ("chat_id", "chatId"),
        ("post_id", "postId"),
        ("has_attachments", "hasAttachments"),
        ("id", "id"),
    ],
)
def test_wire_names_are_generated(attribute: str, wire: str) -> None:
    assert wire_name(attribute) == wire


def test_snake_case_wire_keys_are_not_fields() -> None:
    msg = structure({"id": 1, "mailbox_id": 5}, MessageSummary)
    assert msg.mailbox_id is None
    assert msg.extra == {"mailbox_id": 5}


# --- recipients ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (None, ()),
        ("", ()),
        ("   ", ()),
        ([], ()),
        ("a@x.io", ("a@x.io",)),
        (" a@x.io ,b@y.io , ", ("a@x.io", "b@y.io")),
        ('"Doe, John" <j@x.io>, b@y.io', ('"Doe, John" <j@x.io>', "b@y.io")),
        ("John <j,odd@x.io>, b@y.io", ("John <j,odd@x.io>", "b@y.io")),
        (r'"Say \"hi\", ok" <s@x.io>, c@z.io', (r'"Say \"hi\", ok" <s@x.io>', "c@z.io")),
        (["a@x.io", " b@y.io ", ""], ("a@x.io", "b@y.io")),
        (["Doe, John <j@x.io>"], ("Doe, John <j@x.io>",)),
        ([{"email": "e@x.io", "name": "E"}, {"email": "f@x.io"}], ("E <e@x.io>", "f@x.io")),
    ],
)
def test_recipients_normalised(wire: object, expected: tuple[str, ...]) -> None:
    assert structure({"id": 1, "to": wire, "cc": wire}, MessageSummary).to == expected
    assert structure({"id": 1, "cc": wire}, MessageSummary).cc == expected
    assert structure({"to": wire}, SendResult).to == expected


@pytest.mark.parametrize("wire", [5, {"email": "a@x.io"}, [1], [None], [{"name": "no email"}]])
def test_recipients_rejects_other_shapes(wire: object) -> None:
    with pytest.raises(errors.DecodeError, match="'to'"):
        structure({"id": 1, "to": wire}, MessageSummary)


def test_split_recipients_unbalanced_is_kept_whole() -> None:
    assert split_recipients('"unterminated, a@x.io') == ('"unterminated, a@x.io',)


# --- scalars ------------------------------------------------------------------------------


@pytest.mark.parametrize(("wire", "value"), [(7, 7), ("7", 7), (" 12 ", 12), (3.0, 3), ("-1", -1)])
def test_int_accepts_ints_and_decimal_strings(wire: object, value: int) -> None:
    assert structure({"id": wire}, Mailbox).id == value


@pytest.mark.parametrize("wire", [True, False, 1.5, "1.0", "abc", "", None, [], {}, "1e3", "٣"])
def test_int_rejects_the_rest(wire: object) -> None:
    with pytest.raises(errors.DecodeError, match=r"Mailbox: 'id'"):
        structure({"id": wire}, Mailbox)


def test_optional_int_blank_is_none() -> None:
    assert structure({"id": 1, "mailboxId": ""}, MessageSummary).mailbox_id is None
    assert structure({"id": 1, "mailboxId": None}, MessageSummary).mailbox_id is None


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (True, True),
        (False, False),
        ("Y", True),
        ("N", False),
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        (None, None),
        ("", None),
    ],
)
def test_bool_variants(wire: object, value: bool | None) -> None:
    assert structure({"id": 1, "isSeen": wire}, MessageSummary).is_seen is value


@pytest.mark.parametrize("wire", [2, -1, 1.0, "maybe", [], {}])
def test_bool_rejects_the_rest(wire: object) -> None:
    with pytest.raises(errors.DecodeError, match="'isSeen'"):
        structure({"id": 1, "isSeen": wire}, MessageSummary)


def test_str_fields_take_numbers() -> None:
    mailbox = structure({"id": 1, "name": 42, "email": 1.5}, Mailbox)
    assert (mailbox.name, mailbox.email) == ("42", "1.5")


@pytest.mark.parametrize("wire", [{"a": 1}, ["x"], True])
def test_str_fields_reject_containers_and_bools(wire: object) -> None:
    with pytest.raises(errors.DecodeError, match="'name'"):
        structure({"id": 1, "name": wire}, Mailbox)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("2026-05-25T10:00:00+03:00", datetime(2026, 5, 25, 10, tzinfo=MSK)),
        ("2026-05-25T07:00:00Z", datetime(2026, 5, 25, 7, tzinfo=UTC)),
        ("2026-05-25 10:00:00", datetime(2026, 5, 25, 10)),
        ("", None),
        (None, None),
        ("0000-00-00 00:00:00", None),
    ],
)
def test_datetimes(wire: object, expected: datetime | None) -> None:
    date = structure({"id": 1, "date": wire}, MessageSummary).date
    assert date == expected
    if expected is not None:
        assert date is not None
        assert (date.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize("wire", ["yesterday", "2026-13-01T00:00:00", 1716620400, ["2026"]])
def test_datetime_garbage_is_a_decode_error(wire: object) -> None:
    with pytest.raises(errors.DecodeError, match="'date'"):
        structure({"id": 1, "date": wire}, MessageSummary)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [(None, ()), ([1, "a", {"b": 2}], (1, "a", {"b": 2})), ({"crm": [1]}, ({"crm": [1]},))],
)
def test_bindings_keep_any_json(wire: object, expected: tuple[object, ...]) -> None:
    assert structure({"id": 1, "bindings": wire}, MessageSummary).bindings == expected


# --- extra, equality, hashing -------------------------------------------------------------


def test_unknown_fields_go_to_extra() -> None:
    wire = {**SUMMARY, "folderPath": "INBOX/Reports", "priority": 3, "extra": "literal"}
    msg = structure(wire, MessageSummary)
    assert msg.extra == {"folderPath": "INBOX/Reports", "priority": 3, "extra": "literal"}
    assert msg.subject == "Quarterly report"


def test_extra_is_in_eq_but_not_in_hash() -> None:
    plain = structure(SUMMARY, MessageSummary)
    more = structure({**SUMMARY, "x": 1}, MessageSummary)
    assert plain != more
    assert hash(plain) == hash(more)
    assert plain == structure(SUMMARY, MessageSummary)
    assert len({plain, structure(SUMMARY, MessageSummary)}) == 1


def test_extra_dicts_are_not_shared() -> None:
    first = structure({"id": 1, "x": 1}, Mailbox)
    second = structure({"id": 2}, Mailbox)
    assert second.extra == {}
    assert first.extra is not Mailbox(id=3).extra


def test_models_are_frozen() -> None:
    mailbox = Mailbox(id=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        mailbox.id = 2  # type: ignore[misc]


def minimal_wire(cls: type[Any]) -> dict[str, Any]:
    """The required fields of ``cls`` under their wire names, each with a plain value."""
    attrs.resolve_types(cls)
    samples: dict[Any, Any] = {int: 1, bool: True}
    required = [f for f in attrs.fields(cls) if f.default is attrs.NOTHING]
    return {wire_name(f.name): samples.get(f.type, []) for f in required}


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_is_public_frozen_and_keyword_only(cls: type[Any]) -> None:
    assert cls.__name__ in models.__all__
    assert "__slots__" in vars(cls)
    assert all(field.kw_only for field in attrs.fields(cls))
    params = getattr(cls, "__parameters__", ())
    target: Any = cls[tuple(Mailbox for _ in params)] if params else cls
    instance = structure({**minimal_wire(cls), "someNewKey": 1}, target)
    assert getattr(instance, "extra", {"someNewKey": 1}) == {"someNewKey": 1}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, attrs.fields(cls)[0].name, 2)


def test_generic_page_uses_wire_names() -> None:
    wire = {"items": [{"id": "1", "x": 2}], "hasMore": "Y", "total": "3", "offset": 0, "limit": 50}
    page = structure(wire, Page[Mailbox])
    assert page == Page(
        items=[Mailbox(id=1, extra={"x": 2})], has_more=True, total=3, offset=0, limit=50
    )
    assert unstructure(page) == {
        "items": [{"id": 1, "name": None, "email": None, "senderName": None, "x": 2}],
        "hasMore": True,
        "total": 3,
        "offset": 0,
        "limit": 50,
        "truncated": None,
    }
    with pytest.raises(errors.DecodeError, match="Page"):
        structure({"items": [{"id": "z"}], "hasMore": True}, Page[Mailbox])


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, 1, "x", [], [{"id": 1}]])
def test_non_objects_are_decode_errors(data: object) -> None:
    with pytest.raises(errors.DecodeError, match="Mailbox"):
        structure(data, Mailbox)


def test_missing_required_field_names_the_field() -> None:
    with pytest.raises(errors.DecodeError, match="TaskCreated: 'taskId': required field missing"):
        structure({"success": True}, TaskCreated)


def test_structure_list_names_the_item() -> None:
    with pytest.raises(errors.DecodeError, match=r"item 1: .*'id'"):
        structure_list([{"id": 1}, {"id": "z"}], Contact)


@pytest.mark.parametrize("data", [None, {"items": []}, "[]", ({"id": 1},)])
def test_structure_list_wants_a_list(data: object) -> None:
    with pytest.raises(errors.DecodeError, match=r"list\[Contact\]"):
        structure_list(data, Contact)


# --- unwrap helpers -----------------------------------------------------------------------


def test_unwrap_items_both_shapes() -> None:
    items = [{"id": 1}]
    assert unwrap_items(CALL, items) is items
    assert unwrap_items(CALL, {"items": items, "total": 1}) is items


@pytest.mark.parametrize("data", [None, {}, {"items": None}, {"items": {}}, "x", 3])
def test_unwrap_items_rejects(data: object) -> None:
    with pytest.raises(errors.DecodeError, match=r"^GET /mail/messages: "):
        unwrap_items(CALL, data)


def test_unwrap_item_both_shapes() -> None:
    inner = {"id": 1}
    assert unwrap_item(CALL, {"item": inner}) is inner
    assert unwrap_item(CALL, inner) is inner


@pytest.mark.parametrize("data", [None, [], "x", {"item": None}, {"item": [1]}])
def test_unwrap_item_rejects(data: object) -> None:
    with pytest.raises(errors.DecodeError):
        unwrap_item(CALL, data)


# --- encoding -----------------------------------------------------------------------------


def test_unstructure_uses_wire_names_and_merges_extra() -> None:
    msg = structure({**SUMMARY, "priority": 3}, MessageSummary)
    wire = unstructure(msg)
    assert wire["from"] == SUMMARY["from"]
    assert wire["mailboxId"] == 5
    assert wire["date"] == "2026-05-25T10:00:00+03:00"
    assert wire["to"] == ["team@example.com", "boss@example.com"]
    assert wire["priority"] == 3
    assert "extra" not in wire
    assert structure(wire, MessageSummary) == msg


def test_to_dict_uses_python_names() -> None:
    msg = structure({**SUMMARY, "priority": 3}, Message)
    plain = to_dict(msg)
    assert plain["from_"] == SUMMARY["from"]
    assert plain["mailbox_id"] == 5
    assert plain["date"] == "2026-05-25T10:00:00+03:00"
    assert plain["to"] == ["team@example.com", "boss@example.com"]
    assert plain["bindings"] == [{"type": "CRM_ACTIVITY", "id": 7}]
    assert plain["extra"] == {"priority": 3}


def test_to_dict_of_a_page() -> None:
    page = Page(items=[Mailbox(id=1)], has_more=False, total=1, offset=0, limit=50)
    assert to_dict(page) == {
        "items": [{"id": 1, "name": None, "email": None, "sender_name": None, "extra": {}}],
        "has_more": False,
        "total": 1,
        "offset": 0,
        "limit": 50,
        "truncated": None,
    }


def test_to_dict_rejects_non_models() -> None:
    with pytest.raises(TypeError):
        to_dict({"id": 1})


def test_structure_accepts_any_mapping() -> None:
    from collections import OrderedDict

    assert structure(OrderedDict(id=1, z=2), Mailbox) == Mailbox(id=1, extra={"z": 2})
    assert structure(OrderedDict(activityId=3), CrmActivityCreated).activity_id == 3


def test_structure_never_leaks_other_errors_for_odd_types() -> None:
    with pytest.raises(errors.DecodeError):
        structure({"id": 1}, list[int])
