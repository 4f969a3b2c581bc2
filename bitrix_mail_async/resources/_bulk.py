"""Bulk reads (``mail.messages.get_many()``): many calls, results in input order, bounded memory.

The ids may be any iterable or async iterable, even an endless one: an id is pulled only when
there is room for its call. At most ``size`` calls run at once (the client's
``max_concurrency``) and at most as many finished results wait for an earlier, slower one, so
memory is O(size) whatever the number of ids. An async source is read in a task of its own,
so a slow source never holds back results that are ready.

On ``break``, an error or a cancellation every call still running is cancelled before the
iterator finishes closing; ``contextlib.aclosing(...)`` closes it at once, otherwise the event
loop does when the iterator is garbage-collected (at once in CPython, where nothing else
refers to it).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple, TypeVar

from bitrix_mail_async import _args, errors

__all__ = ["IdSource", "check_ids", "fetch_in_order"]

T = TypeVar("T")
IdSource = Iterable[int] | AsyncIterable[int]
_END: Any = object()  # the source has no more ids
_NOT_READY: Any = object()  # an async source's next id is still on its way


def check_ids(ids: object) -> IdSource:
    """Refuse what is not a source of ids; check every id of a list, tuple, set or range now."""
    if isinstance(ids, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        ids, Iterable | AsyncIterable
    ):
        raise errors.InvalidArgumentError(
            "ids must be an iterable or async iterable of int ids, got " + type(ids).__name__
        )
    if isinstance(ids, range):
        if ids:  # every item is an int: the smallest and the largest tell
            _args.positive_id("ids[min]", min(ids))
            _args.positive_id("ids[max]", max(ids))
    elif isinstance(ids, collections.abc.Sequence | AbstractSet):
        # Sized and re-iterable: a bad id is refused before anything is sent.
        for index, value in enumerate(ids):
            _args.positive_id(f"ids[{index}]", value)
    return ids


class _Entry(NamedTuple):
    outcome: asyncio.Future[Any]
    # A bad id or a failing source: raised at its place even with return_exceptions.
    is_input_error: bool


class _Ids:
    """Pulls ids one by one from a sync source, or in a task from an async one."""

    def __init__(self, source: IdSource, wake: asyncio.Event) -> None:
        self._sync = iter(source) if not isinstance(source, AsyncIterable) else None
        self._async = aiter(source) if isinstance(source, AsyncIterable) else None
        self._wake = wake
        self._index = 0
        self.pull: asyncio.Task[Any] | None = None
        self.exhausted = False

    def next_ready(self) -> int | BaseException | None:
        """The next id (or the error getting it) if there is one now; None otherwise."""
        if self.exhausted:
            return None
        try:
            value = self._next_value()
        except Exception as exc:  # the caller's source failed: raised at its place
            self.exhausted = True
            return exc
        if value is _NOT_READY:
            return None
        if value is _END:
            self.exhausted = True
            return None
        try:
            checked = _args.positive_id(f"ids[{self._index}]", value)
        except errors.InvalidArgumentError as exc:
            self.exhausted = True
            return exc
        self._index += 1
        return checked

    def _next_value(self) -> Any:
        if self._sync is not None:
            return next(self._sync, _END)
        pull = self.pull
        if pull is None:
            assert self._async is not None
            self.pull = asyncio.ensure_future(_pull_one(self._async))
            self.pull.add_done_callback(lambda _task: self._wake.set())
            return _NOT_READY
        if not pull.done():
            return _NOT_READY
        self.pull = None
        return pull.result()


async def _pull_one(source: AsyncIterator[Any]) -> Any:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return _END


class _Window:
    """The calls of one ``get_many``: running, finished and waiting their turn, in order."""

    def __init__(self, source: IdSource, fetch: Callable[[int], Awaitable[Any]], size: int) -> None:
        self.wake = asyncio.Event()
        self.ids = _Ids(source, self.wake)
        self.queue: collections.deque[_Entry] = collections.deque()
        self._fetch = fetch
        self._size = size
        self._running = 0

    def fill(self) -> None:
        """Start calls while fewer than ``size`` run and fewer than ``2 * size`` are held."""
        while self._running < self._size and len(self.queue) < 2 * self._size:
            pulled = self.ids.next_ready()
            if pulled is None:
                return
            if isinstance(pulled, BaseException):
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(pulled)
                self.queue.append(_Entry(failed, True))
                return
            task = asyncio.ensure_future(self._fetch(pulled))
            self._running += 1
            task.add_done_callback(self._settled)
            self.queue.append(_Entry(task, False))

    def _settled(self, _task: asyncio.Future[Any]) -> None:
        self._running -= 1
        self.wake.set()

    async def close(self) -> None:
        """Cancel every call (and pull) still running and wait until they are all gone."""
        held = [entry.outcome for entry in self.queue]
        self.queue.clear()
        if self.ids.pull is not None:
            held.append(self.ids.pull)
            self.ids.pull = None
        for future in held:
            future.cancel()
        # Also marks the exceptions of finished calls as retrieved (no "never retrieved" noise).
        await asyncio.gather(*held, return_exceptions=True)


def _outcome(entry: _Entry, return_exceptions: bool) -> Any:
    exc = entry.outcome.exception()
    if exc is None:
        return entry.outcome.result()
    if return_exceptions and not entry.is_input_error and isinstance(exc, errors.MailError):
        return exc
    raise exc


async def fetch_in_order(
    source: IdSource,
    fetch: Callable[[int], Awaitable[T]],
    *,
    size: int,
    return_exceptions: bool,
) -> AsyncGenerator[Any, None]:
    """Yield ``await fetch(id)`` for every id of ``source``, in its order (module docstring)."""
    window = _Window(source, fetch, size)
    try:
        while True:
            window.fill()
            if window.queue:
                head = window.queue[0]
                if head.outcome.done():
                    window.queue.popleft()
                    yield _outcome(head, return_exceptions)
                    continue
            elif window.ids.exhausted:
                return
            window.wake.clear()
            await window.wake.wait()
    finally:
        await window.close()
