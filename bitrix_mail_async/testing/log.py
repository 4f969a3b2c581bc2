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
    """Counters of the emulator: requests, 429 answers, injected faults, answers by status."""

    requests: int = 0
    rate_limited: int = 0
    faults: int = 0
    dropped: int = 0
    by_status: Counter[int] = field(default_factory=Counter)

    def reset(self) -> None:
        """Zero every counter."""
        self.requests = 0
        self.rate_limited = 0
        self.faults = 0
        self.dropped = 0
        self.by_status.clear()
