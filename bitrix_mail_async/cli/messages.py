"""The ``bitrix-mail messages`` group: read, send and move messages (routes 4-10).

Owns ``list``, ``get``, ``thread``, ``send``, ``reply``, ``forward`` and ``move``, and the
assembly of the group with the actions on objects made from a message (:mod:`.objects`:
``task``, ``event``, ``chat``, ``feed-post``, ``crm-activity``). Commands with a side effect
print what they did; ``--dry-run`` shows the request instead (see :mod:`.dryrun`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Final, TypedDict

from bitrix_mail_async import MailClient, SendResult
from bitrix_mail_async._addresses import split_recipients
from bitrix_mail_async.cli import objects, output
from bitrix_mail_async.cli.arguments import (
    WHEN_FORMS,
    mailbox_argument,
    message_argument,
    positive_int,
    when,
)
from bitrix_mail_async.cli.failures import EXIT_OK, UsageError
from bitrix_mail_async.cli.gateway import LIST_PAGE_MAX, on_gateway
from bitrix_mail_async.cli.inputs import text_or_stdin
from bitrix_mail_async.cli.parsing import Command, Group
from bitrix_mail_async.cli.progress import collect
from bitrix_mail_async.resources.messages import MoveAction

__all__ = ["GROUP"]


# ----------------------------------------------------------------------------- reading
async def messages_list(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages list MAILBOX_ID``: at most ``--limit`` messages (or ``--all``)."""
    limit: int | None = None if args.all else args.limit
    pager = mail.messages.list(
        args.mailbox,
        folder=args.folder,
        is_seen=args.seen,
        has_attachments=args.attachments,
        search=args.search,
        date_from=args.since,
        date_to=args.until,
        page_size=LIST_PAGE_MAX if limit is None else min(limit, LIST_PAGE_MAX),
    )
    found = await collect(pager.pages(), limit=limit, verb="listed", unit="messages")
    return output.show(
        found, as_json=args.json, wire=args.wire, empty="no messages", table=output.message_table
    )


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    mailbox_argument(parser)
    seen = parser.add_mutually_exclusive_group()
    seen.add_argument(
        "--unseen", dest="seen", action="store_false", default=None, help="only unread messages"
    )
    seen.add_argument(
        "--seen", dest="seen", action="store_true", default=None, help="only read messages"
    )
    parser.add_argument(
        "--attachments",
        action=argparse.BooleanOptionalAction,
        help="only messages with (--no-attachments: without) attachments",
    )
    parser.add_argument("--folder", metavar="F", help='only this folder, e.g. "INBOX" or "Sent"')
    parser.add_argument("--search", metavar="TEXT", help="only messages matching TEXT")
    parser.add_argument(
        "--since",
        type=when,
        metavar="WHEN",
        help=f"only messages from WHEN on: {WHEN_FORMS} (relative times count back from this "
        "computer's clock, today and yesterday from its midnight); an ISO time without an "
        "offset is sent as written, and the gateway reads it in the portal's time zone",
    )
    parser.add_argument(
        "--until", type=when, metavar="WHEN", help="only messages up to WHEN, as --since"
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show at most N messages (default: 20)",
    )
    amount.add_argument("--all", action="store_true", help="every message, page after page")


async def messages_get(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages get MESSAGE_ID``: one message with its body."""
    msg = await mail.messages.get(args.message)
    if args.json:
        output.print_models(msg, wire=args.wire)
    else:
        print(output.message_text(msg))
    return EXIT_OK


async def messages_thread(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages thread MESSAGE_ID``: the conversation the message belongs to."""
    found = await mail.messages.thread(args.message, limit=args.limit)
    empty = f"message {args.message} has no thread"
    return output.show(
        found, as_json=args.json, wire=args.wire, empty=empty, table=output.message_table
    )


def _thread_arguments(parser: argparse.ArgumentParser) -> None:
    message_argument(parser)
    parser.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="at most N messages, up to 50 (default: the gateway's, 20)",
    )


