"""Fault injection of the emulator: which requests go wrong, how, and how often.

Tests set attributes on :class:`Faults` from their own thread while the emulator's loop reads
them; plain attribute reads and writes are atomic in CPython, and the FIFO of scheduled faults
is guarded by a lock.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "Faults"]

#: Every fault a schedule may hold; ``slow:<seconds>`` is accepted as well.
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "ok",
        "502",
        "503",
        "504",
        "429",
        "drop_before",
        "drop_after",
        "html",
        "malformed",
        "empty",
        "no_data",
        "success_false_200",
    }
)

_RANDOM_ERRORS = ("502", "503", "504")


@dataclass
class _Scheduled:
    kind: str
    methods: frozenset[str] | None
    paths: tuple[str, ...] | None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.paths is None or any(path.startswith(p) for p in self.paths)


def _check_kind(kind: str) -> str:
    if kind in FAULT_KINDS:
        return kind
    if kind.startswith("slow:"):
        try:
            seconds = float(kind[5:])
        except ValueError:
            seconds = -1.0
        if seconds >= 0 and math.isfinite(seconds):
            return kind
    raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")


class Faults:
    """What goes wrong, and how often: random rates, latency, and an explicit FIFO schedule."""

    rng: random.Random
    error_rate: float
    drop_before_rate: float
    drop_after_rate: float
    latency: float
    latency_jitter: float
    fault_retry_after: float

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._queue: list[_Scheduled] = []
        self.reset()  # the one place the defaults live

    def schedule(
        self,
        *items: str,
        methods: Iterable[str] | None = None,
        paths: Iterable[str] | str | None = None,
    ) -> None:
        """Queue faults consumed one per matching request (filters: methods, path prefixes)."""
        kinds = [_check_kind(item) for item in items]
        method_set = frozenset(m.upper() for m in methods) if methods is not None else None
        path_tuple = (paths,) if isinstance(paths, str) else tuple(paths) if paths else None
        with self._lock:
            self._queue.extend(_Scheduled(k, method_set, path_tuple) for k in kinds)

    @property
    def pending(self) -> list[str]:
        """Return the scheduled faults not consumed yet."""
        with self._lock:
            return [item.kind for item in self._queue]

    def reset(self) -> None:
        """Clear the schedule and every rate, and reseed the random generator."""
        with self._lock:
            self._queue.clear()
        self.rng = random.Random(self.seed)
        self.error_rate = 0.0
        self.drop_before_rate = 0.0
        self.drop_after_rate = 0.0
        self.latency = 0.0
        self.latency_jitter = 0.0
        self.fault_retry_after = 0.05

    def restart(self) -> None:
        """Clear the schedule and reseed the generator; the rates and latency stay."""
        with self._lock:
            self._queue.clear()
        self.rng = random.Random(self.seed)

    def delay(self) -> float:
        """Return the latency to add to one request."""
        if self.latency_jitter > 0:
            return self.latency + self.rng.uniform(0.0, self.latency_jitter)
        return self.latency

    def pick(self, method: str, path: str) -> str | None:
        """Return the fault for one request (``None``: answer normally)."""
        if self._queue:
            with self._lock:
                for index, item in enumerate(self._queue):
                    if item.matches(method, path):
                        del self._queue[index]
                        return None if item.kind == "ok" else item.kind
        total = self.error_rate + self.drop_before_rate + self.drop_after_rate
        if total <= 0:
            return None
        roll = self.rng.random()
        if roll < self.error_rate:
            return self.rng.choice(_RANDOM_ERRORS)
        roll -= self.error_rate
        if roll < self.drop_before_rate:
            return "drop_before"
        roll -= self.drop_before_rate
        if roll < self.drop_after_rate:
            return "drop_after"
        return None
