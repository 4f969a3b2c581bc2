"""Async paging over the gateway's offset-paged lists (messages, contacts, employees)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from bitrix_mail_async._envelope import Call, Reply, decode_page
from bitrix_mail_async.models import MessageSummary, Page

__all__ = ["MessagePager", "Pager"]

T = TypeVar("T")

#: Fetches one page for (offset, limit): the answer's ``data`` and ``meta``.
FetchFn = Callable[[int, int], Awaitable[Reply]]


class Pager(Generic[T]):
    """Lazily pages through an offset-paged list: ``async for item in pager`` / ``await pager``.

    Only one page is held at a time (memory O(page)). Paging stops when the gateway says
    ``hasMore: false``, when ``total`` is reached, or, without either, at the first page
    shorter than the page size (REST 3.0's rule). Items added or removed while paging may
    shift offsets, as with any offset paging.
    """

    def __init__(
        self,
        fetch: FetchFn,
        item_type: type[T],
        *,
        page_size: int,
        call: Call,
    ) -> None:
        self._fetch = fetch
        self._item_type = item_type
        self._page_size = page_size
        self._call = call

    @property
    def page_size(self) -> int:
        """Items requested per page."""
        return self._page_size

    async def fetch_page(self, offset: int) -> Page[T]:
        """Fetch and decode the page that starts at ``offset``."""
        reply = await self._fetch(offset, self._page_size)
        return decode_page(self._call, reply, self._item_type, offset=offset, limit=self._page_size)

    async def first_page(self) -> Page[T]:
        """The first page only."""
        return await self.fetch_page(0)

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self.first_page().__await__()

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield every page in order, fetching each only when the previous one was consumed."""
        offset = 0
        while True:
            page = await self.fetch_page(offset)
            yield page
            if not page.has_more:
                return
            offset += len(page.items)

    async def _iter_items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iter_items()

    async def collect(self) -> list[T]:
        """Every item of every page in one list (mind the memory for big mailboxes)."""
        return [item async for item in self]


class MessagePager(Pager[MessageSummary]):
    """Pager over a mailbox's messages, as returned by ``mail.messages.list(...)``.

    Example: ``async for msg in mail.messages.list(1, is_seen=False): print(msg.subject)``.
    """
