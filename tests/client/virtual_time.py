"""An event loop on a virtual clock, for limiter tests that must not depend on wall time."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bitrix_mail_async.testing import MailEmulator

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Instead of sleeping until the loop's next timer, moves the virtual clock there."""

    # Each turn of the loop also costs a nanosecond, as real turns cost time: a timer that
    # float rounding puts "now" (aiolimiter's wake-up for a level 1e-16 too high) then fires
    # after the clock moved instead of again and again at the same instant.
    TURN = 1e-9

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            self.now += self.TURN
            return ready
        if timeout is None:
            raise RuntimeError("nothing scheduled and nothing to read: the test is stuck")
        self.now += max(timeout, self.TURN)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer when every task waits."""

    def __init__(self) -> None:
        self.jumps = _JumpingSelector()
        super().__init__(self.jumps)

    def time(self) -> float:
        return self.jumps.now


def in_virtual_time(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``scenario`` on a fresh :class:`VirtualTimeLoop` (no wall-clock waits at all)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def with_virtual_emulator(
    scenario: Callable[[MailEmulator], Coroutine[Any, Any, T]],
) -> T:
    """Run ``scenario(emulator)`` with an in-loop emulator, both on one virtual clock."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        async with MailEmulator(clock=loop.time) as emulator:
            return await scenario(emulator)

    return in_virtual_time(main)
