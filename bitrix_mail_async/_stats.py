"""The counters a client keeps about its calls (``client.stats``)."""

from __future__ import annotations

import attrs

from bitrix_mail_async._window import WindowReading

__all__ = ["ClientStats", "StatsSnapshot"]


@attrs.frozen
class StatsSnapshot:
    """A frozen copy of :class:`ClientStats` at one moment (``client.stats.snapshot()``)."""

    requests: int
    responses: int
    retries: int
    rate_limited: int
    errors: int
    outcome_unknown: int
    limiter_wait: float
    window_wait: float
    retry_wait: float
    current_rate: float | None
    window: WindowReading | None


@attrs.define
class ClientStats:
    """Counters of one client; ``current_rate`` is the limiter's learned rate (requests/s).

    ``window`` is the last ``X-RateLimit-*`` reading this client got (None before any);
    ``limiter_wait`` and ``window_wait`` add up what every call waited for the bucket and for
    room in the gateway's window (summed over concurrent calls, so they can exceed wall time).
    ``errors`` and ``outcome_unknown`` count apart: the calls that failed are their sum.
    """

    requests: int = 0
    responses: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    outcome_unknown: int = 0
    limiter_wait: float = 0.0
    window_wait: float = 0.0
    retry_wait: float = 0.0
    current_rate: float | None = None
    window: WindowReading | None = None

    def snapshot(self) -> StatsSnapshot:
        """A frozen copy of the counters now."""
        return StatsSnapshot(**attrs.asdict(self, recurse=False))
