"""Routes of the messages: list, get, thread, send, reply, forward and move."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.routes import find_mailbox, find_message

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway
    from bitrix_mail_async.testing.state import PortalState

__all__ = [
    "forward_message",
    "get_message",
    "list_messages",
    "message_thread",
    "move_messages",
    "reply_message",
    "send_message",
]


def _matcher(
    state: PortalState,
    search: str,
    date_from: datetime | None,
    date_to: datetime | None,
    is_seen: bool | None,
    has_attachments: bool | None,
    folder_key: str | None,
) -> Callable[[dict[str, Any]], bool]:
    def matches(msg: dict[str, Any]) -> bool:
        if folder_key is not None and msg["folder"].lower() != folder_key:
            return False
        if is_seen is not None and msg["isSeen"] != is_seen:
            return False
        if has_attachments is not None and msg["hasAttachments"] != has_attachments:
            return False
        if date_from is not None and msg["date"] < date_from:
            return False
        if date_to is not None and msg["date"] > date_to:
            return False
        return not search or (
            search in msg["subject"].lower()
            or search in msg["from"].lower()
            or search in state.message_body(msg).lower()
        )

    return matches


async def list_messages(gw: Gateway, request: web.Request) -> web.Response:
    """GET /mail/messages."""
    state = gw.state
    query = request.query
    raw_mailbox = query.get("mailboxId")
    if raw_mailbox is None or raw_mailbox == "":
        raise wire.invalid("mailboxId is required", "mailboxId")
    mailbox_id = wire.positive(raw_mailbox, "mailboxId")
    limit = wire.limit(query.get("limit"), 25, 200)
    offset = wire.offset(query.get("offset"))
    search = (query.get("searchQuery") or "").lower()
    date_from = wire.iso_date(query.get("dateFrom"), "dateFrom")
    date_to = wire.iso_date(query.get("dateTo"), "dateTo")
    is_seen = wire.flag(query.get("isSeen"), "isSeen")
    has_attachments = wire.flag(query.get("hasAttachments"), "hasAttachments")
    folder = query.get("folder") or None
    find_mailbox(state, mailbox_id)

    unfiltered = (
        not (search or date_from or date_to or folder)
        and is_seen is None
        and has_attachments is None
    )
    if unfiltered and state.options.list_order == "newest":
        total = state.mailbox_count(mailbox_id)
        ids = state.page_ids(mailbox_id, offset, limit)
    else:
        folder_key = folder.strip("/").lower() if folder else None
        key = (search, date_from, date_to, is_seen, has_attachments, folder_key)
        matched = state.in_list_order(state.filtered_ids(mailbox_id, key, _matcher(state, *key)))
        total = len(matched)
        ids = matched[offset : offset + limit]
    items = [state.summary(state.messages[i]) for i in ids]
    meta = {"total": total, "hasMore": offset + len(items) < total}
    return wire.ok({"items": items}, meta if state.options.list_meta else None)


async def get_message(gw: Gateway, request: web.Request) -> web.Response:
    """GET /mail/messages/{id}."""
    return wire.ok({"item": gw.state.full(find_message(gw.state, wire.path_id(request)))})


async def message_thread(gw: Gateway, request: web.Request) -> web.Response:
    """GET /mail/messages/{id}/thread."""
    message_id = wire.path_id(request)
    limit = wire.limit(request.query.get("limit"), 20, 50)
    msg = find_message(gw.state, message_id)
    ids = gw.state.threads.get(msg["threadId"], [message_id])[:limit]
    items = [gw.state.thread_item(gw.state.messages[i]) for i in ids]
    return wire.ok(items if gw.state.options.thread_shape == "list" else {"items": items})


# --------------------------------------------------------------------- sending
def _validate_send(body: dict[str, Any]) -> tuple[str, list[str], str, str]:
    sender = wire.string(body, "from", required=True, non_empty=True)
    to = wire.string_list(body, "to", required=True)
    subject = wire.string(body, "subject", required=True)
    text = wire.string(body, "body", required=True)
    wire.string_list(body, "cc", required=False)
    wire.string_list(body, "bcc", required=False)
    return sender, to, subject, text


def _deliver(
    gw: Gateway,
    kind: str,
    body: dict[str, Any],
    *,
    source: dict[str, Any] | None = None,
) -> web.Response:
    state = gw.state
    sender, to, subject, text = _validate_send(body)
    mailbox_id = state.mailbox_for_address(sender)
    if mailbox_id is None:
        # Lenient on purpose: an unknown sender goes out of the source's (or the first) mailbox.
        mailbox_id = source["mailboxId"] if source is not None else min(state.mailboxes)
    if mailbox_id in state.denied_mailboxes:
        raise wire.access_denied("mailbox", mailbox_id)
    msg = state.add_message(
        mailbox_id=mailbox_id,
        subject=subject,
        body=text,
        from_=sender,
        to=to,
        cc=body.get("cc") or None,
        folder="Sent",
        is_seen=True,
        thread_of=source["id"] if source is not None and kind == "reply" else None,
    )
    entry: dict[str, Any] = {"kind": kind, "messageId": msg["id"], "request": body}
    if source is not None:
        entry["sourceMessageId"] = source["id"]
    state.record(state.sent, entry)
    return wire.ok({"success": True, "to": list(to)})


async def send_message(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages."""
    return _deliver(gw, "send", wire.body(request))


