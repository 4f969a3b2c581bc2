"""The argument types of ``bitrix-mail`` and the arguments several commands share.

Owns turning a command-line word into a checked value (a positive id, a port, a number, a
time such as ``2h`` or ``yesterday``) with argparse's own error, which names the option, when
it is not one, and the positional ``MAILBOX_ID``/``MESSAGE_ID``
(``-`` read as standard input is :mod:`.inputs`'). The checks themselves are
:mod:`bitrix_mail_async._config`'s.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Final

from bitrix_mail_async import errors
from bitrix_mail_async._config import check_count, check_number

__all__ = [
    "WHEN_FORMS",
    "mailbox_argument",
    "message_argument",
    "non_blank",
    "non_negative_float",
    "port",
    "positive_float",
    "positive_int",
    "seeded_messages_argument",
    "when",
]

_MAX_PORT: Final = 65535

# "2h", "30m", "3d", "1w": that long before now.
_RELATIVE: Final = re.compile(r"(\d{1,6})([mhdw])")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Midnight that many days back, in this computer's zone.
_DAYS_BACK: Final = {"today": 0, "yesterday": 1}

#: What ``--since``/``--until`` take, for help texts and errors.
WHEN_FORMS: Final = "ISO 8601, or 2h, 30m, 3d, 1w, today, yesterday"


def _refused(text: str, expected: str) -> argparse.ArgumentTypeError:
    """argparse's error for a value it cannot use: what was expected, and what was given."""
    return argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")


def positive_int(text: str) -> int:
    """Argument type: an integer of at least 1."""
    try:
        return check_count("value", int(text))
    except (ValueError, errors.ConfigurationError):
        raise _refused(text, "a positive integer") from None


def non_blank(text: str) -> str:
    """Argument type: text with something besides spaces."""
    if not text.strip():
        raise _refused(text, "some text")
    return text


def port(text: str) -> int:
    """Argument type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise _refused(text, "a port number") from None
    try:
        return check_count("port", value, minimum=0, maximum=_MAX_PORT)
    except errors.ConfigurationError:
        raise _refused(text, f"a port number 0-{_MAX_PORT}") from None


def _float(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _refused(text, "a number") from None
    try:
        value = check_number("value", value, allow_zero=allow_zero)
    except errors.ConfigurationError:
        raise _refused(text, "a positive number") from None
    # "-0" is an accepted zero; give it back as a plain 0.0.
    return value or 0.0


def positive_float(text: str) -> float:
    """Argument type: a positive, finite number."""
    return _float(text, allow_zero=False)


def non_negative_float(text: str) -> float:
    """Argument type: zero or a positive, finite number."""
    return _float(text, allow_zero=True)


def mailbox_argument(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``MAILBOX_ID``."""
    parser.add_argument("mailbox", type=positive_int, metavar="MAILBOX_ID")


def message_argument(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``MESSAGE_ID``."""
    parser.add_argument("message", type=positive_int, metavar="MESSAGE_ID")


def seeded_messages_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--messages``: how many messages the emulator's portal starts with."""
    parser.add_argument(
        "--messages", type=positive_int, default=60, help="seeded messages (default: 60)"
    )


def _local_now() -> datetime:
    """This computer's time, with its UTC offset."""
    return datetime.now().astimezone()


def when(text: str, *, now: Callable[[], datetime] = _local_now) -> datetime | str:
    """A time given on the command line: ISO 8601 as written, or one relative to ``now()``.

    ``2h``, ``30m``, ``3d``, ``1w`` are that long before ``now()``; ``today`` and
    ``yesterday`` are midnight in ``now()``'s zone. A relative time becomes an aware
    datetime, to the second; an ISO 8601 text is given back unchanged, so a time without an
    offset is sent without one (the gateway reads it in the portal's time zone).
    """
    word = text.strip().lower()
    relative = _RELATIVE.fullmatch(word)
    if relative is not None:
        amount = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
        try:
            return (now() - amount).replace(microsecond=0)
        except OverflowError:  # before the year 1
            raise _refused(text, "a time after the year 1") from None
    if word in _DAYS_BACK:
        current = now()
        day = current.date() - timedelta(days=_DAYS_BACK[word])
        return datetime.combine(day, time(), tzinfo=current.tzinfo)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise _refused(text, WHEN_FORMS) from None
    return text
