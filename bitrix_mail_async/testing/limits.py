"""The emulator's limit mechanisms: what makes the gateway answer 429 to a key.

Each mechanism is a small object with ``acquire(key) -> RateDecision`` (the :class:`Limit`
protocol); the middleware's ``admit`` step asks every mechanism of the gateway in turn. Today
that is the per-key token bucket; more mechanisms go here as their own classes.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Limit", "RateDecision", "TokenBucketLimiter"]


@dataclass(frozen=True)
class RateDecision:
    """The limiter's answer: allowed, or refused with the ``Retry-After`` seconds."""

    allowed: bool
    retry_after: float = 0.0


class Limit(Protocol):
    """One limit mechanism: grant a request of ``key``, or refuse it with a wait."""

    def acquire(self, key: str) -> RateDecision:
        """Take a permit for one request of ``key`` or say how long to wait."""
        ...


class TokenBucketLimiter:
    """A token bucket per API key, the way the gateway limits each key."""

    def __init__(self) -> None:
        self.per_second: float | None = None
        self.burst = 1
        self.retry_after: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def configure(
        self, per_second: float | None, burst: int | None = None, retry_after: float | None = None
    ) -> None:
        """Set the rate (``None`` disables limiting), the bucket size and a fixed Retry-After."""
        if per_second is not None and per_second <= 0:
            raise ValueError("per_second must be positive or None")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1")
        with self._lock:
            self.per_second = per_second
            self.burst = burst if burst is not None else max(1, math.ceil(per_second or 1))
            self.retry_after = retry_after
            self._buckets.clear()

    def acquire(self, key: str) -> RateDecision:
        """Take one token for ``key`` or say how long to wait."""
        rate = self.per_second
        if rate is None:
            return RateDecision(True)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return RateDecision(True)
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / rate
        if self.retry_after is not None:
            return RateDecision(False, self.retry_after)
        # The real gateway sends whole seconds (``Retry-After: 2``).
        return RateDecision(False, float(max(1, math.ceil(wait))))
