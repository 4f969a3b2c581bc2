"""Async paging over the gateway's offset-paged lists (messages, contacts, employees).

A walk ends on the contract's signals (``hasMore: false``; without it ``total`` reached, or a
page shorter than ``limit``) and, whatever a gateway claims, on one of these bounds:

- an empty page: nothing more can come from further on;
- a page that brings no item the previous page did not have (a gateway that ignores
  ``offset``): when that page is shorter than ``limit`` the whole list was seen, so the walk
  ends with a WARNING; when it is full, more items may exist that this walk cannot reach, so
  it raises :class:`errors.DecodeError` rather than end silently short;
- :data:`MAX_PAGES` pages read while the gateway still says more: :class:`errors.DecodeError`.

A short page with ``hasMore: true`` does not end the walk: a gateway that caps ``limit``
lower than asked returns exactly such pages, and ending there would lose the rest silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Final, Generic, TypeVar

from bitrix_mail_async import errors
from bitrix_mail_async._envelope import Call, Reply, decode_page
from bitrix_mail_async.models import MessageSummary, Page

__all__ = ["MAX_PAGES", "MessagePager", "Pager"]

T = TypeVar("T")

log = logging.getLogger("bitrix_mail_async.transport")

#: Fetches one page for (offset, limit): the answer's ``data``, ``meta`` and headers.
FetchFn = Callable[[int, int], Awaitable[Reply]]

#: Pages one walk reads at most (2,000,000 messages at 200 a page): a bound against a gateway
#: that answers ``hasMore: true`` with new items forever. Past it the walk raises DecodeError.
MAX_PAGES: Final = 10_000


def _keys(items: list[Any]) -> frozenset[Any] | None:
    """The items' ids, when every item has an int ``id`` (all the gateway's lists do)."""
    keys = [getattr(item, "id", None) for item in items]
    if all(isinstance(key, int) for key in keys):
        return frozenset(keys)
    return None


class Pager(Generic[T]):
    """Lazily pages through an offset-paged list: ``async for item in pager`` / ``await pager``.

    Only one page (and the previous page's ids) is held at a time: memory O(page). Paging
    stops when the gateway says ``hasMore: false``, when ``total`` is reached, or, without
    either, at the first page shorter than the page size (REST 3.0's rule); an empty page, a
    page of items all seen on the previous one, and :data:`MAX_PAGES` bound any walk (see the
    module docstring). Items added or removed while paging may shift offsets, as with any
    offset paging; ``async for`` skips an item the previous page already gave.
    """

    def __init__(
        self,
        fetch: FetchFn,
        item_type: type[T],
        *,
        page_size: int,
        call: Call,
        max_pages: int | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._fetch = fetch
        # Counts a walk's own errors (a page that cannot be decoded, a walk that cannot end)
        # in the client's stats.errors, as the pipeline counts the errors of its attempts.
        self._on_error = on_error
        self._item_type = item_type
        self._page_size = page_size
        self._call = call
        self._max_pages = MAX_PAGES if max_pages is None else max_pages

    @property
    def page_size(self) -> int:
        """Items requested per page."""
        return self._page_size

    async def fetch_page(self, offset: int) -> Page[T]:
        """Fetch and decode the page that starts at ``offset``."""
        reply = await self._fetch(offset, self._page_size)
        try:
            return decode_page(
                self._call, reply, self._item_type, offset=offset, limit=self._page_size
            )
        except errors.DecodeError as exc:
            failed = errors.detached(exc)
        raise self._error(failed)

    async def first_page(self) -> Page[T]:
        """The first page only."""
        return await self.fetch_page(0)

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self.first_page().__await__()

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield every page in order, fetching each only when the previous one was consumed."""
        offset = 0
        previous: Page[T] | None = None
        previous_keys: frozenset[Any] | None = None
        read = 0
        while True:
            page = await self.fetch_page(offset)
            read += 1
            keys = _keys(page.items)
            if (
                previous is not None
                and page.items
                and self._no_progress(page, keys, previous, previous_keys)
            ):
                self._repeated(page)
                return
            yield page
            if not page.has_more:
                return
            if read >= self._max_pages:
                raise self._error(
                    f"read {read} pages and the gateway still says more: stopped at this "
                    "bound; narrow the query (dates, filters) or ask for bigger pages"
                )
            offset += len(page.items)
            previous, previous_keys = page, keys

    @staticmethod
    def _no_progress(
        page: Page[T],
        keys: frozenset[Any] | None,
        previous: Page[T],
        previous_keys: frozenset[Any] | None,
    ) -> bool:
        if keys is not None and previous_keys is not None:
            return keys <= previous_keys
        return page.items == previous.items

    def _repeated(self, page: Page[T]) -> None:
        if len(page.items) >= self._page_size:
            raise self._error(
                f"the page at offset {page.offset} holds only items of the previous page: "
                "the gateway ignores offset (or the list shifted by a whole page meanwhile), "
                "so the rest of the list cannot be read"
            )
        log.warning(
            "%s %s: the page at offset %d holds only items of the previous page; the walk "
            "ends there (the gateway ignores offset, or the list shifted meanwhile)",
            self._call.method,
            self._call.path,
            page.offset,
        )

    def _error(self, failure: str | errors.DecodeError) -> errors.DecodeError:
        """The walk's error (counted in the client's stats)."""
        if self._on_error is not None:
            self._on_error()
        if isinstance(failure, errors.DecodeError):
            return failure
        return errors.DecodeError(failure, method=self._call.method, path=self._call.path)

    async def _iter_items(self) -> AsyncIterator[T]:
        previous: frozenset[Any] = frozenset()
        async for page in self.pages():
            for item in page.items:
                # An item shifted in from the previous page (mail arrived meanwhile) is not
                # given twice.
                if getattr(item, "id", None) not in previous:
                    yield item
            previous = _keys(page.items) or frozenset()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iter_items()

    async def collect(self) -> list[T]:
        """Every item of every page in one list (mind the memory for big mailboxes)."""
        return [item async for item in self]


class MessagePager(Pager[MessageSummary]):
    """Pager over a mailbox's messages, as returned by ``mail.messages.list(...)``.

    Example: ``async for msg in mail.messages.list(1, is_seen=False): print(msg.subject)``.
    """
