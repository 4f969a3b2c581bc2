"""What the ``bitrix-mail`` parser is built from.

Owns the argument types, the option groups several commands share (connection, ``--json``),
the epilog every command shows, and the two records a command module fills in:
:class:`Command` (one subcommand: texts, arguments, handler) and :class:`Group` (a command
with actions, such as ``messages list``). Adding a command is one more record in a module's
``COMMANDS``; :func:`bitrix_mail_async.cli.build_parser` turns the records into argparse.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

from bitrix_mail_async import errors
from bitrix_mail_async._config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_BASE_URL,
    check_count,
    check_number,
)

__all__ = [
    "EPILOG",
    "Command",
    "Group",
    "Handler",
    "Subcommands",
    "mailbox_argument",
    "message_argument",
    "non_negative_float",
    "port",
    "positive_float",
    "positive_int",
    "seeded_messages_argument",
]

_MAX_PORT: Final = 65535

#: Runs a parsed command line and returns the exit code.
Handler = Callable[[argparse.Namespace], int]

EPILOG: Final = f"""\
environment:
  {ENV_API_KEY}   the gateway API key (vibe_api_...); needed by every command
                        except demo and emulator
  {ENV_BASE_URL}  gateway URL when --base-url is not given
                        (default {DEFAULT_BASE_URL})

exit codes:
  0    success
  1    API error, transport error (connection, timeout) or file error
  2    usage or configuration error (bad arguments, missing key, insecure URL)
  130  interrupted (Ctrl-C)

examples:
  bitrix-mail demo
  bitrix-mail emulator --port 8080
  bitrix-mail whoami
  BITRIX_MAIL_BASE_URL=http://127.0.0.1:8080/v1 bitrix-mail messages list 1 --unseen
  bitrix-mail export 1 --out sales.jsonl --concurrency 8
"""


# ----------------------------------------------------------------------------- argument types
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


# ----------------------------------------------------------------------------- shared options
def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"gateway URL (default: ${ENV_BASE_URL} or {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="timeout of each HTTP request (default: 30)",
    )
    group.add_argument(
        "--rate",
        type=non_negative_float,
        default=2.0,
        metavar="R",
        help="client-side limit in requests per second; 0 disables it (default: 2)",
    )
    group.add_argument(
        "--burst",
        type=positive_int,
        default=50,
        metavar="B",
        help="requests allowed at once before --rate applies (default: 50)",
    )
    group.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain http to a host other than loopback (sends the key unencrypted)",
    )
    return parent


def _json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parent.add_argument(
        "--wire",
        action="store_true",
        help="with --json: the gateway's field names (mailboxId, isSeen, ...), unknown "
        "fields kept in place, instead of the library's (mailbox_id, is_seen, extra)",
    )
    return parent


# ----------------------------------------------------------------------------- command records
class Subcommands(Protocol):
    """What argparse's ``add_subparsers()`` returns, as far as commands use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add one subcommand's parser."""


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command without arguments of its own."""


@attrs.frozen
class Command:
    """One subcommand: its texts, which shared options it takes, its arguments, its handler.

    ``json`` adds ``--json``; ``connection`` adds the gateway connection options (both for
    commands that talk to the gateway).
    """

    name: str
    handler: Handler
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    json: bool = True
    connection: bool = True

    def add_to(self, subcommands: Subcommands) -> None:
        """Add this command's parser to ``subcommands``."""
        parents = [_json_option()] if self.json else []
        if self.connection:
            parents.append(_connection_options())
        parser = subcommands.add_parser(
            self.name,
            parents=parents,
            help=self.help,
            description=self.description,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.arguments(parser)
        parser.set_defaults(handler=self.handler)


@attrs.frozen
class Group:
    """A command whose work is done by actions: ``messages list``, ``messages get``, ..."""

    name: str
    help: str
    description: str
    actions: tuple[Command, ...]

    def add_to(self, subcommands: Subcommands) -> None:
        """Add the group's parser and, under it, one parser per action."""
        parser = subcommands.add_parser(self.name, help=self.help, description=self.description)
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action in self.actions:
            action.add_to(actions)
