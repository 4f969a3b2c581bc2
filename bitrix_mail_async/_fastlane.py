"""The C fast lane: a well-formed answer decoded straight from its bytes (extra "speedups").

With :mod:`msgspec` installed, each model the converter's generated decoder covers gets a wire
``Struct`` made from its attrs fields (camelCase wire names, as the converter's), and each
answer shape (one object, ``{"item": ...}``, a list, a page) an envelope ``Struct`` around it.
msgspec parses the body into those in C; a generated mover then puts each wire value through
the converter's own inline code for that field (the very code the pure-Python decoder runs)
and fills the same frozen attrs instance. So a model out of this lane equals the one the
pure-Python lane gives, by construction.

The lane only takes what it can match exactly. Any deviation makes :func:`Lane.decode` return
None and the caller runs today's decoder on the whole answer, with today's errors:

* a key the Structs do not name, anywhere (it would go to ``extra``; an unknown envelope or
  page key could hide nesting the JSON parser of the other lane refuses);
* a JSON type other than the field's plain one: ``"5"`` for an int, ``"N"`` for a bool, a
  number for a str, a float for an int, an int outside 64 bits (orjson reads those as floats);
* anything the field's inline code sends to its lenient hook and the hook refuses (a bad
  date), or any value msgspec's parser refuses (lone surrogates, a BOM, NaN).

Values kept as raw JSON (``bindings``, ``meta``) are parsed by :func:`_jsonlib.loads`, the
other lane's parser, and must be at most :data:`~_jsonlib.MAX_DEPTH` deep.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from textwrap import indent
from typing import Annotated, Any, Final, Literal, NamedTuple

import attrs

from ._convert import FieldPlan, _has_extra, compile_decoder, field_plans, fill_code
from ._jsonlib import check_depth, loads

__all__ = ["AVAILABLE", "Fast", "Lane", "Shape", "lane"]


def _import_msgspec() -> Any:
    # Typed as Any: this module type-checks whether or not the extra is installed.
    try:
        return importlib.import_module("msgspec")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


msgspec: Final[Any] = _import_msgspec()

#: Whether the fast lane can run at all (msgspec importable).
AVAILABLE: Final = msgspec is not None

#: The answer shapes: one object (``bare``), ``{"item": obj}`` (``item``), a list (a bare array
#: or ``{"items": [...]}``), a page (a list plus paging meta).
Shape = Literal["bare", "item", "list", "page"]

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class Fast(NamedTuple):
    """What the lane got from an answer: the decoded result, the envelope's ``meta``, and for
    a page the ``meta`` its page logic reads (see ``_envelope.decode_page``)."""

    parsed: Any
    meta: Any
    page_meta: Any = None


#: Field types whose msgspec value is already the field's value: their inline code would only
#: check it.
_AS_IS: Final = (int, int | None, str, str | None, bool, bool | None)


def _wire_type(plan: FieldPlan) -> Any:
    """The JSON type msgspec takes for a field: only the field's plain, already-right form."""
    if plan.recipients:
        return str | list[str] | None
    if plan.type == tuple[Any, ...]:
        return msgspec.Raw
    base: dict[Any, Any] = {
        int: Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)],
        str: str,
        bool: bool,
        datetime: str,
    }
    optional = plan.type in (int | None, str | None, bool | None, datetime | None)
    inner = plan.type.__args__[0] if optional else plan.type
    wire = base[inner]
    return wire | None if optional or plan.absent is None else wire


def _wire_struct(cls: type, plans: tuple[FieldPlan, ...]) -> Any:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for plan in plans:
        wire = _wire_type(plan)
        if plan.absent is attrs.NOTHING:
            fields.append((plan.name, wire))
        elif wire is msgspec.Raw:
            fields.append((plan.name, wire, msgspec.Raw()))  # empty: the key was absent
        else:
            fields.append((plan.name, wire, plan.absent))
    return msgspec.defstruct(
        f"Wire{cls.__name__}",
        fields,
        rename={plan.name: plan.wire for plan in plans},
        forbid_unknown_fields=True,
        kw_only=True,  # the attrs order: a required field may follow defaults
        gc=False,  # plain JSON values: no cycles
    )


def _raw_json(raw: Any) -> Any:
    """A raw JSON value parsed as the other lane parses it; too deep is a deviation."""
    value = loads(bytes(raw))
    check_depth(value)
    return value


