"""Recipients: CRM contacts and employees search (routes 16-17 of the contract)."""

from __future__ import annotations

from typing import Any, TypeVar

from bitrix_mail_async import _args, errors
from bitrix_mail_async.models import Contact, Employee
from bitrix_mail_async.pagination import Pager
from bitrix_mail_async.resources._base import Resource

__all__ = ["Recipients"]

_MAX_PAGE = 200
_DEFAULT_PAGE = 50
T = TypeVar("T")


def _require_query(query: object, where: str) -> None:
    # The gateway rejects an employee search without at least one character.
    if query is None or (isinstance(query, str) and not query.strip()):
        raise errors.InvalidArgumentError(f"query is required for {where}")


class Recipients(Resource):
    """``mail.recipients``: address book searches for composing messages."""

    __slots__ = ()

    def _body(self, query: str | None, limit: int | None, offset: int) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if query is not None:
            body["query"] = _args.single_line("query", query)
        if limit is not None:
            body["limit"] = _args.page_size("limit", limit, _MAX_PAGE)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise errors.InvalidArgumentError("offset must be an int >= 0")
        if offset:
            body["offset"] = offset
        return body

    async def contacts(
        self,
        query: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> list[Contact]:
        """CRM contacts matching ``query`` (the latest ones without it); one page.

        Example: ``people = await mail.recipients.contacts("smith")``.
        """
        body = self._body(query, limit, offset)
        return await self._search("/mail/recipients/contacts", Contact, json=body, timeout=timeout)

    async def employees(
        self,
        query: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> list[Employee]:
        """Employees matching ``query`` (required, at least one character); one page.

        Example: ``team = await mail.recipients.employees("ann")``.
        """
        _require_query(query, "employees()")
        body = self._body(query, limit, offset)
        return await self._search(
            "/mail/recipients/employees", Employee, json=body, timeout=timeout
        )

    def _pager(
        self, path: str, item: type[T], query: str | None, page_size: int | None
    ) -> Pager[T]:
        size = _args.page_size("page_size", page_size or _DEFAULT_PAGE, _MAX_PAGE)
        filters = self._body(query, None, 0)
        return self._pages(Pager, "POST", path, item, filters=filters, page_size=size)

    def iter_contacts(
        self, query: str | None = None, *, page_size: int | None = None
    ) -> Pager[Contact]:
        """All matching CRM contacts, paged: ``async for c in mail.recipients.iter_contacts()``."""
        return self._pager("/mail/recipients/contacts", Contact, query, page_size)

    def iter_employees(self, query: str, *, page_size: int | None = None) -> Pager[Employee]:
        """All matching employees, paged: ``async for e in mail.recipients.iter_employees("a")``."""
        _require_query(query, "iter_employees()")
        return self._pager("/mail/recipients/employees", Employee, query, page_size)
