"""The key itself: ``GET /v1/me`` (scopes, the portal's rate limit, expiry)."""

from __future__ import annotations

from bitrix_mail_async.models import KeyInfo
from bitrix_mail_async.resources._base import Resource

__all__ = ["Account"]


class Account(Resource):
    """What the gateway knows about the API key in use (not a mail route)."""

    __slots__ = ()

    async def me(self, *, timeout: float | None = None) -> KeyInfo:
        """Scopes, rate limit, portal and expiry of the key. Example: ``await mail.me()``."""
        return await self._get("/me", KeyInfo, unwrap="item", timeout=timeout)
