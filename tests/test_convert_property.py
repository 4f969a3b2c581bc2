"""Property tests: any JSON decodes to a model or raises DecodeError, and extras round-trip."""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitrix_mail_async import errors, models
from bitrix_mail_async._convert import structure, structure_list, unstructure, wire_name

MODELS: list[type[Any]] = [
    models.Mailbox,
    models.Sender,
    models.MessageSummary,
    models.Message,
    models.SendResult,
    models.MoveResult,
    models.TaskCreated,
    models.CalendarEventCreated,
    models.ChatCreated,
    models.FeedPostCreated,
    models.CrmActivityCreated,
    models.Contact,
    models.Employee,
]

# Per class: 13 classes x 100 examples per property keeps the file to a few seconds of CPU.
PER_CLASS = settings(max_examples=100, deadline=None, database=None)
FAST = settings(max_examples=200, deadline=None, database=None)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    # Values that sit near the lenient parsers' edges.
    | st.sampled_from(["", " ", "Y", "N", "0", "1", "-7", "12a", "2026-05-25 10:00:00", "a, b"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def wire_keys(cls: type[Any]) -> list[str]:
    return [wire_name(f.name) for f in attrs.fields(cls) if f.name != "extra"]


def field_types(cls: type[Any]) -> dict[str, Any]:
    attrs.resolve_types(cls)
    return {f.name: f for f in attrs.fields(cls) if f.name != "extra"}


def own_key_dicts(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = wire_keys(cls)
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), json_values, max_size=8)


def assert_structures_or_decode_error(data: object, cls: type[Any]) -> None:
    try:
        result = structure(data, cls)
    except errors.DecodeError as exc:
        message = str(exc)
    else:
        assert isinstance(result, cls)
        return
    assert cls.__name__ in message


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@PER_CLASS
@given(data=st.data())
def test_any_json_decodes_or_raises_decode_error(cls: type[Any], data: st.DataObject) -> None:
    # Half arbitrary JSON, half objects made of the model's own wire keys with any values.
    assert_structures_or_decode_error(data.draw(json_values | own_key_dicts(cls)), cls)


@FAST
@given(cls=st.sampled_from(MODELS), data=st.lists(json_values | st.just({"id": 1}), max_size=4))
def test_structure_list_decodes_or_raises_decode_error(cls: type[Any], data: list[Any]) -> None:
    try:
        result = structure_list(data, cls)
    except errors.DecodeError:
        pass
    else:
        assert all(isinstance(item, cls) for item in result)


# --- valid payloads -----------------------------------------------------------------------

offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.none() | offsets
)
emails = st.builds(
    "{}@{}.io".format,
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
)
ints = st.integers(min_value=-(10**12), max_value=10**12)


def wire_value(field: attrs.Attribute[Any]) -> st.SearchStrategy[Any]:
    """A valid wire value for the field, in any of the spellings the gateway may use."""
    if field.metadata.get(models.RECIPIENTS):
        return (
            st.none() | st.lists(emails, max_size=3) | st.lists(emails, max_size=3).map(", ".join)
        )
    t: Any = field.type
    optional = t in (int | None, str | None, bool | None, datetime | None)
    base: st.SearchStrategy[Any]
    if t in (int, int | None):
        base = ints | ints.map(str)
    elif t in (str, str | None):
        base = st.text(max_size=20) | ints
    elif t in (bool, bool | None):
        base = st.sampled_from([True, False, "Y", "N", "true", "false", "1", "0", 1, 0])
    elif t == datetime | None:
        base = datetimes.map(datetime.isoformat) | datetimes.map(lambda d: f"{d:%Y-%m-%d %H:%M:%S}")
    elif t == tuple[Any, ...]:
        base = st.lists(json_values, max_size=3)
    else:  # pragma: no cover - a new field type needs a strategy here
        raise AssertionError(f"no strategy for {field.name}: {t}")
    return st.none() | base if optional else base


def valid_payloads(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in field_types(cls).values():
        target = optional if field.default is not attrs.NOTHING else required
        target[wire_name(field.name)] = wire_value(field)
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@PER_CLASS
@given(data=st.data())
def test_valid_payloads_keep_unknown_keys_in_extra(cls: type[Any], data: st.DataObject) -> None:
    payload = data.draw(valid_payloads(cls))
    known = set(wire_keys(cls))
    unknown = data.draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in known), json_values, max_size=4
        )
    )
    instance = structure({**payload, **unknown}, cls)
    assert instance.extra == unknown
    # Encoding gives the wire back; decoding that gives the same instance.
    again = structure(unstructure(instance), cls)
    assert again == instance
    assert again.extra == unknown
