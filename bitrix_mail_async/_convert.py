"""The one cattrs converter: wire (camelCase JSON) ⇄ models, configured once at import.

Decisions kept here and nowhere else:

* The rename rule: wire names are generated from attribute names (snake_case → camelCase, a
  trailing ``_`` dropped, so ``from_`` ↔ ``from``). No per-field table to keep in sync.
* Lenient scalars, because Bitrix24 often sends numbers as strings and booleans as "Y"/"N":
  ints take ``123`` or ``"123"`` (not bools, fractional floats or other strings); bools take
  true/false, "Y"/"N", "true"/"false", "1"/"0", 1/0; str fields take strings and numbers;
  datetimes take ISO 8601 (offset → aware, none → naive), ``""``/``null`` → ``None``.
* Unknown wire keys go to the model's ``extra`` instead of failing.
* Failures surface only as :class:`~bitrix_mail_async.errors.DecodeError`.

Speed: each model is structured by code cattrs generates for it (``make_dict_structure_fn``
without detailed validation). Only when that fails is the slower detailed-validation variant
run, to name the offending field in the error.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MemberDescriptorType
from typing import Any, Final, TypeVar, cast

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.gen._consts import AttributeOverride

from . import models
from .errors import DecodeError

__all__ = [
    "converter",
    "structure",
    "structure_list",
    "to_dict",
    "unstructure",
    "unwrap_item",
    "unwrap_items",
    "wire_name",
]

T = TypeVar("T")

_StructureFn = Callable[[Any, Any], Any]


class _BadValue(ValueError):
    """A wire value that does not fit its field; the text is shown to the user as is."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- scalar hooks --------------------------------------------------------------------------
# Each hook starts with an identity check for the common, already-right case: the pager
# decodes thousands of fields and most of them need no work.

_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")


