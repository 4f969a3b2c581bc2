"""What the ``bitrix-mail`` command line prints on stdout.

Owns JSON printing (``--json``: the gateway's field names, the library's with
``--python-names``), the tables of mailboxes, senders, messages and
people, the text of one message and of the key's description (``whoami``), and the one-line
reports of the commands with side effects (what was done, and the id the gateway gave).
Every text the gateway gave is shown through :mod:`.terminal`, its control characters
escaped, so a hostile subject cannot drive the terminal. The API key is never part of any of
it; failures are :mod:`.failures`'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from bitrix_mail_async import (
    Contact,
    Employee,
    KeyInfo,
    Mailbox,
    Message,
    MessageSummary,
    Sender,
    to_dict,
)
from bitrix_mail_async.cli.failures import EXIT_OK, UsageError
from bitrix_mail_async.cli.terminal import json_text, printable, printable_lines

__all__ = [
    "check_json_options",
    "key_text",
    "mailbox_table",
    "mailbox_text",
    "message_table",
    "message_text",
    "people_table",
    "print_json",
    "print_models",
    "report",
    "sender_table",
    "show",
]

# Mail routes answer 403 SCOPE_DENIED to a key without it (/v1/me does not need it).
_MAIL_SCOPE: Final = "mail"

_CELL_MAX: Final = 48

T = TypeVar("T")


# ----------------------------------------------------------------------------- printing
def print_json(value: Any) -> None:
    """Print plain JSON data, indented, non-ASCII kept readable where stdout can show it."""
    print(json_text(value, indent=2))


def check_json_options(args: Any, *, alone: bool = False) -> None:
    """Check ``--python-names``/``--wire`` and settle ``args.wire``: the gateway's names or not.

    Both only pick the field names of JSON output, so without ``--json`` they are refused,
    unless ``alone`` (``export``, whose lines are JSON whatever the flags).
    """
    python_names = bool(getattr(args, "python_names", False))
    wire = bool(getattr(args, "wire", False))
    if python_names and wire:
        raise UsageError("--python-names and --wire ask for opposite field names: pick one")
    given = "--python-names" if python_names else "--wire" if wire else None
    if given and not alone and not getattr(args, "json", False):
        raise UsageError(f"{given} goes with --json: it picks the field names of the JSON output")
    # The gateway's names unless asked otherwise, as `api` prints them.
    args.wire = not python_names


def print_models(value: object | Sequence[object], *, wire: bool) -> None:
    """Print a model (or a list of them) as JSON: the gateway's names, or (not ``wire``) ours."""
    if isinstance(value, Sequence):
        print_json([to_dict(item, wire=wire) for item in value])
    else:
        print_json(to_dict(value, wire=wire))


def show(
    items: Sequence[T],
    *,
    as_json: bool,
    empty: str,
    table: Callable[[Sequence[T]], str],
    wire: bool = False,
) -> int:
    """Print a list as JSON (``--json``), as a table, or say that it is empty."""
    if as_json:
        print_models(items, wire=wire)
    elif not items:
        print(empty)
    else:
        print(table(items))
    return EXIT_OK


def report(result: object, text: str, *, as_json: bool, wire: bool) -> int:
    """A side effect's outcome: the result model as JSON, else one line saying what was done."""
    if as_json:
        print_models(result, wire=wire)
    else:
        print(printable(text))
    return EXIT_OK


