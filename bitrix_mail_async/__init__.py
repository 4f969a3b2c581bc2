"""Asyncio client for the mail API of the Bitrix24 Vibe gateway.

Example::

    async with MailClient() as mail:          # key from BITRIX_MAIL_API_KEY
        boxes = await mail.mailboxes.list()
"""

from bitrix_mail_async import errors
from bitrix_mail_async._convert import from_dict, to_dict
from bitrix_mail_async._hooks import (
    HookEvent,
    Hooks,
    RateLimitedEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from bitrix_mail_async._ratelimit import RateLimit, RateLimitConfig
from bitrix_mail_async._raw import RawResponse
from bitrix_mail_async._retry import RetryPolicy
from bitrix_mail_async._stats import ClientStats, StatsSnapshot
from bitrix_mail_async._version import __version__
from bitrix_mail_async.client import MailClient
from bitrix_mail_async.models import (
    CalendarEventCreated,
    ChatCreated,
    Contact,
    CrmActivityCreated,
    Employee,
    FeedPostCreated,
    KeyInfo,
    KeyRateLimit,
    Mailbox,
    Message,
    MessageSummary,
    MoveResult,
    Page,
    Sender,
    SendResult,
    TaskCreated,
)
from bitrix_mail_async.pagination import MessagePager, Pager
from bitrix_mail_async.resources._watch import Checkpoint, FileCheckpoint, MessageWatcher

__all__ = [
    "CalendarEventCreated",
    "ChatCreated",
    "Checkpoint",
    "ClientStats",
    "Contact",
    "CrmActivityCreated",
    "Employee",
    "FeedPostCreated",
    "FileCheckpoint",
    "HookEvent",
    "Hooks",
    "KeyInfo",
    "KeyRateLimit",
    "MailClient",
    "Mailbox",
    "Message",
    "MessagePager",
    "MessageSummary",
    "MessageWatcher",
    "MoveResult",
    "Page",
    "Pager",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitedEvent",
    "RawResponse",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "RetryPolicy",
    "SendResult",
    "Sender",
    "StatsSnapshot",
    "TaskCreated",
    "__version__",
    "errors",
    "from_dict",
    "to_dict",
]
