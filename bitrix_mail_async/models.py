"""Response models: one frozen attrs class per payload shape of the gateway's mail API.

Attribute names are snake_case; the wire is camelCase (``mailboxId`` → ``mailbox_id``,
``from`` → ``from_``). The renames, the lenient scalar parsing and the ``extra`` bookkeeping
live in :mod:`bitrix_mail_async._convert`; these classes only declare the shapes.

Conventions shared by every model:

* Constructors are keyword-only.
* Only ids and the key result ids are required. Everything the contract does not guarantee is
  ``Optional`` with a ``None`` default, so a gateway that omits a field never breaks decoding.
* ``extra`` holds the wire fields this version does not know, under their wire names. It takes
  part in ``==`` but not in ``hash()``: instances stay hashable (as frozen classes should) and
  two instances that compare equal still hash equal, because equal instances have equal typed
  fields. ``bindings`` (arbitrary JSON) and ``Page.items`` are excluded from ``hash()`` too.
* Recipient fields (``to``, ``cc``) are always ``tuple[str, ...]``: the wire's comma-separated
  string, list of strings or ``null`` is normalised to one stripped entry per address (empty
  tuple for ``null``/empty). Commas inside double quotes or angle brackets do not split, so
  ``"Doe, John" <j@x.io>, b@y.io`` gives two entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

__all__ = [
    "CalendarEventCreated",
    "ChatCreated",
    "Contact",
    "CrmActivityCreated",
    "Employee",
    "FeedPostCreated",
    "KeyInfo",
    "KeyRateLimit",
    "Mailbox",
    "Message",
    "MessageSummary",
    "MoveResult",
    "Page",
    "SendResult",
    "Sender",
    "TaskCreated",
]

T = TypeVar("T")

#: Field metadata flag: the converter parses this field as a recipient list.
RECIPIENTS = "bitrix_mail_async.recipients"
_RECIPIENTS_META = {RECIPIENTS: True}


@attrs.frozen(kw_only=True)
class Mailbox:
    """A mailbox the key can read (``GET /mail/mailboxes``).

    Example: ``box = await mail.mailboxes.get(1); print(box.email)``.
    """

    id: int
    name: str | None = None
    email: str | None = None
    sender_name: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


_SPECIALS = frozenset('()<>[]:;@\\,."')


def _sender_of(sender: Sender) -> str:
    """``Name <email>`` (the name quoted when it needs it), the bare email, or ``""``."""
    email, name = (sender.email or "").strip(), (sender.name or "").strip()
    if not email or not name:
        return email
    if _SPECIALS.intersection(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        name = f'"{escaped}"'
    return f"{name} <{email}>"


@attrs.frozen(kw_only=True)
class Sender:
    """A sender identity of a mailbox; pass ``sender`` ("Name <user@example.com>") as ``from_``.

    ``sender`` is always a ``str``: when the gateway leaves it out (or sends null or ``""``) it
    is made from ``name`` and ``email`` (``""`` without an email, which ``send`` refuses).

    Example: ``from_ = (await mail.mailboxes.senders(1))[0].sender``.
    """

    email: str | None = None
    name: str | None = None
    sender: str = attrs.field(default=attrs.Factory(_sender_of, takes_self=True))
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class MessageSummary:
    """One message of ``GET /mail/messages``.

    ``to`` and ``cc`` are tuples of single addresses (see the module docstring). ``date`` is an
    aware ``datetime`` when the wire gives an offset (list and get do), naive otherwise.
    ``bindings`` keeps whatever JSON the gateway sends, as a tuple (a non-list value becomes
    a one-element tuple, ``null`` an empty one). ``body`` may be present on list items.

    Example: ``async for msg in mail.messages.list(1): print(msg.date, msg.subject)``.
    """

    id: int
    mailbox_id: int | None = None
    mailbox_email: str | None = None
    subject: str | None = None
    from_: str | None = None
    to: tuple[str, ...] = attrs.field(default=(), metadata=_RECIPIENTS_META)
    cc: tuple[str, ...] = attrs.field(default=(), metadata=_RECIPIENTS_META)
    date: datetime | None = None
    is_seen: bool | None = None
    has_attachments: bool | None = None
    url: str | None = None
    bindings: tuple[Any, ...] = attrs.field(default=(), hash=False)
    body: str | None = None
    folder: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class Message(MessageSummary):
    """A full message (``GET /mail/messages/{id}``) or one item of a thread.

    Same fields as :class:`MessageSummary`; ``body`` is expected here. Thread items carry only
    ``id``, ``subject``, ``from_``, ``to``, ``cc``, ``date`` and ``body``: the other fields are
    then ``None`` (or empty).

    ``date`` is timezone-aware when the wire gives an offset (list and get:
    ``2026-05-25T10:00:00+03:00``) and NAIVE for thread items, whose wire format is
    ``Y-m-d H:i:s`` without an offset: the portal's local time, zone unknown.

    Example: ``msg = await mail.messages.get(1001); print(msg.subject, msg.body)``.
    """


@attrs.frozen(kw_only=True)
class SendResult:
    """Result of send, reply and forward; ``to`` lists the recipients the gateway accepted.

    Example: ``sent = await mail.messages.send(...); assert sent.success``.
    """

    success: bool = True
    to: tuple[str, ...] = attrs.field(default=(), metadata=_RECIPIENTS_META)
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class MoveResult:
    """Result of ``POST /mail/messages/move``.

    Example: ``(await mail.messages.move([1001], action="spam")).moved_count``.
    """

    success: bool = True
    moved_count: int | None = None
    action: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class TaskCreated:
    """A task created from a message.

    Example: ``task_id = (await mail.messages.create_task(1001)).task_id``.
    """

    success: bool = True
    task_id: int
    message_id: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class CalendarEventCreated:
    """A calendar event created from a message.

    Example: ``ev = await mail.messages.create_calendar_event(1001, date_from=a, date_to=b)``.
    """

    success: bool = True
    event_id: int
    message_id: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class ChatCreated:
    """A chat about a message; ``existing`` is true when the chat was already there.

    Example: ``chat = await mail.messages.create_chat(1001); print(chat.existing)``.
    """

    success: bool = True
    chat_id: int
    message_id: int | None = None
    existing: bool = False
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class FeedPostCreated:
    """A feed post created from a message.

    Example: ``post_id = (await mail.messages.create_feed_post(1001)).post_id``.
    """

    success: bool = True
    post_id: int
    message_id: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class CrmActivityCreated:
    """A CRM activity created from a message.

    REST 3.0 answers a bare ``true``/``false`` (then only ``success`` is set); the gateway may
    wrap it in an object, whose ids are kept when present.

    Example: ``assert (await mail.messages.create_crm_activity(1001)).success``.
    """

    success: bool = True
    activity_id: int | None = None
    message_id: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class KeyRateLimit:
    """The request limit of a key's portal, as ``GET /v1/me`` reports it."""

    requests_per_second: float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class KeyInfo:
    """What the gateway says about the API key in use (``GET /v1/me``); never the key itself.

    ``scopes`` are fixed when a key is issued: the list may name a scope added to the key
    later that the key still cannot use (its calls answer 403 ``BITRIX_ACCESS_DENIED``).
    ``rate_limit_per_second`` is the portal's short-term ceiling (``rateLimit.requestsPerSecond``,
    about 10/s): the ``peak_per_second`` of a ``RateLimit``, not its ``per_second``. The REST
    leaky bucket underneath drains slower (2/s with a burst of 50 on ordinary plans, 5/s with
    250 on Enterprise) and binds first on any run longer than its burst: a client sent at 10/s
    meets 429s after about 6 s. Size the client with ``RateLimit.documented(plan)``, which
    holds both figures. ``portal`` names the key's (or session's) portal.

    Example: ``info = await mail.me(); print(info.scopes, info.rate_limit_per_second)``.
    """

    scopes: tuple[str, ...] = ()
    rate_limit: KeyRateLimit | None = None
    portal: str | None = None
    expires_at: datetime | None = None
    #: ``accessMode``: e.g. ``"READONLY"`` (writes answer 403 ``WRITE_BLOCKED_READONLY_KEY``).
    access_mode: str | None = None
    #: ``status`` of the key as the gateway names it (e.g. ``"ACTIVE"``).
    status: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def rate_limit_per_second(self) -> float | None:
        """The portal's short-term rate (``rateLimit.requestsPerSecond``); not the REST bucket."""
        return self.rate_limit.requests_per_second if self.rate_limit is not None else None


@attrs.frozen(kw_only=True)
class Contact:
    """A CRM contact suggested as a recipient.

    Example: ``emails = [c.email for c in await mail.recipients.contacts("smith")]``.
    """

    id: int
    email: str | None = None
    name: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class Employee:
    """An employee of the portal suggested as a recipient.

    Example: ``colleague = (await mail.recipients.employees("ann"))[0].email``.
    """

    id: int
    email: str | None = None
    name: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of an offset-paged list: ``items`` plus where it sits and whether more follow.

    ``total`` is ``None`` when the gateway does not report it (REST 3.0 lists never do).
    ``truncated`` is the gateway's ``meta.truncated``: True when it cut the list short (its
    entity lists say so; for mail it is inferred), None when it did not say.

    Example: ``page = await mail.messages.list(1, page_size=50); print(page.has_more)``.
    """

    items: list[T] = attrs.field(hash=False)
    has_more: bool
    total: int | None = None
    offset: int = 0
    limit: int = 0
    truncated: bool | None = None
