"""Messages: read, send, move, and objects created from a message (routes 4-15)."""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, Final, Literal, get_args, overload
from zoneinfo import ZoneInfo

from bitrix_mail_async import _args, errors
from bitrix_mail_async._config import check_timeout
from bitrix_mail_async._envelope import Reply
from bitrix_mail_async._pipeline import Pipeline
from bitrix_mail_async.models import Message, MessageSummary, MoveResult, Sender, SendResult
from bitrix_mail_async.pagination import MessagePager
from bitrix_mail_async.resources._bulk import check_ids, fetch_in_order
from bitrix_mail_async.resources._replies import SenderCache, prefixed, sender_for
from bitrix_mail_async.resources._watch import (
    DEFAULT_LOOKBACK,
    DEFAULT_OVERLAP,
    DEFAULT_SWEEP_INTERVAL,
    Checkpoint,
    MessageWatcher,
    WatchOptions,
)
from bitrix_mail_async.resources.objects import MessageObjects

__all__ = ["MAX_MOVE_IDS", "Messages", "MoveAction"]

_DEFAULT_PAGE = 25
_MAX_PAGE = 200
_MAX_THREAD = 50
#: What ``move()`` does with the messages (the contract's ``action`` values).
MoveAction = Literal["move", "spam", "delete"]
_MOVE_ACTIONS: Final = get_args(MoveAction)
#: Ids one ``move()`` call takes. The contract states no maximum: this is the client's own
#: bound on one call's work (Bitrix24 must finish a request within 60 s); split longer lists.
MAX_MOVE_IDS: Final = 100

Recipients = str | Sequence[str]
DateLike = datetime | str


def _compose(
    from_: object,
    to: object,
    subject: object,
    body: object,
    cc: object,
    bcc: object,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "from": _args.single_line("from_", from_),
        "to": _args.recipients("to", to, required=True),
        "subject": _args.single_line("subject", subject, allow_empty=True),
        "body": _args.text("body", body, allow_empty=True),
    }
    cc_list = _args.recipients("cc", cc, required=False)
    bcc_list = _args.recipients("bcc", bcc, required=False)
    if cc_list:
        payload["cc"] = cc_list
    if bcc_list:
        payload["bcc"] = bcc_list
    return payload


