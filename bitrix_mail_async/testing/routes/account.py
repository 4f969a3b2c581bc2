"""The route describing the calling key: ``GET /v1/me`` (any valid key, no mail scope needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bitrix_mail_async.testing import wire
from bitrix_mail_async.testing.limits import PortalRate
from bitrix_mail_async.testing.middleware import authenticate

if TYPE_CHECKING:
    from bitrix_mail_async.testing.app import Gateway

__all__ = ["me"]


async def me(gw: Gateway, request: web.Request) -> web.Response:
    """GET /me: the key's scopes, its rate as configured, the portal and the key's expiry."""
    info = authenticate(gw, request, scope=None)  # an app key's session: its own portal
    # While the portal bucket is off the key still has a limit on the real gateway: the default.
    # The figure is the portal's short-term rate, as the gateway reports it (not the REST
    # bucket under it); a key's own lower limit (``set_rate_limit``) is what the key gets.
    per_second = (gw.limits.portal.rate(info.portal) or PortalRate()).per_second
    own = gw.limits.key_bucket.per_second
    if own is not None:
        per_second = min(per_second, own)
    expires = info.expires_at.isoformat() if info.expires_at is not None else None
    return wire.ok(
        {
            "scopes": list(info.scopes),
            "rateLimit": {"requestsPerSecond": wire.number(per_second)},
            "portal": info.portal,
            "expiresAt": expires,
            "accessMode": info.access_mode,
            "status": info.status.upper(),
        }
    )
