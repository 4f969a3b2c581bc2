"""HTTP-dates (RFC 9110 §5.6.7), the one parser for ``Retry-After`` and the ``Date`` header.

All three forms a recipient must accept are read, and every one of them is UTC: the
preferred IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), the obsolete RFC 850 form
(``Sunday, 06-Nov-94 08:49:37 GMT``) and C's asctime (``Sun Nov  6 08:49:37 1994``, which
names no zone and is GMT by definition). ``email.utils`` reads the asctime form as naive, and
a naive datetime's ``timestamp()`` is the host's local time: a 3 s Retry-After became 5 h
under ``TZ=America/New_York``. Anything else is not an HTTP-date and gives None.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

__all__ = ["parse_http_date"]

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_TIME: Final = r"(\d\d):(\d\d):(\d\d)"
_IMF_FIXDATE: Final = re.compile(
    rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{{2}}) (\d{{4}}) {_TIME} GMT"
)
_RFC850: Final = re.compile(
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    rf"(\d\d)-([A-Z][a-z]{{2}})-(\d\d) {_TIME} GMT"
)
_ASCTIME: Final = re.compile(
    rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{{2}}) ([ \d]\d) {_TIME} (\d{{4}})"
)
#: Longer texts are not HTTP-dates; the bound keeps a hostile header from costing anything.
_MAX_CHARS: Final = 64


def parse_http_date(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """The aware UTC datetime an HTTP-date names, in any of RFC 9110's three forms; else None.

    ``now`` decides the century of an RFC 850 two-digit year (a year more than 50 years
    ahead of ``now`` is in the past century, as RFC 9110 says); it defaults to the clock.
    """
    if text is None:
        return None
    text = text.strip()
    if len(text) > _MAX_CHARS:
        return None
    if match := _IMF_FIXDATE.fullmatch(text):
        day, month, year, hour, minute, second = match.groups()
        return _build(int(year), month, day, hour, minute, second)
    if match := _ASCTIME.fullmatch(text):
        month, day, hour, minute, second, year = match.groups()
        return _build(int(year), month, day.strip(), hour, minute, second)
    if match := _RFC850.fullmatch(text):
        day, month, short_year, hour, minute, second = match.groups()
        current = (now or datetime.now(UTC)).year
        year = current - current % 100 + int(short_year)
        if year > current + 50:
            year -= 100
        return _build(year, month, day, hour, minute, second)
    return None


def _build(year: int, month: str, day: str, hour: str, minute: str, second: str) -> datetime | None:
    number = _MONTHS.get(month)
    if number is None:
        return None
    try:
        # A leap second (":60") is legal in an HTTP-date and means the next second.
        leap = second == "60"
        when = datetime(
            year, number, int(day), int(hour), int(minute), 59 if leap else int(second), tzinfo=UTC
        )
    except ValueError:  # 31 Feb, hour 25, second 61 and the like
        return None
    return when.replace(microsecond=999_999) if leap else when
