"""Routes that make a portal object from a message: task, calendar event, chat, feed post, CRM.

Every object is numbered in its own sequence, bound to the message and recorded as a side
effect in the same way; :class:`_Kind` says how for each kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.routes import find_message

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway
    from bitrix_mail_async.testing.state import PortalState

__all__ = [
    "create_calendar_event",
    "create_chat",
    "create_crm_activity",
    "create_feed_post",
    "create_task",
]

_BITRIX_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass(frozen=True)
class _Kind:
    """One kind of object: its numbering sequence, binding name and id field in answers."""

    name: str
    binding: str
    id_key: str
    first_id: int


_TASK = _Kind("task", "task", "taskId", 501)
_EVENT = _Kind("event", "calendar_event", "eventId", 701)
_CHAT = _Kind("chat", "chat", "chatId", 901)
_FEED_POST = _Kind("feed_post", "feed_post", "postId", 1101)
_CRM_ACTIVITY = _Kind("crm_activity", "crm_activity", "activityId", 1301)


def _target(gw: Gateway, request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the path's message and the JSON body (whose optional messageId must match)."""
    message_id = wire.path_id(request)
    body = wire.body(request)
    if (
        body.get("messageId") is not None
        and wire.positive(body["messageId"], "messageId") != message_id
    ):
        raise wire.invalid("messageId must equal the message id in the path", "messageId")
    return find_message(gw.state, message_id), body


def _record(
    state: PortalState,
    bucket: list[dict[str, Any]],
    kind: _Kind,
    object_id: int,
    msg: dict[str, Any],
    body: dict[str, Any],
    **fields: Any,
) -> None:
    entry = {"kind": kind.name, kind.id_key: object_id, "messageId": msg["id"], **fields}
    state.record(bucket, {**entry, "request": body})


def _create(
    state: PortalState,
    bucket: list[dict[str, Any]],
    kind: _Kind,
    msg: dict[str, Any],
    body: dict[str, Any],
    **fields: Any,
) -> int:
    """Number a new object made from ``msg``, bind it, and record the side effect."""
    new_id = state.next_id(kind.name, kind.first_id)
    state.add_binding(msg["id"], kind.binding, new_id)
    _record(state, bucket, kind, new_id, msg, body, **fields)
    return new_id


def _created(kind: _Kind, object_id: int, msg: dict[str, Any], **extra: Any) -> web.Response:
    return wire.ok({"success": True, kind.id_key: object_id, "messageId": msg["id"], **extra})


async def create_task(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/task."""
    msg, body = _target(gw, request)
    title = wire.string(body, "title", required=False) or msg["subject"]
    if body.get("responsibleId") is not None:
        wire.positive(body["responsibleId"], "responsibleId")
    wire.string(body, "description", required=False)
    task_id = _create(gw.state, gw.state.tasks, _TASK, msg, body, title=title)
    return _created(_TASK, task_id, msg)


def _event_bounds(body: dict[str, Any]) -> None:
    """Check dateFrom and dateTo: both Bitrix datetimes, in order."""
    bounds = []
    for name in ("dateFrom", "dateTo"):
        value = body.get(name)
        if not isinstance(value, str) or not _BITRIX_DATETIME.match(value):
            raise wire.invalid(f"{name} is required, format Y-m-d H:i:s", name)
        try:
            bounds.append(datetime.strptime(value, "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            raise wire.invalid(f"{name} is not a valid date", name) from None
    if bounds[1] < bounds[0]:
        raise wire.invalid("dateTo must not be before dateFrom", "dateTo")


async def create_calendar_event(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/calendar-event."""
    msg, body = _target(gw, request)
    _event_bounds(body)
    name = wire.string(body, "name", required=False) or msg["subject"]
    wire.string(body, "description", required=False)
    event_id = _create(gw.state, gw.state.events, _EVENT, msg, body, name=name)
    return _created(_EVENT, event_id, msg)


async def create_chat(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/chat."""
    msg, body = _target(gw, request)
    state = gw.state
    # One chat per message: asking again answers the same chat with existing=true.
    with state.lock:
        chat_id = state.chat_for(msg["id"])
        existing = chat_id is not None
        if chat_id is None:
            chat_id = state.next_id(_CHAT.name, _CHAT.first_id)
            state.remember_chat(msg["id"], chat_id)
            state.add_binding(msg["id"], _CHAT.binding, chat_id)
    _record(state, state.chats, _CHAT, chat_id, msg, body, existing=existing)
    return _created(_CHAT, chat_id, msg, existing=existing)


async def create_feed_post(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/feed-post."""
    msg, body = _target(gw, request)
    title = wire.string(body, "title", required=False) or msg["subject"]
    post_id = _create(gw.state, gw.state.feed_posts, _FEED_POST, msg, body, title=title)
    return _created(_FEED_POST, post_id, msg)


async def create_crm_activity(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/messages/{id}/crm-activity."""
    msg, body = _target(gw, request)
    activity_id = _create(gw.state, gw.state.crm_activities, _CRM_ACTIVITY, msg, body)
    if gw.state.options.crm_activity_shape == "bool":
        return wire.ok(True)
    return _created(_CRM_ACTIVITY, activity_id, msg)
