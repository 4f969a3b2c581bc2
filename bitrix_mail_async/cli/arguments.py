"""The argument types of ``bitrix-mail`` and the arguments several commands share.

Owns turning a command-line word into a checked value (a positive id, a port, a number) with
argparse's own error when it is not one, and the positional ``MAILBOX_ID``/``MESSAGE_ID``
(``-`` read as standard input is :mod:`.inputs`'). The checks themselves are
:mod:`bitrix_mail_async._config`'s.
"""

from __future__ import annotations

import argparse
from typing import Final

from bitrix_mail_async import errors
from bitrix_mail_async._config import check_count, check_number

__all__ = [
    "mailbox_argument",
    "message_argument",
    "non_negative_float",
    "port",
    "positive_float",
    "positive_int",
    "seeded_messages_argument",
]

_MAX_PORT: Final = 65535


def _refused(text: str, expected: str) -> argparse.ArgumentTypeError:
    """argparse's error for a value it cannot use: what was expected, and what was given."""
    return argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")


def positive_int(text: str) -> int:
    """Argument type: an integer of at least 1."""
    try:
        return check_count("value", int(text))
    except (ValueError, errors.ConfigurationError):
        raise _refused(text, "a positive integer") from None


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
