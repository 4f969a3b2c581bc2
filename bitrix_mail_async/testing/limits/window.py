"""The Vibe platform limit per key: 300 requests in a sliding 60-second window.

Every answer to a key carries ``X-RateLimit-Limit`` (the limit), ``X-RateLimit-Remaining``
(what is left in the window after this request) and ``X-RateLimit-Reset`` (seconds until the
oldest counted request leaves the window, rounded up to whole seconds). Over the limit the
request is refused with that reset as its ``Retry-After``. A refused request is not counted, so
the Retry-After it gets is the truth; every request the window let through stays counted even
when a later mechanism refuses it (the real gateway counts every request of the key).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from bitrix_mail_async.testing.limits.base import Clock, round_up, seconds_text

__all__ = ["Quota", "SlidingWindow", "WindowSettings"]


@dataclass(frozen=True)
class WindowSettings:
    """The window's figures; the defaults are the documented ones."""

    limit: int = 300
    period: float = 60.0
    #: The unit Reset is rounded up to: one second, or less on a time-scaled emulator.
    step: float = 1.0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("the window limit must be at least 1")
        if self.period <= 0 or self.step <= 0:
            raise ValueError("the window period and step must be positive")


@dataclass(frozen=True)
class Quota:
    """Where a key stands in its window after one request."""

    allowed: bool
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        """Return the ``X-RateLimit-*`` headers of an answer."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": seconds_text(self.reset),
        }


class SlidingWindow:
    """A log of request times per key; at most ``limit`` of them within the last ``period``."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.settings: WindowSettings | None = None
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def configure(self, settings: WindowSettings | None) -> None:
        """Switch the window on with ``settings``, or off with ``None``; forget every count."""
        with self._lock:
            self.settings = settings
            self._hits.clear()

    def take(self, key: str) -> Quota | None:
        """Count one request of ``key``, or refuse it; ``None`` while the window is off."""
        settings = self.settings
        if settings is None:
            return None
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - settings.period:
                hits.popleft()
            allowed = len(hits) < settings.limit
            if allowed:
                hits.append(now)
            reset = round_up(hits[0] + settings.period - now, settings.step)
            return Quota(allowed, settings.limit, settings.limit - len(hits), reset)
