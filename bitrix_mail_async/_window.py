"""The gateway's per-key sliding window, as the client learns it from ``X-RateLimit-*`` headers.

Every answer of the gateway carries ``X-RateLimit-Limit`` (300), ``X-RateLimit-Remaining``
(what is left of the key's 60-second sliding window) and ``X-RateLimit-Reset`` (seconds until
the window frees up), and the gateway's advice is to rely on them so that a refusal never
comes (contract section 1a.1). :class:`WindowBudget` turns them into a budget of calls that may
start:

* a reading sets the budget to ``Remaining`` less the calls still in flight (they may not have
  been counted yet), so there are never more calls in flight than the window has room for;
* each call that starts spends one unit; at 0 new calls wait, until the next reading or until
  ``Reset`` has passed;
* once ``Reset`` has passed without a new reading, the oldest counted call has left the window:
  one probe goes, and its answer brings the real figure. Another probe goes only after
  ``PROBE_HOLD`` seconds without an answer, so a silent gateway is never flooded; an answer
  wakes the waiting calls, so that they follow its ``Reset`` (which may be 0) instead;
* answers arrive out of order, so a reading counts only when it is not more generous than the
  budget, or when the previous reading's ``Reset`` has passed (the window may have freed up);
* before the first answer of a key nothing is known: :data:`COLD_START` calls may start, the
  rest wait for a reading (or probe one per ``PROBE_HOLD``); an answer without headers means
  the gateway sends none;
* absent headers leave the budget alone until its ``Reset`` has passed, then drop it; headers
  that cannot be right (non-numeric, negative, ``Remaining`` above ``Limit``, a ``Reset``
  longer than :data:`MAX_RESET`) drop it at once and say so at DEBUG. Without a budget the
  client relies on its own bucket only.

Every client of one key in a process shares one budget (see :mod:`bitrix_mail_async._keys`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "COLD_START",
    "MAX_RESET",
    "PROBE_HOLD",
    "Window",
    "WindowBudget",
    "WindowReading",
    "WindowSource",
    "read_window",
]

log = logging.getLogger("bitrix_mail_async.ratelimit")

LIMIT = "X-RateLimit-Limit"
REMAINING = "X-RateLimit-Remaining"
RESET = "X-RateLimit-Reset"

#: The documented window is 60 s; a longer ``Reset`` describes something else, so it is ignored.
MAX_RESET = 60.0
#: Calls of a key that may start before its first answer: few enough that a window other
#: processes have nearly spent costs only a few refusals, enough that one slow first call
#: (a send, a queued call) does not hold the others back.
COLD_START = 8
#: Seconds between probes while ``Reset`` has passed and no answer has brought a new reading.
PROBE_HOLD = 1.0
# Far above the documented 300: any larger Limit is garbage, not a window to budget for.
_MAX_LIMIT = 1_000_000


@attrs.frozen
class WindowReading:
    """The ``X-RateLimit-*`` headers of one answer (``client.stats.window``)."""

    limit: int
    """The window's size (``X-RateLimit-Limit``, 300 on the gateway)."""
    remaining: int
    """Calls left in the window when this answer was made (``X-RateLimit-Remaining``)."""
    reset: float
    """Seconds until the window frees up, counted from the answer (``X-RateLimit-Reset``)."""


class _Garbage(ValueError):
    """Headers present but impossible; the message says which."""


