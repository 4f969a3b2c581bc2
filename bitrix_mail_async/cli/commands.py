"""The gateway commands of ``bitrix-mail`` and the client they share.

Owns building a :class:`~bitrix_mail_async.MailClient` from the connection options and the
environment (the key comes from ``$BITRIX_MAIL_API_KEY`` only, never from argv, where ``ps``
shows it), running a command with it and turning its failure into a message and an exit code,
and the commands ``whoami``, ``mailboxes``, ``senders`` and ``messages list|get|send``.

Adding a command: write ``async def name(mail, args) -> int``, a function adding its
arguments, and one :class:`~bitrix_mail_async.cli.parsing.Command` in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from bitrix_mail_async import MailClient, MessageSummary, RateLimit, errors
from bitrix_mail_async._addresses import split_recipients
from bitrix_mail_async._config import ENV_API_KEY, check_base_url, redact_key, resolve_base_url
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.parsing import (
    Command,
    Group,
    Handler,
    mailbox_argument,
    message_argument,
    positive_int,
)

__all__ = ["COMMANDS", "LIST_PAGE_MAX", "GatewayCommand", "client_from_args", "run_gateway"]

#: The largest page the gateway serves for the message list.
LIST_PAGE_MAX: Final = 200

#: A command that talks to the gateway through the client it is given.
GatewayCommand = Callable[[MailClient, argparse.Namespace], Awaitable[int]]


# ----------------------------------------------------------------------------- the client
def _api_key() -> str:
    """The key from the environment, stripped (empty when unset)."""
    return os.environ.get(ENV_API_KEY, "").strip()


def client_from_args(args: argparse.Namespace) -> MailClient:
    """Build the client from the connection options, checking what the user can fix first."""
    key = _api_key()
    if not key:
        raise output.UsageError(
            f"no API key: set the {ENV_API_KEY} environment variable "
            "(or try 'bitrix-mail demo', which needs none)"
        )
    url = resolve_base_url(args.base_url, allow_insecure_http=True)
    if not args.insecure_http:
        try:
            check_base_url(url, allow_insecure_http=False)
        except errors.ConfigurationError:
            host = urlsplit(url).hostname
            raise output.UsageError(
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


def run_gateway(args: argparse.Namespace, command: GatewayCommand) -> int:
    """Run ``command`` with a client built from ``args``; a failure becomes a message and code."""
    output.check_json_options(args)

    async def session() -> int:
        async with client_from_args(args) as mail:
            return await command(mail, args)

    try:
        return asyncio.run(session())
    except (errors.MailError, output.UsageError, OSError, BaseExceptionGroup) as exc:
        first = output.first_error(exc)
        if isinstance(first, KeyboardInterrupt | asyncio.CancelledError):
            raise KeyboardInterrupt from None
        if isinstance(first, BrokenPipeError):
            raise first from None
        if not isinstance(first, Exception):
            raise
        message, code = output.describe(first)
        output.print_error(message)
        return code


def _on_gateway(command: GatewayCommand) -> Handler:
    """Turn a coroutine command into a parser handler that runs it with a client."""
    return lambda args: run_gateway(args, command)


# ----------------------------------------------------------------------------- whoami
async def whoami(mail: MailClient, args: argparse.Namespace) -> int:
    """``whoami``: what the gateway says about the key in use (never the key itself)."""
    info = await mail.me()
    if args.json:
        output.print_models(info, wire=args.wire)
    else:
        hint = f"{redact_key(_api_key())} (from {ENV_API_KEY})"
        print(output.key_text(info, key_hint=hint, now=datetime.now(UTC)))
    return output.EXIT_OK


# ----------------------------------------------------------------------------- mailboxes
async def mailboxes(mail: MailClient, args: argparse.Namespace) -> int:
    """``mailboxes``: list the mailboxes the key can read."""
    boxes = await mail.mailboxes.list()
    return output.show(
        boxes, as_json=args.json, wire=args.wire, empty="no mailboxes", table=output.mailbox_table
    )


async def senders(mail: MailClient, args: argparse.Namespace) -> int:
    """``senders MAILBOX_ID``: list a mailbox's sender addresses."""
    found = await mail.mailboxes.senders(args.mailbox)
    empty = f"mailbox {args.mailbox} has no sender addresses"
    return output.show(
        found, as_json=args.json, wire=args.wire, empty=empty, table=output.sender_table
    )


