"""The one cattrs converter: wire (camelCase JSON) ⇄ models, configured once at import.

Decisions kept here and nowhere else:

* Every attrs class is served by hook factories on ``attrs.has`` (cattrs' documented way), so
  there is no list of models: a class added to :mod:`~bitrix_mail_async.models` decodes and
  encodes the first time it is used, generic ones (``Page[Message]``) included.
* The rename rule: wire names are generated from attribute names (snake_case → camelCase, a
  trailing ``_`` dropped, so ``from_`` ↔ ``from``). No per-field table to keep in sync.
* Lenient scalars (:mod:`bitrix_mail_async._scalars`), because Bitrix24 often sends numbers
  as strings and booleans as "Y"/"N"; their common cases are inlined in generated decoders.
* Unknown wire keys go to the model's ``extra`` instead of failing (a class without an
  ``extra`` field, such as ``Page``, ignores them).
* Failures surface only as :class:`~bitrix_mail_async.errors.DecodeError`, naming the class
  and the wire field.

Speed: a model is decoded by the straight-line function :func:`generated_decoder` builds for
it, or, for a shape that generator does not cover, by the function cattrs generates
(:func:`cattrs_decoder`); the two agree on every model (tests/test_convert_property.py).
Only when decoding fails is cattrs' detailed-validation variant run, to name the field.
"""

from __future__ import annotations

import functools
import linecache
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from textwrap import indent
from types import MemberDescriptorType
from typing import Any, Final, NamedTuple, TypeVar, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import models
from ._jsonlib import check_depth
from ._scalars import (
    BadValue,
    json_tuple,
    opt_bool,
    opt_datetime,
    opt_int,
    opt_str,
    to_bool,
    to_datetime,
    to_int,
    to_recipients,
    to_str,
)
from .errors import DecodeError, InvalidArgumentError

__all__ = [
    "NotAModelError",
    "cattrs_decoder",
    "converter",
    "from_dict",
    "generated_decoder",
    "structure",
    "structure_list",
    "to_dict",
    "unstructure",
    "wire_name",
]

T = TypeVar("T")

_StructureFn = Callable[[Any, Any], Any]
_UnstructureFn = Callable[[Any], dict[str, Any]]


# --- the converter --------------------------------------------------------------------------

converter: Final = cattrs.Converter(unstruct_collection_overrides={tuple: list})

# Per field type: its structure hook (registered below, so cattrs calls it too) and the code
# the generated decoder runs instead: it turns the wire value `v` into the field's value and
# calls HOOK for whatever it does not take inline. A class with a field type missing here is
# decoded by cattrs_decoder.
_FIELD_TYPES: Final[dict[Any, tuple[_StructureFn, str]]] = {
    int: (to_int, "if v.__class__ is not int: v = HOOK"),
    int | None: (opt_int, "if v.__class__ is not int and v is not None: v = HOOK"),
    str: (to_str, "if v.__class__ is not str: v = HOOK"),
    str | None: (opt_str, "if v.__class__ is not str and v is not None: v = HOOK"),
    bool: (to_bool, "if v is not True and v is not False: v = HOOK"),
    bool | None: (opt_bool, "if v is not True and v is not False and v is not None: v = HOOK"),
    datetime: (to_datetime, "v = HOOK"),
    datetime | None: (
        opt_datetime,
        "if v.__class__ is str and v[:1] not in ('', '0'):\n"
        "    try: v = __fromiso(v)\n"
        "    except ValueError: v = HOOK\n"
        "elif v is not None: v = HOOK",
    ),
    tuple[Any, ...]: (
        json_tuple,
        # Only the empty list inline: anything else goes through the hook's depth check.
        "if v is None or (v.__class__ is list and not v): v = ()\nelse: v = HOOK",
    ),
}
# One address with no comma is the common case: take it inline, the hook splits the rest.
_RECIPIENTS_CODE: Final = (
    "if v.__class__ is str and ',' not in v:\n"
    "    v = v.strip()\n"
    "    v = (v,) if v else ()\n"
    "elif v is None: v = ()\n"
    "else: v = HOOK"
)

for _type, (_hook, _) in _FIELD_TYPES.items():
    if _type != tuple[Any, ...]:
        converter.register_structure_hook(_type, _hook)
# Parametrised tuples are not classes, so singledispatch cannot take them.
converter.register_structure_hook_func(lambda t: t == tuple[Any, ...], json_tuple)
converter.register_unstructure_hook(datetime, datetime.isoformat)


