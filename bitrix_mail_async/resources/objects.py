"""Objects created from a message (routes 11-15): task, calendar event, chat, feed post, CRM.

A mixin of :class:`~bitrix_mail_async.resources.messages.Messages`, whose public names these
methods keep (``mail.messages.create_task``); a file of their own keeps that class readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bitrix_mail_async import _args
from bitrix_mail_async.models import (
    CalendarEventCreated,
    ChatCreated,
    CrmActivityCreated,
    FeedPostCreated,
    TaskCreated,
)
from bitrix_mail_async.resources._base import Resource

__all__ = ["MessageObjects"]

T = TypeVar("T")
DateLike = datetime | str


class MessageObjects(Resource):
    """``mail.messages.create_*``: objects made from a message; side effects, never repeated."""

    __slots__ = ()
    _portal_timezone: ZoneInfo | None

    async def _create(
        self,
        message_id: int,
        route: str,
        fields: dict[str, Any],
        model: type[T],
        timeout: float | None,
    ) -> T:
        mid = _args.positive_id("message_id", message_id)
        payload = {"messageId": mid, **{k: v for k, v in fields.items() if v is not None}}
        return await self._post(
            f"/mail/messages/{mid}/{route}", model, json=payload, timeout=timeout
        )

    async def create_task(
        self,
        message_id: int,
        *,
        title: str | None = None,
        responsible_id: int | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> TaskCreated:
        """Create a task from a message (title defaults to its subject).

        Example: ``task = await mail.messages.create_task(1001, responsible_id=7)``.
        """
        fields = {
            "title": None if title is None else _args.single_line("title", title),
            "responsibleId": None
            if responsible_id is None
            else _args.positive_id("responsible_id", responsible_id),
            "description": None if description is None else _args.text("description", description),
        }
        return await self._create(message_id, "task", fields, TaskCreated, timeout)

    async def create_calendar_event(
        self,
        message_id: int,
        *,
        date_from: DateLike,
        date_to: DateLike,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> CalendarEventCreated:
        """Create a calendar event from a message; times go out as ``Y-m-d H:i:s``, portal-local.

        The wire has no zone: a naive ``datetime`` (or a ``'YYYY-MM-DD HH:MM:SS'`` or ISO 8601
        str without offset) is sent as is; an aware one (or a str with an offset) is converted
        to ``MailClient(portal_timezone=...)`` and refused without it. Seconds precision; an
        end before the start is refused.
        Example: ``await mail.messages.create_calendar_event(1001, date_from=a, date_to=b)``.
        """
        start, end = _args.calendar_range(date_from, date_to, self._portal_timezone)
        fields = {
            "dateFrom": start,
            "dateTo": end,
            "name": None if name is None else _args.single_line("name", name),
            "description": None if description is None else _args.text("description", description),
        }
        return await self._create(
            message_id, "calendar-event", fields, CalendarEventCreated, timeout
        )

    async def create_chat(self, message_id: int, *, timeout: float | None = None) -> ChatCreated:
        """Open (or find) the chat about a message; ``existing`` tells which.

        Example: ``chat = await mail.messages.create_chat(1001)``.
        """
        return await self._create(message_id, "chat", {}, ChatCreated, timeout)

    async def create_feed_post(
        self, message_id: int, *, title: str | None = None, timeout: float | None = None
    ) -> FeedPostCreated:
        """Post a message to the feed. Example: ``await mail.messages.create_feed_post(1001)``."""
        fields = {"title": None if title is None else _args.single_line("title", title)}
        return await self._create(message_id, "feed-post", fields, FeedPostCreated, timeout)

    async def create_crm_activity(
        self, message_id: int, *, timeout: float | None = None
    ) -> CrmActivityCreated:
        """Log a message in the CRM. Example: ``await mail.messages.create_crm_activity(1001)``."""
        return await self._create(message_id, "crm-activity", {}, CrmActivityCreated, timeout)
