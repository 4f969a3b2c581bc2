"""``bitrix-mail messages task|event|chat|feed-post|crm-activity``: objects made from a message.

Owns the five actions on routes 11-15 of the contract. Each one prints what it made and the
id the gateway gave it (``--json``: the whole answer), since that id is what the next step of
a script needs. They are side effects: a lost answer is not repeated, and the message's
``bindings`` tell afterwards whether the object exists.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Final

from bitrix_mail_async import MailClient
from bitrix_mail_async.cli import output
from bitrix_mail_async.cli.arguments import message_argument, positive_int
from bitrix_mail_async.cli.failures import UsageError
from bitrix_mail_async.cli.gateway import on_gateway
from bitrix_mail_async.cli.inputs import text_or_stdin
from bitrix_mail_async.cli.parsing import Command

__all__ = ["ACTIONS"]


def _optional_text(value: str | None, option: str) -> str | None:
    return None if value is None else text_or_stdin(value, option)


async def task(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages task MESSAGE_ID``: create a task from a message."""
    result = await mail.messages.create_task(
        args.message,
        title=args.title,
        responsible_id=args.responsible,
        description=_optional_text(args.description, "--description"),
    )
    text = f"created task {result.task_id} from message {args.message}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


def _task_arguments(parser: argparse.ArgumentParser) -> None:
    message_argument(parser)
    parser.add_argument("--title", help="the task's title (default: the message's subject)")
    parser.add_argument(
        "--responsible", type=positive_int, metavar="USER_ID", help="the user responsible"
    )
    parser.add_argument("--description", metavar="TEXT", help="the task's text; - reads stdin")


def _has_offset(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False  # the library refuses it, with its own message


async def event(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages event MESSAGE_ID --start --end``: create a calendar event from a message."""
    if args.portal_timezone is None and (_has_offset(args.start) or _has_offset(args.end)):
        # The library's own message names MailClient(portal_timezone=...); say the option.
        raise UsageError(
            "a time with an offset needs the portal's zone to be converted to: pass "
            "--portal-timezone ZONE (e.g. Europe/Moscow), or give the portal's local time "
            "without an offset"
        )
    result = await mail.messages.create_calendar_event(
        args.message,
        date_from=args.start,
        date_to=args.end,
        name=args.name,
        description=_optional_text(args.description, "--description"),
    )
    text = f"created calendar event {result.event_id} from message {args.message}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


def _event_arguments(parser: argparse.ArgumentParser) -> None:
    message_argument(parser)
    when = "'YYYY-MM-DD HH:MM:SS' in the portal's time, or ISO 8601 with an offset"
    parser.add_argument("--start", required=True, metavar="WHEN", help=when)
    parser.add_argument("--end", required=True, metavar="WHEN", help="as --start")
    parser.add_argument("--name", help="the event's name (default: the message's subject)")
    parser.add_argument("--description", metavar="TEXT", help="the event's text; - reads stdin")
    parser.add_argument(
        "--portal-timezone",
        metavar="ZONE",
        help="the portal's time zone (e.g. Europe/Moscow); needed for times with an offset",
    )


async def chat(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages chat MESSAGE_ID``: open (or find) the chat about a message."""
    result = await mail.messages.create_chat(args.message)
    if result.existing:
        text = f"chat {result.chat_id} about message {args.message} already existed"
    else:
        text = f"opened chat {result.chat_id} about message {args.message}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


async def feed_post(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages feed-post MESSAGE_ID``: post a message to the feed."""
    result = await mail.messages.create_feed_post(args.message, title=args.title)
    text = f"created feed post {result.post_id} from message {args.message}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


def _feed_post_arguments(parser: argparse.ArgumentParser) -> None:
    message_argument(parser)
    parser.add_argument("--title", help="the post's title (default: the message's subject)")


async def crm_activity(mail: MailClient, args: argparse.Namespace) -> int:
    """``messages crm-activity MESSAGE_ID``: log a message in the CRM."""
    result = await mail.messages.create_crm_activity(args.message)
    text = f"logged message {args.message} in the CRM"
    if result.activity_id is not None:
        text += f" as activity {result.activity_id}"
    return output.report(result, text, as_json=args.json, wire=args.wire)


#: The actions of ``bitrix-mail messages`` that make an object from a message.
ACTIONS: Final = (
    Command(
        "task",
        on_gateway(
            task, title="--title", responsible_id="--responsible", description="--description"
        ),
        help="create a task from a message",
        description="Create a task from a message (POST /mail/messages/ID/task); prints its id.",
        example="bitrix-mail messages task 1001 --responsible 7 --title 'Call back'",
        arguments=_task_arguments,
    ),
    Command(
        "event",
        on_gateway(
            event,
            date_from="--start",
            date_to="--end",
            name="--name",
            description="--description",
        ),
        help="create a calendar event from a message",
        description="Create a calendar event from a message "
        "(POST /mail/messages/ID/calendar-event); prints its id. The gateway takes times "
        "without a zone, in the portal's local time.",
        example="bitrix-mail messages event 1001 --start '2026-06-01 10:00:00' "
        "--end '2026-06-01 11:00:00'",
        arguments=_event_arguments,
        aliases=("calendar-event",),
    ),
    Command(
        "chat",
        on_gateway(chat),
        help="open (or find) the chat about a message",
        description="Open the chat about a message, or find the one already open "
        "(POST /mail/messages/ID/chat); prints its id.",
        example="bitrix-mail messages chat 1001",
        arguments=message_argument,
    ),
    Command(
        "feed-post",
        on_gateway(feed_post, title="--title"),
        help="post a message to the feed",
        description="Post a message to the feed (POST /mail/messages/ID/feed-post); prints "
        "the post's id.",
        example="bitrix-mail messages feed-post 1001 --title 'From the sales inbox'",
        arguments=_feed_post_arguments,
    ),
    Command(
        "crm-activity",
        on_gateway(crm_activity),
        help="log a message in the CRM",
        description="Log a message in the CRM as an activity "
        "(POST /mail/messages/ID/crm-activity).",
        example="bitrix-mail messages crm-activity 1001",
        arguments=message_argument,
    ),
)