class Messages(MessageObjects):
    """``mail.messages``: list/get/thread, send/reply/forward/move, create task/event/chat/...

    Sending calls are never retried once the request may have reached the gateway: a failure
    then raises :class:`errors.OutcomeUnknownError` instead of risking a duplicate message.
    """

    __slots__ = ("_portal_timezone", "_senders")

    def __init__(self, pipeline: Pipeline, *, portal_timezone: ZoneInfo | None = None) -> None:
        super().__init__(pipeline)
        self._portal_timezone = portal_timezone
        # Shared by the views of this client (bound_to copies the resource, not the cache).
        self._senders = SenderCache()

    def list(
        self,
        mailbox_id: int,
        *,
        folder: str | None = None,
        is_seen: bool | None = None,
        has_attachments: bool | None = None,
        search: str | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> MessagePager:
        """A lazy pager over a mailbox's messages (not a coroutine; arguments checked now).

        Example: ``async for msg in mail.messages.list(1, is_seen=False): ...``;
        ``page = await mail.messages.list(1, page_size=5)`` gives the first page.
        """
        params: dict[str, str] = {"mailboxId": str(_args.positive_id("mailbox_id", mailbox_id))}
        if folder is not None:
            params["folder"] = _args.single_line("folder", folder)
        if is_seen is not None:
            params["isSeen"] = _args.flag("is_seen", is_seen)
        if has_attachments is not None:
            params["hasAttachments"] = _args.flag("has_attachments", has_attachments)
        if search is not None:
            params["searchQuery"] = _args.single_line("search", search)
        if date_from is not None:
            params["dateFrom"] = _args.iso_datetime("date_from", date_from)
        if date_to is not None:
            params["dateTo"] = _args.iso_datetime("date_to", date_to)
        size = _args.page_size(
            "page_size", _DEFAULT_PAGE if page_size is None else page_size, _MAX_PAGE
        )
        return self._message_pager(params, size, timeout)

    def _message_pager(
        self,
        params: dict[str, str],
        size: int,
        timeout: float | None,
        on_reply: Callable[[Reply], None] | None = None,
    ) -> MessagePager:
        return self._pages(
            MessagePager,
            "GET",
            "/mail/messages",
            MessageSummary,
            filters=params,
            page_size=size,
            timeout=timeout,
            on_reply=on_reply,
        )

    async def get(self, message_id: int, *, timeout: float | None = None) -> Message:
        """One message with its body. Example: ``msg = await mail.messages.get(1001)``."""
        mid = _args.positive_id("message_id", message_id)
        return await self._get(f"/mail/messages/{mid}", Message, unwrap="item", timeout=timeout)

    async def thread(
        self, message_id: int, *, limit: int | None = None, timeout: float | None = None
    ) -> builtins.list[Message]:
        """The conversation a message belongs to (dates are naive: the wire has no offset).

        Example: ``for m in await mail.messages.thread(1001, limit=10): print(m.subject)``.
        """
        mid = _args.positive_id("message_id", message_id)
        params: dict[str, str] = {}
        if limit is not None:
            params["limit"] = str(_args.page_size("limit", limit, _MAX_THREAD))
        return await self._get_list(
            f"/mail/messages/{mid}/thread", Message, params=params or None, timeout=timeout
        )

    async def send(
        self,
        *,
        from_: str,
        to: Recipients,
        subject: str,
        body: str,
        cc: Recipients | None = None,
        bcc: Recipients | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send a new message; ``from_`` is a sender string such as ``"Ann <ann@x.io>"``.

        Example: ``await mail.messages.send(from_=s, to=["bob@x.io"], subject="Hi", body="...")``.
        """
        payload = _compose(from_, to, subject, body, cc, bcc)
        return await self._post("/mail/messages", SendResult, json=payload, timeout=timeout)

    async def _send_about(
        self,
        message_id: int,
        route: str,
        id_field: str,
        payload: dict[str, Any],
        timeout: float | None,
    ) -> SendResult:
        # reply/forward: the send body plus the source message's id, in the path and the body.
        mid = _args.positive_id("message_id", message_id)
        payload[id_field] = mid
        path = f"/mail/messages/{mid}/{route}"
        return await self._post(path, SendResult, json=payload, timeout=timeout)

    async def reply(
        self,
        message_id: int,
        *,
        body: str,
        from_: str | None = None,
        to: Recipients | None = None,
        subject: str | None = None,
        cc: Recipients | None = None,
        bcc: Recipients | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Reply to a message; ``to``, ``subject`` and ``from_`` default from the original.

        ``to``: the original's sender; ``subject``: "Re: " and the original's (never twice);
        ``from_``: the mailbox's own sender (:mod:`._replies`). The defaults cost one
        ``messages.get`` when ``to`` or ``subject`` is missing, and one ``senders`` call per
        mailbox and client (then kept) when ``from_`` is. Example:
        ``await mail.messages.reply(1001, body="Thanks, done.")``.
        """
        mid, given = self._answer_arguments(message_id, from_, to, subject, body, cc, bcc)
        if to is None or subject is None or from_ is None:
            original = await self.get(mid, timeout=timeout)
            to = original.from_ if to is None else to
            subject = prefixed("Re:", original.subject) if subject is None else subject
            from_ = await self._default_sender(original, timeout) if from_ is None else from_
        payload = _compose(from_, to, subject, given, cc, bcc)
        return await self._send_about(mid, "reply", "replyToMessageId", payload, timeout)

    async def forward(
        self,
        message_id: int,
        *,
        to: Recipients,
        body: str = "",
        from_: str | None = None,
        subject: str | None = None,
        cc: Recipients | None = None,
        bcc: Recipients | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Forward a message to ``to``; ``subject`` and ``from_`` default from the original.

        ``subject``: "Fwd: " and the original's (never twice); ``from_``: the mailbox's own
        sender. The defaults cost one ``messages.get`` when either is missing, and one
        ``senders`` call per mailbox and client (then kept) for ``from_``. Example:
        ``await mail.messages.forward(1001, to="boss@example.com", body="FYI")``.
        """
        mid, given = self._answer_arguments(message_id, from_, to, subject, body, cc, bcc)
        if subject is None or from_ is None:
            original = await self.get(mid, timeout=timeout)
            subject = prefixed("Fwd:", original.subject) if subject is None else subject
            from_ = await self._default_sender(original, timeout) if from_ is None else from_
        payload = _compose(from_, to, subject, given, cc, bcc)
        return await self._send_about(mid, "forward", "forwardMessageId", payload, timeout)

    @staticmethod
    def _answer_arguments(
        message_id: object,
        from_: object,
        to: object,
        subject: object,
        body: object,
        cc: object,
        bcc: object,
    ) -> tuple[int, str]:
        """Check what reply/forward were given, before any default is looked up or anything sent."""
        mid = _args.positive_id("message_id", message_id)
        if from_ is not None:
            _args.single_line("from_", from_)
        if to is not None:
            _args.recipients("to", to, required=True)
        if subject is not None:
            _args.single_line("subject", subject, allow_empty=True)
        _args.recipients("cc", cc, required=False)
        _args.recipients("bcc", bcc, required=False)
        return mid, _args.text("body", body, allow_empty=True)

    async def _default_sender(self, original: Message, timeout: float | None) -> str:
        """The mailbox's own sender, asked once per mailbox and session, then kept."""
        if original.mailbox_id is None:
            raise errors.InvalidArgumentError(
                f"message {original.id} names no mailbox to answer from: pass from_="
            )
        session = self._pipeline.session_scope
        kept = self._senders.get(session, original.mailbox_id)
        if kept is not None:
            return kept
        path = f"/mail/mailboxes/{original.mailbox_id}/senders"
        sender = sender_for(original, await self._get_list(path, Sender, timeout=timeout))
        self._senders.put(session, original.mailbox_id, sender)
        return sender

    async def move(
        self,
        message_ids: Sequence[int] | AbstractSet[int],
        *,
        action: MoveAction = "move",
        folder: str | None = None,
        timeout: float | None = None,
    ) -> MoveResult:
        """Move messages (one mailbox and folder per call) to ``folder``, to spam, or delete them.

        ``message_ids`` is a list, tuple or set of 1 to :data:`MAX_MOVE_IDS` (100) ids.
        Example: ``await mail.messages.move([1001, 1002], folder="Archive")``.
        """
        ids = _args.id_collection("message_ids", message_ids, maximum=MAX_MOVE_IDS)
        if action not in _MOVE_ACTIONS:
            raise errors.InvalidArgumentError(
                f"action must be one of {', '.join(_MOVE_ACTIONS)}, got {action!r}"
            )
        payload: dict[str, Any] = {"messageIds": ids, "action": action}
        if action == "move":
            if folder is None:
                raise errors.InvalidArgumentError("folder is required when action is 'move'")
            payload["folder"] = _args.single_line("folder", folder)
        elif folder is not None:
            raise errors.InvalidArgumentError(
                f"folder is only used with action 'move', not {action!r}"
            )
        return await self._post("/mail/messages/move", MoveResult, json=payload, timeout=timeout)

    def watch(
        self,
        mailbox_id: int,
        *,
        folder: str | None = None,
        is_seen: bool | None = None,
        poll_interval: float = 30.0,
        checkpoint: str | os.PathLike[str] | Checkpoint | None = None,
        since: DateLike | None = None,
        overlap: float = DEFAULT_OVERLAP,
        lookback: float = DEFAULT_LOOKBACK,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        timeout: float | None = None,
    ) -> MessageWatcher:
        """Every message that arrives in a mailbox, once, oldest first, by polling the list.

        Not a coroutine: arguments are checked now, polling starts with the iteration.
        Guarantee: every message dated no more than ``lookback`` seconds (3 days) before it
        arrives is yielded exactly once, across restarts with the same checkpoint; after a
        crash at most the message being handled is yielded again; mail dated more than
        ``lookback`` before it arrives is never yielded (raise ``lookback`` to widen that).
        A poll every ``poll_interval`` s reads from the newest date handled (never past the
        gateway's "now") less ``overlap`` s; a sweep every ``sweep_interval`` s (15 min)
        reads back ``lookback`` for late and future-dated mail. ``checkpoint`` (a JSON file
        path or an object with ``async load()``/``async save(state)``) moves past a message
        when the loop asks for the next one or at ``await watcher.commit()``;
        ``watcher.stop()`` ends the iteration after committing. Without a checkpoint the watch
        starts at ``since`` (an aware datetime) or now. 429s, 5xx, timeouts and outages are
        waited out; authentication, permission and not-found errors, and a 400 on the first
        poll, end it.
        Example: ``async for msg in mail.messages.watch(1, checkpoint="bot.json"): ...``.
        """
        options = WatchOptions.checked(
            mailbox_id,
            folder=folder,
            is_seen=is_seen,
            poll_interval=poll_interval,
            overlap=overlap,
            lookback=lookback,
            sweep_interval=sweep_interval,
            checkpoint=checkpoint,
            since=since,
        )
        if timeout is not None:
            check_timeout(timeout, error=errors.InvalidArgumentError)
        params: dict[str, str] = {"mailboxId": str(options.mailbox_id)}
        if options.folder is not None:
            params["folder"] = options.folder
        if options.is_seen is not None:
            params["isSeen"] = "true" if options.is_seen else "false"

        def list_from(
            date_from: datetime, date_to: datetime | None, on_reply: Callable[[Reply], None]
        ) -> MessagePager:
            query = {**params, "dateFrom": date_from.isoformat()}
            if date_to is not None:
                query["dateTo"] = date_to.isoformat()
            return self._message_pager(query, _MAX_PAGE, timeout, on_reply)

        transport = self._pipeline.transport
        return MessageWatcher(list_from, options, is_closed=lambda: transport.closed)

    @overload
    def get_many(
        self,
        ids: Iterable[int] | AsyncIterable[int],
        *,
        return_exceptions: Literal[False] = False,
        timeout: float | None = None,
    ) -> AsyncGenerator[Message, None]: ...

    @overload
    def get_many(
        self,
        ids: Iterable[int] | AsyncIterable[int],
        *,
        return_exceptions: bool,
        timeout: float | None = None,
    ) -> AsyncGenerator[Message | errors.MailError, None]: ...

    def get_many(
        self,
        ids: Iterable[int] | AsyncIterable[int],
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> AsyncGenerator[Message, None] | AsyncGenerator[Message | errors.MailError, None]:
        """Fetch many messages, yielded in the order of ``ids``, ``max_concurrency`` at a time.

        Not a coroutine. ``ids`` is any iterable or async iterable (even endless), read only
        as calls finish, so memory stays bounded by the window. A list, tuple, set or range
        is checked whole before anything is sent. With ``return_exceptions=True`` an id whose
        call failed yields its :class:`errors.MailError` in its place.
        Example: ``async for msg in mail.messages.get_many([1001, 1002]): print(msg.subject)``.
        """
        source = check_ids(ids)
        if timeout is not None:
            check_timeout(timeout, error=errors.InvalidArgumentError)

        def fetch(message_id: int) -> Any:
            return self.get(message_id, timeout=timeout)

        return fetch_in_order(
            source,
            fetch,
            size=self._pipeline.concurrency.maximum,
            return_exceptions=return_exceptions,
        )