# ----------------------------------------------------------------------------- sending
def _recipients(values: Sequence[str] | None) -> list[str]:
    """Flatten repeated options that may each hold a comma-separated list."""
    result: list[str] = []
    for value in values or ():
        result.extend(split_recipients(value))
    return result


class _Composed(TypedDict):
    from_: str | None
    to: list[str] | None
    subject: str | None
    body: str
    cc: list[str] | None
    bcc: list[str] | None


def _composed(args: argparse.Namespace) -> _Composed:
    """The keywords of send/reply/forward from the options; ``--body -`` reads stdin.

    An option not given is None: reply and forward then take it from the original message.
    """
    to = _recipients(args.to) if args.to is not None else None
    if to is not None and not to:
        raise UsageError("--to needs at least one address")
    return {
        "from_": args.from_,
        "to": to,
        "subject": args.subject,
        "body": text_or_stdin(args.body, "--body") if args.body is not None else "",
        "cc": _recipients(args.cc) or None,
        "bcc": _recipients(args.bcc) or None,
    }


def _accepted(result: SendResult, fields: _Composed) -> str:
    return ", ".join(result.to) or ", ".join(fields["to"] or ["the original sender"])


async def messages_send(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages send``: send a new message."""
    fields = _composed(args)
    result = await mail.messages.send(
        from_=fields["from_"] or "",
        to=fields["to"] or [],
        subject=fields["subject"] or "",
        body=fields["body"],
        cc=fields["cc"],
        bcc=fields["bcc"],
    )
    text = f"sent to {_accepted(result, fields)}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


async def messages_reply(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages reply MESSAGE_ID``: answer a message."""
    fields = _composed(args)
    result = await mail.messages.reply(args.message, **fields)
    text = f"replied to message {args.message}: sent to {_accepted(result, fields)}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


async def messages_forward(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages forward MESSAGE_ID``: forward a message."""
    fields = _composed(args)
    to = fields["to"] or []  # --to is required for forward
    result = await mail.messages.forward(
        args.message,
        to=to,
        body=fields["body"],
        from_=fields["from_"],
        subject=fields["subject"],
        cc=fields["cc"],
        bcc=fields["bcc"],
    )
    text = f"forwarded message {args.message} to {_accepted(result, fields)}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


def _send_arguments(
    parser: argparse.ArgumentParser, *, answer: str | None = None, to: bool = True
) -> None:
    """The options of a message; an ``answer`` ("Re:", "Fwd:") takes the rest from the original."""
    parser.add_argument(
        "--from",
        dest="from_",
        required=answer is None,
        metavar="SENDER",
        help='a sender of the mailbox, e.g. "Sales Team <sales@example.com>" '
        "(see: bitrix-mail mailboxes senders ID)"
        + ("; default: the mailbox's own sender" if answer else ""),
    )
    parser.add_argument(
        "--to",
        action="append",
        required=to,
        metavar="ADDR",
        help="repeat or comma-separate" + ("" if to else "; default: the original's sender"),
    )
    parser.add_argument("--cc", action="append", metavar="ADDR")
    parser.add_argument("--bcc", action="append", metavar="ADDR")
    parser.add_argument(
        "--subject",
        required=answer is None,
        help=f'default: "{answer} " and the original\'s subject' if answer else None,
    )
    parser.add_argument(
        "--body",
        required=answer != "Fwd:",
        help="text or basic HTML; - reads stdin" + ("; default: empty" if answer == "Fwd:" else ""),
    )


def _reply_arguments(parser: argparse.ArgumentParser) -> None:
    message_argument(parser)
    _send_arguments(parser, answer="Re:", to=False)


def _forward_arguments(parser: argparse.ArgumentParser) -> None:
    message_argument(parser)
    _send_arguments(parser, answer="Fwd:")


# ----------------------------------------------------------------------------- moving
async def messages_move(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages move ID...``: to a folder (``--folder``), to spam, or delete."""
    action: MoveAction = "spam" if args.spam else "delete" if args.delete else "move"
    result = await mail.messages.move(args.messages, action=action, folder=args.folder)
    count = result.moved_count if result.moved_count is not None else len(args.messages)
    noun = "message" if count == 1 else "messages"
    text = {
        "move": f"moved {count} {noun} to {args.folder}",
        "spam": f"moved {count} {noun} to spam",
        "delete": f"deleted {count} {noun}",
    }[action]
    return output.report(result, text, as_json=args.json, wire=args.wire)


def _move_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "messages",
        type=positive_int,
        nargs="+",
        metavar="MESSAGE_ID",
        help="1 to 100 messages of one mailbox and folder",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--folder", metavar="F", help="move them to folder F")
    where.add_argument("--spam", action="store_true", help="move them to spam")
    where.add_argument("--delete", action="store_true", help="delete them")


# ----------------------------------------------------------------------------- declarations
# The library's names of a message's parts, as the options that give them.
_SEND_OPTIONS: Final = {
    "from_": "--from",
    "to": "--to",
    "cc": "--cc",
    "bcc": "--bcc",
    "subject": "--subject",
    "body": "--body",
}

_ACTIONS: Final = (
    Command(
        "list",
        on_gateway(
            messages_list,
            date_from="--since",
            date_to="--until",
            folder="--folder",
            search="--search",
        ),
        help="list a mailbox's messages",
        description="List a mailbox's messages (GET /mail/messages).",
        example="bitrix-mail messages list 1 --unseen --folder INBOX --limit 50",
        arguments=_list_arguments,
    ),
    Command(
        "get",
        on_gateway(messages_get),
        help="show one message with its body",
        description="Show one message with its body (GET /mail/messages/ID).",
        example="bitrix-mail messages get 1001",
        arguments=message_argument,
    ),
    Command(
        "thread",
        on_gateway(messages_thread, limit="--limit"),
        help="show the conversation a message belongs to",
        description="Show the conversation a message belongs to (GET /mail/messages/ID/thread). "
        "Its dates have no offset: they are the portal's local time.",
        example="bitrix-mail messages thread 1001 --limit 10",
        arguments=_thread_arguments,
    ),
    Command(
        "send",
        on_gateway(messages_send, **_SEND_OPTIONS),
        help="send a message",
        description="Send a message (POST /mail/messages). --to, --cc and --bcc may repeat or "
        "hold comma lists. The gateway has no idempotency key: a send whose answer is lost "
        "is not repeated.",
        example='bitrix-mail messages send --from "Sales <sales@example.com>" --to bob@x.io '
        "--subject Hi --body -",
        arguments=_send_arguments,
    ),
    Command(
        "reply",
        on_gateway(messages_reply, **_SEND_OPTIONS),
        help="reply to a message",
        description="Reply to a message (POST /mail/messages/ID/reply). --to, --subject and "
        "--from default to the original's sender, Re: and its subject, and the mailbox's sender.",
        example='bitrix-mail messages reply 1001 --body "Thanks"',
        arguments=_reply_arguments,
    ),
    Command(
        "forward",
        on_gateway(messages_forward, **_SEND_OPTIONS),
        help="forward a message",
        description="Forward a message (POST /mail/messages/ID/forward). --subject and --from "
        "default to Fwd: and the original's subject, and the mailbox's sender.",
        example='bitrix-mail messages forward 1001 --to ann@x.io --body "FYI"',
        arguments=_forward_arguments,
    ),
    Command(
        "move",
        on_gateway(messages_move, message_ids="MESSAGE_ID", folder="--folder"),
        help="move messages to a folder or to spam, or delete them",
        description="Move messages (all from one mailbox and folder) to a folder or to spam, or "
        "delete them (POST /mail/messages/move).",
        example="bitrix-mail messages move 1058 1060 --folder Archive",
        arguments=_move_arguments,
    ),
)

#: ``bitrix-mail messages ACTION``.
GROUP: Final = Group(
    "messages",
    help="read, send, move messages; make tasks, events, chats from them",
    description="Read, send and move messages, and make tasks, calendar events, chats, feed "
    "posts and CRM activities from them.",
    example="bitrix-mail messages list 1 --unseen\nbitrix-mail messages task 1001 --json",
    actions=_ACTIONS + objects.ACTIONS,
)