def _int_slow(value: object) -> int:
    # Bitrix24 sends most ids as decimal strings; isascii() keeps out digits int() would
    # accept from other scripts ("١٢").
    if value.__class__ is str and value.isascii() and value.isdigit() and len(value) <= 40:
        return int(value)
    if isinstance(value, bool):
        raise _BadValue(f"expected an integer, got a boolean ({value!r})")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # Bounded length: int() of a huge digit string is slow and capped by Python anyway.
        if len(text) <= 40 and _INT_TEXT.fullmatch(text):
            return int(text)
        raise _BadValue(f"expected an integer, got {_shown(value)}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _BadValue(f"expected an integer, got {_shown(value)}")


def _int(value: Any, _: object) -> int:
    return value if value.__class__ is int else _int_slow(value)


def _opt_int(value: Any, _: object) -> int | None:
    if value.__class__ is int or value is None:
        return value
    if value == "":
        return None
    return _int_slow(value)


def _str_slow(value: object) -> str:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _BadValue(f"expected a string, got {type(value).__name__}")


def _str(value: Any, _: object) -> str:
    return value if value.__class__ is str else _str_slow(value)


def _opt_str(value: Any, _: object) -> str | None:
    if value.__class__ is str or value is None:
        return value
    return _str_slow(value)


_TRUE: Final = frozenset({"y", "yes", "true", "1"})
_FALSE: Final = frozenset({"n", "no", "false", "0"})
_BOOL_TEXT: Final = {"Y": True, "N": False, "true": True, "false": False, "1": True, "0": False}


def _bool_slow(value: object) -> bool:
    if value.__class__ is str and value in _BOOL_TEXT:
        return _BOOL_TEXT[value]
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    elif value.__class__ is int and value in (0, 1):
        return value == 1
    raise _BadValue(f"expected a boolean, got {_shown(value)}")


def _bool(value: Any, _: object) -> bool:
    return value if value is True or value is False else _bool_slow(value)


def _opt_bool(value: Any, _: object) -> bool | None:
    if value is True or value is False or value is None:
        return value
    if value == "":
        return None
    return _bool_slow(value)


def _datetime(value: Any, _: object) -> datetime:
    if not isinstance(value, str):
        raise _BadValue(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _BadValue(f"expected an ISO 8601 date-time, got {_shown(value)}") from None


def _opt_datetime(value: Any, _: object) -> datetime | None:
    if value.__class__ is str and value[:1] not in ("", "0"):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    # Bitrix24 (PHP/MySQL) writes an unset date as "" or the zero date, not null.
    if value is None or value == "" or (isinstance(value, str) and value.startswith("0000-00-00")):
        return None
    return _datetime(value, None)


def _json_tuple(value: Any, _: object) -> tuple[Any, ...]:
    # `bindings` has no documented item shape: keep whatever JSON arrives, never fail.
    if value.__class__ is list or value.__class__ is tuple:
        return tuple(value)
    if value is None:
        return ()
    return (value,)


# One address: quoted strings (with \-escapes) and <...> may hold commas; an unterminated
# quote or bracket runs to the end, so a malformed list is kept whole rather than mangled.
_ADDRESS: Final = re.compile(r'(?:"(?:[^"\\]|\\.)*(?:"|\\?$)|<[^>]*(?:>|$)|[^,"<])+')


def split_recipients(text: str) -> tuple[str, ...]:
    """Split an address list on commas outside double quotes and angle brackets."""
    if "," not in text:
        one = text.strip()
        return (one,) if one else ()
    plain = '"' not in text and "<" not in text
    parts = [part.strip() for part in (text.split(",") if plain else _ADDRESS.findall(text))]
    if "" in parts:
        parts = [part for part in parts if part]
    return tuple(parts)


def _recipient_item(item: object) -> str | None:
    if isinstance(item, str):
        return item.strip() or None
    if isinstance(item, dict):
        # Not documented, but REST lists sometimes carry {"email", "name"} pairs.
        email = item.get("email")
        if isinstance(email, str) and email.strip():
            name = item.get("name")
            if isinstance(name, str) and name.strip():
                return f"{name.strip()} <{email.strip()}>"
            return email.strip()
    raise _BadValue(f"expected an address string, got {_shown(item)}")


def _recipients(value: Any, _: object) -> tuple[str, ...]:
    if value.__class__ is str:
        return split_recipients(value)
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(addr for addr in map(_recipient_item, value) if addr is not None)
    raise _BadValue(f"expected an address list, got {type(value).__name__}")


# --- the converter --------------------------------------------------------------------------

converter: Final = cattrs.Converter(unstruct_collection_overrides={tuple: list})

for _type, _scalar_hook in (
    (int, _int),
    (int | None, _opt_int),
    (str, _str),
    (str | None, _opt_str),
    (bool, _bool),
    (bool | None, _opt_bool),
    (datetime, _datetime),
    (datetime | None, _opt_datetime),
):
    converter.register_structure_hook(_type, _scalar_hook)
# Parametrised tuples are not classes, so singledispatch cannot take them.
converter.register_structure_hook_func(lambda t: t == tuple[Any, ...], _json_tuple)


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat()


converter.register_unstructure_hook(datetime, _unstructure_datetime)


def wire_name(attribute: str) -> str:
    """Return the wire (camelCase) name of a model attribute: ``mailbox_id`` → ``mailboxId``."""
    head, *rest = attribute.rstrip("_").split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


@attrs.frozen
class _ModelCodec:
    """Per-model generated functions and the wire names they know."""

    cls: type[Any]
    fast: _StructureFn
    detailed: _StructureFn
    unstructure: Callable[[Any], dict[str, Any]]
    known: frozenset[str]
    attr_of: Mapping[str, str]  # attribute name → wire name, for error messages


# The generators take overrides as **kwargs next to bool flags; mypy cannot match a dict there.
_gen_structure: Callable[..., _StructureFn] = make_dict_structure_fn
_gen_unstructure: Callable[..., Callable[[Any], dict[str, Any]]] = make_dict_unstructure_fn


def _build_codec(cls: type[Any]) -> _ModelCodec:
    overrides: dict[str, AttributeOverride] = {}
    for field in attrs.fields(cls):
        if field.name == "extra":
            overrides["extra"] = override(omit=True)
        elif field.metadata.get(models.RECIPIENTS):
            overrides[field.name] = override(rename=wire_name(field.name), struct_hook=_recipients)
        else:
            overrides[field.name] = override(rename=wire_name(field.name))
    renames = {name: o.rename for name, o in overrides.items() if o.rename is not None}
    return _ModelCodec(
        cls=cls,
        fast=_gen_structure(cls, converter, _cattrs_detailed_validation=False, **overrides),
        detailed=_gen_structure(cls, converter, _cattrs_detailed_validation=True, **overrides),
        unstructure=_gen_unstructure(cls, converter, **overrides),
        known=frozenset(renames.values()),
        attr_of=renames,
    )


def _make_structure_hook(codec: _ModelCodec) -> _StructureFn:
    fast, known = codec.fast, codec.known

    def structure_model(data: Any, _: object) -> Any:
        if data.__class__ is not dict:
            if not isinstance(data, Mapping):
                raise _BadValue(f"expected a JSON object, got {type(data).__name__}")
            data = dict(data)
        if data.keys() <= known:
            return fast(data, None)
        instance = fast(data, None)
        # `extra` came from its factory, so it is this instance's own fresh dict.
        instance.extra.update({k: v for k, v in data.items() if k not in known})
        return instance

    return structure_model


# --- generated straight-line decoders --------------------------------------------------------
# cattrs' generated function calls one Python hook per field and then the frozen attrs
# ``__init__`` (keyword parsing plus ``object.__setattr__`` per field): ~7 us for a message.
# The decoder generated below does the same work in one function: each field's value is
# checked inline against the common, already-right wire types (``v.__class__ is int``, ...)
# and the hook runs only when that check fails; the instance is made with ``object.__new__``
# and filled through the slots' own descriptors (what ``__init__`` ends up doing). It accepts,
# converts and rejects exactly what the cattrs function does: every non-trivial value goes to
# the same hook, and a missing key takes the attrs default.

_MISSING: Final = object()

# Inline "already right" checks per field type; `v` is the wire value.
_FAST_CHECK: Final[dict[Any, str]] = {
    int: "v.__class__ is int",
    int | None: "v.__class__ is int or v is None",
    str: "v.__class__ is str",
    str | None: "v.__class__ is str or v is None",
    bool: "v is True or v is False",
    bool | None: "v is True or v is False or v is None",
    datetime | None: "v is None",
}
_DATETIMES: Final = (datetime, datetime | None)


def _generated_decoder(cls: type[Any], known: frozenset[str]) -> _StructureFn | None:
    """A straight-line structure function for ``cls``; None when one cannot be made safely."""
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        return None
    if cls.__dictoffset__ != 0:  # not slotted all the way down
        return None
    attrs.resolve_types(cls)
    env: dict[str, Any] = {
        "__cls": cls,
        "__new": object.__new__,
        "__dict": dict,
        "__Mapping": Mapping,
        "__isinstance": isinstance,
        "__BadValue": _BadValue,
        "__MISSING": _MISSING,
        "__known": known,
        "__fromiso": datetime.fromisoformat,
        "__tuple": tuple,
    }
    lines = [
        "def decode(o, _=None):",
        "    if o.__class__ is not __dict:",
        "        if not __isinstance(o, __Mapping):",
        "            raise __BadValue(f'expected a JSON object, got {type(o).__name__}')",
        "        o = __dict(o)",
        "    self = __new(__cls)",
    ]
    for index, field in enumerate(attrs.fields(cls)):
        if field.validator is not None or field.converter is not None or not field.init:
            return None
        descriptor = getattr(cls, field.name, None)
        if not isinstance(descriptor, MemberDescriptorType):
            return None
        env[f"__set{index}"] = descriptor.__set__
        default = field.default
        if field.name == "extra":
            lines += [
                "    if o.keys() <= __known:",
                "        v = {}",
                "    else:",
                "        v = {k: x for k, x in o.items() if k not in __known}",
                f"    __set{index}(self, v)",
            ]
            continue
        wire = wire_name(field.name)
        special = field.metadata.get(models.RECIPIENTS) or field.type == tuple[Any, ...]
        check = _FAST_CHECK.get(field.type)
        # Where a missing key and null decode alike (the default), one dict.get does both.
        none_is_default = (default is None and check is not None and "v is None" in check) or (
            special and default == ()
        )
        if default is attrs.NOTHING:
            fetch = [f"    v = o[{wire!r}]"]  # KeyError -> "required field missing"
            first = "if"
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            return None
        elif none_is_default:
            env[f"__default{index}"] = default
            fetch = [f"    v = o.get({wire!r})"]
            first = "if"
        else:
            env[f"__default{index}"] = default
            fetch = [
                f"    v = o.get({wire!r}, __MISSING)",
                "    if v is __MISSING:",
                f"        v = __default{index}",
            ]
            first = "elif"
        if field.metadata.get(models.RECIPIENTS):
            hook: _StructureFn = _recipients
            branches = [
                f"    {first} v.__class__ is str and ',' not in v:",
                "        v = v.strip()",
                "        v = (v,) if v else ()",
            ]
        elif field.type == tuple[Any, ...]:
            hook = _json_tuple
            branches = [f"    {first} v.__class__ is list:", "        v = __tuple(v)"]
        else:
            hook = converter.get_structure_hook(field.type)
            branches = [f"    {first} {check}:", "        pass"] if check else []
            if field.type in _DATETIMES:
                nxt = "elif" if branches else first
                branches += [
                    f"    {nxt} v.__class__ is str and v[:1] not in ('', '0'):",
                    "        try:",
                    "            v = __fromiso(v)",
                    "        except ValueError:",
                    f"            v = __hook{index}(v, __type{index})",
                ]
        if special and none_is_default:
            branches += ["    elif v is None:", f"        v = __default{index}"]
        env[f"__hook{index}"] = hook
        env[f"__type{index}"] = field.type
        fallback = "else" if branches or first == "elif" else None
        body = [*fetch, *branches]
        if fallback is None:
            body.append(f"    v = __hook{index}(v, __type{index})")
        else:
            body += [f"    {fallback}:", f"        v = __hook{index}(v, __type{index})"]
        lines += [*body, f"    __set{index}(self, v)"]
    lines.append("    return self")
    source = "\n".join(lines) + "\n"
    filename = f"<bitrix_mail_async generated decoder {cls.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)  # our own generated source
    decode: _StructureFn = env["decode"]
    decode.__name__ = decode.__qualname__ = f"decode_{cls.__name__}"
    return decode


def _make_crm_hook(model_hook: _StructureFn) -> _StructureFn:
    def structure_crm(data: Any, cls: object) -> Any:
        # REST 3.0 answers a bare boolean; the gateway may wrap it in an object.
        if isinstance(data, Mapping):
            return model_hook(data, cls)
        return models.CrmActivityCreated(success=_bool(data, None))

    return structure_crm


def _make_unstructure_hook(codec: _ModelCodec) -> Callable[[Any], dict[str, Any]]:
    gen = codec.unstructure

    def unstructure_model(instance: Any) -> dict[str, Any]:
        wire = gen(instance)
        extra: dict[str, Any] = instance.extra
        # Known fields win over a stray extra key of the same name.
        return {**extra, **wire} if extra else wire

    return unstructure_model


_MODELS: Final[tuple[type[Any], ...]] = (
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
)

_CODECS: Final[dict[type[Any], _ModelCodec]] = {}
_HOOKS: Final[dict[type[Any], _StructureFn]] = {}

for _cls in _MODELS:
    _codec = _build_codec(_cls)
    _model_hook = _generated_decoder(_cls, _codec.known) or _make_structure_hook(_codec)
    if _cls is models.CrmActivityCreated:
        _model_hook = _make_crm_hook(_model_hook)
    _CODECS[_cls] = _codec
    _HOOKS[_cls] = _model_hook
    converter.register_structure_hook(_cls, _model_hook)
    converter.register_unstructure_hook(_cls, _make_unstructure_hook(_codec))


# --- errors ---------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _BadValue):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _explain(data: object, cls: type[Any], exc: BaseException) -> str:
    """Name the class and the wire fields that failed (re-running detailed validation)."""
    name = getattr(cls, "__name__", repr(cls))
    codec = _CODECS.get(cls)
    if codec is None or not isinstance(data, Mapping):
        return f"cannot decode {name}: {_reason(exc)}"
    try:
        codec.detailed(dict(data), None)
    except ClassValidationError as detailed:
        with_notes, without = detailed.group_exceptions()
        problems = [
            f"{codec.attr_of.get(note.name, note.name)!r}: {_reason(sub)}"
            for sub, note in with_notes
        ]
        problems += [_reason(sub) for sub in without]
        return f"cannot decode {name}: " + "; ".join(problems)
    except Exception as other:  # a failure outside any field; report it as is
        return f"cannot decode {name}: {_reason(other)}"
    return f"cannot decode {name}: {_reason(exc)}"


# --- public helpers -------------------------------------------------------------------------


def structure(data: object, cls: type[T]) -> T:
    """Decode one wire value into ``cls``; raises only :class:`DecodeError`."""
    try:
        hook = _HOOKS.get(cls)
        if hook is not None:
            return cast(T, hook(data, cls))
        return converter.structure(data, cls)
    except Exception as exc:
        raise DecodeError(_explain(data, cls, exc)) from None


def structure_list(data: object, cls: type[T]) -> list[T]:
    """Decode a JSON list of objects into ``list[cls]``; raises only :class:`DecodeError`."""
    if data.__class__ is not list:
        name = getattr(cls, "__name__", repr(cls))
        raise DecodeError(f"cannot decode list[{name}]: expected a JSON array, got {_kind(data)}")
    items = data
    hook = _HOOKS.get(cls)
    if hook is None:
        return [structure(item, cls) for item in items]
    try:
        return [hook(item, cls) for item in items]
    except Exception:
        pass
    # Slow path only to find and name the failing item.
    result: list[T] = []
    for index, item in enumerate(items):
        try:
            result.append(hook(item, cls))
        except Exception as exc:
            raise DecodeError(f"item {index}: {_explain(item, cls, exc)}") from None
    return result


def unwrap_items(data: object) -> list[Any]:
    """Return the list from a bare JSON array or from ``{"items": [...]}``."""
    if data.__class__ is list:
        return data
    if isinstance(data, dict):
        items = data.get("items")
        if items.__class__ is list:
            return items
        raise DecodeError(f"expected a list or an object with an 'items' list, got {_keys(data)}")
    raise DecodeError(f"expected a list or an object with an 'items' list, got {_kind(data)}")


def unwrap_item(data: object) -> Any:
    """Return the object from ``{"item": {...}}``, or a bare object itself."""
    if isinstance(data, dict):
        if "item" not in data:
            return data
        inner = data["item"]
        if isinstance(inner, dict):
            return inner
        raise DecodeError(f"expected 'item' to be an object, got {_kind(inner)}")
    raise DecodeError(f"expected an object, got {_kind(data)}")


def unstructure(obj: object) -> dict[str, Any]:
    """Encode a model as a JSON-ready dict with wire (camelCase) names and ``extra`` merged in."""
    result = converter.unstructure(obj)
    if not isinstance(result, dict):
        raise TypeError(f"not a model: {type(obj).__name__}")
    return result


def to_dict(obj: object) -> dict[str, Any]:
    """Return a model as a JSON-ready dict with Python attribute names (``extra`` kept apart)."""
    cls = type(obj)
    if not attrs.has(cls):
        raise TypeError(f"not a model: {cls.__name__}")
    return {field.name: _plain(getattr(obj, field.name)) for field in attrs.fields(cls)}


def _plain(value: object) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if attrs.has(type(value)):
        return to_dict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return value


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _keys(data: Mapping[Any, Any]) -> str:
    keys = ", ".join(sorted(map(str, data))[:8])
    return f"an object with keys [{keys}]"