# ----------------------------------------------------------------------------- tables and text
def _cell(value: object, limit: int = _CELL_MAX) -> str:
    """One table cell: a single line, controls escaped, shortened to ``limit`` characters."""
    if value is None:
        return "-"
    text = printable(" ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _when(msg: MessageSummary) -> str:
    return msg.date.strftime("%Y-%m-%d %H:%M") if msg.date is not None else "-"


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _new(is_seen: bool | None) -> str:
    """The NEW column: ``*`` unread, ``?`` when the gateway did not say, empty when read."""
    return "?" if is_seen is None else "" if is_seen else "*"


def mailbox_table(boxes: Sequence[Mailbox]) -> str:
    """The mailboxes as a table: id, name, email, sender name."""
    rows = [[str(b.id), _cell(b.name), _cell(b.email), _cell(b.sender_name)] for b in boxes]
    return _table(["ID", "NAME", "EMAIL", "SENDER NAME"], rows)


def sender_table(senders: Sequence[Sender]) -> str:
    """A mailbox's sender addresses as a table, the first column usable as ``--from``."""
    rows = [[_cell(s.sender, 80), _cell(s.email), _cell(s.name)] for s in senders]
    return _table(["SENDER (use as --from)", "EMAIL", "NAME"], rows)


def people_table(people: Sequence[Contact | Employee]) -> str:
    """Contacts or employees as a table: id, name, email (usable in --to)."""
    rows = [[str(p.id), _cell(p.name), _cell(p.email)] for p in people]
    return _table(["ID", "NAME", "EMAIL"], rows)


def mailbox_text(box: Mailbox) -> str:
    """One mailbox as ``Name: value`` lines, with the fields the library does not model."""
    fields = [
        ("ID", str(box.id)),
        ("Name", printable(box.name or "-")),
        ("Email", printable(box.email or "-")),
        ("Sender name", printable(box.sender_name or "-")),
    ]
    fields += [(_cell(name, 40), _cell(value, 80)) for name, value in box.extra.items()]
    return _fields(fields)


def message_table(messages: Sequence[MessageSummary]) -> str:
    """Messages as a table, one line each; unread ones marked ``*``, unknown ones ``?``."""
    rows = [
        [
            str(m.id),
            _when(m),
            _cell(m.folder, 16),
            _new(m.is_seen),
            _cell(m.from_),
            _cell(m.subject, 60),
        ]
        for m in messages
    ]
    return _table(["ID", "DATE", "FOLDER", "NEW", "FROM", "SUBJECT"], rows)


def _fields(fields: Sequence[tuple[str, str]]) -> str:
    """``Name: value`` lines, the values aligned."""
    width = max(len(name) for name, _ in fields) + 1
    return "\n".join(f"{(name + ':').ljust(width)} {value}" for name, value in fields)


def message_text(msg: Message) -> str:
    """One message as its header fields, a blank line, and its body."""
    mailbox = str(msg.mailbox_id) if msg.mailbox_id is not None else "-"
    if msg.mailbox_email:
        mailbox += f" ({msg.mailbox_email})"
    fields = [
        ("ID", str(msg.id)),
        ("Mailbox", mailbox),
        ("Folder", msg.folder or "-"),
        ("Date", msg.date.isoformat(sep=" ") if msg.date is not None else "-"),
        ("From", msg.from_ or "-"),
        ("To", ", ".join(msg.to) or "-"),
    ]
    if msg.cc:
        fields.append(("Cc", ", ".join(msg.cc)))
    fields += [
        ("Subject", msg.subject or ""),
        ("Seen", _yes_no(msg.is_seen)),
        ("Attachments", _yes_no(msg.has_attachments)),
    ]
    if msg.url:
        fields.append(("URL", msg.url))
    # Each field one line (a newline in a subject would forge a "Seen:" line); the body keeps
    # its lines and tabs.
    safe = [(name, printable(value)) for name, value in fields]
    return f"{_fields(safe)}\n\n{printable_lines((msg.body or '').rstrip())}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _time_left(left: timedelta) -> str:
    if left <= timedelta(0):
        # The gateway still accepted the key, so the clocks disagree; ours may be wrong.
        return "already past by this computer's clock"
    if left.days >= 1:
        return "in " + _plural(left.days, "day")
    hours = int(left.total_seconds() // 3600)
    return "in " + _plural(hours, "hour") if hours else "in less than an hour"


def _expiry(expires: datetime | None, now: datetime) -> str:
    if expires is None:
        return "no expiry"
    text = expires.replace(microsecond=0).isoformat(sep=" ")
    if expires.tzinfo is None:
        # A time without an offset cannot be compared with ours.
        return text
    return f"{text} ({_time_left(expires - now)})"


def key_text(info: KeyInfo, *, key_hint: str, now: datetime) -> str:
    """The key's portal, scopes, rate limit and expiry; ``key_hint`` must be redacted already.

    ``now`` (aware) is the time the expiry is counted from.
    """
    rate = info.rate_limit_per_second
    text = _fields(
        [
            ("Key", key_hint),
            ("Portal", printable(info.portal or "unknown")),
            ("Scopes", printable(", ".join(info.scopes) or "none")),
            ("Rate limit", f"{rate:g} requests/s" if rate is not None else "unknown"),
            ("Expires", _expiry(info.expires_at, now)),
            ("Access", printable(info.access_mode or "unknown")),
            ("Status", printable(info.status or "unknown")),
        ]
    )
    if _MAIL_SCOPE not in info.scopes:
        text += (
            f"\n\nnote: without the {_MAIL_SCOPE!r} scope the gateway refuses every mail "
            "command (SCOPE_DENIED)"
        )
    return text
