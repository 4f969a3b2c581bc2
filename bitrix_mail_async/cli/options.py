"""The global options of ``bitrix-mail``: taken before or after any command, defined once.

Owns the table of global options (:data:`GLOBAL_OPTIONS`: output and logging for every
command, connection and ``--dry-run`` for the gateway commands), their defaults, the help
sections the top level shows them in, the one-line note each command's help shows instead,
and :func:`add_global_options`, which adds them to a parser so that a value given before the
command survives the command's own parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any, Final

import attrs

from bitrix_mail_async._config import DEFAULT_BASE_URL, ENV_BASE_URL
from bitrix_mail_async.cli.arguments import non_negative_float, positive_float, positive_int

__all__ = [
    "CONNECTION",
    "GLOBAL_OPTIONS",
    "OUTPUT",
    "GlobalOption",
    "add_global_options",
    "global_note",
]

#: Global options of every command (output and logging).
OUTPUT: Final = "output"
#: Global options of the commands that talk to the gateway (connection and --dry-run).
CONNECTION: Final = "connection"


@attrs.frozen
class GlobalOption:
    """An option taken before or after the command: flags, scope, default, argparse keywords."""

    flags: tuple[str, ...]
    scope: str
    default: Any
    options: dict[str, Any]

    @property
    def dest(self) -> str:
        """The attribute the parsed value lands in."""
        dest = self.options.get("dest")
        return str(dest) if dest else self.flags[-1].lstrip("-").replace("-", "_")


GLOBAL_OPTIONS: Final = (
    GlobalOption(
        ("--json",),
        OUTPUT,
        False,
        {
            "action": "store_true",
            "help": "print JSON, in the gateway's field names (mailboxId, from)",
        },
    ),
    GlobalOption(
        ("--python-names",),
        OUTPUT,
        False,
        {
            "action": "store_true",
            "help": "with --json: the library's field names instead (mailbox_id, from_; "
            "fields it does not model under extra)",
        },
    ),
    GlobalOption(
        ("--wire",),
        OUTPUT,
        False,
        {
            "action": "store_true",
            "help": "with --json: the gateway's field names, the default (kept for old scripts)",
        },
    ),
    GlobalOption(
        ("-v", "--verbose"),
        OUTPUT,
        False,
        {"action": "store_true", "help": "log every HTTP attempt and retry on stderr"},
    ),
    GlobalOption(
        ("--debug",),
        OUTPUT,
        False,
        {"action": "store_true", "help": "log the library's DEBUG lines on stderr (no key)"},
    ),
    GlobalOption(
        ("--dry-run",),
        CONNECTION,
        False,
        {
            "action": "store_true",
            "help": "print the request that would be sent (key redacted) and send nothing",
        },
    ),
    GlobalOption(
        ("--base-url",),
        CONNECTION,
        None,
        {"metavar": "URL", "help": f"gateway URL (default: ${ENV_BASE_URL} or {DEFAULT_BASE_URL})"},
    ),
    GlobalOption(
        ("--timeout",),
        CONNECTION,
        30.0,
        {
            "type": positive_float,
            "metavar": "SECONDS",
            "help": "timeout of each HTTP request (default: 30)",
        },
    ),
    GlobalOption(
        ("--rate",),
        CONNECTION,
        2.0,
        {
            "dest": "client_rate",
            "type": non_negative_float,
            "metavar": "R",
            "help": "client-side limit in requests/s; 0 disables it (default: 2)",
        },
    ),
    GlobalOption(
        ("--burst",),
        CONNECTION,
        50,
        {
            "dest": "client_burst",
            "type": positive_int,
            "metavar": "B",
            "help": "requests allowed at once before --rate applies (default: 50)",
        },
    ),
    GlobalOption(
        ("--insecure-http",),
        CONNECTION,
        False,
        {
            "action": "store_true",
            "help": "allow plain http to a host other than loopback (the key goes unencrypted)",
        },
    ),
)

_SECTIONS: Final = {
    OUTPUT: "output options (every command; before or after it)",
    CONNECTION: "gateway options (gateway commands; before or after them)",
}

#: What each command's help shows instead of repeating the global options, by its scopes.
_GLOBAL_NOTES: Final = {
    (OUTPUT,): "  --json --python-names -v/--verbose --debug",
    (OUTPUT, CONNECTION): "  --json --python-names --dry-run -v/--verbose --debug\n"
    "  --base-url URL --timeout SECONDS --rate R --burst B --insecure-http",
}


def global_note(scopes: tuple[str, ...]) -> str:
    """What a command's help says about the global options it takes."""
    title = "global options (before or after the command; see bitrix-mail --help):"
    return f"{title}\n{_GLOBAL_NOTES[scopes]}"


def add_global_options(
    parser: argparse.ArgumentParser, scopes: Iterable[str], *, visible: bool
) -> list[str]:
    """Add the global options of ``scopes`` to ``parser``; returns their destinations.

    Their default is ``SUPPRESS`` at every level, so a value given before the command is not
    overwritten by the command's parser; ``main()`` fills in each option's ``default`` afterwards.
    ``visible`` shows them in this parser's help, in one section per scope.
    """
    wanted = set(scopes)
    dests = []
    sections: dict[str, Any] = {}
    for option in GLOBAL_OPTIONS:
        if option.scope not in wanted:
            continue
        options = {**option.options, "default": argparse.SUPPRESS}
        target: Any = parser
        if visible:
            title = _SECTIONS[option.scope]
            target = sections.get(title) or sections.setdefault(
                title, parser.add_argument_group(title)
            )
        else:
            options["help"] = argparse.SUPPRESS
        target.add_argument(*option.flags, **options)
        dests.append(option.dest)
    return dests
