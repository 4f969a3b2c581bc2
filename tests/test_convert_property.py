"""Property tests: any JSON decodes to a model or raises DecodeError, extras round-trip, and
the generated decoders agree with the ones cattrs generates.

The models are every attrs class of :mod:`bitrix_mail_async.models`, found at import time: a
new model is covered without being listed here. A generic one (``Page``) is tried with a
model as its type argument. The last tests show that no list exists to forget: a model
defined only here decodes by the same rules.
"""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, TypeVar, get_args, get_origin

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitrix_mail_async import errors, models
from bitrix_mail_async._convert import (
    cattrs_decoder,
    generated_decoder,
    structure,
    structure_list,
    unstructure,
    wire_name,
)


def concrete(cls: type[Any]) -> Any:
    """``cls`` itself, or a generic class parametrised with ``Mailbox`` for each parameter."""
    params = getattr(cls, "__parameters__", ())
    return cls[tuple(models.Mailbox for _ in params)] if params else cls


MODELS: list[Any] = [
    concrete(obj)
    for obj in vars(models).values()
    if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == models.__name__
]
# The models the converter decodes with its own generated function, with cattrs' for them.
DECODERS: dict[Any, tuple[Any, Any]] = {
    cls: (generated, cattrs_decoder(cls))
    for cls in MODELS
    if (generated := generated_decoder(cls)) is not None
}

# Per class: ~14 classes x 100 examples per property keeps the file to a few seconds of CPU.
PER_CLASS = settings(max_examples=100, deadline=None, database=None)
FAST = settings(max_examples=200, deadline=None, database=None)


def model_id(cls: Any) -> str:
    return str(getattr(cls, "__name__", cls))


def test_models_are_found() -> None:
    assert models.Message in MODELS
    assert models.Page[models.Mailbox] in MODELS
    assert models.MessageSummary in DECODERS


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


def wire_keys(cls: Any) -> list[str]:
    return [wire_name(f.name) for f in attrs.fields(cls) if f.name != "extra"]


def has_extra(cls: Any) -> bool:
    return any(f.name == "extra" for f in attrs.fields(cls))


def field_types(cls: Any) -> dict[str, tuple[attrs.Attribute[Any], Any]]:
    """Each field but ``extra`` with its type, type variables replaced by the type arguments."""
    origin = get_origin(cls) or cls
    attrs.resolve_types(origin)
    bound = dict(zip(getattr(origin, "__parameters__", ()), get_args(cls), strict=False))

    def resolve(t: Any) -> Any:
        if isinstance(t, TypeVar):
            return bound[t]
        if get_origin(t) is list:
            return list[resolve(get_args(t)[0])]  # type: ignore[misc]
        return t

    return {f.name: (f, resolve(f.type)) for f in attrs.fields(origin) if f.name != "extra"}


def own_key_dicts(cls: Any) -> st.SearchStrategy[dict[str, Any]]:
    keys = wire_keys(cls)
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), json_values, max_size=8)


def assert_structures_or_decode_error(data: object, cls: Any) -> None:
    try:
        result = structure(data, cls)
    except errors.DecodeError as exc:
        message = str(exc)
    else:
        assert isinstance(result, get_origin(cls) or cls)
        return
    assert model_id(cls) in message


@pytest.mark.parametrize("cls", MODELS, ids=model_id)
@PER_CLASS
@given(data=st.data())
def test_any_json_decodes_or_raises_decode_error(cls: type[Any], data: st.DataObject) -> None:
    # Half arbitrary JSON, half objects made of the model's own wire keys with any values.
    assert_structures_or_decode_error(data.draw(json_values | own_key_dicts(cls)), cls)


@FAST
@given(cls=st.sampled_from(MODELS), data=st.lists(json_values | st.just({"id": 1}), max_size=4))
def test_structure_list_decodes_or_raises_decode_error(cls: Any, data: list[Any]) -> None:
    try:
        result = structure_list(data, cls)
    except errors.DecodeError:
        pass
    else:
        assert all(isinstance(item, get_origin(cls) or cls) for item in result)


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