def _integer(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise _Garbage(f"{name} is not an integer") from None
    if not low <= value <= high:
        raise _Garbage(f"{name} {value} is outside {low}..{high}")
    return value


def read_window(headers: Mapping[str, str]) -> WindowReading | None:
    """The reading of an answer's headers; None when it has none; ValueError when they are wrong.

    ``headers`` must look names up case-insensitively (aiohttp's headers do).
    """
    limit_text = headers.get(LIMIT)
    remaining_text = headers.get(REMAINING)
    reset_text = headers.get(RESET)
    if limit_text is None and remaining_text is None and reset_text is None:
        return None
    if limit_text is None or remaining_text is None or reset_text is None:
        raise _Garbage("some X-RateLimit-* headers are missing")
    limit = _integer(LIMIT, limit_text, 1, _MAX_LIMIT)
    remaining = _integer(REMAINING, remaining_text, 0, limit)
    try:
        reset = float(reset_text.strip())
    except ValueError:
        raise _Garbage(f"{RESET} is not a number") from None
    if not (math.isfinite(reset) and 0.0 <= reset <= MAX_RESET):
        raise _Garbage(f"{RESET} {reset_text[:20]!r} is outside 0..{MAX_RESET:g} s")
    return WindowReading(limit, remaining, reset)


class Window(Protocol):
    """What the pipeline needs from a window budget (in-process here, shared in Redis)."""

    def try_admit(self) -> bool:
        """Count one call in flight if it may start now without waiting; else False."""
        ...

    async def admit(self) -> float:
        """Wait until one more call may start and count it; returns the seconds waited."""
        ...

    def settle(self, headers: Mapping[str, str] | None) -> WindowReading | None:
        """One admitted call ended, with these answer headers (None: no answer came)."""
        ...


@runtime_checkable
class WindowSource(Protocol):
    """A limiter that keeps the window budget itself (e.g. shared through Redis)."""

    def create_window(self) -> Window:
        """The window budget to use beside this limiter."""
        ...


class WindowBudget:
    """How many calls of one key may start now, by the gateway's sliding window."""

    def __init__(self) -> None:
        self.reading: WindowReading | None = None
        """The last reading accepted (None before any, or after the budget was dropped)."""
        self.in_flight = 0
        # Until the first answer says whether the gateway sends the headers at all, a few
        # calls may start: the budget's Reset is "passed", so the first reading is believed.
        self._budget: int | None = COLD_START
        self._reset_at = 0.0
        self._next_probe = 0.0
        # Set and replaced whenever the budget may have grown, to wake waiting calls.
        self._changed: asyncio.Future[None] | None = None

    @property
    def budget(self) -> int | None:
        """Calls that may start before the next reading; None when the gateway sends no window."""
        return self._budget

    def count_admitted(self) -> None:
        """Count one call in flight that another budget (e.g. the shared one in Redis) admitted."""
        self.in_flight += 1

    def try_admit(self) -> bool:
        """Count one call in flight if the window has room for it now; False when it must wait."""
        if self._budget is None:
            self.in_flight += 1
            return True
        return self._delay(asyncio.get_running_loop().time()) <= 0.0

    async def admit(self) -> float:
        """Wait until the window has room for one more call and count it; returns the wait."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while (delay := self._delay(loop.time())) > 0.0:
            if self._changed is None:
                self._changed = loop.create_future()
            await asyncio.wait((self._changed,), timeout=delay)
        return loop.time() - start

    def _delay(self, now: float) -> float:
        """0 after counting one call in flight; else the longest a caller should wait."""
        budget = self._budget
        if budget is not None:
            if budget > 0:
                self._budget = budget - 1
            elif now < self._reset_at:
                return self._reset_at - now
            elif now >= self._next_probe:
                # The oldest counted call has left the window since the last reading.
                self._next_probe = now + PROBE_HOLD
            else:
                return self._next_probe - now
        self.in_flight += 1
        return 0.0

    def settle(self, headers: Mapping[str, str] | None) -> WindowReading | None:
        """One admitted call ended: learn from its answer's headers (None: no answer came).

        Returns the answer's reading, accepted or not (None when it had none or a wrong one).
        """
        self.in_flight -= 1
        if headers is None:
            return None
        now = asyncio.get_running_loop().time()
        try:
            reading = read_window(headers)
        except ValueError as exc:
            if self._budget is not None or self.reading is not None:
                log.debug("ignoring the gateway's window headers (%s): own bucket only", exc)
            self._forget()
            return None
        if reading is None:
            if self._budget is not None and now >= self._reset_at:
                self._forget()
            return None
        budget = max(0, reading.remaining - self.in_flight)
        if self._budget is None or budget <= self._budget or now >= self._reset_at:
            # When the calls waiting at 0 would have gone: Reset, or the next probe after it.
            due = self._reset_at if now < self._reset_at else self._next_probe
            self.reading = reading
            self._budget = budget
            self._reset_at = now + reading.reset
            self._next_probe = 0.0
            # A probe's answer is news even at 0: its Reset may come before the probe hold
            # ends, and the waiting calls must follow it rather than sleep the hold out.
            if budget > 0 or self._reset_at < due:
                self._wake()
        return reading

    def _forget(self) -> None:
        self._budget = None
        self.reading = None
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)