def wire_name(attribute: str) -> str:
    """Return the wire (camelCase) name of a model attribute: ``mailbox_id`` → ``mailboxId``."""
    head, *rest = attribute.rstrip("_").split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _is_recipients(field: attrs.Attribute[Any]) -> bool:
    return bool(field.metadata.get(models.RECIPIENTS))


def _overrides(cls: Any) -> dict[str, Any]:
    """cattrs overrides for a model: every field under its wire name, ``extra`` left out."""
    result: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if field.name == "extra":
            result["extra"] = override(omit=True)
        else:
            hook = to_recipients if _is_recipients(field) else None
            result[field.name] = override(rename=wire_name(field.name), struct_hook=hook)
    return result


def _wire_names(cls: Any) -> frozenset[str]:
    return frozenset(wire_name(f.name) for f in attrs.fields(cls) if f.name != "extra")


def _has_extra(cls: Any) -> bool:
    return any(field.name == "extra" for field in attrs.fields(cls))


def _derived_fields(cls: Any) -> frozenset[str]:
    """Wire names of fields whose default is computed from the other fields (Sender.sender)."""
    return frozenset(
        wire_name(f.name)
        for f in attrs.fields(cls)
        # attrs types Factory as a function; at run time it is the class of such defaults.
        if isinstance(f.default, attrs.Factory) and f.default.takes_self  # type: ignore[arg-type]
    )


