"""The circuit breaker: a request that keeps failing the same way is blocked, not executed.

When one key repeats the same request (same method, path, query and body) and it fails 12
times within the hour, the gateway answers that request ``429 ERROR_LOOP_DETECTED`` with
``retryAfter`` 60 without executing it. Every 50th blocked request is let through to probe for
recovery; a success forgets the failures. Other requests of the key go on normally: it is not a
rate limit but a sign of a bug in the caller. The block lifts once the failures age out of the
window.

A failure is an error answer (HTTP 400 or more, or an error envelope) the route or an injected
fault produced; refusals by the limit mechanisms themselves are not failures.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bitrix_mail_async.testing.limits.base import Clock, RateDecision

__all__ = ["BreakerSettings", "CircuitBreaker", "Fingerprint", "fingerprint"]

#: What makes two requests "the same": key, method, path, sorted query, canonical JSON body.
Fingerprint = tuple[str, str, str, tuple[tuple[str, str], ...], str]

# Past this many remembered requests, the ones whose failures aged out are forgotten.
_PRUNE_AT = 10_000


def fingerprint(
    key: str, method: str, path: str, query: Iterable[tuple[str, str]], body: Any
) -> Fingerprint:
    """Return the identity of a request for the breaker."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return (key, method.upper(), path, tuple(sorted(query)), canonical)


@dataclass(frozen=True)
class BreakerSettings:
    """The breaker's figures; the defaults are the documented ones."""

    threshold: int = 12
    period: float = 3600.0
    retry_after: float = 60.0
    probe_every: int = 50

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.probe_every < 1:
            raise ValueError("threshold and probe_every must be at least 1")
        if self.period <= 0 or self.retry_after < 0:
            raise ValueError("the breaker period must be positive, retry_after not negative")


@dataclass
class _Track:
    failures: deque[float] = field(default_factory=deque)
    blocked: int = 0


class CircuitBreaker:
    """Failures per request fingerprint within a sliding period, and the block they cause."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.settings: BreakerSettings | None = None
        self._clock = clock
        self._tracks: dict[Fingerprint, _Track] = {}
        self._lock = threading.Lock()

    def configure(self, settings: BreakerSettings | None) -> None:
        """Switch the breaker on with ``settings``, or off with ``None``; forget every failure."""
        with self._lock:
            self.settings = settings
            self._tracks.clear()

    @property
    def enabled(self) -> bool:
        """True while the breaker watches requests."""
        return self.settings is not None

    def check(self, request: Fingerprint) -> RateDecision:
        """Let ``request`` run, block it, or let it through as the periodic probe."""
        settings = self.settings
        if settings is None:
            return RateDecision(True)
        now = self._clock()
        with self._lock:
            track = self._tracks.get(request)
            if track is None:
                return RateDecision(True)
            if self._recent(track, now, settings) < settings.threshold:
                track.blocked = 0
                return RateDecision(True)
            track.blocked += 1
            if track.blocked % settings.probe_every == 0:
                return RateDecision(True)
        return RateDecision(False, settings.retry_after)

    def observe(self, request: Fingerprint, *, failed: bool) -> None:
        """Hear how an executed request ended: a failure counts, a success forgets."""
        settings = self.settings
        if settings is None:
            return
        now = self._clock()
        with self._lock:
            if not failed:
                self._tracks.pop(request, None)
                return
            if len(self._tracks) >= _PRUNE_AT:
                self._prune(now, settings)
            track = self._tracks.setdefault(request, _Track())
            track.failures.append(now)

    @staticmethod
    def _recent(track: _Track, now: float, settings: BreakerSettings) -> int:
        """Drop the failures older than the period; return how many remain."""
        failures = track.failures
        while failures and failures[0] <= now - settings.period:
            failures.popleft()
        return len(failures)

    def _prune(self, now: float, settings: BreakerSettings) -> None:
        stale = [fp for fp, t in self._tracks.items() if not self._recent(t, now, settings)]
        for fp in stale:
            del self._tracks[fp]
