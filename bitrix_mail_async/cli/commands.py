"""The ``bitrix-mail`` commands about the key, the mailboxes and the address book.

Owns ``whoami`` (``GET /v1/me``), the ``mailboxes`` group (``list``, ``get``, ``senders``;
routes 1-3) and the ``recipients`` group (``contacts``, ``employees``; routes 16-17), plus
the old top-level spelling ``senders MAILBOX_ID``, kept working but unlisted, with a
deprecation note on stderr. The messages are :mod:`.messages` and :mod:`.objects`.

Adding a command: write ``async def name(mail, args) -> int``, a function adding its
arguments, and one :class:`~bitrix_mail_async.cli.parsing.Command` in a ``COMMANDS`` tuple.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Final, TypeVar

from bitrix_mail_async import Contact, Employee, MailClient, Pager
from bitrix_mail_async._config import ENV_API_KEY, redact_key
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.arguments import mailbox_argument, non_blank, positive_int
from bitrix_mail_async.cli.failures import EXIT_OK
from bitrix_mail_async.cli.gateway import api_key, on_gateway
from bitrix_mail_async.cli.parsing import Command, Group
from bitrix_mail_async.cli.progress import collect

__all__ = ["MAILBOXES", "RECIPIENTS", "SENDERS", "WHOAMI"]

#: The largest page the address book searches serve.
_PEOPLE_PAGE_MAX: Final = 200

Person = TypeVar("Person", Contact, Employee)


# ----------------------------------------------------------------------------- whoami
async def whoami(mail: MailClient, args: argparse.Namespace) -> int:
    """``whoami``: what the gateway says about the key in use (never the key itself)."""
    info = await mail.me()
    if args.json:
        output.print_models(info, wire=args.wire)
    else:
        hint = f"{redact_key(api_key())} (from {ENV_API_KEY})"
        print(output.key_text(info, key_hint=hint, now=datetime.now(UTC)))
    return EXIT_OK


# ----------------------------------------------------------------------------- mailboxes
async def mailboxes_list(mail: MailClient, args: argparse.Namespace) -> int:
    """``mailboxes list``: the mailboxes the key can read (all pages)."""
    boxes = await mail.mailboxes.list(name=args.name, email=args.email)
    return output.show(
        boxes, as_json=args.json, wire=args.wire, empty="no mailboxes", table=output.mailbox_table
    )


def _mailbox_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", metavar="TEXT", help="only mailboxes whose name contains TEXT")
    parser.add_argument("--email", metavar="TEXT", help="only mailboxes whose email contains TEXT")


async def mailboxes_get(mail: MailClient, args: argparse.Namespace) -> int:
    """``mailboxes get MAILBOX_ID``: one mailbox."""
    box = await mail.mailboxes.get(args.mailbox)
    if args.json:
        output.print_models(box, wire=args.wire)
    else:
        print(output.mailbox_text(box))
    return EXIT_OK


async def senders(mail: MailClient, args: argparse.Namespace) -> int:
    """``mailboxes senders MAILBOX_ID``: a mailbox's sender addresses."""
    found = await mail.mailboxes.senders(args.mailbox)
    empty = f"mailbox {args.mailbox} has no sender addresses"
    return output.show(
        found, as_json=args.json, wire=args.wire, empty=empty, table=output.sender_table
    )


# ----------------------------------------------------------------------------- recipients
async def _people(pager: Pager[Person], args: argparse.Namespace, unit: str) -> int:
    limit = None if args.all else args.limit
    found = await collect(pager.pages(), limit=limit, verb="found", unit=unit)
    return output.show(
        found, as_json=args.json, wire=args.wire, empty=f"no {unit}", table=output.people_table
    )


def _page_size(args: argparse.Namespace) -> int:
    # One request when --limit fits a page; --all takes the largest pages.
    return _PEOPLE_PAGE_MAX if args.all else min(args.limit, _PEOPLE_PAGE_MAX)


async def contacts(mail: MailClient, args: argparse.Namespace) -> int:
    """``recipients contacts [QUERY]``: CRM contacts matching QUERY, the latest without it."""
    pager = mail.recipients.iter_contacts(args.query, page_size=_page_size(args))
    return await _people(pager, args, "contacts")


async def employees(mail: MailClient, args: argparse.Namespace) -> int:
    """``recipients employees QUERY``: employees matching QUERY."""
    pager = mail.recipients.iter_employees(args.query, page_size=_page_size(args))
    return await _people(pager, args, "employees")