def _as_dict(data: Any) -> dict[Any, Any]:
    if data.__class__ is dict:
        return data
    if not isinstance(data, Mapping):
        raise BadValue(f"expected a JSON object, got {type(data).__name__}")
    return dict(data)


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The unknown wire keys of ``data``, kept as they came unless absurdly deep."""
    extra = {k: v for k, v in data.items() if k not in known}
    check_depth(extra)
    return extra


def cattrs_decoder(cls: Any) -> _StructureFn:
    """Build the decoder cattrs generates for a model, plus the ``extra`` bookkeeping."""
    generated = make_dict_structure_fn(
        cls, converter, _cattrs_detailed_validation=False, **_overrides(cls)
    )
    known = _wire_names(cls)
    keeps_extra = _has_extra(cls)
    derived = _derived_fields(cls)

    def structure_model(data: Any, _: object = None) -> Any:
        data = _as_dict(data)
        if derived and any(data.get(k, 0) in (None, "") for k in derived):
            # null or "" for a field computed from the others: computed, as if left out.
            data = {k: v for k, v in data.items() if k not in derived or v not in (None, "")}
        instance = generated(data, None)
        if keeps_extra and not data.keys() <= known:
            # `extra` came from its factory, so it is this instance's own fresh dict.
            instance.extra.update(_extra(data, known))
        return instance

    return structure_model


@functools.cache
def _detailed_decoder(cls: Any) -> _StructureFn:
    # Run only after a failure, to name every offending field.
    return make_dict_structure_fn(
        cls, converter, _cattrs_detailed_validation=True, **_overrides(cls)
    )


# --- generated straight-line decoders --------------------------------------------------------
# Why a second generator: cattrs' function calls one Python hook per field and then the frozen
# attrs ``__init__`` (keyword parsing plus one ``object.__setattr__`` per field). The decoder
# below handles each field's common, already-right wire values inline and passes anything
# else to the very hook cattrs would call; it makes the instance with ``object.__new__`` and
# fills the slots through their own descriptors, which is what ``__init__`` ends up doing.
# benchmarks/decode_bench.py prints both side by side; it is well over 10 % faster per page.

_EXTRA_CODE: Final = "v = {} if o.keys() <= __known else __extra(o, __known)"
_INLINE_ENV: Final[dict[str, Any]] = {"__fromiso": datetime.fromisoformat}


def _decodes_to(value: object, default: object, hook: _StructureFn, field_type: Any) -> bool:
    try:
        result = hook(value, field_type)
    except Exception:
        return False
    return type(result) is type(default) and bool(result == default)


class FieldPlan(NamedTuple):
    """How a generated decoder takes one field: its wire name, default and inline code.

    ``code`` turns the wire value ``v`` into the field's value, calling ``HOOK`` (the field's
    structure hook) for whatever it does not take inline. ``absent`` is what a missing key
    reads as before ``code`` runs: ``None`` or the field's default (NOTHING: required).
    """

    name: str
    wire: str
    absent: Any
    code: str
    hook: _StructureFn
    type: Any
    recipients: bool


def _field_plan(field: attrs.Attribute[Any]) -> FieldPlan | None:
    """The plan of one field; None when the field is not covered."""
    hook: _StructureFn
    recipients = _is_recipients(field)
    if recipients:
        hook, code = to_recipients, _RECIPIENTS_CODE
    elif field.type in _FIELD_TYPES:
        hook, code = _FIELD_TYPES[field.type]
    else:
        return None
    default = field.default
    if default is attrs.NOTHING:
        absent: Any = attrs.NOTHING  # KeyError: "required field missing"
    elif _decodes_to(None, default, hook, field.type):
        absent = None  # a missing key and null decode alike: one lookup
    elif _decodes_to(default, default, hook, field.type):
        absent = default
    else:  # e.g. a factory default
        return None
    return FieldPlan(field.name, wire_name(field.name), absent, code, hook, field.type, recipients)


def _covered(cls: Any) -> bool:
    """Whether filling the slots of ``cls`` directly does what its attrs ``__init__`` would."""
    if not isinstance(cls, type) or getattr(cls, "__parameters__", None):
        return False  # a generic class: its field types need the type arguments
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return False
    fields = attrs.fields(cls)
    slots = {s for c in cls.__mro__ for s in getattr(c, "__slots__", ())} - {"__weakref__"}
    # Every slot is a field (a cached hash would stay unset) and every field a slot.
    return slots == {f.name for f in fields} and all(
        f.init
        and f.validator is None
        and f.converter is None
        and isinstance(getattr(cls, f.name, None), MemberDescriptorType)
        for f in fields
    )


@functools.cache
def field_plans(cls: Any) -> tuple[FieldPlan, ...] | None:
    """The plans of every field but ``extra``, in order; None when ``cls`` is not covered.

    A covered class has slots filled directly and, if it has ``extra``, a plain dict factory.
    """
    if not _covered(cls):
        return None
    attrs.resolve_types(cls)
    plans: list[FieldPlan] = []
    for field in attrs.fields(cls):
        if field.name == "extra":
            if field.default != attrs.Factory(dict):
                return None
            continue
        plan = _field_plan(field)
        if plan is None:
            return None
        plans.append(plan)
    return tuple(plans)


def compile_decoder(name: str, cls: Any, source: str, env: dict[str, Any]) -> Any:
    """Compile generated ``source`` (defining ``decode``) with its lines in tracebacks."""
    filename = f"<generated {name} {cls.__module__}.{cls.__qualname__}>"
    # In linecache, so that a traceback through the decoder shows its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)
    decode = env["decode"]
    decode.__name__ = decode.__qualname__ = f"{name.replace(' ', '_')}_{cls.__name__}"
    return decode


def fill_code(plan: FieldPlan, index: int, env: dict[str, Any]) -> str:
    """``plan.code`` with its hook bound in ``env``, then the slot set: ``v`` into ``self``."""
    env[f"__h{index}"], env[f"__t{index}"] = plan.hook, plan.type
    code = plan.code.replace("HOOK", f"__h{index}(v, __t{index})")
    return f"{code}\n__s{index}(self, v)"


def generated_decoder(cls: Any) -> _StructureFn | None:
    """Build a straight-line decoder for a model; None when it has a shape not covered here."""
    plans = field_plans(cls)
    if plans is None:
        return None
    known = _wire_names(cls)
    env: dict[str, Any] = {**_INLINE_ENV, "__cls": cls, "__new": object.__new__}
    env.update(__dict=dict, __as_dict=_as_dict, __known=known, __extra=_extra)
    lines = ["if o.__class__ is not __dict: o = __as_dict(o)", "self = __new(__cls)"]
    for index, plan in enumerate(plans):
        if plan.absent is attrs.NOTHING:
            lines.append(f"v = o[{plan.wire!r}]")
        elif plan.absent is None:
            lines.append(f"v = o.get({plan.wire!r})")
        else:
            env[f"__d{index}"] = plan.absent
            lines.append(f"v = o.get({plan.wire!r}, __d{index})")
        env[f"__s{index}"] = getattr(cls, plan.name).__set__
        lines.append(fill_code(plan, index, env))
    if _has_extra(cls):
        env["__sx"] = cls.extra.__set__
        lines += [_EXTRA_CODE, "__sx(self, v)"]
    lines.append("return self")
    source = "def decode(o, _=None):\n" + indent("\n".join(lines), "    ") + "\n"
    decode: _StructureFn = compile_decoder("decoder", cls, source, env)
    return decode


# --- the hook factories ---------------------------------------------------------------------


def _bare_success(model_hook: _StructureFn) -> _StructureFn:
    def structure_crm(data: Any, cls: object) -> Any:
        # REST 3.0 answers a bare boolean; the gateway may wrap it in an object.
        if isinstance(data, Mapping):
            return model_hook(data, cls)
        return models.CrmActivityCreated(success=to_bool(data, None))

    return structure_crm


@functools.cache
def _model_decoder(cls: Any) -> _StructureFn:
    """The structure hook of any attrs class; cached, as cattrs caches its hooks too."""
    hook = generated_decoder(cls) or cattrs_decoder(cls)
    if cls is models.CrmActivityCreated:
        hook = _bare_success(hook)
    return hook


def _model_encoder(cls: Any) -> _UnstructureFn:
    """The unstructure hook of any attrs class: wire names, ``extra`` merged in."""
    generated = make_dict_unstructure_fn(cls, converter, **_overrides(cls))
    if not _has_extra(cls):
        return generated

    def unstructure_model(instance: Any) -> dict[str, Any]:
        wire = generated(instance)
        extra: dict[str, Any] = instance.extra
        # Known fields win over a stray extra key of the same name.
        return {**extra, **wire} if extra else wire

    return unstructure_model


converter.register_structure_hook_factory(attrs.has, _model_decoder)
converter.register_unstructure_hook_factory(attrs.has, _model_encoder)


# --- errors ---------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadValue):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _explain(data: object, cls: Any, exc: BaseException) -> str:
    """Name the class and the wire fields that failed (re-running detailed validation)."""
    name = getattr(cls, "__name__", repr(cls))
    if not attrs.has(cls) or not isinstance(data, Mapping):
        return f"cannot decode {name}: {_reason(exc)}"
    try:
        _detailed_decoder(cls)(dict(data), None)
    except ClassValidationError as detailed:
        with_notes, without = detailed.group_exceptions()
        problems = [f"{wire_name(note.name)!r}: {_reason(sub)}" for sub, note in with_notes]
        problems += [_reason(sub) for sub in without]
        return f"cannot decode {name}: " + "; ".join(problems)
    except Exception as other:  # a failure outside any field; report it as is
        return f"cannot decode {name}: {_reason(other)}"
    return f"cannot decode {name}: {_reason(exc)}"


# --- public helpers -------------------------------------------------------------------------


def structure(data: object, cls: type[T]) -> T:
    """Decode one wire value into ``cls``; raises only :class:`DecodeError`."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        raise DecodeError(_explain(data, cls, exc)) from None


