"""Routes of the recipient searches: CRM contacts and portal employees."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bitrix_mail_async.testing import wire

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway

__all__ = ["recipient_contacts", "recipient_employees"]


def _people(
    people: Iterable[dict[str, Any]], body: dict[str, Any], *, required: bool
) -> web.Response:
    query = body.get("query")
    if query is not None and not isinstance(query, str):
        raise wire.invalid("query must be a string", "query")
    if required and not (query or "").strip():
        raise wire.invalid("query is required (at least one character)", "query")
    limit = wire.body_limit(body.get("limit"), 50, 200)
    offset = wire.body_offset(body.get("offset"))
    needle = (query or "").strip().lower()
    found = [dict(p) for p in people if needle in p["name"].lower() or needle in p["email"].lower()]
    return wire.ok({"items": found[offset : offset + limit]})


async def recipient_contacts(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/recipients/contacts."""
    # Without a query the gateway returns the latest contacts first.
    return _people(reversed(gw.state.contacts), wire.body(request), required=False)


async def recipient_employees(gw: Gateway, request: web.Request) -> web.Response:
    """POST /mail/recipients/employees."""
    return _people(gw.state.employees, wire.body(request), required=True)
