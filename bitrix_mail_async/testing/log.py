"""The emulator's record of what it received and answered, and its counters.

The log is bounded twice: by entries (:data:`DEFAULT_MAX_ENTRIES`) and by the bytes its entries
hold (:data:`DEFAULT_MAX_BYTES`, as :func:`footprint` estimates them), the oldest dropped first;
one body whose record would take more than :data:`MAX_BODY_BYTES_KEPT` is kept as an excerpt.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "MAX_BODY_BYTES_KEPT",
    "REDACTED",
    "EmulatorStats",
    "RecordedRequest",
    "RequestLog",
    "bounded_body",
    "footprint",
    "redact_headers",
]

REDACTED = "***"
#: Entries the request log keeps at most.
DEFAULT_MAX_ENTRIES = 100_000
#: Bytes (estimated by :func:`footprint`) the request log's entries hold at most.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: A body whose parsed form takes more is logged as an excerpt (a ``str``) instead.
MAX_BODY_BYTES_KEPT = 8 * 1024 * 1024
# Characters of an oversized body kept in its excerpt.
_EXCERPT_CHARS = 1024
_SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy headers with the API key and the bearer token replaced by ``***``."""
    return {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def footprint(value: object) -> int:
    """Estimated bytes ``value`` holds: its own size plus, for containers, their contents'.

    Iterative, so nesting of any depth costs no recursion; objects shared between places
    (small ints, interned keys) are counted at each place, which only overestimates.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return total


def bounded_body(value: object, raw: bytes) -> object:
    """``value`` (the body parsed from ``raw``), or an excerpt of ``raw`` when it is too big.

    Too big: over :data:`MAX_BODY_BYTES_KEPT` by :func:`footprint`; a few MiB of ``[{},{},...]``
    parse into far more memory than their bytes. The excerpt names the body's size.
    """
    if footprint(value) <= MAX_BODY_BYTES_KEPT:
        return value
    head = raw[:_EXCERPT_CHARS].decode("utf-8", errors="replace")
    return f"{head}... [{len(raw)} bytes, too big to keep whole in the request log]"


@dataclass
class RecordedRequest:
    """One request as the emulator received it, and what it did with it."""

    method: str
    path: str
    query: dict[str, str]
    #: The parsed JSON body; the text when it is not JSON; an excerpt (``str``) when too big.
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
    """A thread-safe, list-like log of :class:`RecordedRequest` entries.

    Bounded by ``max_entries`` and by ``max_bytes`` (what its entries hold, by
    :func:`footprint`): past either, the oldest entries go; the newest always stays. ``None``
    lifts a bound.
    """

    def __init__(
        self,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        # Bounded so long benchmarks and big bodies do not grow memory without end.
        self._items: deque[RecordedRequest] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    @staticmethod
    def entry_size(item: RecordedRequest) -> int:
        """What one entry holds, estimated: the record, its body, query, headers and path."""
        return (
            sys.getsizeof(item)
            + footprint(item.json)
            + footprint(item.query)
            + footprint(item.headers)
            + sys.getsizeof(item.path)
        )

    @property
    def retained_bytes(self) -> int:
        """The estimated bytes the entries kept now hold (at most ``max_bytes``, but one)."""
        return self._bytes

    def append(self, item: RecordedRequest) -> None:
        """Record one request (its body already read); drop the oldest past a bound."""
        size = self.entry_size(item)
        with self._lock:
            self._items.append(item)
            self._sizes.append(size)
            self._bytes += size
            while len(self._items) > 1 and self._over():
                self._items.popleft()
                self._bytes -= self._sizes.popleft()

    def _over(self) -> bool:
        return (self.max_entries is not None and len(self._items) > self.max_entries) or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        )

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self._bytes = 0

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
    #: 429s of a key's own bucket (``emu.set_rate_limit``).
    key_limited: int = 0
    #: Every request a limit refused (not executed), whichever limit: the sum of the five above.
    refused: int = 0
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
        self.key_limited = 0
        self.refused = 0
        self.max_concurrent.clear()

    def count_refusal(self, limit: str) -> None:
        """Count a refusal by the mechanism ``limit`` (see ``RecordedRequest.limited_by``)."""
        self.refused += 1
        if limit == "window":
            self.window_limited += 1
        elif limit == "portal":
            self.portal_limited += 1
        elif limit == "queue":
            self.queue_timeouts += 1
        elif limit == "breaker":
            self.loop_detected += 1
        elif limit == "key":
            self.key_limited += 1

    def executing(self, portal: str, count: int) -> None:
        """Note that ``count`` calls of ``portal`` are executing at once."""
        if count > self.max_concurrent.get(portal, 0):
            self.max_concurrent[portal] = count
