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

from typing import Final

from bitrix_mail_async._concurrency import AdaptiveConcurrency

__all__ = ["QUEUE_SIZE", "NoTimeLeft", "PortalQueue"]

#: Calls the gateway runs at once per portal (contract 1a.3).
QUEUE_SIZE: Final = 2
#: Weight of the newest exchange in :attr:`PortalQueue.typical`.
_SMOOTHING: Final = 0.25


class NoTimeLeft(Exception):
    """A side effect with a deadline was not sent: the time left is shorter than a call takes."""


class PortalQueue:
    """Calls of one portal on the wire from this process, and a smoothed exchange time."""

    __slots__ = ("_places", "typical")

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        # A FIFO limit of ``size`` places: AdaptiveConcurrency never told of an overload, so
        # its limit stays where it starts.
        self._places = AdaptiveConcurrency(size)
        #: Smoothed seconds of recent answered exchanges of the portal (0 before the first).
        self.typical = 0.0

    @property
    def in_flight(self) -> int:
        """Calls counted on the wire (or holding a reserved place) now."""
        return self._places.in_flight

    def enter(self) -> None:
        """A call goes on the wire without waiting for a place."""
        self._places.take()

    async def reserve(self) -> None:
        """Wait for a place the gateway would run at once, then hold it (FIFO)."""
        if self._places.try_acquire() is None:
            await self._places.acquire()

    def leave(self, elapsed: float | None = None) -> None:
        """A call left the wire; ``elapsed``: its exchange time when an answer came."""
        if elapsed is not None:
            self.typical += (elapsed - self.typical) * _SMOOTHING if self.typical else elapsed
        self._places.release()
