"""The emulator's buckets: a key's own token bucket and the bucket every key of a portal shares.

:class:`TokenBucketLimiter` is the per-key limit of ``emu.set_rate_limit`` (a key may carry its
own request limit set by its owner; the gateway does not publish the figure). :class:`PortalBucket`
is the Bitrix24 portal limit: about 10 requests/s for the whole portal plus Bitrix24's REST leaky
bucket (2 requests/s drain, burst 50), shared by every key of the portal; overflow answers 429
``RATE_LIMITED`` with the message ``QUERY_LIMIT_EXCEEDED`` and ``retryAfter`` 2.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from bitrix_mail_async._ratelimit import DEFAULT_PEAK_BURST, DEFAULT_PEAK_PER_SECOND, PLANS
from bitrix_mail_async.testing.limits.base import Clock, RateDecision

__all__ = ["PortalBucket", "PortalRate", "TokenBucketLimiter"]


def _refill(tokens: float, last: float, now: float, rate: float, capacity: float) -> float:
    return min(capacity, tokens + max(0.0, now - last) * rate)


class TokenBucketLimiter:
    """A token bucket per API key, the way the gateway limits each key."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.per_second: float | None = None
        self.burst = 1
        self.retry_after: float | None = None
        self._clock = clock
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
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = _refill(tokens, last, now, rate, float(self.burst))
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return RateDecision(True)
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / rate
        if self.retry_after is not None:
            return RateDecision(False, self.retry_after)
        # The real gateway sends whole seconds (``Retry-After: 2``).
        return RateDecision(False, float(max(1, math.ceil(wait))))


@dataclass(frozen=True)
class PortalRate:
    """The figures of one portal's limit; the defaults are the documented ones.

    The figures are the client's table (``bitrix_mail_async._ratelimit``: ``PLANS`` and the
    portal's peak), so ``RateLimit.documented()`` and the emulator cannot drift apart.
    """

    #: The gateway's per-portal rate, what ``GET /v1/me`` reports as ``requestsPerSecond``.
    per_second: float = DEFAULT_PEAK_PER_SECOND
    burst: int = DEFAULT_PEAK_BURST
    #: Bitrix24's REST leaky bucket under it (5/s with 250 on Enterprise); ``None``: not modelled.
    rest_per_second: float | None = PLANS["standard"][0]
    rest_burst: int = PLANS["standard"][1]
    retry_after: float = 2.0

    def __post_init__(self) -> None:
        if self.per_second <= 0 or (self.rest_per_second is not None and self.rest_per_second <= 0):
            raise ValueError("portal rates must be positive")
        if self.burst < 1 or self.rest_burst < 1:
            raise ValueError("portal bursts must be at least 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    def stages(self) -> tuple[tuple[float, float], ...]:
        """Return (rate, capacity) of every bucket a request of the portal must pass."""
        stages = [(self.per_second, float(self.burst))]
        if self.rest_per_second is not None:
            stages.append((self.rest_per_second, float(self.rest_burst)))
        return tuple(stages)


class PortalBucket:
    """Buckets per portal, shared by every key of the portal: a request needs a token of each."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.default: PortalRate | None = None
        self._clock = clock
        self._overrides: dict[str, PortalRate | None] = {}
        self._tokens: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def configure(self, rate: PortalRate | None, portal: str | None = None) -> None:
        """Set the figures of one portal, or of every portal without its own (``None``: off)."""
        with self._lock:
            if portal is None:
                self.default = rate
                self._tokens.clear()
            else:
                self._overrides[portal] = rate
                self._tokens.pop(portal, None)

    def reset(self) -> None:
        """Switch the bucket off for every portal and forget every level."""
        with self._lock:
            self.default = None
            self._overrides.clear()
            self._tokens.clear()

    def refill(self) -> None:
        """Fill every portal's buckets again; the figures stay."""
        with self._lock:
            self._tokens.clear()

    def rate(self, portal: str) -> PortalRate | None:
        """Return the figures limiting ``portal`` (``None``: not limited)."""
        return self._overrides.get(portal, self.default)

    def acquire(self, portal: str) -> RateDecision:
        """Take one token of every bucket of ``portal``, or none and say how long to wait."""
        if self.default is None and not self._overrides:
            return RateDecision(True)  # off: no clock, no lock on the hot path
        now = self._clock()
        with self._lock:
            rate = self.rate(portal)
            if rate is None:
                return RateDecision(True)
            stages = rate.stages()
            saved = self._tokens.get(portal) or [(cap, now) for _, cap in stages]
            levels = [
                _refill(tokens, last, now, r, cap)
                for (tokens, last), (r, cap) in zip(saved, stages, strict=True)
            ]
            allowed = all(tokens >= 1.0 for tokens in levels)
            taken = 1.0 if allowed else 0.0
            self._tokens[portal] = [(tokens - taken, now) for tokens in levels]
        return RateDecision(allowed, 0.0 if allowed else rate.retry_after)

    def refund(self, portal: str) -> None:
        """Give back the token of a request that never reached Bitrix24 (a queue timeout)."""
        with self._lock:
            rate = self.rate(portal)
            saved = self._tokens.get(portal)
            if rate is not None and saved is not None:
                self._tokens[portal] = [
                    (min(cap, tokens + 1.0), last)
                    for (tokens, last), (_, cap) in zip(saved, rate.stages(), strict=True)
                ]
