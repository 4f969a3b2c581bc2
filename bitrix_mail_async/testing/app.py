"""The aiohttp.web application that speaks the gateway's mail contract (the 17 routes).

One middleware does what every request shares, in the gateway's order: record, add latency,
check the key, take a token, inject a fault, run the handler, turn errors into the envelope.
Handlers only validate parameters and touch :class:`PortalState`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from bitrix_mail_async.testing.faults import Faults
from bitrix_mail_async.testing.limits import TokenBucketLimiter
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest, RequestLog, redact_headers
from bitrix_mail_async.testing.state import MSK, PortalState

__all__ = [
    "DEFAULT_API_KEY",
    "GATEWAY",
    "Gateway",
    "GatewayError",
    "KeyInfo",
    "create_app",
]

DEFAULT_API_KEY = "vibe_api_emulator_test_key"
logger = logging.getLogger("bitrix_mail_async.testing")
PREFIX = "/v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KeyStatus = Literal["active", "inactive", "expired", "no_tokens"]

_POSITIVE_INT = re.compile(r"^[1-9][0-9]*$")
_NON_NEGATIVE_INT = re.compile(r"^(0|[1-9][0-9]*)$")
_BITRIX_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_JSON = "application/json"
_BODY_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("bitrix_mail_emulator.json")


@dataclass(frozen=True)
class KeyInfo:
    """An API key the emulator accepts, with its scopes and state."""

    key: str
    scopes: tuple[str, ...] = ("mail",)
    status: KeyStatus = "active"
    app: bool = False
    tokens: tuple[str, ...] = ()


class GatewayError(Exception):
    """An error answer in the gateway's envelope, raised by handlers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        retry_after: float | None = None,
        validation: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        self.validation = validation

    def response(self) -> web.Response:
        """Render the error envelope (with ``Retry-After`` when it carries one)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        if self.validation:
            error["validation"] = self.validation
        headers = None
        if self.retry_after is not None:
            error["retryAfter"] = _number(self.retry_after)
            headers = {"Retry-After": _seconds_text(self.retry_after)}
        return _json(self.status, {"success": False, "error": error}, headers=headers)


@dataclass
class Gateway:
    """Everything the handlers share: the portal, keys, limiter, faults, log and counters."""

    state: PortalState
    keys: dict[str, KeyInfo]
    faults: Faults
    limiter: TokenBucketLimiter = field(default_factory=TokenBucketLimiter)
    requests: RequestLog = field(default_factory=RequestLog)
    stats: EmulatorStats = field(default_factory=EmulatorStats)


GATEWAY = web.AppKey("bitrix_mail_gateway", Gateway)


# --------------------------------------------------------------------- helpers
def _seconds_text(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type=_JSON,
        headers=headers,
    )


def _ok(data: Any, meta: dict[str, Any] | None = None) -> web.Response:
    payload: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        payload["meta"] = meta
    return _json(200, payload)


def _invalid(message: str, field_name: str | None = None) -> GatewayError:
    validation = [{"field": field_name, "message": message}] if field_name else None
    return GatewayError(400, "INVALID_PARAMS", message, validation=validation)


def _not_found(what: str, ident: int) -> GatewayError:
    return GatewayError(404, "ENTITY_NOT_FOUND", f"{what} {ident} not found")


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise _invalid(f"{name} must be a positive integer", name)
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and _POSITIVE_INT.match(value):
        return int(value)
    raise _invalid(f"{name} must be a positive integer", name)


def _path_id(request: web.Request) -> int:
    return _positive(request.match_info["id"], "id")


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not _POSITIVE_INT.match(raw):
        raise _invalid("limit must be a positive integer", "limit")
    # The gateway caps an oversized limit instead of rejecting it (REST 3.0 behaviour).
    return min(int(raw), maximum)


def _offset(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not _NON_NEGATIVE_INT.match(raw):
        raise _invalid("offset must be a non-negative integer", "offset")
    return int(raw)


def _body_limit(value: Any, default: int, maximum: int) -> int:
    if value is None:
        return default
    if isinstance(value, str):
        return _limit(value, default, maximum)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid("limit must be a positive integer", "limit")
    return min(value, maximum)


def _body_offset(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return _offset(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid("offset must be a non-negative integer", "offset")
    return value


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise _invalid(f"{name} must be true or false", name)


def _iso_date(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(f"{name} must be an ISO 8601 date", name) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=MSK)


def _body(request: web.Request) -> dict[str, Any]:
    return request.get(_BODY_KEY) or {}


def _message(gw: Gateway, message_id: int) -> dict[str, Any]:
    msg = gw.state.messages.get(message_id)
    if msg is None:
        raise _not_found("Message", message_id)
    if msg["mailboxId"] in gw.state.denied_mailboxes:
        raise GatewayError(403, "BITRIX_ACCESS_DENIED", f"Access denied to message {message_id}")
    return msg


def _mailbox(gw: Gateway, mailbox_id: int) -> dict[str, Any]:
    mailbox = gw.state.mailboxes.get(mailbox_id)
    if mailbox is None:
        raise _not_found("Mailbox", mailbox_id)
    if mailbox_id in gw.state.denied_mailboxes:
        raise GatewayError(403, "BITRIX_ACCESS_DENIED", f"Access denied to mailbox {mailbox_id}")
    return mailbox


def _string_list(body: dict[str, Any], name: str, *, required: bool) -> list[str]:
    value = body.get(name)
    if value is None and not required:
        return []
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v.strip() for v in value)
        or (required and not value)
    ):
        raise _invalid(f"{name} must be a {'non-empty ' if required else ''}list of strings", name)
    return value


def _string(body: dict[str, Any], name: str, *, required: bool, non_empty: bool = False) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise _invalid(f"{name} is required and must be a string", name)
    return value


# --------------------------------------------------------------------- mailboxes
async def list_mailboxes(request: web.Request) -> web.Response:
    """GET /mail/mailboxes."""
    gw = request.app[GATEWAY]
    query = request.query
    limit = _limit(query.get("limit"), 100, 100)
    offset = _offset(query.get("offset"))
    name = (query.get("name") or "").lower()
    email = (query.get("email") or "").lower()
    items = [
        dict(m)
        for m in gw.state.mailboxes.values()
        if name in m["name"].lower() and email in m["email"].lower()
    ]
    page = items[offset : offset + limit]
    meta = {"total": len(items), "hasMore": offset + len(page) < len(items)}
    data: Any = page if gw.state.options.mailboxes_shape == "list" else {"items": page}
    return _ok(data, meta if gw.state.options.list_meta else None)


async def get_mailbox(request: web.Request) -> web.Response:
    """GET /mail/mailboxes/{id}."""
    gw = request.app[GATEWAY]
    mailbox = dict(_mailbox(gw, _path_id(request)))
    return _ok({"item": mailbox} if gw.state.options.mailbox_get_shape == "item" else mailbox)


async def mailbox_senders(request: web.Request) -> web.Response:
    """GET /mail/mailboxes/{id}/senders."""
    gw = request.app[GATEWAY]
    mailbox_id = _path_id(request)
    _mailbox(gw, mailbox_id)
    limit = _limit(request.query.get("limit"), 100, 100)
    offset = _offset(request.query.get("offset"))
    senders = gw.state.senders[mailbox_id]
    return _ok({"items": [dict(s) for s in senders[offset : offset + limit]]})


# --------------------------------------------------------------------- messages
async def list_messages(request: web.Request) -> web.Response:
    """GET /mail/messages."""
    gw = request.app[GATEWAY]
    state = gw.state
    query = request.query
    raw_mailbox = query.get("mailboxId")
    if raw_mailbox is None or raw_mailbox == "":
        raise _invalid("mailboxId is required", "mailboxId")
    mailbox_id = _positive(raw_mailbox, "mailboxId")
    limit = _limit(query.get("limit"), 25, 200)
    offset = _offset(query.get("offset"))
    search = (query.get("searchQuery") or "").lower()
    date_from = _iso_date(query.get("dateFrom"), "dateFrom")
    date_to = _iso_date(query.get("dateTo"), "dateTo")
    is_seen = _flag(query.get("isSeen"), "isSeen")
    has_attachments = _flag(query.get("hasAttachments"), "hasAttachments")
    folder = query.get("folder") or None
    _mailbox(gw, mailbox_id)

    if (
        not (search or date_from or date_to or folder)
        and is_seen is None
        and has_attachments is None
    ):
        total = state.mailbox_count(mailbox_id)
        ids = state.page_ids(mailbox_id, offset, limit)
    else:
        folder_key = folder.strip("/").lower() if folder else None

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

        key = (search, date_from, date_to, is_seen, has_attachments, folder_key)
        matched = state.filtered_ids(mailbox_id, key, matches)
        total = len(matched)
        ids = matched[offset : offset + limit]
    items = [state.summary(state.messages[i]) for i in ids]
    meta = {"total": total, "hasMore": offset + len(items) < total}
    return _ok({"items": items}, meta if state.options.list_meta else None)


async def get_message(request: web.Request) -> web.Response:
    """GET /mail/messages/{id}."""
    gw = request.app[GATEWAY]
    return _ok({"item": gw.state.full(_message(gw, _path_id(request)))})


async def message_thread(request: web.Request) -> web.Response:
    """GET /mail/messages/{id}/thread."""
    gw = request.app[GATEWAY]
    message_id = _path_id(request)
    limit = _limit(request.query.get("limit"), 20, 50)
    msg = _message(gw, message_id)
    ids = gw.state.threads.get(msg["threadId"], [message_id])[:limit]
    items = [gw.state.thread_item(gw.state.messages[i]) for i in ids]
    return _ok(items if gw.state.options.thread_shape == "list" else {"items": items})


def _validate_send(body: dict[str, Any]) -> tuple[str, list[str], str, str]:
    sender = _string(body, "from", required=True, non_empty=True)
    to = _string_list(body, "to", required=True)
    subject = _string(body, "subject", required=True)
    text = _string(body, "body", required=True)
    _string_list(body, "cc", required=False)
    _string_list(body, "bcc", required=False)
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
        raise GatewayError(403, "BITRIX_ACCESS_DENIED", f"Access denied to mailbox {mailbox_id}")
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
    return _ok({"success": True, "to": list(to)})


async def send_message(request: web.Request) -> web.Response:
    """POST /mail/messages."""
    return _deliver(request.app[GATEWAY], "send", _body(request))


def _source_message(request: web.Request, field_name: str) -> tuple[dict[str, Any], int]:
    gw = request.app[GATEWAY]
    message_id = _path_id(request)
    body = _body(request)
    if body.get(field_name) is None:
        raise _invalid(f"{field_name} is required", field_name)
    if _positive(body.get(field_name), field_name) != message_id:
        raise _invalid(f"{field_name} must equal the message id in the path", field_name)
    _validate_send(body)
    return _message(gw, message_id), message_id


async def reply_message(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/reply."""
    source, _ = _source_message(request, "replyToMessageId")
    return _deliver(request.app[GATEWAY], "reply", _body(request), source=source)


