"""The ``bitrix-mail`` command line: a demo, the emulator, and a few gateway commands.

Built on argparse only. Every command returns an exit code instead of raising: 0 success,
1 an API, transport or file error, 2 a usage or configuration error, 130 interrupted.
The API key comes from the environment only (never from argv, where ``ps`` shows it) and is
never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar
from urllib.parse import urlsplit

from bitrix_mail_async import errors
from bitrix_mail_async._config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_BASE_URL,
    check_base_url,
)
from bitrix_mail_async._convert import split_recipients, to_dict
from bitrix_mail_async._ratelimit import RateLimit
from bitrix_mail_async._version import __version__
from bitrix_mail_async.client import MailClient
from bitrix_mail_async.models import Mailbox, Message, MessageSummary, Sender

__all__ = ["build_parser", "main"]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

_EPILOG: Final = f"""\
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
  BITRIX_MAIL_BASE_URL=http://127.0.0.1:8080/v1 bitrix-mail messages list 1 --unseen
  bitrix-mail export 1 --out sales.jsonl --concurrency 8
"""

# What each authentication/permission code means for the person at the terminal.
_AUTH_ADVICE: Final = {
    "MISSING_API_KEY": f"the gateway received no key: set {ENV_API_KEY}",
    "INVALID_API_KEY": (
        f"the key is unknown: check {ENV_API_KEY} (and that --base-url points at the "
        "gateway the key belongs to)"
    ),
    "KEY_INACTIVE": (
        "the key is switched off: enable it again in the portal's Vibe API settings, "
        f"or create a new key and update {ENV_API_KEY}"
    ),
    "KEY_EXPIRED": f"the key has expired: create a new key and update {ENV_API_KEY}",
    "TOKEN_MISSING": (
        "the key has no Bitrix24 tokens configured: reconnect the key to the portal "
        "in the Vibe API settings"
    ),
    "SCOPE_DENIED": "the key lacks the mail scope: add the 'mail' scope to the key",
    "BITRIX_ACCESS_DENIED": (
        "Bitrix24 denies the key's user access to this mailbox or message: check the "
        "mailbox permissions on the portal"
    ),
}

# The gateway has no idempotency key: repeating a send that may have gone out sends it twice.
_OUTCOME_UNKNOWN: Final = (
    "; the request may have been applied (e.g. the message sent): "
    "check the Sent folder before repeating it"
)

_DEMO_STEPS: Final = 7
_LIST_PAGE_MAX: Final = 200
_CELL_MAX: Final = 48


class _UsageError(Exception):
    """A configuration problem found before any request: exit code 2."""


# ----------------------------------------------------------------------------- helpers
T = TypeVar("T")


def _err(message: str) -> None:
    print(f"bitrix-mail: error: {message}", file=sys.stderr)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass
    return _positive_float(text)


def _cell(value: object, limit: int = _CELL_MAX) -> str:
    """One table cell: a single line, shortened to ``limit`` characters."""
    if value is None:
        return "-"
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _when(msg: MessageSummary) -> str:
    return msg.date.strftime("%Y-%m-%d %H:%M") if msg.date is not None else "-"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _recipients(values: Sequence[str] | None) -> list[str]:
    """Flatten repeated options that may each hold a comma-separated list."""
    result: list[str] = []
    for value in values or ():
        result.extend(split_recipients(value))
    return result


def _first_error(exc: BaseException) -> BaseException:
    """The first real failure inside (possibly nested) exception groups of a TaskGroup."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> tuple[str, int]:
    """The human message and exit code for a library error."""
    if isinstance(exc, errors.APIError):
        code = exc.code or "HTTP"
        advice = _AUTH_ADVICE.get(exc.code or "")
        if advice is None and isinstance(exc, errors.AuthenticationError):
            advice = f"the gateway rejected the key: check {ENV_API_KEY}"
        if advice is None and isinstance(exc, errors.PermissionDeniedError):
            advice = "the key may not do this: check its scopes and the portal permissions"
        text = f"{code} (HTTP {exc.status}): {advice or exc.message}"
        if advice is not None and exc.message:
            text += f" [gateway: {exc.message}]"
        if exc.hint:
            text += f" [hint: {exc.hint}]"
        if exc.retry_after is not None:
            text += f" [retry after {exc.retry_after:g}s]"
        if isinstance(exc, errors.OutcomeUnknownError):
            text += _OUTCOME_UNKNOWN
        return text, EXIT_ERROR
    if isinstance(exc, errors.OutcomeUnknownError):
        return f"{exc}{_OUTCOME_UNKNOWN}", EXIT_ERROR
    if isinstance(exc, errors.ConfigurationError | errors.InvalidArgumentError | _UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, errors.TransportError):
        return f"cannot reach the gateway: {exc}", EXIT_ERROR
    if isinstance(exc, errors.DecodeError):
        return f"unexpected answer from the gateway: {exc}", EXIT_ERROR
    if isinstance(exc, OSError):
        return str(exc), EXIT_ERROR
    return f"{type(exc).__name__}: {exc}", EXIT_ERROR