# ----------------------------------------------------------------------------- messages
async def messages_list(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages list MAILBOX_ID``: at most ``--limit`` messages, newest first."""
    limit: int = args.limit
    pager = mail.messages.list(
        args.mailbox,
        folder=args.folder,
        is_seen=False if args.unseen else None,
        search=args.search,
        page_size=min(limit, LIST_PAGE_MAX),
    )
    found: list[MessageSummary] = []
    async for msg in pager:
        found.append(msg)
        if len(found) >= limit:
            break
    return output.show(
        found, as_json=args.json, wire=args.wire, empty="no messages", table=output.message_table
    )


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    mailbox_argument(parser)
    parser.add_argument("--unseen", action="store_true", help="only unread messages")
    parser.add_argument("--folder", metavar="F", help='only this folder, e.g. "INBOX" or "Sent"')
    parser.add_argument("--search", metavar="TEXT", help="only messages matching TEXT")
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show at most N messages (default: 20)",
    )


async def messages_get(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages get MESSAGE_ID``: one message with its body."""
    msg = await mail.messages.get(args.message)
    if args.json:
        output.print_models(msg, wire=args.wire)
    else:
        print(output.message_text(msg))
    return output.EXIT_OK


def _recipients(values: Sequence[str] | None) -> list[str]:
    """Flatten repeated options that may each hold a comma-separated list."""
    result: list[str] = []
    for value in values or ():
        result.extend(split_recipients(value))
    return result


async def messages_send(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages send``: send a message; ``--body -`` reads the body from stdin."""
    body: str = sys.stdin.read() if args.body == "-" else args.body
    to = _recipients(args.to)
    if not to:
        raise output.UsageError("--to needs at least one address")
    result = await mail.messages.send(
        from_=args.from_,
        to=to,
        subject=args.subject,
        body=body,
        cc=_recipients(args.cc) or None,
        bcc=_recipients(args.bcc) or None,
    )
    if args.json:
        output.print_models(result, wire=args.wire)
    else:
        accepted = ", ".join(result.to) or ", ".join(to)
        print(f"sent to {accepted}")
    return output.EXIT_OK


def _send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="SENDER",
        help='a sender of the mailbox, e.g. "Sales Team <sales@example.com>" '
        "(see: bitrix-mail senders ID)",
    )
    parser.add_argument("--to", action="append", required=True, metavar="ADDR")
    parser.add_argument("--cc", action="append", metavar="ADDR")
    parser.add_argument("--bcc", action="append", metavar="ADDR")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--body", required=True, help="text or basic HTML; - reads stdin")


# ----------------------------------------------------------------------------- declarations
#: The gateway commands, in the order ``bitrix-mail --help`` lists them.
COMMANDS: Final[tuple[Command | Group, ...]] = (
    Command(
        "whoami",
        _on_gateway(whoami),
        help="show the key's portal, scopes, rate limit and expiry",
        description=(
            f"Show what the gateway knows about the key in {ENV_API_KEY}: its portal, "
            "scopes, request rate limit and expiry (GET /v1/me). The key itself is never shown."
        ),
    ),
    Command(
        "mailboxes",
        _on_gateway(mailboxes),
        help="list the mailboxes the key can read",
        description="List the mailboxes the key can read.",
    ),
    Command(
        "senders",
        _on_gateway(senders),
        help="list the sender addresses of a mailbox",
        description="List the sender addresses of a mailbox (use one as --from).",
        arguments=mailbox_argument,
    ),
    Group(
        "messages",
        help="list, read or send messages",
        description="List, read or send messages.",
        actions=(
            Command(
                "list",
                _on_gateway(messages_list),
                help="list a mailbox's messages, newest first",
                description="List a mailbox's messages, newest first.",
                arguments=_list_arguments,
            ),
            Command(
                "get",
                _on_gateway(messages_get),
                help="show one message with its body",
                description="Show one message with its body.",
                arguments=message_argument,
            ),
            Command(
                "send",
                _on_gateway(messages_send),
                help="send a message",
                description="Send a message. --to, --cc and --bcc may repeat or hold comma lists.",
                arguments=_send_arguments,
            ),
        ),
    ),
)
