"""Argument checks shared by the resources: bad input raises before anything is sent.

Owns what a value must be to reach the wire: ids and id collections, page sizes, flags, text
(UTF-8-encodable, bounded, header-safe where it becomes a header line), recipient lists, the
list filters' ISO 8601 dates, the calendar's portal-local ``Y-m-d H:i:s`` times, and the
``portal_timezone`` those are converted to.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bitrix_mail_async import errors
from bitrix_mail_async._addresses import split_recipients
from bitrix_mail_async._config import MAX_RECIPIENTS

__all__ = [
    "MAX_BODY_CHARS",
    "calendar_range",
    "calendar_time",
    "flag",
    "id_collection",
    "iso_datetime",
    "page_size",
    "portal_timezone",
    "positive_id",
    "recipients",
    "single_line",
    "text",
]

# Ids are signed 64-bit integers on the Bitrix24 side; anything larger is a caller bug.
_MAX_ID: Final = 2**63 - 1
# No limit is documented; this guards against sending a runaway string (e.g. a whole file
# read by mistake) rather than encoding a gateway rule.
MAX_BODY_CHARS: Final = 10 * 1024 * 1024
# A str may hold lone surrogates (e.g. undecodable argv bytes under surrogateescape), but no
# UTF-8 can: the JSON encoder then fails untyped and the query encoder silently drops them.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# What may end or corrupt a header line, or drive a terminal that shows it: C0 controls but
# TAB (ordinary header whitespace), DEL, C1 controls (NEL U+0085 and CSI U+009B among them)
# and the Unicode line and paragraph separators U+2028/U+2029.
_HEADER_BREAKER: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _kind(value: object) -> str:
    return type(value).__name__


def _where(match: re.Match[str]) -> str:
    return f"U+{ord(match.group()):04X} at index {match.start()}"


def positive_id(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int id; else raise InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidArgumentError(f"{name} must be a positive int, got {_kind(value)}")
    # A subclass may format, compare or hash itself as another number: the plain int it
    # holds is what goes on the wire and what the checks see.
    number = int.__int__(value)
    if number <= 0 or number > _MAX_ID:
        # str() of a huge int raises (and costs): name its size instead.
        shown = (
            str(number) if number.bit_length() <= 128 else f"an int of {number.bit_length()} bits"
        )
        raise errors.InvalidArgumentError(f"{name} must be a positive int id, got {shown}")
    return number


def id_collection(name: str, value: object, *, maximum: int) -> list[int]:
    """Return 1..maximum positive int ids from a list, tuple or set, else raise."""
    # A dict would pass its keys and a str its characters; an iterator may never end.
    if isinstance(value, str | bytes | bytearray | memoryview) or not isinstance(
        value, Sequence | AbstractSet
    ):
        raise errors.InvalidArgumentError(
            f"{name} must be a list, tuple or set of int ids, got {_kind(value)}"
        )
    if len(value) > maximum:
        raise errors.InvalidArgumentError(
            f"{name} holds {len(value)} ids; at most {maximum} per call, split them"
        )
    ids = [positive_id(f"{name}[{i}]", item) for i, item in enumerate(value)]
    if not ids:
        raise errors.InvalidArgumentError(f"{name} must not be empty")
    return ids


def page_size(name: str, value: object, maximum: int) -> int:
    """Return an int in 1..maximum, else raise InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidArgumentError(f"{name} must be an int, got {_kind(value)}")
    if not 1 <= value <= maximum:
        raise errors.InvalidArgumentError(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def flag(name: str, value: object) -> str:
    """Encode a bool as the wire's ``true``/``false`` query value."""
    if not isinstance(value, bool):
        raise errors.InvalidArgumentError(f"{name} must be a bool, got {_kind(value)}")
    return "true" if value else "false"


def text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """Return a str within the size guard; empty only when allowed."""
    if not isinstance(value, str):
        raise errors.InvalidArgumentError(f"{name} must be a str, got {_kind(value)}")
    if not allow_empty and not value.strip():
        raise errors.InvalidArgumentError(f"{name} must not be empty")
    if len(value) > MAX_BODY_CHARS:
        raise errors.InvalidArgumentError(
            f"{name} is {len(value)} characters; the client refuses more than {MAX_BODY_CHARS}"
        )
    if "\x00" in value:
        raise errors.InvalidArgumentError(f"{name} must not contain NUL characters")
    surrogate = _SURROGATE.search(value)
    if surrogate:
        raise errors.InvalidArgumentError(
            f"{name} contains a lone surrogate ({_where(surrogate)}), which UTF-8 cannot carry"
        )
    return value


def single_line(name: str, value: object, *, allow_empty: bool = False) -> str:
    """Return a str fit for one header line, bounded in size.

    Refused: every C0 control but TAB (CR, LF, VT, FF, ESC, NUL, ...), DEL, every C1 control
    (U+0080-U+009F: NEL U+0085, CSI U+009B, ...) and U+2028/U+2029, which can end a header
    line (header injection) or inject terminal escapes where the value is shown.
    """
    result = text(name, value, allow_empty=allow_empty)
    breaker = _HEADER_BREAKER.search(result)
    if breaker:
        raise errors.InvalidArgumentError(
            f"{name} must not contain line breaks or control characters ({_where(breaker)})"
        )
    if len(result) > 998:  # RFC 5322 line length limit
        raise errors.InvalidArgumentError(f"{name} is longer than 998 characters")
    return result


def recipients(name: str, value: object, *, required: bool) -> list[str]:
    """Normalise a str (comma-separated) or an iterable of str into a list of addresses."""
    if value is None:
        if required:
            raise errors.InvalidArgumentError(f"{name} is required")
        return []
    if isinstance(value, str):
        items: list[object] = list(split_recipients(value))
    elif isinstance(value, Iterable) and not isinstance(value, bytes | bytearray | dict):
        # One past the cap is enough to refuse: an endless iterator must not hang here.
        items = list(itertools.islice(value, MAX_RECIPIENTS + 1))
    else:
        raise errors.InvalidArgumentError(
            f"{name} must be a str or a sequence of str, got {_kind(value)}"
        )
    if len(items) > MAX_RECIPIENTS:
        raise errors.InvalidArgumentError(
            f"{name} names more than {MAX_RECIPIENTS} recipients; one message may name at most "
            f"{MAX_RECIPIENTS} in to, cc and bcc together"
        )
    result = [single_line(f"{name}[{i}]", item) for i, item in enumerate(items)]
    if required and not result:
        raise errors.InvalidArgumentError(f"{name} must name at least one recipient")
    return [addr.strip() for addr in result]


def iso_datetime(name: str, value: object) -> str:
    """Accept an aware datetime or an ISO 8601 string; return the wire's ISO 8601 text."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise errors.InvalidArgumentError(
                f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc))"
            )
        return value.isoformat()
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise errors.InvalidArgumentError(
                f"{name} is not an ISO 8601 date-time: {value[:40]!r}"
            ) from None
        return value
    raise errors.InvalidArgumentError(
        f"{name} must be a datetime or an ISO 8601 str, got {_kind(value)}"
    )


def portal_timezone(value: object) -> ZoneInfo | None:
    """Resolve ``MailClient(portal_timezone=...)``; an unknown name is a ConfigurationError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.ConfigurationError(
            f"portal_timezone must be a zoneinfo name such as 'Europe/Moscow', got {_kind(value)}"
        )
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise errors.ConfigurationError(
            f"portal_timezone {value[:60]!r} is not a known zoneinfo name (e.g. 'Europe/Moscow'; "
            "without system time zone data, install the tzdata package)"
        ) from None


_CALENDAR_HINT: Final = "'YYYY-MM-DD HH:MM:SS' or ISO 8601"


def _calendar_parse(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise errors.InvalidArgumentError(
            f"{name} must look like {_CALENDAR_HINT}, got {value[:40]!r}"
        ) from None
    try:
        date.fromisoformat(value)
    except ValueError:
        return parsed
    # A bare date would silently become midnight: the start or end of that day?
    raise errors.InvalidArgumentError(f"{name} needs a time of day, got {value!r}")


def calendar_time(name: str, value: object, zone: tzinfo | None) -> datetime:
    """Return a calendar time as naive portal-local time, to the second.

    A naive datetime (or a str without offset) already is portal time; an aware one (or a
    str with an offset) is converted to ``zone``, and refused when there is none.
    """
    if isinstance(value, str):
        value = _calendar_parse(name, value)
    elif not isinstance(value, datetime):
        raise errors.InvalidArgumentError(
            f"{name} must be a datetime or a {_CALENDAR_HINT} str, got {_kind(value)}"
        )
    if value.utcoffset() is not None:
        if zone is None:
            raise errors.InvalidArgumentError(
                f"{name} has a UTC offset, but the wire takes the portal's local time and the "
                "portal's zone is unknown: set MailClient(portal_timezone='Europe/Moscow') "
                "(its zoneinfo name) or pass a naive datetime in portal time"
            )
        value = value.astimezone(zone)
    return value.replace(tzinfo=None, microsecond=0)


def _calendar_wire(value: datetime) -> str:
    # isoformat, not strftime: %Y does not zero-pad years before 1000 on every platform.
    return value.isoformat(" ", "seconds")


def calendar_range(date_from: object, date_to: object, zone: tzinfo | None) -> tuple[str, str]:
    """Check an event's start and end; return both as the wire's ``Y-m-d H:i:s``."""
    start = calendar_time("date_from", date_from, zone)
    end = calendar_time("date_to", date_to, zone)
    if end < start:
        raise errors.InvalidArgumentError(
            f"date_to ({_calendar_wire(end)}) is before date_from ({_calendar_wire(start)}) "
            "in the portal's local time"
        )
    return _calendar_wire(start), _calendar_wire(end)
