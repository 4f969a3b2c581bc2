"""How many calls may be in flight at once, learned from the gateway's portal queue.

Each portal runs at most 2 gateway calls at once and queues the rest; a call that waited 30 s
is answered 504 QUEUE_TIMEOUT and was not executed (contract section 1a.3). The gateway's
advice is to lower the concurrency and retry, so :class:`AdaptiveConcurrency` halves its
limit once per such episode and adds one slot back after each quiet period, never above the
configured ``max_concurrency``. Waiters are served in FIFO order; a cancelled waiter leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

__all__ = ["AdaptiveConcurrency"]


class AdaptiveConcurrency:
    """A FIFO concurrency limit with multiplicative decrease and additive increase."""

    def __init__(
        self,
        maximum: int,
        *,
        decrease: float = 0.5,
        quiet_period: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.generation = 0
        self._decrease = decrease
        self._quiet_period = quiet_period
        self._clock = clock
        self._last_change = clock()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> int | None:
        """Take a free slot without waiting (the generation), or None when callers must queue."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return self.generation
        return None

    def take(self) -> None:
        """Count a call in flight that goes without waiting, over the limit if need be."""
        self.in_flight += 1

    async def acquire(self) -> int:
        """Wait for a slot (FIFO); returns the generation to hand back with an overload."""
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()  # cancelled waiters are dropped lazily, in O(1) each
        if self.in_flight < self.limit and not waiters:
            self.in_flight += 1
            return self.generation
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the wait was cancelled: pass it on.
                self.release()
            raise
        return self.generation

    def release(self) -> None:
        """Give a slot back and hand free slots to the oldest waiters."""
        self.in_flight -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def overloaded(self, generation: int) -> bool:
        """Halve the limit for a QUEUE_TIMEOUT of ``generation``; True when it changed."""
        if generation != self.generation:
            return False  # the same episode already lowered it
        self.generation += 1
        self.limit = max(1, int(self.limit * self._decrease))
        self._last_change = self._clock()
        return True

    def succeeded(self) -> None:
        """Add one slot back after a quiet period without overloads, up to the maximum."""
        if self.limit >= self.maximum:
            return
        now = self._clock()
        if now - self._last_change >= self._quiet_period:
            self.limit += 1
            self._last_change = now
            self._wake()
