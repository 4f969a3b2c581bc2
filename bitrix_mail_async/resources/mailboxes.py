"""Mailboxes: list, get, senders (routes 1-3 of the contract)."""

from __future__ import annotations

import builtins

from bitrix_mail_async import _args
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
        pager = self._pages(
            Pager,
            "GET",
            "/mail/mailboxes",
            Mailbox,
            filters=params,
            page_size=_PAGE,
            timeout=timeout,
        )
        return await pager.collect()

    async def get(self, mailbox_id: int, *, timeout: float | None = None) -> Mailbox:
        """One mailbox by id. Example: ``box = await mail.mailboxes.get(1)``."""
        mid = _args.positive_id("mailbox_id", mailbox_id)
        return await self._get(f"/mail/mailboxes/{mid}", Mailbox, unwrap="item", timeout=timeout)

    async def senders(
        self, mailbox_id: int, *, timeout: float | None = None
    ) -> builtins.list[Sender]:
        """Sender addresses of a mailbox; pass ``sender.sender`` as ``from_`` when sending.

        Example: ``from_ = (await mail.mailboxes.senders(1))[0].sender``.
        """
        mid = _args.positive_id("mailbox_id", mailbox_id)
        return await self._get_list(f"/mail/mailboxes/{mid}/senders", Sender, timeout=timeout)
