"""The emulator's record of what it received and answered, and its counters."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = ["REDACTED", "EmulatorStats", "RecordedRequest", "RequestLog", "redact_headers"]

REDACTED = "***"
_SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy headers with the API key and the bearer token replaced by ``***``."""
    return {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


@dataclass
class RecordedRequest:
    """One request as the emulator received it, and what it did with it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int | None = None
    fault: str | None = None
    applied: bool = False
    time: float = 0.0
    #: The portal of the request's key (``None`` when authentication failed).
    portal: str | None = None
    #: The limit that refused the request, not executed: ``"breaker"``, ``"window"``,
    #: ``"key"`` (the key's own bucket), ``"portal"`` (the portal bucket) or ``"queue"``.
    limited_by: str | None = None
    #: Seconds the request waited in its portal's queue.
    queue_wait: float = 0.0
    #: How many calls of the portal were executing when this one started, itself included.
    concurrency: int = 0

    @property
    def dropped(self) -> bool:
        """True when the connection was dropped instead of answered."""
        return self.status is None and self.fault in ("drop_before", "drop_after")


class RequestLog:
    """A thread-safe, list-like log of :class:`RecordedRequest` entries."""

    def __init__(self, max_entries: int | None = 100_000) -> None:
        # Bounded so long benchmarks against one emulator do not grow memory without end.
        self._items: deque[RecordedRequest] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def append(self, item: RecordedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RecordedRequest]:
        """Return a copy of the recorded requests."""
        with self._lock:
            return list(self._items)

    def filter(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        fault: str | None = None,
    ) -> list[RecordedRequest]:
        """Return the requests matching every given criterion (``path`` is exact)."""
        wanted_method = method.upper() if method else None
        return [
            r
            for r in self.snapshot()
            if (wanted_method is None or r.method == wanted_method)
            and (path is None or r.path == path)
            and (path_prefix is None or r.path.startswith(path_prefix))
            and (status is None or r.status == status)
            and (fault is None or r.fault == fault)
        ]

    @property
    def last(self) -> RecordedRequest:
        """Return the most recent request (IndexError when none)."""
        with self._lock:
            return self._items[-1]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...
    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        with self._lock:
            if isinstance(index, slice):
                return list(self._items)[index]
            return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} requests)"


@dataclass
class EmulatorStats:
    """Counters of the emulator: requests, 429 answers, faults, limits, answers by status."""

    requests: int = 0
    #: Every 429 answer, whichever mechanism (or fault) gave it.
    rate_limited: int = 0
    faults: int = 0
    dropped: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    #: 429s of the per-key sliding window.
    window_limited: int = 0
    #: 429 QUERY_LIMIT_EXCEEDED of the portal bucket.
    portal_limited: int = 0
    #: 504 QUEUE_TIMEOUT of the portal queue.
    queue_timeouts: int = 0
    #: 429 ERROR_LOOP_DETECTED of the circuit breaker.
    loop_detected: int = 0
    #: Per portal, the most calls that were executing at once.
    max_concurrent: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        """Zero every counter."""
        self.requests = 0
        self.rate_limited = 0
        self.faults = 0
        self.dropped = 0
        self.by_status.clear()
        self.window_limited = 0
        self.portal_limited = 0
        self.queue_timeouts = 0
        self.loop_detected = 0
        self.max_concurrent.clear()

    def refused(self, limit: str) -> None:
        """Count a refusal by the mechanism ``limit`` (see ``RecordedRequest.limited_by``)."""
        if limit == "window":
            self.window_limited += 1
        elif limit == "portal":
            self.portal_limited += 1
        elif limit == "queue":
            self.queue_timeouts += 1
        elif limit == "breaker":
            self.loop_detected += 1

    def executing(self, portal: str, count: int) -> None:
        """Note that ``count`` calls of ``portal`` are executing at once."""
        if count > self.max_concurrent.get(portal, 0):
            self.max_concurrent[portal] = count