async def forward_message(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/forward."""
    source, _ = _source_message(request, "forwardMessageId")
    return _deliver(request.app[GATEWAY], "forward", _body(request), source=source)


async def move_messages(request: web.Request) -> web.Response:
    """POST /mail/messages/move."""
    gw = request.app[GATEWAY]
    state = gw.state
    body = _body(request)
    raw_ids = body.get("messageIds")
    if (
        not isinstance(raw_ids, list)
        or not raw_ids
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in raw_ids)
    ):
        raise _invalid("messageIds must be a non-empty list of positive integers", "messageIds")
    action = body.get("action")
    if action not in ("move", "spam", "delete"):
        raise _invalid("action must be one of move, spam, delete", "action")
    folder = body.get("folder")
    if action == "move":
        if not isinstance(folder, str) or not folder.strip():
            raise _invalid("folder is required when action is move", "folder")
        target = folder.strip("/")
    else:
        target = "Spam" if action == "spam" else "Trash"
    ids: list[int] = list(dict.fromkeys(raw_ids))
    messages = [_message(gw, i) for i in ids]
    if len({m["mailboxId"] for m in messages}) > 1:
        raise _invalid("all messages must belong to one mailbox", "messageIds")
    if len({m["folder"] for m in messages}) > 1:
        raise _invalid("all messages must be in one folder", "messageIds")
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
    return _ok({"success": True, "movedCount": moved, "action": action})


# --------------------------------------------------------------------- objects from a message
def _object_target(request: web.Request) -> tuple[Gateway, dict[str, Any], dict[str, Any]]:
    gw = request.app[GATEWAY]
    message_id = _path_id(request)
    body = _body(request)
    if (
        body.get("messageId") is not None
        and _positive(body["messageId"], "messageId") != message_id
    ):
        raise _invalid("messageId must equal the message id in the path", "messageId")
    return gw, _message(gw, message_id), body


def _create_object(
    gw: Gateway,
    msg: dict[str, Any],
    body: dict[str, Any],
    bucket: list[dict[str, Any]],
    *,
    kind: str,
    binding: str,
    id_key: str,
    first_id: int,
    **fields: Any,
) -> int:
    """Number a new object made from ``msg``, bind it, and record the side effect."""
    state = gw.state
    new_id = state.next_id(kind, first_id)
    state.add_binding(msg["id"], binding, new_id)
    entry = {"kind": kind, id_key: new_id, "messageId": msg["id"], **fields, "request": body}
    state.record(bucket, entry)
    return new_id


async def create_task(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/task."""
    gw, msg, body = _object_target(request)
    title = _string(body, "title", required=False) or msg["subject"]
    if body.get("responsibleId") is not None:
        _positive(body["responsibleId"], "responsibleId")
    _string(body, "description", required=False)
    task_id = _create_object(
        gw,
        msg,
        body,
        gw.state.tasks,
        kind="task",
        binding="task",
        id_key="taskId",
        first_id=501,
        title=title,
    )
    return _ok({"success": True, "taskId": task_id, "messageId": msg["id"]})


async def create_calendar_event(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/calendar-event."""
    gw, msg, body = _object_target(request)
    bounds = []
    for name in ("dateFrom", "dateTo"):
        value = body.get(name)
        if not isinstance(value, str) or not _BITRIX_DATETIME.match(value):
            raise _invalid(f"{name} is required, format Y-m-d H:i:s", name)
        try:
            bounds.append(datetime.strptime(value, "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            raise _invalid(f"{name} is not a valid date", name) from None
    if bounds[1] < bounds[0]:
        raise _invalid("dateTo must not be before dateFrom", "dateTo")
    name = _string(body, "name", required=False) or msg["subject"]
    _string(body, "description", required=False)
    event_id = _create_object(
        gw,
        msg,
        body,
        gw.state.events,
        kind="event",
        binding="calendar_event",
        id_key="eventId",
        first_id=701,
        name=name,
    )
    return _ok({"success": True, "eventId": event_id, "messageId": msg["id"]})


async def create_chat(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/chat."""
    gw, msg, body = _object_target(request)
    state = gw.state
    with state.lock:
        chat_id = state.chat_for(msg["id"])
        existing = chat_id is not None
        if chat_id is None:
            chat_id = state.next_id("chat", 901)
            state.remember_chat(msg["id"], chat_id)
            state.add_binding(msg["id"], "chat", chat_id)
    state.record(
        state.chats,
        {
            "kind": "chat",
            "chatId": chat_id,
            "messageId": msg["id"],
            "existing": existing,
            "request": body,
        },
    )
    return _ok({"success": True, "chatId": chat_id, "messageId": msg["id"], "existing": existing})


async def create_feed_post(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/feed-post."""
    gw, msg, body = _object_target(request)
    title = _string(body, "title", required=False) or msg["subject"]
    post_id = _create_object(
        gw,
        msg,
        body,
        gw.state.feed_posts,
        kind="feed_post",
        binding="feed_post",
        id_key="postId",
        first_id=1101,
        title=title,
    )
    return _ok({"success": True, "postId": post_id, "messageId": msg["id"]})


async def create_crm_activity(request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/crm-activity."""
    gw, msg, body = _object_target(request)
    activity_id = _create_object(
        gw,
        msg,
        body,
        gw.state.crm_activities,
        kind="crm_activity",
        binding="crm_activity",
        id_key="activityId",
        first_id=1301,
    )
    if gw.state.options.crm_activity_shape == "bool":
        return _ok(True)
    return _ok({"success": True, "activityId": activity_id, "messageId": msg["id"]})


# --------------------------------------------------------------------- recipients
def _people(
    people: Iterable[dict[str, Any]], body: dict[str, Any], *, required: bool
) -> web.Response:
    query = body.get("query")
    if query is not None and not isinstance(query, str):
        raise _invalid("query must be a string", "query")
    if required and not (query or "").strip():
        raise _invalid("query is required (at least one character)", "query")
    limit = _body_limit(body.get("limit"), 50, 200)
    offset = _body_offset(body.get("offset"))
    needle = (query or "").strip().lower()
    found = [dict(p) for p in people if needle in p["name"].lower() or needle in p["email"].lower()]
    return _ok({"items": found[offset : offset + limit]})


async def recipient_contacts(request: web.Request) -> web.Response:
    """POST /mail/recipients/contacts."""
    # Without a query the gateway returns the latest contacts first.
    contacts = reversed(request.app[GATEWAY].state.contacts)
    return _people(contacts, _body(request), required=False)


async def recipient_employees(request: web.Request) -> web.Response:
    """POST /mail/recipients/employees."""
    return _people(request.app[GATEWAY].state.employees, _body(request), required=True)


# --------------------------------------------------------------------- the shared pipeline
def _authenticate(gw: Gateway, request: web.Request) -> str:
    key = request.headers.get("X-Api-Key")
    if not key:
        raise GatewayError(
            401,
            "MISSING_API_KEY",
            "X-Api-Key header is required",
            hint="Pass X-Api-Key: vibe_api_...",
        )
    info = gw.keys.get(key)
    if info is None:
        raise GatewayError(401, "INVALID_API_KEY", "Invalid API key")
    if info.app:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or token not in info.tokens:
            raise GatewayError(
                401, "INVALID_API_KEY", "Invalid or missing session token for an app key"
            )
    if info.status == "inactive":
        raise GatewayError(401, "KEY_INACTIVE", "API key is inactive")
    if info.status == "expired":
        raise GatewayError(401, "KEY_EXPIRED", "API key has expired")
    if info.status == "no_tokens":
        raise GatewayError(401, "TOKEN_MISSING", "No Bitrix24 tokens are configured for this key")
    if "mail" not in info.scopes:
        raise GatewayError(
            403, "SCOPE_DENIED", "The key lacks the mail scope", hint="Add the mail scope"
        )
    return key


def _fault_response(gw: Gateway, fault: str) -> web.Response:
    retry = gw.faults.fault_retry_after
    if fault == "502":
        return GatewayError(502, "BITRIX_UNAVAILABLE", "Bitrix24 is unavailable").response()
    if fault == "503":
        return GatewayError(
            503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable"
        ).response()
    if fault == "504":
        return GatewayError(504, "GATEWAY_TIMEOUT", "Queue timeout", retry_after=retry).response()
    if fault == "429":
        return GatewayError(
            429, "RATE_LIMITED", "Too many requests", retry_after=retry, hint="Wait 1-2 s"
        ).response()
    if fault == "html":
        return web.Response(
            status=502,
            text="<html><head><title>502 Bad Gateway</title></head>"
            "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body>"
            "</html>",
            content_type="text/html",
        )
    if fault == "success_false_200":
        return _json(
            200,
            {"success": False, "error": {"code": "BITRIX_ERROR", "message": "Internal error"}},
        )
    raise AssertionError(f"not a pre-action fault: {fault}")


def _post_action_response(fault: str) -> web.Response:
    if fault == "malformed":
        return web.Response(status=200, body=b'{"success": true, "data": {"ite', content_type=_JSON)
    if fault == "empty":
        return web.Response(status=200, body=b"", content_type=_JSON)
    return _json(200, {"success": True})


_PRE_ACTION = frozenset({"502", "503", "504", "429", "html", "success_false_200"})
_POST_ACTION = frozenset({"malformed", "empty", "no_data"})


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Nothing reaches the client: the transport is gone, aiohttp skips writing to it.
    return web.Response(status=204)


async def _read_json(request: web.Request, record: RecordedRequest) -> GatewayError | None:
    """Parse a JSON body into the record; return (not raise) the 400 so auth still goes first."""
    if not request.body_exists:
        request[_BODY_KEY] = {}
        return None
    raw = await request.read()
    if not raw.strip():
        request[_BODY_KEY] = {}
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        record.json = raw.decode("utf-8", errors="replace")
        return _invalid("request body must be JSON")
    record.json = parsed
    if not isinstance(parsed, dict):
        return _invalid("request body must be a JSON object")
    request[_BODY_KEY] = parsed
    return None


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, delay, authenticate, rate-limit, inject faults, then run the route."""
    gw = request.app[GATEWAY]
    path = request.path
    rel = path[len(PREFIX) :] if path.startswith(PREFIX + "/") else path
    record = RecordedRequest(
        method=request.method,
        path=rel,
        query=dict(request.query),
        json=None,
        headers=redact_headers(request.headers),
        time=time.time(),
    )
    gw.requests.append(record)
    stats = gw.stats
    stats.requests += 1
    response: web.StreamResponse
    try:
        body_error = await _read_json(request, record)
        delay = gw.faults.delay()
        if delay > 0:
            await asyncio.sleep(delay)
        key = _authenticate(gw, request)
        decision = gw.limiter.acquire(key)
        if not decision.allowed:
            raise GatewayError(
                429,
                "RATE_LIMITED",
                "Too many requests",
                hint="Wait 1-2 seconds before retrying",
                retry_after=decision.retry_after,
            )
        fault = gw.faults.pick(request.method, rel)
        if fault is not None:
            record.fault = fault
            stats.faults += 1
            if fault.startswith("slow:"):
                await asyncio.sleep(float(fault[5:]))
            elif fault == "drop_before":
                stats.dropped += 1
                return _drop(request)
            elif fault in _PRE_ACTION:
                response = _fault_response(gw, fault)
                return _finish(stats, record, response)
        if body_error is not None:
            raise body_error
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            raise GatewayError(
                404, "NOT_FOUND", f"Unknown action: {request.method} {rel}"
            ) from None
        except web.HTTPMethodNotAllowed:
            raise GatewayError(
                404, "NOT_FOUND", f"Unknown action: {request.method} {rel}"
            ) from None
        record.applied = response.status < 400
        if fault == "drop_after":
            stats.dropped += 1
            return _drop(request)
        if fault in _POST_ACTION:
            response = _post_action_response(fault)
    except GatewayError as err:
        response = err.response()
    except Exception as exc:
        # An emulator bug must still answer in the envelope, loudly, not as aiohttp's text page.
        logger.exception("emulator handler failed on %s %s", request.method, rel)
        response = GatewayError(500, "EMULATOR_ERROR", f"{type(exc).__name__}: {exc}").response()
    return _finish(stats, record, response)


def _finish(
    stats: EmulatorStats, record: RecordedRequest, response: web.StreamResponse
) -> web.StreamResponse:
    record.status = response.status
    stats.by_status[response.status] += 1
    if response.status == 429:
        stats.rate_limited += 1
    return response


def create_app(
    state: PortalState | None = None,
    *,
    keys: Iterable[KeyInfo | str] | None = None,
    faults: Faults | None = None,
) -> web.Application:
    """Build the emulator's aiohttp application; its shared parts live in ``app[GATEWAY]``."""
    key_infos = [
        k if isinstance(k, KeyInfo) else KeyInfo(k)
        for k in (keys if keys is not None else [DEFAULT_API_KEY])
    ]
    gateway = Gateway(
        state=state if state is not None else PortalState(),
        keys={k.key: k for k in key_infos},
        faults=faults if faults is not None else Faults(),
    )
    app = web.Application(middlewares=[gateway_middleware], client_max_size=4 * 1024 * 1024)
    app[GATEWAY] = gateway
    routes = [
        web.get(PREFIX + "/mail/mailboxes", list_mailboxes),
        web.get(PREFIX + "/mail/mailboxes/{id}", get_mailbox),
        web.get(PREFIX + "/mail/mailboxes/{id}/senders", mailbox_senders),
        web.get(PREFIX + "/mail/messages", list_messages),
        web.post(PREFIX + "/mail/messages", send_message),
        # Registered before the {id} routes so "move" is never read as an id.
        web.post(PREFIX + "/mail/messages/move", move_messages),
        web.get(PREFIX + "/mail/messages/{id}", get_message),
        web.get(PREFIX + "/mail/messages/{id}/thread", message_thread),
        web.post(PREFIX + "/mail/messages/{id}/reply", reply_message),
        web.post(PREFIX + "/mail/messages/{id}/forward", forward_message),
        web.post(PREFIX + "/mail/messages/{id}/task", create_task),
        web.post(PREFIX + "/mail/messages/{id}/calendar-event", create_calendar_event),
        web.post(PREFIX + "/mail/messages/{id}/chat", create_chat),
        web.post(PREFIX + "/mail/messages/{id}/feed-post", create_feed_post),
        web.post(PREFIX + "/mail/messages/{id}/crm-activity", create_crm_activity),
        web.post(PREFIX + "/mail/recipients/contacts", recipient_contacts),
        web.post(PREFIX + "/mail/recipients/employees", recipient_employees),
    ]
    app.add_routes(routes)
    return app