def _contacts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "query", nargs="?", metavar="QUERY", help="part of a name or email (default: the latest)"
    )
    _paging(parser)


def _employees_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", type=non_blank, metavar="QUERY", help="part of a name or email")
    _paging(parser)


def _paging(parser: argparse.ArgumentParser) -> None:
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--limit",
        type=positive_int,
        default=50,
        metavar="N",
        help="show at most N (default: 50)",
    )
    amount.add_argument("--all", action="store_true", help="every match, page after page")


# ----------------------------------------------------------------------------- declarations
_SENDERS_HELP: Final = "list the sender addresses of a mailbox (use one as --from)"

#: ``bitrix-mail mailboxes [ACTION]``.
MAILBOXES: Final = Group(
    "mailboxes",
    help="the portal's mailboxes and their sender addresses",
    description="The portal's mailboxes and their sender addresses. Without an action, "
    "'mailboxes' lists them.",
    example="bitrix-mail mailboxes --json\nbitrix-mail mailboxes senders 1",
    default="list",
    actions=(
        Command(
            "list",
            on_gateway(mailboxes_list, name="--name", email="--email"),
            help="list the mailboxes the key can read",
            description="List the mailboxes the key can read (GET /mail/mailboxes).",
            example="bitrix-mail mailboxes list --name Sales --json",
            arguments=_mailbox_filters,
        ),
        Command(
            "get",
            on_gateway(mailboxes_get),
            help="show one mailbox",
            description="Show one mailbox (GET /mail/mailboxes/ID).",
            example="bitrix-mail mailboxes get 1",
            arguments=mailbox_argument,
            usage="MAILBOX_ID",
        ),
        Command(
            "senders",
            on_gateway(senders),
            help=_SENDERS_HELP,
            description="List the sender addresses of a mailbox; pass one as --from to "
            "'messages send' (GET /mail/mailboxes/ID/senders).",
            example="bitrix-mail mailboxes senders 1",
            arguments=mailbox_argument,
            usage="MAILBOX_ID",
        ),
    ),
)

#: ``bitrix-mail recipients ACTION``.
RECIPIENTS: Final = Group(
    "recipients",
    help="search the address book: CRM contacts and employees",
    description="Search the address book for people to write to.",
    example="bitrix-mail recipients contacts smith\nbitrix-mail recipients employees ann --json",
    actions=(
        Command(
            "contacts",
            on_gateway(contacts, query="QUERY"),
            help="CRM contacts matching QUERY (the latest without one)",
            description="CRM contacts whose name or email contains QUERY; without QUERY "
            "the latest contacts (POST /mail/recipients/contacts).",
            example="bitrix-mail recipients contacts smith --limit 10",
            arguments=_contacts_arguments,
        ),
        Command(
            "employees",
            on_gateway(employees, query="QUERY"),
            help="employees matching QUERY",
            description="Employees whose name or email contains QUERY "
            "(POST /mail/recipients/employees).",
            example="bitrix-mail recipients employees ann --all --json",
            arguments=_employees_arguments,
        ),
    ),
)

#: ``bitrix-mail whoami``.
WHOAMI: Final = Command(
    "whoami",
    on_gateway(whoami),
    help="show the key's portal, scopes, rate limit and expiry",
    description=(
        f"Show what the gateway knows about the key in {ENV_API_KEY}: its portal, "
        "scopes, request rate limit and expiry (GET /v1/me). The key itself is never shown."
    ),
    example="bitrix-mail whoami",
)

_run_senders: Final = on_gateway(senders)


def old_senders(args: argparse.Namespace) -> int:
    """``senders MAILBOX_ID``: ``mailboxes senders``, with a note on stderr to use that."""
    if sys.stderr is not None:
        # stderr: a script reading the table or the JSON on stdout keeps working.
        print(
            "bitrix-mail: note: 'senders' is deprecated, use 'mailboxes senders' (the same output)",
            file=sys.stderr,
        )
    return _run_senders(args)


#: ``bitrix-mail senders MAILBOX_ID``: the spelling before ``mailboxes senders``, unlisted.
SENDERS: Final = Command(
    "senders",
    old_senders,
    help=_SENDERS_HELP,
    description="Deprecated: use 'bitrix-mail mailboxes senders', which prints the same.",
    example="bitrix-mail mailboxes senders 1",
    arguments=mailbox_argument,
    hidden=True,
)
