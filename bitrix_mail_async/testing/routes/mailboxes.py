"""Routes of the mailboxes: list, get one, and a mailbox's senders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.routes import find_mailbox

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway

__all__ = ["get_mailbox", "list_mailboxes", "mailbox_senders"]


async def list_mailboxes(gw: Gateway, request: web.Request) -> web.Response:
    """GET /mail/mailboxes."""
    query = request.query
    limit = wire.limit(query.get("limit"), 100, 100)
    offset = wire.offset(query.get("offset"))
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
    return wire.ok(data, meta if gw.state.options.list_meta else None)


async def get_mailbox(gw: Gateway, request: web.Request) -> web.Response:
    """GET /mail/mailboxes/{id}."""
    mailbox = dict(find_mailbox(gw.state, wire.path_id(request)))
    return wire.ok({"item": mailbox} if gw.state.options.mailbox_get_shape == "item" else mailbox)


async def mailbox_senders(gw: Gateway, request: web.Request) -> web.Response:
    """GET /mail/mailboxes/{id}/senders."""
    mailbox_id = wire.path_id(request)
    find_mailbox(gw.state, mailbox_id)
    limit = wire.limit(request.query.get("limit"), 100, 100)
    offset = wire.offset(request.query.get("offset"))
    senders = gw.state.senders[mailbox_id]
    return wire.ok({"items": [dict(s) for s in senders[offset : offset + limit]]})
