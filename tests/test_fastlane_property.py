"""The two decoding lanes agree: msgspec's fast lane and the pure-Python converter.

Every generated answer (well-formed or deviating: unknown keys, lenient scalars, comma lists,
odd dates, 64-bit overflows, deep ``bindings``, duplicate keys, odd envelopes and meta) is
read once through the call's :class:`Decoder` (which tries the fast lane first) and once
through the pure-Python lane alone. Both must end alike: equal models of the same classes with
the same ``repr`` (so ``1`` vs ``1.0`` or two time zones of one instant differ), the same
``meta`` and ``data``, or the same error. Without msgspec both runs take the Python lane and
the test still checks that the Decoder changes nothing; with it, well-formed answers must
actually take the fast lane, or the agreement would prove nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitrix_mail_async import errors, models
from bitrix_mail_async._convert import FieldPlan, field_plans
from bitrix_mail_async._envelope import Answer, Call, Decoder, FastPage, decode_page, read
from bitrix_mail_async._fastlane import AVAILABLE, Shape, lane

CALL = Call("GET", "/mail/test")
COVERED = [
    cls
    for cls in vars(models).values()
    if isinstance(cls, type) and attrs.has(cls) and field_plans(cls) is not None
]
# Which models each shape is used with by the resources.
SHAPES: dict[Shape, list[type]] = {
    "page": [models.MessageSummary, models.Contact, models.Employee],
    "item": [models.Message, models.Mailbox],
    "list": [models.Mailbox, models.Message, models.Contact],
    "bare": [
        models.SendResult,
        models.MoveResult,
        models.TaskCreated,
        models.ChatCreated,
        models.CrmActivityCreated,
        models.CalendarEventCreated,
        models.FeedPostCreated,
    ],
}

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
any_json = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


# Edges of 64 bits: orjson reads an int past them as a float (10**20 + 1 would come back as
# 10**20), so the fast lane must leave those to the other lane.
ints = (
    st.sampled_from(
        [0, 1, -1, 5, 2**63 - 1, 2**63, 2**64 - 1, 2**64 + 1, -(2**63), -(2**63) - 1, 10**20 + 1]
    )
    | st.integers()
)
texts = st.text(max_size=8) | st.sampled_from(["\ud800", "x\u0000y", "é", ""])
dates = st.sampled_from(
    [
        "2026-05-25T10:00:00+03:00",
        "2026-05-25T10:00:00Z",
        "2026-05-25T10:00:00+00:00",
        "2026-05-25T10:00:00-00:00",
        "2026-05-25T10:00:00",
        "2026-05-25 10:00:00",
        "2026-05-25T10:00:00.123456789+03:00",
        "2026-05-25T10:00:00.5+05:30",
        "2026-05-25",
        "20260525T100000",
        "0000-00-00 00:00:00",
        "0123-01-01T00:00:00",
        "",
        "yesterday",
        "2026-13-01T00:00:00",
    ]
) | st.datetimes().map(datetime.isoformat)
recipients = st.sampled_from(
    [
        "a@x.io",
        " a@x.io ",
        "a@x.io, b@y.io",
        '"Doe, John" <j@x.io>, b@y.io',
        "",
        " ",
        ["a@x.io", " b@y.io "],
        ["", "a@x.io"],
        [{"email": "a@x.io", "name": "A"}],
        [5],
        5,
    ]
)


def _values(plan: FieldPlan, clean: bool) -> st.SearchStrategy[Any]:
    """Values of the field's own JSON type; unless ``clean``, mixed with lenient and wrong ones."""
    if plan.recipients:
        plain = st.none() | recipients
        lenient: st.SearchStrategy[Any] = plain
    elif plan.type in (int, int | None):
        plain = ints
        lenient = ints.map(str) | st.sampled_from(["", " 7 ", "5.0", "+3", "١٢"])
    elif plan.type in (bool, bool | None):
        plain = st.booleans()
        lenient = st.sampled_from(["Y", "N", "true", "0", "", "yes", 1, 0, 2])
    elif plan.type in (str, str | None):
        plain = texts
        lenient = ints
    elif plan.type in (datetime, datetime | None):
        plain = dates
        lenient = plain
    else:  # bindings
        plain = st.just([]) | st.lists(any_json, max_size=3)
        lenient = st.just(_deep(120))
    if plan.absent is None or plan.type in (int | None, str | None, bool | None):
        plain = plain | st.none()
    if clean:
        return plain
    odd = st.none() | st.booleans() | st.floats(allow_nan=False) | any_json
    return st.one_of(plain, plain, lenient, odd)


