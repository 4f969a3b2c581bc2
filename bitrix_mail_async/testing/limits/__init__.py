"""The emulator's limit mechanisms: why the gateway refuses, delays or blocks a request.

One small class per mechanism of the gateway's limit system, each off by default and, once on,
with the documented figures unless told otherwise:

- :class:`SlidingWindow` (``window``): 300 requests per sliding 60 s per key, with the
  ``X-RateLimit-*`` headers on every answer to the key; over it, 429 ``RATE_LIMITED``.
- :class:`PortalBucket` (``portal``): ~10 requests/s per portal plus Bitrix24's REST leaky
  bucket (2/s, burst 50), shared by every key of the portal; over it, 429 ``RATE_LIMITED``
  ``QUERY_LIMIT_EXCEEDED``.
- :class:`PortalQueue` (``queue``): 2 calls of a portal execute at once, the rest wait in FIFO
  order; after 30 s of waiting, 504 ``QUEUE_TIMEOUT``, not executed.
- :class:`CircuitBreaker` (``breaker``): 12 identical failing requests within the hour block
  that request with 429 ``ERROR_LOOP_DETECTED``; every 50th goes through as a probe.
- :class:`TokenBucketLimiter` (``key_bucket``): a key's own limit (``emu.set_rate_limit``).

:class:`Limits` holds one emulator's mechanisms; :class:`LimitSettings` is the ``limits=``
argument. The order in which a request meets them lives in
:mod:`~bitrix_mail_async.testing.middleware`.
"""

from bitrix_mail_async.testing.limits.base import Clock, Limit, ManualClock, RateDecision
from bitrix_mail_async.testing.limits.breaker import (
    BreakerSettings,
    CircuitBreaker,
    Fingerprint,
    fingerprint,
)
from bitrix_mail_async.testing.limits.buckets import PortalBucket, PortalRate, TokenBucketLimiter
from bitrix_mail_async.testing.limits.gateway import Limits, LimitSettings
from bitrix_mail_async.testing.limits.queue import PortalQueue, QueueSettings, QueueTimeout
from bitrix_mail_async.testing.limits.window import Quota, SlidingWindow, WindowSettings

__all__ = [
    "BreakerSettings",
    "CircuitBreaker",
    "Clock",
    "Fingerprint",
    "Limit",
    "LimitSettings",
    "Limits",
    "ManualClock",
    "PortalBucket",
    "PortalQueue",
    "PortalRate",
    "QueueSettings",
    "QueueTimeout",
    "Quota",
    "RateDecision",
    "SlidingWindow",
    "TokenBucketLimiter",
    "WindowSettings",
    "fingerprint",
]
