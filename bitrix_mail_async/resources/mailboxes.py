"""Mailboxes: list, get, senders (routes 1-3 of the contract)."""

from __future__ import annotations

import builtins
from typing import Any

from bitrix_mail_async import _args
from bitrix_mail_async._convert import structure, structure_list, unwrap_item, unwrap_items
from bitrix_mail_async.models import Mailbox, Sender
from bitrix_mail_async.pagination import Pager
from bitrix_mail_async.resources._base import Resource

__all__ = ["Mailboxes"]

_PAGE = 100  # the contract's maximum for mailbox lists


class Mailboxes(Resource):
    """``mail.mailboxes``: the portal's mailboxes and their sender addresses."""

    __slots__ = ()

    async def list(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        timeout: float | None = None,
    ) -> builtins.list[Mailbox]:
        """Every mailbox (all pages), optionally filtered by name/email fragments.

        Example: ``boxes = await mail.mailboxes.list()``.
        """
        params: dict[str, str] = {}
        if name is not None:
            params["name"] = _args.single_line("name", name)
        if email is not None:
            params["email"] = _args.single_line("email", email)

        async def fetch(offset: int, limit: int) -> tuple[Any, Any]:
            query = {**params, "limit": str(limit), "offset": str(offset)}
            return await self._transport.request_with_meta(
                "GET", "/mail/mailboxes", params=query, timeout=timeout
            )

        return await Pager(fetch, Mailbox, page_size=_PAGE).collect()

    async def get(self, mailbox_id: int, *, timeout: float | None = None) -> Mailbox:
        """One mailbox by id. Example: ``box = await mail.mailboxes.get(1)``."""
        mid = _args.positive_id("mailbox_id", mailbox_id)
        data = await self._transport.request("GET", f"/mail/mailboxes/{mid}", timeout=timeout)
        return structure(unwrap_item(data), Mailbox)

    async def senders(
        self, mailbox_id: int, *, timeout: float | None = None
    ) -> builtins.list[Sender]:
        """Sender addresses of a mailbox; pass ``sender.sender`` as ``from_`` when sending.

        Example: ``from_ = (await mail.mailboxes.senders(1))[0].sender``.
        """
        mid = _args.positive_id("mailbox_id", mailbox_id)
        data = await self._transport.request(
            "GET", f"/mail/mailboxes/{mid}/senders", timeout=timeout
        )
        return structure_list(unwrap_items(data), Sender)