def _pairs(cls: type, clean: bool) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """An object as (key, value) pairs, some fields left out; unless ``clean``, unknown or
    repeated keys too."""
    plans = field_plans(cls) or ()
    fields = [
        st.tuples(st.just(p.wire), _values(p, clean)).map(lambda kv: [kv])
        if p.absent is attrs.NOTHING
        else st.lists(st.tuples(st.just(p.wire), _values(p, clean)), max_size=1)
        for p in plans
    ]
    if clean:
        return st.tuples(*fields).map(lambda groups: [kv for group in groups for kv in group])
    unknown = st.lists(
        st.tuples(st.sampled_from(["priority", "extra", "item", "ID", "from_"]), any_json),
        max_size=1,
    )
    repeated = st.lists(st.tuples(st.sampled_from([p.wire for p in plans]), json_leaf), max_size=1)
    return st.tuples(st.tuples(*fields), unknown, repeated).map(
        lambda t: [kv for group in t[0] for kv in group] + t[1] + t[2]
    )


def _dump(value: Any) -> str:
    """JSON text; ``("obj", pairs)`` becomes an object that may repeat keys."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "obj":
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value[1]) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


metas = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "hasMore": st.booleans() | st.sampled_from(["yes", 1]),
        "total": st.integers(-5, 500) | st.just("7"),
        "truncated": st.booleans() | st.none(),
    },
)


@st.composite
def envelopes(draw: st.DrawFn, cls: type, shape: Shape) -> bytes:
    """An answer body for ``shape`` with objects of ``cls``: mostly well-formed."""
    clean = draw(st.booleans())  # about half the answers are well-formed throughout
    obj = ("obj", draw(_pairs(cls, clean)))
    items = [("obj", p) for p in draw(st.lists(_pairs(cls, clean), max_size=4))]
    data: Any
    if shape == "bare":
        data = draw(st.sampled_from([obj, obj, obj, True, False, None, "x"]))
    elif shape == "item":
        data = draw(st.sampled_from([{"item": obj}, {"item": obj}, obj, {"item": None}, [obj]]))
    else:
        data_meta = draw(st.fixed_dictionaries({}, optional={"meta": metas}))
        beside = draw(metas) or {}
        data = draw(
            st.sampled_from(
                [
                    items,
                    {"items": items},
                    {"items": items, **data_meta, **beside},
                    {"items": 5},
                    obj,
                ]
            )
        )
    envelope: dict[str, Any] = {"success": draw(st.sampled_from([True, True, True, False, 1]))}
    if draw(st.booleans()) or envelope["success"] is not True:
        envelope.update(draw(st.sampled_from([{}, {"data": data}])))
    envelope.setdefault("data", data)
    extra = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "meta": metas | st.just(_deep(150)),
                "error": st.just({"code": "BITRIX_ERROR", "message": "no"}),
                "note": any_json,
            },
        )
    )
    envelope.update(extra)
    text = _dump(envelope)
    spaced = draw(st.booleans())
    return (text.replace(",", ", ") if spaced else text).encode()


def _outcome(body: bytes, cls: type, shape: Shape, *, fast: bool) -> tuple[Any, ...]:
    """How reading ``body`` ends in one lane: the result's repr, meta and data, or the error."""
    answer = Answer(200, {}, body)
    decoder = Decoder(cls, shape)
    try:
        if fast:
            reply = read(CALL, answer, decoder=decoder)
            took_fast = "data=<unread>" in repr(reply)  # data is parsed only if asked for
        else:
            reply = read(CALL, answer)
            reply.parsed = decoder.decode(CALL, reply.data)  # the converter only
            took_fast = False
        result = reply.parsed
        if shape == "page":
            assert took_fast == (reply.parsed.__class__ is FastPage)
            result = decode_page(CALL, reply, cls, offset=0, limit=3)
        return ("ok", repr(result), result, repr(reply.meta), repr(reply.data)), took_fast
    except errors.MailError as exc:
        return ("error", type(exc), str(exc), getattr(exc, "status", None)), False


