"""The portal queue: at most N gateway calls of one portal execute at once, the rest wait.

The gateway runs at most **2** calls per portal at once; the others wait in FIFO order. A call
that waited longer than the queue timeout (30 s) is answered ``504 QUEUE_TIMEOUT`` with
``retryAfter`` 10 and was never executed, so retrying it is safe even for a send.

The queue lives on the emulator's event loop and measures waits with the loop's clock (a wait
is a real ``asyncio`` wait, not a computed one). It counts the calls executing per portal even
while it is off, so the request log can tell how many ran at once.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from dataclasses import dataclass, field

__all__ = ["PortalQueue", "QueueSettings", "QueueTimeout"]


@dataclass(frozen=True)
class QueueSettings:
    """The queue's figures; the defaults are the documented ones."""

    concurrency: int = 2
    timeout: float = 30.0
    #: How long every call holds its slot before it runs: a stand-in for Bitrix24's work.
    service_time: float = 0.0
    retry_after: float = 10.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("the queue concurrency must be at least 1")
        if self.timeout < 0 or self.service_time < 0 or self.retry_after < 0:
            raise ValueError("queue durations must not be negative")


class QueueTimeout(Exception):
    """A call waited longer than the queue timeout; it holds no slot."""

    def __init__(self, timeout: float, retry_after: float) -> None:
        super().__init__(f"waited more than {timeout:g} s for a slot")
        self.retry_after = retry_after


@dataclass
class _Lane:
    executing: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class PortalQueue:
    """Slots per portal, handed to waiting calls in the order they arrived."""

    def __init__(self) -> None:
        self.settings: QueueSettings | None = None
        self._lanes: dict[str, _Lane] = {}

    def configure(self, settings: QueueSettings | None) -> None:
        """Switch the queue on with ``settings``, or off with ``None`` (waiting calls go on)."""
        self.settings = settings

    def executing(self, portal: str) -> int:
        """Return how many calls of ``portal`` hold a slot now."""
        lane = self._lanes.get(portal)
        return lane.executing if lane is not None else 0

    def waiting(self, portal: str) -> int:
        """Return how many calls of ``portal`` wait for a slot now."""
        lane = self._lanes.get(portal)
        return sum(not w.done() for w in lane.waiters) if lane is not None else 0

    async def enter(self, portal: str) -> float:
        """Wait for a slot of ``portal``; return the seconds waited, or raise QueueTimeout."""
        lane = self._lanes.setdefault(portal, _Lane())
        settings = self.settings
        if settings is None or (lane.executing < settings.concurrency and not lane.waiters):
            lane.executing += 1
            return 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter: asyncio.Future[None] = loop.create_future()
        lane.waiters.append(waiter)
        try:
            # asyncio.wait leaves the future alone on timeout: a slot handed over at the same
            # moment is seen below instead of being lost with a cancelled future.
            await asyncio.wait([waiter], timeout=settings.timeout)
        except BaseException:
            self._abandon(lane, waiter)
            raise
        if not waiter.done():
            self._abandon(lane, waiter)
            raise QueueTimeout(settings.timeout, settings.retry_after)
        return loop.time() - started

    def leave(self, portal: str) -> None:
        """Give back the slot of a finished call; the longest waiting call gets it."""
        lane = self._lanes[portal]
        lane.executing -= 1
        self._wake(lane)

    def _wake(self, lane: _Lane) -> None:
        settings = self.settings
        room = settings.concurrency if settings is not None else sys.maxsize
        while lane.waiters and lane.executing < room:
            waiter = lane.waiters.popleft()
            if not waiter.done():
                lane.executing += 1
                waiter.set_result(None)

    def _abandon(self, lane: _Lane, waiter: asyncio.Future[None]) -> None:
        """Forget a call that stops waiting; pass on a slot it was handed meanwhile."""
        if waiter.done() and not waiter.cancelled():
            lane.executing -= 1
            self._wake(lane)
            return
        waiter.cancel()
        if waiter in lane.waiters:
            lane.waiters.remove(waiter)
