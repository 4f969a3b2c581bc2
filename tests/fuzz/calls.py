"""The public calls the fuzzer drives, each with its route, arguments and side-effect flag.

``args`` draws arguments a caller would pass; ``hostile`` draws ones that must be refused
before anything is sent, or else reach the wire exactly as the int they stand for
(:func:`wire_id`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from bitrix_mail_async import MailClient

from .wirejson import HUGE, to_wire

__all__ = ["CALLS", "Call", "Sly", "fallback_body", "hostile_ids", "wire_id"]


class Sly(int):
    """An int whose format() and str() give other ints (a caller's enum-like subclass)."""

    def __format__(self, spec: str) -> str:
        return "1001"

    def __str__(self) -> str:
        return "1002"

    def __repr__(self) -> str:  # honest in test reports; format() and str() are the attack
        return f"Sly({int.__repr__(self)})"


def wire_id(value: Any) -> str:
    """How an accepted id must appear on the wire: the int it is, whatever it says of itself."""
    return int.__repr__(int(value))


ids = st.integers(1, 10**6)
hostile_ids = (
    st.sampled_from(
        [
            0,
            -1,
            -(2**63),
            True,
            False,
            2**63,
            2**63 - 1,
            10**400,
            1.0,
            1.5,
            float("nan"),
            "1",
            "1\ud800",
            None,
            b"1",
            Decimal(1),
            [1],
            *HUGE,
        ]
    )
    | st.builds(Sly, st.integers(1, 10**6))
    | st.builds(Sly, st.sampled_from([0, -5, 2**64]))
)
lines = st.text(max_size=20)
hostile_text = st.sampled_from(
    [
        "a\ud800b",
        "\udfff",
        "x\r\ny",
        "\x1b[2J",
        "\x85",
        "\u2028",
        "\x00",
        "ok",
        "",
        " ",
        "Ж" * 5,
        7,
        None,
        b"x",
    ]
)
SENDER = "Sales <sales@example.com>"
recipients = st.sampled_from(["b@x.io", ["b@x.io", "c@x.io"], ("d@x.io",)])
hostile_recipients = st.sampled_from(
    [
        [],
        "",
        [1],
        [None],
        "a\ud800@x.io",
        ["x\r\n@y.io"],
        {"a@x.io": 1},
        [f"u{i}@x.io" for i in range(1001)],
        b"a@x.io",
        [["a@x.io"]],
    ]
) | st.builds(lambda: iter(["a@x.io"]))
dates = st.sampled_from(["2026-06-01 10:00:00", datetime(2026, 6, 1, 10), "2026-06-01T10:00:00"])
hostile_dates = st.sampled_from(
    [
        "",
        "tomorrow",
        "2026-02-31 10:00:00",
        datetime(2026, 6, 1, tzinfo=UTC),
        "9999-12-31 23:59:60",
        "2026-06-01T10:00:00+25:00",
        20260601,
        None,
        "2026-06-01 10:00:00\ud800",
    ]
)


@dataclass(frozen=True)
class Call:
    """One public call: how to invoke it, its route's payload, whether it is a side effect."""

    name: str
    route: str
    side_effect: bool
    invoke: Callable[[MailClient, dict[str, Any]], Awaitable[Any]]
    args: st.SearchStrategy[dict[str, Any]]
    hostile: st.SearchStrategy[dict[str, Any]]
    path: Callable[[dict[str, Any]], str]  # the path that must arrive, from accepted args
    walk: bool = False  # reads every page: as many requests as pages


def _one(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(fields)


def _mixed(
    valid: dict[str, st.SearchStrategy[Any]], bad: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid arguments with at least one of ``bad`` swapped in."""

    @st.composite
    def draw_args(draw: st.DrawFn) -> dict[str, Any]:
        args = draw(st.fixed_dictionaries(valid))
        for name in draw(st.lists(st.sampled_from(sorted(bad)), min_size=1, unique=True)):
            args[name] = draw(bad[name])
        return args

    return draw_args()


def _compose(
    extra: dict[str, st.SearchStrategy[Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    valid = {
        "from_": st.just(SENDER),
        "to": recipients,
        "subject": lines,
        "body": lines,
        **(extra or {}),
    }
    bad: dict[str, st.SearchStrategy[Any]] = {
        "from_": hostile_text,
        "to": hostile_recipients,
        "subject": hostile_text,
        "body": hostile_text,
        "cc": hostile_recipients,
    }
    if extra:
        bad["message_id"] = hostile_ids
    return valid, bad


_SEND_VALID, _SEND_BAD = _compose()
_REPLY_VALID, _REPLY_BAD = _compose({"message_id": ids})


def _m(args: dict[str, Any]) -> str:
    return wire_id(args["message_id"])


CALLS: tuple[Call, ...] = (
    Call(
        "mailboxes.list",
        "mailboxes",
        False,
        lambda m, a: m.mailboxes.list(**a),
        _one(name=st.none() | lines),
        _one(name=hostile_text, email=hostile_text),
        lambda a: "/mail/mailboxes",
        walk=True,
    ),
    Call(
        "mailboxes.get",
        "mailbox",
        False,
        lambda m, a: m.mailboxes.get(a["mailbox_id"]),
        _one(mailbox_id=ids),
        _one(mailbox_id=hostile_ids),
        lambda a: f"/mail/mailboxes/{wire_id(a['mailbox_id'])}",
    ),
    Call(
        "mailboxes.senders",
        "senders",
        False,
        lambda m, a: m.mailboxes.senders(a["mailbox_id"]),
        _one(mailbox_id=ids),
        _one(mailbox_id=hostile_ids),
        lambda a: f"/mail/mailboxes/{wire_id(a['mailbox_id'])}/senders",
    ),
    Call(
        "messages.get",
        "message",
        False,
        lambda m, a: m.messages.get(a["message_id"]),
        _one(message_id=ids),
        _one(message_id=hostile_ids),
        lambda a: f"/mail/messages/{_m(a)}",
    ),
    Call(
        "messages.thread",
        "thread",
        False,
        lambda m, a: m.messages.thread(a["message_id"], limit=a["limit"]),
        _one(message_id=ids, limit=st.none() | st.integers(1, 50)),
        _mixed(
            {"message_id": ids, "limit": st.none()},
            {"message_id": hostile_ids, "limit": hostile_ids},
        ),
        lambda a: f"/mail/messages/{_m(a)}/thread",
    ),
    Call(
        "messages.list",
        "messages",
        False,
        lambda m, a: m.messages.list(a["mailbox_id"], search=a["search"]).first_page(),
        _one(mailbox_id=ids, search=st.none() | lines),
        _mixed(
            {"mailbox_id": ids, "search": st.none()},
            {"mailbox_id": hostile_ids, "search": hostile_text},
        ),
        lambda a: "/mail/messages",
    ),
    Call("me", "me", False, lambda m, a: m.me(), st.just({}), st.just({}), lambda a: "/me"),
    Call(
        "raw.messages.get",
        "message",
        False,
        lambda m, a: m.with_raw_response.messages.get(a["message_id"]),
        _one(message_id=ids),
        _one(message_id=hostile_ids),
        lambda a: f"/mail/messages/{_m(a)}",
    ),
    Call(
        "recipients.contacts",
        "people",
        False,
        lambda m, a: m.recipients.contacts(a["query"]),
        _one(query=st.none() | lines),
        _one(query=hostile_text),
        lambda a: "/mail/recipients/contacts",
    ),
    Call(
        "recipients.employees",
        "people",
        False,
        lambda m, a: m.recipients.employees(a["query"]),
        _one(query=st.just("ann")),
        _one(query=hostile_text),
        lambda a: "/mail/recipients/employees",
    ),
    Call(
        "messages.send",
        "send",
        True,
        lambda m, a: m.messages.send(**a),
        st.fixed_dictionaries(_SEND_VALID),
        _mixed(_SEND_VALID, _SEND_BAD),
        lambda a: "/mail/messages",
    ),
    Call(
        "messages.reply",
        "send",
        True,
        lambda m, a: m.messages.reply(**a),
        st.fixed_dictionaries(_REPLY_VALID),
        _mixed(_REPLY_VALID, _REPLY_BAD),
        lambda a: f"/mail/messages/{_m(a)}/reply",
    ),
    Call(
        "messages.forward",
        "send",
        True,
        lambda m, a: m.messages.forward(**a),
        st.fixed_dictionaries(_REPLY_VALID),
        _mixed(_REPLY_VALID, _REPLY_BAD),
        lambda a: f"/mail/messages/{_m(a)}/forward",
    ),
    Call(
        "messages.move",
        "move",
        True,
        lambda m, a: m.messages.move(a["ids"], folder=a["folder"]),
        _one(ids=st.lists(ids, min_size=1, max_size=3), folder=st.just("Archive")),
        _mixed(
            {"ids": st.just([5]), "folder": st.just("Archive")},
            {
                "ids": st.sampled_from(
                    [[], [0], [True], "12", list(range(1, 102)), {1: 2}, [Sly(3)], [10**400]]
                ),
                "folder": hostile_text,
            },
        ),
        lambda a: "/mail/messages/move",
    ),
    Call(
        "messages.create_task",
        "task",
        True,
        lambda m, a: m.messages.create_task(
            a["message_id"], title=a["title"], responsible_id=a["responsible_id"]
        ),
        _one(message_id=ids, title=st.none() | lines, responsible_id=st.none() | ids),
        _mixed(
            {"message_id": ids, "title": st.none(), "responsible_id": st.none()},
            {"message_id": hostile_ids, "title": hostile_text, "responsible_id": hostile_ids},
        ),
        lambda a: f"/mail/messages/{_m(a)}/task",
    ),
    Call(
        "messages.create_calendar_event",
        "event",
        True,
        lambda m, a: m.messages.create_calendar_event(
            a["message_id"], date_from=a["start"], date_to=a["end"]
        ),
        _one(message_id=ids, start=dates, end=st.just("2026-06-02 10:00:00")),
        _mixed(
            {"message_id": ids, "start": dates, "end": st.just("2026-06-02 10:00:00")},
            {"message_id": hostile_ids, "start": hostile_dates, "end": hostile_dates},
        ),
        lambda a: f"/mail/messages/{_m(a)}/calendar-event",
    ),
    Call(
        "messages.create_chat",
        "chat",
        True,
        lambda m, a: m.messages.create_chat(a["message_id"]),
        _one(message_id=ids),
        _one(message_id=hostile_ids),
        lambda a: f"/mail/messages/{_m(a)}/chat",
    ),
    Call(
        "messages.create_feed_post",
        "feed",
        True,
        lambda m, a: m.messages.create_feed_post(a["message_id"], title=a["title"]),
        _one(message_id=ids, title=st.none() | lines),
        _mixed(
            {"message_id": ids, "title": st.none()},
            {"message_id": hostile_ids, "title": hostile_text},
        ),
        lambda a: f"/mail/messages/{_m(a)}/feed-post",
    ),
    Call(
        "messages.create_crm_activity",
        "crm",
        True,
        lambda m, a: m.messages.create_crm_activity(a["message_id"]),
        _one(message_id=ids),
        _one(message_id=hostile_ids),
        lambda a: f"/mail/messages/{_m(a)}/crm-activity",
    ),
)

# A correct answer per route that also ends any page walk (an empty or short page).
_FALLBACK: dict[str, Any] = {
    "mailbox": {"item": {"id": 1, "name": "Box"}},
    "mailboxes": [],
    "senders": {"items": [{"email": "s@x.io", "name": "S", "sender": "S <s@x.io>"}]},
    "message": {"item": {"id": 1, "subject": "s", "body": "b"}},
    "messages": {"items": []},
    "thread": [],
    "send": {"success": True, "to": ["b@x.io"]},
    "move": {"success": True, "movedCount": 1, "action": "move"},
    "task": {"success": True, "taskId": 7, "messageId": 1},
    "event": {"success": True, "eventId": 7, "messageId": 1},
    "chat": {"success": True, "chatId": 7, "existing": False},
    "feed": {"success": True, "postId": 7, "messageId": 1},
    "crm": True,
    "people": {"items": []},
    "me": {"scopes": ["mail"], "portal": "p"},
    "raw": {"ok": True},
}


def fallback_body(route: str) -> bytes:
    """The envelope of :data:`_FALLBACK` for ``route``."""
    return to_wire({"success": True, "data": _FALLBACK[route]})
