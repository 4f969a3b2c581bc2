"""What every limit mechanism shares: the decision it returns, its protocol, time and rounding."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Clock", "Limit", "ManualClock", "RateDecision", "round_up", "seconds_text"]

#: Seconds from an arbitrary origin, like :func:`time.monotonic`; tests inject a fake one.
Clock = Callable[[], float]


class ManualClock:
    """A clock that only moves when told to: pass it as ``clock=`` to test limits exactly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


@dataclass(frozen=True)
class RateDecision:
    """A mechanism's answer: allowed, or refused with the ``Retry-After`` seconds."""

    allowed: bool
    retry_after: float = 0.0


class Limit(Protocol):
    """One limit mechanism: grant a request of ``key``, or refuse it with a wait."""

    def acquire(self, key: str) -> RateDecision:
        """Take a permit for one request of ``key`` or say how long to wait."""
        ...


def round_up(seconds: float, step: float = 1.0) -> float:
    """Round a wait up to a whole number of ``step`` (the gateway sends whole seconds)."""
    if seconds <= 0:
        return 0.0
    # The small slack keeps an exact multiple (0.3 / 0.1 = 2.9999...) from rounding up a step.
    return round(math.ceil(seconds / step - 1e-9) * step, 6)


def seconds_text(value: float) -> str:
    """Write seconds the way the gateway's headers do: ``2``, or ``0.2`` when time-scaled."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")