def _mover(cls: type, plans: tuple[FieldPlan, ...]) -> Callable[[Any], Any]:
    """Generate ``decode(wire_struct) -> model``: the converter's inline code per field."""
    env: dict[str, Any] = {
        "__cls": cls,
        "__new": object.__new__,
        "__fromiso": datetime.fromisoformat,
        "__raw": _raw_json,
        "__empty_list": msgspec.Raw(b"[]"),
    }
    lines = ["self = __new(__cls)"]
    for index, plan in enumerate(plans):
        env[f"__s{index}"] = getattr(cls, plan.name).__set__
        if plan.type in _AS_IS:
            # msgspec gave exactly the plain value the inline code would pass through.
            lines.append(f"__s{index}(self, s.{plan.name})")
            continue
        lines.append(f"v = s.{plan.name}")
        if plan.type == tuple[Any, ...] and not plan.recipients:
            # Absent (an empty Raw) reads as the plan says; anything else is parsed as the
            # other lane parses it, so that the hook sees the very same value.
            # The common `[]` takes the value the hook gives it.
            env[f"__d{index}"], env[f"__e{index}"] = plan.absent, plan.hook([], plan.type)
            lines += [
                f"if v == __empty_list: __s{index}(self, __e{index})",
                "else:",
                f"    v = __raw(v) if v else __d{index}",
                indent(fill_code(plan, index, env), "    "),
            ]
            continue
        lines.append(fill_code(plan, index, env))
    if _has_extra(cls):
        env["__sx"] = cls.extra.__set__  # type: ignore[attr-defined]
        lines.append("__sx(self, {})")  # every key was known
    lines.append("return self")
    source = "def decode(s):\n" + indent("\n".join(lines), "    ") + "\n"
    mover: Callable[[Any], Any] = compile_decoder("fast mover", cls, source, env)
    return mover


class Lane:
    """The fast lane of one model in one answer shape."""

    __slots__ = ("_decoder", "_move", "_shape")

    def __init__(self, cls: type, plans: tuple[FieldPlan, ...], shape: Shape) -> None:
        wire = _wire_struct(cls, plans)
        self._move = _mover(cls, plans)
        self._shape = shape
        data: Any
        if shape == "bare":
            data = wire
        elif shape == "item":
            data = msgspec.defstruct("WireItem", [("item", wire)], forbid_unknown_fields=True)
        elif shape == "list":
            items = msgspec.defstruct(
                "WireItems",
                [("items", list[wire])],  # type: ignore[valid-type]
                forbid_unknown_fields=True,
            )
            data = list[wire] | items  # type: ignore[valid-type]
        else:
            raw = msgspec.Raw()
            items = msgspec.defstruct(
                "WirePage",
                [
                    ("items", list[wire]),  # type: ignore[valid-type]
                    ("meta", msgspec.Raw, raw),
                    ("has_more", msgspec.Raw, raw),
                    ("total", msgspec.Raw, raw),
                    ("truncated", msgspec.Raw, raw),
                ],
                rename={"has_more": "hasMore"},
                forbid_unknown_fields=True,
            )
            data = list[wire] | items  # type: ignore[valid-type]
        envelope = msgspec.defstruct(
            "WireEnvelope",
            [("success", bool), ("data", data), ("meta", msgspec.Raw, msgspec.Raw())],
            forbid_unknown_fields=True,
        )
        self._decoder = msgspec.json.Decoder(envelope)

    def decode(self, body: bytes) -> Fast | None:
        """The answer decoded, or None for any deviation (then the other lane decides)."""
        try:
            envelope: Any = self._decoder.decode(body)
            if envelope.success is not True:
                return None  # an error envelope: the other lane raises it
            meta = _raw_json(envelope.meta) if envelope.meta else None
            data = envelope.data
            move = self._move
            shape = self._shape
            if shape == "bare":
                return Fast(move(data), meta)
            if shape == "item":
                return Fast(move(data.item), meta)
            if data.__class__ is list:
                # A bare array: the page logic reads the envelope's meta only.
                return Fast([move(s) for s in data], meta, meta)
            parsed = [move(s) for s in data.items]
            if shape == "list":
                return Fast(parsed, meta)
            return Fast(parsed, meta, _page_meta(data, meta))
        except Exception:
            # Any failure here is a deviation, never an error: the other lane gives the error.
            return None


def _page_meta(data: Any, meta: Any) -> Any:
    """The ``meta`` the page logic reads for ``{"items": [...], ...}`` data, parsed alike."""
    # Every raw value is parsed (and depth-checked) even when unused: the other lane's parser
    # reads them all, so one it refuses must send this answer there too.
    nested = {
        key: _raw_json(raw)
        for key, raw in (
            ("meta", data.meta),
            ("hasMore", data.has_more),
            ("total", data.total),
            ("truncated", data.truncated),
        )
        if raw
    }
    if meta is not None:
        return meta
    # As _envelope.decode_page reads it: data.get("meta", data), `items` aside.
    return nested.get("meta", nested)


_LANES: Final[dict[tuple[Any, Shape], Lane | None]] = {}


def lane(cls: Any, shape: Shape) -> Lane | None:
    """The fast lane of ``cls`` in ``shape``; None without msgspec or for a model it skips."""
    key = (cls, shape)
    if key not in _LANES:
        plans = None
        if msgspec is not None and isinstance(cls, type) and attrs.has(cls):
            plans = field_plans(cls)
        _LANES[key] = None if plans is None else Lane(cls, plans, shape)
    return _LANES[key]
