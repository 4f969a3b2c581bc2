"""The counters a client keeps about its calls (``client.stats``)."""

from __future__ import annotations

import attrs

__all__ = ["ClientStats"]


@attrs.define
class ClientStats:
    """Counters of one client; ``current_rate`` is the limiter's learned rate (requests/s)."""

    requests: int = 0
    responses: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    outcome_unknown: int = 0
    limiter_wait: float = 0.0
    retry_wait: float = 0.0
    current_rate: float | None = None
