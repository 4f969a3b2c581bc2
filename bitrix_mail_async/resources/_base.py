"""What every resource shares: route declarations over the pipeline, decoding by ``cast_to``.

A resource method checks its arguments and declares its route, e.g.
``return await self._get(f"/mail/messages/{mid}", Message, unwrap="item")``; the helpers
here send it through the pipeline (limiter, retries, typed errors) and decode the answer's
``data`` with :mod:`bitrix_mail_async._envelope`. Resources never touch aiohttp, JSON,
retries or envelopes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Literal, Self, TypeVar

from bitrix_mail_async._envelope import Call, Reply, Unwrap, decoder_for
from bitrix_mail_async._pipeline import Pipeline
from bitrix_mail_async.pagination import Pager

T = TypeVar("T")
P = TypeVar("P", bound=Pager[Any])


class Resource:
    """Base of the resources: holds the pipeline, never touches aiohttp."""

    __slots__ = ("_pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def bound_to(self, pipeline: Pipeline) -> Self:
        """This resource, with its other settings, sending through ``pipeline`` (a view's)."""
        clone = copy.copy(self)
        clone._pipeline = pipeline
        return clone

    async def _get(
        self,
        path: str,
        cast_to: type[T],
        *,
        unwrap: Unwrap = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> T:
        """GET one object and decode it (``unwrap="item"`` accepts ``{"item": {...}}``)."""
        decoder = decoder_for(cast_to, "item" if unwrap == "item" else "bare")
        reply = await self._pipeline.request(
            "GET", path, params=params, timeout=timeout, decoder=decoder
        )
        parsed: T = reply.parsed
        return parsed

    async def _get_list(
        self,
        path: str,
        cast_to: type[T],
        *,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[T]:
        """GET a list (a bare array or ``{"items": [...]}``) and decode every item."""
        decoder = decoder_for(cast_to, "list")
        reply = await self._pipeline.request(
            "GET", path, params=params, timeout=timeout, decoder=decoder
        )
        parsed: list[T] = reply.parsed
        return parsed

    async def _post(
        self,
        path: str,
        cast_to: type[T],
        *,
        json: Mapping[str, Any],
        timeout: float | None = None,
    ) -> T:
        """POST a call with a side effect (never repeated once it may have been applied).

        Its answer is decoded inside the attempt: one that does not fit ``cast_to`` is an
        unreadable 2xx, which the retry rules turn into ``OutcomeUnknownDecodeError``.
        """
        decoder = decoder_for(cast_to, "bare")
        reply = await self._pipeline.request(
            "POST", path, json=json, timeout=timeout, decoder=decoder
        )
        parsed: T = reply.parsed
        return parsed

    async def _search(
        self,
        path: str,
        cast_to: type[T],
        *,
        json: Mapping[str, Any],
        timeout: float | None = None,
    ) -> list[T]:
        """POST a read-only search (retried like a GET) and decode its list."""
        decoder = decoder_for(cast_to, "list")
        reply = await self._pipeline.request(
            "POST", path, json=json, timeout=timeout, idempotent=True, decoder=decoder
        )
        parsed: list[T] = reply.parsed
        return parsed

    def _pages(
        self,
        pager_class: type[P],
        method: Literal["GET", "POST"],
        path: str,
        cast_to: type[Any],
        *,
        filters: Mapping[str, Any],
        page_size: int,
        timeout: float | None = None,
        on_reply: Callable[[Reply], None] | None = None,
    ) -> P:
        """A pager over an offset-paged list: GET pages in the query, POST searches in the body.

        ``on_reply`` sees each page's answer (its headers: a watcher reads the gateway's time).
        """
        pipeline = self._pipeline
        # Decodes nothing itself (the pager does, with decode_page) unless the fast lane can
        # take the page from its bytes.
        decoder = decoder_for(cast_to, "page")

        async def fetch(offset: int, limit: int) -> Reply:
            if method == "GET":
                query = {**filters, "limit": str(limit), "offset": str(offset)}
                reply = await pipeline.request(
                    "GET", path, params=query, timeout=timeout, decoder=decoder
                )
            else:
                body = {**filters, "limit": limit, "offset": offset}
                reply = await pipeline.request(
                    "POST", path, json=body, timeout=timeout, idempotent=True, decoder=decoder
                )
            if on_reply is not None:
                on_reply(reply)
            return reply

        return pager_class(
            fetch,
            cast_to,
            page_size=page_size,
            call=Call(method, path),
            on_error=pipeline.count_error,
        )