def _answer_message(gw: Gateway, request: web.Request, kind: str, field_name: str) -> web.Response:
    """Reply to or forward the path's message; the body repeats its id in ``field_name``."""
    message_id = wire.path_id(request)
    body = wire.body(request)
    if body.get(field_name) is None:
        raise wire.invalid(f"{field_name} is required", field_name)
    if wire.positive(body.get(field_name), field_name) != message_id:
        raise wire.invalid(f"{field_name} must equal the message id in the path", field_name)
    _validate_send(body)
    source = find_message(gw.state, message_id)
    return _deliver(gw, kind, body, source=source)


async def reply_message(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/reply."""
    return _answer_message(gw, request, "reply", "replyToMessageId")


async def forward_message(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/forward."""
    return _answer_message(gw, request, "forward", "forwardMessageId")


# --------------------------------------------------------------------- moving
def _move_target(body: dict[str, Any]) -> tuple[list[int], str, str]:
    """Check a move request; return the unique ids, the action and the target folder."""
    raw_ids = body.get("messageIds")
    if (
        not isinstance(raw_ids, list)
        or not raw_ids
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in raw_ids)
    ):
        raise wire.invalid("messageIds must be a non-empty list of positive integers", "messageIds")
    action = body.get("action")
    if action not in ("move", "spam", "delete"):
        raise wire.invalid("action must be one of move, spam, delete", "action")
    folder = body.get("folder")
    if action == "move":
        if not isinstance(folder, str) or not folder.strip():
            raise wire.invalid("folder is required when action is move", "folder")
        target = folder.strip("/")
    else:
        target = "Spam" if action == "spam" else "Trash"
    return list(dict.fromkeys(raw_ids)), action, target


async def move_messages(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/move."""
    state = gw.state
    body = wire.body(request)
    ids, action, target = _move_target(body)
    messages = [find_message(state, i) for i in ids]
    if len({m["mailboxId"] for m in messages}) > 1:
        raise wire.invalid("all messages must belong to one mailbox", "messageIds")
    if len({m["folder"] for m in messages}) > 1:
        raise wire.invalid("all messages must be in one folder", "messageIds")
    source_folder = messages[0]["folder"]
    moved = state.move_messages(ids, target)
    state.record(
        state.moves,
        {
            "kind": "move",
            "messageIds": ids,
            "action": action,
            "folder": target,
            "fromFolder": source_folder,
            "request": body,
        },
    )
    return wire.ok({"success": True, "movedCount": moved, "action": action})