# ----------------------------------------------------------------------------- gateway commands
def _client_from_args(args: argparse.Namespace) -> MailClient:
    """Build the client from the connection options, checking what the user can fix first."""
    key = os.environ.get(ENV_API_KEY, "").strip()
    if not key:
        raise _UsageError(
            f"no API key: set the {ENV_API_KEY} environment variable "
            "(or try 'bitrix-mail demo', which needs none)"
        )
    url = args.base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    check_base_url(url, allow_insecure_http=True)
    if not args.insecure_http:
        try:
            check_base_url(url, allow_insecure_http=False)
        except errors.ConfigurationError:
            host = urlsplit(url).hostname
            raise _UsageError(
                f"refusing to send the API key over plain http to {host}: "
                "use https, or pass --insecure-http"
            ) from None
    rate = args.rate
    limit = None if rate == 0 else RateLimit(per_second=rate, burst=args.burst)
    return MailClient(
        key,
        base_url=url,
        rate_limit=limit,
        timeout=args.timeout,
        allow_insecure_http=args.insecure_http,
    )


def _run_gateway(
    args: argparse.Namespace, command: Callable[[MailClient, argparse.Namespace], Awaitable[int]]
) -> int:
    async def session() -> int:
        async with _client_from_args(args) as mail:
            return await command(mail, args)

    try:
        return asyncio.run(session())
    except (errors.MailError, _UsageError, OSError, BaseExceptionGroup) as exc:
        first = _first_error(exc)
        if isinstance(first, KeyboardInterrupt | asyncio.CancelledError):
            raise KeyboardInterrupt from None
        if isinstance(first, BrokenPipeError):
            raise first from None
        if not isinstance(first, Exception):
            raise
        message, code = _describe(first)
        _err(message)
        return code