def _check(body: bytes, cls: type, shape: Shape) -> bool:
    fast, took_fast = _outcome(body, cls, shape, fast=True)
    slow, _ = _outcome(body, cls, shape, fast=False)
    assert fast == slow, body
    return took_fast


@pytest.mark.parametrize(
    ("cls", "shape"), [(cls, shape) for shape, classes in SHAPES.items() for cls in classes]
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_lanes_agree(cls: type, shape: Shape, data: st.DataObject) -> None:
    """Any answer: the Decoder (fast lane first) ends as the pure-Python lane does."""
    _check(data.draw(envelopes(cls, shape)), cls, shape)


def _well_formed(cls: type) -> dict[str, Any]:
    values = {
        int: 7,
        int | None: 7,
        str: "s",
        str | None: "s",
        bool: True,
        bool | None: False,
        datetime | None: "2026-05-25T10:00:00+03:00",
    }
    obj: dict[str, Any] = {}
    for plan in field_plans(cls) or ():
        obj[plan.wire] = (
            "a@x.io, b@y.io" if plan.recipients else values.get(plan.type, [{"type": "crm"}])
        )
    return obj


@pytest.mark.skipif(not AVAILABLE, reason="msgspec is not installed")
@pytest.mark.parametrize(
    ("cls", "shape"), [(cls, shape) for shape, classes in SHAPES.items() for cls in classes]
)
def test_well_formed_answers_take_the_fast_lane(cls: type, shape: Shape) -> None:
    """A well-formed answer is decoded by the fast lane, to the same result."""
    obj = _well_formed(cls)
    data: Any = {"item": obj} if shape == "item" else obj
    if shape in ("list", "page"):
        data = {"items": [obj, obj]}
    meta = {"total": 2, "hasMore": False}
    body = json.dumps({"success": True, "data": data, "meta": meta}).encode()
    assert _check(body, cls, shape)


@pytest.mark.skipif(not AVAILABLE, reason="msgspec is not installed")
def test_every_covered_model_has_a_lane() -> None:
    """A lane exists for each model the generated decoder covers (building one never fails)."""
    assert models.MessageSummary in COVERED
    for cls in COVERED:
        for shape in SHAPES:
            assert lane(cls, shape) is not None, (cls, shape)


@pytest.mark.skipif(not AVAILABLE, reason="msgspec is not installed")
@pytest.mark.parametrize(
    "item",
    [
        {"id": "5"},  # a lenient int
        {"id": 5, "isSeen": "Y"},  # a lenient bool
        {"id": 5, "priority": 3},  # an unknown key: it goes to extra
        {"id": 5.0},  # a float for an int
        {"id": 2**64},  # past 64 bits: orjson would read a float
        {"id": 5, "date": "yesterday"},  # not a date: the other lane gives the error
        {"id": 5, "bindings": _deep(120)},  # too deep to keep
    ],
)
def test_deviating_pages_take_the_python_lane(item: dict[str, Any]) -> None:
    """A page with one deviating item is decoded whole by the other lane, with equal results."""
    body = json.dumps({"success": True, "data": {"items": [{"id": 1}, item]}}).encode()
    assert not _check(body, models.MessageSummary, "page")
