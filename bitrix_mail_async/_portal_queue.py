"""The portal's queue as this process sees it: calls on the wire, and how long they take.

The gateway runs at most :data:`QUEUE_SIZE` calls of a portal at once; the rest wait in its
queue (contract 1a.3). A call queued there is on the wire: a deadline that reaches it leaves a
side effect's outcome unknown. So a side effect with a deadline waits on this side instead
(:meth:`PortalQueue.reserve`), where giving up is clean (``DeadlineExceededError``), and is not
started when the time left is shorter than the portal's calls have lately taken
(:attr:`PortalQueue.typical`). Every other call is only counted while it is on the wire.
The count is this process's: other processes' calls are not seen.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

__all__ = ["QUEUE_SIZE", "NoTimeLeft", "PortalQueue"]

#: Calls the gateway runs at once per portal (contract 1a.3).
QUEUE_SIZE: Final = 2
#: Weight of the newest exchange in :attr:`PortalQueue.typical`.
_SMOOTHING: Final = 0.25


class NoTimeLeft(Exception):
    """A side effect with a deadline was not sent: the time left is shorter than a call takes."""


class PortalQueue:
    """Calls of one portal on the wire from this process, and a smoothed exchange time."""

    __slots__ = ("_in_flight", "_waiters", "size", "typical")

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.size = size
        #: Smoothed seconds of recent answered exchanges of the portal (0 before the first).
        self.typical = 0.0
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Calls counted on the wire (or holding a reserved place) now."""
        return self._in_flight

    def enter(self) -> None:
        """A call goes on the wire without waiting for a place."""
        self._in_flight += 1

    async def reserve(self) -> None:
        """Wait for a place the gateway would run at once, then hold it (FIFO)."""
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()  # cancelled while waiting
        if self._in_flight < self.size and not waiters:
            self._in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            # A cancelled waiter stays queued until it reaches the head: leaving costs O(1),
            # so close() cancelling thousands of waiting calls stays linear.
            if waiter.done() and not waiter.cancelled():
                self._leave()  # handed a place while being cancelled: pass it on
            raise

    def leave(self, elapsed: float | None = None) -> None:
        """A call left the wire; ``elapsed``: its exchange time when an answer came."""
        if elapsed is not None:
            self.typical += (elapsed - self.typical) * _SMOOTHING if self.typical else elapsed
        self._leave()

    def _leave(self) -> None:
        self._in_flight -= 1
        while self._waiters and self._in_flight < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1  # the place goes to the waiter, not to a newcomer
                waiter.set_result(None)