def _on_gateway(
    command: Callable[[MailClient, argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    """Turn a coroutine command into a parser handler that runs it with a client."""
    return lambda args: _run_gateway(args, command)


def _show(
    args: argparse.Namespace,
    items: Sequence[T],
    empty: str,
    table: Callable[[Sequence[T]], str],
) -> int:
    """Print a list as JSON (``--json``), as a table, or say that it is empty."""
    if args.json:
        _print_json([to_dict(item) for item in items])
    elif not items:
        print(empty)
    else:
        print(table(items))
    return EXIT_OK


async def _cmd_mailboxes(mail: MailClient, args: argparse.Namespace) -> int:
    return _show(args, await mail.mailboxes.list(), "no mailboxes", _mailbox_table)


def _mailbox_table(boxes: Sequence[Mailbox]) -> str:
    rows = [[str(b.id), _cell(b.name), _cell(b.email), _cell(b.sender_name)] for b in boxes]
    return _table(["ID", "NAME", "EMAIL", "SENDER NAME"], rows)


async def _cmd_senders(mail: MailClient, args: argparse.Namespace) -> int:
    senders = await mail.mailboxes.senders(args.mailbox)
    return _show(args, senders, f"mailbox {args.mailbox} has no sender addresses", _sender_table)


def _sender_table(senders: Sequence[Sender]) -> str:
    rows = [[_cell(s.sender, 80), _cell(s.email), _cell(s.name)] for s in senders]
    return _table(["SENDER (use as --from)", "EMAIL", "NAME"], rows)


async def _cmd_messages_list(mail: MailClient, args: argparse.Namespace) -> int:
    limit: int = args.limit
    pager = mail.messages.list(
        args.mailbox,
        folder=args.folder,
        is_seen=False if args.unseen else None,
        search=args.search,
        page_size=min(limit, _LIST_PAGE_MAX),
    )
    found: list[MessageSummary] = []
    async for msg in pager:
        found.append(msg)
        if len(found) >= limit:
            break
    return _show(args, found, "no messages", _message_table)


def _message_table(messages: Sequence[MessageSummary]) -> str:
    rows = [
        [
            str(m.id),
            _when(m),
            _cell(m.folder, 16),
            "" if m.is_seen else "*",
            _cell(m.from_),
            _cell(m.subject, 60),
        ]
        for m in messages
    ]
    return _table(["ID", "DATE", "FOLDER", "NEW", "FROM", "SUBJECT"], rows)


async def _cmd_messages_get(mail: MailClient, args: argparse.Namespace) -> int:
    msg = await mail.messages.get(args.message)
    if args.json:
        _print_json(to_dict(msg))
    else:
        print(_message_text(msg))
    return EXIT_OK


def _message_text(msg: Message) -> str:
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
    width = max(len(name) for name, _ in fields) + 1
    head = "\n".join(f"{(name + ':').ljust(width)} {value}" for name, value in fields)
    return f"{head}\n\n{(msg.body or '').rstrip()}"


async def _cmd_messages_send(mail: MailClient, args: argparse.Namespace) -> int:
    body: str = sys.stdin.read() if args.body == "-" else args.body
    to = _recipients(args.to)
    if not to:
        raise _UsageError("--to needs at least one address")
    result = await mail.messages.send(
        from_=args.from_,
        to=to,
        subject=args.subject,
        body=body,
        cc=_recipients(args.cc) or None,
        bcc=_recipients(args.bcc) or None,
    )
    if args.json:
        _print_json(to_dict(result))
    else:
        accepted = ", ".join(result.to) or ", ".join(to)
        print(f"sent to {accepted}")
    return EXIT_OK


# ----------------------------------------------------------------------------- export
def _resume_ids(path: Path) -> set[int]:
    """Ids already exported to ``path``; cuts off a final line left partial by a crash."""
    done: set[int] = set()
    if not path.exists():
        return done
    good_end = 0
    with path.open("r+b") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                # Written without its newline: the run died mid-write. Re-fetch that message.
                break
            good_end += len(line)
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                item = None
            msg_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(msg_id, int) or isinstance(msg_id, bool):
                raise _UsageError(
                    f"{path}: line {number} is not a message exported by bitrix-mail; "
                    "refusing to append to it"
                )
            done.add(msg_id)
        file.truncate(good_end)
    return done


class _Progress:
    """A one-line counter on stderr, shown only to a person at a terminal."""

    def __init__(self, skipped: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.done = 0
        self.skipped = skipped
        self.total: int | None = None

    def update(self) -> None:
        if not self.enabled:
            return
        total = f"/{self.total}" if self.total is not None else ""
        sys.stderr.write(f"\rexported {self.done + self.skipped}{total} messages")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_export(args: argparse.Namespace) -> int:
    path = Path(args.out)
    # File work happens here, outside the event loop; the loop only appends lines.
    try:
        done = _resume_ids(path)
        out = path.open("a", encoding="utf-8", newline="")
    except OSError as exc:
        _err(f"cannot use {path}: {exc}")
        return EXIT_ERROR
    with out:

        async def command(mail: MailClient, args: argparse.Namespace) -> int:
            return await _export(mail, args.mailbox, args.concurrency, out, done)

        code = _run_gateway(args, command)
    return code


async def _export(mail: MailClient, mailbox: int, workers: int, out: TextIO, done: set[int]) -> int:
    # Bounded: the lister runs at most a few ids ahead of the fetchers, whatever the mailbox size.
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=workers * 2)
    progress = _Progress(len(done))
    vanished: list[int] = []
    # Offset paging may show an id twice when mail arrives meanwhile; fetch each id once.
    seen = set(done)

    async def list_ids() -> None:
        pager = mail.messages.list(mailbox, page_size=_LIST_PAGE_MAX)
        async for page in pager.pages():
            if page.total is not None:
                progress.total = page.total
            for item in page.items:
                if item.id not in seen:
                    seen.add(item.id)
                    await queue.put(item.id)
        # Only on success: after a failure the task group cancels the fetchers itself, and a
        # put into a full queue nobody drains would hang the shutdown.
        for _ in range(workers):
            await queue.put(None)

    async def fetch() -> None:
        while (msg_id := await queue.get()) is not None:
            try:
                msg = await mail.messages.get(msg_id)
            except errors.NotFoundError:
                vanished.append(msg_id)  # deleted since it was listed
                continue
            # One write and a flush per line: a crash loses at most the line being written.
            out.write(json.dumps(to_dict(msg), ensure_ascii=False) + "\n")
            out.flush()
            progress.done += 1
            progress.update()

    progress.update()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(list_ids())
            for _ in range(workers):
                group.create_task(fetch())
    finally:
        progress.finish()

    summary = f"exported {progress.done} messages of mailbox {mailbox} to {out.name}"
    if done:
        summary += f" ({len(done)} were already there)"
    print(summary)
    if vanished:
        print(f"{len(vanished)} listed messages were gone when fetched: {vanished[:10]}")
    return EXIT_OK


# ----------------------------------------------------------------------------- demo
class _Demo:
    """The documented seven-step scenario against an in-process emulator."""

    def __init__(self, mail: MailClient) -> None:
        self.mail = mail
        self.mailbox: Mailbox | None = None
        self.sender = ""
        self.colleague = ""
        self.subject = f"bitrix-mail demo {uuid.uuid4().hex[:8]}"
        self.message_id = 0
        self.message: Message | None = None

    async def list_mailboxes(self) -> tuple[str, list[str]]:
        boxes = await self.mail.mailboxes.list()
        if not boxes:
            raise _DemoFailure("the portal has no mailboxes")
        self.mailbox = boxes[0]
        return f"{len(boxes)} mailboxes", _mailbox_table(boxes).splitlines()

    async def read_senders(self) -> tuple[str, list[str]]:
        assert self.mailbox is not None
        senders = await self.mail.mailboxes.senders(self.mailbox.id)
        if not senders or not senders[0].sender:
            raise _DemoFailure(f"mailbox {self.mailbox.id} has no sender addresses")
        self.sender = senders[0].sender
        return (
            f"{len(senders)} senders of mailbox {self.mailbox.id}, using {self.sender}",
            _sender_table(senders).splitlines(),
        )

    async def send(self) -> tuple[str, list[str]]:
        employees = await self.mail.recipients.employees("a", limit=1)
        self.colleague = employees[0].email if employees and employees[0].email else ""
        self.colleague = self.colleague or "colleague@example.com"
        result = await self.mail.messages.send(
            from_=self.sender,
            to=[self.colleague],
            subject=self.subject,
            body="Hello from the bitrix-mail demo.\n\nThis message was sent through MailClient.",
        )
        return f"sent to {', '.join(result.to) or self.colleague}", [
            f"from:    {self.sender}",
            f"subject: {self.subject}",
        ]

    async def find(self) -> tuple[str, list[str]]:
        assert self.mailbox is not None
        page = await self.mail.messages.list(self.mailbox.id, folder="Sent", page_size=5)
        for item in page.items:
            if item.subject == self.subject:
                self.message_id = item.id
                return f"message {item.id} in the Sent folder", _message_table(
                    page.items
                ).splitlines()
        raise _DemoFailure(
            f"no message with subject {self.subject!r} on the first page of the Sent folder"
        )

    async def read(self) -> tuple[str, list[str]]:
        self.message = await self.mail.messages.get(self.message_id)
        return f"message {self.message.id}: {self.message.subject}", _message_text(
            self.message
        ).splitlines()

    async def reply(self) -> tuple[str, list[str]]:
        assert self.message is not None
        to = list(self.message.to) or [self.colleague]
        result = await self.mail.messages.reply(
            self.message.id,
            from_=self.sender,
            to=to,
            subject=f"Re: {self.subject}",
            body="A reply sent by the bitrix-mail demo.",
        )
        return f"replied to {', '.join(result.to) or ', '.join(to)}", []

    async def create_task(self) -> tuple[str, list[str]]:
        task = await self.mail.messages.create_task(self.message_id)
        return f"taskId {task.task_id} created from message {self.message_id}", []


class _DemoFailure(Exception):
    """A demo step got an answer, but not the one the scenario needs."""


async def _demo(messages: int) -> int:
    from bitrix_mail_async.testing import MailEmulator

    async with MailEmulator(messages=messages) as emulator:
        print(f"emulator: {emulator.base_url} (in-process; no key or network needed)")
        async with MailClient(
            emulator.api_key, base_url=emulator.base_url, rate_limit=None, timeout=10.0
        ) as mail:
            demo = _Demo(mail)
            steps: list[tuple[str, Callable[[], Awaitable[tuple[str, list[str]]]]]] = [
                ("list mailboxes", demo.list_mailboxes),
                ("read sender addresses of the first mailbox", demo.read_senders),
                ("send a message to a colleague", demo.send),
                ("find it among the mailbox's messages", demo.find),
                ("read it", demo.read),
                ("reply to it", demo.reply),
                ("create a task from it", demo.create_task),
            ]
            for number, (name, step) in enumerate(steps, start=1):
                label = f"Step {number}/{_DEMO_STEPS}: {name}"
                try:
                    summary, details = await step()
                except (errors.MailError, _DemoFailure) as exc:
                    message = _describe(exc)[0] if isinstance(exc, errors.MailError) else str(exc)
                    print(f"{label}: FAILED")
                    _err(f"demo step {number} ({name}) failed: {message}")
                    return EXIT_ERROR
                print(f"{label}: {summary}")
                for line in details:
                    print(f"    {line}".rstrip())
    print(f"All {_DEMO_STEPS} steps succeeded.")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_demo(args.messages))
    except BrokenPipeError:
        raise
    except OSError as exc:
        _err(f"cannot start the emulator: {exc}")
        return EXIT_ERROR


# ----------------------------------------------------------------------------- emulator
def _cmd_emulator(args: argparse.Namespace) -> int:
    from bitrix_mail_async.testing import serve_forever

    try:
        asyncio.run(
            serve_forever(
                args.host,
                args.port,
                args.messages,
                args.rate,
                args.burst,
                args.seed,
                **({"api_key": args.api_key} if args.api_key else {}),
            )
        )
    except KeyboardInterrupt:
        # Ctrl-C is how this command is meant to stop.
        print("emulator stopped", file=sys.stderr)
        return EXIT_OK
    except OSError as exc:
        _err(f"cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_ERROR
    return EXIT_OK


# ----------------------------------------------------------------------------- the parser
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
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="timeout of each HTTP request (default: 30)",
    )
    group.add_argument(
        "--rate",
        type=_non_negative_float,
        default=2.0,
        metavar="R",
        help="client-side limit in requests per second; 0 disables it (default: 2)",
    )
    group.add_argument(
        "--burst",
        type=_positive_int,
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
    return parent


def build_parser() -> argparse.ArgumentParser:
    """Build the ``bitrix-mail`` argument parser."""
    conn = _connection_options()
    as_json = _json_option()
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="bitrix-mail",
        description="Bitrix24 Vibe API mail gateway from the command line.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run the documented seven-step scenario against a built-in emulator (no key)",
        description="Start the emulator in-process and run the seven-step scenario through "
        "MailClient: mailboxes, senders, send, find, read, reply, create a task.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    demo.add_argument(
        "--messages", type=_positive_int, default=60, help="seeded messages (default: 60)"
    )
    demo.set_defaults(handler=_cmd_demo)

    emulator = commands.add_parser(
        "emulator",
        help="serve the gateway emulator until Ctrl-C",
        description="Serve the gateway emulator; prints its base URL and API key.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    emulator.add_argument(
        "--port", type=_port, default=8080, help="port; 0 picks a free one (default: 8080)"
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    emulator.add_argument(
        "--rate", type=_positive_float, help="per-key limit in requests/s (default: none)"
    )
    emulator.add_argument("--burst", type=_positive_int, help="per-key burst for --rate")
    emulator.add_argument(
        "--messages", type=_positive_int, default=60, help="seeded messages (default: 60)"
    )
    emulator.add_argument("--seed", type=int, default=0, help="seed of the portal data")
    emulator.add_argument("--api-key", help="key the emulator accepts (default: a fixed test key)")
    emulator.set_defaults(handler=_cmd_emulator)

    def gateway(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        parents: list[argparse.ArgumentParser],
        under: Any = commands,
        **kw: Any,
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = under.add_parser(
            name, parents=parents, epilog=_EPILOG, formatter_class=fmt, **kw
        )
        sub.set_defaults(handler=handler)
        return sub

    gateway(
        "mailboxes",
        _on_gateway(_cmd_mailboxes),
        [as_json, conn],
        help="list the mailboxes the key can read",
        description="List the mailboxes the key can read.",
    )
    senders = gateway(
        "senders",
        _on_gateway(_cmd_senders),
        [as_json, conn],
        help="list the sender addresses of a mailbox",
        description="List the sender addresses of a mailbox (use one as --from).",
    )
    senders.add_argument("mailbox", type=_positive_int, metavar="MAILBOX_ID")

    messages = commands.add_parser(
        "messages", help="list, read or send messages", description="List, read or send messages."
    )
    actions = messages.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = gateway(
        "list",
        _on_gateway(_cmd_messages_list),
        [as_json, conn],
        under=actions,
        help="list a mailbox's messages, newest first",
        description="List a mailbox's messages, newest first.",
    )
    listing.add_argument("mailbox", type=_positive_int, metavar="MAILBOX_ID")
    listing.add_argument("--unseen", action="store_true", help="only unread messages")
    listing.add_argument("--folder", metavar="F", help='only this folder, e.g. "INBOX" or "Sent"')
    listing.add_argument("--search", metavar="TEXT", help="only messages matching TEXT")
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=20,
        metavar="N",
        help="show at most N messages (default: 20)",
    )
    getting = gateway(
        "get",
        _on_gateway(_cmd_messages_get),
        [as_json, conn],
        under=actions,
        help="show one message with its body",
        description="Show one message with its body.",
    )
    getting.add_argument("message", type=_positive_int, metavar="MESSAGE_ID")
    sending = gateway(
        "send",
        _on_gateway(_cmd_messages_send),
        [as_json, conn],
        under=actions,
        help="send a message",
        description="Send a message. --to, --cc and --bcc may repeat or hold comma lists.",
    )
    sending.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="SENDER",
        help='a sender of the mailbox, e.g. "Sales Team <sales@example.com>" '
        "(see: bitrix-mail senders ID)",
    )
    sending.add_argument("--to", action="append", required=True, metavar="ADDR")
    sending.add_argument("--cc", action="append", metavar="ADDR")
    sending.add_argument("--bcc", action="append", metavar="ADDR")
    sending.add_argument("--subject", required=True)
    sending.add_argument("--body", required=True, help="text or basic HTML; - reads stdin")

    export = gateway(
        "export",
        _cmd_export,
        [conn],
        help="save every message of a mailbox, with bodies, as JSON lines (resumable)",
        description="Save every message of a mailbox with its body to FILE, one JSON object "
        "per line. Rerunning skips the messages already in FILE.",
    )
    export.add_argument("mailbox", type=_positive_int, metavar="MAILBOX_ID")
    export.add_argument("--out", required=True, metavar="FILE", help="the .jsonl file")
    export.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="messages fetched at once (default: 4); the rate limit still applies",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``bitrix-mail`` command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        # Flush here, not at interpreter exit, so a closed pipe is handled below.
        sys.stdout.flush()
        return code
    except _UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_ERROR


def _quiet_stdout() -> None:
    # The reader went away (e.g. `| head`): stop Python from failing again on exit's flush.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
