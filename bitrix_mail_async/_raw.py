"""Raw responses: ``mail.with_raw_response.<resource>.<method>(...)`` → :class:`RawResponse`.

Owns :class:`RawResponse`, the raw views of the resources and the one mechanism behind them.
A raw method is the ordinary method run inside :func:`raw`: the wrapper opens a capture in a
context variable, :meth:`Pipeline.request <bitrix_mail_async._pipeline.Pipeline.request>`
hands every reply it returns to :func:`note`, and the wrapper pairs the last reply with the
method's own (parsed) result. So a raw method is one line per endpoint, takes exactly the
arguments of the ordinary one (``ParamSpec``), and ``mypy --strict`` sees
``RawResponse[Message]`` for ``messages.get``; no method body, check or decoder is repeated.
(openai-python wraps its bound methods the same way; it marks the call with a header instead.)

Paging methods (``messages.list``, ``recipients.iter_*``) return a pager, not a coroutine: in
raw form they give the first page, ``RawResponse[Page[T]]``, the raw twin of ``await pager``.
A call that fetches several pages (``mailboxes.list``) shows its last answer.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import attrs

from bitrix_mail_async._envelope import REQUEST_ID_HEADERS, Reply, answer_request_id
from bitrix_mail_async.models import Page
from bitrix_mail_async.pagination import Pager

if TYPE_CHECKING:
    from bitrix_mail_async.client import MailClient
    from bitrix_mail_async.resources.mailboxes import Mailboxes
    from bitrix_mail_async.resources.messages import Messages
    from bitrix_mail_async.resources.recipients import Recipients

__all__ = [
    "REQUEST_ID_HEADERS",
    "RawClient",
    "RawMailboxes",
    "RawMessages",
    "RawRecipients",
    "RawResponse",
    "note",
    "raw",
    "raw_first_page",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: Headers read as the request id. The gateway documents none, so the common names are
#: tried in this order (headers are case-insensitive).


@attrs.frozen(kw_only=True)
class RawResponse(Generic[T]):
    """One answer as the gateway sent it, beside the model the ordinary call returns.

    ``status`` and ``headers`` (case-insensitive: ``X-RateLimit-Remaining``, ``Retry-After``,
    ...) are those of the successful answer after any retries; ``data`` is the envelope's
    ``data`` as plain JSON; ``parsed`` is what the ordinary method returns. Errors raise as
    usual. Example::

        raw = await mail.with_raw_response.messages.get(1001)
        print(raw.status, raw.headers.get("X-RateLimit-Remaining"), raw.parsed.subject)
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    data: Any = attrs.field(repr=False)
    parsed: T = attrs.field(repr=False)
    #: The ``X-Request-Id`` this client sent for the call.
    sent_request_id: str | None = attrs.field(default=None, repr=False)
    #: The envelope's ``meta`` (``total``, ``hasMore``, ``truncated``...) as plain JSON, or None.
    meta: Any = attrs.field(default=None, repr=False)

    @property
    def request_id(self) -> str | None:
        """The gateway's request id (``X-Request-Id``, ``Request-Id``, ``X-Correlation-Id``),
        else the one this client sent."""
        return answer_request_id(self.headers) or self.sent_request_id


class _Capture:
    """The reply a raw call is waiting for (the last one its pipeline returned)."""

    __slots__ = ("reply", "request_id")

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.request_id: str | None = None


_CAPTURE: ContextVar[_Capture | None] = ContextVar("bitrix_mail_async_raw", default=None)


def note(reply: Reply, request_id: str | None = None) -> None:
    """Hand a reply (and the id its call sent) to the raw call running in this context, if any."""
    capture = _CAPTURE.get()
    if capture is not None:
        capture.reply = reply
        capture.request_id = request_id


async def _captured(call: Awaitable[R]) -> RawResponse[R]:
    capture = _Capture()
    token = _CAPTURE.set(capture)
    try:
        parsed = await call
    finally:
        _CAPTURE.reset(token)
    reply = capture.reply
    if reply is None:  # every wrapped method sends at least one request
        raise RuntimeError("the call returned without an answer to show")
    return RawResponse(
        status=reply.status,
        headers=reply.headers,
        data=reply.data,
        parsed=parsed,
        sent_request_id=capture.request_id,
        meta=reply.meta,
    )


def raw(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[RawResponse[R]]]:
    """Wrap a coroutine method so that it returns ``RawResponse[R]`` instead of ``R``."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[R]:
        return await _captured(method(*args, **kwargs))

    return call


def raw_first_page(method: Callable[P, Pager[T]]) -> Callable[P, Awaitable[RawResponse[Page[T]]]]:
    """Wrap a pager method: its arguments are checked at once; awaiting gives the first page."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> Awaitable[RawResponse[Page[T]]]:
        pager = method(*args, **kwargs)
        return _captured(pager.first_page())

    return call


class RawMailboxes:
    """``mail.with_raw_response.mailboxes``: ``list``, ``get``, ``senders``."""

    def __init__(self, mailboxes: Mailboxes) -> None:
        self.list = raw(mailboxes.list)
        self.get = raw(mailboxes.get)
        self.senders = raw(mailboxes.senders)


class RawMessages:
    """``mail.with_raw_response.messages``: every message call; ``list`` gives the first page."""

    def __init__(self, messages: Messages) -> None:
        self.list = raw_first_page(messages.list)
        self.get = raw(messages.get)
        self.thread = raw(messages.thread)
        self.send = raw(messages.send)
        self.reply = raw(messages.reply)
        self.forward = raw(messages.forward)
        self.move = raw(messages.move)
        self.create_task = raw(messages.create_task)
        self.create_calendar_event = raw(messages.create_calendar_event)
        self.create_chat = raw(messages.create_chat)
        self.create_feed_post = raw(messages.create_feed_post)
        self.create_crm_activity = raw(messages.create_crm_activity)


class RawRecipients:
    """``mail.with_raw_response.recipients``: searches; ``iter_*`` give the first page."""

    def __init__(self, recipients: Recipients) -> None:
        self.contacts = raw(recipients.contacts)
        self.employees = raw(recipients.employees)
        self.iter_contacts = raw_first_page(recipients.iter_contacts)
        self.iter_employees = raw_first_page(recipients.iter_employees)


class RawClient:
    """``mail.with_raw_response``: the client's calls, each returning a :class:`RawResponse`.

    Example: ``raw = await mail.with_raw_response.mailboxes.get(1); print(raw.headers)``.
    """

    def __init__(self, client: MailClient) -> None:
        self.mailboxes = RawMailboxes(client.mailboxes)
        self.messages = RawMessages(client.messages)
        self.recipients = RawRecipients(client.recipients)
        self.me = raw(client.me)
        self.request = raw(client.request)