def structure_list(data: object, cls: type[T]) -> list[T]:
    """Decode a JSON list of objects into ``list[cls]``; raises only :class:`DecodeError`."""
    if data.__class__ is not list:
        name = getattr(cls, "__name__", repr(cls))
        raise DecodeError(f"cannot decode list[{name}]: expected a JSON array, got {_kind(data)}")
    items: list[Any] = data
    if not attrs.has(cls):
        return [structure(item, cls) for item in items]
    hook = _model_decoder(cls)
    try:
        return [hook(item, cls) for item in items]
    except Exception:
        pass
    # Slow path only to find and name the failing item.
    for index, item in enumerate(items):
        try:
            hook(item, cls)
        except Exception as exc:
            raise DecodeError(f"item {index}: {_explain(item, cls, exc)}") from None
    return [hook(item, cls) for item in items]


def unstructure(obj: object) -> dict[str, Any]:
    """Encode a model as a JSON-ready dict with wire (camelCase) names and ``extra`` merged in."""
    result = converter.unstructure(obj)
    if not isinstance(result, dict):
        raise TypeError(f"not a model: {type(obj).__name__}")
    return result


class NotAModelError(InvalidArgumentError, TypeError):
    """``to_dict``/``from_dict`` got something that is not one of the library's models."""


def to_dict(model: object, *, wire: bool = False) -> dict[str, Any]:
    """A model as a JSON-ready dict: Python names (``extra`` kept apart), or the wire's.

    ``wire=True`` gives what the gateway sends: camelCase names, ``extra`` merged in, which
    :func:`from_dict` reads back. Example: ``json.dumps(to_dict(msg))``.
    """
    cls = type(model)
    if not attrs.has(cls):
        raise NotAModelError(f"to_dict() takes a model, not {cls.__name__}")
    if wire:
        return unstructure(model)
    return {field.name: _plain(getattr(model, field.name)) for field in attrs.fields(cls)}


def from_dict(data: object, model: type[T]) -> T:
    """Decode the gateway's (camelCase) JSON into ``model``; raises :class:`DecodeError`.

    Example: ``msg = from_dict({"id": 1, "subject": "Hi"}, Message)``.
    """
    if not attrs.has(get_origin(model) or model):
        raise NotAModelError(f"from_dict() decodes into a model class, not {model!r:.60}")
    return structure(data, model)


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