def wire_value(field: attrs.Attribute[Any], t: Any) -> st.SearchStrategy[Any]:
    """A valid wire value for the field, in any of the spellings the gateway may use."""
    if field.metadata.get(models.RECIPIENTS):
        return (
            st.none() | st.lists(emails, max_size=3) | st.lists(emails, max_size=3).map(", ".join)
        )
    if get_origin(t) is list:  # a list of models: Page.items
        return st.lists(valid_payloads(get_args(t)[0]), max_size=2)
    if attrs.has(t) or (get_origin(t) is not None and any(attrs.has(a) for a in get_args(t))):
        model = next(a for a in (t, *get_args(t)) if attrs.has(a))  # a nested model (| None)
        return st.none() | valid_payloads(model)
    optional = t in (int | None, str | None, bool | None, datetime | None, float | None)
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
    elif t == tuple[str, ...]:
        base = st.lists(st.text(max_size=10), max_size=3)
    elif t in (float, float | None):
        base = ints | st.floats(allow_nan=False, allow_infinity=False)
    else:  # pragma: no cover - a new field type needs a strategy here
        raise AssertionError(f"no strategy for {field.name}: {t}")
    return st.none() | base if optional else base


def valid_payloads(cls: Any) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field, t in field_types(cls).values():
        target = optional if field.default is not attrs.NOTHING else required
        target[wire_name(field.name)] = wire_value(field, t)
    return st.fixed_dictionaries(required, optional=optional)


def unknown_keys(cls: Any) -> st.SearchStrategy[dict[str, Any]]:
    known = set(wire_keys(cls))
    keys = st.text(max_size=10).filter(lambda k: k not in known)
    return st.dictionaries(keys, json_values, max_size=4)


@pytest.mark.parametrize("cls", MODELS, ids=model_id)
@PER_CLASS
@given(data=st.data())
def test_valid_payloads_keep_unknown_keys_in_extra(cls: Any, data: st.DataObject) -> None:
    payload = data.draw(valid_payloads(cls))
    unknown = data.draw(unknown_keys(cls))
    instance = structure({**payload, **unknown}, cls)
    # A model without `extra` (Page) ignores unknown keys.
    kept = unknown if has_extra(cls) else {}
    assert getattr(instance, "extra", {}) == kept
    # Encoding gives the wire back; decoding that gives the same instance.
    again = structure(unstructure(instance), cls)
    assert again == instance
    assert getattr(again, "extra", {}) == kept


# --- the generated decoders against cattrs' -------------------------------------------------


def outcome(decode: Any, data: object, cls: Any) -> tuple[Any, ...]:
    """What a decoder makes of ``data``: the class, each field's type and value, or a failure."""
    try:
        instance = decode(data, cls)
    except Exception:
        return ("failed",)
    values = attrs.astuple(instance, recurse=False)
    return (type(instance), *((type(v), v) for v in values))


def any_payloads(cls: Any) -> st.SearchStrategy[Any]:
    """Valid payloads with unknown keys, the model's keys with any values, any JSON."""
    valid = st.builds(lambda a, b: {**a, **b}, valid_payloads(cls), unknown_keys(cls))
    objects = valid | own_key_dicts(cls)
    return objects | objects.map(MappingProxyType) | json_values


@pytest.mark.parametrize("cls", DECODERS, ids=model_id)
@PER_CLASS
@given(data=st.data())
def test_generated_decoder_agrees_with_cattrs(cls: Any, data: st.DataObject) -> None:
    generated, reference = DECODERS[cls]
    payload = data.draw(any_payloads(cls))
    assert outcome(generated, payload, cls) == outcome(reference, payload, cls)


# --- a model the converter was never told about ---------------------------------------------


@attrs.frozen(kw_only=True)
class MarkResult:
    """A model defined only in this test: listed and registered nowhere."""

    success: bool = True
    marked_count: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.define(kw_only=True, slots=False)
class LooseMarkResult:
    """The same shape, not slotted: decoded by the cattrs-generated function."""

    success: bool = True
    marked_count: int | None = attrs.field(default=None, validator=attrs.validators.ge(0))
    extra: dict[str, Any] = attrs.field(factory=dict)


@pytest.mark.parametrize("cls", [MarkResult, LooseMarkResult])
def test_an_unregistered_model_decodes_like_any_other(
    cls: type[MarkResult] | type[LooseMarkResult],
) -> None:
    assert (generated_decoder(cls) is not None) == (cls is MarkResult)
    result = structure({"markedCount": "3", "foo": 1}, cls)
    assert (result.marked_count, result.extra, result.success) == (3, {"foo": 1}, True)
    assert structure_list([{"markedCount": 4, "success": "N"}], cls) == [
        cls(marked_count=4, success=False)
    ]
    assert unstructure(result) == {"success": True, "markedCount": 3, "foo": 1}
    with pytest.raises(errors.DecodeError, match=f"{cls.__name__}: 'markedCount'"):
        structure({"markedCount": "three"}, cls)
