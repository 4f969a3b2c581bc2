"""The progress line long commands show on stderr, to a person at a terminal only.

Owns :class:`Progress`, a counter (``exported 340/1200 messages``) redrawn in place with a
carriage return, silent when stderr is not a terminal (a pipe, a file, a test), so scripts
reading stdout or stderr never see it; and :func:`collect`, a listing over many pages counted
on it as it goes. Written by hand rather than with a progress-bar library (tqdm, rich): the
gateway's lists give no reliable total, so a bar would mostly be a counter anyway, and a
counter is not worth a runtime dependency of the library.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from typing import Final, TextIO, TypeVar

from bitrix_mail_async.models import Page

__all__ = ["Progress", "collect"]

T = TypeVar("T")

# Redraw at most this often: a fast export would otherwise spend its time on the terminal.
_REDRAW_EVERY: Final = 0.1


class Progress:
    """``{verb} {count}[/{total}] {unit}`` on stderr, redrawn in place while work goes on.

    ``keep`` leaves the last line on screen at :meth:`finish` (an export's final count);
    otherwise the line is erased, so a table printed next on stdout starts clean.
    """

    def __init__(
        self,
        verb: str,
        unit: str,
        *,
        start: int = 0,
        keep: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        # Off without a terminal, and when stderr is closed (None).
        self.enabled = self.stream is not None and self.stream.isatty()
        self.verb = verb
        self.unit = unit
        self.count = start
        self.total: int | None = None
        self.keep = keep
        self._drawn = 0
        self._last = 0.0

    def advance(self, by: int = 1) -> None:
        """Count ``by`` more items done and redraw (at most every 0.1 s)."""
        self.count += by
        self.draw()

    def draw(self, *, force: bool = False) -> None:
        """Redraw the line now (``force``) or when the last redraw is old enough."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < _REDRAW_EVERY:
            return
        self._last = now
        total = f"/{self.total}" if self.total is not None else ""
        line = f"{self.verb} {self.count}{total} {self.unit}"
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def finish(self) -> None:
        """End the line: keep the final count on screen, or erase it."""
        if not self.enabled:
            return
        if self.keep:
            self.draw(force=True)
            self.stream.write("\n")
        elif self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
        self.stream.flush()


async def collect(
    pages: AsyncIterator[Page[T]], *, limit: int | None, verb: str, unit: str
) -> list[T]:
    """The items of ``pages``, at most ``limit`` (None: all), counted on the progress line."""
    found: list[T] = []
    progress = Progress(verb, unit, keep=False)
    try:
        async for page in pages:
            found.extend(page.items)
            progress.advance(len(page.items))
            if limit is not None and len(found) >= limit:
                del found[limit:]
                break
    finally:
        progress.finish()
    return found
