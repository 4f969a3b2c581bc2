"""Lenient scalar hooks of the converter: one function per wire field type.

Bitrix24 often sends numbers as strings and booleans as "Y"/"N": ints take ``123`` or
``"123"`` (not bools, fractional floats or other strings); bools take true/false, "Y"/"N",
"true"/"false", "1"/"0", 1/0; str fields take strings and numbers; datetimes take ISO 8601
(offset → aware, none → naive). An optional int, bool or datetime reads ``""`` (and a
datetime also the zero date) as ``None``. ``bindings`` keeps any JSON that is not absurdly
deep; address lists take a comma-separated string or a list. A value that does not fit raises
:class:`BadValue`, whose text is shown to the user as is. :mod:`bitrix_mail_async._convert`
registers these hooks and inlines their common cases in its generated decoders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeVar

from ._addresses import split_recipients
from ._jsonlib import check_depth

__all__ = [
    "BadValue",
    "json_tuple",
    "opt_bool",
    "opt_datetime",
    "opt_int",
    "opt_str",
    "or_none",
    "shown",
    "to_bool",
    "to_datetime",
    "to_int",
    "to_recipients",
    "to_str",
]

T = TypeVar("T")

# Each hook starts with an identity check for the common, already-right case: the pager
# decodes thousands of fields and most of them need no work.


class BadValue(ValueError):
    """A wire value that does not fit its field; the text is shown to the user as is."""


def shown(value: object) -> str:
    """A short repr of a wire value for error texts."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- scalar hooks --------------------------------------------------------------------------
# Each hook starts with an identity check for the common, already-right case: the pager
# decodes thousands of fields and most of them need no work.

_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")


def to_int(value: Any, _: object) -> int:
    """An int field: an int or a decimal string; not a bool, a fraction or other text."""
    if value.__class__ is int:
        return value
    # Bitrix24 sends most ids as decimal strings; isascii() keeps out digits int() would
    # accept from other scripts ("١٢").
    if value.__class__ is str and value.isascii() and value.isdigit() and len(value) <= 40:
        return int(value)
    if isinstance(value, bool):
        raise BadValue(f"expected an integer, got a boolean ({value!r})")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # Bounded length: int() of a huge digit string is slow and capped by Python anyway.
        if len(text) <= 40 and _INT_TEXT.fullmatch(text):
            return int(text)
        raise BadValue(f"expected an integer, got {shown(value)}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise BadValue(f"expected an integer, got {shown(value)}")


def to_str(value: Any, _: object) -> str:
    """A str field: a string, or a number written as one."""
    if isinstance(value, str):
        return value if value.__class__ is str else str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadValue(f"expected a string, got {type(value).__name__}")


_TRUE: Final = frozenset({"y", "yes", "true", "1"})
_FALSE: Final = frozenset({"n", "no", "false", "0"})
_BOOL_TEXT: Final = {"Y": True, "N": False, "true": True, "false": False, "1": True, "0": False}


def to_bool(value: Any, _: object) -> bool:
    """A bool field: true/false, "Y"/"N", "true"/"false", "1"/"0", 1/0."""
    if value is True or value is False:
        return value
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
    raise BadValue(f"expected a boolean, got {shown(value)}")


def or_none(hook: Callable[[Any, object], T], *, blank: bool) -> Callable[[Any, object], T | None]:
    """The hook of ``X | None``: null, and ``""`` too when ``blank``, read as None."""

    def optional(value: Any, field_type: object) -> T | None:
        if value is None or (blank and value == ""):
            return None
        return hook(value, field_type)

    return optional


opt_int: Final = or_none(to_int, blank=True)
opt_str: Final = or_none(to_str, blank=False)
opt_bool: Final = or_none(to_bool, blank=True)


def to_datetime(value: Any, _: object) -> datetime:
    """A datetime field: ISO 8601 (an offset gives an aware datetime)."""
    if not isinstance(value, str):
        raise BadValue(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(f"expected an ISO 8601 date-time, got {shown(value)}") from None


def opt_datetime(value: Any, _: object) -> datetime | None:
    """An optional datetime: None for null, "" or the zero date."""
    # Bitrix24 (PHP/MySQL) writes an unset date as "" or the zero date, not null.
    if value is None or value == "" or (isinstance(value, str) and value.startswith("0000-00-00")):
        return None
    return to_datetime(value, None)


def json_tuple(value: Any, _: object) -> tuple[Any, ...]:
    """``bindings``: any JSON list as a tuple, if not absurdly deep."""
    # `bindings` has no documented item shape: keep whatever JSON arrives, if not absurdly deep.
    if value.__class__ is list or value.__class__ is tuple:
        check_depth(value)
        return tuple(value)
    if value is None:
        return ()
    return (value,)


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
    raise BadValue(f"expected an address string, got {shown(item)}")


def to_recipients(value: Any, _: object) -> tuple[str, ...]:
    """An address list: a comma-separated string or a list of addresses."""
    if value.__class__ is str:
        return split_recipients(value)
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(addr for addr in map(_recipient_item, value) if addr is not None)
    raise BadValue(f"expected an address list, got {type(value).__name__}")
