"""A typed Python client of the emulator's admin API, for a test in another process.

``EmulatorAdmin`` talks to a running ``bitrix-mail emulator`` (or any ``MailEmulator``) over
HTTP, so a test can drive an out-of-process bot with nothing but the emulator's URL::

    async with EmulatorAdmin("http://127.0.0.1:8080") as admin:
        await admin.reset()
        await admin.deliver(subject="Invoice 42", from_="Client <client@example.com>")
        effects = await admin.wait_for(lambda e: len(e.sent) >= 1)

The wire is described in :mod:`bitrix_mail_async.testing.admin`; every other language uses it
with curl.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import aiohttp

from bitrix_mail_async._convert import from_dict
from bitrix_mail_async.models import Message
from bitrix_mail_async.testing.admin import ADMIN_PREFIX, EFFECT_KINDS
from bitrix_mail_async.testing.log import EmulatorStats, RecordedRequest

__all__ = ["AdminAPIError", "EmulatorAdmin", "SideEffects"]

_CAMEL: Final = re.compile(r"(?<!^)(?=[A-Z])")


class AdminAPIError(Exception):
    """The admin API refused a request: its HTTP status and the reason it gave."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class SideEffects:
    """What the emulator's portal was asked to do, oldest first, each in its wire shape.

    ``sent`` holds sends, replies and forwards (``kind``, ``messageId`` of the copy in "Sent",
    ``request``: the JSON body as sent); the others hold the created object's id,
    ``messageId`` and ``request``.
    """

    sent: tuple[dict[str, Any], ...] = ()
    tasks: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    chats: tuple[dict[str, Any], ...] = ()
    feed_posts: tuple[dict[str, Any], ...] = ()
    crm_activities: tuple[dict[str, Any], ...] = ()
    moves: tuple[dict[str, Any], ...] = ()


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _root(url: str) -> str:
    """The emulator's root URL from its root, its base URL (``.../v1``) or its admin URL."""
    root = url.rstrip("/")
    for suffix in ("/v1", ADMIN_PREFIX):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root


def _fields(cls: type[Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    # Fields a newer emulator adds are ignored, so an older helper keeps working.
    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in ((_snake(k), v) for k, v in payload.items()) if k in known}


class EmulatorAdmin:
    """The admin API of an emulator at ``url`` (its root, base URL or admin URL).

    ``session``: an ``aiohttp.ClientSession`` the caller owns (else one is made and closed
    by :meth:`aclose` / ``async with``).
    """

    def __init__(
        self, url: str, *, session: aiohttp.ClientSession | None = None, timeout: float = 30.0
    ) -> None:
        self.url = _root(url) + ADMIN_PREFIX
        self._session = session
        self._owned = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def __aenter__(self) -> EmulatorAdmin:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session if this helper made it."""
        session, self._session = self._session, None
        if session is not None and self._owned:
            await session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        if self._session is None:
            if not self._owned:
                raise RuntimeError("the EmulatorAdmin is closed")
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.request(
            method, self.url + path, json=json, params=params
        ) as answer:
            payload = await answer.json(content_type=None)
            if answer.status >= 400:
                reason = payload.get("error") if isinstance(payload, dict) else payload
                raise AdminAPIError(answer.status, str(reason))
            return payload

    async def info(self) -> dict[str, Any]:
        """What runs: mailboxes, folders, limits, faults, the admin routes."""
        result: dict[str, Any] = await self._call("GET", "/")
        return result

    async def deliver(
        self,
        *,
        mailbox_id: int = 1,
        subject: str | None = None,
        body: str | None = None,
        from_: str | None = None,
        to: str | Sequence[str] | None = None,
        cc: str | Sequence[str] | None = None,
        folder: str | None = None,
        date: datetime | str | None = None,
        is_seen: bool | None = None,
        has_attachments: bool | None = None,
        thread_of: int | None = None,
    ) -> Message:
        """Deliver a message now (dated ``date``: past or future, else the emulator's now)."""
        fields: dict[str, Any] = {
            "mailboxId": mailbox_id,
            "subject": subject,
            "body": body,
            "from": from_,
            "to": to if to is None or isinstance(to, str) else list(to),
            "cc": cc if cc is None or isinstance(cc, str) else list(cc),
            "folder": folder,
            "date": date.isoformat() if isinstance(date, datetime) else date,
            "isSeen": is_seen,
            "hasAttachments": has_attachments,
            "threadOf": thread_of,
        }
        sent = {k: v for k, v in fields.items() if v is not None}
        return from_dict(await self._call("POST", "/messages", json=sent), Message)

    async def effects(self) -> SideEffects:
        """Every side effect so far, by kind."""
        payload = await self._call("GET", "/effects")
        return SideEffects(
            **{name: tuple(payload.get(field, ())) for field, name in EFFECT_KINDS.items()}
        )

    async def wait_for(
        self,
        condition: Callable[[SideEffects], bool],
        *,
        timeout: float = 30.0,
        interval: float = 0.05,
    ) -> SideEffects:
        """Poll :meth:`effects` until ``condition`` holds; ``TimeoutError`` after ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                effects = await self.effects()
                if condition(effects):
                    return effects
                await asyncio.sleep(interval)

    async def requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        fault: str | None = None,
        limit: int | None = None,
    ) -> list[RecordedRequest]:
        """The request log, oldest first (``path`` relative to ``/v1``; ``limit``: the last N)."""
        query = {
            "method": method,
            "path": path,
            "pathPrefix": path_prefix,
            "status": status,
            "fault": fault,
            "limit": limit,
        }
        params = {k: str(v) for k, v in query.items() if v is not None}
        payload = await self._call("GET", "/requests", params=params)
        return [RecordedRequest(**_fields(RecordedRequest, item)) for item in payload["items"]]

    async def stats(self) -> EmulatorStats:
        """The emulator's counters."""
        payload = await self._call("GET", "/stats")
        counters = EmulatorStats(**_fields(EmulatorStats, payload))
        counters.by_status = Counter({int(k): v for k, v in payload.get("byStatus", {}).items()})
        return counters

    async def reset(self, *, portal: bool = True) -> None:
        """Start afresh, configuration kept; ``portal=False`` keeps the portal's messages."""
        await self._call("POST", "/reset", json={"portal": portal})
